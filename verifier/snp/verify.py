"""The SEV-SNP scheme: verify an attestation report with the VCEK or VLEK that signed it.

1. Parse the report strictly by its layout (:mod:`verifier.snp.report`).
2. Take the key the report names (flags): exactly one VCEK or VLEK among the endorsements,
   and parse it (:mod:`verifier.snp.vek`).
3. Tell the product line: from CPUID (version 3 and later), which the key's productName must
   agree with, or from the productName (version 2).
4. Verify the path ARK -> ASK/ASVK -> VCEK/VLEK at the verification time, and any CRL given
   (:mod:`verifier.snp.chain`).
5. Bind the key to the report: its SPLs equal ``reported_tcb``; a VCEK's hwID equals
   ``chip_id`` (its first 8 bytes on Turin); a VLEK's cloud provider is recorded.
6. Verify the signature: ECDSA P-384 with SHA-384 over bytes 0x000..0x29F, R and S read as
   little-endian integers.
7. Appraise the now-authentic report against the policy, collecting every violation.

Steps 1-6 raise at the first failure; step 7 raises one :class:`PolicyViolation` carrying
them all. A report carries no time of its own: ``at`` is always the caller's (ingestion:
now; re-verification: the instant the service judged). No network is used, ever: every
endorsement comes with the evidence or is pinned package data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.binding import ResultHash
from verifier.errors import (
    EndorsementMismatch,
    EndorsementMissing,
    MalformedEvidence,
    PolicyInvalid,
    PolicyViolation,
    SignatureInvalid,
    UnsupportedEvidence,
    VerifierError,
)
from verifier.policy import SchemePolicy
from verifier.result import AttestationResult, TimeBasis, evidence_digest, judged, status_of
from verifier.scheme import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
)
from verifier.snp.appraisal import appraise, trustworthiness
from verifier.snp.chain import SnpChainVerifier
from verifier.snp.claims import SnpClaims
from verifier.snp.policy import SnpPolicy
from verifier.snp.product import ProductLine
from verifier.snp.report import AttestationReport, SigningKey
from verifier.snp.roots import SnpTrustStore, amd_trust_store
from verifier.snp.vek import Vek, parse_vek
from verifier.x509 import LinkCache, TrustAnchor

__all__ = ["SnpVerifier", "parse_report"]

_ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())
#: n, the order of P-384's base point (SEC 2): R and S must lie in 1..n-1.
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)
_KEY_KIND = {SigningKey.VCEK: EndorsementKind.VCEK, SigningKey.VLEK: EndorsementKind.VLEK}


def parse_report(data: bytes) -> AttestationReport:
    """Parse without verifying anything: for display and for tools."""
    return AttestationReport.from_bytes(data)


class SnpVerifier:
    """The SEV-SNP scheme. By default it trusts only the pinned AMD ARKs (Milan, Genoa,
    Turin) and their packaged ASK and ASVK; ``trust_anchors`` replaces them, for example by
    the simulated PKI's ARK (named ``CN=ARK-<product line>``, as AMD names them), whose ASK
    must then come with the evidence. Keeps bounded caches of verified links and parsed
    keys; reads no clock, does no I/O; one instance may be shared between threads.
    """

    kinds: tuple[EvidenceKind, ...] = (EvidenceKind.AMD_SEV_SNP,)

    def __init__(
        self, *, trust_anchors: Sequence[TrustAnchor] | None = None, cache_size: int = 512
    ) -> None:
        store = (
            amd_trust_store() if trust_anchors is None else SnpTrustStore.configured(trust_anchors)
        )
        if not store.anchors:
            raise ValueError("an SnpVerifier needs at least one trust anchor")
        self.trust_store = store
        self._chains = SnpChainVerifier(store, cache_size=cache_size)
        self._veks: LinkCache[tuple[bytes, EndorsementKind], Vek] = LinkCache(cache_size)

    # --- the Scheme interface -------------------------------------------------------------

    def describe(self, evidence: Evidence) -> SnpClaims:
        """Parse without verifying: the report, and what its VCEK/VLEK (if one is given and
        parses) says. Raises MalformedEvidence or UnsupportedEvidence for the report only."""
        report = parse_report(evidence.data)
        vek: Vek | None = None
        kind = _KEY_KIND.get(report.signing_key)
        candidates = evidence.of_kind(kind) if kind is not None else ()
        if len(candidates) == 1:
            try:
                vek = self._vek(candidates[0])
            except VerifierError:
                vek = None
        product = _cpuid_product(report)
        if product is None and vek is not None and vek.product_name is not None:
            product = ProductLine.from_product_name(vek.product_name)
        try:
            return SnpClaims.of(report, product, vek)
        except MalformedEvidence:
            return SnpClaims.of(report, None, vek)

    def verify(
        self,
        evidence: Evidence,
        *,
        at: datetime,
        policy: SchemePolicy,
        nonce: bytes | None = None,
        result_hash: ResultHash | None = None,
    ) -> AttestationResult:
        """Verify ``evidence`` (an SEV-SNP report and its endorsements) and return the
        affirming or warning result.

        ``policy`` must be an :class:`SnpPolicy` (:class:`PolicyInvalid` otherwise).
        ``nonce``: if given, report_data[0:32] must be exactly this 32-byte challenge.
        ``result_hash``: if given, report_data[32:64] must bind it (:mod:`verifier.binding`).

        Raises a :class:`~verifier.errors.VerifierError` subclass for every failure;
        ``ValueError`` for a naive ``at`` (a programming error, not a property of evidence).
        """
        if not isinstance(at, datetime):
            raise TypeError("'at' must be a datetime: an SEV-SNP report carries no time")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("'at' must be timezone-aware; pass datetime.now(UTC), not now()")
        at = at.astimezone(UTC)
        if not isinstance(policy, SchemePolicy):
            raise TypeError("'policy' must be a verifier SnpPolicy")
        if not isinstance(policy, SnpPolicy):
            raise PolicyInvalid(
                f"policy {policy.name!r} judges {policy.evidence_kind}: an SEV-SNP report "
                "needs an SEV-SNP policy"
            )
        if evidence.kind is not EvidenceKind.AMD_SEV_SNP:
            raise ValueError(f"the SEV-SNP scheme cannot verify {evidence.kind} evidence")

        report = parse_report(evidence.data)
        try:
            return self._verify(evidence, report, at, policy, nonce=nonce, result_hash=result_hash)
        except PolicyViolation:
            raise
        except VerifierError as exc:
            if exc.claims is None:  # what the report says, unproven: for display
                exc.claims = self.describe(evidence)
            raise

    # --- the steps ------------------------------------------------------------------------

    def _verify(
        self,
        evidence: Evidence,
        report: AttestationReport,
        at: datetime,
        policy: SnpPolicy,
        *,
        nonce: bytes | None,
        result_hash: ResultHash | None,
    ) -> AttestationResult:
        evidence.check_endorsement_sizes("report")
        vek = self._signing_key(report, evidence)
        product = _product(report, vek)
        claims = SnpClaims.of(report, product, vek)
        chain = self._chains.verify(
            vek, product, evidence.endorsements, at=at, clock_skew=policy.clock_skew
        )
        notes = list(chain.notes)
        _bind(claims, vek, notes)
        _check_signature(report, vek)

        appraisal = appraise(claims, policy, nonce=nonce, result_hash=result_hash)
        notes.extend(appraisal.notes)
        status = status_of(
            appraisal.violations, warning=policy.accepts_any_measurement or report.policy.debug
        )
        result = AttestationResult(
            status=status,
            evidence_kind=EvidenceKind.AMD_SEV_SNP,
            evidence_sha256=evidence_digest(report.raw),
            claims=claims,
            certificates=chain.certificates,
            endorsements=chain.endorsements,
            trust_anchor_name=chain.anchor.anchor.name,
            trust_anchor_sha256=chain.anchor.anchor.fingerprint,
            policy=policy,
            matched_reference=appraisal.matched_image,
            violations=appraisal.violations,
            notes=tuple(notes),
            verified_at=at,
            time_basis=TimeBasis.GIVEN,
            nonce_checked=nonce is not None,
            result_binding_checked=result_hash is not None,
            trustworthiness=trustworthiness(
                policy,
                claims,
                appraisal.violations,
                nonce_checked=nonce is not None,
                result_binding_checked=result_hash is not None,
            ),
        )
        return judged(result)

    def _signing_key(self, report: AttestationReport, evidence: Evidence) -> Vek:
        if report.signing_key is SigningKey.NONE:
            raise SignatureInvalid("report: the signing key is 'none' (7): the report is unsigned")
        needed = _KEY_KIND[report.signing_key]
        given = evidence.of_kind(needed)
        if not given:
            other = EndorsementKind.VLEK if needed is EndorsementKind.VCEK else EndorsementKind.VCEK
            if evidence.of_kind(other):
                raise EndorsementMismatch(
                    f"the report is signed by its {needed.name} (flags), but the endorsements "
                    f"hold a {other.name} and no {needed.name}"
                )
            raise EndorsementMissing(
                f"the report is signed by its {needed.name}: give that certificate with the "
                "evidence (no network is used to fetch it)"
            )
        if len(given) > 1:
            raise EndorsementMismatch(
                f"{len(given)} {needed.name} certificates given: give exactly the one that signed"
            )
        return self._vek(given[0])

    def _vek(self, endorsement: Endorsement) -> Vek:
        key = (endorsement.data, endorsement.kind)
        vek = self._veks.get(key)
        if vek is None:
            vek = parse_vek(endorsement.data, endorsement.kind)
            self._veks.put(key, vek)
        return vek


def _cpuid_product(report: AttestationReport) -> ProductLine | None:
    if report.cpuid is None:
        return None
    return ProductLine.from_cpuid(report.cpuid[0], report.cpuid[1])


def _product(report: AttestationReport, vek: Vek) -> ProductLine:
    """The report's product line: CPUID (v3+), which the key must agree with, else the key's
    productName (v2)."""
    named = None
    if vek.product_name is not None:
        named = ProductLine.from_product_name(vek.product_name)
        if named is None:
            raise UnsupportedEvidence(
                f"{vek.kind}: productName {vek.product_name!r} names no product line this "
                "verifier knows (Milan, Genoa, Turin)"
            )
    if report.cpuid is not None:
        family, model, _ = report.cpuid
        product = ProductLine.from_cpuid(family, model)
        if product is None:
            raise UnsupportedEvidence(
                f"report: CPUID family 0x{family:02x} model 0x{model:02x} is no product line "
                "this verifier knows (Milan, Genoa, Turin)"
            )
        if named is not None and named is not product:
            raise EndorsementMismatch(
                f"{vek.kind}: it is a {named} key (productName {vek.product_name!r}), but the "
                f"report comes from a {product} (CPUID family 0x{family:02x} model "
                f"0x{model:02x})"
            )
        return product
    if named is None:
        raise EndorsementMismatch(
            f"{vek.kind}: a version {report.version} report has no CPUID, and the key names "
            "no productName: its product line cannot be told"
        )
    return named


def _bind(claims: SnpClaims, vek: Vek, notes: list[str]) -> None:
    """The key is this report's: its SPLs are the reported TCB, and a VCEK's hwID is the
    report's chip_id."""
    report = claims.report
    tcb = claims.reported_tcb
    assert tcb is not None  # noqa: S101 - the product is known here, so the TCB is decoded
    for component, found in tcb.components.items():
        certified = vek.spls.get(component)
        if certified is None:
            raise EndorsementMismatch(
                f"{vek.kind}: has no {component} SPL extension, which a {tcb.product} key certifies"
            )
        if certified != found:
            raise EndorsementMismatch(
                f"{vek.kind}: certifies the TCB {_spls(vek, tcb.components)}, but the report's "
                f"reported_tcb is {tcb} ({component} {certified} != {found})"
            )
    if vek.kind is EndorsementKind.VLEK:
        notes.append(f"signed by a VLEK of {vek.csp_id}: the chip is not identified")
        return
    assert vek.hwid is not None  # noqa: S101 - parse_vek: a VCEK has a hwID
    length = tcb.product.hwid_bytes
    if len(vek.hwid) != length:
        raise EndorsementMismatch(
            f"vcek: hwID of {len(vek.hwid)} bytes; a {tcb.product} VCEK's is {length} bytes"
        )
    if not any(report.chip_id):
        notes.append("chip_id is masked (all zero): the VCEK's signature alone binds the chip")
        return
    if vek.hwid != report.chip_id[:length]:
        raise EndorsementMismatch(
            f"vcek: hwID {vek.hwid.hex()[:32]}... is not the report's chip_id "
            f"{report.chip_id.hex()[:32]}...: the VCEK belongs to another chip"
        )


def _spls(vek: Vek, components: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {vek.spls.get(name)}" for name in components)


def _check_signature(report: AttestationReport, vek: Vek) -> None:
    r, s = report.signature_r, report.signature_s
    if not (0 < r < _P384_ORDER and 0 < s < _P384_ORDER):
        raise SignatureInvalid("report: signature R or S is outside 1..n-1 of P-384")
    try:
        vek.public_key.verify(encode_dss_signature(r, s), report.signed_bytes, _ECDSA_SHA384)
    except InvalidSignature:
        raise SignatureInvalid(
            f"report: the signature over bytes 0x000..0x29F does not verify with the "
            f"{vek.kind.name}'s key"
        ) from None
