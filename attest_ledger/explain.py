"""What an entry says, laid out for a person: the portal's entry page is built from this.

Framework-free. Everything shown comes from the entry's own bytes, its evidence and the
policy revision it names, all of them in the ledger; nothing is taken from the service's
current state except, for "re-verify", the trust anchor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from attest_ledger.policy_store import PolicyConfig, PolicyError
from ledger.errors import EntryNotFound
from ledger.reads import StoredEntry, get_entry, get_evidence
from verifier import (
    DOCUMENT_TIME,
    AttestationDocument,
    CertificateInfo,
    NitroVerifier,
    Policy,
    PolicyViolation,
    ResultHash,
    VerifierError,
    parse_evidence,
)
from verifier.chain import describe_path

_NO_IMAGE = ("no_reference_values", "the recorded policy gave this worker no image")

__all__ = [
    "CertificateRow",
    "EntryView",
    "PcrRow",
    "Reverification",
    "explain_entry",
    "judge_again",
    "policy_at",
    "reverify",
]


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

    @property
    def reference_images(self) -> list[str]:
        if self.policy is None:
            return []
        worker = self.record.get("worker")
        allowed = self.policy.workers.get(worker, frozenset()) if isinstance(worker, str) else ()
        return sorted(allowed) or sorted(self.policy.images)


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


def explain_entry(session: Session, index: int) -> EntryView:
    """Raises :class:`EntryNotFound`."""
    entry = get_entry(session, index)
    record = json.loads(entry.data)
    view = EntryView(entry=entry, record=record, evidence=get_evidence(session, index))
    revision = record.get("policy_revision")
    if record.get("kind") == "attestation":
        try:
            view.policy = policy_at(session, revision if isinstance(revision, int) else None)
        except (PolicyError, EntryNotFound, ValueError) as exc:
            view.policy_problem = str(exc)
    if view.evidence is not None:
        try:
            _, view.document = parse_evidence(view.evidence)
        except VerifierError as exc:
            view.parse_error = f"{exc.code}: {exc.message}"
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
            except VerifierError:
                view.binding_expected = None
    return view


@dataclass(frozen=True)
class Reverification:
    status: str  # affirming, warning, contraindicated
    error: str | None
    reasons: tuple[tuple[str, str], ...]
    policy_revision: int | None
    agrees: bool  # same verdict as recorded


def reverify(view: EntryView, verifier: NitroVerifier) -> Reverification:
    """Run the verifier again on the stored evidence, as of the document's own timestamp,
    under the recorded policy revision, with the recorded result hash. Freshness at
    ingestion (the challenge) depended on the service's state then and is not re-judged."""
    if view.evidence is None:
        raise ValueError("this entry has no evidence to verify")
    worker = view.record.get("worker")
    policy = (
        view.policy.for_worker(worker)
        if view.policy is not None and isinstance(worker, str)
        else None
    )
    revision = view.policy.revision_entry if view.policy is not None else None
    recorded = view.record.get("verdict")
    result_hash = None
    text = view.record.get("result_hash")
    if isinstance(text, str):
        try:
            result_hash = ResultHash.parse(text)
        except VerifierError:
            result_hash = None
    status, error, reasons = judge_again(view.evidence, verifier, policy, result_hash)
    return Reverification(status, error, reasons, revision, recorded == status)


def judge_again(
    evidence: bytes, verifier: NitroVerifier, policy: Policy | None, result_hash: ResultHash | None
) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
    """(status, error code, reasons) of ``evidence`` judged as of its own timestamp under
    ``policy`` (None: the recorded policy gave the worker no image, which fails closed).
    Shared by the portal's re-verify and verify-bundle."""
    if policy is None:
        return "contraindicated", None, (_NO_IMAGE,)
    try:
        result = verifier.verify(evidence, at=DOCUMENT_TIME, policy=policy, result_hash=result_hash)
    except PolicyViolation as exc:
        return "contraindicated", exc.code, tuple((v.code, v.message) for v in exc.violations)
    except VerifierError as exc:
        return "contraindicated", exc.code, ((exc.code, exc.message),)
    return str(result.status), None, ()
