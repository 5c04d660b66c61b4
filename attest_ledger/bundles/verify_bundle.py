#!/usr/bin/env python3
"""Check an attestation-ledger proof bundle with nothing but Python 3.11+, cryptography and
cbor2 (6.1 or newer): no database, no network, not even the attestation-ledger project.

    python3 verify_bundle.py BUNDLE.tar.gz --log-key 'name+keyid+base64key' [--trust-root PEM ...]

It checks, against the ledger key YOU give: the checkpoint signature; the signed manifest
(the count of entries and the digest of their leaf hashes, so none was dropped or added, and
the digests of README.txt, report.html and this file); every entry's, policy's and TPM
enrolment's inclusion proof (RFC 9162); the consistency proof, if any; every evidence file
and endorsement against the SHA-256 it is named by. And it judges every attestation again at
the instant the service judged it (the entry's verified_at), against the trust anchors the
entry names and under the policy revision it names:

- an AWS Nitro document: COSE_Sign1 envelope and ES384 signature, every field, the
  certificate chain and its validity windows, PCRs, debug mode, the document's age;
- an AMD SEV-SNP report: its layout, the VCEK or VLEK that signed it (given with it), the
  path from AMD's root key (ARK) through the ASK or ASVK and any CRL given, the key's TCB
  and chip against the report, the ECDSA P-384 signature, then the reference images
  (measurement, host_data, key digests, family and image ids), the minimum TCB, debug, SMT,
  migration agent and VMPL;
- an Intel TDX or SGX quote (DCAP): its layout, by its length fields; the PCK chain it
  carries to the Intel SGX root its entry names, and the PCK certificate's SGX extension;
  the QE report's signature and its binding of the attestation key; the quote's signature;
  the collateral its entry names (TCB info and QE identity, each signed over its exact text
  by a TCB Signing certificate of that root, current at that instant; the PCK and Root CA
  CRLs); the TCB level, TDX module and QE identity it reaches, so its TCB status and
  advisories; then the reference images (MRTD, RTMRs, owner values; MRENCLAVE, MRSIGNER,
  ISV product id and SVN), debug, XFAM, the minimum TEE_TCB_SVN, and the policy's tiers for
  TCB statuses and advisories;
- a TPM 2.0 quote: its container; TPMS_ATTEST and TPMT_SIGNATURE, by their own layout; the
  attestation key's (AK's) signature over the quote with the hash it names (RSASSA, RSAPSS,
  ECDSA); the pcrDigest, from the PCRs sent, with the AK's name algorithm; the PC Client
  event log and the IMA log, replayed against the quoted PCRs; then who vouches for the AK:
  an AWS NitroTPM document (the Nitro checks above, at the document's time, and its
  public_key, nonce and PCRs against the quote), a Google AK certificate chain to the root
  the entry names, or the enrolment entries of the AK the bundle carries (each proven in
  the log: enrolled, and not revoked, at that instant); then the reference images (PCRs
  and expected events), the event log required, the AK paths allowed, all-reset PCRs;
- the devices of a composite entry (NVIDIA GPUs and NVSwitches judged beside its CPU
  evidence, each SPDM report and its endorsements in endorsements/): each report against
  the device root its chain ends in and the RIM root its entry names, under the worker's
  nvidia-gpu policy, with the nonce it must carry derived again (gpu_nonce: the entry's
  challenge, its result and the device's position); its fields by their lengths; the
  device chain (five P-384 certificates, leaf first, to the NVIDIA root by its bytes); the
  report's raw r || s signature; the leaf's FWID against the report's; each RIM's XML
  signature (Canonical XML 1.1, written here on expat) and signer chain; every RIM
  measurement, versions, architecture, feature flag and nonce against the NvidiaPolicy;
  then the GPUs and NVSwitches the policy requires, and the composed verdict (the worst of
  the CPU's and every device's);
- for all, the result-hash binding. Only the CPU evidence's challenge (the nonce) is not
  judged again: it was the service's state.

And every entry's EAR (the verdict as a JWT, draft-ietf-rats-ear): its ES256 signature by
the key in ear-key.jwk (whose thumbprint the signed manifest names), or by the key you give
as --ear-key (a JWKS, a JWK or a PEM public key), and that it says what the entry says: its
status, evidence SHA-256, result hash, worker, policy and instant, and a submod per device
with its status, evidence SHA-256 and policy.

Exit status 0 if every check passed, 1 otherwise, naming each failing item; 2 for a usage
error. This file is deliberately self-contained and short enough to read in one sitting. Its
sections: output, signed notes and proofs, the archive, the AWS Nitro judge, the AMD SEV-SNP
judge, the Intel DCAP judge, the TPM 2.0 quote judge, the NVIDIA GPU judge, what the judges
share, the bundle.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import itertools
import json
import re
import ssl
import struct
import sys
import warnings
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any
from xml.parsers import expat

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_public_key,
)
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

FORMAT = "attestation-ledger-bundle/v1"
MANIFEST_NOTE = "attestation-ledger/bundle-manifest/v1"
AWS_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
INTEL_ROOT_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
P_CURVES = ("secp384r1", "secp256r1")  # a root's curve: AWS's, Intel's
#: Reasons that were the service's state at ingestion (its challenges): not judged again.
SERVICE_STATE = {
    "nonce_unknown", "nonce_replayed", "nonce_expired", "nonce_missing", "nonce_mismatch",
    "nonce_already_used",
}  # fmt: skip
HEADER = ("README.txt", "manifest.json", "manifest.sig", "log-key.txt", "checkpoint.txt")
ENTRY = re.compile(r"entries/([0-9]{12})/(entry\.json|evidence\.(?:cbor|bin)|proof\.tlog-proof)")
POLICY = re.compile(r"policies/([0-9]{12})\.(json|tlog-proof)")
TRUST = re.compile(r"trust/([0-9a-f]{64})\.pem")
ENDORSEMENT = re.compile(r"endorsements/([0-9a-f]{64})\.der")
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


# --- the EAR: a compact JWS, ES256, by a P-256 JWK (RFC 7515, 7517, 7518, 7638) -----------

B64URL = re.compile(r"[A-Za-z0-9_-]*")
MAX_EAR = 1 << 16


def b64url(text: str) -> bytes:
    if not B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise Bad("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_of(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def ear_keys(data: bytes) -> dict[str, ec.EllipticCurvePublicKey]:
    """kid (the RFC 7638 thumbprint) -> key, of a JWKS, a JWK or a PEM public key."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            public = load_pem_public_key(data)
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise Bad("the EAR key is not an ECDSA key")
            if public.curve.name != "secp256r1":
                raise Bad("an EAR key must be P-256")
            numbers = public.public_numbers()
            x, y = (_b64url_of(n.to_bytes(32, "big")) for n in (numbers.x, numbers.y))
            found: Any = [{"kty": "EC", "crv": "P-256", "x": x, "y": y}]
        else:
            found = json.loads(data)
            found = found.get("keys") if isinstance(found, dict) and "keys" in found else [found]
    except (ValueError, RecursionError, UnicodeError) as exc:
        raise Bad(f"not a PEM public key, a JWK or a JWKS ({str(exc)[:60]})") from None
    if not isinstance(found, list) or not found:
        raise Bad("not a JWK or a JWKS with keys")
    out = {}
    for jwk in found:
        if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise Bad("an EAR key must be an EC P-256 JWK")
        coordinates = jwk.get("x"), jwk.get("y")
        if not all(isinstance(c, str) for c in coordinates):
            raise Bad("an EAR key must be an EC P-256 JWK")
        x, y = str(coordinates[0]), str(coordinates[1])
        raw_x, raw_y = b64url(x), b64url(y)
        if len(raw_x) != 32 or len(raw_y) != 32:
            raise Bad("an EAR key's coordinates are not 32 bytes")
        try:
            key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(raw_x, "big"), int.from_bytes(raw_y, "big"), ec.SECP256R1()
            ).public_key()
        except ValueError:
            raise Bad("an EAR key is not a point of P-256") from None
        members = json.dumps({"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"),
                             sort_keys=True)  # fmt: skip
        out[_b64url_of(hashlib.sha256(members.encode()).digest())] = key
    return out


def ear_claims(token: Any, keys: dict[str, ec.EllipticCurvePublicKey]) -> dict[str, Any]:
    """The claims of ``token`` if the key its kid names among ``keys`` signed it (ES256)."""
    if not isinstance(token, str) or len(token) > MAX_EAR or token.count(".") != 2:
        raise Bad("not a compact JWS")
    head, body, signature = token.split(".")
    try:
        header = json.loads(b64url(head))
        payload, raw = b64url(body), b64url(signature)
    except (Bad, ValueError, RecursionError):
        raise Bad("not a compact JWS") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise Bad("its header does not name ES256")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise Bad(f"signed by a key not given (kid {str(header.get('kid'))[:60]})")
    if len(raw) != 64:
        raise Bad("its signature does not verify")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Bad("its signature does not verify") from None
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError, UnicodeError):
        raise Bad("its payload is not JSON") from None
    if not isinstance(claims, dict):
        raise Bad("its payload is not a JSON object")
    return claims


def ear_differs(claims: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """What the EAR says otherwise than the entry carrying it: exactly a cpu0 submod and one
    per device the entry names (by its submod); the status, the CPU's status (a composite
    entry's cpu_verdict), each device's status, evidence SHA-256 and policy."""
    submods = claims.get("submods")
    cpu = submods.get("cpu0") if isinstance(submods, dict) else None
    if not isinstance(submods, dict) or not isinstance(cpu, dict):
        return ["it has no cpu0 submod"]
    listed = record.get("devices")
    devices = {
        str(d.get("submod")): d for d in (listed if isinstance(listed, list) else [])
        if isinstance(d, dict)
    }  # fmt: skip
    named, expected = sorted(str(n) for n in submods), sorted(["cpu0", *devices])
    if named != expected:
        return [f"its submods are {', '.join(named)[:120]}, the entry's "
                f"{', '.join(expected)[:120]}"]  # fmt: skip
    said = [
        ("status", claims.get("ear.status"), record.get("verdict")),
        ("cpu0 status", cpu.get("ear.status"), record.get("cpu_verdict", record.get("verdict"))),
        ("evidence SHA-256", cpu.get("attestation-ledger.evidence-sha256"),
         record.get("evidence_sha256")),
        ("result hash", claims.get("attestation-ledger.result-hash"), record.get("result_hash")),
        ("worker", claims.get("attestation-ledger.worker"), record.get("worker")),
        ("policy", cpu.get("ear.appraisal-policy-id"), record.get("policy")),
        ("verified_at", claims.get("attestation-ledger.verified-at"), record.get("verified_at")),
    ]  # fmt: skip
    for name, device in devices.items():
        sub = submods[name] if isinstance(submods[name], dict) else {}
        said += [
            (f"{name} status", sub.get("ear.status"), device.get("verdict")),
            (f"{name} evidence SHA-256", sub.get("attestation-ledger.evidence-sha256"),
             device.get("evidence_sha256")),
            (f"{name} policy", sub.get("ear.appraisal-policy-id"), device.get("policy")),
        ]  # fmt: skip
    return [f"its {name} is {str(value)[:80]!r}, the entry's {str(recorded)[:80]!r}"
            for name, value, recorded in said if value != recorded]  # fmt: skip


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


# --- the AMD SEV-SNP judge -------------------------------------------------------------------
# The same rules, in the same order, as the project's verifier (verifier/snp/) and its
# intake, written again here from AMD's specifications (ABI 56860, VCEK/KDS 57230): the
# 1184-byte report (oversize, malformed, unsupported), the key that signed it and its product
# line (endorsement_missing, endorsement_mismatch, unsupported), the path ARK -> ASK/ASVK ->
# VCEK/VLEK and any CRL (untrusted_root, chain_invalid, not_yet_valid, expired, revoked), the
# key bound to the report, its signature (signature_invalid), then every policy violation.

SNP = "amd-sev-snp"
REPORT_BYTES, SIGNED_BYTES = 0x4A0, 0x2A0
AMD_OID = "1.3.6.1.4.1.3704.1"
AMD_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)
#: AMD's real roots by product line (SHA-256 of the DER), and the ASK and ASVK each signed:
#: a bundle ships those (endorsements/) for every one of these ARKs in trust/.
AMD_ARKS = {
    "Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "Turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}
AMD_INTERMEDIATES = {
    ("Milan", "ask"): "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
    ("Milan", "asvk"): "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
    ("Genoa", "ask"): "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
    ("Genoa", "asvk"): "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
    ("Turin", "ask"): "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
    ("Turin", "asvk"): "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
}
ARK_NAME = re.compile(r"ARK-(Milan|Genoa|Turin)(?: \(simulated\))?")
ENDORSEMENT_KINDS = ("vcek", "vlek", "ask", "asvk", "ark", "crl")
MAX_ENDORSEMENTS, MAX_ENDORSEMENT_BYTES = 8, 64 * 1024
#: Where each TCB component sits in a TCB_VERSION's eight bytes; the other bytes are reserved.
TCB_LAYOUT = {
    "Milan": {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7},
    "Genoa": {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7},
    "Turin": {"fmc": 0, "bootloader": 1, "tee": 2, "snp": 3, "microcode": 7},
}
SPL_OIDS = {"3.1": "bootloader", "3.2": "tee", "3.3": "snp", "3.8": "microcode", "3.9": "fmc"}
#: Offset and size of each launch value a reference image may pin, in the report.
IMAGE_FIELDS = {
    "measurement": (0x90, 48), "host_data": (0xC0, 32), "id_key_digest": (0xE0, 48),
    "author_key_digest": (0x110, 48), "family_id": (0x10, 16), "image_id": (0x20, 16),
}  # fmt: skip
#: The codes of the image fields that differ.
IMAGE_CODES = {
    "measurement": "measurement_mismatch", "host_data": "host_data_mismatch",
    "id_key_digest": "id_key_mismatch", "author_key_digest": "author_key_mismatch",
    "family_id": "family_id_mismatch", "image_id": "image_id_mismatch",
}  # fmt: skip


def snp_report(data: bytes) -> dict[str, Any]:
    """The fields of a report, its layout checked: every reserved byte and bit zero."""
    if len(data) != REPORT_BYTES:
        raise Reject("oversize" if len(data) > REPORT_BYTES else "malformed")
    version, _, guest = struct.unpack_from("<IIQ", data, 0x00)
    vmpl, algorithm = struct.unpack_from("<II", data, 0x30)
    (flags,) = struct.unpack_from("<I", data, 0x48)
    if version not in (2, 3, 5) or algorithm != 1:  # 1: ECDSA P-384 with SHA-384
        raise Reject("unsupported")
    key = flags >> 2 & 7  # 0 VCEK, 1 VLEK, 7 none
    reserved = [data[0x4C:0x50], data[0x18B:0x1A0], data[0x1EB:0x1EC], data[0x1EF:0x1F0],
                data[0x208:SIGNED_BYTES], data[0x2D0:0x2E8], data[0x318:]]  # fmt: skip
    if version < 3:
        reserved.append(data[0x188:0x18B])  # CPUID comes with version 3
    if version < 5:
        reserved.append(data[0x1F8:0x208])  # the mitigation vectors with version 5
    if (
        flags >> 5 or key not in (0, 1, 7) or (flags & 2 and key == 0)  # mask_chip_key, VCEK
        or not (vmpl <= 3 or vmpl == 0xFFFFFFFF)  # a guest's VMPL, or the host's request
        or not guest >> 17 & 1 or guest >> 26  # bit 17 is always one, 26..63 reserved
        or any(any(part) for part in reserved)
    ):  # fmt: skip
        raise Reject("malformed")
    return {
        "raw": data, "version": version, "guest_policy": guest, "vmpl": vmpl,
        "key": {0: "vcek", 1: "vlek"}.get(key), "author_key_en": bool(flags & 1),
        "report_data": data[0x50:0x90], "chip_id": data[0x1A0:0x1E0],
        "cpuid": (data[0x188], data[0x189]) if version >= 3 else None,
        "tcbs": [data[at : at + 8] for at in (0x180, 0x38, 0x1E0, 0x1F0)],  # reported first
        "r": int.from_bytes(data[0x2A0:0x2E8], "little"),
        "s": int.from_bytes(data[0x2E8:0x330], "little"),
    }  # fmt: skip


def certificate(der: bytes, *, serial_zero: bool = False) -> x509.Certificate:
    """A DER certificate, its names read. Whatever cryptography warns about it is refused (a
    name attribute of the wrong length, a serial number of 0), save a serial of 0 where
    ``serial_zero`` allows it: AMD issues every VCEK and VLEK so."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if serial_zero:
            warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't")
        cert = x509.load_der_x509_certificate(der)
        _ = cert.serial_number, cert.subject, cert.issuer
        return cert


def _der(data: bytes, tag: int) -> bytes:
    """The content of the one minimal DER TLV with ``tag`` that ``data`` is exactly."""
    if len(data) < 2 or data[0] != tag:
        raise Reject("chain_invalid")
    length, at = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or len(data) < 2 + count:
            raise Reject("chain_invalid")
        length, at = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
        if length < 0x80 or (count == 2 and length < 0x100):
            raise Reject("chain_invalid")
    if len(data) != at + length:
        raise Reject("chain_invalid")
    return data[at:]


def _der_integer(data: bytes) -> int:
    content = _der(data, 0x02)
    if not 1 <= len(content) <= 8 or (
        len(content) > 1
        and ((content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80))
    ):  # longer than the value needs
        raise Reject("chain_invalid")
    return int.from_bytes(content, "big", signed=True)


def _der_text(data: bytes) -> str:
    content = _der(data, 0x16)  # IA5String, printable, at most 256 characters
    if len(content) > 256 or any(not 0x20 <= byte <= 0x7E for byte in content):
        raise Reject("chain_invalid")
    return content.decode("ascii")


def snp_key(der: bytes, declared: str) -> dict[str, Any]:
    """The VCEK or VLEK given as ``declared``: a P-384 key signed with RSASSA-PSS SHA-384,
    and its AMD extensions (productName, SPLs, a VCEK's hwID, a VLEK's cspID)."""
    try:
        cert = certificate(der, serial_zero=True)
        key = None
        if (
            cert.version is x509.Version.v3
            and cert.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
            and isinstance(cert.signature_hash_algorithm, hashes.SHA384)
        ):
            key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise Reject("chain_invalid")
        amd: dict[str, bytes] = {}
        for extension in cert.extensions:
            if extension.critical:
                raise Reject("chain_invalid")
            oid = extension.oid.dotted_string
            if isinstance(extension.value, x509.UnrecognizedExtension) and oid.startswith(
                AMD_OID + "."
            ):
                amd[oid.removeprefix(AMD_OID + ".")] = extension.value.value
        if "1" in amd:
            _der_integer(amd["1"])  # structVersion: read, not used
        name = _der_text(amd["2"]) if "2" in amd else None
        spls = {component: _der_integer(amd[arc]) for arc, component in SPL_OIDS.items()
                if arc in amd}  # fmt: skip
        if any(not 0 <= spl <= 0xFF for spl in spls.values()):
            raise Reject("chain_invalid")
        if "5" in amd:
            _der_text(amd["5"])  # cspID: the cloud provider of a VLEK
        if ("4" in amd) == ("5" in amd) or ("vcek" if "4" in amd else "vlek") != declared:
            raise Reject("endorsement_mismatch")  # both or neither, or the other kind
        hwid = amd.get("4")
        if hwid is not None:  # raw, or wrapped in a DER OCTET STRING: both are issued
            if len(hwid) - 2 in (8, 64) and hwid[0] == 0x04 and hwid[1] == len(hwid) - 2:
                hwid = hwid[2:]
            elif len(hwid) not in (8, 64):
                raise Reject("chain_invalid")
        _ = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        _ = cert.not_valid_before_utc, cert.not_valid_after_utc
        return {"cert": cert, "key": key, "name": name, "spls": spls, "hwid": hwid}
    except Reject:
        raise
    except Exception:  # anything a corrupt certificate makes cryptography raise or warn
        raise Reject("chain_invalid") from None


def snp_product(report: dict[str, Any], vek: dict[str, Any]) -> str:
    """The report's product line: from CPUID (version 3 on), which the key's productName must
    agree with; else from the productName."""
    named: str | None = None
    if vek["name"] is not None:
        named = str(vek["name"]).split("-", 1)[0]
        if named not in TCB_LAYOUT:
            raise Reject("unsupported")
    if report["cpuid"] is None:
        if named is None:
            raise Reject("endorsement_mismatch")
        return named
    family, model = report["cpuid"]
    product = None
    if family == 0x19:
        product = "Milan" if model <= 0x0F else "Genoa" if model >> 4 in (0x1, 0xA) else None
    elif family == 0x1A and model <= 0x1F:
        product = "Turin"
    if product is None:
        raise Reject("unsupported")
    if named is not None and named != product:
        raise Reject("endorsement_mismatch")
    return product


def amd_signed(signature: bytes, data: bytes, key: Any) -> bool:
    """Whether ``key`` made ``signature``: RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48."""
    try:
        key.verify(signature, data, AMD_PSS, hashes.SHA384())
    except Exception:  # InvalidSignature, or a key that is not RSA
        return False
    return True


def _amd_ca(cert: x509.Certificate, key: Any) -> bool:
    """AMD's profile for an ASK or ASVK: v3, RSASSA-PSS SHA-384, RSA of 2048 bits or more, a
    critical basicConstraints cA=true and keyUsage keyCertSign, no other critical extension."""
    known = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE}
    basic, usage = _extension(cert, x509.BasicConstraints), _extension(cert, x509.KeyUsage)
    return (
        cert.version is x509.Version.v3
        and cert.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
        and isinstance(cert.signature_hash_algorithm, hashes.SHA384)
        and isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
        and not any(e.critical and e.oid not in known for e in cert.extensions)
        and basic is not None and basic.value.ca and basic.critical
        and usage is not None and usage.value.key_cert_sign
    )  # fmt: skip


Anchor = tuple[x509.Certificate, bytes]


def snp_store(anchors: list[Anchor], shipped: dict[str, bytes]) -> dict[str, Any]:
    """The ARKs by product line (their names say which), and the shipped ASK and ASVK of
    the lines one of AMD's real ARKs is among them for."""
    arks: dict[str, list[Anchor]] = {}
    for cert, der in anchors:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        found = ARK_NAME.fullmatch(str(names[0].value)) if len(names) == 1 else None
        if found:
            arks.setdefault(found.group(1), []).append((cert, der))
    pinned = {
        product for product, line in arks.items()
        if any(hashlib.sha256(der).hexdigest() == AMD_ARKS[product] for _, der in line)
    }  # fmt: skip
    intermediates = {
        key: shipped[digest] for key, digest in AMD_INTERMEDIATES.items()
        if key[0] in pinned and digest in shipped
    }  # fmt: skip
    return {"arks": arks, "intermediates": intermediates}


def snp_intermediate(der: bytes, arks: list[Anchor], every: list[Anchor]) -> tuple[Any, ...]:
    """(ARK, certificate, key) of an ASK or ASVK signed by one of ``arks``."""
    try:
        cert = certificate(der)
        key = cert.public_key()
        issuing = [ark for ark in arks if ark[0].subject == cert.issuer]
        if not issuing:  # the root of another product line, or none at all
            elsewhere = any(ark[0].subject == cert.issuer for ark in every)
            raise Reject("chain_invalid" if elsewhere else "untrusted_root")
        if not _amd_ca(cert, key):
            raise Reject("chain_invalid")
        for ark in issuing:
            if amd_signed(cert.signature, cert.tbs_certificate_bytes, ark[0].public_key()):
                return ark, cert, key
    except Reject:
        raise
    except Exception:
        raise Reject("chain_invalid") from None
    raise Reject("chain_invalid")


def snp_chain(  # noqa: PLR0917 - one caller, read beside its docstring
    vek: dict[str, Any], kind: str, product: str, endorsements: list[tuple[str, bytes]],
    store: dict[str, Any], at: datetime, skew: timedelta,
) -> None:  # fmt: skip
    """The path ARK -> ASK/ASVK -> VCEK/VLEK holds at ``at``, and no CRL given revokes it.
    The ASK or ASVK is the one given with the evidence, else the shipped one of AMD's ARK."""
    arks: list[Anchor] = store["arks"].get(product, [])
    every = [ark for line in store["arks"].values() for ark in line]
    if not arks:
        raise Reject("untrusted_root")
    for given_kind, der in endorsements:  # an ARK given with the evidence must be trusted
        if given_kind == "ark":
            arks = [ark for ark in arks if ark[1] == der]
            if not arks:
                raise Reject("untrusted_root")
    signer = "ask" if kind == "vcek" else "asvk"
    candidates = [der for given_kind, der in endorsements if given_kind == signer]
    if not candidates:
        if (product, signer) not in store["intermediates"]:
            raise Reject("endorsement_missing")
        candidates = [store["intermediates"][(product, signer)]]
    found, error = None, "chain_invalid"
    for der in candidates:  # the first that chains and issued the key; else the last error
        try:
            ark, cert, key = snp_intermediate(der, arks, every)
        except Reject as rejected:
            error = rejected.code
            continue
        if cert.subject == vek["cert"].issuer:
            found = ark, cert, key
            break
        error = "chain_invalid"
    if found is None:
        raise Reject(error)
    ark, intermediate, key = found
    if not amd_signed(vek["cert"].signature, vek["cert"].tbs_certificate_bytes, key):
        raise Reject("chain_invalid")
    for cert in (ark[0], intermediate, vek["cert"]):
        if cert.not_valid_before_utc - skew > at:
            raise Reject("not_yet_valid")
        if at > cert.not_valid_after_utc:
            raise Reject("expired")
    for given_kind, der in endorsements:
        if given_kind == "crl":
            _snp_crl(der, every, ark, intermediate, at, skew)


def _snp_crl(  # noqa: PLR0917 - one caller
    der: bytes, every: list[Anchor], ark: Anchor, intermediate: x509.Certificate,
    at: datetime, skew: timedelta,
) -> None:  # fmt: skip
    """A CRL must be signed by a trusted ARK and current at ``at``; if it is this path's
    ARK's, it must not list the ASK or ASVK."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            crl = x509.load_der_x509_crl(der)
            issuer, tbs = crl.issuer, crl.tbs_certlist_bytes
            last, following = crl.last_update_utc, crl.next_update_utc
            algorithm, digest = crl.signature_algorithm_oid, crl.signature_hash_algorithm
    except Exception:
        raise Reject("chain_invalid") from None
    if algorithm != SignatureAlgorithmOID.RSASSA_PSS or not isinstance(digest, hashes.SHA384):
        raise Reject("chain_invalid")
    if following is None:
        raise Reject("chain_invalid")
    issuers = [anchor for anchor in every if anchor[0].subject == issuer]
    if not issuers:
        raise Reject("untrusted_root")
    signer = next((a for a in issuers if amd_signed(crl.signature, tbs, a[0].public_key())), None)
    if signer is None:
        raise Reject("chain_invalid")
    if last - skew > at:
        raise Reject("not_yet_valid")
    if at > following:
        raise Reject("expired")
    if signer[1] == ark[1]:
        try:
            revoked = crl.get_revoked_certificate_by_serial_number(intermediate.serial_number)
        except Exception:
            raise Reject("chain_invalid") from None
        if revoked is not None:
            raise Reject("revoked")


def snp_judge(  # noqa: PLR0917 - one caller, read beside its docstring
    evidence: bytes, endorsements: list[tuple[str, bytes]], store: dict[str, Any],
    policy: dict[str, Any], at: datetime, binding: bytes | None,
) -> tuple[str, set[str]]:  # fmt: skip
    """(status, reason codes) of an SEV-SNP report as the service judged it at ``at``;
    ``endorsements`` (kind, DER) as given with it, ``store`` what :func:`snp_store` gives,
    ``policy`` what :func:`worker_policy` gives; ``binding`` the user_data the result hash
    requires (SHA-256 of it is report_data[32:64])."""
    report = snp_report(evidence)
    if len(endorsements) > MAX_ENDORSEMENTS or any(
        len(der) > MAX_ENDORSEMENT_BYTES for _, der in endorsements
    ):
        raise Reject("oversize")
    kind = report["key"]
    if kind is None:
        raise Reject("signature_invalid")  # signing key 7: the report is unsigned
    keys = [der for given_kind, der in endorsements if given_kind == kind]
    if len(keys) != 1:
        other = "vlek" if kind == "vcek" else "vcek"
        missing = not keys and not any(given_kind == other for given_kind, _ in endorsements)
        raise Reject("endorsement_missing" if missing else "endorsement_mismatch")
    vek = snp_key(keys[0], kind)
    product = snp_product(report, vek)
    layout = TCB_LAYOUT[product]
    for raw in report["tcbs"]:  # reported, current, committed, launch
        if any(value for at_, value in enumerate(raw) if at_ not in layout.values()):
            raise Reject("malformed")
    tcb = {component: report["tcbs"][0][at_] for component, at_ in layout.items()}
    snp_chain(vek, kind, product, endorsements, store, at, policy["skew"])
    if any(vek["spls"].get(component) != spl for component, spl in tcb.items()):
        raise Reject("endorsement_mismatch")  # the key certifies another TCB
    if kind == "vcek":  # a VCEK is one chip's: its hwID is chip_id (8 bytes of it on Turin)
        size = 8 if product == "Turin" else 64
        chip = report["chip_id"]
        if len(vek["hwid"]) != size or (any(chip) and vek["hwid"] != chip[:size]):
            raise Reject("endorsement_mismatch")
    r, s = report["r"], report["s"]
    try:
        if not (0 < r < P384_ORDER and 0 < s < P384_ORDER):
            raise ValueError("R or S is outside 1..n-1")
        signed = evidence[:SIGNED_BYTES]
        vek["key"].verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA384()))
    except Exception:
        raise Reject("signature_invalid") from None
    codes = snp_appraisal(report, tcb, policy, binding)
    debug = bool(report["guest_policy"] >> 19 & 1)
    if codes:
        return "contraindicated", codes
    return ("warning" if policy["images"] is None or debug else "affirming"), codes


def snp_appraisal(
    report: dict[str, Any], tcb: dict[str, int], policy: dict[str, Any], binding: bytes | None
) -> set[str]:
    """Every way the authentic report falls short of the policy."""
    codes: set[str] = set()
    guest, raw = report["guest_policy"], report["raw"]
    for bit, allowed, code in (
        (19, policy["allow_debug"], "debug_mode"),
        (16, policy["allow_smt"], "smt_not_allowed"),
        (18, policy["allow_migration_agent"], "migration_agent_not_allowed"),
    ):
        if guest >> bit & 1 and not allowed:
            codes.add(code)
    if report["vmpl"] > policy["max_vmpl"]:
        codes.add("vmpl_too_high")
    closest: list[str] | None = None  # the mismatches of the first image that comes closest
    for expected in policy["images"] or []:
        mismatches = [
            IMAGE_CODES[name] for name, value in expected.items()
            if (name == "author_key_digest" and not report["author_key_en"])
            or raw[IMAGE_FIELDS[name][0] : sum(IMAGE_FIELDS[name])] != value
        ]  # fmt: skip
        if closest is None or len(mismatches) < len(closest):
            closest = mismatches
    codes.update(closest or [])
    if any(
        tcb.get(component, minimum) < minimum for component, minimum in policy["min_tcb"].items()
    ):
        codes.add("tcb_too_old")
    if binding is not None:
        half = report["report_data"][32:]
        if not any(half):
            codes.add("result_binding_missing")
        elif half != hashlib.sha256(binding).digest():
            codes.add("result_binding_mismatch")
    return codes


# --- the Intel DCAP judge --------------------------------------------------------------------
# The same rules, in the same order, as the project's verifier (verifier/tdx/) and its intake,
# written again here from Intel's DCAP quote format and PCS collateral: the quote, parsed by
# its length fields (oversize, malformed, unsupported), the collateral's count and sizes
# (oversize), the PCK chain in the quote to the root the entry names and its validity
# (chain_invalid, untrusted_root, not_yet_valid, expired), the QE report's signature
# (qe_report_signature_invalid) and binding (qe_binding_invalid), the quote's signature
# (signature_invalid); then the collateral: exactly one TCB info and QE identity
# (endorsement_missing, endorsement_mismatch), each signed over its exact text by a TCB
# Signing certificate of that root (collateral_signature_invalid), the signers' validity and
# the documents' windows; the TCB evaluation (tcb_type_mismatch, fmspc_mismatch,
# qe_identity_mismatch, no_matching_tcb_level, endorsement_mismatch); the PCK and Root CA CRLs,
# current, revoking nothing of the path (revoked); then every policy violation.

TDX, SGX = "intel-tdx", "intel-sgx"
#: every endorsement kind the service knows: a DCAP quote is judged with all those named
KNOWN_ENDORSEMENTS = (*ENDORSEMENT_KINDS, "tcb-info", "qe-identity", "certificate")
INTEL_QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
MAX_QUOTE = 64 * 1024
SGX_OID = "1.2.840.113741.1.13.1"
P256_ORDER = int("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)
#: reserved bytes of an SGX report body (the SGX quote's body and every QE report)
ENCLAVE_RESERVED = ((20, 32), (96, 128), (160, 192), (262, 304))
TCB_STATUSES = (
    "UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
    "OutOfDate", "OutOfDateConfigurationNeeded", "Revoked",
)  # fmt: skip
QE_STATUSES = ("UpToDate", "OutOfDate", "Revoked")
#: the policy's tier of each TCB status, unless its tcb_status says otherwise
TCB_TIERS = dict(
    zip(TCB_STATUSES, ("affirming", *["warning"] * 3, *["contraindicated"] * 3), strict=True)
)
#: where each value a TDX reference image may pin sits in the TD report, and its code
TD_FIELDS = {
    "mr_td": (136, "mrtd_mismatch"), "rtmr0": (328, "rtmr_mismatch"),
    "rtmr1": (376, "rtmr_mismatch"), "rtmr2": (424, "rtmr_mismatch"),
    "rtmr3": (472, "rtmr_mismatch"), "mr_config_id": (184, "mrconfigid_mismatch"),
    "mr_owner": (232, "mrowner_mismatch"), "mr_owner_config": (280, "mrownerconfig_mismatch"),
}  # fmt: skip
SGX_FIELDS = ("mr_enclave", "mr_signer", "isv_prod_id", "min_isv_svn")
DCAP_DEFAULTS: dict[str, dict[str, Any]] = {
    TDX: {"allow_debug": False, "xfam_allowed": None, "min_tee_tcb_svn": None,
          "tcb_status": {}, "allowed_advisories": None},
    SGX: {"allow_debug": False, "tcb_status": {}, "allowed_advisories": None},
}  # fmt: skip
ADVISORY = re.compile(r"INTEL-SA-\d{5}|INTEL-DOC-\d{5}")


def _enclave_report(data: bytes) -> bytes:
    if len(data) != 384 or any(any(data[a:b]) for a, b in ENCLAVE_RESERVED):
        raise Reject("malformed")
    return data


def dcap_quote(data: bytes) -> dict[str, Any]:
    """The parts of a quote (SGX v3, TDX v4 or v5), every length field checked; trailing zero
    bytes (a padded buffer) are allowed and not signed."""
    if len(data) > MAX_QUOTE:
        raise Reject("oversize")
    if len(data) < 48:
        raise Reject("malformed")
    version, key_type, tee = struct.unpack_from("<HHI", data, 0)
    if version not in (3, 4, 5) or key_type != 2 or tee not in (0, 0x81):
        raise Reject("unsupported")
    if (tee == 0) != (version == 3) or data[12:28] != INTEL_QE_VENDOR:
        raise Reject("unsupported")
    at, size = 48, 384 if version == 3 else 584
    if version == 5:
        if len(data) < at + 6:
            raise Reject("malformed")
        body_type, size_given = struct.unpack_from("<HI", data, at)
        size = {2: 584, 3: 648}.get(body_type, 0)
        if not size:
            raise Reject("unsupported")
        if size_given != size:
            raise Reject("malformed")
        at += 6
    if len(data) < at + size + 4:
        raise Reject("malformed")
    body = data[at : at + size]
    if version == 3:
        _enclave_report(body)
    signed_end = at + size
    (length,) = struct.unpack_from("<I", data, signed_end)
    start = signed_end + 4
    if len(data) < start + length:
        raise Reject("malformed")
    sig = data[start : start + length]
    parts = _signature_data(sig, wrapped=version != 3)
    if any(data[start + length :]):
        raise Reject("malformed")  # only zeros may follow the quote
    return {
        **parts, "tdx": version != 3, "body": body, "signed": data[:signed_end],
        "debug": bool(body[120] & 1) if version != 3 else bool(body[48] & 2),
    }  # fmt: skip


def _signature_data(sig: bytes, *, wrapped: bool) -> dict[str, bytes]:
    """Quote signature, attestation key, (v4/v5: in certification data type 6) QE report, its
    signature, QE auth data and the PCK chain (certification data type 5, PEM, NUL-ended):
    every size must add up to exactly the bytes given."""
    at = 128
    if wrapped:
        if len(sig) < at + 6:
            raise Reject("malformed")
        kind, inner = struct.unpack_from("<HI", sig, at)
        if kind != 6:
            raise Reject("unsupported")
        at += 6
        if at + inner != len(sig):
            raise Reject("malformed")
    if len(sig) < at + 384 + 64 + 2:
        raise Reject("malformed")
    qe_report = _enclave_report(sig[at : at + 384])
    qe_signature = sig[at + 384 : at + 448]
    (auth_size,) = struct.unpack_from("<H", sig, at + 448)
    at += 450
    if len(sig) < at + auth_size + 6:
        raise Reject("malformed")
    auth = sig[at : at + auth_size]
    kind, chain_size = struct.unpack_from("<HI", sig, at + auth_size)
    if kind != 5:
        raise Reject("unsupported")
    at += auth_size + 6
    if at + chain_size != len(sig):
        raise Reject("malformed")
    chain = sig[at:]
    return {
        "signature": sig[:64], "key": sig[64:128], "qe_report": qe_report,
        "qe_signature": qe_signature, "auth": auth,
        "chain": chain[:-1] if chain.endswith(b"\x00") else chain,
    }  # fmt: skip


def intel_load(der: bytes, *, crl: bool = False) -> Any:
    """A DER certificate (or CRL) and its names; one with a name attribute of the wrong length
    or a serial number that is not positive is refused, as the project refuses them."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.filterwarnings("error", message="Attribute's length must be")
            warnings.filterwarnings("error", message="Parsed a serial number which wasn't")
            if crl:
                loaded: Any = x509.load_der_x509_crl(der)
                _ = loaded.issuer
            else:
                loaded = x509.load_der_x509_certificate(der)
                _ = loaded.serial_number, loaded.subject, loaded.issuer
                _ = loaded.public_key(), loaded.signature_algorithm_oid
            return loaded
    except Exception:  # anything cryptography raises (or warns) for bytes that are not one
        raise Reject("chain_invalid") from None


def intel_profile(cert: x509.Certificate, *, ca: bool) -> None:
    """v3, ECDSA P-256 signed with SHA-256, no critical extension but basicConstraints and
    keyUsage; a CA has cA=true and keyCertSign, any other is no CA."""
    try:
        key = cert.public_key()
        ok = (
            cert.version is x509.Version.v3
            and cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
            and isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        )  # fmt: skip
        known = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE}
        ok = ok and not any(e.critical and e.oid not in known for e in cert.extensions)
        basic, usage = _extension(cert, x509.BasicConstraints), _extension(cert, x509.KeyUsage)
        if ca:
            ok = ok and usage is not None and basic is not None and basic.value.ca
            ok = ok and usage.value.key_cert_sign
        else:
            ok = ok and not (basic is not None and basic.value.ca)
    except Exception:
        raise Reject("chain_invalid") from None
    if not ok:
        raise Reject("chain_invalid")


def intel_signed(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    if cert.issuer != issuer.subject:
        raise Reject("chain_invalid")
    try:
        key: Any = issuer.public_key()
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    except Exception:
        raise Reject("chain_invalid") from None


def raw_signed(key: Any, signature: bytes, data: bytes) -> bool:
    """Whether ``key`` made Intel's raw r || s P-256 signature over ``data``."""
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        return False
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except Exception:
        return False
    return True


def pck_chain(pem: bytes, anchors: list[Anchor]) -> dict[str, Any]:
    """The PCK certificate, its CA and the root the quote carries (one of ``anchors``, byte
    for byte), each link checked; and the PCK certificate's SGX extension."""
    if len(pem) > 16 * 1024:
        raise Reject("chain_invalid")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    ders: list[bytes] = []
    try:
        rest = pem.decode("ascii").strip()
        while rest:
            if not rest.startswith(begin) or end not in rest:
                raise ValueError("not PEM")
            block, rest = rest.split(end, 1)
            rest = rest.strip()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                certs = x509.load_pem_x509_certificates((block + end).encode("ascii"))
            ders += [cert.public_bytes(Encoding.DER) for cert in certs]
    except Exception:
        raise Reject("chain_invalid") from None
    if len(ders) != 3:
        raise Reject("chain_invalid")
    anchor = next((a for a in anchors if a[1] == ders[2]), None)
    if anchor is None:
        raise Reject("untrusted_root")
    ca, leaf = intel_load(ders[1]), intel_load(ders[0])
    intel_profile(ca, ca=True)
    intel_profile(leaf, ca=False)
    intel_signed(ca, anchor[0])
    intel_signed(leaf, ca)
    try:
        value = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_OID)).value
    except Exception:
        raise Reject("chain_invalid") from None
    if not isinstance(value, x509.UnrecognizedExtension):
        raise Reject("chain_invalid")
    return {"anchor": anchor, "ca": ca, "leaf": leaf, "ext": sgx_extension(value.value)}


def _tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """The DER elements ``data`` is made of: definite, minimally encoded lengths only."""
    out, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise Reject("chain_invalid")
        tag, length, at = data[at], data[at + 1], at + 2
        if length & 0x80:
            count = length & 0x7F
            if not 1 <= count <= 3 or at + count > len(data) or data[at] == 0:
                raise Reject("chain_invalid")
            length, at = int.from_bytes(data[at : at + count], "big"), at + count
            if length < 0x80:
                raise Reject("chain_invalid")
        if at + length > len(data):
            raise Reject("chain_invalid")
        out.append((tag, data[at : at + length]))
        at += length
    return out


def _sgx_entries(content: bytes) -> dict[str, tuple[int, bytes]]:
    """SEQUENCE OF SEQUENCE {OID under Intel's SGX arc, value}: relative OID -> (tag, value)."""
    out: dict[str, tuple[int, bytes]] = {}
    for tag, entry in _tlvs(content):
        parts = _tlvs(entry) if tag == 0x30 else []
        if len(parts) != 2 or parts[0][0] != 0x06:
            raise Reject("chain_invalid")
        oid = parts[0][1]
        if not oid or oid[-1] & 0x80:
            raise Reject("chain_invalid")
        arcs, value = [], 0
        for byte in oid:
            value = value << 7 | byte & 0x7F
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        first = min(arcs[0] // 40, 2)
        name = ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))
        if not name.startswith(SGX_OID + ".") or name[len(SGX_OID) + 1 :] in out:
            raise Reject("chain_invalid")
        out[name[len(SGX_OID) + 1 :]] = parts[1]
    return out


def sgx_extension(der: bytes) -> dict[str, Any]:
    """FMSPC, PCE-ID, the 16 TCB components and PCESVN of Intel's SGX extension (the PPID,
    CPUSVN and SGX type are checked for shape)."""
    outer = _tlvs(der)
    if len(outer) != 1 or outer[0][0] != 0x30:
        raise Reject("chain_invalid")
    top = _sgx_entries(outer[0][1])

    def one(entries: dict[str, tuple[int, bytes]], key: str, tag: int) -> bytes:
        if key not in entries or entries[key][0] != tag:
            raise Reject("chain_invalid")
        return entries[key][1]

    def octets(entries: dict[str, tuple[int, bytes]], key: str, size: int) -> bytes:
        value = one(entries, key, 0x04)
        if len(value) != size:
            raise Reject("chain_invalid")
        return value

    def number(entries: dict[str, tuple[int, bytes]], key: str, top_: int) -> int:
        value = one(entries, key, 0x02)
        n = int.from_bytes(value, "big", signed=True) if 1 <= len(value) <= 3 else -1
        if not 0 <= n <= top_:
            raise Reject("chain_invalid")
        return n

    octets(top, "1", 16)
    tcb = _sgx_entries(one(top, "2", 0x30))
    components = [number(tcb, f"2.{n}", 255) for n in range(1, 17)]
    pce_svn = number(tcb, "2.17", 0xFFFF)
    octets(tcb, "2.18", 16)
    pce_id, fmspc = octets(top, "3", 2), octets(top, "4", 6)
    if not 1 <= len(one(top, "5", 0x0A)) <= 2:
        raise Reject("chain_invalid")
    return {"components": components, "pce_svn": pce_svn, "pce_id": pce_id, "fmspc": fmspc}


def tcb_signers(endorsements: list[tuple[str, bytes]], anchor: Anchor) -> list[dict[str, Any]]:
    """Every ``certificate`` given that is a non-CA certificate the root issued (a PCK CA
    given as well is passed over): the TCB Signing certificates, in the order given."""
    out, broken = [], False
    for kind, der in endorsements:
        if kind != "certificate":
            continue
        try:
            cert = intel_load(der)
            if cert.issuer != anchor[0].subject:
                continue
            basic = _extension(cert, x509.BasicConstraints)
            if basic is not None and basic.value.ca:
                continue
            intel_profile(cert, ca=False)
            intel_signed(cert, anchor[0])
        except Exception:  # Reject, or extensions that do not parse: a broken signer
            broken = True
            continue
        out.append({"cert": cert, "der": der, "key": cert.public_key()})
    if not out:
        raise Reject("chain_invalid" if broken else "endorsement_missing")
    return out


def _member_text(data: bytes, member: str) -> tuple[bytes, bytes]:
    """The exact text of ``member`` in a PCS body {"<member>":{...},"signature":"<hex>"} and
    the signature: the text is found, never re-serialised."""
    try:
        text = data.decode("utf-8")
        decoder, members, at = json.JSONDecoder(), {}, 0
        space = re.compile(r"[ \t\r\n]*")
        at = space.match(text, 0).end()  # type: ignore[union-attr]
        if text[at : at + 1] != "{":
            raise ValueError("not an object")
        at = space.match(text, at + 1).end()  # type: ignore[union-attr]
        while True:
            key, at = decoder.raw_decode(text, at)
            if not isinstance(key, str) or key in members:
                raise ValueError("a bad or repeated name")
            at = space.match(text, at).end()  # type: ignore[union-attr]
            if text[at : at + 1] != ":":
                raise ValueError("no colon")
            start = space.match(text, at + 1).end()  # type: ignore[union-attr]
            value, end = decoder.raw_decode(text, start)
            members[key] = (start, end, value)
            at = space.match(text, end).end()  # type: ignore[union-attr]
            if text[at : at + 1] == "}":
                at = space.match(text, at + 1).end()  # type: ignore[union-attr]
                break
            if text[at : at + 1] != ",":
                raise ValueError("no comma")
            at = space.match(text, at + 1).end()  # type: ignore[union-attr]
    except (ValueError, RecursionError):
        raise Reject("malformed") from None
    if at != len(text) or set(members) != {member, "signature"}:
        raise Reject("malformed")
    start, end, value = members[member]
    if not isinstance(value, dict):
        raise Reject("malformed")
    return text[start:end].encode("utf-8"), _hex(members["signature"][2], 64)


def _hex(value: Any, size: int) -> bytes:
    """``size`` bytes in hex, as the project reads them (bytes.fromhex: whitespace skipped)."""
    if not isinstance(value, str) or len(value) != 2 * size:
        raise Reject("malformed")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise Reject("malformed") from None


def _field(data: Any, key: str, kind: type) -> Any:
    value: Any = data.get(key) if isinstance(data, dict) else None
    if kind is int:
        if not _is_int(value) or not 0 <= value <= 0xFFFFFFFF:
            raise Reject("malformed")
    elif not isinstance(value, kind):
        raise Reject("malformed")
    return value


def _date(data: Any, key: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_field(data, key, str))
    except ValueError:
        raise Reject("malformed") from None
    if moment.tzinfo is None:
        raise Reject("malformed")
    return moment


def _levels(data: Any, key: str, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    """QE identity and TDX module levels: {"tcb": {"isvsvn"}, "tcbDate", "tcbStatus", ...}."""
    out = []
    for level in _field(data, key, list):
        _field(level, "tcb", dict)
        if _field(level, "tcbStatus", str) not in statuses:
            raise Reject("malformed")
        _field(level, "tcbDate", str)
        out.append({"svn": _field(level["tcb"], "isvsvn", int), "status": level["tcbStatus"],
                    "advisories": _advisory_ids(level)})  # fmt: skip
    return out


def _advisory_ids(level: dict[str, Any]) -> list[str]:
    if "advisoryIDs" not in level:
        return []
    ids: list[Any] = _field(level, "advisoryIDs", list)
    if not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise Reject("malformed")
    return [str(i) for i in ids]


def _loads(signed: bytes) -> Any:
    try:
        return json.loads(signed)
    except (ValueError, RecursionError):
        raise Reject("malformed") from None


def tcb_info(signed: bytes) -> dict[str, Any]:
    """A TCB info (version 3, SGX or TDX) from the text its signature covers."""
    data = _loads(signed)
    _field(data, "version", int)
    if data["version"] != 3:
        raise Reject("unsupported")
    if _field(data, "id", str) not in ("SGX", "TDX"):
        raise Reject("unsupported")
    tdx, levels = data["id"] == "TDX", []
    for level in _field(data, "tcbLevels", list):
        tcb = _field(level, "tcb", dict)
        components = {}
        for name in ("sgxtcbcomponents", "tdxtcbcomponents")[: 2 if tdx else 1]:
            listed = _field(tcb, name, list)
            if len(listed) != 16:
                raise Reject("malformed")
            components[name] = [_field(c, "svn", int) for c in listed]
            if any(svn > 255 for svn in components[name]):
                raise Reject("malformed")
        if _field(level, "tcbStatus", str) not in TCB_STATUSES:
            raise Reject("malformed")
        _field(level, "tcbDate", str)
        levels.append({"sgx": components["sgxtcbcomponents"],
                       "tdx": components.get("tdxtcbcomponents"),
                       "pce_svn": _field(tcb, "pcesvn", int), "status": level["tcbStatus"],
                       "advisories": _advisory_ids(level)})  # fmt: skip
    if not 1 <= len(levels) <= 256:
        raise Reject("malformed")
    module, identities = None, None
    if tdx and "tdxModule" in data:
        module = _module(_field(data, "tdxModule", dict), levels=False)
    if tdx and "tdxModuleIdentities" in data:
        identities = [_module(m if isinstance(m, dict) else None, levels=True)
                      for m in _field(data, "tdxModuleIdentities", list)]  # fmt: skip
    for key in ("tcbType", "tcbEvaluationDataNumber"):
        _field(data, key, int)
    return {
        "id": data["id"], "issued": _date(data, "issueDate"),
        "next_update": _date(data, "nextUpdate"), "fmspc": _hex(data.get("fmspc"), 6),
        "pce_id": _hex(data.get("pceId"), 2), "levels": levels, "module": module,
        "identities": identities or [],
    }  # fmt: skip


def _module(data: Any, *, levels: bool) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Reject("malformed")
    return {
        "id": _field(data, "id", str) if levels else "TDX_00",
        "mr_signer": _hex(data.get("mrsigner"), 48), "attributes": _hex(data.get("attributes"), 8),
        "mask": _hex(data.get("attributesMask"), 8),
        "levels": _levels(data, "tcbLevels", QE_STATUSES) if levels else [],
    }  # fmt: skip


def qe_identity(signed: bytes) -> dict[str, Any]:
    """A QE identity (version 2, QE or TD_QE) from the text its signature covers."""
    data = _loads(signed)
    _field(data, "version", int)
    if data["version"] != 2:
        raise Reject("unsupported")
    if _field(data, "id", str) not in ("QE", "TD_QE"):
        raise Reject("unsupported")
    levels = _levels(data, "tcbLevels", QE_STATUSES)
    if not 1 <= len(levels) <= 256:
        raise Reject("malformed")
    _field(data, "tcbEvaluationDataNumber", int)
    return {
        "id": data["id"], "issued": _date(data, "issueDate"),
        "next_update": _date(data, "nextUpdate"),
        "misc": _hex(data.get("miscselect"), 4), "misc_mask": _hex(data.get("miscselectMask"), 4),
        "attributes": _hex(data.get("attributes"), 16),
        "attributes_mask": _hex(data.get("attributesMask"), 16),
        "mr_signer": _hex(data.get("mrsigner"), 32), "isv_prod_id": _field(data, "isvprodid", int),
        "levels": levels,
    }  # fmt: skip


def signed_document(
    der: bytes, member: str, signers: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(document, signer): the first signer whose signature over the member's text holds."""
    text, signature = _member_text(der, member)
    for signer in signers:
        if raw_signed(signer["key"], signature, text):
            return (tcb_info(text) if member == "tcbInfo" else qe_identity(text)), signer
    raise Reject("collateral_signature_invalid")


def intel_crl(endorsements: list[tuple[str, bytes]], issuer: x509.Certificate) -> dict[str, Any]:
    """The one CRL given that ``issuer`` issued, its signature checked (its time is judged
    later); any CRL that does not parse refuses the lot."""
    found = []
    for kind, der in endorsements:
        if kind != "crl":
            continue
        crl = intel_load(der, crl=True)
        if crl.issuer != issuer.subject:
            continue
        try:
            algorithm, following = crl.signature_algorithm_oid, crl.next_update_utc
            last, signature, tbs = crl.last_update_utc, crl.signature, crl.tbs_certlist_bytes
            revoked = {entry.serial_number for entry in crl}
        except Exception:
            raise Reject("chain_invalid") from None
        if algorithm != SignatureAlgorithmOID.ECDSA_WITH_SHA256 or following is None:
            raise Reject("chain_invalid")
        try:
            key: Any = issuer.public_key()
            key.verify(signature, tbs, ec.ECDSA(hashes.SHA256()))
        except Exception:
            raise Reject("chain_invalid") from None
        found.append({"last": last, "next": following, "revoked": revoked})
    if not found:
        raise Reject("endorsement_missing")
    if len(found) > 1:
        raise Reject("chain_invalid")
    return found[0]


def _valid(cert: x509.Certificate, at: datetime, skew: timedelta) -> None:
    """Valid at ``at``: skew for notBefore only (added to ``at``: a signed date of the year 1
    less the skew is no date)."""
    if cert.not_valid_before_utc > at + skew:
        raise Reject("not_yet_valid")
    if at > cert.not_valid_after_utc:
        raise Reject("expired")


def _window(issued: datetime, following: datetime, at: datetime, skew: timedelta) -> None:
    """A document or CRL is current while issued - skew <= at < nextUpdate."""
    if issued > at + skew:
        raise Reject("not_yet_valid")
    if at >= following:
        raise Reject("expired")


def _masked_equal(value: bytes, expected: bytes, mask: bytes) -> bool:
    if len(value) != len(mask) or len(expected) != len(mask):
        raise Reject("malformed")  # a hex field written with spaces (see the report)
    return all(a & m == b & m for a, b, m in zip(value, expected, mask, strict=True))


def tcb_evaluation(
    quote: dict[str, Any], ext: dict[str, Any], info: dict[str, Any], qe: dict[str, Any]
) -> tuple[str, list[str]]:
    """(TCB status, advisory IDs) as Intel's Quote Verification Library computes them: the
    first QE identity level, TDX module level and TCB level the platform reaches, converged."""
    tdx = quote["tdx"]
    if info["id"] != ("TDX" if tdx else "SGX") or qe["id"] != ("TD_QE" if tdx else "QE"):
        raise Reject("tcb_type_mismatch")
    if info["fmspc"] != ext["fmspc"]:
        raise Reject("fmspc_mismatch")
    if info["pce_id"] != ext["pce_id"]:
        raise Reject("endorsement_mismatch")
    report = quote["qe_report"]
    if (
        report[128:160] != qe["mr_signer"]
        or int.from_bytes(report[256:258], "little") != qe["isv_prod_id"]
    ):
        raise Reject("qe_identity_mismatch")
    if not _masked_equal(report[16:20], qe["misc"], qe["misc_mask"]) or not _masked_equal(
        report[48:64], qe["attributes"], qe["attributes_mask"]
    ):
        raise Reject("qe_identity_mismatch")
    isv_svn = int.from_bytes(report[258:260], "little")
    qe_level = next((lv for lv in qe["levels"] if isv_svn >= lv["svn"]), None)
    if qe_level is None:
        raise Reject("no_matching_tcb_level")
    body, module_level, start = quote["body"], None, 0
    if tdx and body[1] == 0 and info["module"] is not None:
        _module_matches(body, info["module"])
    elif tdx and body[1] != 0 and info["identities"]:
        name = f"TDX_{body[1]:02X}"
        module = next((m for m in info["identities"] if m["id"] == name), None)
        if module is None:
            raise Reject("no_matching_tcb_level")
        _module_matches(body, module)
        module_level = next((lv for lv in module["levels"] if body[0] >= lv["svn"]), None)
        if module_level is None:
            raise Reject("no_matching_tcb_level")
        start = 2
    for level in info["levels"]:
        if (
            ext["pce_svn"] >= level["pce_svn"]
            and all(a >= b for a, b in zip(ext["components"], level["sgx"], strict=True))
            and (not tdx or all(body[i] >= level["tdx"][i] for i in range(start, 16)))
        ):
            break
    else:
        raise Reject("no_matching_tcb_level")
    status, advisories = level["status"], list(level["advisories"])
    for other in (module_level, qe_level):
        if other is None:
            continue
        if other["status"] == "Revoked":
            status = "Revoked"
        elif other["status"] == "OutOfDate":
            status = {"UpToDate": "OutOfDate", "SWHardeningNeeded": "OutOfDate",
                      "ConfigurationNeeded": "OutOfDateConfigurationNeeded",
                      "ConfigurationAndSWHardeningNeeded": "OutOfDateConfigurationNeeded",
                      }.get(status, status)  # fmt: skip
        advisories += [a for a in other["advisories"] if a not in advisories]
    return status, advisories


def _module_matches(body: bytes, module: dict[str, Any]) -> None:
    """MRSIGNERSEAM and SEAMATTRIBUTES (under the mask) are the TDX module's."""
    if body[64:112] != module["mr_signer"] or not _masked_equal(
        body[112:120], module["attributes"], module["mask"]
    ):
        raise Reject("endorsement_mismatch")


def dcap_judge(  # noqa: PLR0917 - one caller, read beside its docstring
    kind: str, evidence: bytes, endorsements: list[tuple[str, bytes]], anchors: list[Anchor],
    policy: dict[str, Any], at: datetime, binding: bytes | None,
) -> tuple[str, set[str]]:  # fmt: skip
    """(status, reason codes) of a TDX or SGX quote as the service judged it at ``at``, with
    the collateral ``endorsements`` (kind, bytes) named by its entry, against the roots it
    names; ``policy`` what :func:`worker_policy` gives; ``binding`` the user_data whose
    SHA-256 report_data[32:64] must be."""
    quote = dcap_quote(evidence)
    if quote["tdx"] != (kind == TDX):
        raise Reject("malformed")  # labelled as the other kind
    if len(endorsements) > MAX_ENDORSEMENTS or any(
        len(der) > MAX_ENDORSEMENT_BYTES for _, der in endorsements
    ):
        raise Reject("oversize")
    skew = policy["skew"]
    pck = pck_chain(quote["chain"], anchors)
    for cert in (pck["anchor"][0], pck["ca"], pck["leaf"]):
        _valid(cert, at, skew)
    if not raw_signed(pck["leaf"].public_key(), quote["qe_signature"], quote["qe_report"]):
        raise Reject("qe_report_signature_invalid")
    bound = hashlib.sha256(quote["key"] + quote["auth"]).digest() + bytes(32)
    if quote["qe_report"][320:384] != bound:
        raise Reject("qe_binding_invalid")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + quote["key"])
    except ValueError:
        raise Reject("signature_invalid") from None
    if not raw_signed(key, quote["signature"], quote["signed"]):
        raise Reject("signature_invalid")
    documents = {}
    for name in ("tcb-info", "qe-identity"):
        given = [der for given_kind, der in endorsements if given_kind == name]
        if len(given) != 1:
            raise Reject("endorsement_missing" if not given else "endorsement_mismatch")
        documents[name] = given[0]
    signers = tcb_signers(endorsements, pck["anchor"])
    info, info_signer = signed_document(documents["tcb-info"], "tcbInfo", signers)
    qe, qe_signer = signed_document(documents["qe-identity"], "enclaveIdentity", signers)
    crls: Any
    try:  # a missing CRL is named after the TCB evaluation, which says more about the misfit
        crls = intel_crl(endorsements, pck["ca"]), intel_crl(endorsements, pck["anchor"][0])
    except Reject as rejected:
        crls = rejected
    used = [info_signer] + ([qe_signer] if qe_signer["der"] != info_signer["der"] else [])
    for signer in used:
        _valid(signer["cert"], at, skew)
    _window(info["issued"], info["next_update"], at, skew)
    _window(qe["issued"], qe["next_update"], at, skew)
    status, advisories = tcb_evaluation(quote, pck["ext"], info, qe)
    if isinstance(crls, Reject):
        raise crls
    pck_crl, root_crl = crls
    _window(pck_crl["last"], pck_crl["next"], at, skew)
    _window(root_crl["last"], root_crl["next"], at, skew)
    if pck["leaf"].serial_number in pck_crl["revoked"] or any(
        serial in root_crl["revoked"]
        for serial in (pck["ca"].serial_number, info_signer["cert"].serial_number,
                       qe_signer["cert"].serial_number)
    ):  # fmt: skip
        raise Reject("revoked")
    return dcap_appraisal(quote, status, advisories, policy, binding)


def dcap_appraisal(
    quote: dict[str, Any], status: str, advisories: list[str], policy: dict[str, Any],
    binding: bytes | None,
) -> tuple[str, set[str]]:  # fmt: skip
    """Every way the authentic quote falls short of the policy, and the status it earns."""
    codes: set[str] = set()
    tier = policy["tcb_status"][status]
    if tier == "contraindicated":
        codes.add("tcb_status")
    if advisories and policy["allowed_advisories"] is None:
        tier = "warning" if tier == "affirming" else tier
    elif advisories and any(a not in policy["allowed_advisories"] for a in advisories):
        codes.add("advisory_not_allowed")
        tier = "contraindicated"
    body, debug = quote["body"], quote["debug"]
    if debug and not policy["allow_debug"]:
        codes.add("debug_mode")
    closest: list[str] | None = None  # the mismatches of the first image that comes closest
    for image in policy["images"] or []:
        if quote["tdx"]:
            mismatches = [
                code for name, value in image.items()
                for at_, code in [TD_FIELDS[name]] if body[at_ : at_ + 48] != value
            ]  # fmt: skip
        else:
            mismatches = [
                code for code, differs in (
                    ("mrenclave_mismatch", "mr_enclave" in image
                     and body[64:96] != image["mr_enclave"]),
                    ("mrsigner_mismatch", "mr_signer" in image
                     and body[128:160] != image["mr_signer"]),
                    ("isv_prod_id_mismatch", "isv_prod_id" in image
                     and int.from_bytes(body[256:258], "little") != image["isv_prod_id"]),
                    ("isv_svn_too_old", "min_isv_svn" in image
                     and int.from_bytes(body[258:260], "little") < image["min_isv_svn"]),
                ) if differs
            ]  # fmt: skip
        if not mismatches:
            closest = []
            break
        if closest is None or len(mismatches) < len(closest):
            closest = mismatches
    codes.update(closest or [])
    if quote["tdx"]:
        allowed, minimum = policy.get("xfam_allowed"), policy.get("min_tee_tcb_svn")
        if allowed is not None and body[128:136] not in allowed:
            codes.add("xfam_not_allowed")
        if minimum is not None and any(body[i] < minimum[i] for i in range(16)):
            codes.add("tee_tcb_svn_too_old")
    if binding is not None:
        half = body[520:584] if quote["tdx"] else body[320:384]
        if not any(half[32:]):
            codes.add("result_binding_missing")
        elif half[32:] != hashlib.sha256(binding).digest():
            codes.add("result_binding_mismatch")
    if codes:
        return "contraindicated", codes
    warn = policy["images"] is None or debug or tier != "affirming"
    return ("warning" if warn else "affirming"), codes


# --- the TPM 2.0 quote judge -----------------------------------------------------------------
# The same rules, in the same order, as the project's verifier (verifier/tpm/) and its intake,
# written again here from the TPM 2.0 Library specification (Part 2: TPMS_ATTEST,
# TPMT_SIGNATURE), the TCG PC Client Platform Firmware Profile (the crypto-agile event log)
# and the Linux kernel's IMA (the binary runtime log): the evidence container (oversize,
# malformed), the AK's signature over the exact TPMS_ATTEST bytes (tpm_signature_invalid),
# pcrDigest from the PCRs sent, with the AK's name algorithm (pcr_digest_mismatch), the event
# logs replayed against the quoted PCRs (event_log_mismatch), then who vouches for the AK: a
# NitroTPM attestation document (this file's Nitro judge at the verification time, then
# ak_binding_invalid), a Google AK certificate chain (untrusted_root, chain_invalid,
# not_yet_valid, expired, ak_certificate_mismatch), an enrolment in the ledger
# (ak_unendorsed before its enrolment, ak_enrolment_revoked), else ak_unendorsed; then
# every policy violation.

TPM = "tpm2-quote"
TPM_FORMAT = "tpm2-quote/v1"
MAX_TPM_EVIDENCE = 64 * 1024
TPM_MAGIC, ATTEST_QUOTE = 0xFF544347, 0x8018
#: TPM_ALG_ID of the hash algorithms, and the sizes of their digests
TPM_HASH_IDS = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}
DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
TPM_SIGNATURES = {0x0014: "rsassa", 0x0016: "rsapss", 0x0018: "ecdsa"}
TPM_PCRS = 24
TPM_EVIDENCE_KEYS = {"format", "attest", "signature", "ak", "pcrs"}
TPM_OPTIONAL_KEYS = {"event_log", "ima_log", "nitro_document"}
TPM_PREFIX = b"\x66format\x6dtpm2-quote/v1"  # the first entry, as CBOR: the kind shows first
TPM_FIELD_LIMITS = {"attest": 1024, "signature": 1024, "ak": 1024, "nitro_document": 16 * 1024}
AK_PATHS = ("aws-nitrotpm", "gcp", "enrolled")
TPM_DEFAULTS: dict[str, Any] = {
    "ak_paths": list(AK_PATHS), "require_event_log": False, "reject_all_reset": True,
}  # fmt: skip
#: Google's roots for vTPM AK certificates (SHA-256 of the DER): EK/AK CA Root, and the
#: 2018 vTPM EK root; a bundle carries those its TPM entries name.
GOOGLE_ROOTS = {
    "594759594b9b61524f6c8ef668f7177f7b9066bc0674f2f49fe9e052be78beb2": "Google EK/AK CA Root",
    "9bd5285f8fb18502a7947e621ffd470266f49fcd3b73e19a190f690ad32a7caf": "Google vTPM EK root 2018",
}
#: The 2018 root's intermediate (tpm_ek_v1_cloud_host-signer, 2020-2120), which go-tpm-tools
#: attestations do not carry: as the service's verifier does, this judge pins it (checked by
#: its SHA-256) and offers it as an issuer whenever the 2018 root is among the entry's roots.
GOOGLE_2018_ROOT = "9bd5285f8fb18502a7947e621ffd470266f49fcd3b73e19a190f690ad32a7caf"
GOOGLE_2020_INTERMEDIATE_SHA256 = "5d8dbcf8c8053dd8ffad711b6219355032b7122c34cac0f90ccb49def69ec504"
GOOGLE_2020_INTERMEDIATE = base64.b64decode(
    "MIIGFDCCA/ygAwIBAgIQKGFud4l+Tma/3sf58QMTrDANBgkqhkiG9w0BAQsFADCBvjELMAkGA1UEBhMCVVMxEzAR"
    "BgNVBAgTCkNhbGlmb3JuaWExFjAUBgNVBAcTDU1vdW50YWluIFZpZXcxEzARBgNVBAoTCkdvb2dsZSBMTEMxDjAM"
    "BgNVBAsTBUNsb3VkMV0wWwYDVQQDDFR0cG1fZWtfdjFfY2xvdWRfaG9zdF9yb290LXNpZ25lci0wLTIwMTgtMDQt"
    "MDZUMTA6NTg6MjYtMDc6MDAgSzoxLCAxOlB3MDAzSHNGWU80OjA6MTgwIBcNMjAxMDIyMjEwMjA4WhgPMjEyMDEw"
    "MjIyMTAyMDhaMIG5MQswCQYDVQQGEwJVUzETMBEGA1UECBMKQ2FsaWZvcm5pYTEWMBQGA1UEBxMNTW91bnRhaW4g"
    "VmlldzETMBEGA1UEChMKR29vZ2xlIExMQzEOMAwGA1UECxMFQ2xvdWQxWDBWBgNVBAMMT3RwbV9la192MV9jbG91"
    "ZF9ob3N0LXNpZ25lci0wLTIwMjAtMTAtMjJUMTQ6MDI6MDgtMDc6MDAgSzoxLCAyOkhCTnBBM1RQQWJNOjA6MTgw"
    "ggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQC04DIsQSkrbQCB4/7EV2BDEXZzBBBUVDaF/yuDzxzdMNux"
    "kdNbB/cSbKbSc4+gI+4NLIn/qZA37KzWAd8PSviF2zFgC+ZF4m4wr7J5830n4OkABqfdtP368ROI1b5Ue1avugNf"
    "eHUI2Tz1YIflDlXlnotNMT4O4SIMug9sfBFjnwINbivDu3gUP803vfXDCsTcndKA7WgN5jXDEAfdP1EZtugODsCx"
    "SjvcveKr30ORmCg776N+bt+Q+YQeQxFxWF6eIDG8u4BPk9p/mXXIfqQMd+WprWEt1pdvQFURoieAN2hxEkoL959o"
    "Fiva69vAjTU8HqaAb16uWhWSQayH0lXbAgMBAAGjggENMIIBCTAOBgNVHQ8BAf8EBAMCAQYwEAYDVR0lBAkwBwYF"
    "Z4EFCAEwEgYDVR0TAQH/BAgwBgEB/wIBADAdBgNVHQ4EFgQUE81xuliyClGjKA5luZaeux0NEZMwHwYDVR0jBBgw"
    "FoAUZfTk5qr2/VrSiJyoU1X3AI4I96UwTQYIKwYBBQUHAQEEQTA/MD0GCCsGAQUFBzAChjFodHRwOi8vcGtpLmdv"
    "b2cvY2xvdWRfaW50ZWdyaXR5L3RwbV9la19yb290XzEuY3J0MEIGA1UdHwQ7MDkwN6A1oDOGMWh0dHA6Ly9wa2ku"
    "Z29vZy9jbG91ZF9pbnRlZ3JpdHkvdHBtX2VrX3Jvb3RfMS5jcmwwDQYJKoZIhvcNAQELBQADggIBAJDz1ozb36Gh"
    "Nkcflz77qNXW/I6TqBN7VUMJy5zVXxIxLHDayU6mJGizriQkncDmnWY8/NUgroXKIyURBsB2sNI41KcQFi+ScYRG"
    "KuGkiLt/0huxA0njCLIOyAcDN6oaph8Eo7rCL5MdhA9uMxnHMgWVWjnpgYKVMui6lakEcpek2ngNMpSHe7VxmM2L"
    "/56ucQblvIma00ANC6NAi+QOFuyoqrmZhXjj0w/p2yO5W38jp/tcPX38FZ6uZpD3iYAfBgRc4yrvUF4J2UUlF3xB"
    "L0uQI3G96uh0OcBzAA4KFMRBfsZR4rfgbAhCRq/LZ0NAIhb9ndOkHYl0/6TyQFqSt77v8E+w2mwzAsYp/jAAu7IF"
    "8s0WMcZPTBKgMk9iRoVRAU7r6sJcqfhumx7o8H57k+90bpAZjZsBHLj/OWFQDK6TBrxL9kXtZ8eL6c+M7o5Mx3mC"
    "zqjjp5fEe/K5Dr2NhzcU31TTGdRz/2t7eFMjP1ylsNCXSHNB7yoA1oUcWKo6nuitUPxLjiivj6cvhMPsJLRpMJQN"
    "78k2VF7osri73l1Df22ELkWz6tvvb6O6Dh3fWCeKP713B/+JRv4XJ10wPL1StRDE8vl/mi+hyc/c7QGeuRoYdmKu"
    "5xti9IxtaxZaZJqCXm4C7BdS6w7bUa6T6smyKpXcL4iX/vx2v7Ym67AG"
)
if hashlib.sha256(GOOGLE_2020_INTERMEDIATE).hexdigest() != GOOGLE_2020_INTERMEDIATE_SHA256:
    raise RuntimeError(
        "this file has been modified: its Google 2020 intermediate is not the one pinned"
    )
GCP_MAX_PATH = 4  # AK <- intermediate <- root is what Google issues; room for one more
EV_NO_ACTION = 3
SPEC_ID = b"Spec ID Event03\0"
STARTUP_LOCALITY = b"StartupLocality\0"
IMA_NAME_MAX = 255  # IMA_EVENT_NAME_LEN_MAX: the "ima" template pads its name field to 256
IMA_TEMPLATE = re.compile(rb"[a-z0-9_-]{1,15}")  # IMA_TEMPLATE_NAME_LEN_MAX is 15
#: digest sizes of the algorithms a log may declare that are not replayed: SM3-256, SHA3-*
OTHER_LOG_ALGS = {0x0012: 32, 0x0027: 32, 0x0028: 48, 0x0029: 64}
ENROLMENT = re.compile(r"enrolments/([0-9]{12})\.(json|tlog-proof)")
MAX_ENROLMENT_MEMBER = 64 * 1024
#: every endorsement kind a TPM entry may name: the service's, and the TPM's own
TPM_ENDORSEMENTS = (*KNOWN_ENDORSEMENTS, "ak-certificate", "ek-certificate")


class _Reader:
    """Big-endian (TPM) or little-endian (event logs) fields read off ``data`` in order; any
    read past the end is malformed."""

    def __init__(self, data: bytes, order: str = ">") -> None:
        self.data, self.at, self.order = data, 0, order

    def take(self, size: int) -> bytes:
        if size < 0 or self.at + size > len(self.data):
            raise Reject("malformed")
        self.at += size
        return self.data[self.at - size : self.at]

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big" if self.order == ">" else "little")

    def sized(self, width: int, high: int) -> bytes:
        """A TPM2B (or a length-prefixed field): a ``width``-byte size, at most ``high``."""
        size = self.uint(width)
        if size > high:
            raise Reject("malformed")
        return self.take(size)

    def end(self) -> None:
        if self.at != len(self.data):
            raise Reject("malformed")


def tpm_container(evidence: bytes) -> dict[str, Any]:
    """The contract's CBOR map, strictly: at most 64 KiB (oversize); a definite map of at
    most 23 entries whose first entry is ``format``: ``tpm2-quote/v1``; only its keys; attest,
    signature, ak (each at most 1 KiB) and the optional logs and Nitro document (at most 16
    KiB) non-empty byte strings (a longer one is oversize); pcrs a non-empty map of banks
    (sha1, sha256, sha384, sha512), each a non-empty map of PCR index (0..23) to a value of
    its bank's size."""
    if len(evidence) > MAX_TPM_EVIDENCE:
        raise Reject("oversize")
    if not (
        len(evidence) > len(TPM_PREFIX) and 0xA1 <= evidence[0] <= 0xB7
        and evidence[1 : 1 + len(TPM_PREFIX)] == TPM_PREFIX
    ):  # fmt: skip
        raise Reject("malformed")
    box = strict_cbor(evidence)
    if not isinstance(box, dict) or set(box) - TPM_EVIDENCE_KEYS - TPM_OPTIONAL_KEYS:
        raise Reject("malformed")
    if TPM_EVIDENCE_KEYS - set(box):
        raise Reject("malformed")
    for name in ("attest", "signature", "ak", "event_log", "ima_log", "nitro_document"):
        if name not in box:
            continue
        if not isinstance(box[name], bytes):
            raise Reject("malformed")
        if len(box[name]) > TPM_FIELD_LIMITS.get(name, MAX_TPM_EVIDENCE):
            raise Reject("oversize")
        if not box[name]:
            raise Reject("malformed")
    pcrs = box["pcrs"]
    if not isinstance(pcrs, dict) or not pcrs:
        raise Reject("malformed")
    for bank, values in pcrs.items():
        if not isinstance(bank, str) or bank not in DIGEST_SIZES:
            raise Reject("malformed")
        if not isinstance(values, dict) or not values:
            raise Reject("malformed")
        for index, value in values.items():
            if not _is_int(index) or not 0 <= index < TPM_PCRS:
                raise Reject("malformed")
            if not isinstance(value, bytes) or len(value) != DIGEST_SIZES[bank]:
                raise Reject("malformed")
    return box


def _tpm_hash(alg: int) -> str:
    """A hash TPM_ALG_ID this judge knows; another is a well-formed algorithm it does not
    support (unsupported), not a layout error."""
    name = TPM_HASH_IDS.get(alg)
    if name is None:
        raise Reject("unsupported")
    return name


def tpm_attest(data: bytes) -> dict[str, Any]:
    """TPMS_ATTEST of type ATTEST_QUOTE, big-endian, every field read and no byte left:
    magic, type, qualifiedSigner (a TPM2B_NAME: nameAlg and digest; a handle is refused),
    extraData (at most 64 bytes), clockInfo, firmwareVersion, TPML_PCR_SELECTION (1 to 4
    distinct banks, 3 to 8 bytes of bitmap, PCRs 0..23, at least one selected) and pcrDigest
    (the nameAlg's size). A hash this judge does not know is unsupported."""
    read = _Reader(data)
    if read.uint(4) != TPM_MAGIC or read.uint(2) != ATTEST_QUOTE:
        raise Reject("malformed")
    name = read.sized(2, 2 + 64)
    if len(name) in (0, 4) or len(name) < 2:
        raise Reject("malformed")  # empty, or a TPM_HANDLE: not the AK's name
    name_alg = _tpm_hash(int.from_bytes(name[:2], "big"))
    if len(name) != 2 + DIGEST_SIZES[name_alg]:
        raise Reject("malformed")
    extra = read.sized(2, 64)
    clock, resets, restarts, safe = read.uint(8), read.uint(4), read.uint(4), read.uint(1)
    if safe > 1:
        raise Reject("malformed")
    firmware = read.uint(8)
    count = read.uint(4)
    if not 1 <= count <= len(DIGEST_SIZES):
        raise Reject("malformed")
    selection: list[tuple[str, list[int]]] = []
    for _ in range(count):
        bank = _tpm_hash(read.uint(2))
        if any(bank == seen for seen, _ in selection):
            raise Reject("malformed")
        size = read.uint(1)
        if not 3 <= size <= 8:
            raise Reject("malformed")
        bits = int.from_bytes(read.take(size), "little")  # PCR i: byte i // 8, bit i % 8
        if bits >> TPM_PCRS:
            raise Reject("malformed")  # a PCR above 23
        selection.append((bank, [i for i in range(TPM_PCRS) if bits >> i & 1]))
    if not any(indexes for _, indexes in selection):
        raise Reject("malformed")  # the quote selects no PCR
    digest = read.sized(2, 64)
    if len(digest) != DIGEST_SIZES[name_alg]:
        raise Reject("malformed")
    read.end()
    return {
        "name_alg": name_alg, "extra_data": extra, "clock": clock, "reset_count": resets,
        "restart_count": restarts, "safe": bool(safe), "firmware": firmware,
        "selection": selection, "pcr_digest": digest,
    }  # fmt: skip


def tpm_signature(data: bytes) -> dict[str, Any]:
    """TPMT_SIGNATURE: sigAlg (RSASSA, RSAPSS, ECDSA; another is unsupported), hashAlg, then a
    TPM2B signature (RSA, not empty) or the TPM2B integers r and s (ECDSA), nothing after."""
    read = _Reader(data)
    scheme = TPM_SIGNATURES.get(read.uint(2))
    if scheme is None:
        raise Reject("unsupported")
    digest = _tpm_hash(read.uint(2))
    if scheme == "ecdsa":
        r, s = read.sized(2, 66), read.sized(2, 66)
        read.end()
        return {"scheme": scheme, "hash": digest, "r": int.from_bytes(r, "big"),
                "s": int.from_bytes(s, "big")}  # fmt: skip
    signature = read.sized(2, 512)
    if not signature:
        raise Reject("malformed")
    read.end()
    return {"scheme": scheme, "hash": digest, "signature": signature}


def tpm_key(der: bytes) -> Any:
    """The AK: an X.509 SubjectPublicKeyInfo in its DER form, at most 1 KiB (malformed
    otherwise), EC P-256 or P-384, or RSA of 2048 to 4096 bits (unsupported otherwise)."""
    if len(der) > 1024:
        raise Reject("malformed")
    try:
        key = load_der_public_key(der)
    except Exception:  # ValueError, UnsupportedAlgorithm: not a key we know
        raise Reject("malformed") from None
    if _spki(key) != der:
        raise Reject("malformed")  # not DER, or trailing bytes
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in P_CURVES:
        return key
    if isinstance(key, rsa.RSAPublicKey) and 2048 <= key.key_size <= 4096:
        return key
    raise Reject("unsupported")


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


TPM_HASHES: dict[str, type[hashes.SHA1 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}  # fmt: skip


def _hash(name: str) -> hashes.HashAlgorithm:
    return TPM_HASHES[name]()


def tpm_signed(key: Any, signature: dict[str, Any], attest: bytes) -> None:
    """The AK signed the exact TPMS_ATTEST bytes with the scheme and hash the TPMT_SIGNATURE
    names. RSAPSS: a TPM's salt is the digest's length (FIPS 186) or the largest that fits
    (older TPMs); either verifies, and no other."""
    digest = _hash(signature["hash"])
    try:
        if signature["scheme"] == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise ValueError("an ECDSA signature by an RSA key")
            der = encode_dss_signature(signature["r"], signature["s"])
            key.verify(der, attest, ec.ECDSA(digest))
        elif not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("an RSA signature by an EC key")
        elif signature["scheme"] == "rsassa":
            key.verify(signature["signature"], attest, padding.PKCS1v15(), digest)
        else:
            size = DIGEST_SIZES[signature["hash"]]
            for salt in dict.fromkeys((size, (key.key_size + 7) // 8 - size - 2)):
                pss = padding.PSS(mgf=padding.MGF1(_hash(signature["hash"])), salt_length=salt)
                try:
                    key.verify(signature["signature"], attest, pss, digest)
                    break
                except InvalidSignature:
                    continue
            else:
                raise InvalidSignature
    except Exception:  # InvalidSignature, or a signature of the wrong kind
        raise Reject("tpm_signature_invalid") from None


def tpm_selected(quote: dict[str, Any], sent: dict[str, dict[int, bytes]]) -> None:
    """The PCR values sent are exactly those the quote selects: malformed otherwise (a
    value not quoted, or a quoted one not sent), before the signature, as the project's
    parser has it."""
    selected = {bank: set(indexes) for bank, indexes in quote["selection"] if indexes}
    if {bank: set(values) for bank, values in sent.items() if values} != selected:
        raise Reject("malformed")


def tpm_pcrs(quote: dict[str, Any], sent: dict[str, dict[int, bytes]]) -> dict[str, Any]:
    """The quoted PCRs (:func:`tpm_selected` checked they are those selected), once their
    digest, bank by bank in selection order and index by index ascending, with the AK's name
    algorithm (not the bank's: a NitroTPM quote digests SHA-384 PCRs with SHA-256), is the
    pcrDigest."""
    selected = {bank: set(indexes) for bank, indexes in quote["selection"] if indexes}
    h = hashlib.new(quote["name_alg"])
    for bank, indexes in quote["selection"]:
        for index in indexes:
            h.update(sent[bank][index])
    if h.digest() != quote["pcr_digest"]:
        raise Reject("pcr_digest_mismatch")
    return {bank: dict(sent[bank]) for bank in selected}


def _log_data(read: _Reader) -> bytes:
    """An event's data: its u32 size, then the bytes; a size over the evidence's bound is
    oversize, one past the end malformed."""
    size = read.uint(4)
    if size > MAX_TPM_EVIDENCE:
        raise Reject("oversize")
    return read.take(size)


def _sha1_event(read: _Reader) -> tuple[int, int, bytes, bytes]:
    """A SHA-1 format event (TCG_PCClientPCREvent): PCR, type, digest, data."""
    pcr, kind, digest = read.uint(4), read.uint(4), read.take(20)
    if pcr >= TPM_PCRS:
        raise Reject("malformed")
    return pcr, kind, digest, _log_data(read)


def _spec_id(data: bytes) -> dict[int, int]:
    """The Spec ID Event03: version 2.0, uintnSize 1 or 2, platformClass 0 or 1, 1 to 16
    algorithms (TPM_ALG_ID -> digest size, each once, a known one with its own size, any other
    of 1 to 128 bytes), vendorInfo, nothing after."""
    spec = _Reader(data, "<")
    spec.take(16)
    platform, minor, major, _errata, uintn = spec.uint(4), *spec.take(4)
    if (major, minor) != (2, 0) or uintn not in (1, 2) or platform > 1:
        raise Reject("malformed")
    count = spec.uint(4)
    if not 1 <= count <= 16:
        raise Reject("malformed")
    sizes: dict[int, int] = {}
    for _ in range(count):
        alg, size = spec.uint(2), spec.uint(2)
        known = TPM_HASH_IDS.get(alg)
        expected = DIGEST_SIZES[known] if known else OTHER_LOG_ALGS.get(alg)
        if alg in sizes or (expected is not None and size != expected) or not 1 <= size <= 128:
            raise Reject("malformed")
        sizes[alg] = size
    spec.sized(1, 255)  # vendorInfo
    spec.end()
    return sizes


def tcg_log(data: bytes) -> dict[str, Any]:
    """A TCG PC Client log, little-endian: crypto-agile (the SHA-1 format header event, in
    PCR 0, EV_NO_ACTION, zero digest, holding the Spec ID Event03, then TCG_PCR_EVENT2s, each
    with one digest of every declared algorithm; digests of an algorithm not known here are
    skipped by their declared size) or legacy (every event in the SHA-1 format: TPM 1.2
    firmware, old OVMF); PCRs 0..23; a StartupLocality (PCR 0, locality 0, 3 or 4) at most
    once and before PCR 0 is extended."""
    if not data:
        raise Reject("malformed")
    read = _Reader(data, "<")
    pcr, kind, digest, first = _sha1_event(read)
    raw: list[tuple[int, int, dict[str, bytes], bytes]] = []
    if first.startswith(SPEC_ID):
        if (pcr, kind, digest) != (0, EV_NO_ACTION, bytes(20)):
            raise Reject("malformed")
        sizes = _spec_id(first)
        banks = {TPM_HASH_IDS[alg] for alg in sizes if alg in TPM_HASH_IDS}
        while read.at < len(data):
            pcr, kind, n = read.uint(4), read.uint(4), read.uint(4)
            if pcr >= TPM_PCRS or n != len(sizes):
                raise Reject("malformed")  # a digest for every algorithm the log declares
            digests: dict[str, bytes] = {}
            seen: set[int] = set()
            for _ in range(n):
                alg = read.uint(2)
                if alg not in sizes or alg in seen:
                    raise Reject("malformed")
                seen.add(alg)
                value = read.take(sizes[alg])
                if alg in TPM_HASH_IDS:
                    digests[TPM_HASH_IDS[alg]] = value
            raw.append((pcr, kind, digests, _log_data(read)))
            if kind == EV_NO_ACTION and raw[-1][3].startswith(SPEC_ID):
                raise Reject("malformed")  # a second Spec ID event
    else:
        banks = {"sha1"}
        raw.append((pcr, kind, {"sha1": digest}, first))
        while read.at < len(data):
            pcr, kind, digest, body = _sha1_event(read)
            if kind == EV_NO_ACTION and body.startswith(SPEC_ID):
                raise Reject("malformed")  # a Spec ID event after the first
            raw.append((pcr, kind, {"sha1": digest}, body))
    events, locality, extended_pcr0 = [], None, False
    for pcr, kind, digests, body in raw:
        if kind == EV_NO_ACTION:
            if body.startswith(STARTUP_LOCALITY):
                if pcr != 0 or len(body) != 17 or body[16] not in (0, 3, 4):
                    raise Reject("malformed")
                if locality is not None or extended_pcr0:
                    raise Reject("malformed")
                locality = body[16]
            continue  # not extended
        extended_pcr0 = extended_pcr0 or pcr == 0
        events.append((pcr, digests))
    return {"events": events, "banks": banks, "locality": locality}


def ima_log(data: bytes) -> dict[str, Any]:
    """The Linux IMA binary runtime log, as the kernel writes it (ima_fs.c, little-endian):
    PCR, the SHA-1 template digest, the template name (1 to 15 of a-z 0-9 _ -), then the
    template data (its length first, save for the old "ima" template: a file digest and a
    path under 256 bytes), split into at most 16 length-prefixed fields. The kernel extends
    each bank with that bank's hash of the template data ("ima": the file digest and the
    path padded to 256 bytes), whose SHA-1 is the logged digest; and a violation (a zero
    template digest) with all ones in every bank."""
    if not data:
        raise Reject("malformed")
    read, events = _Reader(data, "<"), []
    while read.at < len(data):
        pcr, logged = read.uint(4), read.take(20)
        name = read.take(read.uint(4))
        if pcr >= TPM_PCRS or not IMA_TEMPLATE.fullmatch(name):
            raise Reject("malformed")
        if name == b"ima":
            file_digest = read.take(20)
            path = read.sized(4, IMA_NAME_MAX)
            hashed = file_digest + path + bytes(IMA_NAME_MAX + 1 - len(path))
        else:
            hashed = read.take(read.uint(4))
            fields, count = _Reader(hashed, "<"), 0
            while fields.at < len(hashed):  # each field: its length, then its bytes
                count += 1
                if count > 16:
                    raise Reject("malformed")
                fields.take(fields.uint(4))
        if not any(logged):
            digests = {bank: b"\xff" * size for bank, size in DIGEST_SIZES.items()}
        else:
            digests = {bank: hashlib.new(bank, hashed).digest() for bank in DIGEST_SIZES}
            if digests["sha1"] != logged:
                raise Reject("malformed")
        events.append((pcr, digests))
    return {"events": events, "banks": set(DIGEST_SIZES), "locality": None}


def tpm_replay(
    box: dict[str, Any], quoted: dict[str, dict[int, bytes]]
) -> tuple[list[Any], set[tuple[str, int]]] | None:
    """The extending events of the logs sent (the PC Client log, then IMA's) and the (bank,
    PCR) pairs compared with the quote, once every PCR they extend that the quote includes,
    in every bank the quote carries and the logs have digests for, replays (from zeros; PCR 0
    from the StartupLocality) to the quoted value; None if no log was sent. A log of no bank
    the quote carries cannot be checked: event_log_mismatch."""
    logs = [parse(box[key]) for key, parse in (("event_log", tcg_log), ("ima_log", ima_log))
            if key in box]  # fmt: skip
    if not logs:
        return None
    banks = set.intersection(*(log["banks"] for log in logs)) & set(quoted)
    if not banks:
        raise Reject("event_log_mismatch")  # nothing the quote carries accounts for them
    events = [event for log in logs for event in log["events"]]
    locality = logs[0]["locality"]
    compared: set[tuple[str, int]] = set()
    for bank in banks:
        size = DIGEST_SIZES[bank]
        state = {} if locality is None else {0: bytes(size - 1) + bytes([locality])}
        for pcr, digests in events:
            state[pcr] = hashlib.new(bank, state.get(pcr, bytes(size)) + digests[bank]).digest()
        for pcr, value in state.items():
            if pcr in quoted[bank]:
                if quoted[bank][pcr] != value:
                    raise Reject("event_log_mismatch")
                compared.add((bank, pcr))
    return events, compared


def google_certificate(der: bytes) -> x509.Certificate:
    """A DER certificate of Google's TPM PKI, its names and extensions read (its 2018 root's
    common name is longer than X.520's 64 characters: that warning is let pass)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            _ = cert.subject, cert.issuer, cert.serial_number, list(cert.extensions)
            _ = cert.not_valid_before_utc, cert.not_valid_after_utc, cert.public_key()
            return cert
    except Exception:
        raise Reject("chain_invalid") from None


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start, end of content) of the DER element at ``at``: definite lengths of up to
    three bytes, one-byte tags, within ``data``; ValueError otherwise."""
    if at + 2 > len(data) or data[at] & 0x1F == 0x1F:
        raise ValueError("DER header")
    length, start = data[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 3 or start + count > len(data):
            raise ValueError("DER length")
        length, start = int.from_bytes(data[start : start + count], "big"), start + count
    if start + length > len(data):
        raise ValueError("DER length")
    return data[at], start, start + length


def _tbs_names(tbs: bytes) -> tuple[bytes, bytes]:
    """(issuer, subject) of a TBSCertificate, each its Name's DER as it is in the bytes
    signed (Google's 2018 names break X.520's length rule: compared raw)."""
    tag, start, end = _tlv(tbs, 0)
    if tag != 0x30 or end != len(tbs):
        raise ValueError("TBSCertificate")
    children, at = [], start
    while at < end:
        child = _tlv(tbs[:end], at)
        children.append((child[0], at, child[2]))
        at = child[2]
    if children and children[0][0] == 0xA0:  # [0] EXPLICIT version
        children = children[1:]
    if len(children) < 6 or children[2][0] != 0x30 or children[4][0] != 0x30:
        raise ValueError("TBSCertificate fields")
    return tbs[children[2][1] : children[2][2]], tbs[children[4][1] : children[4][2]]


def _google_load(der: bytes) -> tuple[x509.Certificate, bytes, bytes]:
    """(certificate, issuer DER, subject DER) of an AK certificate or intermediate; one that
    does not parse is malformed evidence (as the project's verifier has it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            return cert, *_tbs_names(cert.tbs_certificate_bytes)
    except Exception:
        raise Reject("malformed") from None


def _google_signed(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer``'s key verifies ``child``'s signature: an RSA key and PKCS#1 v1.5 with
    SHA-256/384/512 (Google's AK CA profile; anything else is chain_invalid)."""
    try:
        key, algorithm = issuer.public_key(), child.signature_hash_algorithm
    except Exception:  # a key or signature algorithm cryptography cannot read
        raise Reject("chain_invalid") from None
    if not isinstance(key, rsa.RSAPublicKey) or not isinstance(
        algorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512
    ):
        raise Reject("chain_invalid")
    try:
        key.verify(child.signature, child.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


def _google_ca(cert: x509.Certificate) -> None:
    """An issuing certificate is a CA: basicConstraints cA and keyCertSign."""
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        ok = basic.ca and usage.key_cert_sign
    except Exception:  # absent, or unreadable
        raise Reject("chain_invalid") from None
    if not ok:
        raise Reject("chain_invalid")


def gcp_chain(  # noqa: PLR0917 - one caller, read beside its docstring
    ak_der: bytes, given: list[bytes], anchors: list[Anchor], key: Any, at: datetime,
    skew: timedelta,
) -> x509.Certificate:  # fmt: skip
    """The AK certificate, once the path from it up to a Google root the entry names holds
    at ``at`` and its key is the quote's. Up from the AK certificate, each issuer is a root
    the entry names (RSA, its name the certificate's issuer, its key verifying the
    signature: a root delivered with the chain is not trusted for being there), else a
    certificate given (or the pinned 2020 intermediate, with the 2018 root) named as the
    issuer, a CA that signed it; a self-signed one, or none, is untrusted_root. At most four
    certificates below the root. Then every certificate, root first, is valid at ``at``; the
    AK certificate is no CA; its key is the AK."""
    leaf = _google_load(ak_der)
    if any(hashlib.sha256(der).hexdigest() == GOOGLE_2018_ROOT for _, der in anchors):
        given = [*given, GOOGLE_2020_INTERMEDIATE]
    pool = [(_google_load(der), der) for der in given]
    roots = [
        (anchor, _tbs_names(anchor.tbs_certificate_bytes)[1])
        for anchor, _ in anchors
        if isinstance(anchor.public_key(), rsa.RSAPublicKey)
    ]
    path, ders, root = [leaf], [ak_der], None
    while root is None:
        if len(path) > GCP_MAX_PATH:
            raise Reject("chain_invalid")
        current = path[-1]
        root = next(
            (r for r, name in roots if name == current[1] and _google_signed(current[0], r)), None
        )
        if root is not None:
            break
        issuer = next(((c, der) for c, der in pool if c[2] == current[1] and der not in ders), None)
        if issuer is None or issuer[0][1] == issuer[0][2]:
            raise Reject("untrusted_root")  # no path to a root the entry names
        _google_ca(issuer[0][0])
        if not _google_signed(current[0], issuer[0][0]):
            raise Reject("chain_invalid")
        path.append(issuer[0])
        ders.append(issuer[1])
    for cert in [root, *(c[0] for c in reversed(path))]:
        if cert.not_valid_before_utc > at + skew:
            raise Reject("not_yet_valid")
        if at > cert.not_valid_after_utc:
            raise Reject("expired")
    try:
        basic = leaf[0].extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    except Exception:
        raise Reject("malformed") from None
    if basic is not None and basic.ca:
        raise Reject("chain_invalid")  # a CA certificate, not an AK's
    try:
        certified = _spki(leaf[0].public_key())
    except Exception:  # a key cryptography cannot read is not the AK
        certified = b""
    if certified != _spki(key):
        raise Reject("ak_certificate_mismatch")
    return leaf[0]


def nitrotpm_binding(  # noqa: PLR0917 - one caller, read beside its docstring
    document: bytes, quote: dict[str, Any], quoted: dict[str, dict[int, bytes]], key: Any,
    anchors: list[Anchor], at: datetime, skew: timedelta,
) -> None:  # fmt: skip
    """The NitroTPM document vouches for the AK: its envelope, fields and ES384 signature,
    its chain to the Nitro root the entry names at the verification time ``at``, as every
    certificate is judged (this file's Nitro judge: an archived document fails as expired
    once its short-lived chain has lapsed); then it is a NitroTPM document, its public_key is
    04 || X || Y of the AK, its nonce the quote's extraData (its first 32 bytes, if 64), and
    its nitrotpm_pcrs the quoted SHA-384 PCRs."""
    payload, signature, fields = nitro_document(document)
    anchor = next((a for a in anchors if a[1] == fields["cabundle"][0]), None)
    if anchor is None or not isinstance(anchor[0].public_key(), ec.EllipticCurvePublicKey):
        raise Reject("untrusted_root")
    signer = nitro_chain(fields, anchor[0], anchor[1], at, skew)
    half = len(signature) // 2
    r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    try:
        structure = cbor2.dumps(["Signature1", b"\xa1\x01\x38\x22", b"", payload])
        signer.verify(encode_dss_signature(r, s), structure, ec.ECDSA(hashes.SHA384()))
    except Exception:
        raise Reject("signature_invalid") from None
    extra = quote["extra_data"]
    nonce = extra[:32] if len(extra) == 64 else extra
    pcrs = fields.get("nitrotpm_pcrs")
    point = None
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    if (
        pcrs is None or point is None or fields.get("public_key") != point
        or fields.get("nonce") != nonce
        or any(pcrs.get(i) != value for i, value in quoted.get("sha384", {}).items())
    ):  # fmt: skip
        raise Reject("ak_binding_invalid")


def enrolled(ak: str, enrolments: list[dict[str, Any]], at: datetime) -> None:
    """The AK (SHA-256 of its SPKI) is enrolled at ``at``: an enrolment of it at or before
    ``at`` and no revocation at or before ``at`` (the book's rule: the first enrolment and
    the first revocation of each AK)."""
    mine = [e for e in enrolments if e["ak_sha256"] == ak]
    enrolled_at = min((e["at"] for e in mine if e["action"] == "enrolled"), default=None)
    revoked_at = min((e["at"] for e in mine if e["action"] == "revoked"), default=None)
    if enrolled_at is None or enrolled_at > at:
        raise Reject("ak_unendorsed")  # enrolled only later: nothing vouched for it then
    if revoked_at is not None and revoked_at <= at:
        raise Reject("ak_enrolment_revoked")


def tpm_judge(  # noqa: PLR0917 - one caller, read beside its docstring
    evidence: bytes, anchors: list[Anchor], endorsements: list[tuple[str, bytes]],
    enrolments: list[dict[str, Any]], policy: dict[str, Any], at: datetime,
    binding: bytes | None,
) -> tuple[str, set[str]]:  # fmt: skip
    """(status, reason codes) of a TPM quote as the service judged it at ``at``: against the
    Google roots and the Nitro root the entry names (``anchors``), with its AK certificate and
    intermediates (``endorsements``: ak-certificate, certificate), the enrolment entries the
    bundle carries (``enrolments``: what :func:`enrolment_problem` gives), ``policy`` what
    :func:`worker_policy` gives; ``binding`` the user_data whose SHA-256 extraData[32:64]
    must be."""
    box = tpm_container(evidence)
    quote, signature = tpm_attest(box["attest"]), tpm_signature(box["signature"])
    key = tpm_key(box["ak"])
    tpm_selected(quote, box["pcrs"])
    if len(endorsements) > MAX_ENDORSEMENTS or any(
        len(der) > MAX_ENDORSEMENT_BYTES for _, der in endorsements
    ):
        raise Reject("oversize")
    tpm_signed(key, signature, box["attest"])
    quoted = tpm_pcrs(quote, box["pcrs"])
    replayed = tpm_replay(box, quoted)
    skew = policy["skew"]
    certificates = [der for kind, der in endorsements if kind == "ak-certificate"]
    if "nitro_document" in box:
        nitrotpm_binding(box["nitro_document"], quote, quoted, key, anchors, at, skew)
        path = "aws-nitrotpm"
    elif certificates:
        if len(certificates) > 1:
            raise Reject("endorsement_mismatch")  # which of them would be the AK's?
        given = [der for kind, der in endorsements if kind == "certificate"]
        gcp_chain(certificates[0], given, anchors, key, at, skew)
        path = "gcp"
    elif any(e["ak_sha256"] == hashlib.sha256(box["ak"]).hexdigest() for e in enrolments):
        enrolled(hashlib.sha256(box["ak"]).hexdigest(), enrolments, at)
        path = "enrolled"
    else:
        raise Reject("ak_unendorsed")
    codes = tpm_appraisal(quote, quoted, replayed, path, policy, binding)
    if codes:
        return "contraindicated", codes
    return ("warning" if policy["images"] is None else "affirming"), codes


def tpm_appraisal(  # noqa: PLR0917 - one caller
    quote: dict[str, Any], quoted: dict[str, dict[int, bytes]],
    replayed: tuple[list[Any], set[tuple[str, int]]] | None, path: str, policy: dict[str, Any],
    binding: bytes | None,
) -> set[str]:  # fmt: skip
    """Every way the authentic quote falls short of the policy: the images (their PCRs, and
    their events among those the logs prove: in a PCR and banks the replay compared with the
    quote; the closest image's misses are named), the event log required, the AK path, the
    result binding, PCRs all at their reset values."""
    events, compared = replayed if replayed is not None else ([], set())
    codes: set[str] = set()
    closest: list[str] | None = None
    for image in policy["images"] or []:
        pcr_misses = sum(
            quoted.get(bank, {}).get(index) != value
            for bank, values in image["pcrs"].items() for index, value in values.items()
        )  # fmt: skip
        event_misses = sum(
            not all((b, want_pcr) in compared for b in want) or not any(
                pcr == want_pcr and all(digests.get(b) == d for b, d in want.items())
                for pcr, digests in events
            )
            for want_pcr, want in image["events"]
        )  # fmt: skip
        if not pcr_misses and not event_misses:
            closest = []
            break
        misses = ["pcr_mismatch"] * pcr_misses + ["event_missing"] * event_misses
        if closest is None or len(misses) < len(closest):
            closest = misses
    codes.update(closest or [])
    if policy["require_event_log"] and replayed is None:
        codes.add("event_log_missing")
    if path not in policy["ak_paths"]:
        codes.add("ak_path_not_allowed")
    if binding is not None:
        extra = quote["extra_data"]
        if len(extra) != 64 or not any(extra[32:]):
            codes.add("result_binding_missing")
        elif extra[32:] != hashlib.sha256(binding).digest():
            codes.add("result_binding_mismatch")
    values = [value for bank in quoted.values() for value in bank.values()]
    if policy["reject_all_reset"] and all(not any(v) or v == b"\xff" * len(v) for v in values):
        codes.add("pcrs_all_reset")
    return codes


# --- the NVIDIA GPU judge --------------------------------------------------------------------
# The same rules, in the same order, as the project's verifier (verifier/nvidia/), written
# again here from DMTF's SPDM 1.1 (GET_MEASUREMENTS || MEASUREMENTS), NVIDIA's opaque data,
# TCG DICE (the leaf's FWID), W3C XML Signature and Canonical XML 1.1 (the RIMs): the report,
# by its lengths (oversize, malformed, unsupported); the endorsements (oversize,
# endorsement_mismatch, endorsement_missing); the device chain (malformed, untrusted_root,
# chain_invalid, not_yet_valid, expired); the report's signature (signature_invalid); the
# FWID (fwid_mismatch); the chip (unsupported); each RIM (oversize, malformed,
# rim_chain_invalid, not_yet_valid, expired, rim_signature_invalid) and the pair
# (endorsement_mismatch); then every policy violation. The RIMs' XML is read with expat,
# namespace processing off (the declarations are seen as written), and canonicalised here.

NVIDIA = "nvidia-gpu"
MAX_NV_REPORT, MAX_NV_ENDORSEMENTS, MAX_RIM = 16 * 1024, 12, 64 * 1024
NV_ENDORSEMENTS = ("device-certificate", "rim", "ocsp")
NV_CHIPS = {"GH100": "HOPPER", "GB100": "BLACKWELL", "LS_10": "LS10"}
NV_ARCHS = {"HOPPER": True, "BLACKWELL": True, "LS10": False}  # whether they report a driver
NV_FLAGS = {0: "SPT", 1: "MPT", 2: "PPCIE"}
NV_NVDEC_INDEX, NV_NVDEC_DISABLED = 35, 0x55
NV_UNDERSTOOD_CRITICAL = (
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
)  # fmt: skip
FWID_OID, TCB_INFO_OID = "2.23.133.5.4.1", "2.23.133.5.4.1.1"
SHA384_OID = bytes.fromhex("608648016503040202")  # 2.16.840.1.101.3.4.2.2, content bytes
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SWID_NS = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
HASH_NS = "http://www.w3.org/2001/04/xmlenc#sha384"
XML_NS = "http://www.w3.org/XML/1998/namespace"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
SHA384_DIGEST = "http://www.w3.org/2001/04/xmldsig-more#sha384"
VBIOS_VERSION = re.compile(r"[0-9a-fA-F]{2}(\.[0-9a-fA-F]{2}){4}")
DRIVER_VERSION = re.compile(r"[0-9]{1,4}(\.[0-9]{1,4}){1,3}")
MAX_XML_DEPTH = 256  # libxml2's limit without XML_PARSE_HUGE
# A namespace name must be a URI reference (RFC 3986), as libxml2 (the project's lxml) checks
# it: a fragment may hold [ and ], an IP literal anything but ], a port at most 2^31 - 1.
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_AUTHORITY = (
    r"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*@)?"
    r"(?:\[[^\]]*\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]+)?"
)
NS_URI = re.compile(
    rf"(?:[A-Za-z][A-Za-z0-9+.\-]*:(?://{_AUTHORITY}(?:/{_PCHAR}*)*|/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"
    rf"|{_PCHAR}+(?:/{_PCHAR}*)*|)|(?://{_AUTHORITY}(?:/{_PCHAR}*)*|/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"
    rf"|(?:[A-Za-z0-9\-._~!$&'()*+,;=@]|%[0-9A-Fa-f]{{2}})+(?:/{_PCHAR}*)*|))"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?\[\]])*)?"
)
_PORT = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//(?:[^/?#@]*@)?(?:\[[^\]]*\])?[^/?#:]*:([0-9]+)(?:[/?#]|$)"
)


def ns_uri_ok(value: str) -> bool:
    """Whether a namespace declaration's value is a URI reference libxml2 takes."""
    if not NS_URI.fullmatch(value):
        return False
    port = _PORT.match(value)
    return port is None or int(port.group(1)) <= 2**31 - 1


NV_POLICY_KEYS = {
    "name", "evidence_kind", "images", "require_rims", "feature_flags", "clock_skew_seconds",
    "unsafe_accept_any", "min_gpus", "min_switches",
}  # fmt: skip
NV_MAX_REQUIRED = 16  # the most devices a policy may require (a submission carries 16)


def spdm_report(data: bytes) -> dict[str, Any]:
    """GET_MEASUREMENTS request || MEASUREMENTS response, every field by its length: the
    blocks by number (1-based), the opaque fields by type, the signature where the lengths put
    it (bytes after it are trailing: reported, never signed)."""
    if len(data) > MAX_NV_REPORT:
        raise Reject("oversize")
    read = _Reader(data, "<")

    def header(code: int) -> None:
        version, found = read.uint(1), read.uint(1)
        if found != code:
            raise Reject("malformed")
        if version != 0x11:
            raise Reject("unsupported")  # SPDM 1.1 only

    header(0xE0)
    if not read.uint(1) & 0x01 or read.uint(1) != 0xFF:
        raise Reject("unsupported")  # an unsigned report, or not of all blocks
    nonce = read.take(32)
    if read.uint(1) & 0xF0:
        raise Reject("malformed")  # slot id 0..15
    header(0x60)
    read.take(2)
    count = read.uint(1)
    blocks = _spdm_blocks(read.take(read.uint(3)), count)
    read.take(32)  # the responder nonce
    opaque = _Reader(read.take(read.uint(2)), "<")
    fields: dict[int, bytes] = {}
    while opaque.at < len(opaque.data):
        kind = opaque.uint(2)
        value = opaque.take(opaque.uint(2))
        if kind in fields:
            raise Reject("malformed")
        fields[kind] = value
    signed = read.at
    signature = read.take(96)
    vbios = fields.get(6)
    fwid, flag, nvdec = fields.get(20), fields.get(36), fields.get(11)
    report: dict[str, Any] = {
        "nonce": nonce, "blocks": blocks, "signed": data[:signed], "signature": signature,
        "trailing": data[read.at :], "driver": _nv_text(fields.get(3)),
        "vbios": None if vbios is None else (
            ".".join(f"{vbios[i]:02x}" for i in (3, 2, 1, 0, 4)) if len(vbios) == 8
            else str(_nv_text(vbios)).lower()
        ),
    }  # fmt: skip
    if fwid is not None and len(fwid) != 48:
        raise Reject("malformed")
    report["fwid"], report["chip"] = fwid, _nv_text(fields.get(35))
    if flag is not None and not 1 <= len(flag) <= 4:
        raise Reject("malformed")
    if flag is not None and int.from_bytes(flag, "little") not in NV_FLAGS:
        raise Reject("unsupported")
    report["flag"] = None if flag is None else NV_FLAGS[int.from_bytes(flag, "little")]
    if nvdec is not None and (len(nvdec) != 1 or nvdec[0] not in (0xAA, 0x55)):
        raise Reject("malformed")
    report["nvdec_disabled"] = nvdec == bytes([NV_NVDEC_DISABLED])
    return report


def _spdm_blocks(record: bytes, count: int) -> dict[int, bytes]:
    """DMTF measurement blocks filling the record exactly: number -> value."""
    read, blocks = _Reader(record, "<"), {}
    while read.at < len(record):
        index, specification, size = read.uint(1), read.uint(1), read.uint(2)
        body = read.take(size)
        if specification != 0x01:
            raise Reject("unsupported")  # not DMTF
        if size < 3 or int.from_bytes(body[1:3], "little") + 3 != size:
            raise Reject("malformed")
        if index == 0 or index in blocks:
            raise Reject("malformed")
        blocks[index] = body[3:]
    if len(blocks) != count:
        raise Reject("malformed")
    return blocks


def _nv_text(value: bytes | None) -> str | None:
    """An opaque ASCII field, up to its first NUL, printable."""
    if value is None:
        return None
    try:
        text = value.split(b"\x00", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        raise Reject("malformed") from None
    if not text.isprintable():
        raise Reject("malformed")
    return text


def _nv_load(der: bytes, link: str) -> tuple[x509.Certificate, ec.EllipticCurvePublicKey]:
    """A certificate of an NVIDIA path and its P-384 key (else ``link``)."""
    try:
        cert = certificate(der)
        _ = cert.extensions
        key = cert.public_key()
    except Exception:  # anything cryptography raises for a certificate that is not one
        raise Reject("malformed") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise Reject(link)
    return cert, key


def _nv_self_issued(der: bytes) -> bool:
    try:
        cert = certificate(der)
        return bool(cert.issuer == cert.subject)
    except Exception:  # not a certificate: not a root either
        return False


def _nv_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _nv_link(child: x509.Certificate, parent: tuple[x509.Certificate, Any], link: str) -> None:
    """``parent`` issued ``child``: names, CA, no unknown critical extension, ECDSA SHA-384."""
    issuer, key = parent
    for cert in (child, issuer):
        if any(e.critical and e.oid not in NV_UNDERSTOOD_CRITICAL for e in cert.extensions):
            raise Reject(link)
    if child.issuer != issuer.subject:
        raise Reject(link)
    try:
        basic = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise Reject(link) from None
    usage = _nv_usage(issuer)
    if not basic.ca or usage is None or not usage.key_cert_sign:
        raise Reject(link)
    if child.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA384:
        raise Reject(link)
    try:
        key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise Reject(link) from None


def nv_path(  # noqa: PLR0917 - two callers, read beside its docstring
    ders: list[bytes], anchors: list[Anchor], at: datetime, skew: timedelta,
    length: int | None, link: str, untrusted: str,
) -> tuple[x509.Certificate, ec.EllipticCurvePublicKey]:  # fmt: skip
    """The leaf and its key of a path given leaf first to one of ``anchors``: the last
    certificate is an anchor (by its bytes), or is issued by one (by name); ``length``
    certificates with the root (None: 2 to 6); every link as :func:`_nv_link`; the leaf may
    sign; every certificate valid at ``at`` (root first). A device path fails with
    chain_invalid or untrusted_root, a RIM signer's with rim_chain_invalid."""
    if not ders:
        raise Reject(link)
    anchor = next((a for a in anchors if a[1] == ders[-1]), None)
    given = anchor is not None
    if anchor is None:
        if _nv_self_issued(ders[-1]):
            raise Reject(untrusted)
        issuer = _nv_load(ders[-1], link)[0].issuer
        anchor = next((a for a in anchors if a[0].subject == issuer), None)
        if anchor is None:
            raise Reject(untrusted)
    count = len(ders) + (0 if given else 1)
    if count != length if length is not None else not 2 <= count <= 6:
        raise Reject(link)
    loaded = [_nv_load(der, link) for der in ders[: count - 1]]
    root_key = anchor[0].public_key()
    if not isinstance(root_key, ec.EllipticCurvePublicKey) or root_key.curve.name != "secp384r1":
        raise Reject(link)
    path = [*loaded, (anchor[0], root_key)]
    for (child, _), parent in itertools.pairwise(path):
        _nv_link(child, parent, link)
    usage = _nv_usage(loaded[0][0])
    if usage is not None and not usage.digital_signature:
        raise Reject(link)
    for cert, _ in reversed(path):
        _valid(cert, at, skew)
    return loaded[0]


def _der_children(data: bytes, depth: int = 0) -> list[tuple[int, bytes]]:
    """The DER elements filling ``data`` exactly, (tag, content): one-byte tags, definite
    minimal lengths of at most three bytes."""
    out, at = [], 0
    if depth > 8:
        raise Reject("malformed")
    while at < len(data):
        if at + 2 > len(data) or data[at] & 0x1F == 0x1F or data[at + 1] == 0x80:
            raise Reject("malformed")
        tag, first, start = data[at], data[at + 1], at + 2
        length = first
        if first & 0x80:
            count = first & 0x7F
            raw = data[start : start + count]
            if count > 3 or len(raw) != count or raw[0] == 0:
                raise Reject("malformed")
            length, start = int.from_bytes(raw, "big"), start + count
            if length < 0x80:
                raise Reject("malformed")
        if start + length > len(data):
            raise Reject("malformed")
        content = data[start : start + length]
        if tag & 0x20:
            _der_children(content, depth + 1)  # a constructed element: its children are DER
        out.append((tag, content))
        at = start + length
    return out


def _der_one(data: bytes) -> tuple[int, bytes]:
    items = _der_children(data)
    if len(items) != 1:
        raise Reject("malformed")
    return items[0]


def _fwid_digest(element: tuple[int, bytes]) -> bytes:
    """FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER (SHA-384), digest OCTET STRING (48) }"""
    tag, content = element
    parts = _der_children(content) if tag == 0x30 else []
    if len(parts) != 2 or parts[0][0] != 0x06 or parts[1][0] != 0x04:
        raise Reject("malformed")
    if parts[0][1] != SHA384_OID or len(parts[1][1]) != 48:
        raise Reject("malformed")
    return parts[1][1]


def leaf_fwid(leaf: x509.Certificate) -> bytes | None:
    """The FWID the leaf certifies: the DICE TcbInfo's fwids[0] (Blackwell), else extension
    2.23.133.5.4.1's FWID (Hopper, LS10: NVIDIA's "last 48 bytes"); None if neither."""
    values = {
        e.oid.dotted_string: e.value.value for e in leaf.extensions
        if e.oid.dotted_string in (FWID_OID, TCB_INFO_OID)
        and isinstance(e.value, x509.UnrecognizedExtension)
    }  # fmt: skip
    if TCB_INFO_OID in values:
        tag, content = _der_one(values[TCB_INFO_OID])
        if tag != 0x30:
            raise Reject("malformed")
        last, fwids = -1, None
        for field, value in _der_children(content):
            number = field & 0x1F
            if field & 0xC0 != 0x80 or number > 10 or number <= last:
                raise Reject("malformed")  # context fields [0]..[10], in order, once
            last = number
            if number == 6:
                if field != 0xA6:
                    raise Reject("malformed")
                fwids = _der_children(value)
        if not fwids:
            raise Reject("malformed")
        return _fwid_digest(fwids[0])
    if FWID_OID in values:
        tag, content = _der_one(values[FWID_OID])
        parts = _der_children(content) if tag == 0x30 else []
        if len(parts) != 3 or parts[0][0] != 0x02 or parts[1][0] != 0x30:
            raise Reject("malformed")
        return _fwid_digest(parts[2])
    return None


# Canonical XML 1.1 (inclusive, without comments), on a tree read with expat.


class XmlElement:
    """An element as written: its qualified name, its attributes (not the namespace
    declarations) in order, the namespaces in scope, its children (elements, text, and
    processing instructions as ("?", target, data); comments as ("!", text))."""

    def __init__(
        self, name: str, attributes: list[tuple[str, str]], scope: dict[str, str],
        parent: XmlElement | None,
    ) -> None:  # fmt: skip
        self.name, self.attributes, self.scope, self.parent = name, attributes, scope, parent
        self.children: list[Any] = []

    def resolved(self, name: str, *, attribute: bool = False) -> tuple[str, str]:
        """(namespace, local name) of a qualified name here (unprefixed attributes: none)."""
        prefix, colon, local = name.rpartition(":")
        if not colon:
            return ("" if attribute else self.scope.get("", "")), name
        if not prefix or not local or ":" in prefix:
            raise Reject("malformed")
        if prefix == "xml":
            return XML_NS, local
        if prefix not in self.scope:
            raise Reject("malformed")  # an unbound prefix
        return self.scope[prefix], local

    def is_(self, namespace: str, local: str) -> bool:
        return self.resolved(self.name) == (namespace, local)

    def get(self, namespace: str, local: str) -> str | None:
        for name, value in self.attributes:
            if self.resolved(name, attribute=True) == (namespace, local):
                return value
        return None

    def elements(self, namespace: str, local: str) -> list[XmlElement]:
        return [c for c in self.children if isinstance(c, XmlElement) and c.is_(namespace, local)]

    def text(self) -> str:
        """The text before the first child node (what lxml calls ``.text``)."""
        out = []
        for child in self.children:
            if not isinstance(child, str):
                break
            out.append(child)
        return "".join(out)


def xml_document(data: bytes) -> tuple[XmlElement, list[Any], list[Any]]:  # noqa: PLR0915 - handlers
    """(root, nodes before it, nodes after it) of a well-formed document with no DTD and no
    entity but XML's own; namespaces checked as XML Namespaces 1.0 asks (declarations not
    empty for a prefix, every prefix bound, no attribute twice once resolved)."""
    parser = expat.ParserCreate()  # namespace processing OFF: declarations as written
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    state: dict[str, Any] = {"open": None, "root": None, "before": [], "after": [], "depth": 0}

    def refuse(*_: Any) -> Any:
        raise Reject("malformed")  # a DTD, an entity declaration or an external entity

    def start(name: str, flat: list[str]) -> None:
        parent = state["open"]
        if parent is None and state["root"] is not None:
            raise Reject("malformed")
        state["depth"] += 1
        if state["depth"] > MAX_XML_DEPTH:
            raise Reject("malformed")
        scope = dict(parent.scope) if parent is not None else {}
        attributes = []
        for name_, value in zip(flat[::2], flat[1::2], strict=True):
            declares = name_ == "xmlns" or name_.startswith("xmlns:")
            if declares and value and not ns_uri_ok(value):
                raise Reject("malformed")  # not a URI: lxml refuses the document
            if name_ == "xmlns":
                scope[""] = value
            elif name_.startswith("xmlns:"):
                prefix = name_[6:]
                if (
                    not value
                    or not prefix
                    or ":" in prefix
                    or prefix == "xmlns"
                    or ((prefix == "xml") != (value == XML_NS))
                ):
                    raise Reject("malformed")
                scope[prefix] = value
            else:
                attributes.append((name_, value))
        element = XmlElement(name, attributes, scope, parent)
        element.resolved(name)
        keys = [element.resolved(n, attribute=True) for n, _ in attributes]
        if len(set(keys)) != len(keys):
            raise Reject("malformed")
        if parent is None:
            state["root"] = element
        else:
            parent.children.append(element)
        state["open"] = element

    def end(_: str) -> None:
        state["depth"] -= 1
        state["open"] = state["open"].parent

    def node(item: Any) -> None:
        if state["open"] is not None:
            state["open"].children.append(item)
        elif not isinstance(item, str):
            state["before" if state["root"] is None else "after"].append(item)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = node
    parser.ProcessingInstructionHandler = lambda target, data: node(("?", target, data))
    parser.CommentHandler = lambda text: node(("!", text))
    try:
        parser.Parse(data, True)
    except (expat.ExpatError, ValueError, RecursionError):
        raise Reject("malformed") from None
    if state["root"] is None:
        raise Reject("malformed")
    return state["root"], state["before"], state["after"]


def _c14n_text(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")
    )


def _c14n_attribute(value: str) -> str:
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), ('"', "&quot;"), ("\t", "&#x9;"),
                         ("\n", "&#xA;"), ("\r", "&#xD;")):  # fmt: skip
        value = value.replace(raw, escaped)
    return value


def _c14n_pi(item: tuple[str, str, str]) -> str:
    return f"<?{item[1]}{' ' + item[2] if item[2] else ''}?>"


def c14n(
    element: XmlElement, out: list[str], rendered: dict[str, str], leave_out: Any = None,
    inherited: list[tuple[str, str]] | None = None,
) -> None:  # fmt: skip
    """Canonical XML 1.1 of ``element`` (without comments) appended to ``out``; ``rendered``:
    the namespaces the nearest rendered ancestor declared (an apex: none, so every namespace
    in scope is rendered on it); ``leave_out``: an element left out with its subtree (the
    enveloped signature); ``inherited``: the xml:lang and xml:space an apex takes from its
    ancestors."""
    namespaces = sorted(
        (prefix, uri) for prefix, uri in element.scope.items()
        if uri != rendered.get(prefix, "")
    )  # fmt: skip
    attributes = sorted(
        (element.resolved(name, attribute=True), name, value)
        for name, value in [*element.attributes, *(inherited or [])]
    )  # fmt: skip
    out.append("<" + element.name)
    out.extend(
        f' xmlns{":" + prefix if prefix else ""}="{_c14n_attribute(uri)}"'
        for prefix, uri in namespaces
    )
    out.extend(f' {name}="{_c14n_attribute(value)}"' for _, name, value in attributes)
    out.append(">")
    scope = {prefix: uri for prefix, uri in element.scope.items() if uri}
    for child in element.children:
        if isinstance(child, XmlElement):
            if child is not leave_out:
                c14n(child, out, scope, leave_out)
        elif isinstance(child, str):
            out.append(_c14n_text(child))
        elif child[0] == "?":
            out.append(_c14n_pi(child))
    out.append(f"</{element.name}>")


def c14n_document(
    root: XmlElement, before: list[Any], after: list[Any], leave_out: Any = None
) -> bytes:
    """The canonical form of a whole document (its processing instructions outside the root,
    each on its line; no comments), ``leave_out`` left out."""
    out = [_c14n_pi(item) + "\n" for item in before if item[0] == "?"]
    c14n(root, out, {}, leave_out)
    out.extend("\n" + _c14n_pi(item) for item in after if item[0] == "?")
    return "".join(out).encode()


def c14n_subset(element: XmlElement) -> bytes:
    """The canonical form of the document subset that is ``element`` and its descendants:
    every namespace in scope is rendered on it, and the xml:lang and xml:space of its
    ancestors are inherited (Canonical XML 1.1, 2.4); an ancestor's xml:base, which 1.1
    would join, is refused."""
    inherited: list[tuple[str, str]] = []
    names = {element.resolved(n, attribute=True) for n, _ in element.attributes}
    ancestor = element.parent
    while ancestor is not None:
        for name, value in ancestor.attributes:
            key = ancestor.resolved(name, attribute=True)
            if key == (XML_NS, "base"):
                raise Reject("malformed")
            if key in ((XML_NS, "lang"), (XML_NS, "space")) and key not in names:
                names.add(key)
                inherited.append((name, value))
        ancestor = ancestor.parent
    out: list[str] = []
    c14n(element, out, {}, None, inherited)
    return "".join(out).encode()


def _only(element: XmlElement, local: str) -> XmlElement:
    found = element.elements(DS_NS, local)
    if not found:
        raise Reject("malformed")
    return found[0]


def rim_document(data: bytes) -> dict[str, Any]:  # noqa: PLR0915 - one list of rules
    """A RIM read (nothing verified yet): its signature's certificates, its kind and version,
    its active measurements by index (each alternative of its size)."""
    if len(data) > MAX_RIM:
        raise Reject("oversize")
    root, before, after = xml_document(data)
    signatures = root.elements(DS_NS, "Signature")
    if len(signatures) != 1:
        raise Reject("malformed")
    certificates = []
    pending = [signatures[0]]
    while pending:  # the X509Certificate elements in document order
        element = pending.pop(0)
        if element.is_(DS_NS, "X509Certificate"):
            try:
                certificates.append(
                    base64.b64decode("".join(element.text().split()), validate=True)
                )
            except ValueError:
                raise Reject("malformed") from None
        pending[:0] = [c for c in element.children if isinstance(c, XmlElement)]
    if not certificates:
        raise Reject("malformed")
    if not root.is_(SWID_NS, "SoftwareIdentity"):
        raise Reject("malformed")
    metas, payloads = root.elements(SWID_NS, "Meta"), root.elements(SWID_NS, "Payload")
    version = metas[0].get("", "colloquialVersion") if len(metas) == 1 else None
    if not version:
        raise Reject("malformed")
    if VBIOS_VERSION.fullmatch(version):
        kind = "vbios"
    elif DRIVER_VERSION.fullmatch(version):
        kind = "driver"
    else:
        raise Reject("malformed")
    if len(payloads) != 1:
        raise Reject("malformed")
    resources = payloads[0].elements(SWID_NS, "Resource")
    if len(resources) > 256:
        raise Reject("malformed")
    measurements: dict[int, tuple[int, list[bytes]]] = {}
    seen: set[int] = set()
    for resource in resources:
        if resource.get("", "type") != "Measurement":
            continue
        index = _rim_integer(resource, "index", 0, 255)
        if index in seen:
            raise Reject("malformed")
        seen.add(index)
        active = resource.get("", "active")
        if active not in ("True", "False"):
            raise Reject("malformed")
        if active == "False":
            continue
        size = _rim_integer(resource, "size", 1, 64)
        alternatives = []
        for n in range(_rim_integer(resource, "alternatives", 1, 16)):
            text = resource.get(HASH_NS, f"Hash{n}")
            try:
                value = bytes.fromhex(text if text is not None else "-")
            except ValueError:
                raise Reject("malformed") from None
            if len(value) != size:
                raise Reject("malformed")
            alternatives.append(value)
        measurements[index] = (size, alternatives)
    return {
        "root": root, "before": before, "after": after, "signature": signatures[0],
        "certificates": certificates, "kind": kind, "version": version.lower(),
        "measurements": measurements,
    }  # fmt: skip


def _rim_integer(element: XmlElement, name: str, low: int, high: int) -> int:
    text = element.get("", name)
    if text is None or not text.isdigit() or len(text) > 4:
        raise Reject("malformed")
    try:
        value = int(text)
    except ValueError:  # a digit that is not ASCII
        raise Reject("malformed") from None
    if not low <= value <= high:
        raise Reject("malformed")
    return value


def rim_signed(rim: dict[str, Any], key: ec.EllipticCurvePublicKey) -> None:
    """The enveloped XML signature, as XML-DSig says: ecdsa-sha384 (raw r || s) by ``key``
    over the canonical SignedInfo (a document subset), then its one Reference (URI "", the
    document without its Signature, canonicalised) by its SHA-384. The methods: C14N 1.1,
    ecdsa-sha384 and sha384 only (malformed otherwise)."""
    signature = rim["signature"]
    signed_info = _only(signature, "SignedInfo")
    method = _only(signed_info, "CanonicalizationMethod").get("", "Algorithm")
    if method != C14N11 or _only(signed_info, "SignatureMethod").get("", "Algorithm") != (
        ECDSA_SHA384
    ):
        raise Reject("malformed")
    references = signed_info.elements(DS_NS, "Reference")
    for reference in references:  # the schema first, as signxml validates it: each has both
        _only(reference, "DigestMethod")
        _only(reference, "DigestValue")
    try:
        raw = base64.b64decode(_only(signature, "SignatureValue").text())
    except ValueError:
        raise Reject("malformed") from None
    r, s = int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big")
    try:
        if len(raw) != 96:
            raise InvalidSignature
        key.verify(encode_dss_signature(r, s), c14n_subset(signed_info), ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        raise Reject("rim_signature_invalid") from None
    for reference in references:
        if reference.get("", "URI") != "":
            raise Reject("malformed")  # only the enveloping document is signed
        transforms = [
            t.get("", "Algorithm") for group in reference.elements(DS_NS, "Transforms")
            for t in group.elements(DS_NS, "Transform")
        ]  # fmt: skip
        if any(t not in (ENVELOPED, C14N11) for t in transforms):
            raise Reject("malformed")
        leave_out = signature if ENVELOPED in transforms else None
        canonical = c14n_document(rim["root"], rim["before"], rim["after"], leave_out)
        if _only(reference, "DigestMethod").get("", "Algorithm") != SHA384_DIGEST:
            raise Reject("malformed")
        try:
            value = base64.b64decode(_only(reference, "DigestValue").text())
        except ValueError:
            raise Reject("malformed") from None
        if value != hashlib.sha384(canonical).digest():
            raise Reject("rim_signature_invalid")
    if len(references) != 1:
        raise Reject("rim_signature_invalid")


def nvidia_policy(data: Any) -> dict[str, Any]:
    """The NvidiaPolicy JSON (a dict) as this judge uses it; policy_invalid if it is not
    one (the project's rules: images unique by name, of a known arch in any case, VBIOS
    versions always, driver versions on GPUs only; no images only for unsafe_accept_any;
    require_rims both unless it says otherwise, and none under unsafe_accept_any unless it
    says so; min_gpus and min_switches whole numbers 0 to 16, the devices required beside the
    CPU evidence, which the composition counts)."""
    if not isinstance(data, dict) or set(data) - NV_POLICY_KEYS:
        raise Reject("policy_invalid")
    accept_any = data.get("unsafe_accept_any", False)
    rims = data.get("require_rims", [] if accept_any is True else ["driver", "vbios"])
    flags, images = data.get("feature_flags"), data.get("images", [])
    skew = data.get("clock_skew_seconds", 60)
    counts = (data.get("min_gpus", 1), data.get("min_switches", 0))
    if (
        data.get("evidence_kind") != NVIDIA or not isinstance(accept_any, bool)
        or not isinstance(rims, list) or not all(isinstance(r, str) for r in rims)
        or not set(rims) <= {"driver", "vbios"}
        or not (flags is None or (isinstance(flags, list) and all(isinstance(f, str) for f in flags)
                                  and set(flags) <= {*NV_FLAGS.values()}))
        or not isinstance(images, list) or bool(images) == accept_any
        or not (_is_int(skew) or isinstance(skew, float)) or not 0 <= skew <= 10 * 365 * 86400
        or not isinstance(data.get("name", "unsafe-accept-any"), str)
        or not (accept_any or data.get("name"))
        or not all(type(n) is int and 0 <= n <= NV_MAX_REQUIRED for n in counts)
    ):  # fmt: skip
        raise Reject("policy_invalid")
    chosen = []
    for image in images:
        if not isinstance(image, dict) or set(image) - {
            "name", "arch", "driver_versions", "vbios_versions",
        } or not image.get("name") or not isinstance(image.get("arch"), str) or (
            image["arch"].upper() not in NV_ARCHS
        ):  # fmt: skip
            raise Reject("policy_invalid")
        arch = image["arch"].upper()  # as NvidiaImage reads it
        versions = {}
        for key in ("driver_versions", "vbios_versions"):
            values = image.get(key, [])
            if not isinstance(values, list) or not all(
                isinstance(v, str) and 0 < len(v) <= 40 and v.isprintable() for v in values
            ):
                raise Reject("policy_invalid")
            versions[key] = [v.lower() for v in values]
        if not versions["vbios_versions"] or bool(versions["driver_versions"]) != NV_ARCHS[arch]:
            raise Reject("policy_invalid")
        chosen.append({"name": image["name"], "arch": arch, **versions})
    if len({image["name"] for image in chosen}) != len(chosen):
        raise Reject("policy_invalid")
    return {
        "images": None if accept_any else chosen, "require_rims": sorted(set(rims)),
        "feature_flags": None if flags is None else set(flags),
        "skew": timedelta(seconds=skew), "min_gpus": counts[0], "min_switches": counts[1],
    }  # fmt: skip


NV_ACCEPT_ANY: dict[str, Any] = {"images": None, "require_rims": [], "feature_flags": None,
                 "skew": timedelta(seconds=60)}  # fmt: skip


def nvidia_judge(  # noqa: PLR0917 - the judges' shape, read beside its docstring
    report: bytes, endorsements: list[tuple[str, bytes]], anchors: list[Anchor],
    rim_anchors: list[Anchor], policy: dict[str, Any] | None, at: datetime,
    nonce: bytes | None,
) -> tuple[str, set[str]]:  # fmt: skip
    """(status, reason codes) of an NVIDIA GPU's or NVSwitch's SPDM report at ``at``: its
    device chain (``endorsements`` of kind device-certificate, leaf first) to one of
    ``anchors`` (the NVIDIA Device Identity CA), its RIMs (kind rim, the exact XML) signed
    under one of ``rim_anchors`` (the NVIDIA CoRIM signing Root CA), appraised under
    ``policy`` (the NvidiaPolicy JSON; None: accept any, at best warning); ``nonce`` the
    SPDM requester nonce expected (None: not judged). OCSP responses are kept, not judged."""
    try:
        return _nvidia_judge(report, endorsements, anchors, rim_anchors, policy, at, nonce)
    except Reject as rejected:
        return "contraindicated", {rejected.code}


def _nvidia_judge(  # noqa: PLR0917 - one caller
    data: bytes, endorsements: list[tuple[str, bytes]], anchors: list[Anchor],
    rim_anchors: list[Anchor], recorded: dict[str, Any] | None, at: datetime,
    nonce: bytes | None,
) -> tuple[str, set[str]]:  # fmt: skip
    policy = NV_ACCEPT_ANY if recorded is None else nvidia_policy(recorded)
    skew = policy["skew"]
    report = spdm_report(data)
    if len(endorsements) > MAX_NV_ENDORSEMENTS or any(
        len(der) > MAX_ENDORSEMENT_BYTES for _, der in endorsements
    ):
        raise Reject("oversize")
    if any(kind not in NV_ENDORSEMENTS for kind, _ in endorsements):
        raise Reject("endorsement_mismatch")
    chain = [der for kind, der in endorsements if kind == "device-certificate"]
    if not chain:
        raise Reject("endorsement_missing")
    leaf, key = nv_path(chain, anchors, at, skew, 5, "chain_invalid", "untrusted_root")
    signature = report["signature"]
    r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    if not (0 < r < P384_ORDER and 0 < s < P384_ORDER):
        raise Reject("signature_invalid")
    try:
        key.verify(encode_dss_signature(r, s), report["signed"], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise Reject("signature_invalid") from None
    if report["fwid"] is not None and leaf_fwid(leaf) != report["fwid"]:
        raise Reject("fwid_mismatch")
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = names[0].value if names else ""
    arch = NV_CHIPS.get(str(common_name).split(" ", 1)[0])
    if arch is None:
        raise Reject("unsupported")
    rims: dict[str, dict[str, Any]] = {}
    for kind, xml in endorsements:
        if kind != "rim":
            continue
        rim = rim_document(xml)
        signer = nv_path(
            rim["certificates"], rim_anchors, at, skew, None, "rim_chain_invalid",
            "rim_chain_invalid",
        )  # fmt: skip
        rim_signed(rim, signer[1])
        if rim["kind"] in rims:
            raise Reject("endorsement_mismatch")  # two of a kind
        rims[rim["kind"]] = rim
    if len(rims) == 2 and set(rims["driver"]["measurements"]) & set(rims["vbios"]["measurements"]):
        raise Reject("endorsement_mismatch")  # not a pair: both measure an index
    codes = nvidia_appraisal(report, arch, rims, policy, nonce)
    if codes:
        return "contraindicated", codes
    return ("warning" if policy["images"] is None or not rims else "affirming"), codes


def nvidia_appraisal(
    report: dict[str, Any], arch: str, rims: dict[str, dict[str, Any]], policy: dict[str, Any],
    nonce: bytes | None,
) -> set[str]:  # fmt: skip
    """Every way the authentic report falls short: the images (arch, then the closest image's
    driver and VBIOS versions), the RIMs required, every active RIM index i against block
    i + 1 (index 35 not when NVDEC0 is disabled), each RIM's version against the report's,
    the feature flag, the nonce."""
    codes: set[str] = set()
    if policy["images"] is not None:
        same = [image for image in policy["images"] if image["arch"] == arch]
        if not same:
            codes.add("arch_not_allowed")
        closest: list[str] | None = None
        for image in same:
            driver = None if report["driver"] is None else report["driver"].lower()
            misses = [
                *(["driver_version_not_allowed"] if image["driver_versions"]
                  and driver not in image["driver_versions"] else []),
                *(["vbios_version_not_allowed"] if report["vbios"] not in image["vbios_versions"]
                  else []),
            ]  # fmt: skip
            if closest is None or len(misses) < len(closest):
                closest = misses
        codes.update(closest or [])
    codes.update(
        "rim_missing"
        for kind in policy["require_rims"]  # a switch has no driver RIM
        if kind not in rims and (kind != "driver" or NV_ARCHS.get(arch, True))
    )
    for kind, rim in rims.items():
        for index, (size, alternatives) in rim["measurements"].items():
            if index == NV_NVDEC_INDEX and report["nvdec_disabled"]:
                continue
            value = report["blocks"].get(index + 1)
            if value is None or len(value) != size or value not in alternatives:
                codes.add("measurement_mismatch")
        reported = report["driver"] if kind == "driver" else report["vbios"]
        if reported is None or reported.lower() != rim["version"]:
            codes.add("rim_version_mismatch")
    flags = policy["feature_flags"]
    if flags is not None and report["flag"] not in flags:
        codes.add("feature_flag_not_allowed")
    if nonce is not None and report["nonce"] != nonce:
        codes.add("nonce_mismatch")
    return codes


GPU_NONCE_PREFIX = b"attestation-ledger:gpu-nonce:v1:"
NV_GPU_ARCHS, NV_SWITCH_ARCHS = ("HOPPER", "BLACKWELL"), ("LS10",)
STATUS_ORDER = ("affirming", "warning", "contraindicated")


def gpu_nonce(challenge: bytes, binding: bytes, index: int) -> bytes:
    """The SPDM requester nonce device ``index`` must carry beside a CPU evidence whose
    challenge is ``challenge`` (32 bytes) for the result whose user_data is ``binding``:
    SHA-256(prefix || challenge || SHA-256(binding) || index as one byte)."""
    return hashlib.sha256(
        GPU_NONCE_PREFIX + challenge + hashlib.sha256(binding).digest() + bytes([index])
    ).digest()


def carried_challenge(kind: Any, evidence: bytes) -> bytes | None:
    """The challenge the CPU evidence carries, read without verifying it (what the service
    records as the entry's nonce): a Nitro document's nonce, the first half of an SEV-SNP
    report's or an Intel quote's report_data, the first 32 bytes of a TPM quote's
    extraData. None if the evidence does not parse that far."""
    try:
        if kind == SNP:
            return bytes(snp_report(evidence)["report_data"][:32])
        if kind in (TDX, SGX):
            quote = dcap_quote(evidence)
            return bytes(quote["body"][520:552] if quote["tdx"] else quote["body"][320:352])
        if kind == TPM:
            extra = tpm_attest(tpm_container(evidence)["attest"])["extra_data"]
            return bytes(extra[:32]) if len(extra) >= 32 else None
        nonce = nitro_document(evidence)[2].get("nonce")
        return bytes(nonce) if isinstance(nonce, bytes) else None
    except Reject:
        return None


def recorded_challenge(nonce: Any) -> bytes | None:
    """The 32-byte challenge an entry's nonce (hex) is, or None."""
    try:
        challenge = bytes.fromhex(nonce) if isinstance(nonce, str) else None
    except ValueError:
        return None
    return challenge if challenge is not None and len(challenge) == 32 else None


def device_judge(  # noqa: PLR0917 - the judges' shape, read beside its docstring
    report: bytes, endorsements: list[tuple[str, bytes]], anchors: list[Anchor],
    rim_anchors: list[Anchor], policy: dict[str, Any] | None, at: datetime,
    nonce: bytes | None,
) -> tuple[str, set[str], str | None]:  # fmt: skip
    """(status, codes, arch) of a device's report judged beside a CPU evidence, as the
    service judges it: under ``policy`` (None: the worker may attest no NVIDIA image,
    no_reference_values, judged for the rest under accept-any); ``nonce`` the one it must
    carry (None: the CPU evidence carried no challenge to bind it to, nonce_missing once the
    report parses). ``arch``: what its first device certificate names (HOPPER, BLACKWELL,
    LS10), whatever the verdict, None if the report or that certificate does not parse."""
    status, codes = nvidia_judge(report, endorsements, anchors, rim_anchors, policy, at, nonce)
    extra = set() if policy is not None else {"no_reference_values"}
    try:
        spdm_report(report)
    except Reject:
        return "contraindicated", codes | extra, None
    if nonce is None:
        extra.add("nonce_missing")
    arch = None
    chain = [der for kind, der in endorsements if kind == "device-certificate"]
    if chain:
        try:
            names = certificate(chain[0]).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            value = names[0].value if names else ""
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            arch = NV_CHIPS.get(text.split(" ", 1)[0])
        except Exception:  # anything cryptography raises for a certificate that is not one
            arch = None
    codes |= extra
    return ("contraindicated" if codes else status), codes, arch


def device_roots(chains: list[list[bytes]], anchors: list[Anchor]) -> tuple[list[Anchor], ...]:
    """(device roots, RIM roots) among the ``anchors`` a composite entry's devices name
    (the service holds one NVIDIA verifier, a device root and a RIM root): the device roots
    are those a device chain ends in (its last certificate, or that certificate's issuer by
    name), the RIM roots the others; if the chains end in none or in all, each role holds
    them all (the judgement then fails as the service's did)."""
    ends = set()
    for chain in chains:
        if not chain:
            continue
        found = {der for _, der in anchors if der == chain[-1]}
        if not found:
            try:
                issuer = x509.load_der_x509_certificate(chain[-1]).issuer
            except ValueError:
                issuer = None
            found = {der for cert, der in anchors if issuer is not None and cert.subject == issuer}
        ends |= found
    device = [a for a in anchors if a[1] in ends] or list(anchors)
    rim = [a for a in anchors if a[1] not in ends] or list(anchors)
    return device, rim


def composition(policy: dict[str, Any] | None, arches: list[str | None]) -> set[str]:
    """devices_missing if the worker's NVIDIA policy (its JSON; None: no composition)
    requires more GPUs or NVSwitches than the devices are, by their arch."""
    if policy is None:
        return set()
    counts = nvidia_policy(policy)
    gpus = sum(1 for arch in arches if arch in NV_GPU_ARCHS)
    switches = sum(1 for arch in arches if arch in NV_SWITCH_ARCHS)
    short = gpus < counts["min_gpus"] or switches < counts["min_switches"]
    return {"devices_missing"} if short else set()


# --- what the judges share: the worker's policy, the one entry point, the anchors -----------

# the policies of the service's intake when the recorded policy gave the worker no image of
# the evidence's kind: it judges everything else under an accept-any policy with the defaults
ACCEPT_ANY = {"images": None, "allow_debug": False, "max_age": timedelta(seconds=300),
              "skew": timedelta(seconds=60)}  # fmt: skip
SNP_DEFAULTS = {"allow_debug": False, "allow_smt": True, "allow_migration_agent": False,
                "max_vmpl": 0, "min_tcb": {}}  # fmt: skip
SNP_ACCEPT_ANY = {**SNP_DEFAULTS, "images": None, "skew": timedelta(seconds=60)}


def worker_policy(
    snapshot: dict[str, Any] | None, worker: Any, kind: Any = "aws-nitro-enclave"
) -> dict[str, Any] | None:
    """The images of ``kind`` that ``worker`` may attest and the policy's settings; None if
    it may attest none (``snapshot`` must have passed :func:`policy_problem`)."""
    if snapshot is None or not isinstance(worker, str):
        return None
    images = {image["name"]: image for image in snapshot["images"]}
    allowed = [images[name] for name in sorted(set(snapshot["workers"].get(worker) or []))]
    skew = timedelta(seconds=snapshot["clock_skew_seconds"])
    if kind == SNP:
        chosen = [image["reference"] for image in allowed if image.get("kind") == SNP]
        settings = {**SNP_DEFAULTS, **snapshot.get("schemes", {}).get(SNP, {})}
        return {
            **settings,
            "images": [{k: bytes.fromhex(v) for k, v in ref.items()} for ref in chosen],
            "skew": skew,
        } if chosen else None  # fmt: skip
    if kind in (TDX, SGX):
        chosen = [image["reference"] for image in allowed if image.get("kind") == kind]
        settings = {**DCAP_DEFAULTS[kind], **snapshot.get("schemes", {}).get(kind, {})}
        return dcap_policy(chosen, settings, skew) if chosen else None
    if kind == TPM:
        chosen = [image["reference"] for image in allowed if image.get("kind") == TPM]
        settings = {**TPM_DEFAULTS, **snapshot.get("schemes", {}).get(TPM, {})}
        return tpm_policy(chosen, settings, skew) if chosen else None
    if kind == NVIDIA:  # the NvidiaPolicy JSON, as the service compiles it
        chosen = [image for image in allowed if image.get("kind") == NVIDIA]
        return nvidia_json(
            worker, chosen, snapshot.get("schemes", {}).get(NVIDIA, {}),
            snapshot["clock_skew_seconds"],
        ) if chosen else None  # fmt: skip
    chosen = [image["pcrs"] for image in allowed if "pcrs" in image]
    max_age = snapshot["max_age_seconds"]
    return {
        "images": [{int(n): bytes.fromhex(v) for n, v in pcrs.items()} for pcrs in chosen],
        "allow_debug": snapshot["allow_debug"],
        "max_age": None if max_age is None else timedelta(seconds=max_age),
        "skew": skew,
    } if chosen else None  # fmt: skip


NV_DEFAULTS = {"require_rims": ["driver", "vbios"], "feature_flags": None, "min_gpus": 1,
               "min_switches": 0}  # fmt: skip


def nvidia_json(
    worker: str, images: list[dict[str, Any]], settings: dict[str, Any], skew: Any
) -> dict[str, Any]:
    """The NvidiaPolicy JSON of ``worker``'s recorded NVIDIA ``images`` ({"name", "kind",
    "reference"}) and the recorded settings over their defaults."""
    return {
        "name": f"worker:{worker}", "evidence_kind": NVIDIA,
        "images": [{"name": image["name"], **image["reference"]} for image in images],
        **{**NV_DEFAULTS, **settings}, "clock_skew_seconds": skew,
    }  # fmt: skip


def dcap_policy(
    references: list[dict[str, Any]] | None, settings: dict[str, Any], skew: timedelta
) -> dict[str, Any]:
    """A TDX or SGX policy from recorded images (None: the intake's accept-any policy) and
    settings (those :func:`policy_problem` accepts)."""
    xfam, minimum = settings.get("xfam_allowed"), settings.get("min_tee_tcb_svn")
    advisories = settings["allowed_advisories"]
    return {
        "images": None if references is None else [
            {k: v if k in ("isv_prod_id", "min_isv_svn") else bytes.fromhex(v)
             for k, v in reference.items()}
            for reference in references
        ],
        "allow_debug": settings["allow_debug"],
        "xfam_allowed": None if xfam is None else [bytes.fromhex(v) for v in xfam],
        "min_tee_tcb_svn": None if minimum is None else bytes.fromhex(minimum),
        "tcb_status": {**TCB_TIERS, **settings["tcb_status"]},
        "allowed_advisories": None if advisories is None else set(advisories),
        "skew": skew,
    }  # fmt: skip


def tpm_policy(
    references: list[dict[str, Any]] | None, settings: dict[str, Any], skew: timedelta
) -> dict[str, Any]:
    """A TPM policy from recorded images ({"pcrs": {bank: {index: hex}}, "events": [{"pcr",
    "digest": {bank: hex}, "label"}]}; None: the intake's accept-any policy) and settings
    (those :func:`policy_problem` accepts)."""
    return {
        "images": None if references is None else [
            {"pcrs": {bank: {int(i): bytes.fromhex(v) for i, v in values.items()}
                      for bank, values in reference.get("pcrs", {}).items()},
             "events": [(event["pcr"], {b: bytes.fromhex(d) for b, d in event["digest"].items()})
                        for event in reference.get("events", [])]}
            for reference in references
        ],
        "ak_paths": set(settings["ak_paths"]),
        "require_event_log": settings["require_event_log"],
        "reject_all_reset": settings["reject_all_reset"],
        "skew": skew,
    }  # fmt: skip


TPM_ACCEPT_ANY = tpm_policy(None, TPM_DEFAULTS, timedelta(seconds=60))


def judge(  # noqa: PLR0917 - the one entry point, read beside its docstring
    kind: Any, evidence: bytes, anchors: list[Anchor], policy: dict[str, Any] | None,
    at: datetime, binding: bytes | None, endorsements: list[tuple[str, bytes]] | None = None,
    shipped: dict[str, bytes] | None = None, enrolments: list[dict[str, Any]] | None = None,
) -> tuple[str, set[str]]:  # fmt: skip
    """The one entry point per entry: (status, codes), by the entry's evidence kind. An SEV-SNP
    report is judged against ``anchors`` (the ARKs its entry names), with the
    ``endorsements`` (kind, DER) given with it and the ASKs and ASVKs ``shipped`` (SHA-256 ->
    DER); a TDX or SGX quote against the Intel roots its entry names, with the collateral
    ``endorsements`` (kind, bytes) it names; a TPM quote against the Google and Nitro roots
    its entry names, with its AK certificate chain (``endorsements``) and the ``enrolments``
    the bundle carries, each counting from its time (what :func:`enrolment_problem` gives); a
    Nitro document against the one anchor its entry names."""
    extra = set() if policy is not None else {"no_reference_values"}
    try:
        if kind == SNP:
            store = snp_store(anchors, shipped or {})
            status, codes = snp_judge(
                evidence, endorsements or [], store, policy or SNP_ACCEPT_ANY, at, binding
            )
        elif kind == TPM:
            status, codes = tpm_judge(
                evidence, anchors, endorsements or [], enrolments or [], policy or TPM_ACCEPT_ANY,
                at, binding,
            )  # fmt: skip
        elif kind in (TDX, SGX):
            accept_any = dcap_policy(None, DCAP_DEFAULTS[kind], timedelta(seconds=60))
            status, codes = dcap_judge(
                kind, evidence, endorsements or [], anchors, policy or accept_any, at, binding
            )
        else:
            anchor, der = anchors[0]
            status, codes = nitro_judge(evidence, anchor, der, policy or ACCEPT_ANY, at, binding)
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


NOT_AN_ANCHOR = (
    "neither a self-signed P-384 or P-256 CA certificate, nor an AMD root key (ARK), nor an "
    "RSA CA certificate self-signed with PKCS#1 v1.5 (Google's TPM roots)"
)
RSA_PKCS1 = (
    SignatureAlgorithmOID.RSA_WITH_SHA256, SignatureAlgorithmOID.RSA_WITH_SHA384,
    SignatureAlgorithmOID.RSA_WITH_SHA512,
)  # fmt: skip


def load_anchor(der: bytes) -> x509.Certificate:
    """A trust anchor: a self-signed CA certificate, P-384 (AWS) or P-256 (Intel's SGX root
    CA, or a simulated one), or RSA of 2048 bits or more: named as AMD names its root keys,
    CN=ARK-Milan, -Genoa or -Turin (a simulated one adds " (simulated)"), self-signed with
    RSASSA-PSS SHA-384 (an ARK); or self-signed with PKCS#1 v1.5 SHA-256 or more (Google's
    roots for TPM AK certificates: the 2018 one's common name is longer than X.520 allows,
    which only such a root may have)."""
    try:
        try:
            cert, strict = certificate(der), True
        except Exception:  # a name attribute of the wrong length (or not a certificate)
            cert, strict = google_certificate(der), False
        key = cert.public_key()
        if (
            isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
            and cert.signature_algorithm_oid in RSA_PKCS1 and cert.issuer == cert.subject
            and cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            and cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        ):  # fmt: skip
            cert.verify_directly_issued_by(cert)
            return cert
        if not strict:
            raise Bad(NOT_AN_ANCHOR)
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ca = basic.value.ca and usage.value.key_cert_sign and cert.issuer == cert.subject
        if ca and isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in P_CURVES:
            cert.verify_directly_issued_by(cert)
            return cert
        if (
            ca and isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
            and len(names) == 1 and ARK_NAME.fullmatch(str(names[0].value))
            and amd_signed(cert.signature, cert.tbs_certificate_bytes, key)
        ):  # fmt: skip
            return cert
    except Exception:  # anything cryptography raises for a certificate that is not one
        raise Bad(NOT_AN_ANCHOR) from None
    raise Bad(NOT_AN_ANCHOR)


# --- the bundle ------------------------------------------------------------------------------


def policy_problem(snapshot: Any) -> str | None:
    """Why a recorded policy cannot be used, or None."""
    try:
        images, schemes = snapshot["images"], snapshot.get("schemes", {})
        names = {image["name"] for image in images}
        images_ok = all(
            isinstance(image["name"], str) and image["name"]
            and (_nitro_image_ok(image) or _snp_image_ok(image) or _dcap_image_ok(image)
                 or _tpm_image_ok(image) or _nvidia_image_ok(image))
            for image in images
        )  # fmt: skip
        max_age, skew = snapshot["max_age_seconds"], snapshot["clock_skew_seconds"]
        settings_ok = (
            type(snapshot["allow_debug"]) is bool
            and (max_age is None or (_is_int(max_age) and 0 < max_age <= 10**9))
            and _is_int(skew) and 0 <= skew <= 10**9
            and all(isinstance(allowed, list) and all(n in names for n in allowed)
                    for allowed in snapshot["workers"].values())
            and isinstance(schemes, dict) and set(schemes) <= {SNP, TDX, SGX, TPM, NVIDIA}
            and _snp_settings_ok(schemes.get(SNP, {}))
            and _tpm_settings_ok(schemes.get(TPM, {}))
            and (NVIDIA not in schemes or _nvidia_settings_ok(schemes[NVIDIA], skew))
            and all(_dcap_settings_ok(kind, schemes.get(kind, {})) for kind in (TDX, SGX))
            # the SEV-SNP policy the service builds takes a skew of at most ten years
            and (skew <= 10 * 365 * 86400 or all("pcrs" in image for image in images))
        )  # fmt: skip
    except (KeyError, TypeError, AttributeError, Reject):
        return "not a recorded policy"
    return None if images_ok and settings_ok else "not a recorded policy"


def _nitro_image_ok(image: dict[str, Any]) -> bool:
    """{"name", "pcrs": {index: 96 hex digits}}"""
    pcrs = image.get("pcrs")
    return (
        set(image) == {"name", "pcrs"} and isinstance(pcrs, dict) and bool(pcrs)
        and all(re.fullmatch(r"[0-9]|[12][0-9]|3[01]", index) for index in pcrs)
        and all(isinstance(v, str) and re.fullmatch(r"[0-9a-f]{96}", v) for v in pcrs.values())
    )  # fmt: skip


def _snp_image_ok(image: dict[str, Any]) -> bool:
    """{"name", "kind": "amd-sev-snp", "reference": {"measurement": hex, optional values}}"""
    reference = image.get("reference")
    return (
        set(image) == {"name", "kind", "reference"} and image["kind"] == SNP
        and isinstance(reference, dict) and "measurement" in reference
        and all(name in IMAGE_FIELDS and isinstance(value, str)
                and re.fullmatch(f"[0-9a-fA-F]{{{2 * IMAGE_FIELDS[name][1]}}}", value)
                for name, value in reference.items())
    )  # fmt: skip


def _policy_hex(value: Any, size: int) -> bool:
    """``size`` bytes in hex as the service's policies take them (bytes.fromhex, any case)."""
    try:
        return isinstance(value, str) and len(bytes.fromhex(value)) == size
    except ValueError:
        return False


def _dcap_image_ok(image: dict[str, Any]) -> bool:
    """{"name", "kind": "intel-tdx", "reference": {"mr_td", optional RTMRs and owner values}}
    or {"name", "kind": "intel-sgx", "reference": {mr_enclave and/or mr_signer, optional
    isv_prod_id and min_isv_svn}}"""
    reference = image.get("reference")
    if set(image) != {"name", "kind", "reference"} or not isinstance(reference, dict):
        return False
    if image["kind"] == TDX:
        return "mr_td" in reference and all(
            name in TD_FIELDS and _policy_hex(value, 48) for name, value in reference.items()
        )
    return (
        image["kind"] == SGX and set(reference) <= set(SGX_FIELDS)
        and bool({"mr_enclave", "mr_signer"} & set(reference))
        and all(_policy_hex(reference[name], 32) for name in ("mr_enclave", "mr_signer")
                if name in reference)
        and all(_is_int(reference[name]) and 0 <= reference[name] <= 0xFFFF
                for name in ("isv_prod_id", "min_isv_svn") if name in reference)
    )  # fmt: skip


def _dcap_settings_ok(kind: str, settings: Any) -> bool:
    """The TDX or SGX settings a policy may give (the others take their defaults): debug,
    XFAM values, the minimum TEE_TCB_SVN, the tier of each TCB status, the advisories allowed."""
    if not isinstance(settings, dict) or not set(settings) <= set(DCAP_DEFAULTS[kind]):
        return False
    merged = {**DCAP_DEFAULTS[kind], **settings}
    xfam, minimum = merged.get("xfam_allowed"), merged.get("min_tee_tcb_svn")
    tiers, advisories = merged["tcb_status"], merged["allowed_advisories"]
    return (
        type(merged["allow_debug"]) is bool
        and (xfam is None or (isinstance(xfam, list) and bool(xfam)
                              and all(_policy_hex(v, 8) for v in xfam)))
        and (minimum is None or _policy_hex(minimum, 16))
        and isinstance(tiers, dict)
        and all(status in TCB_STATUSES and tier in ("affirming", "warning", "contraindicated")
                and (status != "Revoked" or tier == "contraindicated")
                and (status == "UpToDate" or tier != "affirming")
                for status, tier in tiers.items())
        and (advisories is None or (isinstance(advisories, list) and all(
            isinstance(a, str) and ADVISORY.fullmatch(a) for a in advisories)))
    )  # fmt: skip


def _tpm_image_ok(image: dict[str, Any]) -> bool:
    """{"name", "kind": "tpm2-quote", "reference": {"pcrs": {bank: {index: hex}}, "events":
    [{"pcr": 0..23, "digest": {bank: hex}, "label": str}]}}, at least one PCR or event."""
    reference = image.get("reference")
    if set(image) != {"name", "kind", "reference"} or image["kind"] != TPM:
        return False
    if not isinstance(reference, dict) or not set(reference) <= {"pcrs", "events"}:
        return False
    pcrs, events = reference.get("pcrs", {}), reference.get("events", [])
    if not isinstance(pcrs, dict) or not isinstance(events, list):
        return False
    pcrs_ok = all(
        bank in DIGEST_SIZES and isinstance(values, dict)
        and all(isinstance(i, str) and re.fullmatch(r"[0-9]|1[0-9]|2[0-3]", i)
                and _policy_hex(v, DIGEST_SIZES[bank]) for i, v in values.items())
        for bank, values in pcrs.items()
    )  # fmt: skip
    events_ok = all(
        isinstance(event, dict) and {"pcr", "digest"} <= set(event) <= {"pcr", "digest", "label"}
        and _is_int(event["pcr"]) and 0 <= event["pcr"] < TPM_PCRS
        and isinstance(event.get("label", ""), str)
        and isinstance(event["digest"], dict) and bool(event["digest"])
        and all(bank in DIGEST_SIZES and _policy_hex(d, DIGEST_SIZES[bank])
                for bank, d in event["digest"].items())
        for event in events
    )  # fmt: skip
    return pcrs_ok and events_ok and (any(pcrs.values()) or bool(events))


def _nvidia_image_ok(image: dict[str, Any]) -> bool:
    """{"name", "kind": "nvidia-gpu", "reference": {"arch", driver_versions, vbios_versions}}
    as an NvidiaPolicy takes it (raises Reject if it does not)."""
    reference = image.get("reference")
    if set(image) != {"name", "kind", "reference"} or image["kind"] != NVIDIA:
        return False
    if not isinstance(reference, dict) or "arch" not in reference:
        return False
    if set(reference) - {"arch", "driver_versions", "vbios_versions"}:
        return False
    nvidia_policy({"name": "check", "evidence_kind": NVIDIA,
                   "images": [{"name": image["name"], **reference}]})  # fmt: skip
    return True


def _nvidia_settings_ok(settings: Any, skew: Any) -> bool:
    """The NVIDIA settings a policy may give (the others take their defaults), as an
    NvidiaPolicy takes them with a placeholder image (raises Reject if it does not)."""
    if not isinstance(settings, dict) or not set(settings) <= set(NV_DEFAULTS):
        return False
    placeholder = {
        "name": "check",
        "kind": NVIDIA,
        "reference": {"arch": "LS10", "vbios_versions": ["00.00.00.00.00"]},
    }
    nvidia_policy(nvidia_json("check", [placeholder], settings, skew))  # fmt: skip
    return True


def _tpm_settings_ok(settings: Any) -> bool:
    """The TPM settings a policy may give (the others take their defaults): the AK paths
    accepted (never unendorsed), whether an event log is required, all-reset PCRs refused."""
    if not isinstance(settings, dict) or not set(settings) <= set(TPM_DEFAULTS):
        return False
    merged = {**TPM_DEFAULTS, **settings}
    paths = merged["ak_paths"]
    return (
        isinstance(paths, list) and bool(paths) and all(p in AK_PATHS for p in paths)
        and type(merged["require_event_log"]) is bool
        and type(merged["reject_all_reset"]) is bool
    )  # fmt: skip


def _snp_settings_ok(settings: Any) -> bool:
    """The SEV-SNP settings a policy may give (the others take their defaults)."""
    if not isinstance(settings, dict) or not set(settings) <= set(SNP_DEFAULTS):
        return False
    vmpl, tcb = settings.get("max_vmpl", 0), settings.get("min_tcb", {})
    return (
        all(type(settings.get(name, False)) is bool
            for name in ("allow_debug", "allow_smt", "allow_migration_agent"))
        and _is_int(vmpl) and 0 <= vmpl <= 3
        and isinstance(tcb, dict) and set(tcb) <= set(TCB_LAYOUT["Turin"])
        and all(_is_int(v) and 0 <= v <= 0xFF for v in tcb.values())
    )  # fmt: skip


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


def enrolment_problem(record: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(enrolment, None) of a ledger entry enrolling or revoking a TPM AK: {"action",
    "ak_sha256", "at" (aware UTC)}; or (None, why it is not one)."""
    action, ak, at = record.get("action"), record.get("ak_sha256"), record.get("at")
    if (
        record.get("v") != 1 or record.get("kind") != "tpm_enrolment"
        or action not in ("enrolled", "revoked")
        or not isinstance(record.get("name"), str) or not record["name"]
        or not isinstance(ak, str) or not HEX64.fullmatch(ak)
        or not isinstance(at, str) or not INSTANT.fullmatch(at)
    ):  # fmt: skip
        return None, "not a TPM enrolment entry"
    if action == "enrolled":
        public = record.get("ak_public")
        try:
            spki = bytes.fromhex(public) if isinstance(public, str) else b""
        except ValueError:
            spki = b""
        if hashlib.sha256(spki).hexdigest() != ak:
            return None, "its ak_public is not the key its ak_sha256 names"
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return None, "not a TPM enrolment entry"
    return {"action": action, "ak_sha256": ak, "at": moment, "name": record["name"]}, None


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
        isinstance(info.get("endorsements", []), list)
        and all(isinstance(a, str) for a in info.get("endorsements", [])),
        isinstance(info.get("enrolments", []), list)
        and all(_is_int(i) for i in info.get("enrolments", [])),
        info.get("ear_key") is None
        or (isinstance(info["ear_key"], dict) and isinstance(info["ear_key"].get("kid"), str)),
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
    def __init__(
        self, key: Key, trust_roots: frozenset[bytes],
        given_ear_keys: dict[str, ec.EllipticCurvePublicKey] | None = None,
    ) -> None:  # fmt: skip
        #: the roots you gave (DER); empty: those the bundle carries, on their names
        self.key, self.trust_roots = key, trust_roots
        #: the EAR keys you gave (kid -> key); empty: the bundle's; then those EARs are checked by
        self.given_ear_keys = dict(given_ear_keys or {})
        self.ear_keys = dict(self.given_ear_keys)
        self.failures: list[tuple[str, str]] = []
        self.notes: list[tuple[str, str]] = []
        self.header: dict[str, bytes] = {}
        self.manifest: dict[str, Any] | None = None
        self.note = ""
        self.size, self.root = 0, b""
        self.anchors: dict[str, tuple[x509.Certificate, bytes]] = {}
        self.endorsements: dict[str, bytes] = {}
        self.policies: dict[int, dict[str, Any]] = {}
        self.pending_policies: dict[int, dict[str, bytes]] = {}
        self.enrolments: dict[int, dict[str, Any]] = {}
        self.pending_enrolments: dict[int, dict[str, bytes]] = {}
        self.current: int | None = None
        self.files: dict[str, bytes] = {}
        self.last, self.count, self.digest = -1, 0, hashlib.sha256()
        self.verdicts: dict[str, int] = {}
        self.rejudged = 0

    def fail(self, item: str, message: str) -> None:
        self.failures.append((item, message))

    def member(self, name: str, data: bytes) -> None:
        if name in (*HEADER, "consistency.json", "ear-key.jwk"):
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
        elif found := ENDORSEMENT.fullmatch(name):
            if hashlib.sha256(data).hexdigest() != found.group(1):
                self.fail(name, "its SHA-256 is not the one it is named by")
            elif found.group(1) not in (self.manifest or {}).get("endorsements", []):
                self.fail(name, "not named by the manifest")
            else:
                self.endorsements[found.group(1)] = data
        elif found := POLICY.fullmatch(name):
            index = int(found.group(1))
            self.pending_policies.setdefault(index, {})[found.group(2)] = data
            if len(self.pending_policies[index]) == 2:
                self.add_policy(index)
        elif found := ENROLMENT.fullmatch(name):
            if self.current is not None or self.last >= 0:  # quotes judged could not see it
                self.fail(name, "comes after the entries began")
                return
            index = int(found.group(1))
            self.pending_enrolments.setdefault(index, {})[found.group(2)] = data
            if len(self.pending_enrolments[index]) == 2:
                self.add_enrolment(index)
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
        self.check_ear_key()
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

    def check_ear_key(self) -> None:
        named, raw = (self.manifest or {}).get("ear_key"), self.header.get("ear-key.jwk")
        if named is None:
            if raw is not None:
                self.fail("ear-key.jwk", "not named by the manifest")
            return
        if raw is None:
            return  # named missing with the manifest's files
        try:
            keys = ear_keys(raw)
            if list(keys) != [named.get("kid")]:
                raise Bad("its thumbprint is not the one the manifest names")
            if self.given_ear_keys and not set(keys) <= set(self.given_ear_keys):
                raise Bad("is not an EAR key you gave")
        except Bad as exc:
            self.fail("ear-key.jwk", str(exc))
            return
        if not self.given_ear_keys:
            self.ear_keys = keys

    def check_ear(self, item: str, record: dict[str, Any]) -> None:
        if not self.ear_keys:
            self.fail(item, "the bundle carries no usable EAR key to check it with")
            return
        try:
            differ = ear_differs(ear_claims(record["ear"], self.ear_keys), record)
        except Bad as exc:
            self.fail(item, str(exc))
            return
        if differ:
            self.fail(item, "; ".join(differ))

    def add_anchor(self, name: str, fingerprint: str, data: bytes) -> None:
        try:
            der = ssl.PEM_cert_to_DER_cert(data.decode("ascii"))
        except (ValueError, UnicodeError):
            self.fail(name, "not a PEM certificate")
            return
        if hashlib.sha256(der).hexdigest() != fingerprint:
            self.fail(name, "its SHA-256 is not the one it is named by")
        elif self.trust_roots and der not in self.trust_roots:
            self.fail(name, "is not a trust root you gave")
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

    def add_enrolment(self, index: int) -> None:
        files = self.pending_enrolments.pop(index)
        item = f"enrolments/{index:012d}.json"
        if index not in (self.manifest or {}).get("enrolments", []):
            self.fail(item, "not named by the manifest")
            return
        if not self.proven(item, index, files["json"], files["tlog-proof"]):
            return
        record, problem = entry_problem(files["json"])
        enrolment, problem = (None, problem) if record is None else enrolment_problem(record)
        if enrolment is None:
            self.fail(item, str(problem))
        else:
            self.enrolments[index] = enrolment

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
        # a Nitro document is CBOR; any other evidence (an SEV-SNP report) is laid out as is
        nitro = record.get("evidence_kind") in (None, "aws-nitro-enclave", "aws-nitro-tpm")
        wanted, other = ("evidence.cbor", "evidence.bin")[:: 1 if nitro else -1]
        evidence, named = files.get(wanted), record.get("evidence_sha256")
        if other in files:
            self.fail(f"{item}/{other}", f"the entry's evidence is {wanted}")
            return
        if named is None and evidence is not None:
            self.fail(f"{item}/{wanted}", "the entry names no evidence")
            return
        if named is not None:
            if evidence is None:
                self.fail(f"{item}/{wanted}", "missing")
                return
            if hashlib.sha256(evidence).hexdigest() != named:
                self.fail(f"{item}/{wanted}", "its SHA-256 is not the one the entry names")
                return
        verdict = record.get("verdict") or record.get("kind")
        self.verdicts[str(verdict)] = self.verdicts.get(str(verdict), 0) + 1
        if "ear" in record:  # entries from before EARs have none
            self.check_ear(f"{item}/ear", record)
        if record.get("kind") == "attestation" and evidence is not None:
            self.rejudge(item, record, evidence, index)

    def rejudge(self, item: str, record: dict[str, Any], evidence: bytes, index: int) -> None:
        """Judge the evidence again at the instant the service did, and compare."""
        revision, snapshot = record.get("policy_revision"), None
        if revision is not None:  # None: no policy existed yet, so the worker had no image
            snapshot = self.policies.get(revision) if type(revision) is int else None
            if snapshot is None:
                self.fail(item, f"its policy revision {str(revision)[:40]} is not in policies/")
                return
        kind = record.get("evidence_kind") or "aws-nitro-enclave"
        if kind not in ("aws-nitro-enclave", "aws-nitro-tpm", SNP, TDX, SGX, TPM):
            self.fail(item, f"evidence of kind {str(kind)[:40]!r} is not one this file judges")
            return
        policy = worker_policy(snapshot, record.get("worker"), kind)
        text = record.get("verified_at")
        try:
            if not isinstance(text, str) or not INSTANT.fullmatch(text):
                raise Bad(f"verified_at {str(text)[:40]!r} is not an instant the service writes")
            at = datetime.fromisoformat(text)
            binding = binding_of(record.get("result_hash"))
        except (Bad, ValueError) as exc:
            self.fail(f"{item}/entry.json", str(exc))
            return
        # a composite entry's CPU verdict is its cpu_verdict, its reasons those of no submod
        recorded = {
            str(r.get("code")) for r in _listed(record.get("reasons"))
            if isinstance(r, dict) and "submod" not in r
        }  # fmt: skip
        composite = "devices" in record or "cpu_verdict" in record
        verdict = record.get("cpu_verdict") if composite else record.get("verdict")
        self.rejudged += 1
        self.rejudge_cpu(item, record, evidence, kind, policy, at, binding, verdict, recorded)
        self.rejudge_devices(item, record, evidence, snapshot, at, binding)

    def rejudge_cpu(  # noqa: PLR0917 - one caller
        self, item: str, record: dict[str, Any], evidence: bytes, kind: str,
        policy: dict[str, Any] | None, at: datetime, binding: bytes | None, verdict: Any,
        recorded: set[str],
    ) -> None:  # fmt: skip
        named = record.get("trust_anchor_sha256")
        was = f"recorded {verdict} ({', '.join(sorted(recorded)) or 'no reasons'})"
        if kind in (SNP, TDX, SGX, TPM):
            trust = self.trust_of(item, record, dcap=kind in (TDX, SGX), tpm=kind == TPM)
            if trust is None:
                return
            anchors, endorsements = trust
            # an enrolment counts from its entry's time, as the service's book counts it (the
            # service appends it at that instant, so a later index has a later time anyway)
            known = [e for _, e in sorted(self.enrolments.items())]
            status, codes = judge(
                kind, evidence, anchors, policy, at, binding, endorsements, self.endorsements,
                known,
            )  # fmt: skip
        elif named is None:  # recorded before entries named their anchor whatever the outcome
            if verdict != "contraindicated":
                self.fail(item, f"recorded {verdict} without naming a trust anchor")
                return
            for fingerprint, anchor in sorted(self.anchors.items()):
                status, codes = judge(kind, evidence, [anchor], policy, at, binding)
                if compare(verdict, recorded, status, codes) == "differ":
                    self.fail(item, f"names no trust anchor; re-verified as {status} against "
                              f"{fingerprint}, recorded contraindicated")  # fmt: skip
                    return
            self.notes.append((item, "names no trust anchor (recorded before issue #10); no "
                               "anchor in trust/ makes its evidence pass, so its rejection "
                               "stands"))  # fmt: skip
            return
        elif str(named) not in self.anchors:
            self.fail(item, f"its trust anchor {str(named)[:70]} is not in trust/")
            return
        else:
            status, codes = judge(kind, evidence, [self.anchors[str(named)]], policy, at, binding)
        judged = f"re-verified as {status} ({', '.join(sorted(codes)) or 'no reasons'})"
        outcome = compare(verdict, recorded, status, codes)
        if outcome == "differ":
            self.fail(item, f"{judged}, {was}")
        elif outcome == "other_reasons":
            self.notes.append((item, f"{judged}, {was}"))

    def rejudge_devices(  # noqa: PLR0917 - one caller, read beside its docstring
        self, item: str, record: dict[str, Any], evidence: bytes,
        snapshot: dict[str, Any] | None, at: datetime, binding: bytes | None,
    ) -> None:  # fmt: skip
        """An entry's devices judged again as the service judged them beside its CPU
        evidence: each report and its endorsements from endorsements/, against the roots it
        names (the device root its chain ends in, the RIM root), under the worker's NVIDIA
        policy of the recorded revision, with the nonce derived again from the entry's
        challenge (which must be the one its CPU evidence carries), result and the device's
        position; then the devices the policy requires and the composed verdict. An entry
        without devices whose policy required some fails."""
        policy = worker_policy(snapshot, record.get("worker"), NVIDIA)
        try:
            required = composition(policy, [])
        except Reject:
            self.fail(item, "its NVIDIA policy is not one")
            return
        if "devices" not in record and "cpu_verdict" not in record:
            if required:
                self.fail(item, "its policy requires devices beside the CPU evidence; the entry "
                          "composes none")  # fmt: skip
            return
        listed = record.get("devices")
        if not isinstance(listed, list) or not all(isinstance(d, dict) for d in listed):
            self.fail(item, "its devices are not a list of objects")
            return
        given = self.device_reports(item, listed)
        if given is None:
            return
        reports, fingerprints = given
        if binding is None:
            self.fail(item, "names devices but no result hash to bind them to")
            return
        chains = [[d for k, d in e if k == "device-certificate"] for _, e in reports]
        roots, rims = device_roots(chains, [self.anchors[f] for f in fingerprints])
        carried = carried_challenge(record.get("evidence_kind") or "aws-nitro-enclave", evidence)
        if carried is not None and record.get("nonce") != carried.hex():
            self.fail(item, "its nonce is not the challenge its CPU evidence carries: its "
                      "devices cannot be bound to it")  # fmt: skip
            return
        challenge = recorded_challenge(record.get("nonce"))
        reasons = [r for r in _listed(record.get("reasons")) if isinstance(r, dict)]
        statuses, arches = [str(record.get("cpu_verdict"))], []
        for index, ((data, endorsements), device) in enumerate(zip(reports, listed, strict=True)):
            expected = None if challenge is None else gpu_nonce(challenge, binding, index)
            status, codes, arch = device_judge(data, endorsements, roots, rims, policy, at,
                                               expected)  # fmt: skip
            submod = f"{'switch' if arch in NV_SWITCH_ARCHS else 'gpu'}{index}"
            name = f"device {str(device.get('submod'))[:20]}"
            if device.get("nonce") != (None if expected is None else expected.hex()):
                self.fail(item, f"{name}: its nonce is not the one derived from the challenge, "
                          "result and index")  # fmt: skip
            if device.get("submod") != submod:
                self.fail(item, f"{name}: judged again it is {submod}")
            recorded = {str(r.get("code")) for r in reasons
                        if r.get("submod") == device.get("submod")}  # fmt: skip
            if (status, codes) != (device.get("verdict"), recorded):
                self.fail(item, f"{name}: re-verified as {status} "
                          f"({', '.join(sorted(codes)) or 'no reasons'}), recorded "
                          f"{str(device.get('verdict'))[:20]} "
                          f"({', '.join(sorted(recorded)) or 'no reasons'})")  # fmt: skip
            statuses.append(status)
            arches.append(arch)
        missing = composition(policy, arches)
        recorded = {str(r.get("code")) for r in reasons if r.get("submod") == "composite"}
        if missing != recorded:
            self.fail(item, f"its devices as a whole fall short by "
                      f"{', '.join(sorted(missing)) or 'nothing'}, recorded "
                      f"{', '.join(sorted(recorded)) or 'nothing'}")  # fmt: skip
        worst = max(statuses, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 3)
        composed = "contraindicated" if missing else worst
        if record.get("verdict") != composed:
            self.fail(item, f"its composed verdict is {composed[:20]}, recorded "
                      f"{str(record.get('verdict'))[:20]}")  # fmt: skip

    def device_reports(
        self, item: str, listed: list[dict[str, Any]]
    ) -> tuple[list[tuple[bytes, list[tuple[str, bytes]]]], list[str]] | None:
        """Each device's report and endorsements (kind, bytes), from endorsements/, and the
        roots they name (one set for all: the service holds one NVIDIA verifier; each in
        trust/); None (and a failure) if one is not there."""
        reports, named = [], set()
        every_kind = (*TPM_ENDORSEMENTS, *NV_ENDORSEMENTS)
        for index, device in enumerate(listed):
            anchors = device.get("trust_anchors")
            if (
                device.get("index") != index or device.get("evidence_kind") != NVIDIA
                or not isinstance(anchors, list) or not anchors
                or not all(isinstance(a, str) for a in anchors)
            ):  # fmt: skip
                self.fail(item, f"its device {index} is not one the service records")
                return None
            named.add(frozenset(anchors))
            data = self.endorsements.get(str(device.get("evidence_sha256")))
            if data is None:
                self.fail(item, f"the report of its device {index} is not in endorsements/")
                return None
            endorsements = []
            for one in _listed(device.get("endorsements")):
                kind = one.get("kind") if isinstance(one, dict) else None
                if kind not in every_kind:  # (as the project's verifier names it)
                    self.fail(f"{item}/entry.json", "names an endorsement of no known kind")
                    return None
                found = self.endorsements.get(str(one.get("sha256")))
                if found is None:
                    self.fail(item, f"its endorsement {str(one.get('sha256'))[:70]} is not in "
                              "endorsements/")  # fmt: skip
                    return None
                endorsements.append((str(kind), found))
            reports.append((data, endorsements))
        if len(named) > 1:
            self.fail(item, "its devices name different trust anchors")
            return None
        fingerprints = sorted(next(iter(named), frozenset()))
        if any(f not in self.anchors for f in fingerprints):
            self.fail(item, "a device trust anchor it names is not in trust/")
            return None
        return reports, fingerprints

    def trust_of(
        self, item: str, record: dict[str, Any], *, dcap: bool, tpm: bool = False
    ) -> tuple[list[Anchor], list[tuple[str, bytes]]] | None:
        """The roots an SEV-SNP entry (ARKs), a DCAP entry (Intel SGX roots, P-256) or a TPM
        entry (Google's roots and the Nitro root; none for an enrolled AK) names, all in
        trust/, and the endorsements it names, in the order given (all in endorsements/). The
        SEV-SNP judge is given those of its kinds; the DCAP judge all, as the service's
        verifier was, and an entry naming an unknown kind fails; the TPM judge its AK
        certificate and intermediates (an EK certificate is enrolment's, not the quote's)."""
        named, given = record.get("trust_anchors"), record.get("endorsements", [])
        if not isinstance(named, list) or not all(isinstance(a, str) for a in named):
            self.fail(item, "names no trust anchors")
            return None
        missing = [a[:70] for a in named if a not in self.anchors]
        if missing:
            self.fail(item, f"its trust anchors {', '.join(missing)} are not in trust/")
            return None
        if not isinstance(given, list):
            self.fail(item, "its endorsements are not a list")
            return None
        endorsements = []
        for one in given:
            kind, digest = (
                (one.get("kind"), one.get("sha256")) if isinstance(one, dict) else ("", "")
            )
            if not isinstance(digest, str) or digest not in self.endorsements:
                self.fail(item, f"its endorsement {str(digest)[:70]} is not in endorsements/")
                return None
            if (dcap and kind not in KNOWN_ENDORSEMENTS) or (tpm and kind not in TPM_ENDORSEMENTS):
                self.fail(f"{item}/entry.json", "names an endorsement of no known kind")
                return None
            if tpm and kind in ("ak-certificate", "certificate"):
                endorsements.append((str(kind), self.endorsements[digest]))
            elif not tpm and kind in (KNOWN_ENDORSEMENTS if dcap else ENDORSEMENT_KINDS):
                endorsements.append(
                    (str(kind), self.endorsements[digest])
                )  # SEV-SNP: others ignored
        anchors = [self.anchors[a] for a in sorted(set(named)) if a in self.anchors]
        if dcap and not all(
            isinstance(key := a[0].public_key(), ec.EllipticCurvePublicKey)
            and key.curve.name == "secp256r1"
            for a in anchors
        ):
            self.fail(item, "its trust anchors cannot judge Intel quotes (not P-256 roots)")
            return None
        if dcap and not anchors:
            self.fail(f"{item}/entry.json", "names no trust anchor")
            return None
        return anchors, endorsements

    def finish(self) -> None:
        self.flush()
        if self.manifest is None:
            self.check_header()
        info = self.manifest or {}
        failed = {item for item, _ in self.failures}
        for index in self.pending_policies:
            self.fail(f"policies/{index:012d}", "needs both .json and .tlog-proof")
        for index in self.pending_enrolments:
            self.fail(f"enrolments/{index:012d}", "needs both .json and .tlog-proof")
        gone = sorted(
            i for i in set(info.get("enrolments") or [])
            if i not in self.enrolments and f"enrolments/{i:012d}.json" not in failed
        )  # fmt: skip
        if gone:
            self.fail("enrolments/", f"entries {gone} named by the manifest are missing")
        missing = sorted(
            i for i in set(info.get("policies") or [])
            if i not in self.policies and f"policies/{i:012d}.json" not in failed
        )  # fmt: skip
        if missing:
            self.fail("policies/", f"revisions {missing} named by the manifest are missing")
        anchors = {str(a) for a in info.get("trust_anchors") or []} - set(self.anchors)
        if anchors and not self.trust_roots:
            self.fail("trust/", f"anchors {sorted(anchors)} are missing")
        named = {str(e) for e in info.get("endorsements") or []}
        named |= {AMD_INTERMEDIATES[p, k] for p, ark in AMD_ARKS.items() if ark in self.anchors
                  for k in ("ask", "asvk")}  # fmt: skip
        if named - set(self.endorsements):
            self.fail("endorsements/", f"{sorted(named - set(self.endorsements))} are missing")
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


def check(
    path: str | IO[bytes], key: Key, trust_roots: Iterable[bytes] = (),
    ear_key: dict[str, ec.EllipticCurvePublicKey] | None = None,
) -> Checker:  # fmt: skip
    """Check the bundle at ``path`` against ``key``; ``trust_roots``: the DER of the roots
    the evidence must chain to (empty: those in trust/); ``ear_key``: the EAR keys
    (:func:`ear_keys`) every EAR must be signed by (None: the bundle's)."""
    checker = Checker(key, frozenset(trust_roots), ear_key)
    seen: set[str] = set()
    try:
        with open(path, "rb") if isinstance(path, str) else path as raw:
            archive = Archive(raw)
            for full, size in archive:
                name = full.removeprefix("bundle/")
                if not full.startswith("bundle/"):
                    raise Bad(f"{shown(full)[:200]}: not a regular file under bundle/")
                evidence = name.endswith((".cbor", ".bin"))
                limit = MAX_EVIDENCE_MEMBER if evidence else MAX_MEMBER
                if name.startswith("enrolments/"):
                    limit = MAX_ENROLMENT_MEMBER
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
    parser.add_argument(
        "--trust-root", action="append", default=[],
        help="repeatable: require the evidence to chain to these PEM roots (or files of several)",
    )  # fmt: skip
    parser.add_argument(
        "--ear-key", help="require every EAR to be signed by this key (a JWKS, JWK or PEM file)"
    )
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
        roots = []
        for name in args.trust_root:
            with open(name) as handle:
                blocks = handle.read().split("-----BEGIN CERTIFICATE-----")[1:]
            if not blocks:
                raise Bad(f"{name}: no PEM certificate in it")
            roots += [ssl.PEM_cert_to_DER_cert("-----BEGIN CERTIFICATE-----" + b) for b in blocks]
        given = None
        if args.ear_key:
            with open(args.ear_key, "rb") as binary:
                given = ear_keys(binary.read())
    except (Bad, ValueError, OSError) as exc:
        print(f"verify_bundle: {exc}", file=sys.stderr)
        return 2
    checker = check(args.archive, key, roots, given)
    print(f"entries     {checker.count} proven; {checker.rejudged} attestations re-verified")
    for verdict, n in sorted(checker.verdicts.items()):
        print(f"  {shown(verdict):<16}{n}")
    amd = {digest: f" (AMD ARK-{product})" for product, digest in AMD_ARKS.items()}
    google = {digest: f" ({name})" for digest, name in GOOGLE_ROOTS.items()}
    for fingerprint in checker.anchors:
        known = {AWS_ROOT_SHA256: " (AWS)", INTEL_ROOT_SHA256: " (Intel SGX Root CA)", **amd,
                 **google}.get(fingerprint, " (NOT an AWS, AMD, Intel or Google root)")  # fmt: skip
        print(f"trust       {fingerprint}{known}")
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
