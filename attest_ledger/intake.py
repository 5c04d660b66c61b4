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
     "nonce", "trust_anchor_sha256", "evidence_sha256", "ear": <the signed EAR, a compact JWS>}

Every verdict is also a signed EAR (:mod:`attest_ledger.ear`), built from the record and
carried in it, so that the entry's leaf commits to it. Entries from before EARs have none.

One inference, one verdict: a submission may carry, beside the CPU TEE's evidence, the
evidence of its devices (NVIDIA GPUs and NVSwitches, ``devices``). Device ``i``'s SPDM nonce
must be :func:`verifier.binding.gpu_nonce` of the challenge the CPU evidence carries, the
result hash and ``i``, so that a device's report cannot be replayed beside another CPU's
evidence or another result. Each device is judged alone under the worker's ``nvidia-gpu``
policy, and the record adds::

    "cpu_verdict": <the CPU evidence's own status>, "verdict": <the worst of all, and
     contraindicated if a device the policy requires is missing>,
    "reasons": [<the CPU's, as before>, {"code", "message", "submod": "composite" | "gpu0"...}],
    "devices": [{"submod": "gpu0" | "switch<i>", "index", "evidence_kind", "verdict", "error",
                 "image", "policy", "nonce", "claims", "trust_anchors", "evidence_sha256",
                 "endorsements"}]

Each device's report and endorsements are stored content-addressed beside the entry
(:func:`ledger.entry.endorsement_digests` names them). The EAR has a submod per device.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy.orm import Session, sessionmaker

from attest_ledger import challenges
from attest_ledger.challenges import ChallengeState
from attest_ledger.collateral import CollateralSource
from attest_ledger.ear import EarSigner, build_ear, compose_status
from attest_ledger.policy_store import PolicyStore
from ledger.append import Appended
from ledger.batcher import AppendBatcher, FollowUp
from ledger.db import driver_connection
from ledger.entry import MAX_ENTRY_BYTES, NewEntry, storable_text
from ledger.reads import get_entry
from verifier import (
    AttestationDocument,
    AttestationResult,
    Claims,
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    NitroVerifier,
    PolicyViolation,
    ResultHash,
    Scheme,
    SchemePolicy,
    SnpVerifier,
    Status,
    TrustAnchor,
    UnsafeAcceptAnyPolicy,
    UnsafeAcceptAnySnpPolicy,
    UnsafePolicyWarning,
    VerifierError,
    parse_report,
)
from verifier.binding import gpu_nonce
from verifier.nitro.policy import NITRO_KINDS
from verifier.nvidia import NvidiaPolicy, NvidiaVerifier, UnsafeAcceptAnyNvidiaPolicy
from verifier.tdx import (
    DcapVerifier,
    UnsafeAcceptAnySgxPolicy,
    UnsafeAcceptAnyTdxPolicy,
    parse_quote,
)
from verifier.timefmt import iso_utc
from verifier.tpm import TpmVerifier, UnsafeAcceptAnyTpmPolicy
from verifier.tpm import parse_quote as parse_tpm_quote

__all__ = [
    "RECORD_VERSION",
    "Client",
    "DeviceSubmission",
    "IdempotencyConflict",
    "Intake",
    "IntakeError",
    "NonceRace",
    "Receipt",
    "RecordTooLarge",
    "Submission",
    "UnsupportedKind",
    "Verdict",
    "judge",
    "judge_devices",
    "to_milliseconds",
    "trust_anchors_of",
]

RECORD_VERSION = 1
#: the challenge nonce's size: a report_data scheme carries it in its first 32 bytes
CHALLENGE_BYTES = 32


class IntakeError(Exception):
    code = "intake_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IdempotencyConflict(IntakeError):
    code = "idempotency_conflict"


class NonceRace(IntakeError):
    code = "nonce_already_used"


class RecordTooLarge(IntakeError):
    """The verdict record would not fit one ledger entry (too many devices and reasons)."""

    code = "record_too_large"


class UnsupportedKind(IntakeError):
    """The submission names an evidence kind this service has no scheme for."""

    code = "unsupported_evidence_kind"


@dataclass(frozen=True)
class Client:
    id: int
    name: str


@dataclass(frozen=True)
class DeviceSubmission:
    """A device's evidence beside the CPU evidence (an NVIDIA GPU's SPDM report)."""

    kind: str
    data: bytes
    endorsements: tuple[tuple[str, bytes], ...] = ()


class DeviceCollateral(Protocol):
    """Completes a device's evidence with kept collateral (its RIMs) before it is judged."""

    def complete(self, evidence: Evidence, at: datetime) -> Evidence: ...


@dataclass(frozen=True)
class Submission:
    #: the evidence itself (a Nitro document, an SNP report...)
    document: bytes
    result_hash: ResultHash
    job: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    #: SHA-256 of the request as sent, to tell an idempotent retry from a reused key.
    request_sha256: bytes = b""
    #: the evidence kind (verifier registry name)
    kind: str = "aws-nitro-enclave"
    #: (kind, bytes) of what came with the evidence: certificates, CRLs...
    endorsements: tuple[tuple[str, bytes], ...] = ()
    #: the devices (GPUs, NVSwitches) of the same inference, in nonce-index order
    devices: tuple[DeviceSubmission, ...] = ()


@dataclass(frozen=True)
class Verdict:
    status: Status
    error: str | None
    reasons: tuple[dict[str, str], ...]
    #: what the evidence says, parsed (even when it was then rejected), if parsing got there
    claims: Claims | None
    result: AttestationResult | None

    @property
    def document(self) -> AttestationDocument | None:
        """The parsed Nitro document, for Nitro evidence."""
        document: AttestationDocument | None = getattr(self.claims, "document", None)
        return document


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
    scheme: Scheme,
    policy: SchemePolicy | None,
    evidence: Evidence | bytes,
    *,
    now: datetime,
    nonce_state: ChallengeState,
    nonce: bytes | None,
    result_hash: ResultHash | None,
    unbound_message: str = "the document carries no nonce; ask for a challenge",
) -> Verdict:
    """Verify ``evidence`` (of any kind; bytes: a Nitro document) with ``scheme`` as of
    ``now`` and collect every reason it falls short. ``policy`` None: the worker may attest
    no image of this kind, which fails closed (and what else is wrong is still reported).
    ``unbound_message`` says why a missing nonce matters (``nonce_missing``)."""
    if isinstance(evidence, bytes):
        evidence = Evidence(EvidenceKind.AWS_NITRO_ENCLAVE, evidence)
    reasons: list[dict[str, str]] = []
    if policy is None:
        reasons.append(
            {"code": "no_reference_values", "message": "this worker may attest no such image"}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            policy = _accept_any(evidence.kind)  # only to report what else is wrong
    expected_nonce = nonce if nonce_state is ChallengeState.OPEN else None
    result: AttestationResult | None = None
    claims: Claims | None = None
    error: str | None = None
    try:
        if isinstance(scheme, NitroVerifier):  # its documents carry their chain
            result = scheme.verify(
                evidence.data, at=now, policy=policy, nonce=expected_nonce, result_hash=result_hash
            )
        else:
            result = scheme.verify(
                evidence, at=now, policy=policy, nonce=expected_nonce, result_hash=result_hash
            )
        claims = result.claims
    except PolicyViolation as exc:
        result, claims, error = exc.result, exc.result.claims, exc.code
        reasons.extend({"code": v.code, "message": v.message} for v in exc.violations)
    except VerifierError as exc:
        claims, error = exc.claims, exc.code
        reasons.append({"code": exc.code, "message": exc.message})
    if nonce_state is not ChallengeState.OPEN and (claims is not None or error is None):
        reasons.append(_nonce_reason(nonce_state, nonce, unbound_message))
    status = result.status if result is not None and not reasons else Status.CONTRAINDICATED
    return Verdict(status, error, tuple(reasons), claims, result)


def trust_anchors_of(scheme: Scheme) -> list[TrustAnchor]:
    """Every trust anchor ``scheme`` holds, each scheme keeping them its own way."""
    if isinstance(scheme, NitroVerifier):
        return [scheme.trust_anchor]
    if isinstance(scheme, SnpVerifier):
        return [a.anchor for a in scheme.trust_store.all_anchors()]
    if isinstance(scheme, DcapVerifier):
        return list(scheme.trust_anchors)
    if isinstance(scheme, TpmVerifier):
        return list(scheme.all_trust_anchors)
    if isinstance(scheme, NvidiaVerifier):  # device roots, and the RIM roots
        return [*scheme.trust_anchors, *scheme.rim_anchors]
    raise TypeError(f"no trust anchors known for {type(scheme).__name__}")


def anchors_of(scheme: Scheme) -> list[str]:
    """The SHA-256 of every trust anchor ``scheme`` holds (what a bundle must carry)."""
    return sorted({a.fingerprint for a in trust_anchors_of(scheme)})


#: what a device's claims ``arch`` makes it: a GPU or an NVSwitch (LS10)
_GPU_ARCHS, _SWITCH_ARCHS = frozenset({"HOPPER", "BLACKWELL"}), frozenset({"LS10"})


@dataclass(frozen=True)
class JudgedDevice:
    """One device's verdict beside the CPU evidence, and what it was judged with."""

    index: int
    submod: str
    evidence: Evidence
    verdict: Verdict
    policy: SchemePolicy | None
    nonce: bytes | None
    trust_anchors: tuple[str, ...]

    @property
    def arch(self) -> str | None:
        arch = getattr(self.verdict.claims, "arch", None)
        return arch if isinstance(arch, str) else None


def judge_devices(
    schemes: Mapping[str, Scheme],
    policy: SchemePolicy | None,
    devices: Sequence[Evidence],
    *,
    now: datetime,
    challenge: bytes | None,
    result_hash: ResultHash,
) -> list[JudgedDevice]:
    """Judge each device's evidence as of ``now`` under the worker's device ``policy``, its
    nonce expected to be ``gpu_nonce(challenge, result_hash, index)``. ``challenge``: the
    32-byte challenge the CPU evidence carries (None if it carries none: no device can then
    be bound to it, and each says so)."""
    out = []
    for index, evidence in enumerate(devices):
        scheme = schemes[str(evidence.kind)]
        expected = gpu_nonce(challenge, result_hash, index) if challenge is not None else None
        verdict = judge(
            scheme,
            policy,
            evidence,
            now=now,
            nonce_state=ChallengeState.OPEN if expected is not None else ChallengeState.UNKNOWN,
            nonce=expected,
            result_hash=None,  # a device binds the result through its nonce only
            unbound_message="the CPU evidence carries no 32-byte challenge to bind this "
            "device's report to",
        )
        arch = getattr(verdict.claims, "arch", None)
        submod = f"{'switch' if arch in _SWITCH_ARCHS else 'gpu'}{index}"
        anchors = tuple(anchors_of(scheme))
        out.append(JudgedDevice(index, submod, evidence, verdict, policy, expected, anchors))
    return out


def composition_reasons(
    policy: SchemePolicy | None, devices: Sequence[JudgedDevice]
) -> list[dict[str, str]]:
    """What the devices as a whole lack under the worker's device ``policy``: the GPUs and
    NVSwitches it requires, counted by what each device's certificate says it is."""
    if not isinstance(policy, NvidiaPolicy):
        return []
    gpus = sum(1 for d in devices if d.arch in _GPU_ARCHS)
    switches = sum(1 for d in devices if d.arch in _SWITCH_ARCHS)
    missing = []
    if gpus < policy.min_gpus:
        missing.append(f"{policy.min_gpus} GPU(s) required, {gpus} given")
    if switches < policy.min_switches:
        missing.append(f"{policy.min_switches} NVSwitch(es) required, {switches} given")
    if not missing:
        return []
    return [
        {
            "code": "devices_missing",
            "message": f"policy {policy.policy_id}: {'; '.join(missing)}",
            "submod": "composite",
        }
    ]


#: the longest message a merged device reason keeps
_MERGED_MESSAGE = 400


def _merged(reasons: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """One reason per code, in the order the codes first appear: a device whose 60 blocks
    all mismatch records one ``measurement_mismatch`` (the first message, and how many more),
    so that 16 such devices still fit one entry. Every code is kept; the portal and the
    bundles judge the stored report again to name every index."""
    out: dict[str, dict[str, str]] = {}
    more: dict[str, int] = {}
    for reason in reasons:
        code = str(reason.get("code"))
        if code in out:
            more[code] = more.get(code, 0) + 1
        else:
            out[code] = dict(reason)
    for code, count in more.items():
        message = out[code].get("message", "")
        out[code]["message"] = f"{message[:_MERGED_MESSAGE]} (and {count} more of this code)"
    return list(out.values())


def compose_record(
    record: dict[str, Any],
    devices: Sequence[JudgedDevice],
    composition: Sequence[Mapping[str, str]],
) -> None:
    """Add the devices to a CPU verdict's ``record``: ``cpu_verdict`` keeps the CPU's own
    status, ``verdict`` becomes the worst of all (contraindicated if ``composition`` gives a
    reason), and every device's reasons join the record's, each naming its submod."""
    record["cpu_verdict"] = record["verdict"]
    reasons = list(record["reasons"])
    reasons.extend(dict(reason) for reason in composition)
    listed = []
    for device in devices:
        verdict, policy = device.verdict, device.policy
        reasons.extend({**reason, "submod": device.submod} for reason in _merged(verdict.reasons))
        listed.append(
            {
                "submod": device.submod,
                "index": device.index,
                "evidence_kind": str(device.evidence.kind),
                "verdict": str(verdict.status),
                "error": verdict.error,
                "image": verdict.result.matched_reference if verdict.result is not None else None,
                "policy": policy.policy_id if policy is not None else None,
                "nonce": device.nonce.hex() if device.nonce is not None else None,
                "claims": verdict.claims.to_dict() if verdict.claims is not None else None,
                "trust_anchors": sorted(device.trust_anchors),
                "evidence_sha256": hashlib.sha256(device.evidence.data).hexdigest(),
                "endorsements": [
                    {"kind": str(e.kind), "sha256": e.sha256} for e in device.evidence.endorsements
                ],
            }
        )
    statuses = [str(record["cpu_verdict"]), *(str(d["verdict"]) for d in listed)]
    record["verdict"] = str(Status.CONTRAINDICATED) if composition else compose_status(statuses)
    record["reasons"] = reasons
    record["devices"] = listed


def _accept_any(kind: str) -> SchemePolicy:
    if kind == EvidenceKind.AMD_SEV_SNP:
        return UnsafeAcceptAnySnpPolicy()
    if kind == EvidenceKind.INTEL_TDX:
        return UnsafeAcceptAnyTdxPolicy()
    if kind == EvidenceKind.INTEL_SGX:
        return UnsafeAcceptAnySgxPolicy()
    if kind == EvidenceKind.TPM2_QUOTE:
        return UnsafeAcceptAnyTpmPolicy()
    if kind == EvidenceKind.NVIDIA_GPU:
        return UnsafeAcceptAnyNvidiaPolicy()
    return UnsafeAcceptAnyPolicy()


def carried_nonce(evidence: Evidence, scheme: Scheme) -> bytes | None:
    """The challenge nonce the evidence carries, read before it is verified (to find the
    challenge): a Nitro document's ``nonce``, the first half of an SNP report's report_data.
    None if the evidence does not parse that far."""
    try:
        if isinstance(scheme, NitroVerifier):
            return scheme.parse(evidence.data)[1].nonce
        if evidence.kind == EvidenceKind.AMD_SEV_SNP:
            return parse_report(evidence.data).report_data[:CHALLENGE_BYTES]
        if evidence.kind in (EvidenceKind.INTEL_TDX, EvidenceKind.INTEL_SGX):
            return parse_quote(evidence.data).report_data[:CHALLENGE_BYTES]
        if evidence.kind == EvidenceKind.TPM2_QUOTE:  # the nonce, or nonce || result binding
            extra_data = parse_tpm_quote(evidence.data).attest.extra_data
            return extra_data[:CHALLENGE_BYTES] if len(extra_data) >= CHALLENGE_BYTES else None
    except VerifierError:
        return None
    return None


def _vector(verdict: Verdict) -> dict[str, int]:
    return verdict.result.trustworthiness_vector() if verdict.result is not None else {}


def _record_of(entry: NewEntry) -> dict[str, Any]:
    """The record as stored: with the evidence digest the entry commits to."""
    return dict(json.loads(entry.data))


def _nonce_reason(state: ChallengeState, nonce: bytes | None, unbound: str) -> dict[str, str]:
    if nonce is None:
        return {"code": "nonce_missing", "message": unbound}
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


@dataclass(frozen=True)
class _Known:
    revision: int | None
    key_entry: int | None
    key_request: bytes | None
    duplicate_idx: int | None
    challenge: challenges.ChallengeRow | None


_KNOWN_QUERY = """
    SELECT
        (SELECT revision_entry FROM policy_settings WHERE id = 1),
        k.entry_idx, k.request_sha256, e.idx,
        c.client_id, c.expires_at, c.used_at
    FROM (SELECT 1) AS one
    LEFT JOIN idempotency_keys k ON k.client_id = %(client)s AND k.key = %(key)s
    LEFT JOIN ledger_entries e ON e.evidence_sha256 = %(digest)s
        AND coalesce(e.worker, '') = %(worker)s
    LEFT JOIN challenges c ON c.nonce = %(nonce)s
"""


class _KnownRow(NamedTuple):
    revision: int | None
    key_entry: int | None
    key_request: bytes | None
    duplicate_idx: int | None
    challenge_client: int | None
    challenge_expires: datetime | None
    challenge_used: datetime | None


# The bookkeeping of a whole append batch, in its transaction and in one statement: consume
# the challenges (a conditional update: of two submissions with the same nonce only one
# succeeds) and remember the idempotency keys. The counts tell whether every row was taken.
_BOOKKEEPING = """
WITH consumed AS (
    UPDATE challenges AS c SET used_at = u.at
    FROM unnest(%(nonces)s::bytea[], %(clients)s::int8[], %(ats)s::timestamptz[])
        AS u(nonce, client_id, at)
    WHERE c.nonce = u.nonce AND c.client_id = u.client_id
        AND c.used_at IS NULL AND c.expires_at > u.at
    RETURNING 1
), remembered AS (
    INSERT INTO idempotency_keys (client_id, key, request_sha256, entry_idx)
    SELECT * FROM unnest(
        %(key_clients)s::int8[], %(keys)s::text[], %(requests)s::bytea[], %(entries)s::int8[]
    )
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM consumed), (SELECT count(*) FROM remembered)
"""


@dataclass(frozen=True, slots=True)
class _Bookkeeping:
    """What a submission leaves besides its entry: the challenge it used, its key."""

    client_id: int
    nonce: bytes | None  # the open challenge to consume, if any
    at: datetime
    key: str | None
    request_sha256: bytes


def _keep_books(transaction: Session, items: list[tuple[Appended, Any]]) -> None:
    """The batcher's follow-up for a batch of submissions (see :class:`FollowUp`)."""
    consume = [
        (books.nonce, books.client_id, books.at)
        for appended, books in items
        if books.nonce is not None and not appended.duplicate
    ]
    remember = [
        (books.client_id, books.key, books.request_sha256, appended.index)
        for appended, books in items
        if books.key is not None
    ]
    if not consume and not remember:
        return
    nonces, clients, ats = (list(c) for c in zip(*consume, strict=True)) if consume else ([],) * 3
    key_clients, keys, requests, entries = (
        (list(c) for c in zip(*remember, strict=True)) if remember else ([],) * 4
    )
    with driver_connection(transaction).cursor() as cursor:
        cursor.execute(
            _BOOKKEEPING,
            {
                "nonces": nonces,
                "clients": clients,
                "ats": ats,
                "key_clients": key_clients,
                "keys": keys,
                "requests": requests,
                "entries": entries,
            },
        )
        consumed, remembered = cursor.fetchone() or (0, 0)
    if consumed != len(consume):
        raise NonceRace("the challenge was used by a concurrent submission")
    if remembered != len(remember):
        raise IdempotencyConflict("the idempotency key was used concurrently")


def to_milliseconds(moment: datetime) -> datetime:
    """``moment`` truncated to whole milliseconds, as ``verified_at`` is written."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def build_record(
    *,
    worker: str,
    verdict: Verdict,
    submission: Submission,
    verified_at: datetime,
    policy_revision: int | None,
    policy: SchemePolicy | None,
    trust_anchors: Sequence[str],
    nonce: bytes | None = None,
) -> dict[str, Any]:
    """The verdict record. ``verified_at`` must be the exact instant the verifier judged at
    (whole milliseconds: it is written with millisecond precision), and ``trust_anchors`` the
    SHA-256 of every anchor it held, whatever the outcome: a proof bundle judges every entry
    again, rejections before the policy step included, at that instant against those anchors.

    A Nitro record keeps its original shape (``module_id``, ``pcr0``, ``document_time``,
    ``nonce``, one ``trust_anchor_sha256``); evidence of any other kind records the scheme's
    claims summary (``claims``), the nonce it carried and ``trust_anchors`` (a list)."""
    claims, result = verdict.claims, verdict.result
    document = verdict.document
    kind = str(claims.evidence_kind) if claims is not None else submission.kind
    record: dict[str, Any] = {
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
        "image": result.matched_reference if result is not None else None,
        "evidence_kind": kind,
    }
    if kind in NITRO_KINDS:
        record.update(
            {
                "module_id": document.module_id if document is not None else None,
                "pcr0": document.pcrs[0].hex()
                if document is not None and 0 in document.pcrs
                else None,
                "document_time": document.timestamp.isoformat(timespec="milliseconds")
                if document is not None
                else None,
                "nonce": document.nonce.hex()
                if document is not None and document.nonce is not None
                else None,
                "trust_anchor_sha256": trust_anchors[0],
            }
        )
    else:
        record.update(
            {
                "claims": claims.to_dict() if claims is not None else None,
                "nonce": nonce.hex() if nonce is not None else None,
                "trust_anchors": sorted(trust_anchors),
            }
        )
    return record


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
        schemes: Mapping[str, Scheme] | None = None,
        collateral: CollateralSource | None = None,
        ear_signer: EarSigner,
        device_schemes: Mapping[str, Scheme] | None = None,
        device_collateral: DeviceCollateral | None = None,
    ) -> None:
        self.verifier = verifier
        #: device kind -> the scheme that judges a device's evidence beside the CPU's
        self.device_schemes: dict[str, Scheme] = dict(device_schemes or {})
        #: completes a device's evidence with its RIMs from what the service keeps
        self.device_collateral = device_collateral
        #: signs the EAR of every verdict
        self.ear_signer = ear_signer
        #: completes a TDX or SGX quote's collateral from what the service keeps
        self.collateral = collateral
        #: evidence kind -> the scheme that judges it (Nitro's is ``verifier``)
        self.schemes: dict[str, Scheme] = {
            str(EvidenceKind.AWS_NITRO_ENCLAVE): verifier,
            str(EvidenceKind.AWS_NITRO_TPM): verifier,
            **(schemes or {}),
        }
        self.policies = policies
        self.batcher = batcher
        self.sessions = session_factory
        self.clock = clock
        self.append_timeout = append_timeout

    def submit(
        self, client: Client, submission: Submission, *, session: Session | None = None
    ) -> Receipt:
        """Judge and record one submission; return its receipt once the entry is durable.

        ``session`` (read-only here) saves opening one; the entry itself is appended and
        committed in a transaction of the batcher's.

        Raises :class:`IdempotencyConflict` (key reused for another request),
        :class:`NonceRace` (a concurrent submission used the same challenge), and the
        ledger's errors (``LedgerBusy``) if the ledger cannot take it now.
        """
        now = to_milliseconds(self.clock())  # the instant recorded is exactly the one judged at
        digest = hashlib.sha256(submission.document).digest()
        scheme = self.schemes.get(submission.kind)
        if scheme is None:
            raise UnsupportedKind(f"this service judges no evidence of kind {submission.kind!r}")
        evidence = Evidence(
            EvidenceKind(submission.kind),
            submission.document,
            tuple(Endorsement(EndorsementKind(k), d) for k, d in submission.endorsements),
        )
        if self.collateral is not None and isinstance(scheme, DcapVerifier):
            evidence = self.collateral.complete(evidence, now)
        nonce = carried_nonce(evidence, scheme)
        own_session = session is None
        reads = self.sessions() if session is None else session
        try:
            known = self._what_is_known(reads, client, submission, digest, nonce)
            earlier = self._earlier_answer(reads, client, submission, known)
            if earlier is not None:
                return earlier
            config = self.policies.current(reads, revision=known.revision)
            state = challenges.classify(client.id, known.challenge, now)
        finally:
            if own_session:
                reads.close()
        # a retry answered from the ledger needs no RIM completed (writes, perhaps fetches)
        devices = self._device_evidence(submission, now)
        policy = config.for_worker(client.name, submission.kind)
        started = time.perf_counter()
        verdict = judge(
            scheme,
            policy,
            evidence,
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
            trust_anchors=anchors_of(scheme),
            nonce=nonce,
        )
        judged = self._judge_devices(client, config, devices, now, nonce, submission, record)
        record["ear"] = self.ear_signer.sign(
            build_ear(
                record,
                evidence_sha256=digest.hex(),
                trustworthiness_vector=_vector(verdict),
                device_vectors={d.submod: _vector(d.verdict) for d in judged},
            )
        )
        entry = NewEntry.from_record(  # what judged it: as sent, and what the service added
            record,
            evidence=submission.document,
            endorsements=[(str(e.kind), e.data) for e in evidence.endorsements],
            blobs=[
                blob
                for d in judged
                for blob in (d.evidence.data, *(e.data for e in d.evidence.endorsements))
            ],
        )
        verified = time.perf_counter()
        if len(entry.data) > MAX_ENTRY_BYTES:  # bounded by the API's limits; never appended
            raise RecordTooLarge(
                f"the verdict record would be {len(entry.data)} bytes, more than a ledger "
                f"entry's {MAX_ENTRY_BYTES}: submit fewer devices"
            )

        books = _Bookkeeping(
            client.id,
            nonce if state is ChallengeState.OPEN else None,
            now,
            submission.idempotency_key,
            submission.request_sha256,
        )
        appended = self.batcher.append(
            entry, after=FollowUp(_keep_books, books), timeout=self.append_timeout
        )
        if appended.duplicate:
            with self.sessions() as fresh:
                return self._stored_receipt(fresh, appended.index, duplicate=True)
        return Receipt(
            appended.index,
            appended.leaf_hash,
            _record_of(entry),
            verify_seconds=verified - started,
            append_seconds=time.perf_counter() - verified,
        )

    def _device_evidence(self, submission: Submission, now: datetime) -> list[Evidence]:
        """The devices' evidence as judged: as sent, completed with kept collateral."""
        devices = []
        for device in submission.devices:
            if device.kind not in self.device_schemes:
                raise UnsupportedKind(f"this service judges no device of kind {device.kind!r}")
            evidence = Evidence(
                EvidenceKind(device.kind),
                device.data,
                tuple(Endorsement(EndorsementKind(k), d) for k, d in device.endorsements),
            )
            if self.device_collateral is not None:
                evidence = self.device_collateral.complete(evidence, now)
            devices.append(evidence)
        return devices

    def _judge_devices(  # noqa: PLR0917 - private, one caller
        self,
        client: Client,
        config: Any,
        devices: list[Evidence],
        now: datetime,
        nonce: bytes | None,
        submission: Submission,
        record: dict[str, Any],
    ) -> list[JudgedDevice]:
        """Judge the devices and compose them into ``record``; a worker whose device policy
        requires devices gets a composite record (and its verdict) even without any."""
        policy = config.for_worker(client.name, str(EvidenceKind.NVIDIA_GPU))
        required = isinstance(policy, NvidiaPolicy) and (policy.min_gpus or policy.min_switches)
        if not devices and not required:
            return []
        judged = judge_devices(
            self.device_schemes,
            policy,
            devices,
            now=now,
            challenge=nonce if nonce is not None and len(nonce) == CHALLENGE_BYTES else None,
            result_hash=submission.result_hash,
        )
        compose_record(record, judged, composition_reasons(policy, judged))
        return judged

    @staticmethod
    def _what_is_known(
        session: Session, client: Client, submission: Submission, digest: bytes, nonce: bytes | None
    ) -> _Known:
        """Everything the submission needs from the database, in one round trip."""
        with driver_connection(session).cursor() as cursor:
            cursor.execute(
                _KNOWN_QUERY,
                {
                    "client": client.id,
                    "key": submission.idempotency_key,
                    "digest": digest,
                    "worker": storable_text(client.name),
                    "nonce": nonce,
                },
            )
            found = cursor.fetchone()
        row = _KnownRow(*(found or (None,) * len(_KnownRow._fields)))  # always one row
        challenge = (
            challenges.ChallengeRow(row.challenge_client, row.challenge_expires, row.challenge_used)
            if row.challenge_client is not None and row.challenge_expires is not None
            else None
        )
        return _Known(
            row.revision,
            row.key_entry,
            row.key_request,
            row.duplicate_idx,
            challenge,
        )

    def _earlier_answer(
        self, session: Session, client: Client, submission: Submission, known: _Known
    ) -> Receipt | None:
        if known.key_entry is not None:
            if known.key_request != submission.request_sha256:
                raise IdempotencyConflict(
                    "this idempotency key was already used for a different request"
                )
            return self._stored_receipt(session, known.key_entry, replayed=True)
        if known.duplicate_idx is not None:  # this worker sent this evidence before
            return self._stored_receipt(session, known.duplicate_idx, duplicate=True)
        return None

    def _stored_receipt(self, session: Session, index: int, **flags: bool) -> Receipt:
        stored = get_entry(session, index)
        return Receipt(index, stored.leaf_hash, json.loads(stored.data), **flags)
