"""The key that signed a report: a VCEK (per chip and TCB) or a VLEK (per cloud provider)
certificate, and what its AMD extensions say.

Extensions under 1.3.6.1.4.1.3704.1 (AMD's VCEK certificate and KDS interface specification,
publication 57230), each value DER-encoded inside the extension's OCTET STRING:

=============  ===================  ====================================================
``.1``         structVersion        INTEGER
``.2``         productName          IA5String: "Milan-B0", "Milan", "Genoa", "Turin"...
``.3.1``       blSPL                INTEGER: the bootloader SPL of the TCB it was made for
``.3.2``       teeSPL               INTEGER
``.3.3``       snpSPL               INTEGER
``.3.4``-``.7`` (reserved SPLs)     INTEGER, zero
``.3.8``       ucodeSPL             INTEGER (microcode)
``.3.9``       fmcSPL               INTEGER (Turin)
``.4``         hwID                 the chip's ID: 64 bytes (8 on Turin), raw, or wrapped
                                    in a DER OCTET STRING (both are issued; both accepted)
``.5``         cspID                IA5String: the cloud provider of a VLEK
                                    ("CN=cc-us-east-2.amazonaws.com")
=============  ===================  ====================================================

A certificate with a hwID is a VCEK; one with a cspID is a VLEK; one with both or neither is
neither. AMD issues every VCEK and VLEK with serial number 0, which cryptography warns about
(:func:`verifier.x509.load_der_certificate` keeps that warning in). cryptography hands the
extension values over as raw bytes and has no public DER decoder, so the two DER types used
here (INTEGER, IA5String) are read by :func:`_der_integer` and :func:`_der_ia5`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import SignatureAlgorithmOID

from verifier.errors import ChainInvalid, EndorsementMismatch
from verifier.scheme import EndorsementKind
from verifier.x509 import (
    CERTIFICATE_PARSE_ERRORS,
    CertificateInfo,
    certificate_info,
    first_line,
    load_der_certificate,
)

__all__ = ["AMD_OID", "Vek", "parse_vek"]

AMD_OID = "1.3.6.1.4.1.3704.1"
_STRUCT_VERSION = f"{AMD_OID}.1"
_PRODUCT_NAME = f"{AMD_OID}.2"
_HWID = f"{AMD_OID}.4"
_CSP_ID = f"{AMD_OID}.5"
#: TCB component -> the SPL extension that certifies it.
SPL_OIDS = {
    "bootloader": f"{AMD_OID}.3.1",
    "tee": f"{AMD_OID}.3.2",
    "snp": f"{AMD_OID}.3.3",
    "microcode": f"{AMD_OID}.3.8",
    "fmc": f"{AMD_OID}.3.9",
}
_SPL_BY_OID = {oid: name for name, oid in SPL_OIDS.items()}
_HWID_LENGTHS = (8, 64)
_MAX_TEXT = 256


@dataclass(frozen=True, slots=True, eq=False)
class Vek:
    """A parsed VCEK or VLEK certificate: its key and its AMD extensions. Nothing about it is
    verified yet (see :mod:`verifier.snp.chain`)."""

    der: bytes
    certificate: x509.Certificate
    public_key: ec.EllipticCurvePublicKey
    kind: EndorsementKind  # VCEK or VLEK, by its extensions
    struct_version: int | None
    product_name: str | None
    #: TCB component -> SPL, for every SPL extension present.
    spls: Mapping[str, int]
    #: The chip ID of a VCEK, unwrapped; None for a VLEK.
    hwid: bytes | None
    #: "raw" or "octet-string": how the hwID was encoded (both are issued).
    hwid_encoding: str | None
    #: The cloud provider a VLEK was issued to; None for a VCEK.
    csp_id: str | None
    info: CertificateInfo

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "product_name": self.product_name,
            "spls": dict(self.spls),
            "hwid": None if self.hwid is None else self.hwid.hex(),
            "csp_id": self.csp_id,
        }


def parse_vek(der: bytes, declared: EndorsementKind) -> Vek:
    """Parse ``der``, given as ``declared`` (VCEK or VLEK).

    Raises :class:`ChainInvalid` if it is not a P-384 certificate signed with RSASSA-PSS
    SHA-384 or its AMD extensions are unreadable, and :class:`EndorsementMismatch` if it is
    the other kind of key than declared (a VLEK offered as a VCEK).
    """
    name = str(declared)
    try:
        return _parse(der, declared, name)
    except (ChainInvalid, EndorsementMismatch):
        raise
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise ChainInvalid(f"{name}: malformed certificate ({first_line(exc)})") from None


def _parse(der: bytes, declared: EndorsementKind, name: str) -> Vek:
    try:
        certificate = load_der_certificate(der, allow_zero_serial=True)
    except (ValueError, x509.InvalidVersion):
        raise ChainInvalid(f"{name}: not a DER X.509 v3 certificate") from None
    if certificate.version is not x509.Version.v3:
        raise ChainInvalid(f"{name}: expected an X.509 v3 certificate")
    if certificate.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS or not isinstance(
        certificate.signature_hash_algorithm, hashes.SHA384
    ):
        raise ChainInvalid(
            f"{name}: expected signature algorithm RSASSA-PSS with SHA-384, found "
            f"{certificate.signature_algorithm_oid.dotted_string}"
        )
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise ChainInvalid(f"{name}: expected a P-384 public key")

    struct_version: int | None = None
    product_name: str | None = None
    spls: dict[str, int] = {}
    raw_hwid: bytes | None = None
    csp_id: str | None = None
    for extension in certificate.extensions:
        oid = extension.oid.dotted_string
        if extension.critical:
            raise ChainInvalid(f"{name}: unsupported critical extension {oid}")
        value = extension.value
        if not isinstance(value, x509.UnrecognizedExtension):
            continue  # a standard extension cryptography understood: nothing of AMD's
        if oid == _STRUCT_VERSION:
            struct_version = _der_integer(value.value, f"{name}: structVersion")
        elif oid == _PRODUCT_NAME:
            product_name = _der_ia5(value.value, f"{name}: productName")
        elif oid in _SPL_BY_OID:
            spl = _der_integer(value.value, f"{name}: {_SPL_BY_OID[oid]} SPL")
            if not 0 <= spl <= 0xFF:
                raise ChainInvalid(f"{name}: {_SPL_BY_OID[oid]} SPL {spl} is not a byte")
            spls[_SPL_BY_OID[oid]] = spl
        elif oid == _HWID:
            raw_hwid = value.value
        elif oid == _CSP_ID:
            csp_id = _der_ia5(value.value, f"{name}: cspID")

    if (raw_hwid is None) == (csp_id is None):
        raise EndorsementMismatch(
            f"{name}: a VCEK carries a hwID and a VLEK a cspID; this certificate has "
            f"{'both' if raw_hwid is not None else 'neither'}"
        )
    kind = EndorsementKind.VCEK if raw_hwid is not None else EndorsementKind.VLEK
    if kind is not declared:
        raise EndorsementMismatch(
            f"{name}: the certificate given as a {declared.name} is a {kind.name} "
            f"({'hwID' if kind is EndorsementKind.VCEK else 'cspID ' + repr(csp_id)})"
        )
    hwid, encoding = _unwrap_hwid(raw_hwid, name) if raw_hwid is not None else (None, None)
    info = certificate_info(certificate, der, position=name, role="leaf", issuer=None)
    return Vek(
        der=der,
        certificate=certificate,
        public_key=key,
        kind=kind,
        struct_version=struct_version,
        product_name=product_name,
        spls=MappingProxyType(spls),
        hwid=hwid,
        hwid_encoding=encoding,
        csp_id=csp_id,
        info=info,
    )


def _unwrap_hwid(value: bytes, name: str) -> tuple[bytes, str]:
    """The hwID's bytes, raw (64 or 8 bytes) or inside a DER OCTET STRING (``04 40`` + 64,
    ``04 08`` + 8). The lengths make the two unambiguous."""
    inner = len(value) - 2
    if inner in _HWID_LENGTHS and value[0] == 0x04 and value[1] == inner:
        return value[2:], "octet-string"
    if len(value) in _HWID_LENGTHS:
        return value, "raw"
    raise ChainInvalid(
        f"{name}: hwID of {len(value)} bytes is neither 64 (8 on Turin) bytes nor a DER "
        "OCTET STRING of them"
    )


def _der_header(data: bytes, tag: int, what: str) -> bytes:
    """The content of one DER TLV with ``tag`` that spans ``data`` exactly (short or long
    definite length, minimally encoded)."""
    if len(data) < 2 or data[0] != tag:
        raise ChainInvalid(f"{what}: expected DER tag 0x{tag:02x}")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or len(data) < 2 + count:
            raise ChainInvalid(f"{what}: unsupported DER length")
        length = int.from_bytes(data[2 : 2 + count], "big")
        offset = 2 + count
        if length < 0x80 or (count == 2 and length < 0x100):
            raise ChainInvalid(f"{what}: DER length not minimally encoded")
    if len(data) != offset + length:
        raise ChainInvalid(f"{what}: DER length {length} does not match the value")
    return data[offset:]


def _der_integer(data: bytes, what: str) -> int:
    content = _der_header(data, 0x02, what)
    if not content or len(content) > 8:
        raise ChainInvalid(f"{what}: expected a DER INTEGER of 1..8 bytes")
    if len(content) > 1 and (
        (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)
    ):
        raise ChainInvalid(f"{what}: DER INTEGER not minimally encoded")
    return int.from_bytes(content, "big", signed=True)


def _der_ia5(data: bytes, what: str) -> str:
    content = _der_header(data, 0x16, what)
    if len(content) > _MAX_TEXT or any(byte > 0x7E or byte < 0x20 for byte in content):
        raise ChainInvalid(f"{what}: expected printable IA5String text of at most 256 bytes")
    return content.decode("ascii")
