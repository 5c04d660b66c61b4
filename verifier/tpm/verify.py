"""The TPM 2.0 scheme: verify a quote (``tpm2-quote/v1`` container) and who vouches for its AK.

1. Parse the container, the TPMS_ATTEST, the TPMT_SIGNATURE and the AK strictly; the PCR
   values sent must be exactly the quote's selection.
2. Signature: the AK over the exact TPMS_ATTEST bytes (``tpm_signature_invalid``).
3. pcrDigest recomputed from the sent PCRs with the AK's name algorithm (the
   qualifiedSigner's nameAlg), not the bank's (``pcr_digest_mismatch``).
4. Event logs, if any came: replayed to the quoted PCRs (``event_log_mismatch``).
5. AK path: a NitroTPM document if one came (``aws-nitrotpm``); else an ``ak-certificate``
   endorsement chained to a pinned Google root (``gcp``); else the enrolment book
   (``enrolled``); else ``ak_unendorsed``.
6. Appraise against the policy (images, events, AK path allowed, binding, all-reset),
   collecting every violation into one :class:`PolicyViolation`.

A quote carries no wall-clock time (its clock counts milliseconds since the TPM's reset):
``at`` is the caller's and matters for what vouches for the AK (certificates, the Nitro
document's chain, enrolments). No I/O, no clock, no network.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from verifier.binding import ResultHash
from verifier.errors import (
    AkUnendorsed,
    MalformedEvidence,
    PcrDigestMismatch,
    PolicyInvalid,
    PolicyViolation,
    VerifierError,
)
from verifier.nitro.trust import aws_nitro_root_g1, require_p384
from verifier.policy import SchemePolicy
from verifier.result import (
    AttestationResult,
    TimeBasis,
    UsedEndorsement,
    evidence_digest,
    judged,
    status_of,
)
from verifier.scheme import EndorsementKind, Evidence, EvidenceKind
from verifier.tpm.ak import AttestationKey, parse_ak
from verifier.tpm.appraisal import appraise, trustworthiness
from verifier.tpm.claims import AkEndorsement, TpmClaims
from verifier.tpm.enrolment import EnrolmentBook, check_enrolment
from verifier.tpm.evidence import TpmEvidence, parse_container
from verifier.tpm.gcp import GcpChainVerifier
from verifier.tpm.nitrotpm import NitroTpmVerifier, describe_document
from verifier.tpm.policy import TpmPolicy
from verifier.tpm.replay import replay_logs
from verifier.tpm.roots import gcp_vtpm_intermediate_2020, gcp_vtpm_root_2018, google_roots
from verifier.tpm.structures import Attest, TpmSignature, pcr_digest
from verifier.x509 import CertificateInfo, TrustAnchor

__all__ = ["ParsedQuote", "TpmVerifier", "parse_quote"]


class ParsedQuote:
    """A container parsed into typed parts; nothing verified."""

    __slots__ = ("ak", "attest", "container", "pcrs", "signature")

    def __init__(
        self,
        container: TpmEvidence,
        attest: Attest,
        signature: TpmSignature,
        ak: AttestationKey,
        pcrs: Mapping[str, Mapping[int, bytes]],
    ) -> None:
        self.container = container
        self.attest = attest
        self.signature = signature
        self.ak = ak
        self.pcrs = pcrs


def parse_quote(data: bytes) -> ParsedQuote:
    """Parse a container and everything in it; MalformedEvidence or UnsupportedEvidence."""
    container = parse_container(data)
    attest = Attest.from_bytes(container.attest)
    signature = TpmSignature.from_bytes(container.signature)
    ak = parse_ak(container.ak)
    selected = attest.selected()
    for bank, values in container.pcrs.items():
        indexes = selected.get(bank, ())
        extra = sorted(set(values) - set(indexes))
        if extra:
            raise MalformedEvidence(
                f"tpm2-quote: pcrs {bank} {extra[0]} is not in the quote's selection: only "
                "quoted values may come with a quote"
            )
    for bank, indexes in selected.items():
        values = container.pcrs.get(bank, {})
        missing = [i for i in indexes if i not in values]
        if missing:
            raise MalformedEvidence(
                f"tpm2-quote: the quote selects {bank} PCR {missing[0]}, but its value did not "
                "come with it"
            )
    return ParsedQuote(container, attest, signature, ak, container.pcrs)


class TpmVerifier:
    """The TPM 2.0 scheme.

    ``trust_anchors``: the Google AK CA roots (default: the pinned EK/AK CA Root and 2018
    vTPM root, with the 2018 root's 2020 intermediate as package data). ``nitro_anchor``:
    the AWS Nitro root for NitroTPM documents (default: the pinned Root-G1). ``enrolments``:
    the book of enrolled on-premises AKs (none by default: such quotes are unendorsed).
    Keeps bounded caches of verified links; one instance may be shared between threads.
    """

    kinds: tuple[EvidenceKind, ...] = (EvidenceKind.TPM2_QUOTE,)

    def __init__(
        self,
        *,
        trust_anchors: Sequence[TrustAnchor] | None = None,
        nitro_anchor: TrustAnchor | None = None,
        enrolments: EnrolmentBook | None = None,
        cache_size: int = 512,
    ) -> None:
        anchors = google_roots() if trust_anchors is None else tuple(trust_anchors)
        if not anchors:
            raise ValueError("a TpmVerifier needs at least one Google AK CA root")
        # The 2018 root's 2020 intermediate is not in go-tpm-tools attestations: it is pinned
        # whenever that root is trusted, whether by default or among explicit anchors (a
        # bundle passes its anchors explicitly and must judge old-style AK certificates as
        # the service did).
        root_2018 = gcp_vtpm_root_2018().fingerprint
        pinned = (
            (gcp_vtpm_intermediate_2020(),)
            if any(anchor.fingerprint == root_2018 for anchor in anchors)
            else ()
        )
        self.trust_anchors = anchors
        self.nitro_anchor = nitro_anchor if nitro_anchor is not None else aws_nitro_root_g1()
        require_p384(self.nitro_anchor)
        self.enrolments = enrolments
        self._gcp = GcpChainVerifier(anchors, pinned, cache_size=cache_size)
        self._nitro = NitroTpmVerifier(self.nitro_anchor, cache_size=cache_size)

    @property
    def all_trust_anchors(self) -> tuple[TrustAnchor, ...]:
        """Every root a verdict of this verifier may rest on: what a bundle must carry."""
        return (*self.trust_anchors, self.nitro_anchor)

    # --- the Scheme interface -------------------------------------------------------------

    def describe(self, evidence: Evidence) -> TpmClaims:
        """Parse without verifying: the quote, its AK, and what would vouch for it."""
        parsed = parse_quote(evidence.data)
        container = parsed.container
        if container.nitro_document is not None:
            endorsement = AkEndorsement(
                "aws-nitrotpm", nitro_document=describe_document(container.nitro_document)
            )
        elif evidence.of_kind(EndorsementKind.AK_CERTIFICATE):
            endorsement = AkEndorsement("gcp")
        else:
            endorsement = AkEndorsement("unendorsed")
        return TpmClaims(
            parsed.attest, parsed.signature, parsed.ak, parsed.pcrs, endorsement=endorsement
        )

    def verify(
        self,
        evidence: Evidence,
        *,
        at: datetime,
        policy: SchemePolicy,
        nonce: bytes | None = None,
        result_hash: ResultHash | None = None,
    ) -> AttestationResult:
        """Verify ``evidence`` (a ``tpm2-quote`` container and its endorsements) and return
        the affirming or warning result. ``policy`` must be a :class:`TpmPolicy`. ``nonce``
        and ``result_hash`` are checked in extraData (see :mod:`verifier.tpm.appraisal`).

        Raises a :class:`~verifier.errors.VerifierError` subclass for every failure;
        ``ValueError`` for a naive ``at``.
        """
        if not isinstance(at, datetime):
            raise TypeError("'at' must be a datetime: a TPM quote carries no time")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("'at' must be timezone-aware; pass datetime.now(UTC), not now()")
        at = at.astimezone(UTC)
        if not isinstance(policy, SchemePolicy):
            raise TypeError("'policy' must be a verifier TpmPolicy")
        if not isinstance(policy, TpmPolicy):
            raise PolicyInvalid(
                f"policy {policy.name!r} judges {policy.evidence_kind}: a TPM quote needs a "
                "TPM policy"
            )
        if evidence.kind is not EvidenceKind.TPM2_QUOTE:
            raise ValueError(f"the TPM scheme cannot verify {evidence.kind} evidence")
        parsed = parse_quote(evidence.data)
        claims = TpmClaims(parsed.attest, parsed.signature, parsed.ak, parsed.pcrs)
        try:
            return self._verify(
                evidence, parsed, claims, at, policy, nonce=nonce, result_hash=result_hash
            )
        except PolicyViolation:
            raise
        except VerifierError as exc:
            if exc.claims is None:
                exc.claims = claims
            raise

    def _verify(
        self,
        evidence: Evidence,
        parsed: ParsedQuote,
        claims: TpmClaims,
        at: datetime,
        policy: TpmPolicy,
        *,
        nonce: bytes | None,
        result_hash: ResultHash | None,
    ) -> AttestationResult:
        evidence.check_endorsement_sizes("quote")
        parsed.ak.verify(parsed.signature, parsed.attest.raw)
        expected = pcr_digest(parsed.attest, parsed.pcrs)
        if not hmac.compare_digest(expected, parsed.attest.pcr_digest):
            raise PcrDigestMismatch(
                f"TPMS_ATTEST: pcrDigest is {parsed.attest.pcr_digest.hex()}, but the PCR values "
                f"sent hash to {expected.hex()} ({parsed.attest.name_alg}, the AK's name "
                "algorithm)"
            )
        container = parsed.container
        log = replay_logs(container.event_log, container.ima_log, parsed.pcrs)
        claims = replace(claims, event_log=log)

        notes: list[str] = []
        certificates: tuple[CertificateInfo, ...] = ()
        used: tuple[UsedEndorsement, ...] = ()
        if container.nitro_document is not None:
            binding = self._nitro.verify(
                container.nitro_document,
                parsed.attest,
                parsed.ak,
                parsed.pcrs,
                at=at,
                clock_skew=policy.clock_skew,
            )
            endorsement = AkEndorsement("aws-nitrotpm", nitro_document=binding.summary)
            certificates = binding.certificates
            notes.extend(binding.notes)
            anchor_name, anchor_sha256 = self.nitro_anchor.name, self.nitro_anchor.fingerprint
        elif evidence.of_kind(EndorsementKind.AK_CERTIFICATE):
            chain = self._gcp.verify(
                evidence.endorsements, parsed.ak, at=at, clock_skew=policy.clock_skew
            )
            endorsement = AkEndorsement("gcp", certificate_subject=chain.subject, gcp=chain.gcp)
            certificates, used = chain.certificates, chain.endorsements
            anchor_name, anchor_sha256 = chain.anchor.name, chain.anchor.fingerprint
        elif self.enrolments is not None:
            enrolment = check_enrolment(self.enrolments, parsed.ak.sha256, at)
            endorsement = AkEndorsement("enrolled", enrolment=enrolment.name)
            anchor_name, anchor_sha256 = f"enrolled AK {enrolment.name}", parsed.ak.sha256
        else:
            raise AkUnendorsed(
                f"ak: nothing vouches for the AK (SHA-256 {parsed.ak.sha256}): no NitroTPM "
                "document, no AK certificate, no enrolment book; the quote proves only that "
                "this key signed these PCRs; enrol it with `attest-ledger tpm enroll`"
            )
        claims = replace(claims, endorsement=endorsement)

        appraisal = appraise(claims, policy, nonce=nonce, result_hash=result_hash)
        notes.extend(appraisal.notes)
        status = status_of(appraisal.violations, warning=policy.accepts_any_measurement)
        result = AttestationResult(
            status=status,
            evidence_kind=EvidenceKind.TPM2_QUOTE,
            evidence_sha256=evidence_digest(evidence.data),
            claims=claims,
            certificates=certificates,
            endorsements=used,
            trust_anchor_name=anchor_name,
            trust_anchor_sha256=anchor_sha256,
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
