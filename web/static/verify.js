// attestation-ledger: check an entry's inclusion proof and its checkpoint's signature in the
// browser (WebCrypto SHA-256 and Ed25519), so that an auditor need not take the server's
// word that a proof is valid. RFC 9162 section 2.1.3.2 (inclusion), C2SP signed-note and
// tlog-checkpoint. No dependencies; numbers above 2^32 are handled without bit operators.
"use strict";

(function () {
  const panel = document.getElementById("browser-check");
  if (!panel || !panel.dataset.proofUrl) return;
  const statusLine = document.getElementById("check-status");
  const steps = document.getElementById("check-steps");
  const again = document.getElementById("check-run");
  const encoder = new TextEncoder();
  const PIN = "attest-ledger.log-key";
  const pinRow = document.getElementById("check-pin-row");
  const keyInput = document.getElementById("check-key");

  function pinned() {
    try { return window.localStorage.getItem(PIN); } catch (e) { return null; }
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function fromHex(text) {
    if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not hexadecimal: " + text.slice(0, 20));
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
    return out;
  }
  function fromBase64(text) {
    const raw = atob(text);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  function equal(a, b) {
    return a.length === b.length && a.every((v, i) => v === b[i]);
  }
  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }
  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  // RFC 9162 2.1.3.2: the root a proof leads to, or an error.
  async function rootFromProof(index, size, leaf, proof) {
    if (!(index < size)) throw new Error("the index is not inside the tree");
    let fn = index, sn = size - 1, r = leaf;
    for (const p of proof) {
      if (sn === 0) throw new Error("the proof is longer than the tree is deep");
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("the proof is shorter than the tree is deep");
    return r;
  }

  // C2SP signed note: text, blank line, signature lines "— <name> <base64(keyid || sig)>".
  function splitNote(note) {
    const end = note.lastIndexOf("\n\n");
    if (end < 0) throw new Error("the checkpoint is not a signed note");
    const text = note.slice(0, end + 1);
    const signatures = note.slice(end + 2).split("\n").filter((l) => l.length > 0).map((line) => {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) throw new Error("a malformed signature line");
      return { name: m[1], blob: fromBase64(m[2]) };
    });
    return { text, signatures };
  }
  function parseCheckpoint(text) {
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("not a checkpoint body");
    return { origin: lines[0], size: Number(lines[1]), root: fromBase64(lines[2]) };
  }
  // Verifier key "<name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 key)>".
  async function parseKey(vkey) {
    // the base64 key material may itself hold "+": split at the first two only
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/.exec(vkey);
    if (!m) throw new Error("not a signed-note verifier key");
    const [, name, id, material] = m;
    const raw = fromBase64(material);
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 verifier key");
    const pub = raw.slice(1);
    const computed = (await sha256(concat(encoder.encode(name + "\n"), Uint8Array.of(1), pub))).slice(0, 4);
    if (hex(computed) !== id) throw new Error("the key ID does not match the key");
    return { name, id: computed, pub };
  }

  function step(ok, title, detail) {
    const li = document.createElement("li");
    li.className = ok ? "pass" : "fail";
    li.textContent = (ok ? "✓ " : "✗ ") + title;
    if (detail) {
      const span = document.createElement("span");
      span.className = "detail";
      span.textContent = detail;
      li.appendChild(span);
    }
    steps.appendChild(li);
    return ok;
  }

  async function check() {
    steps.replaceChildren();
    statusLine.className = "check-status";
    statusLine.textContent = "Checking…";
    const index = Number(panel.dataset.index);
    try {
      if (!window.crypto || !crypto.subtle) throw new Error("this browser offers no WebCrypto here (it needs https or localhost)");
      const [entryResponse, proofResponse] = await Promise.all([
        fetch(panel.dataset.entryUrl, { credentials: "same-origin" }),
        fetch(panel.dataset.proofUrl, { credentials: "same-origin" }),
      ]);
      if (!entryResponse.ok || !proofResponse.ok) throw new Error("could not download the entry or its proof");
      const entry = new Uint8Array(await entryResponse.arrayBuffer());
      const proof = await proofResponse.json();
      const pageKey = panel.dataset.logKey;
      const held = pinned();
      if (held) {
        step(held === pageKey, "This page shows the key you pinned in this browser",
          held === pageKey ? held : "pinned " + held + ", page shows " + pageKey);
      } else {
        step(true, "Checking against the key this page shows (no key pinned in this browser)",
          "pin the key you hold below, and every later check uses it instead of the server's");
      }
      const key = await parseKey(held || pageKey);

      const leaf = await leafHash(entry);
      let ok = step(hex(leaf) === panel.dataset.leafHash && hex(leaf) === proof.leaf_hash,
        "The leaf hash, recomputed from the entry's " + entry.length + " bytes, is the one this page shows",
        "SHA-256(0x00 ‖ entry) = " + hex(leaf));

      const root = await rootFromProof(index, proof.tree_size, leaf, proof.hashes.map(fromHex));
      step(true, "The inclusion proof (" + proof.hashes.length + " hashes) leads from entry " + index +
        " to a root of a tree of " + proof.tree_size + " entries", "root = " + hex(root));

      const note = splitNote(proof.checkpoint);
      const body = parseCheckpoint(note.text);
      ok = step(body.size === proof.tree_size && equal(body.root, root),
        "The signed checkpoint (origin " + body.origin + ", size " + body.size + ") has exactly that root",
        "checkpoint root = " + hex(body.root)) && ok;

      const mine = note.signatures.find((s) => s.name === key.name && equal(s.blob.slice(0, 4), key.id));
      let signed = false;
      if (mine && mine.blob.length === 68) {
        const publicKey = await crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]);
        signed = await crypto.subtle.verify({ name: "Ed25519" }, publicKey, mine.blob.slice(4), encoder.encode(note.text));
      }
      ok = step(signed, "The checkpoint's Ed25519 signature verifies under the ledger's key",
        "key " + key.name + "+" + hex(key.id) + (mine ? "" : " (no signature by this key)")) && ok;

      statusLine.className = "check-status " + (ok ? "passed" : "failed");
      statusLine.textContent = ok
        ? "Verified in your browser: this entry is in the ledger that the signed checkpoint describes."
        : "The check FAILED: see the step marked ✗.";
    } catch (error) {
      step(false, "The check could not be completed", String(error.message || error));
      statusLine.className = "check-status failed";
      statusLine.textContent = "The check FAILED: " + String(error.message || error);
    }
    again.hidden = false;
  }

  again.addEventListener("click", check);
  if (pinRow) {
    keyInput.value = pinned() || panel.dataset.logKey;
    document.getElementById("check-pin").addEventListener("click", async () => {
      const text = keyInput.value.trim();
      try {
        await parseKey(text);
        window.localStorage.setItem(PIN, text);
      } catch (error) {
        statusLine.className = "check-status failed";
        statusLine.textContent = "Not pinned: " + String(error.message || error);
        return;
      }
      check();
    });
    document.getElementById("check-forget").addEventListener("click", () => {
      try { window.localStorage.removeItem(PIN); } catch (e) { /* storage off */ }
      keyInput.value = panel.dataset.logKey;
      check();
    });
    pinRow.hidden = false;
  }
  check();
})();
