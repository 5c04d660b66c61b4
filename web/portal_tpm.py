"""A TPM 2.0 quote entry (``tpm2-quote``, issue #13) and an AK enrolment entry, laid out for
the portal's entry page (``templates/portal/_tpm_quote.html``).

What is shown comes from the entry's own record (``claims``: the AK and who vouches for it,
the quote's fields, the quoted PCRs, the event log's summary), from its stored evidence (the
events of the TCG PC Client and IMA logs, re-read with :mod:`verifier.tpm.eventlog`), from the
policy revision it names (the reference PCRs and expected events of the TPM images the worker
may attest) and from the ``tpm_enrolment`` entries of its AK. A proven entry may still hold
anything, so every recorded value is read defensively: a missing or odd one shows as absent,
never as an error. Text is neutralised by the portal's Jinja ``finalize``
(:func:`attest_ledger.display.visible`), as everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attest_ledger.policy_store import PolicyConfig
from ledger.models import Entry
from verifier import EvidenceKind, ResultHash, VerifierError
from verifier.tpm.eventlog import EventLog, parse_event_log, parse_ima_log
from verifier.tpm.evidence import parse_container
from web.compliance import entry_json

__all__ = [
    "ENROLMENT",
    "TPM2_QUOTE",
    "EnrolmentView",
    "EventRow",
    "ExpectedEventRow",
    "LogView",
    "TpmPcrRow",
    "TpmView",
    "explain_enrolment",
    "explain_tpm",
    "summary_of",
]

TPM2_QUOTE = str(EvidenceKind.TPM2_QUOTE)
ENROLMENT = "tpm_enrolment"
#: events shown per log (a busy IMA log holds thousands; the rest are counted, not listed)
MAX_EVENT_ROWS = 1000
_PCR_INDEX = re.compile(r"[0-9]{1,2}")
#: enrolment entries of one AK looked at, newest first
_MAX_ENROLMENT_ENTRIES = 100


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class TpmPcrRow:
    """One quoted PCR of one bank, against the reference images compared with."""

    bank: str
    index: int
    value: str
    matched: tuple[str, ...]  # images that list this PCR with this value
    expected: tuple[tuple[str, str], ...]  # (image, value) of images that list another

    @property
    def status(self) -> str:
        if self.matched:
            return "match"
        return "mismatch" if self.expected else "unreferenced"


@dataclass(frozen=True)
class EventRow:
    """One event of a log: its PCR, type, each bank's digest and what its data says."""

    number: int
    pcr: int
    type_name: str
    digests: tuple[tuple[str, str], ...]
    description: str | None
    #: the expected events of the images it is ("image: label")
    expected_by: tuple[str, ...]


@dataclass(frozen=True)
class ExpectedEventRow:
    """An event an image expects, and whether the log holds it (same PCR, same digest)."""

    image: str
    pcr: int
    bank: str
    digest: str
    label: str | None
    found: bool


@dataclass(frozen=True)
class LogView:
    """One log the evidence carries, its events listed (the first MAX_EVENT_ROWS)."""

    title: str
    format: str
    rows: list[EventRow]
    hidden: int
    problem: str | None


@dataclass
class TpmView:
    ak: Mapping[str, Any]
    quote: Mapping[str, Any]
    nitro_document: Mapping[str, Any] | None
    event_log: Mapping[str, Any] | None
    #: the reference images compared with: the worker's tpm2-quote images in the revision
    images: list[str] = field(default_factory=list)
    #: bank -> rows, banks in the order the claims list them
    banks: list[tuple[str, list[TpmPcrRow]]] = field(default_factory=list)
    #: each log the evidence carries
    logs: list[LogView] = field(default_factory=list)
    expected: list[ExpectedEventRow] = field(default_factory=list)
    #: the enrolled path: the tpm_enrolment entries of the AK before this one
    enrolled_by: int | None = None
    revoked_by: int | None = None
    #: extraData's result binding: what the second half should be, and whether it is
    binding_expected: bytes | None = None
    binding_state: str | None = None  # "holds", "differs", "nonce_only", "other"

    @property
    def path(self) -> str | None:
        return _text(self.ak.get("path"))

    @property
    def gcp(self) -> Mapping[str, Any]:
        return _mapping(self.ak.get("gcp"))

    @property
    def extra_data(self) -> bytes | None:
        text = _text(self.quote.get("extra_data"))
        try:
            return bytes.fromhex(text) if text is not None else None
        except ValueError:
            return None


def _images(record: Mapping[str, Any], policy: PolicyConfig | None) -> list[str]:
    if policy is None:
        return []
    worker = record.get("worker")
    allowed = policy.workers.get(worker, frozenset()) if isinstance(worker, str) else ()
    return sorted(name for name in allowed if policy.kind_of(name) == TPM2_QUOTE)


def _reference(policy: PolicyConfig | None, image: str) -> Mapping[str, Any]:
    if policy is None or image not in policy.references:
        return {}
    return _mapping(policy.references[image][1])


def _pcr_rows(
    pcrs: Mapping[str, Any], policy: PolicyConfig | None, images: list[str]
) -> list[tuple[str, list[TpmPcrRow]]]:
    banks = []
    for bank, values in pcrs.items():
        rows = []
        for index_text, value in _mapping(values).items():
            if not _PCR_INDEX.fullmatch(index_text) or not isinstance(value, str):
                continue
            matched, expected = [], []
            for image in images:
                listed = _mapping(_mapping(_reference(policy, image).get("pcrs")).get(bank))
                reference = listed.get(index_text)
                if not isinstance(reference, str):
                    continue
                if reference.lower() == value.lower():
                    matched.append(image)
                else:
                    expected.append((image, reference.lower()))
            rows.append(
                TpmPcrRow(bank, int(index_text), value.lower(), tuple(matched), tuple(expected))
            )
        banks.append((str(bank), sorted(rows, key=lambda row: row.index)))
    return banks


def _expected_events(policy: PolicyConfig | None, images: list[str]) -> list[ExpectedEventRow]:
    out = []
    for image in images:
        events = _reference(policy, image).get("events")
        for listed in events if isinstance(events, list) else []:
            event = _mapping(listed)
            pcr = event.get("pcr")
            if not isinstance(pcr, int) or isinstance(pcr, bool):
                continue
            for bank, digest in _mapping(event.get("digest")).items():
                if isinstance(digest, str):
                    label = _text(event.get("label"))
                    out.append(ExpectedEventRow(image, pcr, bank, digest.lower(), label, False))
    return out


def _logs_of(evidence: bytes | None) -> list[tuple[str, bytes]]:
    """The event logs of the stored ``tpm2-quote/v1`` container, by the scheme's own parser
    (none if it does not parse: the verdict's reasons say why)."""
    if evidence is None:
        return []
    try:
        container = parse_container(evidence)
    except VerifierError:
        return []
    logs = (("event_log", container.event_log), ("ima_log", container.ima_log))
    return [(key, data) for key, data in logs if data is not None]


def _log_view(key: str, data: bytes, expected: list[ExpectedEventRow]) -> tuple[LogView, set[int]]:
    title = "TCG PC Client event log" if key == "event_log" else "IMA runtime measurement log"
    try:
        log: EventLog = parse_event_log(data) if key == "event_log" else parse_ima_log(data)
    except VerifierError as exc:
        return LogView(title, "", [], 0, f"{exc.code}: {exc.message}"), set()
    rows, found = [], set()
    for number, event in enumerate(log.events):
        digests = tuple((bank, digest.hex()) for bank, digest in event.digests.items())
        marks = []
        for n, wanted in enumerate(expected):
            if wanted.pcr == event.pcr and dict(digests).get(wanted.bank) == wanted.digest:
                found.add(n)
                marks.append(f"{wanted.image}: {wanted.label or 'expected'}")
        if number < MAX_EVENT_ROWS:
            rows.append(
                EventRow(
                    number, event.pcr, event.type_name, digests, event.description(), tuple(marks)
                )
            )
    return LogView(title, log.format, rows, max(0, len(log.events) - MAX_EVENT_ROWS), None), found


def _enrolments(session: Session, ak_sha256: str, before: int) -> list[tuple[int, dict[str, Any]]]:
    """The ``tpm_enrolment`` entries of the AK ``ak_sha256`` before the entry ``before``,
    newest first."""
    document = entry_json()
    query = (
        select(Entry.idx, Entry.data)
        .where(
            Entry.kind == ENROLMENT,
            Entry.idx < before,
            document["ak_sha256"].astext == ak_sha256,
        )
        .order_by(Entry.idx.desc())
        .limit(_MAX_ENROLMENT_ENTRIES)
    )
    return [(row.idx, json.loads(bytes(row.data))) for row in session.execute(query)]


def explain_tpm(
    session: Session,
    index: int,
    record: Mapping[str, Any],
    evidence: bytes | None,
    *,
    policy: PolicyConfig | None,
) -> TpmView | None:
    """The quote's part of the entry page; None when the record holds no claims (the quote
    could not be read: the verdict's reasons say why)."""
    claims = record.get("claims")
    if not isinstance(claims, dict):
        return None
    view = TpmView(
        ak=_mapping(claims.get("ak")),
        quote=_mapping(claims.get("quote")),
        nitro_document=claims.get("nitro_document")
        if isinstance(claims.get("nitro_document"), dict)
        else None,
        event_log=claims.get("event_log") if isinstance(claims.get("event_log"), dict) else None,
    )
    view.images = _images(record, policy)
    view.banks = _pcr_rows(_mapping(claims.get("pcrs")), policy, view.images)
    expected = _expected_events(policy, view.images)
    found: set[int] = set()
    for key, data in _logs_of(evidence):
        log, seen = _log_view(key, data, expected)
        view.logs.append(log)
        found |= seen
    view.expected = [
        ExpectedEventRow(e.image, e.pcr, e.bank, e.digest, e.label, n in found)
        for n, e in enumerate(expected)
    ]
    ak_sha256 = _text(view.ak.get("sha256"))
    if view.path == "enrolled" and ak_sha256 is not None:
        for entry_index, enrolment in _enrolments(session, ak_sha256, index):
            action = enrolment.get("action")
            if action == "revoked" and view.revoked_by is None and view.enrolled_by is None:
                view.revoked_by = entry_index
            if action == "enrolled":
                view.enrolled_by = entry_index
                break
    _binding(view, record)
    return view


def _binding(view: TpmView, record: Mapping[str, Any]) -> None:
    extra = view.extra_data
    text = record.get("result_hash")
    if isinstance(text, str):
        try:
            view.binding_expected = ResultHash.parse(text).report_data_half()
        except ValueError:  # a recorded hash that is not one
            view.binding_expected = None
    if extra is None:
        return
    if len(extra) == 32:
        view.binding_state = "nonce_only"
    elif len(extra) == 64 and view.binding_expected is not None:
        view.binding_state = "holds" if extra[32:] == view.binding_expected else "differs"
    elif len(extra) != 64:
        view.binding_state = "other"


@dataclass(frozen=True)
class EnrolmentView:
    """A ``tpm_enrolment`` entry: an AK enrolled under a name, or its enrolment revoked."""

    action: str | None
    name: str | None
    ak_sha256: str | None
    at: str | None
    ek_certificate_sha256: str | None
    ek_chain: str | None
    ak_public: str | None


def explain_enrolment(record: Mapping[str, Any]) -> EnrolmentView:
    return EnrolmentView(
        action=_text(record.get("action")),
        name=_text(record.get("name")),
        ak_sha256=_text(record.get("ak_sha256")),
        at=_text(record.get("at")),
        ek_certificate_sha256=_text(record.get("ek_certificate_sha256")),
        ek_chain=_text(record.get("ek_chain")),
        ak_public=_text(record.get("ak_public")),
    )


def summary_of(data: bytes) -> dict[str, str] | None:
    """What the entries list says of a TPM entry beside its index columns: an enrolment's
    action, name and AK; a quote's AK path and AK. None for other entries."""
    try:
        record = json.loads(data)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if record.get("kind") == ENROLMENT:
        return {
            "action": _text(record.get("action")) or "?",
            "name": _text(record.get("name")) or "?",
            "ak": (_text(record.get("ak_sha256")) or "")[:16],
        }
    if record.get("evidence_kind") == TPM2_QUOTE:
        ak = _mapping(_mapping(record.get("claims")).get("ak"))
        return {"path": _text(ak.get("path")) or "?", "ak": (_text(ak.get("sha256")) or "")[:16]}
    return None
