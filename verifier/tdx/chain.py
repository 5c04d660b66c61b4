"""Intel DCAP paths: the PCK chain a quote carries, the TCB Signing certificate that signs
the collateral, and the two CRLs, all to the pinned (or configured) Intel SGX Root CA.

::

    Intel SGX Root CA (self-signed, P-256, pinned or configured)
     ├── Intel SGX PCK Platform CA (TDX) / PCK Processor CA (SGX) ──> PCK certificate (quote)
     └── Intel SGX TCB Signing ──> signs TCB info and QE identity
    Root CA CRL (signed by the root)      PCK CRL (signed by the PCK leaf's issuer)

Every signature is ECDSA P-256 with SHA-256. The chain in the quote is exactly leaf, PCK CA,
root; the root must be byte-equal to a trusted anchor. CAs need critical basicConstraints
cA=true and keyCertSign; the PCK leaf and the TCB signer must not be CAs; no certificate may
carry a critical extension we do not know. Every certificate must be valid at ``at`` (clock
skew for notBefore only); both CRLs must be given, signed, and current (thisUpdate at most
``clock_skew`` after ``at``, ``at`` before nextUpdate), and nothing of either path may be
listed in them.

Signature checks depend only on exact bytes, so verified links are cached
(:class:`verifier.x509.LinkCache`); validity and revocation are judged at every call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from verifier.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    ChainInvalid,
    EndorsementMissing,
    UntrustedRoot,
)
from verifier.scheme import Endorsement, EndorsementKind
from verifier.tdx.pck import SGX_EXTENSIONS_OID, PckExtension, parse_pck_extension
from verifier.timefmt import iso_utc
from verifier.x509 import (
    CERTIFICATE_PARSE_ERRORS,
    CertificateInfo,
    LinkCache,
    TrustAnchor,
    certificate_info,
    check_validity,
    first_line,
    load_der_certificate,
    load_der_crl,
)

__all__ = ["DcapChainVerifier", "VerifiedCrl", "VerifiedPck", "VerifiedSigner"]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_UNDERSTOOD_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})
_MAX_CHAIN_PEM = 16 * 1024


@dataclass(frozen=True, slots=True)
class VerifiedPck:
    """A PCK chain whose signatures and profile were checked against ``anchor``."""

    anchor: TrustAnchor
    leaf: x509.Certificate
    leaf_der: bytes
    leaf_key: ec.EllipticCurvePublicKey
    ca: x509.Certificate
    ca_der: bytes
    extension: PckExtension
    leaf_serial: int
    ca_serial: int
    #: root, PCK CA, PCK leaf
    certificates: tuple[CertificateInfo, CertificateInfo, CertificateInfo]


@dataclass(frozen=True, slots=True)
class VerifiedSigner:
    """A TCB Signing certificate checked against ``anchor``."""

    anchor: TrustAnchor
    certificate: x509.Certificate
    der: bytes
    key: ec.EllipticCurvePublicKey
    info: CertificateInfo
    serial: int


@dataclass(frozen=True, slots=True)
class VerifiedCrl:
    sha256: str
    crl: x509.CertificateRevocationList
    issuer: str
    last_update: datetime
    next_update: datetime
    #: serial number -> revocation date, read once when the CRL was verified
    revoked: Mapping[int, datetime]


class DcapChainVerifier:
    """Verifies PCK chains, TCB signers and CRLs against fixed anchors; thread-safe caches."""

    def __init__(self, anchors: Sequence[TrustAnchor], *, cache_size: int = 512) -> None:
        self.anchors = tuple(anchors)
        self._pck: LinkCache[tuple[bytes, bytes], VerifiedPck] = LinkCache(cache_size)
        self._signers: LinkCache[tuple[bytes, bytes], VerifiedSigner | _NotASignerType] = LinkCache(
            cache_size
        )
        self._crls: LinkCache[tuple[bytes, bytes], VerifiedCrl] = LinkCache(cache_size)
        self._selected: LinkCache[tuple[bytes, tuple[bytes, ...]], VerifiedCrl] = LinkCache(
            cache_size
        )
        self._anchor_infos: LinkCache[bytes, CertificateInfo] = LinkCache(16)

    # --- the PCK chain in the quote -------------------------------------------------------

    def pck_chain(self, pem: bytes, *, at: datetime, clock_skew: timedelta) -> VerifiedPck:
        for anchor in self.anchors:
            cached = self._pck.get((anchor.der, pem))
            if cached is not None:
                break
        else:
            cached = self._verify_pck_chain(pem)
            self._pck.put((cached.anchor.der, pem), cached)
        for info in cached.certificates:
            check_validity(info, at, clock_skew)
        return cached

    def _verify_pck_chain(self, pem: bytes) -> VerifiedPck:
        if len(pem) > _MAX_CHAIN_PEM:
            raise ChainInvalid(f"pck chain: larger than {_MAX_CHAIN_PEM} bytes")
        ders = _pem_certificates(pem)
        if len(ders) != 3:
            raise ChainInvalid(
                f"pck chain: expected 3 certificates (PCK, PCK CA, root), found {len(ders)}"
            )
        leaf_der, ca_der, root_der = ders
        anchor = next((a for a in self.anchors if a.der == root_der), None)
        if anchor is None:
            expected = ", ".join(a.fingerprint for a in self.anchors)
            raise UntrustedRoot(
                f"pck chain: its root (SHA-256 {hashlib.sha256(root_der).hexdigest()}) is not a "
                f"trusted Intel SGX root (expected {expected})"
            )
        ca = _load(ca_der, "pck ca")
        leaf = _load(leaf_der, "pck certificate")
        _check_profile(ca, "pck ca", ca_expected=True)
        _check_profile(leaf, "pck certificate", ca_expected=False)
        _check_signed_by(ca, anchor.certificate, anchor.public_key, "pck ca")
        ca_key = ca.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)  # noqa: S101 - profile checked
        _check_signed_by(leaf, ca, ca_key, "pck certificate")
        try:
            extension = leaf.extensions.get_extension_for_oid(
                x509.ObjectIdentifier(SGX_EXTENSIONS_OID)
            )
        except x509.ExtensionNotFound:
            raise ChainInvalid("pck certificate: has no Intel SGX extension") from None
        value = extension.value
        if not isinstance(value, x509.UnrecognizedExtension):
            raise ChainInvalid("pck certificate: the SGX extension is not opaque DER")
        parsed = parse_pck_extension(value.value)
        key = leaf.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # noqa: S101 - profile checked
        root_info = self._anchor_info(anchor)
        ca_info = certificate_info(
            ca, ca_der, position="pck_ca", role="intermediate", issuer=anchor.subject
        )
        leaf_info = certificate_info(
            leaf, leaf_der, position="pck", role="leaf", issuer=ca_info.subject
        )
        return VerifiedPck(
            anchor,
            leaf,
            leaf_der,
            key,
            ca,
            ca_der,
            parsed,
            leaf.serial_number,
            ca.serial_number,
            (root_info, ca_info, leaf_info),
        )

    def _anchor_info(self, anchor: TrustAnchor) -> CertificateInfo:
        info = self._anchor_infos.get(anchor.der)
        if info is None:
            info = certificate_info(
                anchor.certificate, anchor.der, position="root", role="root", issuer=None
            )
            self._anchor_infos.put(anchor.der, info)
        return info

    # --- the TCB Signing certificate ------------------------------------------------------

    def signers(
        self, endorsements: tuple[Endorsement, ...], anchor: TrustAnchor
    ) -> tuple[VerifiedSigner, ...]:
        """Every ``certificate`` endorsement that is a non-CA certificate issued by
        ``anchor`` (the TCB Signing certificate; PCK CAs given as well are skipped)."""
        out: list[VerifiedSigner] = []
        last_error: ChainInvalid | None = None
        for endorsement in endorsements:
            if endorsement.kind is not EndorsementKind.CERTIFICATE:
                continue
            key = (anchor.der, endorsement.data)
            cached = self._signers.get(key)
            if cached is None:
                try:
                    cached = self._verify_signer(endorsement.data, anchor)
                except _NotASigner:
                    cached = _NOT_A_SIGNER
                except ChainInvalid as exc:
                    last_error = exc
                    continue
                self._signers.put(key, cached)
            if isinstance(cached, VerifiedSigner):
                out.append(cached)
        if not out:
            if last_error is not None:
                raise last_error
            raise EndorsementMissing(
                "certificate: no Intel SGX TCB Signing certificate issued by "
                f"{anchor.subject} was given (it signs the TCB info and QE identity)"
            )
        return tuple(out)

    def _verify_signer(self, der: bytes, anchor: TrustAnchor) -> VerifiedSigner:
        certificate = _load(der, "tcb signing certificate")
        if certificate.issuer != anchor.certificate.subject:
            raise _NotASigner
        try:
            basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            is_ca = basic.value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        except CERTIFICATE_PARSE_ERRORS as exc:
            raise ChainInvalid(
                f"tcb signing certificate: its extensions do not parse ({first_line(exc)})"
            ) from None
        if is_ca:
            raise _NotASigner
        _check_profile(certificate, "tcb signing certificate", ca_expected=False)
        _check_signed_by(
            certificate, anchor.certificate, anchor.public_key, "tcb signing certificate"
        )
        key = certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # noqa: S101 - profile checked
        info = certificate_info(
            certificate, der, position="tcb_signing", role="leaf", issuer=anchor.subject
        )
        return VerifiedSigner(anchor, certificate, der, key, info, certificate.serial_number)

    # --- CRLs -----------------------------------------------------------------------------

    def crl(
        self,
        endorsements: tuple[Endorsement, ...],
        issuer: x509.Certificate,
        issuer_der: bytes,
        what: str,
    ) -> VerifiedCrl:
        """The one given CRL issued by ``issuer``, verified (not yet judged at a time: see
        :func:`check_crl_current`)."""
        given = tuple(e.data for e in endorsements if e.kind is EndorsementKind.CRL)
        selection_key = (issuer_der, given)
        selected = self._selected.get(selection_key)
        if selected is None:
            selected = self._select_crl(endorsements, issuer, issuer_der, what)
            self._selected.put(selection_key, selected)
        return selected

    def _select_crl(
        self,
        endorsements: tuple[Endorsement, ...],
        issuer: x509.Certificate,
        issuer_der: bytes,
        what: str,
    ) -> VerifiedCrl:
        key = issuer.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # noqa: S101 - profile checked
        found: list[VerifiedCrl] = []
        for endorsement in endorsements:
            if endorsement.kind is not EndorsementKind.CRL:
                continue
            cache_key = (issuer_der, endorsement.data)
            cached = self._crls.get(cache_key)
            if cached is None:
                try:
                    parsed = load_der_crl(endorsement.data)
                    crl_issuer = parsed.issuer
                except CERTIFICATE_PARSE_ERRORS as exc:
                    raise ChainInvalid(f"crl: not a DER X.509 CRL ({first_line(exc)})") from None
                if crl_issuer != issuer.subject:
                    continue
                cached = _verify_crl(endorsement.data, parsed, key, issuer, what)
                self._crls.put(cache_key, cached)
            found.append(cached)
        if not found:
            raise EndorsementMissing(
                f"{what}: no CRL issued by {issuer.subject.rfc4514_string()} was given; "
                "DCAP collateral includes it"
            )
        if len(found) > 1:
            raise ChainInvalid(f"{what}: {len(found)} CRLs of the same issuer given; give one")
        return found[0]


def check_crl_current(crl: VerifiedCrl, what: str, at: datetime, clock_skew: timedelta) -> None:
    """Raise unless ``crl`` is current at ``at``: thisUpdate at most ``clock_skew`` after it,
    ``at`` before nextUpdate (at nextUpdate the CRL is stale)."""
    if crl.last_update > at + clock_skew:  # (a date near year 1 must not overflow)
        raise CertificateNotYetValid(
            f"{what} ({crl.issuer}): issued {iso_utc(crl.last_update, 'seconds')}, after the "
            f"verification time {iso_utc(at)} (clock skew allowed: {clock_skew})"
        )
    if at >= crl.next_update:
        raise CertificateExpired(
            f"{what} ({crl.issuer}): its next update was due "
            f"{iso_utc(crl.next_update, 'seconds')}; verification time {iso_utc(at)}"
        )


def check_not_revoked(crl: VerifiedCrl, serial_number: int, info: CertificateInfo) -> None:
    revoked = crl.revoked.get(serial_number)
    if revoked is not None:
        raise CertificateRevoked(
            f"{info.position} ({info.subject}, serial {info.serial_number}) is revoked by the "
            f"CRL of {crl.issuer} since {iso_utc(revoked, 'seconds')}"
        )


class _NotASigner(Exception):
    """A ``certificate`` endorsement that is not a TCB signer of this anchor (skipped)."""


class _NotASignerType:
    """What the signer cache keeps for a certificate that is not a TCB signer."""


_NOT_A_SIGNER = _NotASignerType()


def _verify_crl(
    der: bytes,
    crl: x509.CertificateRevocationList,
    key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    what: str,
) -> VerifiedCrl:
    try:
        algorithm = crl.signature_algorithm_oid
        next_update = crl.next_update_utc
        last_update = crl.last_update_utc
        signature, tbs = crl.signature, crl.tbs_certlist_bytes
        revoked = MappingProxyType({r.serial_number: r.revocation_date_utc for r in crl})
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise ChainInvalid(f"{what}: does not parse ({first_line(exc)})") from None
    if algorithm != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise ChainInvalid(f"{what}: expected ecdsa-with-SHA256, found {algorithm.dotted_string}")
    if next_update is None:
        raise ChainInvalid(f"{what}: has no nextUpdate, so it cannot be judged current")
    try:
        key.verify(signature, tbs, _ECDSA_SHA256)
    except InvalidSignature:
        raise ChainInvalid(
            f"{what}: signature does not verify under {issuer.subject.rfc4514_string()}"
        ) from None
    return VerifiedCrl(
        hashlib.sha256(der).hexdigest(),
        crl,
        issuer.subject.rfc4514_string(),
        last_update,
        next_update,
        revoked,
    )


def _pem_certificates(pem: bytes) -> list[bytes]:
    try:
        text = pem.decode("ascii")
    except UnicodeDecodeError:
        raise ChainInvalid("pck chain: not ASCII PEM") from None
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    out: list[bytes] = []
    rest = text.strip()
    while rest:
        if not rest.startswith(begin) or end not in rest:
            raise ChainInvalid("pck chain: expected concatenated PEM certificates only")
        block, rest = rest.split(end, 1)
        rest = rest.strip()
        try:
            certificates = x509.load_pem_x509_certificates((block + end).encode("ascii"))
        except ValueError as exc:
            raise ChainInvalid(
                f"pck chain: a certificate does not parse ({first_line(exc)})"
            ) from None
        out.extend(c.public_bytes(Encoding.DER) for c in certificates)
    return out


def _load(der: bytes, what: str) -> x509.Certificate:
    try:
        certificate = load_der_certificate(der)
        _ = certificate.public_key(), certificate.signature_algorithm_oid
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise ChainInvalid(f"{what}: not a DER X.509 certificate ({first_line(exc)})") from None
    return certificate


def _check_profile(certificate: x509.Certificate, what: str, *, ca_expected: bool) -> None:
    try:
        if certificate.version is not x509.Version.v3:
            raise ChainInvalid(f"{what}: expected an X.509 v3 certificate")
        if certificate.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
            raise ChainInvalid(
                f"{what}: expected ecdsa-with-SHA256, found "
                f"{certificate.signature_algorithm_oid.dotted_string}"
            )
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ChainInvalid(f"{what}: expected a P-256 key")
        extensions = certificate.extensions
        for extension in extensions:
            if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
                raise ChainInvalid(
                    f"{what}: unsupported critical extension {extension.oid.dotted_string}"
                )
        try:
            basic = extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            basic = None
        if ca_expected:
            try:
                usage = extensions.get_extension_for_class(x509.KeyUsage).value
            except x509.ExtensionNotFound:
                raise ChainInvalid(f"{what}: expected keyUsage keyCertSign (a CA)") from None
            if basic is None or not basic.ca:
                raise ChainInvalid(f"{what}: expected basicConstraints cA=true")
            if not usage.key_cert_sign:
                raise ChainInvalid(f"{what}: expected keyUsage keyCertSign")
        elif basic is not None and basic.ca:
            raise ChainInvalid(f"{what}: must not be a CA")
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise ChainInvalid(f"{what}: its extensions do not parse ({first_line(exc)})") from None


def _check_signed_by(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    key: object,
    what: str,
) -> None:
    if certificate.issuer != issuer.subject:
        raise ChainInvalid(
            f"{what}: issuer {certificate.issuer.rfc4514_string()!r} is not "
            f"{issuer.subject.rfc4514_string()!r}"
        )
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ChainInvalid(f"{what}: its issuer's key is not ECDSA")
    try:
        key.verify(certificate.signature, certificate.tbs_certificate_bytes, _ECDSA_SHA256)
    except InvalidSignature:
        raise ChainInvalid(
            f"{what}: signature does not verify under {issuer.subject.rfc4514_string()!r}"
        ) from None
