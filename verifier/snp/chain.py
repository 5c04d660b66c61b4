"""The path from an AMD root key to the key that signed a report, and the CRLs that may
revoke part of it.

::

    ARK (self-signed, pinned or configured, one per product line)
     ├── ASK  (SEV-<product>)       ──> VCEK (per chip and TCB)
     └── ASVK (SEV-VLEK-<product>)  ──> VLEK (per cloud provider)

Every signature on the path is RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt.
The ARK must be a trusted anchor of the report's product line. The ASK or ASVK is the one
given with the evidence if there is one (it must chain to that ARK: a substituted ASK fails),
otherwise the packaged one of a pinned ARK. Each CA must have critical basicConstraints
cA=true and keyCertSign; no certificate may carry a critical extension we do not know.
Every certificate must be valid at the verification time (clock skew for notBefore only).

A CRL given with the evidence must be signed by a trusted ARK (AMD's KDS publishes one per
product, listing revoked ASKs and ASVKs) and current at the verification time
(thisUpdate up to the clock skew after it, nextUpdate not before it); if it is this path's
ARK's, a certificate of the path that it lists is refused as ``revoked``.

The signature checks depend only on the certificates' exact bytes, so a verified link is
cached (:class:`verifier.x509.LinkCache`) and a warm report costs no RSA verification at all;
validity windows and revocation are checked against every verification time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from verifier.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    ChainInvalid,
    EndorsementMissing,
    UntrustedRoot,
)
from verifier.result import UsedEndorsement
from verifier.scheme import Endorsement, EndorsementKind
from verifier.snp.product import ProductLine
from verifier.snp.roots import SnpAnchor, SnpTrustStore, verify_amd_signature
from verifier.snp.vek import Vek
from verifier.timefmt import iso_utc
from verifier.x509 import (
    CERTIFICATE_PARSE_ERRORS,
    CertificateInfo,
    LinkCache,
    certificate_info,
    check_validity,
    first_line,
    load_der_certificate,
    load_der_crl,
)

__all__ = ["SnpChainVerifier", "VerifiedSnpChain"]

_UNDERSTOOD_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})
_MIN_RSA_BITS = 2048
#: What signs a VCEK, and what signs a VLEK.
SIGNER_OF = {EndorsementKind.VCEK: EndorsementKind.ASK, EndorsementKind.VLEK: EndorsementKind.ASVK}


@dataclass(frozen=True, slots=True)
class VerifiedSnpChain:
    product: ProductLine
    anchor: SnpAnchor
    #: ARK, ASK or ASVK, VCEK or VLEK.
    certificates: tuple[CertificateInfo, ...]
    endorsements: tuple[UsedEndorsement, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Intermediate:
    """An ASK or ASVK whose signature and profile were checked against ``anchor``."""

    der: bytes
    certificate: x509.Certificate
    key: rsa.RSAPublicKey
    info: CertificateInfo
    anchor: SnpAnchor


@dataclass(frozen=True, slots=True)
class _Crl:
    """A CRL whose signature was checked against a trusted ARK."""

    sha256: str
    crl: x509.CertificateRevocationList
    issuer: SnpAnchor
    last_update: datetime
    next_update: datetime


class SnpChainVerifier:
    """Verifies VCEK/VLEK paths against one trust store; keeps bounded caches of verified
    links and CRLs (thread-safe; time-independent checks only)."""

    def __init__(self, store: SnpTrustStore, *, cache_size: int = 512) -> None:
        self.store = store
        self._intermediates: LinkCache[tuple[bytes, bytes], _Intermediate] = LinkCache(cache_size)
        self._links: LinkCache[tuple[bytes, bytes], bool] = LinkCache(cache_size)
        self._crls: LinkCache[bytes, _Crl] = LinkCache(cache_size)
        self._anchor_infos: LinkCache[bytes, CertificateInfo] = LinkCache(16)

    def verify(
        self,
        vek: Vek,
        product: ProductLine,
        endorsements: tuple[Endorsement, ...],
        *,
        at: datetime,
        clock_skew: timedelta,
    ) -> VerifiedSnpChain:
        anchors = self._anchors(product, endorsements)
        signer_kind = SIGNER_OF[vek.kind]
        intermediate, origin = self._intermediate(vek, product, signer_kind, anchors, endorsements)
        self._check_vek_link(vek, intermediate)

        anchor = intermediate.anchor
        ark_info = self._anchor_info(anchor)
        certificates = (ark_info, intermediate.info, vek.info)
        for info in certificates:
            check_validity(info, at, clock_skew)

        notes: list[str] = []
        used = [
            UsedEndorsement("ark", anchor.anchor.fingerprint, ark_info.subject, anchor.origin),
            UsedEndorsement(
                str(signer_kind),
                intermediate.info.fingerprint_sha256,
                intermediate.info.subject,
                origin,
            ),
            UsedEndorsement(
                str(vek.kind), vek.info.fingerprint_sha256, vek.info.subject, "evidence"
            ),
        ]
        for endorsement in endorsements:
            if endorsement.kind is not EndorsementKind.CRL:
                continue
            crl = self._crl(endorsement)
            _check_crl_time(crl, at, clock_skew)
            if crl.issuer.anchor.der != anchor.anchor.der:
                notes.append(
                    f"CRL {crl.sha256[:16]}... of {crl.issuer.anchor.subject} does not cover "
                    "this path: not applied"
                )
                continue
            revoked = crl.crl.get_revoked_certificate_by_serial_number(
                intermediate.certificate.serial_number
            )
            if revoked is not None:
                raise CertificateRevoked(
                    f"{signer_kind} ({intermediate.info.subject}, serial "
                    f"{intermediate.info.serial_number}) is revoked by the CRL of "
                    f"{ark_info.subject} since {iso_utc(revoked.revocation_date_utc, 'seconds')}"
                )
            used.append(
                UsedEndorsement("crl", crl.sha256, f"CRL of {ark_info.subject}", "evidence")
            )
        return VerifiedSnpChain(
            product=product,
            anchor=anchor,
            certificates=certificates,
            endorsements=tuple(used),
            notes=tuple(notes),
        )

    # --- the ARK --------------------------------------------------------------------------

    def _anchors(
        self, product: ProductLine, endorsements: tuple[Endorsement, ...]
    ) -> tuple[SnpAnchor, ...]:
        anchors = self.store.anchors_for(product)
        if not anchors:
            raise UntrustedRoot(f"no ARK is trusted for {product} reports")
        for endorsement in endorsements:
            if endorsement.kind is not EndorsementKind.ARK:
                continue
            same = tuple(a for a in anchors if a.anchor.der == endorsement.data)
            if same:
                anchors = same
                continue
            other = [a for a in self.store.all_anchors() if a.anchor.der == endorsement.data]
            if other:
                raise UntrustedRoot(
                    f"ark: the given root is {other[0].anchor.subject}, trusted for "
                    f"{other[0].product}, not for this {product} report"
                )
            raise UntrustedRoot(
                f"ark: the given root (SHA-256 {endorsement.sha256}) is not a trusted ARK for "
                f"{product} (expected {', '.join(a.anchor.fingerprint for a in anchors)})"
            )
        return anchors

    def _anchor_info(self, anchor: SnpAnchor) -> CertificateInfo:
        info = self._anchor_infos.get(anchor.anchor.der)
        if info is None:
            info = certificate_info(
                anchor.anchor.certificate,
                anchor.anchor.der,
                position="ark",
                role="root",
                issuer=None,
            )
            self._anchor_infos.put(anchor.anchor.der, info)
        return info

    # --- the ASK or ASVK ------------------------------------------------------------------

    def _intermediate(
        self,
        vek: Vek,
        product: ProductLine,
        kind: EndorsementKind,
        anchors: tuple[SnpAnchor, ...],
        endorsements: tuple[Endorsement, ...],
    ) -> tuple[_Intermediate, str]:
        given = [e.data for e in endorsements if e.kind is kind]
        if given:
            candidates, origin = given, "evidence"
        else:
            pinned = self.store.intermediates.get((product, kind))
            if pinned is None:
                raise EndorsementMissing(
                    f"{kind}: none was given, and no {kind.name} of {product} is packaged for "
                    "the trusted ARK (a configured ARK's ASK or ASVK must come with the evidence)"
                )
            candidates, origin = [pinned.der], "pinned"
        issuer = vek.certificate.issuer
        last_error: ChainInvalid | None = None
        for der in candidates:
            try:
                checked = self._check_intermediate(der, kind, product, anchors)
            except ChainInvalid as exc:
                last_error = exc
                continue
            if checked.certificate.subject == issuer:
                return checked, origin
            last_error = ChainInvalid(
                f"{vek.kind}: issuer {issuer.rfc4514_string()!r} is not the subject of the "
                f"{kind.name} ({checked.info.subject!r})"
            )
        assert last_error is not None  # noqa: S101 - candidates is never empty
        raise last_error

    def _check_intermediate(
        self,
        der: bytes,
        kind: EndorsementKind,
        product: ProductLine,
        anchors: tuple[SnpAnchor, ...],
    ) -> _Intermediate:
        name = str(kind)
        for anchor in anchors:
            cached = self._intermediates.get((anchor.anchor.der, der))
            if cached is not None:
                return cached
        try:
            certificate = load_der_certificate(der)
            key = certificate.public_key()
        except CERTIFICATE_PARSE_ERRORS as exc:
            raise ChainInvalid(f"{name}: not a DER X.509 certificate ({first_line(exc)})") from None
        issuer = certificate.issuer
        issuing = [a for a in anchors if a.anchor.certificate.subject == issuer]
        if not issuing:
            elsewhere = [
                a for a in self.store.all_anchors() if a.anchor.certificate.subject == issuer
            ]
            if elsewhere:
                raise ChainInvalid(
                    f"{name}: issued by {issuer.rfc4514_string()!r}, the root of "
                    f"{elsewhere[0].product}; a {product} report needs "
                    f"{anchors[0].anchor.subject!r}"
                )
            raise UntrustedRoot(
                f"{name}: issued by {issuer.rfc4514_string()!r}, which is no trusted ARK "
                f"(expected {anchors[0].anchor.subject!r})"
            )
        try:
            _check_ca_profile(certificate, key, name)
        except CERTIFICATE_PARSE_ERRORS as exc:  # extensions are parsed when first read
            raise ChainInvalid(f"{name}: its extensions do not parse ({first_line(exc)})") from None
        for anchor in issuing:
            try:
                verify_amd_signature(
                    certificate.signature,
                    certificate.tbs_certificate_bytes,
                    anchor.anchor.public_key,
                )
            except InvalidSignature:
                continue
            assert isinstance(key, rsa.RSAPublicKey)  # noqa: S101 - _check_ca_profile checked it
            info = certificate_info(
                certificate, der, position=name, role="intermediate", issuer=anchor.anchor.subject
            )
            entry = _Intermediate(der, certificate, key, info, anchor)
            self._intermediates.put((anchor.anchor.der, der), entry)
            return entry
        raise ChainInvalid(
            f"{name}: signature does not verify under {issuing[0].anchor.subject!r} "
            "(RSASSA-PSS, SHA-384, salt 48)"
        )

    # --- the VCEK or VLEK -----------------------------------------------------------------

    def _check_vek_link(self, vek: Vek, intermediate: _Intermediate) -> None:
        key = (intermediate.der, vek.der)
        if self._links.get(key):
            return
        try:
            verify_amd_signature(
                vek.certificate.signature, vek.certificate.tbs_certificate_bytes, intermediate.key
            )
        except InvalidSignature:
            raise ChainInvalid(
                f"{vek.kind}: signature does not verify under the "
                f"{intermediate.info.position.upper()} {intermediate.info.subject!r}"
            ) from None
        self._links.put(key, True)

    # --- CRLs -----------------------------------------------------------------------------

    def _crl(self, endorsement: Endorsement) -> _Crl:
        cached = self._crls.get(endorsement.data)
        if cached is not None:
            return cached
        try:
            crl = load_der_crl(endorsement.data)
            issuer = crl.issuer
            tbs = crl.tbs_certlist_bytes
            last_update = crl.last_update_utc
            next_update = crl.next_update_utc
            algorithm = crl.signature_algorithm_oid
            digest = crl.signature_hash_algorithm
        except CERTIFICATE_PARSE_ERRORS as exc:
            raise ChainInvalid(f"crl: not a DER X.509 CRL ({first_line(exc)})") from None
        if algorithm != SignatureAlgorithmOID.RSASSA_PSS or not isinstance(digest, hashes.SHA384):
            raise ChainInvalid(
                f"crl: expected signature algorithm RSASSA-PSS with SHA-384, found "
                f"{algorithm.dotted_string}"
            )
        if next_update is None:
            raise ChainInvalid("crl: has no nextUpdate, so it cannot be judged current")
        issuers = [a for a in self.store.all_anchors() if a.anchor.certificate.subject == issuer]
        if not issuers:
            raise UntrustedRoot(
                f"crl: issued by {issuer.rfc4514_string()!r}, which is no trusted ARK"
            )
        for anchor in issuers:
            try:
                verify_amd_signature(crl.signature, tbs, anchor.anchor.public_key)
            except InvalidSignature:
                continue
            checked = _Crl(
                hashlib.sha256(endorsement.data).hexdigest(), crl, anchor, last_update, next_update
            )
            self._crls.put(endorsement.data, checked)
            return checked
        raise ChainInvalid(
            f"crl: signature does not verify under {issuers[0].anchor.subject!r} "
            "(RSASSA-PSS, SHA-384, salt 48)"
        )


def _check_ca_profile(certificate: x509.Certificate, key: object, name: str) -> None:
    if certificate.version is not x509.Version.v3:
        raise ChainInvalid(f"{name}: expected an X.509 v3 certificate")
    if certificate.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS or not isinstance(
        certificate.signature_hash_algorithm, hashes.SHA384
    ):
        raise ChainInvalid(
            f"{name}: expected signature algorithm RSASSA-PSS with SHA-384, found "
            f"{certificate.signature_algorithm_oid.dotted_string}"
        )
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < _MIN_RSA_BITS:
        raise ChainInvalid(f"{name}: expected an RSA key of 2048 bits or more (AMD's are 4096)")
    extensions = certificate.extensions
    for extension in extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
            raise ChainInvalid(
                f"{name}: unsupported critical extension {extension.oid.dotted_string}"
            )
    try:
        basic = extensions.get_extension_for_class(x509.BasicConstraints)
        usage = extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        raise ChainInvalid(f"{name}: expected basicConstraints and keyUsage (a CA)") from None
    if not basic.value.ca or not basic.critical:
        raise ChainInvalid(f"{name}: expected a critical basicConstraints cA=true")
    if not usage.value.key_cert_sign:
        raise ChainInvalid(f"{name}: expected keyUsage keyCertSign")


def _check_crl_time(crl: _Crl, at: datetime, clock_skew: timedelta) -> None:
    issuer = crl.issuer.anchor.subject
    if crl.last_update > at + clock_skew:  # (a date near year 1 must not overflow)
        raise CertificateNotYetValid(
            f"crl of {issuer}: issued {iso_utc(crl.last_update, 'seconds')}, after the "
            f"verification time {iso_utc(at)} (clock skew allowed: {clock_skew})"
        )
    if at > crl.next_update:
        raise CertificateExpired(
            f"crl of {issuer}: its next update was due {iso_utc(crl.next_update, 'seconds')}; "
            f"verification time {iso_utc(at)}"
        )
