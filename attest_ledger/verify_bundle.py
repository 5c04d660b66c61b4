#!/usr/bin/env python3
"""Check an attestation-ledger proof bundle with nothing but Python 3.11+, cryptography and
cbor2: no database, no network, not even the attestation-ledger project.

    python3 verify_bundle.py BUNDLE.tar.gz --log-key 'name+keyid+base64key' [--trust-root PEM]

It checks, against the ledger key YOU give: the checkpoint signature; the signed manifest
(the count of entries and the digest of their leaf hashes, so none was dropped or added, and
the digests of README.txt and report.html); every entry's and policy's inclusion proof
(RFC 9162); the consistency proof, if any; every evidence file against the SHA-256 its entry
names; and it verifies every AWS Nitro attestation document again as of its own timestamp
(COSE_Sign1 ES384 signature, certificate chain to the shipped trust anchor, PCRs against the
policy revision the entry names, debug mode, the result-hash binding), comparing the verdict
with the recorded one. Exit status 0 if every check passed, 1 otherwise, naming each item.

This file is deliberately self-contained and short enough to read in one sitting.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import ssl
import sys
import tarfile
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

FORMAT = "attestation-ledger-bundle/v1"
MANIFEST_NOTE = "attestation-ledger/bundle-manifest/v1"
AWS_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
BINDING_PREFIX = b"attestation-ledger:result:v1:"
SERVICE_STATE = {
    "nonce_unknown", "nonce_replayed", "nonce_expired", "nonce_missing", "nonce_mismatch",
    "nonce_already_used", "document_too_old", "document_from_future",
}  # fmt: skip
HEADER = ("README.txt", "manifest.json", "manifest.sig", "log-key.txt", "checkpoint.txt")
ENTRY = re.compile(r"entries/([0-9]{12})/(entry\.json|evidence\.cbor|proof\.tlog-proof)")
POLICY = re.compile(r"policies/([0-9]{12})\.(json|tlog-proof)")
TRUST = re.compile(r"trust/([0-9a-f]{64})\.pem")


class Bad(Exception):
    pass


# --- signed notes, checkpoints, proofs (C2SP, RFC 9162) ------------------------------------


class Key:
    def __init__(self, vkey: str) -> None:
        found = re.fullmatch(r"([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})", vkey.strip())
        if not found:
            raise Bad("not a signed-note verifier key")
        self.name, key_id, material = found.groups()
        raw = base64.b64decode(material)
        if len(raw) != 33 or raw[0] != 1:
            raise Bad("not an Ed25519 verifier key")
        self.id = hashlib.sha256(self.name.encode() + b"\n" + raw).digest()[:4]
        if self.id.hex() != key_id:
            raise Bad("the key ID does not match the key")
        self.public = ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])
        self.text = vkey.strip()

    def open(self, note: str) -> str:
        """The note's text if this key signed it (and no signature by this key is bad)."""
        end = note.rfind("\n\n")
        if end < 0:
            raise Bad("not a signed note")
        text, good = note[: end + 1], False
        for line in note[end + 2 :].splitlines():
            found = re.fullmatch("\u2014 (\\S+) ([A-Za-z0-9+/]+={0,2})", line)
            if not found:
                raise Bad("a malformed signature line")
            blob = base64.b64decode(found.group(2))
            if found.group(1) == self.name and blob[:4] == self.id:
                try:
                    self.public.verify(blob[4:], text.encode())
                except InvalidSignature:
                    raise Bad("a signature by the ledger key does not verify") from None
                good = True
        if not good:
            raise Bad("not signed by the ledger key you gave")
        return text


def checkpoint_body(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]):
        raise Bad("not a checkpoint")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Bad("the checkpoint root is not 32 bytes")
    return lines[0], int(lines[1]), root


def tlog_proof(text: str) -> tuple[int, list[bytes], str]:
    head, _, note = text.partition("\n\n")
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1" or not note:
        raise Bad("not a tlog-proof")
    at = 2 if len(lines) > 1 and lines[1].startswith("extra ") else 1
    if at >= len(lines) or not re.fullmatch(r"index (0|[1-9][0-9]{0,18})", lines[at]):
        raise Bad("the tlog-proof has no index line")
    proof = [base64.b64decode(line, validate=True) for line in lines[at + 1 :]]
    if any(len(h) != 32 for h in proof):
        raise Bad("a proof hash is not 32 bytes")
    return int(lines[at].split()[1]), proof, note


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def check_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    if index >= size:
        raise Bad("the index is not inside the tree")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise Bad("the proof is too long")
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise Bad("the inclusion proof does not lead to the checkpoint's root")


def check_consistency(
    size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> None:
    if size1 > size2:
        raise Bad("the older tree is larger")
    if size1 == size2:
        if proof or root1 != root2:
            raise Bad("equal sizes need an empty proof and equal roots")
        return
    if size1 == 0:
        if proof:
            raise Bad("a proof from the empty tree must be empty")
        return
    if not proof:
        raise Bad("the consistency proof is empty")
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        proof = [root1, *proof]
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise Bad("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or fr != root1 or sr != root2:
        raise Bad("the consistency proof does not hold")


# --- AWS Nitro attestation documents ---------------------------------------------------------


def judge(evidence: bytes, anchor_der: bytes, policy: dict[str, Any], worker: Any,
          result_hash: Any) -> tuple[str, set[str]]:  # fmt: skip
    """(status, reason codes) of the document as of its own timestamp under ``policy``."""
    allowed = policy.get("workers", {}).get(worker) if isinstance(worker, str) else None
    images = [i for i in policy.get("images", []) if allowed and i["name"] in allowed]
    if not images:
        return "contraindicated", {"no_reference_values"}
    try:
        item = cbor2.loads(evidence)
        if isinstance(item, cbor2.CBORTag):
            item = item.value
        protected, _, payload_bytes, signature = item
        if cbor2.loads(protected).get(1) != -35:
            raise Bad("not ES384")
        doc = cbor2.loads(payload_bytes)
        moment = datetime.fromtimestamp(doc["timestamp"] / 1000, UTC)
        skew = timedelta(seconds=int(policy.get("clock_skew_seconds", 0)))
        chain = [x509.load_der_x509_certificate(d) for d in doc["cabundle"]]
        chain.append(x509.load_der_x509_certificate(doc["certificate"]))
    except Exception:
        return "contraindicated", {"malformed"}
    if doc["cabundle"][0] != anchor_der:
        return "contraindicated", {"untrusted_root"}
    for n, cert in enumerate(chain):
        if not cert.not_valid_before_utc - skew <= moment <= cert.not_valid_after_utc + skew:
            return "contraindicated", {"not_yet_valid" if moment < cert.not_valid_before_utc
                                       else "expired"}  # fmt: skip
        if n > 0:
            issuer = chain[n - 1]
            public, algorithm = issuer.public_key(), cert.signature_hash_algorithm
            if not isinstance(public, ec.EllipticCurvePublicKey) or algorithm is None:
                return "contraindicated", {"chain_invalid"}
            try:
                public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
            except InvalidSignature:
                return "contraindicated", {"chain_invalid"}
    structure = cbor2.dumps(["Signature1", protected, b"", payload_bytes])
    half = len(signature) // 2
    der = encode_dss_signature(
        int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    )
    signer = chain[-1].public_key()
    if not isinstance(signer, ec.EllipticCurvePublicKey):
        return "contraindicated", {"signature_invalid"}
    try:
        signer.verify(der, structure, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return "contraindicated", {"signature_invalid"}
    codes: set[str] = set()
    pcrs = doc.get("pcrs") or {}
    debug = pcrs.get(0) is not None and not any(pcrs[0])
    if debug and not policy.get("allow_debug"):
        codes.add("debug_mode")
    if not any(
        all(pcrs.get(int(i)) == bytes.fromhex(v) for i, v in image["pcrs"].items())
        for image in images
    ):
        codes.add("pcr_mismatch")
    if isinstance(result_hash, str):
        name, _, digest = result_hash.partition(":")
        expected = BINDING_PREFIX + name.lower().encode() + b":" + bytes.fromhex(digest)
        if doc.get("user_data") is None:
            codes.add("result_binding_missing")
        elif doc["user_data"] != expected:
            codes.add("result_binding_mismatch")
    if codes:
        return "contraindicated", codes
    return ("warning" if debug else "affirming"), codes


# --- the bundle ------------------------------------------------------------------------------


class Checker:
    def __init__(self, key: Key, trust_root: bytes | None) -> None:
        self.key, self.trust_root = key, trust_root
        self.failures: list[tuple[str, str]] = []
        self.notes: list[tuple[str, str]] = []
        self.header: dict[str, bytes] = {}
        self.manifest: dict[str, Any] | None = None
        self.note = ""
        self.size, self.root = 0, b""
        self.anchors: dict[str, bytes] = {}
        self.policies: dict[int, dict[str, Any]] = {}
        self.pending_policies: dict[int, dict[str, bytes]] = {}
        self.current: int | None = None
        self.files: dict[str, bytes] = {}
        self.last, self.count, self.digest = -1, 0, hashlib.sha256()
        self.verdicts: dict[str, int] = {}

    def fail(self, item: str, message: str) -> None:
        self.failures.append((item, message))

    def member(self, name: str, data: bytes) -> None:
        if name in (*HEADER, "consistency.json", "report.html"):
            self.header[name] = data
            return
        if name == "verify_bundle.py":
            self.header[name] = data
            return
        if self.manifest is None:
            self.check_header()
        if found := TRUST.fullmatch(name):
            der = ssl.PEM_cert_to_DER_cert(data.decode())
            fingerprint = hashlib.sha256(der).hexdigest()
            if fingerprint != found.group(1):
                self.fail(name, "its SHA-256 is not the one it is named by")
            elif self.trust_root is not None and der != self.trust_root:
                self.fail(name, "is not the trust root you gave")
            else:
                self.anchors[fingerprint] = der
        elif found := POLICY.fullmatch(name):
            index = int(found.group(1))
            self.pending_policies.setdefault(index, {})[found.group(2)] = data
            files = self.pending_policies[index]
            if len(files) == 2:
                del self.pending_policies[index]
                item = f"policies/{index:012d}.json"
                if self.proven(item, index, files["json"], files["tlog-proof"]):
                    record = json.loads(files["json"])
                    if record.get("kind") != "policy":
                        self.fail(item, "not a policy entry")
                    else:
                        self.policies[index] = record["policy"]
        elif found := ENTRY.fullmatch(name):
            index = int(found.group(1))
            if index != self.current:
                self.flush()
                self.current = index
            self.files[found.group(2)] = data
            if found.group(2) == "proof.tlog-proof":
                self.flush()
        else:
            self.fail(name, "not a file a bundle holds")

    def check_header(self) -> None:
        missing = [n for n in HEADER if n not in self.header]
        if missing:
            raise Bad(f"missing {', '.join(missing)} before the entries")
        if self.header["log-key.txt"].decode(errors="replace").strip() != self.key.text:
            self.fail("log-key.txt", "names another key than the one given")
        try:
            self.note = self.header["checkpoint.txt"].decode()
            origin, self.size, self.root = checkpoint_body(self.key.open(self.note))
        except (Bad, ValueError) as exc:
            raise Bad(f"checkpoint.txt: {exc}") from None
        manifest = self.header["manifest.json"]
        try:
            text = self.key.open(self.header["manifest.sig"].decode())
        except (Bad, ValueError) as exc:
            raise Bad(f"manifest.sig: {exc}") from None
        if text != f"{MANIFEST_NOTE}\nsha256 {hashlib.sha256(manifest).hexdigest()}\n":
            raise Bad("manifest.sig: the signed manifest digest does not match manifest.json")
        info = self.manifest = json.loads(manifest)
        if info.get("format") != FORMAT:
            raise Bad(f"manifest.json: format {info.get('format')!r}, expected {FORMAT}")
        if info.get("checkpoint") != {"tree_size": self.size, "root_hash": self.root.hex()} or (
            info.get("origin") != origin
        ):
            self.fail("manifest.json", "names another checkpoint than checkpoint.txt")
        for name, digest in (info.get("files") or {}).items():
            if name not in self.header:
                self.fail(name, "missing (the manifest names it)")
            elif hashlib.sha256(self.header[name]).hexdigest() != digest:
                self.fail(name, "changed: its SHA-256 is not the one the signed manifest names")
        raw = self.header.get("consistency.json")
        if raw is None:
            if info.get("consistency_from") is not None:
                self.fail("consistency.json", "the manifest names one, the bundle has none")
            return
        try:
            proof = json.loads(raw)
            _, size1, root1 = checkpoint_body(self.key.open(proof["from_checkpoint"]))
            if proof["to_size"] != self.size or proof["from_size"] != size1:
                raise Bad("its sizes are not those of the two checkpoints")
            hashes_ = [bytes.fromhex(h) for h in proof["hashes"]]
            check_consistency(size1, self.size, hashes_, root1, self.root)
        except (Bad, ValueError, KeyError, TypeError) as exc:
            self.fail("consistency.json", f"does not prove consistency: {exc}")

    def proven(self, item: str, index: int, data: bytes, proof_text: bytes) -> bool:
        try:
            at, proof, note = tlog_proof(proof_text.decode())
            if at != index:
                raise Bad(f"it proves index {at}")
            if note != self.note:
                raise Bad("it leads to another checkpoint than checkpoint.txt")
            check_inclusion(leaf(data), index, self.size, proof, self.root)
        except (Bad, ValueError) as exc:
            self.fail(item, f"the inclusion proof fails: {exc}")
            return False
        return True

    def flush(self) -> None:
        if self.current is None:
            return
        index, files = self.current, self.files
        self.current, self.files = None, {}
        item = f"entries/{index:012d}"
        if index <= self.last:
            self.fail(item, "out of index order")
        self.last = index
        data, proof = files.get("entry.json"), files.get("proof.tlog-proof")
        if data is None or proof is None:
            self.fail(item, "needs entry.json and proof.tlog-proof")
            return
        self.count += 1
        self.digest.update(leaf(data))
        if not self.proven(f"{item}/proof.tlog-proof", index, data, proof):
            return
        record = json.loads(data)
        evidence, named = files.get("evidence.cbor"), record.get("evidence_sha256")
        if named is None and evidence is not None:
            self.fail(f"{item}/evidence.cbor", "the entry names no evidence")
            return
        if named is not None:
            if evidence is None:
                self.fail(f"{item}/evidence.cbor", "missing")
                return
            if hashlib.sha256(evidence).hexdigest() != named:
                self.fail(f"{item}/evidence.cbor", "its SHA-256 is not the one the entry names")
                return
        verdict = record.get("verdict") or record.get("kind")
        self.verdicts[str(verdict)] = self.verdicts.get(str(verdict), 0) + 1
        if record.get("kind") == "attestation" and evidence is not None:
            self.rejudge(item, record, evidence)

    def rejudge(self, item: str, record: dict[str, Any], evidence: bytes) -> None:
        anchor = self.anchors.get(str(record.get("trust_anchor_sha256")))
        if anchor is None:
            self.fail(
                item, f"its trust anchor {record.get('trust_anchor_sha256')} is not in trust/"
            )
            return
        policy = self.policies.get(record.get("policy_revision"))  # type: ignore[arg-type]
        if policy is None:
            self.fail(
                item, f"its policy revision {record.get('policy_revision')} is not in policies/"
            )
            return
        status, codes = judge(
            evidence, anchor, policy, record.get("worker"), record.get("result_hash")
        )
        recorded = {str(r.get("code")) for r in record.get("reasons") or [] if isinstance(r, dict)}
        verdict = record.get("verdict")
        explained = verdict == "contraindicated" and recorded and recorded <= SERVICE_STATE
        judged = f"re-verified as {status} ({', '.join(sorted(codes)) or 'no reasons'})"
        was = f"recorded {verdict} ({', '.join(sorted(recorded)) or 'no reasons'})"
        if status != verdict and not explained:
            self.fail(item, f"{judged}, {was}")
        elif codes != recorded and not (explained and not codes):
            self.notes.append((item, f"{judged}, {was}"))

    def finish(self) -> None:
        self.flush()
        if self.manifest is None:
            self.check_header()
        info = self.manifest or {}
        for index in self.pending_policies:
            self.fail(f"policies/{index:012d}", "needs both .json and .tlog-proof")
        failed = {item for item, _ in self.failures}
        missing = sorted(
            i for i in info.get("policies") or []
            if i not in self.policies and f"policies/{i:012d}.json" not in failed
        )  # fmt: skip
        if missing:
            self.fail("policies/", f"revisions {missing} named by the manifest are missing")
        anchors = {str(a) for a in info.get("trust_anchors") or []} - set(self.anchors)
        if anchors and self.trust_root is None:
            self.fail("trust/", f"anchors {sorted(anchors)} are missing")
        entries = info.get("entries") or {}
        if self.count != entries.get("count"):
            self.fail(
                "manifest.json",
                f"names {entries.get('count')} entries, the bundle holds {self.count}",
            )
        elif self.digest.hexdigest() != entries.get("leaf_hashes_sha256"):
            self.fail(
                "manifest.json", "the entries are not the ones selected (leaf digest differs)"
            )


def check(path: str, key: Key, trust_root: bytes | None = None) -> Checker:
    checker = Checker(key, trust_root)
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                tar.members.clear()  # type: ignore[attr-defined]  # keep none: flat memory
                name = member.name.removeprefix("bundle/")
                if not member.name.startswith("bundle/") or not member.isfile():
                    raise Bad(f"{member.name}: not a regular file under bundle/")
                if name in seen:
                    checker.fail(name, "appears twice in the archive")
                    continue
                seen.add(name)
                if member.size > 1 << 20:
                    checker.fail(name, "larger than 1 MiB")
                    continue
                handle = tar.extractfile(member)
                checker.member(name, handle.read() if handle else b"")
        checker.finish()
    except Bad as exc:
        checker.fail("bundle", str(exc))
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeDecodeError) as exc:
        checker.fail("bundle", f"not a readable bundle: {exc}")
    return checker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive")
    parser.add_argument("--log-key", required=True, help="the ledger's verifier key (or a file)")
    parser.add_argument("--trust-root", help="require documents to chain to this PEM root")
    args = parser.parse_args()
    try:
        text = args.log_key
        try:
            with open(text) as handle:
                text = handle.read()
        except OSError:
            pass
        key = Key(text)
        root = None
        if args.trust_root:
            with open(args.trust_root) as handle:
                root = ssl.PEM_cert_to_DER_cert(handle.read())
    except (Bad, ValueError) as exc:
        print(f"verify_bundle: {exc}", file=sys.stderr)
        return 2
    checker = check(args.archive, key, root)
    print(f"entries     {checker.count} proven")
    for verdict, n in sorted(checker.verdicts.items()):
        print(f"  {verdict:<16}{n}")
    for fingerprint in checker.anchors:
        aws = "" if fingerprint == AWS_ROOT_SHA256 else " (NOT the AWS root)"
        print(f"trust       {fingerprint}{aws}")
    for item, message in checker.notes:
        print(f"  note {item}: {message}")
    if not checker.failures:
        print("result      every check passed")
        return 0
    print(f"result      {len(checker.failures)} FAILED")
    for item, message in checker.failures:
        print(f"  FAIL {item}: {message}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
