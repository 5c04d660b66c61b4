#!/usr/bin/env python3
"""Check an attestation-ledger proof bundle with nothing but Python 3.11+, cryptography and
cbor2 (6.1 or newer): no database, no network, not even the attestation-ledger project.

    python3 verify_bundle.py BUNDLE.tar.gz --log-key 'name+keyid+base64key' [--trust-root PEM]

It checks, against the ledger key YOU give: the checkpoint signature; the signed manifest
(the count of entries and the digest of their leaf hashes, so none was dropped or added, and
the digests of README.txt, report.html and this file); every entry's and policy's inclusion
proof (RFC 9162); the consistency proof, if any; every evidence file against the SHA-256 its
entry names; and it judges every AWS Nitro attestation document again at the instant the
service judged it (the entry's verified_at), against the trust anchor the entry names and
under the policy revision it names: COSE_Sign1 envelope and ES384 signature, every field of
the document, the certificate chain and its validity windows, PCRs, debug mode, the
document's age and the result-hash binding. Only the challenge (the nonce) is not judged
again: it was the service's state. Exit status 0 if every check passed, 1 otherwise, naming
each failing item; 2 for a usage error.

This file is deliberately self-contained and short enough to read in one sitting. Its
sections: output, signed notes and proofs, the archive, the AWS Nitro judge, the bundle.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import re
import ssl
import sys
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

FORMAT = "attestation-ledger-bundle/v1"
MANIFEST_NOTE = "attestation-ledger/bundle-manifest/v1"
AWS_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
#: Reasons that were the service's state at ingestion (its challenges): not judged again.
SERVICE_STATE = {
    "nonce_unknown", "nonce_replayed", "nonce_expired", "nonce_missing", "nonce_mismatch",
    "nonce_already_used",
}  # fmt: skip
HEADER = ("README.txt", "manifest.json", "manifest.sig", "log-key.txt", "checkpoint.txt")
ENTRY = re.compile(r"entries/([0-9]{12})/(entry\.json|evidence\.cbor|proof\.tlog-proof)")
POLICY = re.compile(r"policies/([0-9]{12})\.(json|tlog-proof)")
TRUST = re.compile(r"trust/([0-9a-f]{64})\.pem")
INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
HEX64 = re.compile(r"[0-9a-f]{64}")
SURROGATE = re.compile("[\\ud800-\\udfff]")
MAX_EVIDENCE = 16384 + 256  # the largest Nitro document the format allows (AWS's CDDL)
MAX_EVIDENCE_MEMBER = 1 << 16  # the largest evidence the ledger stores, of any scheme
MAX_MEMBER = 1 << 20  # any other member
MAX_META = 1 << 16  # a PAX or GNU long-name header inside the archive


class Bad(Exception):
    """A failure that makes the rest of the bundle uncheckable."""


# --- output ----------------------------------------------------------------------------------


def shown(text: str) -> str:
    """Names come from the archive: never print control characters to a terminal."""
    return text if text.isprintable() else ascii(text)


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
        if end < 0 or not note.endswith("\n"):
            raise Bad("not a signed note")
        text, good = note[: end + 1], False
        for line in note[end + 2 : -1].split("\n"):
            found = re.fullmatch("\u2014 (\\S+) ([A-Za-z0-9+/]+={0,2})", line)
            if not found:
                raise Bad("a malformed signature line")
            try:
                blob = base64.b64decode(found.group(2), validate=True)
            except ValueError:  # binascii.Error: bad padding
                raise Bad("a malformed signature line") from None
            if found.group(1) == self.name and blob[:4] == self.id:
                try:
                    self.public.verify(blob[4:], text.encode())
                except Exception:  # InvalidSignature, or not 64 bytes
                    raise Bad("a signature by the ledger key does not verify") from None
                good = True
        if not good:
            raise Bad("not signed by the ledger key you gave")
        return text


def checkpoint_body(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[1]):
        raise Bad("not a checkpoint")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise Bad("the checkpoint root is not base64") from None
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
    try:
        if at == 2:
            base64.b64decode(lines[1].removeprefix("extra "), validate=True)
        proof = [base64.b64decode(line, validate=True) for line in lines[at + 1 :]]
    except ValueError:
        raise Bad("a proof hash is not base64") from None
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


# --- the archive: a gzip tar read with every read bounded -----------------------------------
# tarfile would read a PAX or GNU long-name header whole, whatever size it declares, before
# any check could refuse it; so the headers are read here, at most MAX_META bytes each.


class Archive:
    def __init__(self, raw: IO[bytes]) -> None:
        self.gz = gzip.GzipFile(fileobj=raw, mode="rb")

    def read(self, size: int) -> bytes:
        data = self.gz.read(size)
        if len(data) != size:
            raise Bad("the archive ends inside a member")
        self.gz.read(-size % 512)  # padding to the block
        return data

    def skip(self, size: int) -> None:
        left = size + -size % 512
        while left:
            chunk = self.gz.read(min(left, 1 << 16))
            if not chunk:
                raise Bad("the archive ends inside a member")
            left -= len(chunk)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """(name, size) of each regular file; the caller reads or skips its data."""
        pax: dict[str, str] = {}
        long_name: str | None = None
        while True:
            block = self.gz.read(512)
            if not block or block == bytes(512):
                return
            if len(block) != 512:
                raise Bad("the archive ends inside a header")
            if int(_octal(block[148:156]) or 0) not in (
                sum(block[:148]) + 256 + sum(block[156:]),
                sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 256,
            ):
                raise Bad("a header's checksum is wrong")
            kind, size = block[156:157], _size(block[124:136])
            if kind in (b"x", b"g", b"L", b"K"):
                if size > MAX_META:
                    raise Bad(f"a header of {size} bytes, more than the {MAX_META} allowed")
                data = self.read(size)
                if kind == b"x":
                    pax = _pax(data)
                elif kind == b"L":
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
                continue
            name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
            if block[257:262] == b"ustar" and block[345] != 0:
                prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
                name = f"{prefix}/{name}"
            name = pax.get("path", long_name or name)
            if "size" in pax:
                if not re.fullmatch(r"[0-9]{1,20}", pax["size"]):
                    raise Bad("a PAX header's size is not a number")
                size = int(pax["size"])
            pax, long_name = {}, None
            if kind not in (b"0", b"\0"):
                raise Bad(f"{name}: not a regular file under bundle/")
            yield name, size


def _octal(field: bytes) -> int | None:
    text = field.replace(b"\0", b" ").strip()
    if not text:
        return None
    if not re.fullmatch(rb"[0-7]+", text):
        raise Bad("a header field is not an octal number")
    return int(text, 8)


def _size(field: bytes) -> int:
    if field[0] & 0x80:  # base-256, for sizes an octal field cannot hold
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    return _octal(field) or 0


def _pax(data: bytes) -> dict[str, str]:
    out, at = {}, 0
    while at < len(data):
        found = re.match(rb"([1-9][0-9]{0,5}) ", data[at:])
        if not found or at + int(found.group(1)) > len(data):
            raise Bad("a PAX header is malformed")
        record = data[at + found.end() : at + int(found.group(1))]
        key, equals, value = record.partition(b"=")
        if not equals or not record.endswith(b"\n"):
            raise Bad("a PAX header is malformed")
        out[key.decode("utf-8", "replace")] = value[:-1].decode("utf-8", "replace")
        at += int(found.group(1))
    return out


# --- the AWS Nitro judge ---------------------------------------------------------------------
# The same rules, in the same order, as the project's verifier (verifier/cose.py,
# document.py, chain.py, appraisal.py) and its intake, written again here: envelope and
# fields (malformed, oversize), chain (untrusted_root, chain_invalid, expired,
# not_yet_valid), signature (signature_invalid), then every policy violation together.


class Reject(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# cbor2 turns these tags into objects of its own; each is refused, and so is every other tag.
SEMANTIC_TAGS = (
    0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004,
    43000, 55799,
)  # fmt: skip


def _no_tag(*_: Any) -> Any:
    raise ValueError("CBOR tags are not allowed")


def strict_cbor(data: bytes) -> Any:
    """Exactly one CBOR item: no tags, no duplicate map keys, no trailing bytes."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(
            stream, tag_hook=_no_tag, semantic_decoders=dict.fromkeys(SEMANTIC_TAGS, _no_tag),
            max_depth=8, allow_indefinite=True, allow_duplicate_keys=False,
        ).decode()  # fmt: skip
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError,
            MemoryError):  # fmt: skip
        raise Reject("malformed") from None
    if stream.tell() != len(data):
        raise Reject("malformed")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _listed(value: Any) -> list[Any]:
    """A recorded list, or none: a proven entry may still hold anything."""
    return value if isinstance(value, list) else []


def _bytes(value: Any, low: int, high: int) -> bytes:
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        raise Reject("malformed")
    return value


def nitro_document(evidence: bytes) -> tuple[bytes, bytes, dict[str, Any]]:  # noqa: PLR0915
    """(payload, signature, fields) of a COSE_Sign1 Nitro document, every field checked
    (AWS's rules, in the project's order: one long list reads best as one piece)."""
    if len(evidence) > MAX_EVIDENCE:
        raise Reject("oversize")
    if not evidence:
        raise Reject("malformed")
    body = evidence
    if evidence[0] >> 5 == 6:  # a tag: only 18 (COSE_Sign1), in any length of encoding
        info = evidence[0] & 0x1F
        width = 0 if info < 24 else 1 << (info - 24) if info < 28 else -1
        if width < 0 or len(evidence) < 1 + width:
            raise Reject("malformed")
        tag = info if width == 0 else int.from_bytes(evidence[1 : 1 + width], "big")
        if tag != 18:
            raise Reject("malformed")
        body = evidence[1 + width :]
    item = strict_cbor(body)
    if not isinstance(item, list) or len(item) != 4:
        raise Reject("malformed")
    protected, unprotected, payload, signature = item
    if protected != b"\xa1\x01\x38\x22" or unprotected != {} or type(unprotected) is not dict:
        raise Reject("malformed")  # exactly {1: -35} (ES384) and nothing unprotected
    _bytes(payload, 1, 16384)
    _bytes(signature, 96, 96)
    fields = strict_cbor(payload)
    if not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
        raise Reject("malformed")
    mandatory = {"module_id", "digest", "timestamp", "certificate", "cabundle"}
    optional = {"public_key", "user_data", "nonce"}
    pcr_keys = [k for k in ("pcrs", "nitrotpm_pcrs") if k in fields]
    if set(fields) - mandatory - optional - {"pcrs", "nitrotpm_pcrs"} or mandatory - set(fields):
        raise Reject("malformed")
    if len(pcr_keys) != 1:
        raise Reject("malformed")
    module_id, timestamp = fields["module_id"], fields["timestamp"]
    if not isinstance(module_id, str) or not 1 <= len(module_id.encode("utf-8")) <= 256:
        raise Reject("malformed")
    if not isinstance(fields["digest"], str) or fields["digest"] != "SHA384":
        raise Reject("malformed")
    if not _is_int(timestamp) or not 10**12 <= timestamp <= 253_402_300_799_999:
        raise Reject("malformed")  # milliseconds, from 2001 to the end of 9999
    pcrs, limit = fields[pcr_keys[0]], 32 if pcr_keys[0] == "pcrs" else 24
    if not isinstance(pcrs, dict) or not 1 <= len(pcrs) <= limit:
        raise Reject("malformed")
    for index, value in pcrs.items():
        if not _is_int(index) or not 0 <= index < limit:
            raise Reject("malformed")
        _bytes(value, 48, 48)
    _bytes(fields["certificate"], 1, 1024)
    cabundle = fields["cabundle"]
    if not isinstance(cabundle, list) or not 1 <= len(cabundle) <= 10:
        raise Reject("malformed")
    for der in cabundle:
        _bytes(der, 1, 1024)
    for name in optional:  # null means absent; an empty byte string is present and empty
        if fields.get(name) is not None:
            _bytes(fields[name], 0, 1024)
    return payload, signature, fields


def _extension(certificate: x509.Certificate, kind: Any) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _link(parent: x509.Certificate, der: bytes, cas_below: int | None) -> x509.Certificate:
    """One certificate under its parent (AWS's profile); ``cas_below`` None: the signer."""
    try:
        cert = x509.load_der_x509_certificate(der)
        key = None
        if (
            cert.serial_number > 0
            and cert.version is x509.Version.v3
            and cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
        ):
            key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise Reject("chain_invalid")
        if cert.issuer != parent.subject:
            raise Reject("chain_invalid")
        cert.verify_directly_issued_by(parent)
        known = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE}
        if any(e.critical and e.oid not in known for e in cert.extensions):
            raise Reject("chain_invalid")
        basic = _extension(cert, x509.BasicConstraints)
        usage = _extension(cert, x509.KeyUsage)
        if cas_below is not None:
            ok = basic is not None and basic.value.ca and basic.critical
            ok = ok and (basic.value.path_length is None or basic.value.path_length >= cas_below)
            ok = ok and usage is not None and usage.value.key_cert_sign
        else:
            ok = not (basic is not None and basic.value.ca)
            ok = ok and usage is not None and usage.value.digital_signature
        if not ok:
            raise Reject("chain_invalid")
        return cert
    except Reject:
        raise
    except Exception:  # anything a corrupt certificate makes cryptography raise
        raise Reject("chain_invalid") from None


def nitro_chain(
    fields: dict[str, Any], anchor: x509.Certificate, anchor_der: bytes, at: datetime,
    skew: timedelta,
) -> ec.EllipticCurvePublicKey:  # fmt: skip
    """The signing key, once the path root -> cabundle -> certificate holds at ``at``.
    Skew tolerates a certificate not yet valid, never an expired one."""
    cabundle = fields["cabundle"]
    if cabundle[0] != anchor_der:
        raise Reject("untrusted_root")
    limit = _extension(anchor, x509.BasicConstraints)
    limit = limit.value.path_length if limit is not None else None
    if limit is not None and limit < len(cabundle) - 1:
        raise Reject("chain_invalid")
    path = [anchor]
    for position in range(1, len(cabundle)):
        path.append(_link(path[-1], cabundle[position], len(cabundle) - 1 - position))
    path.append(_link(path[-1], fields["certificate"], None))
    for cert in path:
        if cert.not_valid_before_utc - skew > at:
            raise Reject("not_yet_valid")
        if at > cert.not_valid_after_utc:
            raise Reject("expired")
    key = path[-1].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):  # _link checked it: cannot happen
        raise Reject("chain_invalid")
    return key


def nitro_judge(  # noqa: PLR0917 - one caller, read beside its docstring
    evidence: bytes, anchor: x509.Certificate, anchor_der: bytes, policy: dict[str, Any],
    at: datetime, binding: bytes | None,
) -> tuple[str, set[str]]:  # fmt: skip
    """(status, reason codes), as the service judged at ``at``; ``policy`` is what
    :func:`worker_policy` gives; ``binding`` the user_data the result hash requires."""
    payload, signature, fields = nitro_document(evidence)
    signer = nitro_chain(fields, anchor, anchor_der, at, policy["skew"])
    half = len(signature) // 2
    r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    try:
        structure = cbor2.dumps(["Signature1", b"\xa1\x01\x38\x22", b"", payload])
        signer.verify(encode_dss_signature(r, s), structure, ec.ECDSA(hashes.SHA384()))
    except Exception:
        raise Reject("signature_invalid") from None
    codes: set[str] = set()
    enclave = "pcrs" in fields
    pcrs = fields["pcrs"] if enclave else fields["nitrotpm_pcrs"]
    if not enclave:
        codes.add("evidence_kind_mismatch")
    debug = enclave and pcrs.get(0) == bytes(48)
    if debug and not policy["allow_debug"]:
        codes.add("debug_mode")
    images = policy["images"]
    if images is not None and not any(
        all(pcrs.get(i) == value for i, value in image.items()) for image in images
    ):
        codes.add("pcr_mismatch")
    age = at - (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=fields["timestamp"]))
    if age < -policy["skew"]:
        codes.add("document_from_future")
    elif policy["max_age"] is not None and age > policy["max_age"]:
        codes.add("document_too_old")
    if binding is not None:
        if fields.get("user_data") is None:
            codes.add("result_binding_missing")
        elif fields["user_data"] != binding:
            codes.add("result_binding_mismatch")
    if codes:
        return "contraindicated", codes
    return ("warning" if images is None or debug else "affirming"), codes


# the policy of the service's intake when the recorded policy gave the worker no image: it
# judges everything else under an accept-any policy with the default settings
ACCEPT_ANY = {"images": None, "allow_debug": False, "max_age": timedelta(seconds=300),
              "skew": timedelta(seconds=60)}  # fmt: skip


def worker_policy(snapshot: dict[str, Any] | None, worker: Any) -> dict[str, Any] | None:
    """The images ``worker`` may attest and the policy's settings; None if it may attest
    none (``snapshot`` must have passed :func:`policy_problem`)."""
    if snapshot is None or not isinstance(worker, str) or not snapshot["workers"].get(worker):
        return None
    images = {i["name"]: i["pcrs"] for i in snapshot["images"]}
    max_age = snapshot["max_age_seconds"]
    return {
        "images": [
            {int(n): bytes.fromhex(v) for n, v in images[name].items()}
            for name in sorted(set(snapshot["workers"][worker]))
        ],
        "allow_debug": snapshot["allow_debug"],
        "max_age": None if max_age is None else timedelta(seconds=max_age),
        "skew": timedelta(seconds=snapshot["clock_skew_seconds"]),
    }


def judge(  # noqa: PLR0917 - the one entry point, read beside its docstring
    evidence: bytes, anchor: x509.Certificate, anchor_der: bytes, policy: dict[str, Any] | None,
    at: datetime, binding: bytes | None,
) -> tuple[str, set[str]]:  # fmt: skip
    """The one entry point per entry: (status, codes). Today every entry is AWS Nitro
    evidence; another scheme gets its own section and a branch here."""
    extra = set() if policy is not None else {"no_reference_values"}
    try:
        status, codes = nitro_judge(evidence, anchor, anchor_der, policy or ACCEPT_ANY, at, binding)
    except Reject as rejected:
        return "contraindicated", extra | {rejected.code}
    return ("contraindicated" if extra else status), codes | extra


def compare(recorded: Any, recorded_codes: set[str], status: str, codes: set[str]) -> str:
    """agree, explained (rejected only for the nonce), other_reasons, or differ."""
    expected = recorded_codes - SERVICE_STATE
    if status == recorded:
        return "agree" if codes == expected or status != "contraindicated" else "other_reasons"
    if recorded == "contraindicated" and recorded_codes and not expected:
        return "explained"
    return "differ"


def binding_of(text: Any) -> bytes | None:
    """The user_data a recorded result hash requires (None: no result hash recorded)."""
    if not isinstance(text, str):
        return None
    name, colon, digest = text.partition(":")
    sizes = {"sha256": 32, "sha384": 48, "sha512": 64}
    try:
        raw = bytes.fromhex(digest)
    except ValueError:
        raise Bad("the result hash is not hexadecimal") from None
    if not colon or sizes.get(name.lower()) != len(raw):
        raise Bad("not a result hash")
    return b"attestation-ledger:result:v1:" + name.lower().encode() + b":" + raw


def load_anchor(der: bytes) -> x509.Certificate:
    """A trust anchor: a self-signed P-384 CA certificate."""
    try:
        cert = x509.load_der_x509_certificate(der)
        key = cert.public_key()
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        ok = isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
        if ok and basic.value.ca and usage.value.key_cert_sign and cert.issuer == cert.subject:
            cert.verify_directly_issued_by(cert)
            return cert
    except Exception:  # anything cryptography raises for a certificate that is not one
        raise Bad("not a self-signed P-384 CA certificate") from None
    raise Bad("not a self-signed P-384 CA certificate")


# --- the bundle ------------------------------------------------------------------------------


def policy_problem(snapshot: Any) -> str | None:
    """Why a recorded policy cannot be used, or None."""
    try:
        names = {image["name"] for image in snapshot["images"]}
        images_ok = all(
            set(image) == {"name", "pcrs"} and isinstance(image["name"], str) and image["name"]
            and isinstance(image["pcrs"], dict) and image["pcrs"]
            and all(re.fullmatch(r"[0-9]|[12][0-9]|3[01]", index) for index in image["pcrs"])
            and all(isinstance(v, str) and re.fullmatch(r"[0-9a-f]{96}", v)
                    for v in image["pcrs"].values())
            for image in snapshot["images"]
        )  # fmt: skip
        max_age, skew = snapshot["max_age_seconds"], snapshot["clock_skew_seconds"]
        settings_ok = (
            type(snapshot["allow_debug"]) is bool
            and (max_age is None or (_is_int(max_age) and 0 < max_age <= 10**9))
            and _is_int(skew) and 0 <= skew <= 10**9
            and all(isinstance(allowed, list) and all(n in names for n in allowed)
                    for allowed in snapshot["workers"].values())
        )  # fmt: skip
    except (KeyError, TypeError, AttributeError):
        return "not a recorded policy"
    return None if images_ok and settings_ok else "not a recorded policy"


def entry_problem(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None), or (None, why the bytes are not a ledger entry)."""
    try:
        record = json.loads(data.decode("utf-8"), parse_float=_float, parse_constant=_float)
        if not isinstance(record, dict):
            return None, "entry: must be a JSON object"
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        # a lone surrogate (JSON can carry one, UTF-8 cannot) is kept as its \uXXXX escape
        canonical = SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", canonical)
        if canonical.encode("utf-8") != data:
            return None, "entry: not in canonical form"
    except (ValueError, RecursionError, UnicodeError) as exc:
        return None, f"entry: not JSON ({str(exc)[:80]})"
    digest = record.get("evidence_sha256")
    if digest is not None and not (isinstance(digest, str) and HEX64.fullmatch(digest)):
        return None, "entry: evidence_sha256 must be 64 lowercase hex digits"
    return record, None


def _float(text: str) -> Any:
    raise ValueError(f"floating-point numbers are not allowed ({text[:20]})")


def manifest_problem(info: Any) -> str | None:
    if not isinstance(info, dict):
        return "not a JSON object"
    checks = (
        isinstance(info.get("files"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in info["files"].items()),
        isinstance(info.get("entries"), dict),
        isinstance(info.get("policies"), list) and all(_is_int(i) for i in info["policies"]),
        isinstance(info.get("trust_anchors"), list)
        and all(isinstance(a, str) for a in info["trust_anchors"]),
    )
    return None if all(checks) else "its fields are not of the bundle format"


def consistency_of(raw: bytes) -> tuple[int, int, list[bytes], str]:
    """(from_size, to_size, hashes, from_checkpoint) of consistency.json, every field typed."""
    try:
        proof = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError, UnicodeError):
        raise Bad("not JSON") from None
    if not isinstance(proof, dict) or set(proof) != {
        "from_size", "to_size", "hashes", "from_checkpoint"
    }:  # fmt: skip
        raise Bad("not an object with from_size, to_size, hashes and from_checkpoint")
    sizes, hashes_ = (proof["from_size"], proof["to_size"]), proof["hashes"]
    if not all(_is_int(n) and 0 <= n < 1 << 63 for n in sizes):
        raise Bad("its sizes are not tree sizes")
    if not isinstance(hashes_, list) or len(hashes_) > 128:
        raise Bad("its hashes are not a list of at most 128")
    if not all(isinstance(h, str) and HEX64.fullmatch(h) for h in hashes_):
        raise Bad("a hash is not 64 lowercase hex digits")
    if not isinstance(proof["from_checkpoint"], str):
        raise Bad("from_checkpoint is not a signed checkpoint")
    return sizes[0], sizes[1], [bytes.fromhex(h) for h in hashes_], proof["from_checkpoint"]


class Checker:
    def __init__(self, key: Key, trust_root: bytes | None) -> None:
        self.key, self.trust_root = key, trust_root
        self.failures: list[tuple[str, str]] = []
        self.notes: list[tuple[str, str]] = []
        self.header: dict[str, bytes] = {}
        self.manifest: dict[str, Any] | None = None
        self.note = ""
        self.size, self.root = 0, b""
        self.anchors: dict[str, tuple[x509.Certificate, bytes]] = {}
        self.policies: dict[int, dict[str, Any]] = {}
        self.pending_policies: dict[int, dict[str, bytes]] = {}
        self.current: int | None = None
        self.files: dict[str, bytes] = {}
        self.last, self.count, self.digest = -1, 0, hashlib.sha256()
        self.verdicts: dict[str, int] = {}
        self.rejudged = 0

    def fail(self, item: str, message: str) -> None:
        self.failures.append((item, message))

    def member(self, name: str, data: bytes) -> None:
        if name in (*HEADER, "consistency.json"):
            if self.manifest is not None:
                self.fail(name, "comes after the entries began")
            self.header[name] = data
            return
        if name in ("report.html", "verify_bundle.py"):
            self.header[name] = data
            return
        if self.manifest is None:
            self.check_header()
        if found := TRUST.fullmatch(name):
            self.add_anchor(name, found.group(1), data)
        elif found := POLICY.fullmatch(name):
            index = int(found.group(1))
            self.pending_policies.setdefault(index, {})[found.group(2)] = data
            if len(self.pending_policies[index]) == 2:
                self.add_policy(index)
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
        try:
            info = json.loads(manifest)
        except (ValueError, RecursionError) as exc:
            raise Bad(f"manifest.sig: {exc}") from None
        if problem := manifest_problem(info):
            raise Bad(f"manifest.json: {problem}")
        self.manifest = info
        if info.get("format") != FORMAT:
            raise Bad(f"manifest.json: format {str(info.get('format'))[:40]!r}, expected {FORMAT}")
        for name, digest in info["files"].items():
            if name not in self.header:
                self.fail(name, "missing (the manifest names it)")
            elif hashlib.sha256(self.header[name]).hexdigest() != digest:
                self.fail(name, "changed: its SHA-256 is not the one the signed manifest names")
        if info.get("checkpoint") != {"tree_size": self.size, "root_hash": self.root.hex()} or (
            info.get("origin") != origin
        ):
            self.fail("manifest.json", "names another checkpoint than checkpoint.txt")
        raw = self.header.get("consistency.json")
        if raw is None:
            if info.get("consistency_from") is not None:
                self.fail("consistency.json", "the manifest names one, the bundle has none")
            return
        try:
            size1, size2, proof, held = consistency_of(raw)
            _, held_size, held_root = checkpoint_body(self.key.open(held))
            if size2 != self.size or size1 != held_size:
                raise Bad("its sizes are not those of the two checkpoints")
            check_consistency(held_size, self.size, proof, held_root, self.root)
        except Bad as exc:
            self.fail("consistency.json", f"does not prove consistency: {exc}")

    def add_anchor(self, name: str, fingerprint: str, data: bytes) -> None:
        try:
            der = ssl.PEM_cert_to_DER_cert(data.decode("ascii"))
        except (ValueError, UnicodeError):
            self.fail(name, "not a PEM certificate")
            return
        if hashlib.sha256(der).hexdigest() != fingerprint:
            self.fail(name, "its SHA-256 is not the one it is named by")
        elif self.trust_root is not None and der != self.trust_root:
            self.fail(name, "is not the trust root you gave")
        elif fingerprint not in (self.manifest or {}).get("trust_anchors", []):
            self.fail(name, "not named by the manifest")
        else:
            try:
                self.anchors[fingerprint] = (load_anchor(der), der)
            except Bad as exc:
                self.fail(name, str(exc))

    def add_policy(self, index: int) -> None:
        files = self.pending_policies.pop(index)
        item = f"policies/{index:012d}.json"
        if not self.proven(item, index, files["json"], files["tlog-proof"]):
            return
        record, problem = entry_problem(files["json"])
        if record is not None and record.get("kind") != "policy":
            problem = "not a policy entry"
        elif record is not None:
            problem = policy_problem(record.get("policy"))
        if problem or record is None:
            self.fail(item, str(problem))
        else:
            self.policies[index] = record["policy"]

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
        record, problem = entry_problem(data)
        if record is None:
            self.fail(f"{item}/entry.json", str(problem))
            return
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
        """Judge the evidence again at the instant the service did, and compare."""
        revision, snapshot = record.get("policy_revision"), None
        if revision is not None:  # None: no policy existed yet, so the worker had no image
            snapshot = self.policies.get(revision) if type(revision) is int else None
            if snapshot is None:
                self.fail(item, f"its policy revision {str(revision)[:40]} is not in policies/")
                return
        policy = worker_policy(snapshot, record.get("worker"))
        text = record.get("verified_at")
        try:
            if not isinstance(text, str) or not INSTANT.fullmatch(text):
                raise Bad(f"verified_at {str(text)[:40]!r} is not an instant the service writes")
            at = datetime.fromisoformat(text)
            binding = binding_of(record.get("result_hash"))
        except (Bad, ValueError) as exc:
            self.fail(f"{item}/entry.json", str(exc))
            return
        recorded = {
            str(r.get("code")) for r in _listed(record.get("reasons")) if isinstance(r, dict)
        }
        verdict, named = record.get("verdict"), record.get("trust_anchor_sha256")
        was = f"recorded {verdict} ({', '.join(sorted(recorded)) or 'no reasons'})"
        self.rejudged += 1
        if named is None:  # recorded before entries named their anchor whatever the outcome
            if verdict != "contraindicated":
                self.fail(item, f"recorded {verdict} without naming a trust anchor")
                return
            for fingerprint, (anchor, der) in sorted(self.anchors.items()):
                status, codes = judge(evidence, anchor, der, policy, at, binding)
                if compare(verdict, recorded, status, codes) == "differ":
                    self.fail(item, f"names no trust anchor; re-verified as {status} against "
                              f"{fingerprint}, recorded contraindicated")  # fmt: skip
                    return
            self.notes.append((item, "names no trust anchor (recorded before issue #10); no "
                               "anchor in trust/ makes its evidence pass, so its rejection "
                               "stands"))  # fmt: skip
            return
        if str(named) not in self.anchors:
            self.fail(item, f"its trust anchor {str(named)[:70]} is not in trust/")
            return
        anchor, der = self.anchors[str(named)]
        status, codes = judge(evidence, anchor, der, policy, at, binding)
        judged = f"re-verified as {status} ({', '.join(sorted(codes)) or 'no reasons'})"
        outcome = compare(verdict, recorded, status, codes)
        if outcome == "differ":
            self.fail(item, f"{judged}, {was}")
        elif outcome == "other_reasons":
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
            i for i in set(info.get("policies") or [])
            if i not in self.policies and f"policies/{i:012d}.json" not in failed
        )  # fmt: skip
        if missing:
            self.fail("policies/", f"revisions {missing} named by the manifest are missing")
        anchors = {str(a) for a in info.get("trust_anchors") or []} - set(self.anchors)
        if anchors and self.trust_root is None:
            self.fail("trust/", f"anchors {sorted(anchors)} are missing")
        entries = info.get("entries") or {}
        if self.count != entries.get("count") or type(entries.get("count")) is not int:
            self.fail(
                "manifest.json",
                f"names {str(entries.get('count'))[:20]} entries, the bundle holds {self.count}",
            )
        elif self.digest.hexdigest() != entries.get("leaf_hashes_sha256"):
            self.fail(
                "manifest.json", "the entries are not the ones selected (leaf digest differs)"
            )


def check(path: str | IO[bytes], key: Key, trust_root: bytes | None = None) -> Checker:
    checker = Checker(key, trust_root)
    seen: set[str] = set()
    try:
        with open(path, "rb") if isinstance(path, str) else path as raw:
            archive = Archive(raw)
            for full, size in archive:
                name = full.removeprefix("bundle/")
                if not full.startswith("bundle/"):
                    raise Bad(f"{shown(full)[:200]}: not a regular file under bundle/")
                limit = MAX_EVIDENCE_MEMBER if name.endswith(".cbor") else MAX_MEMBER
                if name in seen or size > limit:
                    why = f"declares {size} bytes, more than the {limit} allowed"
                    checker.fail(name, "appears twice in the archive" if name in seen else why)
                    archive.skip(size)
                    continue
                seen.add(name)
                checker.member(name, archive.read(size))
        checker.finish()
    except Bad as exc:
        checker.fail("bundle", str(exc))
    except (OSError, EOFError, zlib.error) as exc:
        checker.fail("bundle", f"not a readable gzip tar archive: {exc}")
    return checker


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("archive")
    parser.add_argument("--log-key", required=True, help="the ledger's verifier key (or a file)")
    parser.add_argument("--trust-root", help="require documents to chain to this PEM root")
    args = parser.parse_args()
    try:
        cbor2.CBORDecoder(io.BytesIO(b""), allow_duplicate_keys=False, semantic_decoders={})
    except TypeError:
        print("verify_bundle: needs cbor2 6.1 or newer (pip install 'cbor2>=6.1')", file=sys.stderr)
        return 2
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
    except (Bad, ValueError, OSError) as exc:
        print(f"verify_bundle: {exc}", file=sys.stderr)
        return 2
    checker = check(args.archive, key, root)
    print(f"entries     {checker.count} proven; {checker.rejudged} attestations re-verified")
    for verdict, n in sorted(checker.verdicts.items()):
        print(f"  {shown(verdict):<16}{n}")
    for fingerprint in checker.anchors:
        aws = "" if fingerprint == AWS_ROOT_SHA256 else " (NOT the AWS root)"
        print(f"trust       {fingerprint}{aws}")
    for item, message in checker.notes[:20]:
        print(f"  note {shown(item)}: {shown(message)}")
    if not checker.failures:
        print("result      every check passed")
        return 0
    print(f"result      {len(checker.failures)} FAILED")
    for item, message in checker.failures[:50]:
        print(f"  FAIL {shown(item)}: {shown(message)}")
    if len(checker.failures) > 50:
        print(f"  ... and {len(checker.failures) - 50} more")
    return 1


if __name__ == "__main__":
    sys.exit(main())
