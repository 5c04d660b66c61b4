"""The ``gcp`` AK path: an AK certificate (endorsement ``ak-certificate``) chained through
intermediates (endorsements ``certificate``, or the pinned 2020 intermediate) to a pinned
Google root, every link RSA PKCS#1 v1.5 (SHA-256/384/512), every certificate valid at the
verification time; and the certificate's key must be the key that signed the quote.

Roots are never taken from the evidence: a delivered root (the GCP chain ends with its root)
is only ever the pinned one if it is that root byte for byte, since the path ends at the
first issuer whose name a pinned root has and whose signature that root's key verifies; a
self-signed certificate that is not pinned ends the path in :class:`UntrustedRoot`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from verifier.errors import (
    AkCertificateMismatch,
    ChainInvalid,
    EndorsementMismatch,
    MalformedEvidence,
    UntrustedRoot,
)
from verifier.result import UsedEndorsement
from verifier.scheme import Endorsement, EndorsementKind
from verifier.tpm.ak import AttestationKey
from verifier.tpm.der import gce_instance_info, tbs_names
from verifier.x509 import (
    CERTIFICATE_PARSE_ERRORS,
    CertificateInfo,
    LinkCache,
    TrustAnchor,
    certificate_info,
    check_validity,
    names_tolerated,
)

__all__ = ["GCE_INSTANCE_OID", "GcpChain", "GcpChainVerifier"]

GCE_INSTANCE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.1.21")
#: AK <- intermediate <- root is what Google issues; leave room for one more level.
MAX_PATH = 4
_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


@dataclass(frozen=True, slots=True)
class _Cert:
    der: bytes
    certificate: x509.Certificate
    issuer: bytes
    subject: bytes
    origin: str
    kind: str


@dataclass(frozen=True, slots=True)
class GcpChain:
    certificates: tuple[CertificateInfo, ...]  # root first, AK certificate last
    endorsements: tuple[UsedEndorsement, ...]
    anchor: TrustAnchor
    subject: str
    gcp: dict[str, object] | None


def _load(der: bytes, *, origin: str, kind: str, what: str) -> _Cert:
    try:
        with names_tolerated():
            certificate = x509.load_der_x509_certificate(der)
        issuer, subject = tbs_names(certificate.tbs_certificate_bytes)
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise MalformedEvidence(f"{what}: not a DER X.509 certificate") from exc
    return _Cert(der, certificate, issuer, subject, origin, kind)


class GcpChainVerifier:
    """Verifies AK certificate paths to ``anchors``; caches verified links (by the exact DER
    of both certificates; validity is checked at every call)."""

    def __init__(
        self,
        anchors: Sequence[TrustAnchor],
        pinned_intermediates: Sequence[bytes] = (),
        *,
        cache_size: int = 512,
    ) -> None:
        self.anchors = tuple(anchors)
        self._anchor_names = [
            (tbs_names(a.certificate.tbs_certificate_bytes)[1], a) for a in self.anchors
        ]
        self._pinned = tuple(
            _load(der, origin="pinned", kind=str(EndorsementKind.CERTIFICATE), what="pinned")
            for der in pinned_intermediates
        )
        self._links: LinkCache[tuple[bytes, bytes], bool] = LinkCache(cache_size)

    def verify(
        self,
        endorsements: Sequence[Endorsement],
        ak: AttestationKey,
        *,
        at: datetime,
        clock_skew: timedelta,
    ) -> GcpChain:
        leaves = [e for e in endorsements if e.kind is EndorsementKind.AK_CERTIFICATE]
        if len(leaves) != 1:
            raise EndorsementMismatch(
                f"{len(leaves)} AK certificates given: give exactly the quote's AK certificate"
            )
        leaf = _load(
            leaves[0].data, origin="evidence", kind="ak-certificate", what="ak-certificate"
        )
        given = [
            _load(e.data, origin="evidence", kind=str(e.kind), what=f"certificate {n}")
            for n, e in enumerate(endorsements)
            if e.kind is EndorsementKind.CERTIFICATE
        ]
        path, anchor = self._path(leaf, [*given, *self._pinned])
        infos: list[CertificateInfo] = []
        with names_tolerated():
            infos.append(
                certificate_info(
                    anchor.certificate, anchor.der, position="root", role="root", issuer=None
                )
            )
            for n, cert in enumerate(reversed(path)):
                last = n == len(path) - 1
                infos.append(
                    certificate_info(
                        cert.certificate,
                        cert.der,
                        position="ak-certificate" if last else f"intermediate[{n}]",
                        role="leaf" if last else "intermediate",
                        issuer=None,
                    )
                )
            subject = leaf.certificate.subject.rfc4514_string()
        for info in infos:
            check_validity(info, at, clock_skew)
        _check_leaf(leaf)
        try:
            found = leaf.certificate.public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
        except CERTIFICATE_PARSE_ERRORS:
            found = b""  # a key that cannot be read is not the AK
        if found != ak.spki:
            raise AkCertificateMismatch(
                f"ak-certificate: certifies the key with SHA-256 "
                f"{hashlib.sha256(found).hexdigest()}, but the quote was signed by the AK with "
                f"SHA-256 {ak.sha256}"
            )
        anchor_origin = "pinned" if anchor.name.startswith("Google ") else "configured"
        used = [
            UsedEndorsement(c.kind, hashlib.sha256(c.der).hexdigest(), i.subject, c.origin)
            for c, i in zip(reversed(path), infos[1:], strict=True)
        ]
        used.append(
            UsedEndorsement("certificate", anchor.fingerprint, infos[0].subject, anchor_origin)
        )
        return GcpChain(tuple(infos), tuple(used), anchor, subject, _gce(leaf.certificate))

    def _path(self, leaf: _Cert, candidates: list[_Cert]) -> tuple[list[_Cert], TrustAnchor]:
        path = [leaf]
        current = leaf
        while len(path) <= MAX_PATH:
            for name, anchor in self._anchor_names:
                if name == current.issuer and self._link(current, anchor.certificate, anchor.der):
                    return path, anchor
            issuer = next(
                (
                    c
                    for c in candidates
                    if c.subject == current.issuer and all(c.der != p.der for p in path)
                ),
                None,
            )
            if issuer is None or issuer.issuer == issuer.subject:
                what = "a self-signed certificate that is not pinned" if issuer else "no root"
                raise UntrustedRoot(
                    f"ak-certificate: the path ends in {what}; the pinned roots are "
                    f"{', '.join(a.name for a in self.anchors)}"
                )
            _check_ca(issuer)
            if not self._link(current, issuer.certificate, issuer.der):
                fingerprint = hashlib.sha256(issuer.der).hexdigest()
                raise ChainInvalid(
                    f"{current.kind}: its signature does not verify with the key of the "
                    f"certificate named as its issuer (SHA-256 {fingerprint})"
                )
            path.append(issuer)
            current = issuer
        raise ChainInvalid(f"ak-certificate: the path is longer than {MAX_PATH} certificates")

    def _link(self, child: _Cert, issuer: x509.Certificate, issuer_der: bytes) -> bool:
        key = (child.der, issuer_der)
        if self._links.get(key):
            return True
        try:
            public_key = issuer.public_key()
            algorithm = child.certificate.signature_hash_algorithm
        except CERTIFICATE_PARSE_ERRORS as exc:
            raise ChainInvalid(
                f"{child.kind}: its issuer's key or its signature algorithm cannot be read"
            ) from exc
        if not isinstance(public_key, rsa.RSAPublicKey) or not isinstance(algorithm, _HASHES):
            raise ChainInvalid(
                f"{child.kind}: expected an RSA PKCS#1 v1.5 signature with SHA-256/384/512 "
                "(Google's AK CA profile)"
            )
        try:
            public_key.verify(
                child.certificate.signature,
                child.certificate.tbs_certificate_bytes,
                padding.PKCS1v15(),
                algorithm,
            )
        except InvalidSignature:
            return False
        self._links.put(key, True)
        return True


def _check_ca(cert: _Cert) -> None:
    try:
        basic = cert.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        usage = cert.certificate.extensions.get_extension_for_class(x509.KeyUsage)
    except (x509.ExtensionNotFound, *CERTIFICATE_PARSE_ERRORS) as exc:
        raise ChainInvalid(f"{cert.kind}: an issuing certificate lacks CA extensions") from exc
    if not basic.value.ca or not usage.value.key_cert_sign:
        raise ChainInvalid(f"{cert.kind}: the issuing certificate is not a CA")


def _check_leaf(leaf: _Cert) -> None:
    try:
        basic = leaf.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return
    except CERTIFICATE_PARSE_ERRORS as exc:
        raise MalformedEvidence("ak-certificate: unreadable extensions") from exc
    if basic.value.ca:
        raise ChainInvalid("ak-certificate: is a CA certificate, not an AK's")


def _gce(certificate: x509.Certificate) -> dict[str, object] | None:
    try:
        extension = certificate.extensions.get_extension_for_oid(GCE_INSTANCE_OID)
    except (x509.ExtensionNotFound, *CERTIFICATE_PARSE_ERRORS):
        return None
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        return None
    try:
        return gce_instance_info(value.value)
    except (ValueError, UnicodeDecodeError):
        return None
