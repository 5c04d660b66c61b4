"""A test SEV-SNP PKI, made in the tests with ``cryptography``: an ARK, its ASK and ASVK, VCEKs
and VLEKs with AMD's extensions, reports in the real layout signed by them, and CRLs.

Written from AMD's specifications (ABI 56860, VCEK/KDS 57230), without the verifier's code,
so that it cross-checks the parser rather than mirroring it. Keys are RSA-2048 (AMD's are
RSA-4096; 2048 keeps the tests fast, and the verifier accepts 2048 bits and more) and P-384.
The real AMD chain cannot sign anything new: every test that needs a report with chosen
fields, a Turin VCEK, a CRL, or a broken link uses this PKI, trusted explicitly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier import TrustAnchor

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2027, 1, 1, tzinfo=UTC)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
AMD = "1.3.6.1.4.1.3704.1"
CPUID = {"Milan": (0x19, 0x01, 0x01), "Genoa": (0x19, 0x11, 0x01), "Turin": (0x1A, 0x02, 0x00)}


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def der_integer(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return bytes([0x02, len(body)]) + body


def der_ia5(text: str) -> bytes:
    body = text.encode("ascii")
    return bytes([0x16, len(body)]) + body


@cache
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def ca_certificate(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: str,
    issuer_key: rsa.RSAPrivateKey,
    *,
    serial: int,
    not_before: datetime = NOT_BEFORE - timedelta(days=365),
    not_after: datetime = NOT_AFTER + timedelta(days=3650),
    padding_: padding.PSS | padding.PKCS1v15 = PSS,
    ca: bool = True,
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(
                ca=ca, path_length=None if subject.startswith("ARK") or not ca else 0
            ),
            critical=True,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer_key, hashes.SHA384(), rsa_padding=padding_).public_bytes(
        Encoding.DER
    )


@dataclass(frozen=True)
class Vek:
    der: bytes
    key: ec.EllipticCurvePrivateKey


def vek_certificate(
    issuer: str,
    issuer_key: rsa.RSAPrivateKey,
    key: ec.EllipticCurvePrivateKey,
    *,
    kind: str = "vcek",
    product_name: str = "Milan-B0",
    spls: dict[str, int] | None = None,
    hwid: bytes | None = None,
    hwid_wrapped: bool = False,
    csp_id: str | None = "CN=cc-test.example",
    serial: int = 0,
    not_before: datetime = NOT_BEFORE,
    not_after: datetime = NOT_AFTER,
    extra: list[tuple[str, bytes, bool]] = (),
) -> bytes:
    """A VCEK or VLEK in AMD's profile. Serial 0 by default, as AMD issues them: the
    certificate is signed here from raw TBS bytes because cryptography's builder refuses
    serial 0."""
    spls = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115} if spls is None else spls
    oids = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
    extensions: list[tuple[str, bytes, bool]] = [(f"{AMD}.1", der_integer(0), False)]
    if product_name:
        extensions.append((f"{AMD}.2", der_ia5(product_name), False))
    for component, value in spls.items():
        extensions.append((f"{AMD}.{oids[component]}", der_integer(value), False))
    if kind == "vcek":
        assert hwid is not None
        value = (bytes([0x04, len(hwid)]) + hwid) if hwid_wrapped else hwid
        extensions.append((f"{AMD}.4", value, False))
    else:
        assert csp_id is not None
        extensions.append((f"{AMD}.5", der_ia5(csp_id), False))
    extensions.extend(extra)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name("SEV-VCEK" if kind == "vcek" else "SEV-VLEK"))
        .issuer_name(name(issuer))
        .public_key(key.public_key())
        .serial_number(1)  # replaced by 0 below when asked for
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for oid, value, critical in extensions:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=critical
        )
    certificate = builder.sign(issuer_key, hashes.SHA384(), rsa_padding=PSS)
    if serial == 1:
        return certificate.public_bytes(Encoding.DER)
    return resign_with_serial(certificate, issuer_key, serial)


def resign_with_serial(
    certificate: x509.Certificate, issuer_key: rsa.RSAPrivateKey, serial: int
) -> bytes:
    """Swap the serial number in the TBS bytes (``02 01 01`` -> ``02 01 <serial>``) and sign
    the TBS again with RSASSA-PSS: how a serial-0 certificate is made here."""
    tbs = certificate.tbs_certificate_bytes
    marker = bytes.fromhex("a003020102") + b"\x02\x01\x01"  # [0] version v3, serial 1
    assert tbs.count(marker) == 1
    tbs = tbs.replace(marker, bytes.fromhex("a003020102") + b"\x02\x01" + bytes([serial]))
    signature = issuer_key.sign(tbs, PSS, hashes.SHA384())
    algorithm = _algorithm_identifier(certificate)
    body = tbs + algorithm + _der(0x03, b"\x00" + signature)
    return _der(0x30, body)


def _algorithm_identifier(certificate: x509.Certificate) -> bytes:
    """The signatureAlgorithm field of ``certificate``, as it is encoded there."""
    der = certificate.public_bytes(Encoding.DER)
    tbs = certificate.tbs_certificate_bytes
    start = der.index(tbs) + len(tbs)
    length = der[start + 1]
    return der[start : start + 2 + length]


def _der(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def turin_tcb(tcb: bytes) -> dict[str, bytes]:
    """All four TCBs of a report set to one Turin TCB_VERSION."""
    return {name: tcb for name in ("reported_tcb", "current_tcb", "committed_tcb", "launch_tcb")}


@dataclass
class ReportFields:
    """Every field of an ATTESTATION_REPORT, with the values of a plain Milan guest."""

    version: int = 3
    guest_svn: int = 0
    policy: int = 0x30000
    family_id: bytes = bytes(16)
    image_id: bytes = bytes(16)
    vmpl: int = 0
    signature_algo: int = 1
    current_tcb: bytes = bytes([3, 0, 0, 0, 0, 0, 8, 115])
    platform_info: int = 1
    flags: int = 0  # VCEK
    report_data: bytes = bytes(64)
    measurement: bytes = bytes(range(48))
    host_data: bytes = bytes(32)
    id_key_digest: bytes = bytes(48)
    author_key_digest: bytes = bytes(48)
    report_id: bytes = bytes([7]) * 32
    report_id_ma: bytes = bytes([0xFF]) * 32
    reported_tcb: bytes = bytes([3, 0, 0, 0, 0, 0, 8, 115])
    cpuid: tuple[int, int, int] = CPUID["Milan"]
    chip_id: bytes = bytes(range(64, 128))
    committed_tcb: bytes = bytes([3, 0, 0, 0, 0, 0, 8, 115])
    current_version: tuple[int, int, int] = (1, 55, 29)
    committed_version: tuple[int, int, int] = (1, 55, 29)
    launch_tcb: bytes = bytes([3, 0, 0, 0, 0, 0, 8, 115])
    launch_mit_vector: int = 0
    current_mit_vector: int = 0

    def body(self) -> bytes:
        """Bytes 0x000..0x29F, written field by field at their offsets."""
        out = bytearray(0x2A0)
        struct.pack_into("<IIQ", out, 0x00, self.version, self.guest_svn, self.policy)
        out[0x10:0x20] = self.family_id
        out[0x20:0x30] = self.image_id
        struct.pack_into("<II", out, 0x30, self.vmpl, self.signature_algo)
        out[0x38:0x40] = self.current_tcb
        struct.pack_into("<QI", out, 0x40, self.platform_info, self.flags)
        out[0x50:0x90] = self.report_data
        out[0x90:0xC0] = self.measurement
        out[0xC0:0xE0] = self.host_data
        out[0xE0:0x110] = self.id_key_digest
        out[0x110:0x140] = self.author_key_digest
        out[0x140:0x160] = self.report_id
        out[0x160:0x180] = self.report_id_ma
        out[0x180:0x188] = self.reported_tcb
        if self.version >= 3:
            out[0x188:0x18B] = bytes(self.cpuid)
        out[0x1A0:0x1E0] = self.chip_id
        out[0x1E0:0x1E8] = self.committed_tcb
        build, minor, major = (
            self.current_version[2],
            self.current_version[1],
            self.current_version[0],
        )
        out[0x1E8:0x1EB] = bytes([build, minor, major])
        c_build, c_minor, c_major = (
            self.committed_version[2],
            self.committed_version[1],
            self.committed_version[0],
        )
        out[0x1EC:0x1EF] = bytes([c_build, c_minor, c_major])
        out[0x1F0:0x1F8] = self.launch_tcb
        if self.version >= 5:
            struct.pack_into("<QQ", out, 0x1F8, self.launch_mit_vector, self.current_mit_vector)
        return bytes(out)


def sign_report(body: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The 1184-byte report: ``body`` and its ECDSA P-384 SHA-384 signature, R and S as
    72-byte little-endian fields, the rest zero."""
    assert len(body) == 0x2A0
    r, s = decode_dss_signature(key.sign(body, ec.ECDSA(hashes.SHA384())))
    signature = r.to_bytes(72, "little") + s.to_bytes(72, "little")
    return body + signature + bytes(0x4A0 - 0x2A0 - len(signature))


def crl_without_next_update(issuer: str, issuer_key: rsa.RSAPrivateKey) -> bytes:
    """A CRL with no nextUpdate, which cryptography's builder cannot make: one is built with
    nextUpdate NOT_AFTER, the field is cut from the TBS bytes, and the TBS signed again."""
    built = x509.load_der_x509_crl(crl(issuer, issuer_key, []))
    tbs = built.tbs_certlist_bytes
    next_update = b"\x17\x0d" + NOT_AFTER.strftime("%y%m%d%H%M%SZ").encode()
    assert tbs.count(next_update) == 1
    header = 4 if tbs[1] == 0x82 else 3 if tbs[1] == 0x81 else 2
    content = tbs[header:].replace(next_update, b"")
    tbs = _der(0x30, content)
    signature = issuer_key.sign(tbs, PSS, hashes.SHA384())
    der = built.public_bytes(Encoding.DER)
    algorithm_start = der.index(built.tbs_certlist_bytes) + len(built.tbs_certlist_bytes)
    algorithm = der[algorithm_start : algorithm_start + 2 + der[algorithm_start + 1]]
    return _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))


def crl(
    issuer: str,
    issuer_key: rsa.RSAPrivateKey,
    revoked: list[int],
    *,
    last_update: datetime = NOT_BEFORE,
    next_update: datetime | None = NOT_AFTER,
    padding_: padding.PSS | padding.PKCS1v15 = PSS,
) -> bytes:
    """A CRL in AMD's profile (RSASSA-PSS SHA-384), listing ``revoked`` serial numbers."""
    builder = (
        x509.CertificateRevocationListBuilder().issuer_name(name(issuer)).last_update(last_update)
    )
    if next_update is not None:
        builder = builder.next_update(next_update)
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(last_update)
            .build()
        )
    return builder.sign(issuer_key, hashes.SHA384(), rsa_padding=padding_).public_bytes(
        Encoding.DER
    )


@dataclass
class SnpTestPki:
    """One product line's test PKI: ARK -> ASK -> VCEK, ARK -> ASVK -> VLEK."""

    product: str = "Milan"
    label: str = "test"
    ark_key: rsa.RSAPrivateKey = field(init=False)
    ask_key: rsa.RSAPrivateKey = field(init=False)
    asvk_key: rsa.RSAPrivateKey = field(init=False)
    ark: bytes = field(init=False)
    ask: bytes = field(init=False)
    asvk: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.ark_key = rsa_key(f"{self.label}-ark")
        self.ask_key = rsa_key(f"{self.label}-ask")
        self.asvk_key = rsa_key(f"{self.label}-asvk")
        ark_name = f"ARK-{self.product}"
        self.ark = ca_certificate(ark_name, self.ark_key, ark_name, self.ark_key, serial=0x10000)
        self.ask = ca_certificate(
            f"SEV-{self.product}", self.ask_key, ark_name, self.ark_key, serial=0x10001
        )
        self.asvk = ca_certificate(
            f"SEV-VLEK-{self.product}", self.asvk_key, ark_name, self.ark_key, serial=0x10101
        )

    @property
    def anchor(self) -> TrustAnchor:
        return TrustAnchor.from_der(self.ark, name=f"test ARK-{self.product} ({self.label})")

    def vcek(self, fields: ReportFields, **overrides: object) -> Vek:
        """A VCEK for the chip and reported TCB of ``fields``."""
        key = ec_key(f"{self.label}-vcek")
        hwid_length = 8 if self.product == "Turin" else 64
        arguments: dict[str, object] = {
            "kind": "vcek",
            "product_name": {"Milan": "Milan-B0", "Genoa": "Genoa", "Turin": "Turin"}[self.product],
            "spls": spls_of(fields.reported_tcb, self.product),
            "hwid": fields.chip_id[:hwid_length],
        }
        arguments.update(overrides)
        return Vek(vek_certificate(f"SEV-{self.product}", self.ask_key, key, **arguments), key)

    def vlek(self, fields: ReportFields, **overrides: object) -> Vek:
        key = ec_key(f"{self.label}-vlek")
        arguments: dict[str, object] = {
            "kind": "vlek",
            "product_name": self.product,
            "spls": spls_of(fields.reported_tcb, self.product),
            "csp_id": "CN=cc-test.example",
        }
        arguments.update(overrides)
        return Vek(
            vek_certificate(f"SEV-VLEK-{self.product}", self.asvk_key, key, **arguments), key
        )


def spls_of(tcb: bytes, product: str) -> dict[str, int]:
    if product == "Turin":
        return {
            "fmc": tcb[0],
            "bootloader": tcb[1],
            "tee": tcb[2],
            "snp": tcb[3],
            "microcode": tcb[7],
        }
    return {"bootloader": tcb[0], "tee": tcb[1], "snp": tcb[6], "microcode": tcb[7]}


@cache
def milan_pki() -> SnpTestPki:
    return SnpTestPki("Milan", "milan")


@cache
def turin_pki() -> SnpTestPki:
    return SnpTestPki("Turin", "turin")


@cache
def rogue_pki() -> SnpTestPki:
    """Another "ARK-Milan" with other keys: what a substituted root looks like."""
    return SnpTestPki("Milan", "rogue")


def ask_with_duplicated_extension(test_pki: SnpTestPki) -> bytes:
    """An ASK named as issued by ``test_pki``'s ARK whose extensions repeat one OID (two
    unrecognised extensions, the second renamed to the first after signing): cryptography
    raises DuplicateExtension when its extensions are read (issue #11's regression)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(f"SEV-{test_pki.product}"))
        .issuer_name(name(f"ARK-{test_pki.product}"))
        .public_key(test_pki.ask_key.public_key())
        .serial_number(7)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    )
    for oid in ("1.2.3.4", "1.2.3.5"):
        extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x05\x00")
        builder = builder.add_extension(extension, critical=False)
    der = builder.sign(test_pki.ark_key, hashes.SHA384(), rsa_padding=PSS).public_bytes(
        Encoding.DER
    )
    assert der.count(bytes.fromhex("06032a0305")) == 1
    return der.replace(bytes.fromhex("06032a0305"), bytes.fromhex("06032a0304"))
