"""A simulated AMD key distribution: ARK, ASK and VCEKs with AMD's profile. NOT AMD, and it
says so in every certificate's name.

The profile is AMD's as measured on the real certificates in tests/fixtures/snp (the test
``tests/enclave_worker/test_simulated_amd.py`` compares them field by field):

* ARK (AMD Root Key): RSA-4096, self-signed, serial ``product << 16`` (Milan 0x10000),
  25 years; keyUsage keyCertSign + cRLSign (critical), subjectKeyIdentifier,
  basicConstraints cA (critical, no path length), CRL distribution point, in that order.
* ASK (AMD SEV Key): RSA-4096, signed by the ARK, AMD's serial (Milan 0x10001, Genoa
  0x20002), 25 years; subjectKeyIdentifier, authorityKeyIdentifier (key id only),
  basicConstraints cA pathLen 0 (critical), keyUsage keyCertSign (critical), CRL
  distribution point.
* VCEK (Versioned Chip Endorsement Key): P-384, signed by the ASK, serial number 0, 7
  years; no standard extensions, only AMD's under 1.3.6.1.4.1.3704.1: ``.1`` struct version
  (INTEGER 0), ``.2`` productName (IA5String), ``.3.1`` blSPL, ``.3.2`` teeSPL, ``.3.4`` to
  ``.3.7`` reserved (0), ``.3.3`` snpSPL, ``.3.8`` ucodeSPL (DER INTEGERs, in this order),
  ``.3.9`` fmcSPL on Turin, ``.4`` hwID (the chip_id, raw; 8 bytes on Turin). None critical.
* Names ``OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=...``
  with the CN AMD's plus " (simulated)". Every CA signature is RSASSA-PSS with SHA-384,
  MGF1-SHA-384 and a 48-byte salt. AMD's ARK and ASK write the PSS trailerField (1)
  explicitly, as these do; VCEKs issued since 2024 leave it out, as these do.

cryptography's CertificateBuilder refuses serial number 0 and always leaves the trailerField
out, so :func:`_amd_signed` takes the certificate it builds, rewrites the serial number and
the signature algorithm in its TBSCertificate, and signs that again (a few lines of DER).

Written independently of ``verifier/`` (it imports nothing from it): reports signed under
this PKI cross-check the verifier rather than mirror it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from enclave_worker.der import der as _der
from enclave_worker.der import der_integer
from enclave_worker.persist import locked, write_atomically
from enclave_worker.snp_report import PRODUCTS, Product, Tcb

__all__ = [
    "AMD_OID",
    "ARK_FILE",
    "ARK_KEY_FILE",
    "ASK_FILE",
    "ASK_KEY_FILE",
    "AmdCa",
    "SimulatedAmdPki",
    "SimulatedAmdWarning",
    "der_integer",
]

ARK_FILE, ARK_KEY_FILE = "ark.pem", "ark.key"
ASK_FILE, ASK_KEY_FILE = "ask.pem", "ask.key"
DEFAULT_PRODUCT: Final = "Genoa"
SIMULATED: Final = " (simulated)"
AMD_OID: Final = "1.3.6.1.4.1.3704.1"
_CA_YEARS, _VCEK_YEARS = 25, 7
_KEY_SIZE = 4096
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
# AlgorithmIdentifier rsassaPss {sha384 (NULL parameters), mgf1(sha384), saltLength 48},
# with and without the explicit trailerField 1.
_PSS_WITHOUT_TRAILER: Final = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c301a06092a864886"
    "f70d010108300d06096086480165030402020500a203020130"
)
_PSS_WITH_TRAILER: Final = bytes.fromhex(
    "304606092a864886f70d01010a3039a00f300d06096086480165030402020500a11c301a06092a864886"
    "f70d010108300d06096086480165030402020500a203020130a303020101"
)


class SimulatedAmdWarning(UserWarning):
    """Emitted when a simulated (non-AMD) SEV-SNP PKI or platform is created."""


@dataclass(frozen=True)
class AmdCa:
    """An ARK or ASK: its certificate and private key."""

    der: bytes
    private_key: rsa.RSAPrivateKey

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class SimulatedAmdPki:
    """One product's simulated ARK and ASK, which issue VCEKs for simulated chips."""

    product: Product
    ark: AmdCa
    ask: AmdCa

    @classmethod
    def generate(
        cls,
        *,
        at: datetime,
        product: str = DEFAULT_PRODUCT,
        ark_key: rsa.RSAPrivateKey | None = None,
        ask_key: rsa.RSAPrivateKey | None = None,
    ) -> SimulatedAmdPki:
        """A new ARK and ASK valid from a day before ``at`` (aware) for 25 years.

        Generating two RSA-4096 keys takes seconds: persist with :meth:`load_or_create`, or
        pass keys to reuse them (tests share two keys between products).
        """
        if at.tzinfo is None:
            raise ValueError("'at' must be timezone-aware")
        if product not in PRODUCTS:
            raise ValueError(f"unknown AMD product {product!r}; one of {sorted(PRODUCTS)}")
        warnings.warn(
            "a simulated AMD SEV-SNP PKI is not AMD: its reports prove nothing about hardware",
            SimulatedAmdWarning,
            stacklevel=2,
        )
        spec = PRODUCTS[product]
        ark_key = ark_key or _new_rsa_key()
        ask_key = ask_key or _new_rsa_key()
        start = (at - timedelta(days=1)).replace(microsecond=0)
        ark = AmdCa(_issue_ark(spec, ark_key, start), ark_key)
        ask = AmdCa(_issue_ask(spec, ask_key, ark, start + timedelta(hours=1)), ask_key)
        return cls(spec, ark, ask)

    @classmethod
    def load_or_create(
        cls, directory: Path, *, at: datetime, product: str | None = None
    ) -> SimulatedAmdPki:
        """The persisted simulated ARK and ASK in ``directory`` (``ark.pem``, ``ask.pem``,
        their keys ``ark.key`` and ``ask.key`` mode 0600), created on first use (for
        ``product``, Genoa by default). A service that trusts ``ark.pem`` trusts every VCEK
        issued under it. ``product``, when given, must be the persisted one's.
        """
        directory.mkdir(parents=True, exist_ok=True)
        with locked(directory / ".lock"):
            if (directory / ARK_FILE).exists() and (directory / ARK_KEY_FILE).exists():
                ark = AmdCa(
                    _load_certificate(directory / ARK_FILE),
                    _load_rsa_key(directory / ARK_KEY_FILE),
                )
                found = _product_of(ark.certificate, directory / ARK_FILE)
                if product is not None and product != found.name:
                    raise ValueError(
                        f"{directory / ARK_FILE} is a simulated {found.name} root, not {product}"
                    )
                if (directory / ASK_FILE).exists() and (directory / ASK_KEY_FILE).exists():
                    ask = AmdCa(
                        _load_certificate(directory / ASK_FILE),
                        _load_rsa_key(directory / ASK_KEY_FILE),
                    )
                    return cls(found, ark, ask)
                start = ark.certificate.not_valid_before_utc + timedelta(hours=1)
                ask_key = _new_rsa_key()
                ask = AmdCa(_issue_ask(found, ask_key, ark, start), ask_key)
                _save(directory, ASK_FILE, ASK_KEY_FILE, ask)
                return cls(found, ark, ask)
            warnings.warn(
                "creating a simulated AMD root: it is not AMD and proves nothing about hardware",
                SimulatedAmdWarning,
                stacklevel=2,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SimulatedAmdWarning)
                pki = cls.generate(at=at, product=product or DEFAULT_PRODUCT)
            pki.save(directory)
            return pki

    def save(self, directory: Path) -> None:
        """Persist the ARK and ASK in ``directory`` as :meth:`load_or_create` reads them."""
        directory.mkdir(parents=True, exist_ok=True)
        _save(directory, ASK_FILE, ASK_KEY_FILE, self.ask)
        _save(directory, ARK_FILE, ARK_KEY_FILE, self.ark)

    def issue_vcek(
        self, public_key: ec.EllipticCurvePublicKey, *, chip_id: bytes, tcb: Tcb, at: datetime
    ) -> bytes:
        """The DER VCEK certificate of ``public_key`` for this chip at this TCB, valid from a
        day before ``at`` for 7 years."""
        if len(chip_id) != 64:
            raise ValueError(f"chip_id is 64 bytes, not {len(chip_id)}")
        if not isinstance(public_key.curve, ec.SECP384R1):
            raise ValueError("a VCEK key is on P-384")
        product = self.product
        start = (at - timedelta(days=1)).replace(microsecond=0)
        spls = [
            ("3.1", tcb.bootloader),
            ("3.2", tcb.tee),
            ("3.4", 0),
            ("3.5", 0),
            ("3.6", 0),
            ("3.7", 0),
            ("3.3", tcb.snp),
            ("3.8", tcb.microcode),
        ]
        if product.fmc:
            if tcb.fmc is None:
                raise ValueError(f"a {product.name} TCB has an FMC SPL")
            spls.append(("3.9", tcb.fmc))
        extensions = [
            ("1", der_integer(0)),
            ("2", _der(0x16, product.name.encode("ascii"))),
            *((arc, der_integer(value)) for arc, value in spls),
            ("4", chip_id[: product.hwid_size]),
        ]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_amd_name("SEV-VCEK"))
            .issuer_name(self.ask.certificate.subject)
            .public_key(public_key)
            .serial_number(1)  # AMD's is 0, which the builder refuses: rewritten below
            .not_valid_before(start)
            .not_valid_after(_add_years(start, _VCEK_YEARS))
        )
        for arc, value in extensions:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ObjectIdentifier(f"{AMD_OID}.{arc}"), value),
                critical=False,
            )
        built = builder.sign(self.ask.private_key, hashes.SHA384(), rsa_padding=_PSS)
        return _amd_signed(built, self.ask.private_key, serial=0, explicit_trailer=False)

    def ark_pem(self) -> bytes:
        return self.ark.pem()


def _new_rsa_key() -> rsa.RSAPrivateKey:
    """An RSA-4096 key, as AMD's ARK and ASK have (seconds to generate: persist them)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def _issue_ark(product: Product, key: rsa.RSAPrivateKey, start: datetime) -> bytes:
    name = _amd_name(f"ARK-{product.name}")
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(product.ark_serial)
        .not_valid_before(start)
        .not_valid_after(_add_years(start, _CA_YEARS))
        .add_extension(_key_usage(crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_crl_distribution(product), critical=False)
    )
    built = builder.sign(key, hashes.SHA384(), rsa_padding=_PSS)
    return _amd_signed(built, key, serial=product.ark_serial, explicit_trailer=True)


def _issue_ask(product: Product, key: rsa.RSAPrivateKey, ark: AmdCa, start: datetime) -> bytes:
    ark_certificate = ark.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(_amd_name(f"SEV-{product.name}"))
        .issuer_name(ark_certificate.subject)
        .public_key(key.public_key())
        .serial_number(product.ask_serial)
        .not_valid_before(start)
        .not_valid_after(_add_years(start, _CA_YEARS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(
                key_identifier=ark_certificate.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier
                ).value.digest,
                authority_cert_issuer=None,
                authority_cert_serial_number=None,
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(crl_sign=False), critical=True)
        .add_extension(_crl_distribution(product), critical=False)
    )
    built = builder.sign(ark.private_key, hashes.SHA384(), rsa_padding=_PSS)
    return _amd_signed(built, ark.private_key, serial=product.ask_serial, explicit_trailer=True)


def _amd_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name + SIMULATED),
        ]
    )


def _key_usage(*, crl_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _crl_distribution(product: Product) -> x509.CRLDistributionPoints:
    # AMD's is https://kdsintf.amd.com/vcek/v1/<product>/crl; this host does not exist.
    url = f"https://kdsintf.simulated-amd.invalid/vcek/v1/{product.name}/crl"
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
    """The same calendar date ``years`` later (AMD's windows: 2023-04-03 to 2030-04-03)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


# --- DER: the serial number and signature algorithm cryptography will not write -----------


def _elements(der: bytes) -> list[bytes]:
    """The encoded elements inside the DER SEQUENCE ``der`` (single-byte tags)."""
    content = _content(der)
    elements, offset = [], 0
    while offset < len(content):
        end = offset + len(_tlv(content[offset:]))
        elements.append(content[offset:end])
        offset = end
    return elements


def _tlv(der: bytes) -> bytes:
    """The first whole element (tag, length, content) of ``der``."""
    first = der[1]
    if first < 0x80:
        return der[: 2 + first]
    count = first & 0x7F
    size = int.from_bytes(der[2 : 2 + count], "big")
    return der[: 2 + count + size]


def _content(der: bytes) -> bytes:
    first = der[1]
    header = 2 if first < 0x80 else 2 + (first & 0x7F)
    return der[header : len(_tlv(der))]


def _amd_signed(
    built: x509.Certificate, signer: rsa.RSAPrivateKey, *, serial: int, explicit_trailer: bool
) -> bytes:
    """``built`` with ``serial`` and AMD's RSASSA-PSS algorithm identifier, signed again."""
    version, _serial, _algorithm, *rest = _elements(built.tbs_certificate_bytes)
    algorithm = _PSS_WITH_TRAILER if explicit_trailer else _PSS_WITHOUT_TRAILER
    tbs = _der(0x30, version + der_integer(serial) + algorithm + b"".join(rest))
    signature = signer.sign(tbs, _PSS, hashes.SHA384())
    return _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))


# --- persistence ----------------------------------------------------------------------------


def _save(directory: Path, certificate_file: str, key_file: str, ca: AmdCa) -> None:
    key_bytes = ca.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomically(directory / key_file, key_bytes, 0o600)
    write_atomically(directory / certificate_file, ca.pem(), 0o644)


def _load_certificate(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


def _load_rsa_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return key


def _product_of(ark: x509.Certificate, path: Path) -> Product:
    names = ark.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else ""
    found = re.fullmatch(r"ARK-(\w+) \(simulated\)", common_name)
    if found is None or found.group(1) not in PRODUCTS:
        raise ValueError(f"{path} is not a simulated AMD root (its CN is {common_name!r})")
    return PRODUCTS[found.group(1)]
