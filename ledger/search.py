"""Finding entries: filters on the index columns, keyset pagination, stable order.

Shared by the auditor portal and the compliance API. A page is one index range scan at any
ledger size: every filter column leads an index ending in ``idx`` (migration 0003), and a
page continues from the last row of the previous one (``after``) or goes back from the first
(``before``) instead of counting an OFFSET.

Filters come from query-string parameters (:meth:`EntryFilter.from_params`); a bad value
raises :class:`SearchError` naming the parameter, for a 400 with a clear message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, select, true, tuple_
from sqlalchemy.orm import Session

from ledger.models import Entry, Sequencer

__all__ = [
    "KINDS",
    "SORTS",
    "VERDICTS",
    "EntryFilter",
    "EntryRow",
    "Page",
    "SearchError",
    "count_entries",
    "parse_time",
    "search_entries",
    "verdict_counts",
]

VERDICTS = ("affirming", "warning", "contraindicated")
KINDS = ("attestation", "policy", "access", "tpm_enrolment")
#: index-desc: newest first (the default); time: when the entry was appended.
SORTS = ("index-desc", "index-asc", "time-desc", "time-asc")
#: the largest page: the compliance API's ``limit`` goes up to it (the portal shows 50)
MAX_PAGE = 1000
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX96 = re.compile(r"[0-9a-f]{96}")
_RESULT_HASH = re.compile(r"[a-z0-9-]{1,16}:[0-9a-f]{32,128}")
_EVIDENCE_KIND = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_TEXT_MAX = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_INDEX = 2**63 - 1


class SearchError(ValueError):
    """A filter or cursor that cannot be used; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def parse_time(parameter: str, text: str) -> datetime:
    """``YYYY-MM-DD`` or ISO 8601 (``T`` or space, optional seconds, ``Z`` or an offset);
    without an offset, UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        raise SearchError(parameter, f"{text[:40]!r} is not a date or an ISO 8601 time") from None
    except OverflowError:  # an offset that moves the year past 1 or 9999
        raise SearchError(parameter, f"{text[:40]!r} is out of range") from None


@dataclass(frozen=True)
class EntryFilter:
    since: datetime | None = None  # appended at or after
    until: datetime | None = None  # appended before
    kind: str | None = None
    verdict: str | None = None
    worker: str | None = None
    image: str | None = None
    pcr0: str | None = None
    #: a module_id ("i-...-enc...") or an enclave instance ("i-..."), which matches its modules
    module: str | None = None
    result_hash: str | None = None
    evidence_sha256: str | None = None
    #: the kind of evidence an attestation judged (``aws-nitro-enclave``, ``amd-sev-snp``...)
    evidence_kind: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, trim: bool = True) -> EntryFilter:
        """Build a filter from query parameters named like the fields (empty means unset).

        ``trim`` (for people, in the portal's forms) drops surrounding whitespace first, so a
        blank field is unset; without it (the API), values are taken exactly as given."""
        given = {f.name: params.get(f.name) or "" for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in given.items():
            if len(raw) > _TEXT_MAX:  # as given: the API's document says so of the raw value
                raise SearchError(name, f"longer than {_TEXT_MAX} characters")
            text = raw.strip() if trim else raw
            if not text:
                continue
            if any(unicodedata.category(c) == "Cc" for c in text):
                # PostgreSQL text cannot hold NUL; no stored value has any control character
                raise SearchError(name, "contains a control character")
            values[name] = text
        for name in ("since", "until"):
            if name in values:
                values[name] = parse_time(name, values[name])
        if "since" in values and "until" in values and values["since"] >= values["until"]:
            raise SearchError("until", "must be later than since")
        if values.get("kind") not in (None, *KINDS):
            raise SearchError("kind", f"one of {', '.join(KINDS)}")
        if values.get("verdict") not in (None, *VERDICTS):
            raise SearchError("verdict", f"one of {', '.join(VERDICTS)}")
        if "pcr0" in values:
            values["pcr0"] = values["pcr0"].lower()
            if not _HEX96.fullmatch(values["pcr0"]):
                raise SearchError("pcr0", "96 hexadecimal digits (a SHA-384 PCR)")
        if "evidence_sha256" in values:
            values["evidence_sha256"] = values["evidence_sha256"].lower()
            if not _HEX64.fullmatch(values["evidence_sha256"]):
                raise SearchError("evidence_sha256", "64 hexadecimal digits (a SHA-256)")
        if "evidence_kind" in values and not _EVIDENCE_KIND.fullmatch(values["evidence_kind"]):
            raise SearchError("evidence_kind", "an evidence kind, like aws-nitro-enclave")
        if "result_hash" in values:
            values["result_hash"] = values["result_hash"].lower()
            if not _RESULT_HASH.fullmatch(values["result_hash"]):
                raise SearchError("result_hash", "like sha256:<hex>")
        return cls(**values)

    def to_params(self) -> dict[str, str]:
        """The query parameters that give this filter back (a permalink's)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = (
                value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else value
            )
        return out

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def where(self) -> list[Any]:
        clauses: list[Any] = []
        if self.since is not None:
            clauses.append(Entry.appended_at >= self.since)
        if self.until is not None:
            clauses.append(Entry.appended_at < self.until)
        for name in ("kind", "verdict", "worker", "image", "pcr0", "result_hash", "evidence_kind"):
            value = getattr(self, name)
            if value is not None:
                clauses.append(getattr(Entry, name) == value)
        if self.module is not None:
            if "-enc" in self.module:
                clauses.append(Entry.module_id == self.module)
            else:  # an instance: every enclave it ran (index on the same expression)
                clauses.append(func.split_part(Entry.module_id, "-enc", 1) == self.module)
        if self.evidence_sha256 is not None:
            clauses.append(Entry.evidence_sha256 == bytes.fromhex(self.evidence_sha256))
        return clauses


@dataclass(frozen=True)
class EntryRow:
    index: int
    appended_at: datetime
    kind: str | None
    verdict: str | None
    worker: str | None
    image: str | None
    pcr0: str | None
    module_id: str | None
    result_hash: str | None
    document_time: datetime | None
    data: bytes
    leaf_hash: bytes
    evidence_sha256: bytes | None
    evidence_kind: str | None


@dataclass(frozen=True)
class Page:
    rows: list[EntryRow]
    #: cursors for the next (older, in the default order) and previous pages, if any
    after: str | None
    before: str | None


_COLUMNS = (
    Entry.idx,
    Entry.appended_at,
    Entry.kind,
    Entry.verdict,
    Entry.worker,
    Entry.image,
    Entry.pcr0,
    Entry.module_id,
    Entry.result_hash,
    Entry.document_time,
    Entry.data,
    Entry.leaf_hash,
    Entry.evidence_sha256,
    Entry.evidence_kind,
)


def _cursor(row: EntryRow, sort: str) -> str:
    if sort.startswith("index"):
        return str(row.index)
    micros = (row.appended_at - _EPOCH) // timedelta(microseconds=1)  # exact, no float
    return f"{micros}.{row.index}"


def _parse_cursor(parameter: str, text: str, sort: str) -> tuple[Any, ...]:
    try:
        if sort.startswith("index"):
            index = int(text)
        else:
            micros, _, index_text = text.partition(".")
            moment = _EPOCH + timedelta(microseconds=int(micros))
            index = int(index_text)
        if not 0 <= index <= _MAX_INDEX:  # beyond PostgreSQL's bigint the query itself fails
            raise ValueError
        return (index,) if sort.startswith("index") else (moment, index)
    except (ValueError, OverflowError, OSError):
        raise SearchError(parameter, "not a cursor of this list (follow the page links)") from None


def search_entries(
    session: Session,
    selection: EntryFilter,
    *,
    sort: str = "index-desc",
    after: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> Page:
    """One page of entries matching ``selection``, in ``sort`` order.

    ``after`` continues past a page's last row; ``before`` goes back from a page's first row.
    """
    if sort not in SORTS:
        raise SearchError("sort", f"one of {', '.join(SORTS)}")
    if not 1 <= limit <= MAX_PAGE:
        raise SearchError("limit", f"from 1 to {MAX_PAGE}")
    if after is not None and before is not None:
        raise SearchError("before", "give after or before, not both")
    descending = sort.endswith("desc")
    key = (Entry.idx,) if sort.startswith("index") else (Entry.appended_at, Entry.idx)
    position = tuple_(*key) if len(key) > 1 else key[0]
    query: Select[Any] = select(*_COLUMNS).where(  # type: ignore[assignment]
        and_(true(), *selection.where())
    )
    backwards = before is not None
    if after is not None:
        value = _parse_cursor("after", after, sort)
        bound = tuple_(*value) if len(value) > 1 else value[0]
        query = query.where(position < bound if descending else position > bound)
    if before is not None:
        value = _parse_cursor("before", before, sort)
        bound = tuple_(*value) if len(value) > 1 else value[0]
        query = query.where(position > bound if descending else position < bound)
    reverse = descending != backwards  # the order to read in
    query = query.order_by(*(column.desc() if reverse else column.asc() for column in key))
    rows = [EntryRow(*row) for row in session.execute(query.limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    if not rows:
        return Page([], None, None)
    has_next = more if not backwards else True
    has_previous = (after is not None) if not backwards else more
    return Page(
        rows,
        _cursor(rows[-1], sort) if has_next else None,
        _cursor(rows[0], sort) if has_previous else None,
    )


def count_entries(session: Session, selection: EntryFilter) -> int:
    """How many entries match ``selection`` (an index scan of the matches; the whole ledger's
    size, which the sequencer keeps, when nothing is filtered)."""
    if selection.empty:
        size = session.execute(select(Sequencer.tree_size).where(Sequencer.id == 1)).scalar()
        return int(size or 0)
    query = select(func.count()).select_from(Entry).where(and_(true(), *selection.where()))
    return int(session.execute(query).scalar_one())


def verdict_counts(session: Session, selection: EntryFilter) -> dict[str, int]:
    """How many entries match ``selection``, per verdict (entries without one are left out)."""
    query = (
        select(Entry.verdict, func.count())
        .where(and_(Entry.verdict.is_not(None), *selection.where()))
        .group_by(Entry.verdict)
    )
    return {str(verdict): int(n) for verdict, n in session.execute(query)}
