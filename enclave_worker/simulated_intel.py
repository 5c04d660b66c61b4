"""A simulated Intel SGX/TDX PKI: root, PCK Platform and Processor CAs, the TCB Signing
certificate, PCK certificates and CRLs with Intel's profile. NOT Intel: its root says
"(simulated)" and is trusted only where configured explicitly.

The profile is Intel's as measured on the real chains in ../shared/fixtures/tdx (the PCK
chains inside the quotes and the issuer chains of the collateral):

* Names ``CN=..., O=Intel Corporation, L=Santa Clara, ST=CA, C=US``; the root's CN is
  "Intel SGX Root CA (simulated)", the others Intel's: "Intel SGX PCK Platform CA" (TDX and
  multi-package platforms), "Intel SGX PCK Processor CA" (SGX on one package), "Intel SGX TCB
  Signing", "Intel SGX PCK Certificate". ECDSA P-256 everywhere, ecdsa-with-SHA256.
* Extensions, in Intel's order: authorityKeyIdentifier (key id; the root's own), CRL
  distribution point, subjectKeyIdentifier, keyUsage (critical: keyCertSign + cRLSign for CAs,
  digitalSignature + nonRepudiation otherwise), basicConstraints (critical: root pathLen 1,
  PCK CAs pathLen 0, cA false otherwise); PCK certificates add Intel's SGX extension
  1.2.840.113741.1.13.1 (not critical): ``.1`` PPID, ``.2`` TCB (``.2.1``-``.2.16`` the SGX
  TCB components, ``.2.17`` PCESVN, ``.2.18`` CPUSVN), ``.3`` PCE-ID, ``.4`` FMSPC, ``.5`` SGX
  type (0 Standard under the Processor CA, 1 Scalable under the Platform CA), and under the
  Platform CA ``.6`` platform instance id and ``.7`` configuration (dynamic platform, cached
  keys, SMT enabled).
* Lifetimes: root to 2049-12-31T23:59:59Z as Intel's, PCK CAs 15 years, TCB Signing and PCK
  certificates 7 years. Intel's CA serial numbers are their subject key identifiers (160
  bits); cryptography writes at most 159, so here the identifier's top bit is cleared.
* CRLs: version 2, CRL number, authorityKeyIdentifier, entries with reason keyCompromise;
  the Root CA CRL (revokes CAs) for a year, a PCK CA CRL (revokes PCK certificates) 30 days.

Every signature is deterministic (RFC 6979), so the same keys and times give the same bytes.
Written independently of ``verifier/`` (it imports nothing from it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from enclave_worker.der import (
    der_boolean,
    der_enumerated,
    der_integer,
    der_octet_string,
    der_oid,
    der_sequence,
)
from enclave_worker.persist import locked, write_atomically

__all__ = [
    "FILES",
    "INTEL_SGX_OID",
    "PCK_CN",
    "PLATFORM_CA_CN",
    "PROCESSOR_CA_CN",
    "ROOT_CN",
    "ROOT_FILE",
    "TCB_SIGNING_CN",
    "CaName",
    "IntelCa",
    "PckTcb",
    "SimulatedIntelPki",
    "SimulatedIntelWarning",
]

ROOT_CN: Final = "Intel SGX Root CA (simulated)"
PLATFORM_CA_CN: Final = "Intel SGX PCK Platform CA"
PROCESSOR_CA_CN: Final = "Intel SGX PCK Processor CA"
TCB_SIGNING_CN: Final = "Intel SGX TCB Signing"
PCK_CN: Final = "Intel SGX PCK Certificate"
INTEL_SGX_OID: Final = "1.2.840.113741.1.13.1"
#: The persisted files: certificate and key per member.
ROOT_FILE: Final = "root.pem"
FILES: Final = {
    "root": (ROOT_FILE, "root.key"),
    "platform_ca": ("pck-platform-ca.pem", "pck-platform-ca.key"),
    "processor_ca": ("pck-processor-ca.pem", "pck-processor-ca.key"),
    "tcb_signing": ("tcb-signing.pem", "tcb-signing.key"),
}
CaName = Literal["platform", "processor"]
_ROOT_END: Final = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)
_CA_YEARS, _LEAF_YEARS = 15, 7
_PCK_CRL_DAYS, _ROOT_CRL_DAYS = 30, 365
# Intel's hosts, under .invalid: nothing is fetched from them.
_ROOT_CRL_URL: Final = (
    "https://certificates.trustedservices.simulated-intel.invalid/IntelSGXRootCA.der"
)
_PCK_CRL_URL: Final = (
    "https://api.trustedservices.simulated-intel.invalid/sgx/certification/v4/pckcrl"
    "?ca={ca}&encoding=der"
)
_SGX_TYPE = {"processor": 0, "platform": 1}  # Standard, Scalable


class SimulatedIntelWarning(UserWarning):
    """Emitted when a simulated (non-Intel) SGX/TDX PKI or platform is created."""


@dataclass(frozen=True)
class IntelCa:
    """A member of the PKI that signs: its certificate (DER) and private key."""

    der: bytes
    private_key: ec.EllipticCurvePrivateKey

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_identifier(self) -> bytes:
        return x509.SubjectKeyIdentifier.from_public_key(self.private_key.public_key()).digest


@dataclass(frozen=True)
class PckTcb:
    """What a PCK certificate says about its platform (Intel's SGX extension)."""

    fmspc: bytes
    #: The 16 SGX TCB components (CPUSVN is these bytes).
    sgx_components: tuple[int, ...]
    pce_svn: int
    pce_id: bytes = b"\0\0"

    def __post_init__(self) -> None:
        if len(self.fmspc) != 6:
            raise ValueError(f"an FMSPC is 6 bytes, not {len(self.fmspc)}")
        if len(self.pce_id) != 2:
            raise ValueError(f"a PCE id is 2 bytes, not {len(self.pce_id)}")
        if len(self.sgx_components) != 16 or not all(0 <= c <= 255 for c in self.sgx_components):
            raise ValueError("the SGX TCB is 16 components of 0..255")
        if not 0 <= self.pce_svn <= 0xFFFF:
            raise ValueError(f"PCESVN is a u16, not {self.pce_svn}")

    @property
    def cpu_svn(self) -> bytes:
        return bytes(self.sgx_components)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _crl_distribution(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def _root_end(start: datetime) -> datetime:
    """Intel's root expires 2049-12-31T23:59:59Z; a later simulated one outlives its CAs."""
    if _add_years(start, _CA_YEARS) <= _ROOT_END:
        return _ROOT_END
    return _add_years(start, _CA_YEARS + 10)


def _ca_serial(key: ec.EllipticCurvePrivateKey) -> int:
    """Intel's CA serial: the subject key identifier, here without its top bit (159 bits)."""
    digest = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    return int.from_bytes(digest, "big") & ((1 << 159) - 1) or 1


def _issue(
    *,
    subject: str,
    key: ec.EllipticCurvePublicKey,
    issuer: IntelCa | None,
    signer: ec.EllipticCurvePrivateKey,
    serial: int,
    start: datetime,
    end: datetime,
    ca: bool,
    path_length: int | None,
    crl_url: str,
    extra: Iterable[x509.UnrecognizedExtension] = (),
) -> bytes:
    issuer_name = issuer.certificate.subject if issuer else _name(subject)
    authority = issuer.key_identifier if issuer else _ski(key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.AuthorityKeyIdentifier(
                key_identifier=authority,
                authority_cert_issuer=None,
                authority_cert_serial_number=None,
            ),
            critical=False,
        )
        .add_extension(_crl_distribution(crl_url), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
        .add_extension(_key_usage(ca=ca), critical=True)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    certificate = builder.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)
    return certificate.public_bytes(serialization.Encoding.DER)


def _ski(key: ec.EllipticCurvePublicKey) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(key).digest


def sgx_extension(
    tcb: PckTcb,
    *,
    ca: CaName,
    ppid: bytes,
    platform_instance_id: bytes | None = None,
    smt_enabled: bool = True,
) -> bytes:
    """The DER value of Intel's SGX extension (1.2.840.113741.1.13.1) of a PCK certificate."""

    def entry(arc: str, value: bytes) -> bytes:
        return der_sequence(der_oid(f"{INTEL_SGX_OID}.{arc}"), value)

    components = [entry(f"2.{n + 1}", der_integer(svn)) for n, svn in enumerate(tcb.sgx_components)]
    components.append(entry("2.17", der_integer(tcb.pce_svn)))
    components.append(entry("2.18", der_octet_string(tcb.cpu_svn)))
    entries = [
        entry("1", der_octet_string(ppid)),
        entry("2", der_sequence(*components)),
        entry("3", der_octet_string(tcb.pce_id)),
        entry("4", der_octet_string(tcb.fmspc)),
        entry("5", der_enumerated(_SGX_TYPE[ca])),
    ]
    if ca == "platform":
        instance = platform_instance_id if platform_instance_id is not None else bytes(16)
        entries.append(entry("6", der_octet_string(instance)))
        entries.append(
            entry(
                "7",
                der_sequence(
                    entry("7.1", der_boolean(False)),
                    entry("7.2", der_boolean(False)),
                    entry("7.3", der_boolean(smt_enabled)),
                ),
            )
        )
    return der_sequence(*entries)


@dataclass(frozen=True)
class SimulatedIntelPki:
    """A simulated Intel SGX Root CA with its two PCK CAs and the TCB Signing certificate."""

    root: IntelCa
    platform_ca: IntelCa
    processor_ca: IntelCa
    tcb_signing: IntelCa

    @classmethod
    def generate(
        cls,
        *,
        at: datetime,
        keys: Mapping[str, ec.EllipticCurvePrivateKey] | None = None,
    ) -> SimulatedIntelPki:
        """A new PKI valid from a day before ``at`` (aware). ``keys`` (by member: ``root``,
        ``platform_ca``, ``processor_ca``, ``tcb_signing``) reuses keys: the same keys and
        ``at`` give the same certificates."""
        if at.tzinfo is None:
            raise ValueError("'at' must be timezone-aware")
        warnings.warn(
            "a simulated Intel SGX/TDX PKI is not Intel: its quotes prove nothing about hardware",
            SimulatedIntelWarning,
            stacklevel=2,
        )
        keys = dict(keys or {})
        unknown = set(keys) - set(FILES)
        if unknown:
            raise ValueError(f"unknown members {sorted(unknown)}; one of {sorted(FILES)}")
        for member in FILES:
            keys.setdefault(member, ec.generate_private_key(ec.SECP256R1()))
        start = (at - timedelta(days=1)).replace(microsecond=0)
        root_key = keys["root"]
        root = IntelCa(
            _issue(
                subject=ROOT_CN,
                key=root_key.public_key(),
                issuer=None,
                signer=root_key,
                serial=_ca_serial(root_key),
                start=start,
                end=_root_end(start),
                ca=True,
                path_length=1,
                crl_url=_ROOT_CRL_URL,
            ),
            root_key,
        )

        def below_root(member: str, subject: str, *, ca: bool) -> IntelCa:
            key = keys[member]
            der = _issue(
                subject=subject,
                key=key.public_key(),
                issuer=root,
                signer=root_key,
                serial=_ca_serial(key),
                start=start + timedelta(minutes=5),
                end=_add_years(start + timedelta(minutes=5), _CA_YEARS if ca else _LEAF_YEARS),
                ca=ca,
                path_length=0 if ca else None,
                crl_url=_ROOT_CRL_URL,
            )
            return IntelCa(der, key)

        return cls(
            root=root,
            platform_ca=below_root("platform_ca", PLATFORM_CA_CN, ca=True),
            processor_ca=below_root("processor_ca", PROCESSOR_CA_CN, ca=True),
            tcb_signing=below_root("tcb_signing", TCB_SIGNING_CN, ca=False),
        )

    @classmethod
    def load_or_create(cls, directory: Path, *, at: datetime) -> SimulatedIntelPki:
        """The persisted PKI in ``directory`` (:data:`ROOT_FILE` and the others of
        :data:`FILES`, keys mode 0600), created on first use. A service that trusts
        ``root.pem`` trusts every quote and collateral signed under it."""
        directory.mkdir(parents=True, exist_ok=True)
        with locked(directory / ".lock"):
            if all((directory / name).exists() for pair in FILES.values() for name in pair):
                members = {
                    member: IntelCa(
                        _load_certificate(directory / certificate_file),
                        _load_key(directory / key_file),
                    )
                    for member, (certificate_file, key_file) in FILES.items()
                }
                found = members["root"].certificate.subject
                if found != _name(ROOT_CN):
                    raise ValueError(
                        f"{directory / ROOT_FILE} is not a simulated Intel root ({found})"
                    )
                return cls(**members)
            warnings.warn(
                "creating a simulated Intel root: it is not Intel and proves nothing about "
                "hardware",
                SimulatedIntelWarning,
                stacklevel=2,
            )
            keys: dict[str, ec.EllipticCurvePrivateKey] = {}
            if (directory / FILES["root"][1]).exists():  # keep a root a service may trust
                keys["root"] = _load_key(directory / FILES["root"][1])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SimulatedIntelWarning)
                pki = cls.generate(at=at, keys=keys)
            if keys and (directory / ROOT_FILE).exists():
                pki = cls(
                    IntelCa(_load_certificate(directory / ROOT_FILE), keys["root"]),
                    pki.platform_ca,
                    pki.processor_ca,
                    pki.tcb_signing,
                )
            pki.save(directory)
            return pki

    def save(self, directory: Path) -> None:
        """Persist every member as :meth:`load_or_create` reads them (the root last)."""
        directory.mkdir(parents=True, exist_ok=True)
        for member, (certificate_file, key_file) in reversed(FILES.items()):
            ca: IntelCa = getattr(self, member)
            key_bytes = ca.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_atomically(directory / key_file, key_bytes, 0o600)
            write_atomically(directory / certificate_file, ca.pem(), 0o644)

    def root_pem(self) -> bytes:
        return self.root.pem()

    def pck_ca(self, ca: CaName) -> IntelCa:
        if ca == "platform":
            return self.platform_ca
        if ca == "processor":
            return self.processor_ca
        raise ValueError(f"a PCK CA is 'platform' or 'processor', not {ca!r}")

    def issue_pck(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        ca: CaName,
        tcb: PckTcb,
        at: datetime,
        ppid: bytes,
        serial: int,
        platform_instance_id: bytes | None = None,
    ) -> bytes:
        """The DER PCK certificate of ``public_key`` for a platform at ``tcb``, issued by the
        Platform or Processor CA, valid from a day before ``at`` for 7 years."""
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError("a PCK key is on P-256")
        if len(ppid) != 16:
            raise ValueError(f"a PPID is 16 bytes, not {len(ppid)}")
        issuer = self.pck_ca(ca)
        start = (at - timedelta(days=1)).replace(microsecond=0)
        extension = x509.UnrecognizedExtension(
            ObjectIdentifier(INTEL_SGX_OID),
            sgx_extension(tcb, ca=ca, ppid=ppid, platform_instance_id=platform_instance_id),
        )
        return _issue(
            subject=PCK_CN,
            key=public_key,
            issuer=issuer,
            signer=issuer.private_key,
            serial=serial,
            start=start,
            end=_add_years(start, _LEAF_YEARS),
            ca=False,
            path_length=None,
            crl_url=_PCK_CRL_URL.format(ca=ca),
            extra=[extension],
        )

    def root_crl(self, *, at: datetime, revoked: Iterable[int] = ()) -> bytes:
        """The Root CA CRL (DER) issued at ``at``, valid a year, revoking ``revoked``
        serial numbers (CAs, the TCB Signing certificate)."""
        return _crl(self.root, at=at, days=_ROOT_CRL_DAYS, revoked=revoked)

    def pck_crl(self, ca: CaName, *, at: datetime, revoked: Iterable[int] = ()) -> bytes:
        """The PCK Platform or Processor CA's CRL (DER) issued at ``at``, valid 30 days,
        revoking the PCK certificates whose serial numbers are ``revoked``."""
        return _crl(self.pck_ca(ca), at=at, days=_PCK_CRL_DAYS, revoked=revoked)


def _crl(issuer: IntelCa, *, at: datetime, days: int, revoked: Iterable[int]) -> bytes:
    if at.tzinfo is None:
        raise ValueError("'at' must be timezone-aware")
    issued = at.replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(issued)
        .next_update(issued + timedelta(days=days))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(
                key_identifier=issuer.key_identifier,
                authority_cert_issuer=None,
                authority_cert_serial_number=None,
            ),
            critical=False,
        )
    )
    for serial in sorted(set(revoked)):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(issued)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    crl = builder.sign(issuer.private_key, hashes.SHA256(), ecdsa_deterministic=True)
    return crl.public_bytes(serialization.Encoding.DER)


def _load_certificate(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path} is not a P-256 private key")
    return key
