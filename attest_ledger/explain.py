"""What an entry says, laid out for a person: the portal's entry page is built from this.

Framework-free. Everything shown comes from the entry's own bytes, its evidence, the
endorsements it names and the policy revision it names, all of them in the ledger; nothing
is taken from the service's current state except the trust anchors: for "re-verify", and for
an SEV-SNP path whose ASK or ARK did not come with the evidence (the packaged ones are shown).
The SEV-SNP report's part of the page is built by :mod:`attest_ledger.explain_snp`, an Intel
TDX or SGX quote's by :mod:`attest_ledger.explain_tdx`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from attest_ledger.challenges import ChallengeState
from attest_ledger.explain_snp import SnpView, StoredEndorsement, explain_snp, stored_evidence
from attest_ledger.explain_tdx import DcapView, explain_dcap
from attest_ledger.intake import anchors_of, judge
from attest_ledger.policy_store import PolicyConfig, PolicyError
from ledger.errors import EntryNotFound
from ledger.reads import StoredEntry, get_endorsement, get_entry, get_evidence
from verifier import (
    AttestationDocument,
    CertificateInfo,
    Evidence,
    EvidenceKind,
    ResultHash,
    Scheme,
    SchemePolicy,
    SnpVerifier,
    VerifierError,
    parse_evidence,
)
from verifier.nitro.chain import describe_path
from verifier.nitro.policy import NITRO_KINDS
from verifier.tdx import DcapVerifier

__all__ = [
    "SERVICE_STATE_CODES",
    "CertificateRow",
    "EntryView",
    "PcrRow",
    "Reverification",
    "compare",
    "explain_entry",
    "judge_again",
    "policy_at",
    "recorded_instant",
    "reverify",
]

_SNP = str(EvidenceKind.AMD_SEV_SNP)
_DCAP = (str(EvidenceKind.INTEL_TDX), str(EvidenceKind.INTEL_SGX))
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PcrRow:
    index: int
    value: str
    matched: tuple[str, ...]  # reference images whose value for this PCR is this one
    expected: tuple[tuple[str, str], ...]  # (image, value) of references that differ

    @property
    def status(self) -> str:
        if self.matched:
            return "match"
        return "mismatch" if self.expected else "unreferenced"


@dataclass(frozen=True)
class CertificateRow:
    info: CertificateInfo | None
    problem: str | None
    #: where the document's timestamp falls: "before", "within" or "after" the window
    at_document_time: str | None
    #: for drawing: the window and the document time on a common scale, in percent
    window: tuple[float, float] | None
    marker: float | None


@dataclass
class EntryView:
    entry: StoredEntry
    record: dict[str, Any]
    evidence: bytes | None
    document: AttestationDocument | None = None
    parse_error: str | None = None
    pcrs: list[PcrRow] = field(default_factory=list)
    certificates: list[CertificateRow] = field(default_factory=list)
    policy: PolicyConfig | None = None
    policy_problem: str | None = None
    #: the result-hash binding: what user_data should hold, and whether it does
    binding_expected: bytes | None = None
    binding_holds: bool | None = None
    #: every endorsement the entry names, with its stored bytes
    endorsements: list[StoredEndorsement] = field(default_factory=list)
    #: an SEV-SNP report, laid out (None for other kinds, or if it does not parse)
    snp: SnpView | None = None
    #: an Intel TDX or SGX quote, laid out (None for other kinds, or if it does not parse)
    dcap: DcapView | None = None

    @property
    def evidence_kind(self) -> str:
        """The kind of evidence the entry records (entries before there were kinds: Nitro)."""
        kind = self.record.get("evidence_kind")
        return kind if isinstance(kind, str) else str(EvidenceKind.AWS_NITRO_ENCLAVE)

    @property
    def is_nitro(self) -> bool:
        return self.evidence_kind in NITRO_KINDS

    @property
    def reference_images(self) -> list[str]:
        """The Nitro images the PCRs are compared with: the worker's, else every one."""
        if self.policy is None:
            return []
        worker = self.record.get("worker")
        allowed = self.policy.workers.get(worker, frozenset()) if isinstance(worker, str) else ()
        return sorted(n for n in allowed if n in self.policy.images) or sorted(self.policy.images)


def policy_at(session: Session, revision: int | None) -> PolicyConfig | None:
    """The policy recorded by the ledger entry ``revision`` (None before the first)."""
    if revision is None:
        return None
    record = json.loads(get_entry(session, revision).data)
    if record.get("kind") != "policy":
        raise PolicyError(f"entry {revision} is not a policy entry")
    return PolicyConfig.from_snapshot(record["policy"], revision)


def _pcr_rows(
    document: AttestationDocument, policy: PolicyConfig, images: list[str]
) -> list[PcrRow]:
    rows = []
    for index, value in sorted(document.pcrs.items()):
        matched, expected = [], []
        for name in images:
            reference = policy.images.get(name, {})
            if index in reference:
                if reference[index] == value:
                    matched.append(name)
                else:
                    expected.append((name, reference[index].hex()))
        rows.append(PcrRow(index, value.hex(), tuple(matched), tuple(expected)))
    return rows


def _certificate_rows(document: AttestationDocument) -> list[CertificateRow]:
    moment = document.timestamp
    rows = []
    for described in describe_path(document.cabundle, document.certificate):
        if isinstance(described, str):
            rows.append(CertificateRow(None, described, None, None, None))
            continue
        start, end = described.not_before, described.not_after
        where = "before" if moment < start else "after" if moment > end else "within"
        # One scale per certificate (a root lives 30 years, a leaf 3 hours): its window
        # and the document time, with a margin so a marker outside still shows.
        low, high = min(start, moment), max(end, moment)
        span = (high - low).total_seconds() or 1.0

        def position(t: datetime, low: datetime = low, span: float = span) -> float:
            return 5 + 90 * (t - low).total_seconds() / span

        rows.append(
            CertificateRow(
                described, None, where, (position(start), position(end)), position(moment)
            )
        )
    return rows


def _stored_endorsements(session: Session, record: dict[str, Any]) -> list[StoredEndorsement]:
    """Each endorsement the entry names, with the bytes the ledger stores under its digest."""
    out = []
    for named in _listed(record.get("endorsements")):
        if not isinstance(named, dict):
            continue
        kind, digest = named.get("kind"), named.get("sha256")
        if not isinstance(kind, str) or not isinstance(digest, str):
            continue
        data = (
            get_endorsement(session, bytes.fromhex(digest))
            if _SHA256_HEX.fullmatch(digest)
            else None
        )
        out.append(StoredEndorsement(kind, digest, data))
    return out


def explain_entry(
    session: Session, index: int, *, schemes: Mapping[str, Scheme] | None = None
) -> EntryView:
    """Raises :class:`EntryNotFound`. ``schemes`` (evidence kind -> scheme): the service's,
    whose trust anchors an SEV-SNP path is shown with when its ARK or ASK did not come with
    the evidence (default: AMD's pinned roots)."""
    entry = get_entry(session, index)
    record = json.loads(entry.data)
    view = EntryView(entry=entry, record=record, evidence=get_evidence(session, index))
    revision = record.get("policy_revision")
    if record.get("kind") == "attestation":
        try:
            view.policy = policy_at(session, revision if isinstance(revision, int) else None)
        except (PolicyError, EntryNotFound, ValueError) as exc:
            view.policy_problem = str(exc)
    # what the entry rests on, whatever its kind (a TPM enrolment names the EK certificate)
    view.endorsements = _stored_endorsements(session, record)
    if view.evidence is not None and view.evidence_kind == _SNP:
        scheme = (schemes or {}).get(_SNP)
        try:
            moment: datetime | None = recorded_instant(record)
        except ValueError:
            moment = None
        try:
            view.snp = explain_snp(
                record,
                view.evidence,
                view.endorsements,
                policy=view.policy,
                scheme=scheme if isinstance(scheme, SnpVerifier) else SnpVerifier(),
                moment=moment,
            )
        except VerifierError as exc:
            view.parse_error = f"{exc.code}: {exc.message}"
    elif view.evidence is not None and view.evidence_kind in _DCAP:
        dcap = (schemes or {}).get(view.evidence_kind)
        try:
            view.dcap = explain_dcap(
                record,
                view.evidence,
                view.endorsements,
                kind=view.evidence_kind,
                policy=view.policy,
                scheme=dcap if isinstance(dcap, DcapVerifier) else _describer(),
                moment=_instant_or_none(record),
            )
        except VerifierError as exc:
            view.parse_error = f"{exc.code}: {exc.message}"
    elif view.evidence is not None and view.is_nitro:
        try:
            _, view.document = parse_evidence(view.evidence)
        except VerifierError as exc:
            view.parse_error = f"{exc.code}: {exc.message}"
    elif view.evidence is not None:
        view.parse_error = f"unsupported: this portal cannot lay out {view.evidence_kind} evidence"
    if view.document is not None:
        if view.policy is not None:
            view.pcrs = _pcr_rows(view.document, view.policy, view.reference_images)
        else:
            view.pcrs = [PcrRow(i, v.hex(), (), ()) for i, v in sorted(view.document.pcrs.items())]
        view.certificates = _certificate_rows(view.document)
        result_hash = record.get("result_hash")
        if isinstance(result_hash, str):
            try:
                view.binding_expected = ResultHash.parse(result_hash).user_data()
                view.binding_holds = view.document.user_data == view.binding_expected
            except ValueError:  # ResultHash.parse: a recorded hash that is not one
                view.binding_expected = None
    return view


def _instant_or_none(record: dict[str, Any]) -> datetime | None:
    try:
        return recorded_instant(record)
    except ValueError:
        return None


@functools.cache
def _describer() -> DcapVerifier:
    """Parses quotes and reads PCK certificates for display (no trust decided)."""
    return DcapVerifier()


#: Reasons that depended on the service's state at ingestion (its challenges) and cannot be
#: judged again from the evidence: everything else can, at the recorded instant.
SERVICE_STATE_CODES = frozenset(
    {
        "nonce_unknown",
        "nonce_replayed",
        "nonce_expired",
        "nonce_missing",
        "nonce_mismatch",
        "nonce_already_used",
    }
)
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def recorded_instant(record: dict[str, Any]) -> datetime:
    """The instant the service judged the entry at (``verified_at``, written by the service
    as ``YYYY-MM-DDTHH:MM:SS.mmmZ``). Raises ValueError for anything else."""
    text = record.get("verified_at")
    if not isinstance(text, str) or not _INSTANT.fullmatch(text):
        raise ValueError(f"verified_at {str(text)[:40]!r} is not an instant the service writes")
    return datetime.fromisoformat(text)


def compare(recorded: str | None, recorded_codes: set[str], status: str, codes: set[str]) -> str:
    """How a re-judgement compares with the record: ``agree``; ``explained`` (the record
    rejected only for the service's state at ingestion, which cannot be judged again);
    ``other_reasons`` (the same verdict for other reasons); or ``differ``."""
    expected = recorded_codes - SERVICE_STATE_CODES
    if status == recorded:
        return "agree" if codes == expected or status != "contraindicated" else "other_reasons"
    if recorded == "contraindicated" and recorded_codes and not expected:
        return "explained"
    return "differ"


def _anchor_note(record: dict[str, Any], held: list[str], *, single: bool) -> str | None:
    """Whether the entry was judged against the trust anchors this service holds now (a
    Nitro entry names one, ``trust_anchor_sha256``; others every ARK held, ``trust_anchors``)."""
    shown = ", ".join(held)
    if single:
        anchor = record.get("trust_anchor_sha256")
        if anchor == held[0]:
            return None
        if anchor is None:
            return (
                "the entry names no trust anchor (recorded before they were); judged against "
                f"this service's {shown}"
            )
        return f"the entry was judged against trust anchor {anchor}; this service holds {shown}"
    anchors = record.get("trust_anchors")
    if not isinstance(anchors, list):
        return f"the entry names no trust anchors; judged against this service's {shown}"
    if sorted(str(a) for a in anchors) == sorted(held):
        return None
    return (
        f"the entry was judged against trust anchors {', '.join(map(str, anchors))}; this "
        f"service holds {shown}"
    )


@dataclass(frozen=True)
class Reverification:
    status: str  # affirming, warning, contraindicated
    error: str | None
    reasons: tuple[tuple[str, str], ...]
    policy_revision: int | None
    agrees: bool  # the same verdict as recorded, or explained by the service's state then
    at: datetime | None = None  # the instant judged at: the recorded one
    #: agree, explained, other_reasons or differ (see :func:`compare`)
    comparison: str = "agree"
    #: the recorded anchor, when it is not the one this service holds (or none was recorded)
    anchor_note: str | None = None


def reverify(view: EntryView, verifier: Scheme) -> Reverification:
    """Run ``verifier`` (the scheme of the entry's evidence kind) again on the stored evidence
    and the endorsements the entry names, at the instant the service judged it
    (``verified_at``), under the recorded policy revision, with the recorded result hash: the
    chain, the validity windows and a document's age are judged exactly as then. Only the
    challenge (the nonce) depended on the service's state at ingestion and is not judged
    again. Raises ValueError for an entry without evidence or without a recorded instant."""
    if view.evidence is None:
        raise ValueError("this entry has no evidence to verify")
    at = recorded_instant(view.record)
    worker = view.record.get("worker")
    kind = view.evidence_kind
    policy = (
        view.policy.for_worker(worker, kind)
        if view.policy is not None and isinstance(worker, str)
        else None
    )
    revision = view.policy.revision_entry if view.policy is not None else None
    # a composite (issue #14): the CPU evidence is judged again, not its devices, so it is
    # compared with the CPU's own status and reasons (those naming no submod)
    recorded = view.record.get("cpu_verdict", view.record.get("verdict"))
    result_hash = None
    text = view.record.get("result_hash")
    if isinstance(text, str):
        try:
            result_hash = ResultHash.parse(text)
        except ValueError:
            result_hash = None
    evidence: Evidence | bytes = (
        view.evidence if view.is_nitro else stored_evidence(kind, view.evidence, view.endorsements)
    )
    status, error, reasons = judge_again(evidence, verifier, policy, result_hash, at=at)
    codes = {
        str(r.get("code"))
        for r in _listed(view.record.get("reasons"))
        if isinstance(r, dict) and "submod" not in r
    }
    comparison = compare(
        recorded if isinstance(recorded, str) else None, codes, status, {c for c, _ in reasons}
    )
    anchor_note = _anchor_note(view.record, anchors_of(verifier), single=view.is_nitro)
    return Reverification(
        status, error, reasons, revision, comparison in ("agree", "explained", "other_reasons"),
        at, comparison, anchor_note,
    )  # fmt: skip


def judge_again(
    evidence: Evidence | bytes,
    verifier: Scheme,
    policy: SchemePolicy | None,
    result_hash: ResultHash | None,
    *,
    at: datetime,
) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
    """(status, error code, reasons) of ``evidence`` judged at ``at`` (the recorded instant)
    under ``policy`` (None: the recorded policy gave the worker no image), exactly as the
    service judges a submission (:func:`attest_ledger.intake.judge`) except for the nonce,
    whose challenge was the service's state. Shared by the portal's re-verify and
    verify-bundle."""
    verdict = judge(
        verifier,
        policy,
        evidence,
        now=at,
        nonce_state=ChallengeState.OPEN,
        nonce=None,  # an open challenge and no nonce to compare: the nonce is not judged
        result_hash=result_hash,  # None: no binding to check
    )
    reasons = tuple((r["code"], r["message"]) for r in verdict.reasons)
    return str(verdict.status), verdict.error, reasons


def _listed(value: Any) -> list[Any]:
    """A recorded list, or none: a proven entry may still hold anything."""
    return value if isinstance(value, list) else []
