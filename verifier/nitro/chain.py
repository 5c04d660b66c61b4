"""The certificate path from the pinned root to the document's signing certificate.

The path is fixed by the format: ``cabundle[0]`` (the root) -> ``cabundle[1]`` -> ... ->
``cabundle[-1]`` -> ``certificate``. Each link is checked explicitly rather than with
``cryptography.x509.verification``, whose client policy rejects every Nitro chain by default
(the leaf has no Authority Key Identifier) and which offers no way to reuse work across
documents. For every certificate:

1. it parses as DER X.509 v3, signed with ecdsa-with-SHA384, with a P-384 key (AWS's profile);
2. its issuer name is its parent's subject and its signature verifies under the parent's key;
3. a CA (every cabundle entry) has critical basicConstraints with cA true, keyCertSign in its
   keyUsage, and a pathLenConstraint, if any, not below the number of CAs beneath it;
4. the signing certificate is not a CA and has digitalSignature in its keyUsage;
5. no critical extension other than basicConstraints and keyUsage;
6. it is valid at the verification time (notBefore may be up to ``clock_skew`` in the future).

Steps 1-5 of a CA link depend only on the two certificates' exact bytes, so a verified link
is cached (:class:`LinkCache`), keyed by both DER encodings. Step 6 is never cached: every
certificate's validity window is checked against every verification time. The signing
certificate's parsed form may be cached too (an NSM reuses its leaf for hours), but its
signature is verified every time, so a warm cache leaves two signature verifications per
document: that link and the COSE signature.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from verifier.errors import ChainInvalid, UntrustedRoot
from verifier.nitro.trust import require_p384
from verifier.x509 import (
    CERTIFICATE_PARSE_ERRORS,
    CertificateInfo,
    LinkCache,
    TrustAnchor,
    check_validity,
    first_line,
    load_der_certificate,
    names_checked,
)

__all__ = ["CertificateInfo", "LinkCache", "VerifiedChain", "describe_path", "verify_chain"]

_ExtensionT = TypeVar("_ExtensionT", bound=x509.ExtensionType)
_UNDERSTOOD_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    certificates: tuple[CertificateInfo, ...]  # root first, signing certificate last
    signing_key: ec.EllipticCurvePublicKey
    anchor: TrustAnchor


@dataclass(frozen=True, slots=True)
class _CheckedCertificate:
    der: bytes
    certificate: x509.Certificate
    public_key: ec.EllipticCurvePublicKey
    info: CertificateInfo


# (parent DER, child DER, position of the child in the path, length of the path)
_LinkKey = tuple[bytes, bytes, int, int]
#: The cache of verified links a NitroVerifier keeps (see verifier.x509.LinkCache).
NitroLinkCache = LinkCache[_LinkKey, _CheckedCertificate]


def verify_chain(
    certificate: bytes,
    cabundle: tuple[bytes, ...],
    *,
    anchor: TrustAnchor,
    at: datetime,
    clock_skew: timedelta,
    cache: NitroLinkCache | None = None,
    leaf_cache: NitroLinkCache | None = None,
) -> VerifiedChain:
    """Verify the path from ``anchor`` through ``cabundle`` to ``certificate`` at time ``at``.

    Raises :class:`UntrustedRoot` if ``cabundle[0]`` is not the anchor, :class:`ChainInvalid`
    for a broken link, :class:`CertificateExpired` / :class:`CertificateNotYetValid` if some
    certificate is outside its validity window at ``at``.
    """
    if cabundle[0] != anchor.der:
        raise UntrustedRoot(
            f"cabundle[0]: expected the pinned root {anchor.name!r} "
            f"(SHA-256 {anchor.fingerprint}), found a certificate with SHA-256 "
            f"{hashlib.sha256(cabundle[0]).hexdigest()}"
        )
    total = len(cabundle) + 1
    parent = _anchor_entry(anchor)
    root_limit = _extension(anchor.certificate.extensions, x509.BasicConstraints)
    limit = root_limit.value.path_length if root_limit is not None else None
    if limit is not None and limit < len(cabundle) - 1:
        raise ChainInvalid(
            f"cabundle[0]: pathLenConstraint {limit} allows fewer than "
            f"the {len(cabundle) - 1} CA certificate(s) beneath it"
        )
    checked = [parent]
    for position in range(1, len(cabundle)):
        der = cabundle[position]
        # Position and length are part of the key: the pathLen check and the reported
        # position depend on them, not only on the two certificates.
        key = (parent.der, der, position, total)
        entry = cache.get(key) if cache is not None else None
        if entry is None:
            cas_below = len(cabundle) - 1 - position
            entry = _check_link(parent, der, position, total, cas_below=cas_below)
            if cache is not None:
                cache.put(key, entry)
        checked.append(entry)
        parent = entry
    # The signing certificate: its parsed form and time-independent checks may be reused (an
    # NSM signs many documents with one leaf), but its signature is verified every time.
    leaf_key = (parent.der, certificate, total - 1, total)
    leaf = leaf_cache.get(leaf_key) if leaf_cache is not None else None
    if leaf is None:
        leaf = _check_link(parent, certificate, total - 1, total, cas_below=None)
        if leaf_cache is not None:
            leaf_cache.put(leaf_key, leaf)
    else:
        _check_signature(leaf.certificate, parent, "certificate")
    checked.append(leaf)

    for entry in checked:
        check_validity(entry.info, at, clock_skew)

    return VerifiedChain(
        certificates=tuple(entry.info for entry in checked),
        signing_key=leaf.public_key,
        anchor=anchor,
    )


@functools.lru_cache(maxsize=8)
def _anchor_entry(anchor: TrustAnchor) -> _CheckedCertificate:
    """The root's entry, computed once per anchor (its position is always cabundle[0])."""
    info = _info(anchor.certificate, anchor.der, 0, 2, issuer=None)
    return _CheckedCertificate(anchor.der, anchor.certificate, require_p384(anchor), info)


def _check_link(
    parent: _CheckedCertificate, der: bytes, position: int, total: int, *, cas_below: int | None
) -> _CheckedCertificate:
    """Steps 1-5 for one certificate; ``cas_below`` is None for the signing certificate.

    cryptography parses most fields lazily, so a corrupt certificate can raise from any
    accessor; every such failure is a broken chain, never an exception of another type.
    """
    name = _position_name(position, total)
    try:
        with names_checked():
            return _inspect_link(
                parent, der, position=position, total=total, name=name, cas_below=cas_below
            )
    except ChainInvalid:
        raise
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise ChainInvalid(f"{name}: malformed certificate ({first_line(exc)})") from None


def _inspect_link(
    parent: _CheckedCertificate,
    der: bytes,
    *,
    position: int,
    total: int,
    name: str,
    cas_below: int | None,
) -> _CheckedCertificate:
    try:
        certificate = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        raise ChainInvalid(f"{name}: not a DER X.509 v3 certificate") from None
    if certificate.serial_number <= 0:
        raise ChainInvalid(f"{name}: serial number must be positive (RFC 5280)")
    if certificate.version is not x509.Version.v3:
        raise ChainInvalid(f"{name}: expected an X.509 v3 certificate")
    if certificate.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA384:
        raise ChainInvalid(
            f"{name}: expected signature algorithm ecdsa-with-SHA384, "
            f"found {certificate.signature_algorithm_oid.dotted_string}"
        )
    try:
        key = certificate.public_key()
    except ValueError:
        raise ChainInvalid(f"{name}: unreadable public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise ChainInvalid(f"{name}: expected a P-384 public key")
    if certificate.issuer != parent.certificate.subject:
        raise ChainInvalid(
            f"{name}: issuer {certificate.issuer.rfc4514_string()!r} is not the subject of "
            f"{parent.info.position} ({parent.info.subject!r})"
        )
    _check_signature(certificate, parent, name)

    try:
        extensions = certificate.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise ChainInvalid(f"{name}: malformed or duplicated extensions") from None
    for extension in extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
            raise ChainInvalid(
                f"{name}: unsupported critical extension {extension.oid.dotted_string}"
            )
    basic = _extension(extensions, x509.BasicConstraints)
    usage = _extension(extensions, x509.KeyUsage)
    if cas_below is not None:
        if basic is None or not basic.value.ca:
            raise ChainInvalid(f"{name}: expected a CA certificate (basicConstraints cA=true)")
        if not basic.critical:
            raise ChainInvalid(f"{name}: basicConstraints must be critical in a CA certificate")
        if basic.value.path_length is not None and basic.value.path_length < cas_below:
            raise ChainInvalid(
                f"{name}: pathLenConstraint {basic.value.path_length} allows fewer than the "
                f"{cas_below} CA certificate(s) beneath it"
            )
        if usage is None or not usage.value.key_cert_sign:
            raise ChainInvalid(f"{name}: expected keyUsage keyCertSign in a CA certificate")
    else:
        if basic is not None and basic.value.ca:
            raise ChainInvalid(f"{name}: the signing certificate must not be a CA")
        if usage is None or not usage.value.digital_signature:
            raise ChainInvalid(f"{name}: expected keyUsage digitalSignature")
    # The issuer name equals the parent's subject (checked above): reuse its string form.
    info = _info(certificate, der, position, total, issuer=parent.info.subject)
    return _CheckedCertificate(der, certificate, key, info)


def _check_signature(certificate: x509.Certificate, parent: _CheckedCertificate, name: str) -> None:
    try:
        certificate.verify_directly_issued_by(parent.certificate)
    except InvalidSignature:
        raise ChainInvalid(
            f"{name}: signature does not verify under the key of {parent.info.position}"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ChainInvalid(f"{name}: cannot be checked against {parent.info.position}") from exc


def _extension(
    extensions: x509.Extensions, kind: type[_ExtensionT]
) -> x509.Extension[_ExtensionT] | None:
    try:
        return extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def describe_path(cabundle: tuple[bytes, ...], certificate: bytes) -> list[CertificateInfo | str]:
    """What each certificate of a document's path says about itself (subject, issuer,
    validity), root first, WITHOUT verifying anything: for showing a path, valid or not. A
    certificate that does not parse is described by the reason, as a string."""
    ders = (*cabundle, certificate)
    out: list[CertificateInfo | str] = []
    for position, der in enumerate(ders):
        try:
            parsed = load_der_certificate(der)
            out.append(
                _info(parsed, der, position, len(ders), issuer=parsed.issuer.rfc4514_string())
            )
        except CERTIFICATE_PARSE_ERRORS as exc:
            out.append(f"{_position_name(position, len(ders))}: not a certificate ({exc})")
    return out


def _position_name(position: int, total: int) -> str:
    return "certificate" if position == total - 1 else f"cabundle[{position}]"


def _info(
    certificate: x509.Certificate, der: bytes, position: int, total: int, *, issuer: str | None
) -> CertificateInfo:
    role = "root" if position == 0 else "leaf" if position == total - 1 else "intermediate"
    subject = certificate.subject.rfc4514_string()
    return CertificateInfo(
        position=_position_name(position, total),
        role=role,
        subject=subject,
        issuer=subject if issuer is None else issuer,
        serial_number=format(certificate.serial_number, "x"),
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )
