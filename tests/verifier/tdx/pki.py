"""A test Intel DCAP PKI, made in the tests with ``cryptography``: a root, a PCK Platform or
Processor CA, PCK certificates with Intel's SGX extension, a TCB Signing certificate, TCB
info and QE identity signed over their exact text, CRLs, and quotes (SGX v3, TDX v4, TDX v5
with a 1.5 body) in the real layout.

Written from Intel's quote format and PCK certificate profile (not from the verifier's code),
so that it cross-checks the parser rather than mirroring it. The real Intel chain cannot sign
anything new: every test that needs a chosen field, a debug TD, a revoked PCK, another TCB
status or a broken link uses this PKI, trusted explicitly (``DcapVerifier(trust_anchors=[...])``).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier import Endorsement, EndorsementKind, Evidence, EvidenceKind, TrustAnchor

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ISSUED = AT - timedelta(days=1)
NEXT_UPDATE = AT + timedelta(days=29)
SGX_OID = "1.2.840.113741.1.13.1"
QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
FMSPC = bytes.fromhex("90C06F000000")
QE_MRSIGNER = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
MR_TD = hashlib.sha384(b"test td").digest()
MR_ENCLAVE = hashlib.sha256(b"test enclave").digest()
MR_SIGNER = hashlib.sha256(b"test signer").digest()
#: SGX TCB components 1..16 and PCESVN the test PCK certificates carry.
COMPONENTS = (4, 4, 2, 2, 4, 1, 0, 5) + (0,) * 8
PCE_SVN = 13
TEE_TCB_SVN = bytes([11, 1, 4]) + bytes(13)


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


@cache
def key(label: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def raw_signature(private: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# --- DER for the SGX extension ---------------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        rest = part >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out.extend(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def _entry(suffix: str, value: bytes) -> bytes:
    return _tlv(0x30, _oid(f"{SGX_OID}.{suffix}") + value)


def sgx_extension(
    fmspc: bytes = FMSPC,
    components: tuple[int, ...] = COMPONENTS,
    pce_svn: int = PCE_SVN,
    pce_id: bytes = b"\x00\x00",
) -> bytes:
    tcb = b"".join(_entry(f"2.{n + 1}", _int(c)) for n, c in enumerate(components))
    tcb += _entry("2.17", _int(pce_svn)) + _entry("2.18", _tlv(0x04, bytes(components)))
    return _tlv(
        0x30,
        _entry("1", _tlv(0x04, bytes(range(16))))
        + _entry("2", _tlv(0x30, tcb))
        + _entry("3", _tlv(0x04, pce_id))
        + _entry("4", _tlv(0x04, fmspc))
        + _entry("5", _tlv(0x0A, b"\x01")),
    )


# --- certificates and CRLs -------------------------------------------------------------------


def certificate(
    subject: str,
    private: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    serial: int,
    ca: bool,
    extension: bytes | None = None,
    not_before: datetime = AT - timedelta(days=365),
    not_after: datetime = AT + timedelta(days=3650),
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(private.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if extension is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_OID), extension), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER)


def crl(
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    revoked: tuple[int, ...] = (),
    *,
    this_update: datetime = ISSUED,
    next_update: datetime = NEXT_UPDATE,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name(issuer))
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(this_update - timedelta(days=1))
            .build()
        )
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER)


def pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


ROOT = "Intel SGX Root CA (simulated)"
PLATFORM_CA = "Intel SGX PCK Platform CA"
PROCESSOR_CA = "Intel SGX PCK Processor CA"
SIGNER = "Intel SGX TCB Signing"


def root_der(label: str = "root") -> bytes:
    """The root certificate of ``label``: one DER per label (ECDSA signatures are random, so
    it is made once)."""
    return _root_der(label)


@cache
def _root_der(label: str) -> bytes:
    return certificate(ROOT, key(label), ROOT, key(label), serial=1, ca=True)


def anchor(label: str = "root") -> TrustAnchor:
    return TrustAnchor.from_der(root_der(label), name="simulated Intel SGX root")


# --- collateral ------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def tcb_level(
    status: str = "UpToDate",
    components: tuple[int, ...] = COMPONENTS,
    pce_svn: int = PCE_SVN,
    tdx: tuple[int, ...] | None = tuple(TEE_TCB_SVN),
    advisories: tuple[str, ...] = (),
) -> dict[str, object]:
    tcb: dict[str, object] = {
        "sgxtcbcomponents": [{"svn": c} for c in components],
        "pcesvn": pce_svn,
    }
    if tdx is not None:
        tcb["tdxtcbcomponents"] = [{"svn": c} for c in tdx]
    level: dict[str, object] = {"tcb": tcb, "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": status}
    if advisories:
        level["advisoryIDs"] = list(advisories)
    return level


def module_identity(
    major: int = 1, levels: tuple[tuple[int, str], ...] = ((4, "UpToDate"),)
) -> dict[str, object]:
    return {
        "id": f"TDX_{major:02X}",
        "mrsigner": "00" * 48,
        "attributes": "0000000000000000",
        "attributesMask": "FFFFFFFFFFFFFFFF",
        "tcbLevels": [
            {"tcb": {"isvsvn": svn}, "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": status}
            for svn, status in levels
        ],
    }


def signed_body(
    member: str, document: dict[str, object], signer: ec.EllipticCurvePrivateKey
) -> bytes:
    text = json.dumps(document, separators=(",", ":")).encode()
    signature = raw_signature(signer, text)
    return (
        b'{"'
        + member.encode()
        + b'":'
        + text
        + b',"signature":"'
        + signature.hex().encode()
        + b'"}'
    )


# --- the platform ----------------------------------------------------------------------------


@dataclass
class Platform:
    """A simulated platform of one FMSPC with everything needed to make quotes and collateral;
    every field can be changed before :meth:`evidence` to make one specific fault."""

    tdx: bool = True
    root: str = "root"
    fmspc: bytes = FMSPC
    components: tuple[int, ...] = COMPONENTS
    pce_svn: int = PCE_SVN
    pck_serial: int = 0x1234
    revoked_pck: tuple[int, ...] = ()
    tcb_levels: list[dict[str, object]] = field(default_factory=lambda: [tcb_level()])
    tcb_id: str | None = None
    modules: list[dict[str, object]] = field(default_factory=lambda: [module_identity()])
    qe_id: str | None = None
    qe_levels: list[tuple[int, str]] = field(default_factory=lambda: [(7, "UpToDate")])
    qe_isv_svn: int = 7
    qe_mrsigner: bytes = QE_MRSIGNER
    issued: datetime = ISSUED
    next_update: datetime = NEXT_UPDATE
    leaf_not_after: datetime = AT + timedelta(days=3650)

    @property
    def ca_name(self) -> str:
        return PLATFORM_CA if self.tdx else PROCESSOR_CA

    def ca_der(self) -> bytes:
        return certificate(self.ca_name, key("ca"), ROOT, key(self.root), serial=2, ca=True)

    def leaf_der(self) -> bytes:
        return certificate(
            "Intel SGX PCK Certificate",
            key("pck"),
            self.ca_name,
            key("ca"),
            serial=self.pck_serial,
            ca=False,
            extension=sgx_extension(self.fmspc, self.components, self.pce_svn),
            not_after=self.leaf_not_after,
        )

    def signer_der(self) -> bytes:
        return certificate(SIGNER, key("signer"), ROOT, key(self.root), serial=3, ca=False)

    def chain_pem(self) -> bytes:
        return pem(self.leaf_der()) + pem(self.ca_der()) + pem(root_der(self.root))

    def tcb_info(self) -> bytes:
        tdx = self.tdx if self.tcb_id is None else self.tcb_id == "TDX"
        document: dict[str, object] = {
            "id": self.tcb_id or ("TDX" if self.tdx else "SGX"),
            "version": 3,
            "issueDate": _iso(self.issued),
            "nextUpdate": _iso(self.next_update),
            "fmspc": self.fmspc.hex().upper(),
            "pceId": "0000",
            "tcbType": 0,
            "tcbEvaluationDataNumber": 18,
        }
        if tdx:
            document["tdxModule"] = {
                "mrsigner": "00" * 48,
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
            }
            document["tdxModuleIdentities"] = self.modules
        document["tcbLevels"] = self.tcb_levels
        return signed_body("tcbInfo", document, key("signer"))

    def qe_identity(self) -> bytes:
        document = {
            "id": self.qe_id or ("TD_QE" if self.tdx else "QE"),
            "version": 2,
            "issueDate": _iso(self.issued),
            "nextUpdate": _iso(self.next_update),
            "tcbEvaluationDataNumber": 18,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": "11000000000000000000000000000000",
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": QE_MRSIGNER.hex().upper(),
            "isvprodid": 2 if self.tdx else 1,
            "tcbLevels": [
                {"tcb": {"isvsvn": svn}, "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": status}
                for svn, status in self.qe_levels
            ],
        }
        return signed_body("enclaveIdentity", document, key("signer"))

    def collateral(self) -> tuple[Endorsement, ...]:
        return (
            Endorsement(EndorsementKind.TCB_INFO, self.tcb_info()),
            Endorsement(EndorsementKind.QE_IDENTITY, self.qe_identity()),
            Endorsement(
                EndorsementKind.CRL,
                crl(
                    self.ca_name,
                    key("ca"),
                    self.revoked_pck,
                    this_update=self.issued,
                    next_update=self.next_update,
                ),
            ),
            Endorsement(
                EndorsementKind.CRL,
                crl(ROOT, key(self.root), this_update=self.issued, next_update=self.next_update),
            ),
            Endorsement(EndorsementKind.CERTIFICATE, self.signer_der()),
        )

    # --- quotes ----------------------------------------------------------------------------

    def qe_report(self, attestation_key: bytes, auth_data: bytes) -> bytes:
        report = bytearray(384)
        report[48:64] = bytes.fromhex("1500000000000000e700000000000000")
        report[128:160] = self.qe_mrsigner
        struct.pack_into("<HH", report, 256, 2 if self.tdx else 1, self.qe_isv_svn)
        report[320:352] = hashlib.sha256(attestation_key + auth_data).digest()
        return bytes(report)

    def quote(
        self,
        *,
        report_data: bytes = bytes(64),
        debug: bool = False,
        version: int | None = None,
        mr_td: bytes = MR_TD,
        rtmr3: bytes = bytes(48),
        xfam: bytes = bytes.fromhex("e702060000000000"),
        tee_tcb_svn: bytes = TEE_TCB_SVN,
        isv_svn: int = 1,
    ) -> bytes:
        if version is None:
            version = 4 if self.tdx else 3
        if self.tdx:
            body = bytearray(648 if version == 5 else 584)
            body[0:16] = tee_tcb_svn
            attributes = (1 << 28) | (1 if debug else 0)
            body[120:128] = attributes.to_bytes(8, "little")
            body[128:136] = xfam
            body[136:184] = mr_td
            body[472:520] = rtmr3
            body[520:584] = report_data
            if version == 5:
                body[584:600] = tee_tcb_svn
            prefix = struct.pack("<HHIHH", version, 2, 0x81, 0, 0) + QE_VENDOR + bytes(20)
            if version == 5:
                prefix += struct.pack("<HI", 3, len(body))
        else:
            body = bytearray(384)
            body[48:56] = (0x05 | (0x02 if debug else 0)).to_bytes(8, "little")
            body[64:96] = MR_ENCLAVE
            body[128:160] = MR_SIGNER
            struct.pack_into("<HH", body, 256, 0, isv_svn)
            body[320:384] = report_data
            prefix = struct.pack("<HHIHH", 3, 2, 0, 10, 15) + QE_VENDOR + bytes(20)
        signed = prefix + bytes(body)
        attestation = key("attestation")
        numbers = attestation.public_key().public_numbers()
        public = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        auth_data = bytes(range(32))
        qe_report = self.qe_report(public, auth_data)
        chain = self.chain_pem() + b"\x00"
        certification = (
            qe_report
            + raw_signature(key("pck"), qe_report)
            + struct.pack("<H", len(auth_data))
            + auth_data
            + struct.pack("<HI", 5, len(chain))
            + chain
        )
        signature_data = raw_signature(attestation, signed) + public
        if self.tdx:
            signature_data += struct.pack("<HI", 6, len(certification)) + certification
        else:
            signature_data += certification
        return signed + struct.pack("<I", len(signature_data)) + signature_data

    def evidence(self, quote: bytes | None = None, **quote_fields: object) -> Evidence:
        data = self.quote(**quote_fields) if quote is None else quote  # type: ignore[arg-type]
        kind = EvidenceKind.INTEL_TDX if self.tdx else EvidenceKind.INTEL_SGX
        return Evidence(kind, data, self.collateral())


def dcap_qvl_json(platform: Platform) -> str:
    """The platform's collateral in dcap-qvl's ``QuoteCollateralV3`` JSON (for the second
    evaluation by dcap-qvl, which takes that form)."""
    tcb_info = json.loads(platform.tcb_info())
    qe_identity = json.loads(platform.qe_identity())
    # The signed text, exactly: everything between the member name and the signature.
    tcb_text = platform.tcb_info()[len(b'{"tcbInfo":') : -len(b',"signature":"') - 128 - 2]
    qe_text = platform.qe_identity()[
        len(b'{"enclaveIdentity":') : -len(b',"signature":"') - 128 - 2
    ]
    signer_chain = (pki_pem_pair(platform.signer_der(), platform.root)).decode()
    collateral = platform.collateral()
    return json.dumps(
        {
            "pck_crl_issuer_chain": pki_pem_pair(platform.ca_der(), platform.root).decode(),
            "root_ca_crl": collateral[3].data.hex(),
            "pck_crl": collateral[2].data.hex(),
            "tcb_info_issuer_chain": signer_chain,
            "tcb_info": tcb_text.decode(),
            "tcb_info_signature": tcb_info["signature"],
            "qe_identity_issuer_chain": signer_chain,
            "qe_identity": qe_text.decode(),
            "qe_identity_signature": qe_identity["signature"],
        }
    )


def pki_pem_pair(der: bytes, root: str) -> bytes:
    return pem(der) + pem(root_der(root))
