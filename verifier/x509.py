"""What the schemes share of X.509: trust anchors, certificate facts for display, validity at a
time, a cache of verified links, and loading certificates whatever cryptography warns about.

Each scheme checks its own path profile (Nitro: ECDSA P-384 from cabundle; SNP: RSASSA-PSS
from the AMD root key to a P-384 VCEK or VLEK) with these pieces. The rules that are the
same everywhere live here:

* **Validity at a time.** Every certificate must be valid at the verification time ``at``.
  Clock skew applies to a certificate that is not yet valid (its ``notBefore`` may be up to
  ``clock_skew`` after ``at``), never to expiry.
* **Anchors are explicit.** A :class:`TrustAnchor` is a self-signed CA certificate; the
  pinned ones ship as package data and are checked by the SHA-256 of their DER when loaded.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from verifier.errors import CertificateExpired, CertificateNotYetValid
from verifier.timefmt import iso_utc

__all__ = [
    "CERTIFICATE_PARSE_ERRORS",
    "AnchorKey",
    "CertificateInfo",
    "LinkCache",
    "TrustAnchor",
    "certificate_info",
    "check_validity",
    "first_line",
    "load_der_certificate",
    "load_der_crl",
    "names_checked",
    "names_tolerated",
    "serial_number_text",
]

#: What cryptography raises from its (lazy) accessors for a corrupt certificate. The
#: deprecation warning arrives as an exception where warnings are errors, as in our tests.
CERTIFICATE_PARSE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.AttributeNotFound,
    CryptographyDeprecationWarning,
)

AnchorKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_MIN_RSA_BITS = 2048
_SERIAL_WARNING = "Parsed a serial number which wasn't positive"
_NAME_LENGTH_WARNING = "Attribute's length must be"
#: Roots pinned by a scheme whose common names exceed 64 characters (Google's 2018 vTPM
#: EK/AK root, 84): by SHA-256 of the DER, so that no other certificate is let through.
NAMES_TOLERATED_SHA256 = frozenset(
    {"9bd5285f8fb18502a7947e621ffd470266f49fcd3b73e19a190f690ad32a7caf"}
)
#: warnings.catch_warnings changes process-wide state: one at a time (re-entrant, so that a
#: load inside names_checked() does not wait for itself).
_TOLERANT_LOAD = threading.RLock()


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """A self-signed root certificate that a path must end in, byte for byte."""

    name: str
    der: bytes
    certificate: x509.Certificate = field(repr=False, compare=False)
    public_key: AnchorKey = field(repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the DER encoding."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @classmethod
    def from_der(cls, der: bytes, *, name: str) -> TrustAnchor:
        """Build an anchor from a DER certificate: a self-signed CA (critical basicConstraints
        cA=true, keyUsage keyCertSign) with a P-384 key (AWS), a P-256 key (Intel) or an RSA
        key of at least 2048 bits (AMD's are 4096). Each scheme checks the key type its
        profile needs.

        Raises ``ValueError`` if the bytes are not such a certificate: a bad anchor is a
        configuration mistake, not a property of the evidence. The few pinned roots whose
        names break RFC 5280's length rule (:data:`NAMES_TOLERATED_SHA256`) load, by their
        exact bytes, wherever they come from (package data, a bundle's trust/, --trust-root).
        """
        if hashlib.sha256(der).hexdigest() in NAMES_TOLERATED_SHA256:
            with names_tolerated():
                return cls._from_der(der, name=name)
        return cls._from_der(der, name=name)

    @classmethod
    def _from_der(cls, der: bytes, *, name: str) -> TrustAnchor:
        try:
            certificate = x509.load_der_x509_certificate(der)
            key = certificate.public_key()
        except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
            raise ValueError(f"trust anchor {name!r} is not a DER X.509 certificate") from exc
        if isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name not in ("secp384r1", "secp256r1"):
                raise ValueError(f"trust anchor {name!r}: expected a P-384, P-256 or RSA key")
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < _MIN_RSA_BITS:
                raise ValueError(f"trust anchor {name!r}: RSA keys must have 2048 bits or more")
        else:
            raise ValueError(f"trust anchor {name!r}: expected a P-384, P-256 or RSA key")
        try:
            basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        except (x509.ExtensionNotFound, ValueError) as exc:
            raise ValueError(f"trust anchor {name!r} lacks CA extensions") from exc
        if not basic.value.ca or not usage.value.key_cert_sign:
            raise ValueError(f"trust anchor {name!r} is not a CA certificate")
        if certificate.issuer != certificate.subject:
            raise ValueError(f"trust anchor {name!r} is not self-issued")
        try:
            certificate.verify_directly_issued_by(certificate)
        except Exception as exc:  # InvalidSignature, ValueError, TypeError: all mean "not a root"
            raise ValueError(f"trust anchor {name!r} is not self-signed") from exc
        return cls(name=name, der=der, certificate=certificate, public_key=key)

    @classmethod
    def from_pem(cls, pem: bytes, *, name: str) -> TrustAnchor:
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise ValueError(f"trust anchor {name!r} is not a PEM X.509 certificate") from exc
        return cls.from_der(certificate.public_bytes(Encoding.DER), name=name)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What a result reports about one certificate of a path."""

    position: str  # Nitro: "cabundle[0]" ... "certificate"; SNP: "ark", "ask", "vcek", ...
    role: str  # "root", "intermediate" or "leaf"
    subject: str
    issuer: str
    serial_number: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "position": self.position,
            "role": self.role,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial_number": self.serial_number,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_before": iso_utc(self.not_before, "seconds"),
            "not_after": iso_utc(self.not_after, "seconds"),
        }

    def valid_at(self, at: datetime) -> bool:
        """Whether ``at`` falls inside the window, both ends included (for display)."""
        return self.not_before <= at <= self.not_after


def check_validity(info: CertificateInfo, at: datetime, clock_skew: timedelta) -> None:
    """Raise unless ``info``'s certificate is valid at ``at``: skew for notBefore only."""
    if info.not_before > at + clock_skew:  # (not `not_before - skew`: it overflows near year 1)
        raise CertificateNotYetValid(
            f"{info.position} ({info.subject}) is valid from "
            f"{iso_utc(info.not_before, 'seconds')}; verification time {iso_utc(at)} "
            f"(clock skew allowed: {clock_skew})"
        )
    if at > info.not_after:
        raise CertificateExpired(
            f"{info.position} ({info.subject}) expired at {iso_utc(info.not_after, 'seconds')}; "
            f"verification time {iso_utc(at)}"
        )


def load_der_certificate(der: bytes, *, allow_zero_serial: bool = False) -> x509.Certificate:
    """Load a DER certificate; raises ``ValueError`` (or another of
    :data:`CERTIFICATE_PARSE_ERRORS`) if it does not parse.

    Two of cryptography's warnings are handled here, so that neither escapes as a warning
    (nor, where warnings are errors, as an exception of another type):

    * a name attribute of the wrong length (a country name that is not two letters, a common
      name over 64 characters): cryptography warns each time the name is read; here such a
      certificate is refused with ``ValueError``, once, at load;
    * a serial number that is not positive, which RFC 5280 forbids and cryptography 48-50
      warn about (at load and when the serial is read): refused with ``ValueError``, unless
      ``allow_zero_serial`` (AMD issues every VCEK and VLEK with serial 0), which silences
      exactly that warning while the certificate is loaded and its serial read. Either way the
      outcome does not depend on the process's warning filters (under ``-W error`` a CA of
      serial 0 was refused, elsewhere accepted: a verdict must not depend on that).

    ``warnings.catch_warnings`` changes process-wide state, so loads are serialised; callers
    cache what they load, so this is the cold path.
    """
    with _TOLERANT_LOAD, warnings.catch_warnings():
        warnings.filterwarnings("error", message=_NAME_LENGTH_WARNING, category=UserWarning)
        warnings.filterwarnings(
            "ignore" if allow_zero_serial else "error",
            message=_SERIAL_WARNING,
            category=CryptographyDeprecationWarning,
        )
        try:
            certificate = x509.load_der_x509_certificate(der)
            _ = certificate.serial_number  # warns once more; read here, where it is handled
            _ = certificate.subject, certificate.issuer  # names are parsed when read
        except CryptographyDeprecationWarning as exc:
            if _SERIAL_WARNING not in str(exc):
                raise
            raise ValueError("its serial number is not positive (RFC 5280)") from None
        except UserWarning as exc:
            raise ValueError(f"invalid name: {first_line(exc)}") from None
        return certificate


@contextmanager
def names_checked() -> Iterator[None]:
    """Within it, a name attribute of the wrong length, which cryptography warns about each
    time such a name is read, raises ``ValueError`` instead (see
    :func:`load_der_certificate`). For code that reads a certificate's names itself, so that
    they are parsed once."""
    with _TOLERANT_LOAD, warnings.catch_warnings():
        warnings.filterwarnings("error", message=_NAME_LENGTH_WARNING, category=UserWarning)
        try:
            yield
        except UserWarning as exc:
            if isinstance(exc, CryptographyDeprecationWarning):
                raise
            raise ValueError(f"invalid name: {first_line(exc)}") from None


@contextmanager
def names_tolerated() -> Iterator[None]:
    """Within it, cryptography's warning about a name attribute of the wrong length is
    ignored: for pinned package data that breaks that rule on its own (Google's 2018 vTPM
    CA names have common names of 79 and 84 characters). Everything else about such a
    certificate is still checked; names are compared by their DER bytes."""
    with _TOLERANT_LOAD, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NAME_LENGTH_WARNING, category=UserWarning)
        yield


def load_der_crl(der: bytes) -> x509.CertificateRevocationList:
    """Load a DER CRL; a name attribute of the wrong length is refused with ``ValueError`` as
    in :func:`load_der_certificate`."""
    with _TOLERANT_LOAD, warnings.catch_warnings():
        warnings.filterwarnings("error", message=_NAME_LENGTH_WARNING, category=UserWarning)
        try:
            crl = x509.load_der_x509_crl(der)
            _ = crl.issuer
        except UserWarning as exc:
            raise ValueError(f"invalid name: {first_line(exc)}") from None
        return crl


def serial_number_text(certificate: x509.Certificate) -> str:
    """The serial number in hex, read without letting a serial-0 warning escape."""
    with _TOLERANT_LOAD, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=_SERIAL_WARNING, category=CryptographyDeprecationWarning
        )
        return format(certificate.serial_number, "x")


def certificate_info(
    certificate: x509.Certificate, der: bytes, *, position: str, role: str, issuer: str | None
) -> CertificateInfo:
    subject = certificate.subject.rfc4514_string()
    return CertificateInfo(
        position=position,
        role=role,
        subject=subject,
        issuer=certificate.issuer.rfc4514_string() if issuer is None else issuer,
        serial_number=serial_number_text(certificate),
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:100]


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class LinkCache(Generic[_K, _V]):
    """A bounded, thread-safe LRU cache of links whose time-independent checks passed.

    Keys hold the exact DER bytes of the certificates involved, so a different certificate can
    never hit another's entry. Validity windows are never part of what is cached: they are
    checked against every verification time.
    """

    def __init__(self, maxsize: int = 512) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._entries: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _K) -> _V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: _K, entry: _V) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
