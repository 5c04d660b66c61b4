"""The TPM samples, and quotes made here: TPMS_ATTEST marshalled by hand (TPM 2.0 Part 2,
not the verifier's code), signed with a key made in the test, in a container written with
cbor2 directly, so that the verifier is checked against an independent construction."""

from __future__ import annotations

import hashlib
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier import Evidence, EvidenceKind, UnsafePolicyWarning
from verifier.tpm import UnsafeAcceptAnyTpmPolicy, from_json

TPM = Path(__file__).resolve().parents[2] / "fixtures" / "tpm"
AT = datetime(2026, 2, 3, 10, 12, 2, tzinfo=UTC)
NOW = datetime(2026, 11, 30, tzinfo=UTC)  # after the NitroTPM document's chain expired
NITRO_JSON = TPM / "vaportpm_test-nitro-fixture.json"
GCP_JSON = TPM / "vaportpm_test-gcp-amd-fixture.json"
TRUSTEE_JSON = TPM / "trustee_tpm_evidence.json"
ALGS = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}


def sample(path: Path) -> Evidence:
    container, endorsements = from_json(path.read_text())
    return Evidence(EvidenceKind.TPM2_QUOTE, container, endorsements)


def accept_any() -> UnsafeAcceptAnyTpmPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        return UnsafeAcceptAnyTpmPolicy()


def tpm2b(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def container(fields: Mapping[str, object]) -> bytes:
    """A tpm2-quote/v1 map, "format" first, written with cbor2 by hand."""
    rest = {k: v for k, v in fields.items() if k != "format"}
    body = cbor2.dumps(rest, canonical=True)
    head = bytes([0xA0 + len(rest) + 1]) + cbor2.dumps("format") + cbor2.dumps("tpm2-quote/v1")
    return head + body[1:]


@dataclass
class Quote:
    """A quote over ``pcrs`` made by a fresh AK (``key``: "p256", "p384", "rsa2048")."""

    key: str = "p256"
    extra_data: bytes = b"\x11" * 32
    pcrs: dict[str, dict[int, bytes]] = field(
        default_factory=lambda: {"sha256": {i: bytes([i + 1]) * 32 for i in range(8)}}
    )
    name_alg: str = "sha256"
    sig_hash: str = "sha256"
    scheme: str = ""  # "rsassa"/"rsapss"/"ecdsa"; default by key
    clock: int = 123456
    private_key: object = None

    def __post_init__(self) -> None:
        if self.private_key is None:
            self.private_key = _KEYS[self.key]()

    @property
    def ak(self) -> bytes:
        key = self.private_key.public_key()  # type: ignore[attr-defined]
        return key.public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def attest(self) -> bytes:
        name = struct.pack(">H", ALGS[self.name_alg]) + hashlib.new(self.name_alg, self.ak).digest()
        selection = struct.pack(">I", len(self.pcrs))
        digest = hashlib.new(self.name_alg)
        for bank, values in self.pcrs.items():
            bitmap = bytearray(3)
            for index in values:
                bitmap[index // 8] |= 1 << (index % 8)
            selection += struct.pack(">HB", ALGS[bank], 3) + bytes(bitmap)
            for index in sorted(values):
                digest.update(values[index])
        return (
            struct.pack(">IH", 0xFF544347, 0x8018)
            + tpm2b(name)
            + tpm2b(self.extra_data)
            + struct.pack(">QIIB", self.clock, 7, 2, 1)
            + struct.pack(">Q", 0x2019102300163636)
            + selection
            + tpm2b(digest.digest())
        )

    def sign(self, message: bytes) -> bytes:
        algorithm = getattr(hashes, self.sig_hash.upper())()
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(message, ec.ECDSA(algorithm)))
            size = (key.curve.key_size + 7) // 8
            return (
                struct.pack(">HH", 0x0018, ALGS[self.sig_hash])
                + tpm2b(r.to_bytes(size, "big"))
                + tpm2b(s.to_bytes(size, "big"))
            )
        assert isinstance(key, rsa.RSAPrivateKey)
        if self.scheme == "rsapss":
            pad: padding.AsymmetricPadding = padding.PSS(
                mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH
            )
            alg = 0x0016
        else:
            pad, alg = padding.PKCS1v15(), 0x0014
        return struct.pack(">HH", alg, ALGS[self.sig_hash]) + tpm2b(
            key.sign(message, pad, algorithm)
        )

    def fields(self, **extra: object) -> dict[str, object]:
        attest = self.attest()
        out: dict[str, object] = {
            "format": "tpm2-quote/v1",
            "attest": attest,
            "signature": self.sign(attest),
            "ak": self.ak,
            "pcrs": self.pcrs,
        }
        out.update(extra)
        return out

    def evidence(self, *endorsements: object, **extra: object) -> Evidence:
        return Evidence(
            EvidenceKind.TPM2_QUOTE,
            container(self.fields(**extra)),
            endorsements,  # type: ignore[arg-type]
        )


_KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
}


# --- event logs, built here by the TCG PC Client profile and the kernel's IMA format ---------

SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
EV_NO_ACTION, EV_SEPARATOR, EV_IPL, EV_S_CRTM_VERSION = 3, 4, 13, 8


def digest(bank: str, data: bytes) -> bytes:
    """A PCR bank's digest (SHA-1 is the TPM's bank, not a security choice of ours)."""
    return hashlib.new(bank, data, usedforsecurity=bank != "sha1").digest()


def extend(value: bytes, measured: bytes, bank: str) -> bytes:
    return digest(bank, value + measured)


def tcg_event(pcr: int, kind: int, digests: Mapping[str, bytes], data: bytes) -> bytes:
    """TCG_PCR_EVENT2: pcrIndex, eventType, TPML_DIGEST_VALUES, eventSize, event (LE)."""
    body = struct.pack("<III", pcr, kind, len(digests))
    for bank, value in digests.items():
        body += struct.pack("<H", ALGS[bank]) + value
    return body + struct.pack("<I", len(data)) + data


def legacy_event(pcr: int, kind: int, sha1: bytes, data: bytes) -> bytes:
    """TCG_PCClientPCREvent (SHA-1 format): pcrIndex, eventType, digest, eventSize, event."""
    return struct.pack("<II", pcr, kind) + sha1 + struct.pack("<I", len(data)) + data


def tcg_log(*events: bytes, banks: tuple[str, ...] = ("sha1", "sha256")) -> bytes:
    """A crypto-agile log: the SHA-1 format header event holding the Spec ID Event03 for
    ``banks``, then ``events``."""
    spec = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(banks))
    spec += b"".join(struct.pack("<HH", ALGS[b], SIZES[b]) for b in banks) + b"\0"
    return legacy_event(0, EV_NO_ACTION, bytes(20), spec) + b"".join(events)


@dataclass
class BootLog:
    """A log of measured ``(pcr, data)`` events (after a StartupLocality 3 if ``locality``),
    in ``banks``, and the PCR values it replays to, computed here."""

    measured: list[tuple[int, bytes]]
    banks: tuple[str, ...] = ("sha1", "sha256")
    locality: bool = True
    legacy: bool = False

    def events(self) -> list[bytes]:
        out = []
        if self.locality:
            zeros = {bank: bytes(SIZES[bank]) for bank in self.banks}
            data = b"StartupLocality\0\x03"
            out.append(
                legacy_event(0, EV_NO_ACTION, bytes(20), data)
                if self.legacy
                else tcg_event(0, EV_NO_ACTION, zeros, data)
            )
        for pcr, data in self.measured:
            if self.legacy:
                out.append(legacy_event(pcr, EV_IPL, digest("sha1", data), data))
            else:
                digests = {bank: digest(bank, data) for bank in self.banks}
                out.append(tcg_event(pcr, EV_IPL, digests, data))
        return out

    def bytes(self) -> bytes:
        if self.legacy:
            return b"".join(self.events())
        return tcg_log(*self.events(), banks=self.banks)

    def pcrs(self, bank: str) -> dict[int, bytes]:
        size = SIZES[bank]
        values: dict[int, bytes] = {0: bytes(size - 1) + b"\x03"} if self.locality else {}
        for pcr, data in self.measured:
            values[pcr] = extend(values.get(pcr, bytes(size)), digest(bank, data), bank)
        return values


def ima_entry(pcr: int, path: str, content: bytes) -> bytes:
    """An ima-ng entry: PCR, the SHA-1 template digest, the name, the template data."""
    file_digest = b"sha256:\0" + hashlib.sha256(content).digest()
    name = path.encode() + b"\0"
    data = b"".join(struct.pack("<I", len(f)) + f for f in (file_digest, name))
    template = digest("sha1", data)
    return (
        struct.pack("<I", pcr)
        + template
        + struct.pack("<I", 6)
        + b"ima-ng"
        + struct.pack("<I", len(data))
        + data
    )


def ima_pcr(entries: list[bytes], bank: str, start: bytes | None = None) -> bytes:
    """The value PCR 10 reaches from ``start`` (zeros) after the ima-ng ``entries``."""
    value = start if start is not None else bytes(SIZES[bank])
    for entry in entries:
        (size,) = struct.unpack_from("<I", entry, 4 + 20 + 4 + 6)
        data = entry[4 + 20 + 4 + 6 + 4 : 4 + 20 + 4 + 6 + 4 + size]
        value = extend(value, digest(bank, data), bank)
    return value
