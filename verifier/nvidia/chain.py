"""NVIDIA certificate paths: a device's chain (leaf first, to the pinned NVIDIA Device
Identity CA) and a RIM signer's chain (the X509Data of a RIM, to the pinned NVIDIA CoRIM
signing Root CA). One profile serves both:

::

    device:  <chip> FMC LF  <- BROM <- Provisioner ICA <- <chip> Identity <- Device Identity CA
    RIM:     RIM L4 Signer  <- Reference Value L3 <- Reference Value <chip> CA <- CoRIM Root CA

* Leaf first, in order; each certificate is issued (by name) and signed (ECDSA P-384 with
  SHA-384) by the next. Every key is P-384.
* The last certificate is a trusted root, compared by its DER bytes; it may be left out
  (then the trusted root whose subject is the last certificate's issuer closes the path).
* Every issuer has basicConstraints cA=true and keyUsage keyCertSign; the leaf has keyUsage
  digitalSignature; no certificate carries a critical extension this profile does not know.
* Every certificate is valid at the verification time (clock skew for notBefore only).

A device path has exactly five certificates with its root. Link checks depend only on the
certificates' exact bytes and are cached (:class:`verifier.x509.LinkCache`); validity is
checked at every verification time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from verifier.errors import ChainInvalid, MalformedEvidence, RimChainInvalid, UntrustedRoot
from verifier.x509 import (
    CERTIFICATE_PARSE_ERRORS,
    CertificateInfo,
    LinkCache,
    TrustAnchor,
    certificate_info,
    check_validity,
    first_line,
    load_der_certificate,
)

__all__ = ["DEVICE_CHAIN_LENGTH", "PathProfile", "VerifiedPath", "verify_path"]

DEVICE_CHAIN_LENGTH = 5
_ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())
_UNDERSTOOD_CRITICAL = frozenset(
    {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE}
)


@dataclass(frozen=True, slots=True)
class PathProfile:
    """What a path is called in messages, how long it must be, and what it raises."""

    what: str  # "device certificate", "vbios RIM signer"
    length: int | None  # with its root; None: any length from 2 to 6
    link_error: type[ChainInvalid]
    root_error: type[ChainInvalid]


DEVICE_PROFILE = PathProfile("device certificate", DEVICE_CHAIN_LENGTH, ChainInvalid, UntrustedRoot)


def rim_profile(label: str) -> PathProfile:
    """``label``: which RIM, e.g. "vbios RIM 96.00.5e.00.01"."""
    return PathProfile(f"{label} signer", None, RimChainInvalid, RimChainInvalid)


@dataclass(frozen=True, slots=True)
class VerifiedPath:
    anchor: TrustAnchor
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePublicKey
    #: Root first, as every result lists them.
    certificates: tuple[CertificateInfo, ...]
    #: Whether the root came with the path (compared by bytes) or was the trusted one.
    root_given: bool


@dataclass(frozen=True, slots=True)
class _Loaded:
    der: bytes
    certificate: x509.Certificate
    key: ec.EllipticCurvePublicKey


def verify_path(
    ders: Sequence[bytes],
    anchors: Sequence[TrustAnchor],
    profile: PathProfile,
    *,
    at: datetime,
    clock_skew: timedelta,
    links: LinkCache[tuple[bytes, bytes], bool],
    paths: LinkCache[tuple[bytes, ...], VerifiedPath] | None = None,
) -> VerifiedPath:
    """Verify ``ders`` (leaf first) to one of ``anchors``; raises a ChainInvalid subclass
    (``profile``'s), CertificateExpired or CertificateNotYetValid. ``paths`` caches whole
    paths whose time-independent checks passed (keyed by every certificate's and anchor's
    bytes); validity is checked at every call."""
    key = (profile.what.encode(), *(a.der for a in anchors), b"", *ders)
    path = None if paths is None else paths.get(key)
    if path is None:
        path = _static_path(ders, anchors, profile, links)
        if paths is not None:
            paths.put(key, path)
    for info in path.certificates:
        check_validity(info, at, clock_skew)
    return path


def _static_path(
    ders: Sequence[bytes],
    anchors: Sequence[TrustAnchor],
    profile: PathProfile,
    links: LinkCache[tuple[bytes, bytes], bool],
) -> VerifiedPath:
    what = profile.what
    if not ders:
        raise profile.link_error(f"{what}: no certificates")
    anchor = next((a for a in anchors if a.der == ders[-1]), None)
    root_given = anchor is not None
    if anchor is None:
        if any(_self_issued(der) for der in ders[-1:]):
            raise profile.root_error(
                f"{what}: the path ends in a root (SHA-256 {_sha256(ders[-1])[:16]}...) that "
                f"is not the trusted one ({', '.join(a.fingerprint[:16] for a in anchors)}...)"
            )
        issuer = _load(ders[-1], f"{what} [{len(ders) - 1}]", profile).certificate.issuer
        anchor = next((a for a in anchors if a.certificate.subject == issuer), None)
        if anchor is None:
            raise profile.root_error(
                f"{what}: the last certificate's issuer ({issuer.rfc4514_string()}) is no "
                "trusted root"
            )
    count = len(ders) + (0 if root_given else 1)
    if profile.length is not None and count != profile.length:
        raise profile.link_error(
            f"{what}: expected {profile.length} certificates, leaf first, with the root; "
            f"found {count} with the root"
        )
    if profile.length is None and not 2 <= count <= 6:
        raise profile.link_error(f"{what}: expected 2 to 6 certificates, found {count}")

    loaded = [_load(der, f"{what} [{i}]", profile) for i, der in enumerate(ders[: count - 1])]
    root = _Loaded(anchor.der, anchor.certificate, _p384(anchor.certificate, what, profile))
    path = [*loaded, root]
    for i, child in enumerate(loaded):
        parent = path[i + 1]
        key = (child.der, parent.der)
        if links.get(key) is None:
            _check_link(child, parent, i, profile)
            links.put(key, True)
    leaf_usage = _key_usage(loaded[0].certificate)
    if leaf_usage is not None and not leaf_usage.digital_signature:
        raise profile.link_error(f"{what} [0]: keyUsage does not allow digitalSignature")

    infos = []
    for i, item in reversed(list(enumerate(path))):
        role = "root" if i == len(path) - 1 else "leaf" if i == 0 else "intermediate"
        infos.append(
            certificate_info(
                item.certificate,
                item.der,
                position=f"{what} [{i}]",
                role=role,
                issuer=None,
            )
        )
    return VerifiedPath(
        anchor=anchor,
        leaf=loaded[0].certificate,
        leaf_key=loaded[0].key,
        certificates=tuple(infos),
        root_given=root_given,
    )


def _sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _self_issued(der: bytes) -> bool:
    try:
        certificate = load_der_certificate(der)
        return bool(certificate.issuer == certificate.subject)
    except CERTIFICATE_PARSE_ERRORS:
        return False


def _load(der: bytes, position: str, profile: PathProfile) -> _Loaded:
    try:
        certificate = load_der_certificate(der)
        _ = certificate.extensions
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise MalformedEvidence(f"{position}: not a DER certificate ({first_line(exc)})") from None
    return _Loaded(der, certificate, _p384(certificate, position, profile))


def _p384(
    certificate: x509.Certificate, position: str, profile: PathProfile
) -> ec.EllipticCurvePublicKey:
    try:
        key = certificate.public_key()
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise MalformedEvidence(f"{position}: unreadable key ({first_line(exc)})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise profile.link_error(f"{position}: the key is not ECDSA P-384")
    return key


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _check_link(child: _Loaded, parent: _Loaded, index: int, profile: PathProfile) -> None:
    what = profile.what
    position = f"{what} [{index}]"
    for certificate, where in (
        (child.certificate, position),
        (parent.certificate, f"{what} [{index + 1}]"),
    ):
        unknown = [
            e.oid.dotted_string
            for e in certificate.extensions
            if e.critical and e.oid not in _UNDERSTOOD_CRITICAL
        ]
        if unknown:
            raise profile.link_error(f"{where}: unknown critical extension(s) {', '.join(unknown)}")
    if child.certificate.issuer != parent.certificate.subject:
        raise profile.link_error(
            f"{position}: issued by {child.certificate.issuer.rfc4514_string()}, but the next "
            f"certificate is {parent.certificate.subject.rfc4514_string()}"
        )
    try:
        basic = parent.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        raise profile.link_error(f"{what} [{index + 1}]: no basicConstraints: not a CA") from None
    usage = _key_usage(parent.certificate)
    if not basic.value.ca or usage is None or not usage.key_cert_sign:
        raise profile.link_error(
            f"{what} [{index + 1}]: not a CA (basicConstraints cA and keyCertSign required)"
        )
    if child.certificate.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA384:
        raise profile.link_error(f"{position}: not signed with ECDSA with SHA-384")
    try:
        parent.key.verify(
            child.certificate.signature, child.certificate.tbs_certificate_bytes, _ECDSA_SHA384
        )
    except InvalidSignature:
        raise profile.link_error(
            f"{position} ({child.certificate.subject.rfc4514_string()}): its signature does "
            f"not verify with the key of {parent.certificate.subject.rfc4514_string()}"
        ) from None
