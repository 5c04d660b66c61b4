"""The real NVIDIA samples (tests/fixtures/nvidia/README.md), and a test PKI that signs fresh
reports where a mutation needs a valid signature."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from verifier import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    TrustAnchor,
    UnsafePolicyWarning,
)
from verifier.nvidia import (
    NvidiaImage,
    NvidiaPolicy,
    NvidiaVerifier,
    UnsafeAcceptAnyNvidiaPolicy,
    from_json,
)

NV = Path(__file__).resolve().parent.parent.parent / "fixtures" / "nvidia"
#: One instant at which every real sample passes (or fails only where it is negative).
AT = datetime(2024, 6, 1, tzinfo=UTC)
#: After both RIM signers expired (2025-06-22 and 2025-12-12): a fixed "now".
NOW = datetime(2026, 11, 30, tzinfo=UTC)
PROD_RIM = "nv_rim_vbios_1010_0200_882_96005E0001_PROD.swidtag"
MISMATCH_RIM = "nv_rim_vbios_96005E0001_measurement_mismatch_NEGATIVE.xml"
JSON_FILES = (
    "nv_sdk_hopper_evidence.json",
    "nv_veraison_blackwell-evidence.json",
    "nv_sdk_switch_evidence_ls10.json",
)


def accept_any() -> UnsafeAcceptAnyNvidiaPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        return UnsafeAcceptAnyNvidiaPolicy()


def json_device(name: str) -> tuple[bytes, tuple[Endorsement, ...], str, bytes]:
    (device,) = from_json((NV / name).read_text())
    return device


def hex_report(name: str = "nv_sdk_hopperAttestationReport.txt") -> bytes:
    return bytes.fromhex((NV / name).read_text().strip())


def hopper_chain() -> tuple[Endorsement, ...]:
    pem = (NV / "nv_sdk_hopperCertChain.txt").read_bytes()
    return tuple(
        Endorsement(EndorsementKind.DEVICE_CERTIFICATE, c.public_bytes(Encoding.DER))
        for c in x509.load_pem_x509_certificates(pem)
    )


def rim(name: str) -> Endorsement:
    return Endorsement(EndorsementKind.RIM, (NV / name).read_bytes())


def evidence(data: bytes, *endorsements: Endorsement) -> Evidence:
    return Evidence(EvidenceKind.NVIDIA_GPU, data, endorsements)


def hex_policy(**overrides: object) -> NvidiaPolicy:
    """The policy the hex H100 report (535.86.09, VBIOS 96.00.5e.00.01) passes with its RIM."""
    arguments: dict[str, object] = {
        "name": "h100-535",
        "images": (NvidiaImage("h100", "HOPPER", ("535.86.09",), ("96.00.5e.00.01",)),),
        "require_rims": ("vbios",),
    }
    arguments.update(overrides)
    return NvidiaPolicy(**arguments)  # type: ignore[arg-type]


# --- a test PKI: five P-384 certificates, leaf first, and reports it signs ------------------

SHA384_OID_DER = bytes.fromhex("0609608648016503040202")


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def hopper_fwid_extension(key: ec.EllipticCurvePrivateKey, fwid: bytes) -> bytes:
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    fwid_seq = _der(0x30, SHA384_OID_DER + _der(0x04, fwid))
    return _der(0x30, _der(0x02, b"\x01") + spki + fwid_seq)


def tcb_info_extension(fwid: bytes) -> bytes:
    fwid_seq = _der(0x30, SHA384_OID_DER + _der(0x04, fwid))
    return _der(0x30, _der(0x80, b"NVIDIA") + _der(0x81, b"GB100 A01 GSP") + _der(0xA6, fwid_seq))


@dataclass
class TestPki:
    keys: list[ec.EllipticCurvePrivateKey]
    certificates: list[bytes]  # leaf first, root last

    @property
    def anchor(self) -> TrustAnchor:
        return TrustAnchor.from_der(self.certificates[-1], name="test NVIDIA root")

    def endorsements(self) -> tuple[Endorsement, ...]:
        return tuple(
            Endorsement(EndorsementKind.DEVICE_CERTIFICATE, der) for der in self.certificates
        )

    def verifier(self) -> NvidiaVerifier:
        return NvidiaVerifier(trust_anchors=[self.anchor])


def make_pki(
    *, leaf_cn: str = "GH100 A01 GSP FMC LF", fwid: bytes | None = None, blackwell: bool = False
) -> TestPki:
    names = [leaf_cn, "GH100 A01 GSP BROM", "Test Provisioner ICA", "Test Identity", "Test Root"]
    keys = [ec.generate_private_key(ec.SECP384R1()) for _ in names]
    start, end = datetime(2021, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)
    ders: list[bytes] = []
    for i in range(len(names) - 1, -1, -1):
        issuer = min(i + 1, len(names) - 1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[i])]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[issuer])]))
            .public_key(keys[i].public_key())
            .serial_number(1000 + i)
            .not_valid_before(start)
            .not_valid_after(end)
        )
        ca = i > 0
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        if i == 0 and fwid is not None:
            if blackwell:
                value = tcb_info_extension(fwid)
                oid = x509.ObjectIdentifier("2.23.133.5.4.1.1")
            else:
                value = hopper_fwid_extension(keys[0], fwid)
                oid = x509.ObjectIdentifier("2.23.133.5.4.1")
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), False)
        certificate = builder.sign(keys[issuer], hashes.SHA384())
        ders.insert(0, certificate.public_bytes(Encoding.DER))
    return TestPki(keys, ders)


def opaque(fields: dict[int, bytes]) -> bytes:
    return b"".join(
        t.to_bytes(2, "little") + len(v).to_bytes(2, "little") + v for t, v in fields.items()
    )


def vbios_bytes(version: str) -> bytes:
    """'96.00.a5.00.01' -> the 8 binary bytes a GPU reports (bytes 3.2.1.0.4)."""
    parts = [int(p, 16) for p in version.split(".")]
    return bytes([parts[3], parts[2], parts[1], parts[0], parts[4], 0, 0, 0])


def default_opaque(fwid: bytes | None = None, flag: int | None = 2) -> dict[int, bytes]:
    fields = {3: b"590.12\x00", 6: vbios_bytes("96.00.a5.00.01"), 11: b"\x55"}
    if fwid is not None:
        fields[20] = fwid
    if flag is not None:
        fields[36] = flag.to_bytes(2, "little")
    return fields


def blocks(count: int = 64, seed: bytes = b"m") -> list[bytes]:
    return [hashlib.sha384(seed + bytes([i])).digest() for i in range(count)]


def build_report(
    key: ec.EllipticCurvePrivateKey,
    *,
    nonce: bytes = bytes(range(32)),
    values: list[bytes] | None = None,
    fields: dict[int, bytes] | None = None,
    trailing: bytes = b"",
) -> bytes:
    values = blocks() if values is None else values
    record = b"".join(
        bytes([i + 1, 1])
        + (3 + len(v)).to_bytes(2, "little")
        + b"\x01"
        + len(v).to_bytes(2, "little")
        + v
        for i, v in enumerate(values)
    )
    data = b"\x11\xe0\x01\xff" + nonce + b"\x00"
    data += b"\x11\x60\x00\x00" + bytes([len(values)]) + len(record).to_bytes(3, "little")
    body = opaque(default_opaque() if fields is None else fields)
    data += record + hashlib.sha256(nonce).digest() + len(body).to_bytes(2, "little") + body
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA384())))
    return data + r.to_bytes(48, "big") + s.to_bytes(48, "big") + trailing


def policy_for(arch: str = "HOPPER", **overrides: object) -> NvidiaPolicy:
    arguments: dict[str, object] = {
        "name": "test",
        "images": (NvidiaImage("img", arch, ("590.12",), ("96.00.a5.00.01",)),),
        "require_rims": (),
    }
    arguments.update(overrides)
    return NvidiaPolicy(**arguments)  # type: ignore[arg-type]


def later(days: int) -> datetime:
    return AT + timedelta(days=days)
