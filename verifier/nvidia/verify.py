"""The NVIDIA scheme: verify a GPU's or NVSwitch's SPDM attestation report.

1. Parse the report strictly (:mod:`verifier.nvidia.report`); the signature is located by
   the length fields, and bytes after it are reported, not signed.
2. Verify the device chain given as ``device-certificate`` endorsements (leaf first, five
   with the root, which is compared by bytes with the pinned NVIDIA Device Identity CA) at
   the verification time (:mod:`verifier.nvidia.chain`).
3. Verify the signature: ECDSA P-384 over SHA-384 of request || response up to the
   signature, raw r || s, with the leaf's key.
4. Bind the leaf to the report: its FWID (:mod:`verifier.nvidia.fwid`) equals the report's
   opaque field 20 when the report has one (else skipped, and said so in the claims).
5. Verify each RIM given as a ``rim`` endorsement (:mod:`verifier.nvidia.rim`): signer chain
   to the pinned NVIDIA CoRIM signing Root CA at the verification time, XML signature.
6. Appraise (:mod:`verifier.nvidia.appraisal`): architecture and versions, RIMs required,
   every RIM measurement, the confidential-computing mode (feature flag), the nonce.

Steps 1-5 raise at the first failure; step 6 raises one PolicyViolation carrying every
violation. ``ocsp`` endorsements are kept with the entry and not checked (no network, and
no recorded NVIDIA OCSP responses to test with): the result says so.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from verifier.binding import ResultHash
from verifier.errors import (
    EndorsementMismatch,
    EndorsementMissing,
    FwidMismatch,
    PolicyInvalid,
    PolicyViolation,
    SignatureInvalid,
    UnsupportedEvidence,
    VerifierError,
)
from verifier.nvidia.appraisal import appraise, trustworthiness
from verifier.nvidia.chain import DEVICE_PROFILE, VerifiedPath, verify_path
from verifier.nvidia.claims import NvidiaClaims
from verifier.nvidia.fwid import fwid_of
from verifier.nvidia.policy import NvidiaPolicy
from verifier.nvidia.report import SpdmReport
from verifier.nvidia.rim import Rim, RimKind, VerifiedRim, verify_rim
from verifier.nvidia.roots import nvidia_device_root, nvidia_rim_root
from verifier.policy import DEFAULT_CLOCK_SKEW, SchemePolicy
from verifier.result import (
    AttestationResult,
    TimeBasis,
    UsedEndorsement,
    evidence_digest,
    judged,
    status_of,
)
from verifier.scheme import Endorsement, EndorsementKind, Evidence, EvidenceKind
from verifier.x509 import (
    CERTIFICATE_PARSE_ERRORS,
    LinkCache,
    TrustAnchor,
    check_validity,
    load_der_certificate,
)

__all__ = [
    "MAX_NVIDIA_ENDORSEMENTS",
    "NvidiaVerifier",
    "arch_of",
    "check_fwid",
    "check_signature",
    "parse_report",
]

#: Five device certificates, a driver and a VBIOS RIM, and OCSP responses.
MAX_NVIDIA_ENDORSEMENTS = 12
_ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)
_KNOWN = frozenset({EndorsementKind.DEVICE_CERTIFICATE, EndorsementKind.RIM, EndorsementKind.OCSP})
#: The leaf's common name starts with the chip: GH100 (Hopper), GB100 (Blackwell), LS_10.
_ARCH_OF_CHIP = {"GH100": "HOPPER", "GB100": "BLACKWELL", "LS_10": "LS10"}


def parse_report(data: bytes) -> SpdmReport:
    """Parse without verifying anything: for display and for tools."""
    return SpdmReport.from_bytes(data)


def arch_of(leaf_subject_cn: str) -> str | None:
    chip = leaf_subject_cn.split(" ", 1)[0]
    return _ARCH_OF_CHIP.get(chip)


class NvidiaVerifier:
    """The NVIDIA GPU and NVSwitch scheme. By default it trusts only the pinned NVIDIA
    Device Identity CA (device chains) and NVIDIA CoRIM signing Root CA (RIMs); each may be
    replaced. Keeps bounded caches of verified links; reads no clock, does no I/O; one
    instance may be shared between threads."""

    kinds: tuple[EvidenceKind, ...] = (EvidenceKind.NVIDIA_GPU,)

    def __init__(
        self,
        *,
        trust_anchors: Sequence[TrustAnchor] | None = None,
        rim_anchors: Sequence[TrustAnchor] | None = None,
        cache_size: int = 512,
    ) -> None:
        self.trust_anchors = (
            (nvidia_device_root(),) if trust_anchors is None else tuple(trust_anchors)
        )
        self.rim_anchors = (nvidia_rim_root(),) if rim_anchors is None else tuple(rim_anchors)
        if not self.trust_anchors or not self.rim_anchors:
            raise ValueError("an NvidiaVerifier needs a device root and a RIM root")
        self._links: LinkCache[tuple[bytes, bytes], bool] = LinkCache(cache_size)
        self._paths: LinkCache[tuple[bytes, ...], VerifiedPath] = LinkCache(cache_size)
        #: RIM bytes -> its verified signature and signer path (the same RIM serves every
        #: device of a version); its path's validity is checked again at every `at`.
        self._verified_rims: LinkCache[bytes, VerifiedRim] = LinkCache(64)

    # --- the Scheme interface -------------------------------------------------------------

    def describe(self, evidence: Evidence) -> NvidiaClaims:
        """Parse without verifying: the report, and the leaf's subject if one is given."""
        return _described(evidence, parse_report(evidence.data))

    def verify(
        self,
        evidence: Evidence,
        *,
        at: datetime,
        policy: SchemePolicy,
        nonce: bytes | None = None,
        result_hash: ResultHash | None = None,
    ) -> AttestationResult:
        """Verify ``evidence`` (an SPDM report, its device chain and RIMs).

        ``nonce``: the expected SPDM requester nonce (32 bytes); beside a CPU evidence,
        :func:`verifier.binding.gpu_nonce` of its challenge, result hash and this GPU's
        index. ``result_hash`` is bound only through that nonce: giving it without a nonce
        is a ``ValueError``.
        """
        if not isinstance(at, datetime):
            raise TypeError("'at' must be a datetime: an NVIDIA report carries no time")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("'at' must be timezone-aware; pass datetime.now(UTC), not now()")
        at = at.astimezone(UTC)
        if not isinstance(policy, SchemePolicy):
            raise TypeError("'policy' must be a verifier NvidiaPolicy")
        if not isinstance(policy, NvidiaPolicy):
            raise PolicyInvalid(
                f"policy {policy.name!r} judges {policy.evidence_kind}: an NVIDIA report "
                "needs an NVIDIA policy"
            )
        if evidence.kind is not EvidenceKind.NVIDIA_GPU:
            raise ValueError(f"the NVIDIA scheme cannot verify {evidence.kind} evidence")
        if nonce is not None and len(nonce) != 32:
            raise ValueError("'nonce' must be the 32-byte SPDM requester nonce")
        if result_hash is not None and nonce is None:
            raise ValueError(
                "a GPU report binds the result only through its nonce: pass "
                "nonce=gpu_nonce(challenge, result_hash, index)"
            )
        report = parse_report(evidence.data)
        try:
            return self._verify(evidence, report, at, policy, nonce=nonce)
        except PolicyViolation:
            raise
        except VerifierError as exc:
            if exc.claims is None:
                exc.claims = _described(evidence, report)
            raise

    def check_rim(self, data: bytes, *, at: datetime, policy: NvidiaPolicy | None = None) -> Rim:
        """Verify one RIM alone as :meth:`verify` does (its XML signature, its signer chain
        to the RIM roots valid at ``at``, within ``policy``'s clock skew); return it parsed.
        Raises :class:`VerifierError`. For whoever keeps RIMs to share between devices."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("'at' must be timezone-aware")
        skew = policy.clock_skew if policy is not None else DEFAULT_CLOCK_SKEW
        verified = self._verified_rims.get(data)
        if verified is None:
            verified = verify_rim(
                data, self.rim_anchors, at=at.astimezone(UTC), clock_skew=skew, links=self._links
            )
            self._verified_rims.put(data, verified)
        else:
            for info in verified.path.certificates:
                check_validity(info, at.astimezone(UTC), skew)
        return verified.rim

    # --- the steps ------------------------------------------------------------------------

    def _verify(
        self,
        evidence: Evidence,
        report: SpdmReport,
        at: datetime,
        policy: NvidiaPolicy,
        *,
        nonce: bytes | None,
    ) -> AttestationResult:
        evidence.check_endorsement_sizes("report", limit=MAX_NVIDIA_ENDORSEMENTS)
        others = sorted({str(e.kind) for e in evidence.endorsements if e.kind not in _KNOWN})
        if others:
            raise EndorsementMismatch(
                f"endorsements of kind {', '.join(others)} are not an NVIDIA device's: expected "
                "device-certificate, rim and ocsp"
            )
        chain = evidence.of_kind(EndorsementKind.DEVICE_CERTIFICATE)
        if not chain:
            raise EndorsementMissing(
                "device-certificate: give the device's certificate chain, leaf first, with "
                "the report (no network is used to fetch it)"
            )
        path = verify_path(
            [e.data for e in chain],
            self.trust_anchors,
            DEVICE_PROFILE,
            at=at,
            clock_skew=policy.clock_skew,
            links=self._links,
            paths=self._paths,
        )
        check_signature(report, path.leaf_key)
        fwid_checked = check_fwid(report, path)
        arch = arch_of(_common_name(path.leaf))
        if arch is None:
            raise UnsupportedEvidence(
                f"device certificate [0]: {path.leaf.subject.rfc4514_string()} names no chip "
                "this verifier knows (GH100, GB100, LS_10)"
            )
        rims = self._rims(evidence, at, policy)
        appraisal, comparisons = appraise(report, arch, [r.rim for r in rims], policy, nonce=nonce)
        notes = list(appraisal.notes)
        if report.trailing:
            notes.append(f"{len(report.trailing)} byte(s) after the signature: not signed, ignored")
        if not fwid_checked:
            notes.append("FWID not checked: the report has no FWID field (opaque field 20)")
        ocsp = evidence.of_kind(EndorsementKind.OCSP)
        notes.append(
            f"revocation not checked: {len(ocsp)} OCSP response(s) kept, none verified "
            "(NVIDIA revokes device certificates by OCSP only)"
        )
        claims = NvidiaClaims(
            report,
            arch,
            fwid_checked,
            comparisons,
            path.leaf.subject.rfc4514_string(),
            chain[0].data,
        )
        status = status_of(appraisal.violations, warning=policy.accepts_any_measurement or not rims)
        result = AttestationResult(
            status=status,
            evidence_kind=EvidenceKind.NVIDIA_GPU,
            evidence_sha256=evidence_digest(report.raw),
            claims=claims,
            certificates=path.certificates,
            endorsements=_used(path, chain, rims, ocsp),
            trust_anchor_name=path.anchor.name,
            trust_anchor_sha256=path.anchor.fingerprint,
            policy=policy,
            matched_reference=appraisal.matched_image,
            violations=appraisal.violations,
            notes=tuple(notes),
            verified_at=at,
            time_basis=TimeBasis.GIVEN,
            nonce_checked=nonce is not None,
            result_binding_checked=False,
            trustworthiness=trustworthiness(
                policy,
                appraisal.violations,
                rims_compared=bool(rims),
                nonce_checked=nonce is not None,
            ),
        )
        return judged(result)

    def _rims(self, evidence: Evidence, at: datetime, policy: NvidiaPolicy) -> list[VerifiedRim]:
        out: list[VerifiedRim] = []
        seen: dict[RimKind, VerifiedRim] = {}
        for endorsement in evidence.of_kind(EndorsementKind.RIM):
            verified = self._verified_rims.get(endorsement.data)
            if verified is None:
                verified = verify_rim(
                    endorsement.data,
                    self.rim_anchors,
                    at=at,
                    clock_skew=policy.clock_skew,
                    links=self._links,
                )
                self._verified_rims.put(endorsement.data, verified)
            else:
                for info in verified.path.certificates:
                    check_validity(info, at, policy.clock_skew)
            kind = verified.rim.kind
            if kind in seen:
                raise EndorsementMismatch(f"rim: two {kind} RIMs given; give one of each kind")
            seen[kind] = verified
            out.append(verified)
        driver, vbios = seen.get(RimKind.DRIVER), seen.get(RimKind.VBIOS)
        if driver is not None and vbios is not None:
            both = {m.index for m in driver.rim.measurements} & {
                m.index for m in vbios.rim.measurements
            }
            if both:
                raise EndorsementMismatch(
                    f"rim: the driver and VBIOS RIMs both measure index {min(both)}: they "
                    "are not a pair"
                )
        return out


def check_signature(report: SpdmReport, key: ec.EllipticCurvePublicKey) -> None:
    """ECDSA P-384 over SHA-384 of the signed bytes; raises SignatureInvalid."""
    r, s = report.signature_r, report.signature_s
    if not (0 < r < _P384_ORDER and 0 < s < _P384_ORDER):
        raise SignatureInvalid("report: signature r or s is outside 1..n-1 of P-384")
    try:
        key.verify(encode_dss_signature(r, s), report.signed_bytes, _ECDSA_SHA384)
    except InvalidSignature:
        raise SignatureInvalid(
            f"report: the signature over the first {report.signature_offset} bytes (request "
            "and response up to the signature) does not verify with the device leaf's key"
        ) from None


def check_fwid(report: SpdmReport, path: VerifiedPath) -> bool:
    """Whether the FWID was compared (the report has field 20); raises FwidMismatch."""
    if report.fwid is None:
        return False
    certified, extension = fwid_of(path.leaf)
    if certified is None:
        raise FwidMismatch(
            "device certificate [0]: the report has a FWID, but the leaf certifies none "
            "(no extension 2.23.133.5.4.1 or 2.23.133.5.4.1.1)"
        )
    if not hmac.compare_digest(certified, report.fwid):
        raise FwidMismatch(
            f"report FWID {report.fwid.hex()[:16]}... is not the leaf's ({extension}) "
            f"{certified.hex()[:16]}...: the report is not this device's firmware"
        )
    return True


def _described(evidence: Evidence, report: SpdmReport) -> NvidiaClaims:
    """The claims of a parsed report without verifying: the leaf's subject if one is given."""
    leaf_subject, leaf_der, arch = None, None, None
    given = evidence.of_kind(EndorsementKind.DEVICE_CERTIFICATE)
    if given:
        try:
            leaf = load_der_certificate(given[0].data)
            leaf_subject, leaf_der = leaf.subject.rfc4514_string(), given[0].data
            arch = arch_of(_common_name(leaf))
        except CERTIFICATE_PARSE_ERRORS:
            pass
    return NvidiaClaims(report, arch, False, (), leaf_subject, leaf_der)


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _used(
    path: VerifiedPath,
    chain: tuple[Endorsement, ...],
    rims: list[VerifiedRim],
    ocsp: tuple[Endorsement, ...],
) -> tuple[UsedEndorsement, ...]:
    """Everything the verdict rests on, by SHA-256: what came with the evidence must be kept
    with the entry; the roots are named by fingerprint."""
    out = [
        UsedEndorsement("device-certificate", endorsement.sha256, info.subject, "evidence")
        for endorsement, info in zip(chain, reversed(path.certificates), strict=False)
    ]
    root_origin = "pinned" if path.anchor.der == nvidia_device_root().der else "configured"
    out.append(
        UsedEndorsement("device-root", path.anchor.fingerprint, path.anchor.subject, root_origin)
    )
    for verified in rims:
        rim = verified.rim
        out.append(UsedEndorsement("rim", rim.sha256, f"{rim.kind} RIM {rim.version}", "evidence"))
    if rims:
        anchor = rims[0].path.anchor
        origin = "pinned" if anchor.der == nvidia_rim_root().der else "configured"
        out.append(UsedEndorsement("rim-root", anchor.fingerprint, anchor.subject, origin))
    out.extend(
        UsedEndorsement("ocsp", response.sha256, "OCSP response (not checked)", "evidence")
        for response in ocsp
    )
    return tuple(out)
