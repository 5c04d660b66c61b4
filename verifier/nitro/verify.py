"""The Nitro scheme: verify an AWS Nitro attestation document, the one entry point that ties the
steps together.

1. Parse the COSE_Sign1 envelope strictly (tag 18 or none, ``{1: -35}``, 96-byte signature).
2. Parse the payload into an :class:`AttestationDocument` (every field typed and bounded).
3. Verify the certificate path from the pinned trust anchor to the signing certificate at the
   verification time.
4. Verify the COSE signature with the signing certificate's key.
5. Appraise the now-authentic document against the policy, collecting every violation.

Steps 1-4 raise at the first failure (nothing after a broken signature is worth reporting);
step 5 raises one :class:`PolicyViolation` carrying them all. The verifier never reads the
clock: the caller passes ``at``, either an aware ``datetime`` (for example "now" at
ingestion) or :data:`DOCUMENT_TIME` to judge the document as of its own signed timestamp
(re-verifying an archived document), and the result records which.
"""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Final

from verifier.binding import ResultHash
from verifier.errors import PolicyInvalid, VerifierError
from verifier.nitro.appraisal import appraise, trustworthiness
from verifier.nitro.chain import LinkCache, NitroLinkCache, verify_chain
from verifier.nitro.claims import NitroClaims
from verifier.nitro.cose import COSESign1
from verifier.nitro.document import AttestationDocument
from verifier.nitro.policy import NITRO_KINDS, Policy
from verifier.nitro.trust import aws_nitro_root_g1, require_p384
from verifier.policy import SchemePolicy
from verifier.result import AttestationResult, TimeBasis, evidence_digest, judged, status_of
from verifier.scheme import Evidence, EvidenceKind
from verifier.x509 import TrustAnchor

__all__ = ["DOCUMENT_TIME", "NitroVerifier", "parse_evidence"]


_PARSED_REMEMBERED = 64


class _DocumentTime(enum.Enum):
    DOCUMENT_TIME = "document_time"


#: Pass as ``at`` to verify a document as of its own signed timestamp.
DOCUMENT_TIME: Final = _DocumentTime.DOCUMENT_TIME


def parse_evidence(evidence: bytes) -> tuple[COSESign1, AttestationDocument]:
    """Parse without verifying anything: for display and for tools. Raises MalformedEvidence."""
    envelope = COSESign1.from_bytes(evidence)
    return envelope, AttestationDocument.from_payload(envelope.payload)


class NitroVerifier:
    """The Nitro scheme: verifies Nitro attestation documents (enclaves and NitroTPM) against
    one trust anchor.

    By default the anchor is the pinned AWS Nitro Enclaves Root-G1. Any other anchor (the
    simulated PKI of tests and demos) must be passed explicitly; it needs a P-384 key
    (``ValueError`` otherwise). The verifier keeps a bounded cache of verified CA links (see
    :mod:`verifier.nitro.chain`); it holds no other state, reads no clock and does no I/O, and
    one instance may be shared between threads.
    """

    kinds: tuple[EvidenceKind, ...] = NITRO_KINDS

    def __init__(
        self, *, trust_anchor: TrustAnchor | None = None, link_cache_size: int = 512
    ) -> None:
        self.trust_anchor = trust_anchor if trust_anchor is not None else aws_nitro_root_g1()
        require_p384(self.trust_anchor)
        self._links: NitroLinkCache = LinkCache(link_cache_size)
        self._leaves: NitroLinkCache = LinkCache(link_cache_size)
        self._parsed: OrderedDict[bytes, tuple[COSESign1, AttestationDocument]] = OrderedDict()
        self._parsed_lock = threading.Lock()

    def parse(self, evidence: bytes) -> tuple[COSESign1, AttestationDocument]:
        """:func:`parse_evidence`, remembered for the last few documents: a service that
        reads a document's nonce before verifying it does not parse it twice. Parsing is a
        pure function of the bytes, so a remembered result is the same result."""
        with self._parsed_lock:
            found = self._parsed.get(evidence)
            if found is not None:
                self._parsed.move_to_end(evidence)
                return found
        parsed = parse_evidence(evidence)
        with self._parsed_lock:
            self._parsed[evidence] = parsed
            if len(self._parsed) > _PARSED_REMEMBERED:
                self._parsed.popitem(last=False)
        return parsed

    def describe(self, evidence: Evidence) -> NitroClaims:
        """Parse without verifying (the Scheme interface): the document, unproven."""
        return NitroClaims(self.parse(evidence.data)[1])

    def verify(
        self,
        evidence: bytes | Evidence,
        *,
        at: datetime | _DocumentTime,
        policy: SchemePolicy,
        nonce: bytes | None = None,
        result_hash: ResultHash | None = None,
    ) -> AttestationResult:
        """Verify ``evidence`` (raw COSE_Sign1 bytes, or an :class:`Evidence` of a Nitro kind)
        and return the affirming or warning result.

        ``policy`` must be a Nitro :class:`Policy` (:class:`PolicyInvalid` otherwise).
        ``nonce``: if given, the document must carry exactly this nonce.
        ``result_hash``: if given, ``user_data`` must bind it (:mod:`verifier.binding`).

        Raises a :class:`~verifier.errors.VerifierError` subclass for every failure;
        ``ValueError`` for a naive ``at`` (a programming error, not a property of evidence).
        """
        if isinstance(at, datetime):
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError("'at' must be timezone-aware; pass datetime.now(UTC), not now()")
            at = at.astimezone(UTC)
        if not isinstance(policy, Policy):
            if not isinstance(policy, SchemePolicy):
                raise TypeError("'policy' must be a verifier.Policy")
            raise PolicyInvalid(
                f"policy {policy.name!r} judges {policy.evidence_kind}: a Nitro document "
                "needs a Nitro policy"
            )
        if isinstance(evidence, Evidence):
            if evidence.kind not in NITRO_KINDS:
                raise ValueError(f"the Nitro scheme cannot verify {evidence.kind} evidence")
            evidence = evidence.data

        envelope, document = self.parse(evidence)
        if isinstance(at, datetime):
            moment, basis = at, TimeBasis.GIVEN
        else:
            moment, basis = document.timestamp, TimeBasis.DOCUMENT

        try:
            chain = verify_chain(
                document.certificate,
                document.cabundle,
                anchor=self.trust_anchor,
                at=moment,
                clock_skew=policy.clock_skew,
                cache=self._links,
                leaf_cache=self._leaves,
            )
            envelope.verify_signature(chain.signing_key)
        except VerifierError as exc:
            exc.document = document
            exc.claims = NitroClaims(document)
            raise

        appraisal = appraise(
            document, policy, at=moment, time_basis=basis, nonce=nonce, result_hash=result_hash
        )
        status = status_of(
            appraisal.violations,
            # debug allowed, or unappraised
            warning=policy.accepts_any_measurement or document.is_debug,
        )
        result = AttestationResult(
            status=status,
            evidence_kind=document.kind,
            evidence_sha256=evidence_digest(evidence),
            claims=NitroClaims(document, appraisal.pcr_appraisals),
            certificates=chain.certificates,
            endorsements=(),
            trust_anchor_name=chain.anchor.name,
            trust_anchor_sha256=chain.anchor.fingerprint,
            policy=policy,
            matched_reference=appraisal.matched_image,
            violations=appraisal.violations,
            notes=appraisal.notes,
            verified_at=moment,
            time_basis=basis,
            nonce_checked=nonce is not None,
            result_binding_checked=result_hash is not None,
            trustworthiness=trustworthiness(
                document,
                policy,
                appraisal.violations,
                nonce_checked=nonce is not None,
                result_binding_checked=result_hash is not None,
            ),
        )
        return judged(result)
