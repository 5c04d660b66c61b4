"""A simulated Nitro PKI: five P-384 levels with AWS's profile. NOT AWS, and it says so.

The chain mirrors what AWS's documents carry (measured on real ones, see
tests/fixtures/nitro/README.md): root (30 years, CA without pathLen) -> regional (481 hours,
pathLen 2, CRL distribution point) -> zonal (about 6 days, pathLen 1, CRL distribution point)
-> instance (24 hours, pathLen 0, keyUsage keyCertSign only) -> leaf (3 hours and 3 seconds,
cA false, keyUsage digitalSignature + nonRepudiation, not critical, no key identifiers). All
signatures are ecdsa-with-SHA384. Subjects carry "simulated" so that nobody mistakes them for
AWS's.

This module is written independently of ``verifier/`` (it imports nothing from it), so
documents it produces are a cross-check of the verifier rather than a mirror of it.

:meth:`SimulatedNitroPki.reissue` re-issues one level with changes (an expired window, a
missing CA flag, a different signer...) keeping its key pair, so the certificates below it
still chain: that is how tests build one broken link at a time.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "LEVELS",
    "CertificateSpec",
    "IssuedCertificate",
    "SimulatedNitroPki",
    "SimulatedNitroWarning",
]

LEVELS = ("root", "regional", "zonal", "instance", "leaf")


class SimulatedNitroWarning(UserWarning):
    """Emitted when a simulated (non-AWS) Nitro PKI or NSM is created."""


@dataclass(frozen=True)
class CertificateSpec:
    """Everything that varies between the levels of the chain, and what tests change."""

    subject: x509.Name
    not_before: datetime
    not_after: datetime
    #: None leaves basicConstraints out entirely.
    ca: bool | None
    path_length: int | None
    basic_constraints_critical: bool
    key_cert_sign: bool
    digital_signature: bool
    crl_sign: bool
    non_repudiation: bool
    #: None leaves keyUsage out entirely.
    key_usage_critical: bool | None
    key_identifiers: bool
    crl_url: str | None
    #: Which level's key signs this certificate (normally the level above).
    signed_by: str | None
    #: Which level's subject is written as the issuer (normally the level above).
    issuer_level: str | None
    hash_algorithm: str = "sha384"
    serial_number: int = 0
    #: Further (extension value, critical) pairs, for tests of unknown critical extensions.
    extra_extensions: tuple[tuple[x509.ExtensionType, bool], ...] = ()


@dataclass(frozen=True)
class IssuedCertificate:
    level: str
    spec: CertificateSpec
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class SimulatedNitroPki:
    """A complete simulated chain; ``certificates[level]`` for each of :data:`LEVELS`."""

    certificates: dict[str, IssuedCertificate]
    region: str
    instance_id: str
    enclave_id: str

    @classmethod
    def generate(
        cls,
        *,
        at: datetime,
        region: str = "us-east-1",
        instance_id: str | None = None,
        root: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
    ) -> SimulatedNitroPki:
        """A fresh chain whose every certificate is valid at ``at`` (an aware datetime).

        The leaf starts a minute before ``at``, as a real NSM's leaf precedes the document
        it signs; it then lives 3 hours, so documents stamped up to then verify. ``root``
        (key, certificate) reuses a persisted simulated root instead of making a new one,
        so that a service configured to trust it keeps trusting new chains.
        """
        if at.tzinfo is None:
            raise ValueError("'at' must be timezone-aware")
        warnings.warn(
            "a simulated Nitro PKI is not AWS: its documents prove nothing about real hardware",
            SimulatedNitroWarning,
            stacklevel=2,
        )
        instance_id = instance_id or "i-" + secrets.token_hex(9)[:17]
        enclave_id = secrets.token_hex(8)
        region_tag = secrets.token_hex(8)
        zone_tag = secrets.token_hex(8)
        base = [
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.ORGANIZATION_NAME, "Amazon"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "AWS"),
        ]
        specs = {
            "root": _spec(
                _name(*base, (NameOID.COMMON_NAME, "simulated.nitro-enclaves")),
                at - timedelta(days=365 * 5),
                timedelta(days=365 * 30),
                ca=True,
                path_length=None,
                crl_sign=True,
                digital_signature=True,
                key_identifiers=True,
            ),
            "regional": _spec(
                _name(
                    *base, (NameOID.COMMON_NAME, f"{region_tag}.{region}.simulated.nitro-enclaves")
                ),
                at - timedelta(days=2),
                timedelta(hours=481),
                ca=True,
                path_length=2,
                crl_sign=True,
                digital_signature=True,
                key_identifiers=True,
                crl_url=f"http://simulated-crl.invalid/crl/{region_tag}.crl",
            ),
            "zonal": _spec(
                _name(
                    (NameOID.LOCALITY_NAME, "Seattle"),
                    (NameOID.STATE_OR_PROVINCE_NAME, "WA"),
                    *base,
                    (NameOID.COMMON_NAME, f"{zone_tag}.zonal.{region}.simulated.nitro-enclaves"),
                ),
                at - timedelta(days=1),
                timedelta(hours=135),
                ca=True,
                path_length=1,
                crl_sign=True,
                digital_signature=True,
                key_identifiers=True,
                crl_url=f"http://simulated-crl.invalid/crl/{zone_tag}.crl",
            ),
            "instance": _spec(
                _name(
                    *base,
                    (NameOID.LOCALITY_NAME, "Seattle"),
                    (NameOID.STATE_OR_PROVINCE_NAME, "Washington"),
                    (NameOID.COMMON_NAME, f"{instance_id}.{region}.simulated.nitro-enclaves"),
                ),
                at - timedelta(hours=1),
                timedelta(hours=24),
                ca=True,
                path_length=0,
                key_identifiers=True,
            ),
            "leaf": dataclasses.replace(
                _spec(
                    _name(
                        *base,
                        (NameOID.LOCALITY_NAME, "Seattle"),
                        (NameOID.STATE_OR_PROVINCE_NAME, "Washington"),
                        (NameOID.COMMON_NAME, f"{instance_id}-enc{enclave_id}.{region}.simulated"),
                    ),
                    at - timedelta(minutes=1),
                    timedelta(hours=3, seconds=3),
                    ca=False,
                    path_length=None,
                    digital_signature=True,
                    key_identifiers=False,
                ),
                non_repudiation=True,
                key_usage_critical=False,
            ),
        }
        issued: dict[str, IssuedCertificate] = {}
        if root is not None:
            root_key, root_certificate = root
            root_spec = dataclasses.replace(
                specs["root"],
                subject=root_certificate.subject,
                not_before=root_certificate.not_valid_before_utc,
                not_after=root_certificate.not_valid_after_utc,
                serial_number=root_certificate.serial_number,
            )
            issued["root"] = IssuedCertificate("root", root_spec, root_certificate, root_key)
        for level in LEVELS:
            if level in issued:
                continue
            key = ec.generate_private_key(ec.SECP384R1())
            issued[level] = _issue(level, specs[level], key, issued)
        return cls(
            certificates=issued, region=region, instance_id=instance_id, enclave_id=enclave_id
        )

    @property
    def root(self) -> IssuedCertificate:
        return self.certificates["root"]

    @property
    def leaf(self) -> IssuedCertificate:
        return self.certificates["leaf"]

    @property
    def module_id(self) -> str:
        return f"{self.instance_id}-enc{self.enclave_id}"

    def cabundle(self) -> list[bytes]:
        """Root first, as the NSM orders it."""
        return [self.certificates[level].der for level in LEVELS[:-1]]

    def root_pem(self) -> bytes:
        return self.root.certificate.public_bytes(serialization.Encoding.PEM)

    def reissue(
        self,
        level: str,
        *,
        private_key: ec.EllipticCurvePrivateKey | None = None,
        **changes: object,
    ) -> SimulatedNitroPki:
        """Re-issue ``level`` with ``changes`` to its :class:`CertificateSpec`.

        The key pair stays the same unless ``private_key`` is given, so certificates below it
        still chain: the key and subject they were signed under are unchanged (unless
        ``changes`` alter the subject).
        """
        current = self.certificates[level]
        spec = dataclasses.replace(current.spec, **changes)  # type: ignore[arg-type]  # any field
        issued = dict(self.certificates)
        issued[level] = _issue(level, spec, private_key or current.private_key, issued)
        return dataclasses.replace(self, certificates=issued)

    def with_new_leaf(self, *, at: datetime) -> SimulatedNitroPki:
        """A new leaf key and certificate valid from ``at``, as the NSM rotates them."""
        spec = dataclasses.replace(
            self.leaf.spec,
            not_before=at - timedelta(minutes=1),
            not_after=at - timedelta(minutes=1) + timedelta(hours=3, seconds=3),
        )
        issued = dict(self.certificates)
        issued["leaf"] = _issue("leaf", spec, ec.generate_private_key(ec.SECP384R1()), issued)
        return dataclasses.replace(self, certificates=issued)


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def _spec(
    subject: x509.Name,
    not_before: datetime,
    lifetime: timedelta,
    *,
    ca: bool,
    path_length: int | None,
    key_identifiers: bool,
    crl_sign: bool = False,
    digital_signature: bool = False,
    crl_url: str | None = None,
) -> CertificateSpec:
    return CertificateSpec(
        subject=subject,
        not_before=not_before.replace(microsecond=0),
        not_after=(not_before + lifetime).replace(microsecond=0),
        ca=ca,
        path_length=path_length,
        basic_constraints_critical=True,
        key_cert_sign=ca,
        digital_signature=digital_signature,
        crl_sign=crl_sign,
        non_repudiation=False,
        key_usage_critical=True,
        key_identifiers=key_identifiers,
        crl_url=crl_url,
        signed_by=None,
        issuer_level=None,
        serial_number=x509.random_serial_number(),
    )


def _issue(
    level: str,
    spec: CertificateSpec,
    key: ec.EllipticCurvePrivateKey,
    issued: dict[str, IssuedCertificate],
) -> IssuedCertificate:
    above = LEVELS[LEVELS.index(level) - 1] if level != "root" else None
    signer_level = spec.signed_by or above
    issuer_level = spec.issuer_level or above
    signer_key: ec.EllipticCurvePrivateKey = (
        issued[signer_level].private_key if signer_level else key
    )
    issuer_name = issued[issuer_level].spec.subject if issuer_level else spec.subject
    issuer_public = signer_key.public_key()

    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(spec.serial_number)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
    )
    if spec.ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length if spec.ca else None),
            critical=spec.basic_constraints_critical,
        )
    if spec.key_usage_critical is not None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=spec.digital_signature,
                content_commitment=spec.non_repudiation,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=spec.key_cert_sign,
                crl_sign=spec.crl_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=spec.key_usage_critical,
        )
    if spec.key_identifiers:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        if level != "root":
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
            )
    if spec.crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(spec.crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    for extension, critical in spec.extra_extensions:
        builder = builder.add_extension(extension, critical=critical)
    algorithm: hashes.SHA384 | hashes.SHA256 = (
        hashes.SHA256() if spec.hash_algorithm == "sha256" else hashes.SHA384()
    )
    certificate = builder.sign(signer_key, algorithm)
    return IssuedCertificate(level=level, spec=spec, certificate=certificate, private_key=key)


def load_or_create_root(
    directory: Path, *, at: datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The persisted simulated root in ``directory`` (``root.pem``, ``root.key`` mode 0600),
    created on first use. A service that trusts ``root.pem`` trusts every chain made from it.
    """
    cert_path, key_path = directory / "root.pem", directory / "root.key"
    if cert_path.exists() and key_path.exists():
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC private key")
        return key, certificate
    warnings.warn(
        "creating a simulated Nitro root: it is not AWS and proves nothing about hardware",
        SimulatedNitroWarning,
        stacklevel=2,
    )
    key = ec.generate_private_key(ec.SECP384R1())
    spec = _spec(
        _name(
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.ORGANIZATION_NAME, "Amazon"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "AWS"),
            (NameOID.COMMON_NAME, "simulated.nitro-enclaves"),
        ),
        at - timedelta(days=1),
        timedelta(days=365 * 30),
        ca=True,
        path_length=None,
        crl_sign=True,
        digital_signature=True,
        key_identifiers=True,
    )
    issued = _issue("root", spec, key, {})
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    return key, issued.certificate
