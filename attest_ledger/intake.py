"""The glue that turns a submitted attestation into a ledger entry. Framework-free: the web
API and the command line both call :meth:`Intake.submit`.

For every submission the service appends a verdict, affirming or contraindicated alike,
since auditors need the failures too. Only problems with the request itself (bad JSON, a
missing field, an oversize body) are refused without an entry; anything wrong with the
evidence (unparseable, forged, expired, wrong image, stale, wrong nonce, unbound result) is
a contraindicated verdict with its reasons, and the evidence is kept beside it.

The verdict record (the entry's canonical JSON)::

    {"v": 1, "kind": "attestation", "worker": ..., "verdict": "affirming" | "warning" |
     "contraindicated", "error": <verifier error code or null>, "reasons": [{"code", "message"}],
     "result_hash": "sha256:...", "job": {...}, "verified_at": ISO-8601,
     "policy_revision": <ledger index of the policy in force>, "policy": <policy id>,
     "image": <matched image>, "evidence_kind", "module_id", "pcr0", "document_time",
     "nonce", "trust_anchor_sha256", "evidence_sha256"}
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger import challenges
from attest_ledger.challenges import ChallengeState
from attest_ledger.models import IdempotencyKey
from attest_ledger.policy_store import PolicyStore
from ledger.append import Appended
from ledger.batcher import AppendBatcher
from ledger.entry import NewEntry
from ledger.models import Entry
from ledger.reads import get_entry
from verifier import (
    AttestationDocument,
    AttestationResult,
    NitroVerifier,
    Policy,
    PolicyViolation,
    ResultHash,
    Status,
    UnsafeAcceptAnyPolicy,
    UnsafePolicyWarning,
    VerifierError,
    parse_evidence,
)
from verifier.timefmt import iso_utc

__all__ = [
    "RECORD_VERSION",
    "Client",
    "EvidenceConflict",
    "IdempotencyConflict",
    "Intake",
    "IntakeError",
    "NonceRace",
    "Receipt",
    "Submission",
    "Verdict",
    "judge",
]

RECORD_VERSION = 1


class IntakeError(Exception):
    code = "intake_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IdempotencyConflict(IntakeError):
    code = "idempotency_conflict"


class EvidenceConflict(IntakeError):
    code = "evidence_conflict"


class NonceRace(IntakeError):
    code = "nonce_already_used"


@dataclass(frozen=True)
class Client:
    id: int
    name: str


@dataclass(frozen=True)
class Submission:
    document: bytes
    result_hash: ResultHash
    job: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    #: SHA-256 of the request as sent, to tell an idempotent retry from a reused key.
    request_sha256: bytes = b""


@dataclass(frozen=True)
class Verdict:
    status: Status
    error: str | None
    reasons: tuple[dict[str, str], ...]
    document: AttestationDocument | None
    result: AttestationResult | None


@dataclass(frozen=True)
class Receipt:
    index: int
    leaf_hash: bytes
    record: Mapping[str, Any]
    #: The evidence was already in the ledger; ``record`` is the stored entry's.
    duplicate: bool = False
    #: An idempotent retry: the same request was already answered with this entry.
    replayed: bool = False
    verify_seconds: float = 0.0
    append_seconds: float = 0.0


def judge(
    verifier: NitroVerifier,
    policy: Policy | None,
    document: bytes,
    *,
    now: datetime,
    nonce_state: ChallengeState,
    nonce: bytes | None,
    result_hash: ResultHash,
) -> Verdict:
    """Verify ``document`` as of ``now`` and collect every reason it falls short."""
    reasons: list[dict[str, str]] = []
    if policy is None:
        reasons.append(
            {"code": "no_reference_values", "message": "this worker may attest no enclave image"}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            policy = UnsafeAcceptAnyPolicy()  # only to report what else is wrong
    expected_nonce = nonce if nonce_state is ChallengeState.OPEN else None
    result: AttestationResult | None = None
    parsed: AttestationDocument | None = None
    error: str | None = None
    try:
        result = verifier.verify(
            document, at=now, policy=policy, nonce=expected_nonce, result_hash=result_hash
        )
        parsed = result.document
    except PolicyViolation as exc:
        result, parsed, error = exc.result, exc.document, exc.code
        reasons.extend({"code": v.code, "message": v.message} for v in exc.violations)
    except VerifierError as exc:
        parsed, error = exc.document, exc.code
        reasons.append({"code": exc.code, "message": exc.message})
    if nonce_state is not ChallengeState.OPEN and (parsed is not None or error is None):
        reasons.append(_nonce_reason(nonce_state, nonce))
    status = result.status if result is not None and not reasons else Status.CONTRAINDICATED
    return Verdict(status, error, tuple(reasons), parsed, result)


def _record_of(entry: NewEntry) -> dict[str, Any]:
    """The record as stored: with the evidence digest the entry commits to."""
    return dict(json.loads(entry.data))


def _nonce_reason(state: ChallengeState, nonce: bytes | None) -> dict[str, str]:
    if nonce is None:
        return {
            "code": "nonce_missing",
            "message": "the document carries no nonce; ask for a challenge",
        }
    return {
        ChallengeState.UNKNOWN: {
            "code": "nonce_unknown",
            "message": "the nonce was not issued to this worker",
        },
        ChallengeState.EXPIRED: {
            "code": "nonce_expired",
            "message": "the challenge expired before the submission",
        },
        ChallengeState.USED: {
            "code": "nonce_replayed",
            "message": "the challenge was already used",
        },
    }[state]


def build_record(
    *,
    worker: str,
    verdict: Verdict,
    submission: Submission,
    verified_at: datetime,
    policy_revision: int | None,
    policy: Policy | None,
) -> dict[str, Any]:
    document, result = verdict.document, verdict.result
    return {
        "v": RECORD_VERSION,
        "kind": "attestation",
        "worker": worker,
        "verdict": str(verdict.status),
        "error": verdict.error,
        "reasons": list(verdict.reasons),
        "result_hash": str(submission.result_hash),
        "job": dict(submission.job),
        "verified_at": iso_utc(verified_at),
        "policy_revision": policy_revision,
        "policy": policy.policy_id if policy is not None else None,
        "image": result.matched_image if result is not None else None,
        "evidence_kind": str(document.kind) if document is not None else None,
        "module_id": document.module_id if document is not None else None,
        "pcr0": document.pcrs[0].hex() if document is not None and 0 in document.pcrs else None,
        "document_time": document.timestamp.isoformat(timespec="milliseconds")
        if document is not None
        else None,
        "nonce": document.nonce.hex()
        if document is not None and document.nonce is not None
        else None,
        "trust_anchor_sha256": result.trust_anchor_sha256 if result is not None else None,
    }


class Intake:
    def __init__(
        self,
        *,
        verifier: NitroVerifier,
        policies: PolicyStore,
        batcher: AppendBatcher,
        session_factory: sessionmaker[Session],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        append_timeout: float = 30.0,
    ) -> None:
        self.verifier = verifier
        self.policies = policies
        self.batcher = batcher
        self.sessions = session_factory
        self.clock = clock
        self.append_timeout = append_timeout

    def submit(self, client: Client, submission: Submission) -> Receipt:
        """Judge and record one submission; return its receipt once the entry is durable.

        Raises :class:`IdempotencyConflict` (key reused for another request),
        :class:`EvidenceConflict` (the evidence is already recorded for another worker),
        :class:`NonceRace` (a concurrent submission used the same challenge), and the
        ledger's errors (``LedgerBusy``) if the ledger cannot take it now.
        """
        now = self.clock()
        digest = hashlib.sha256(submission.document).digest()
        with self.sessions() as session:
            earlier = self._earlier_answer(session, client, submission, digest)
            if earlier is not None:
                return earlier
            config = self.policies.current(session)
            try:
                _, parsed = parse_evidence(submission.document)
                nonce = parsed.nonce
            except VerifierError:
                nonce = None
            state = challenges.state_of(session, client.id, nonce, now)
        policy = config.for_worker(client.name)
        started = time.perf_counter()
        verdict = judge(
            self.verifier,
            policy,
            submission.document,
            now=now,
            nonce_state=state,
            nonce=nonce,
            result_hash=submission.result_hash,
        )
        record = build_record(
            worker=client.name,
            verdict=verdict,
            submission=submission,
            verified_at=now,
            policy_revision=config.revision_entry,
            policy=policy,
        )
        entry = NewEntry.from_record(record, evidence=submission.document)
        verified = time.perf_counter()

        def after(session: Session, appended: Appended) -> None:
            if (
                not appended.duplicate
                and state is ChallengeState.OPEN
                and nonce is not None
                and not challenges.consume(session, client.id, nonce, now)
            ):
                raise NonceRace("the challenge was used by a concurrent submission")
            if submission.idempotency_key is not None:
                session.add(
                    IdempotencyKey(
                        client_id=client.id,
                        key=submission.idempotency_key,
                        request_sha256=submission.request_sha256,
                        entry_idx=appended.index,
                    )
                )
                try:
                    session.flush()
                except IntegrityError:
                    raise IdempotencyConflict("the idempotency key was used concurrently") from None

        appended = self.batcher.append(entry, after=after, timeout=self.append_timeout)
        if appended.duplicate:
            with self.sessions() as session:
                return self._stored_receipt(session, appended.index, duplicate=True)
        return Receipt(
            appended.index,
            appended.leaf_hash,
            _record_of(entry),
            verify_seconds=verified - started,
            append_seconds=time.perf_counter() - verified,
        )

    def _earlier_answer(
        self, session: Session, client: Client, submission: Submission, digest: bytes
    ) -> Receipt | None:
        if submission.idempotency_key is not None:
            earlier = session.get(IdempotencyKey, (client.id, submission.idempotency_key))
            if earlier is not None:
                if earlier.request_sha256 != submission.request_sha256:
                    raise IdempotencyConflict(
                        "this idempotency key was already used for a different request"
                    )
                return self._stored_receipt(session, earlier.entry_idx, replayed=True)
        existing = session.execute(
            select(Entry.idx, Entry.worker).where(Entry.evidence_sha256 == digest)
        ).first()
        if existing is not None:
            if existing.worker != client.name:
                raise EvidenceConflict("this evidence is already recorded for another worker")
            return self._stored_receipt(session, existing.idx, duplicate=True)
        return None

    def _stored_receipt(self, session: Session, index: int, **flags: bool) -> Receipt:
        stored = get_entry(session, index)
        return Receipt(index, stored.leaf_hash, json.loads(stored.data), **flags)
