"""The compliance query API (reader tokens), read-only JSON under /api/v1::

    GET /api/v1/entries[?filters&sort=&after=|before=&limit=&count=exact]   search
    GET /api/v1/results/<result_hash>[?after=&limit=]    "was this result attested?", with proofs
    GET /api/v1/stats[?bucket=&group_by=&since=&until=&verdict=&image=&worker=]   counts

The filters are the portal's (:class:`ledger.search.EntryFilter`, same names); pages are
keyset pages (cursors, never OFFSET). A bad value is a 400 ``invalid_parameter`` problem
whose ``parameter`` member names it; so is a parameter these endpoints do not know, or one
given twice (a misspelt filter must not silently widen a compliance query to everything).
Values are taken exactly as given (the portal trims what people type; the API does not), and
an empty value is the same as leaving the parameter out.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import ColumnElement, String, cast, func, literal
from sqlalchemy.dialects.postgresql import JSON

from attest_ledger.bundles.export import BundleSelection
from ledger.checkpoints import SignedCheckpoint, latest_checkpoint
from ledger.db import session_scope
from ledger.models import Entry
from ledger.reads import inclusion_proof, tree_state
from ledger.search import (
    MAX_PAGE,
    SORTS,
    VERDICTS,
    EntryFilter,
    EntryRow,
    SearchError,
    count_entries,
    search_entries,
    verdict_counts,
)
from ledger.stats import BUCKETS, aggregate, counted, refresh
from verifier import EvidenceKind, ResultHash
from verifier.timefmt import iso_utc
from web.auth import current_client, require
from web.exports import bundle_response
from web.problems import Problem
from web.sessions import db

__all__ = [
    "AK_PATHS",
    "DEFAULT_PAGE",
    "FILTERS",
    "MAX_COUNTS",
    "MAX_RESULT_PAGE",
    "RESULT_HASH_PATTERN",
    "STATS_GROUPS",
    "EntryQuery",
    "bp",
    "entry_json",
]

bp = Blueprint("compliance", __name__, url_prefix="/api/v1")

#: the portal's filters, by the same names
FILTERS = (
    "since",
    "until",
    "kind",
    "verdict",
    "worker",
    "image",
    "pcr0",
    "module",
    "result_hash",
    "evidence_sha256",
    "evidence_kind",
    "ak_path",
    "ak",
)
DEFAULT_PAGE = 100
#: entries per page of a result hash's lookup (each carries an inclusion proof)
MAX_RESULT_PAGE = 100
#: what the submission counts can be grouped and filtered by
STATS_GROUPS = ("verdict", "evidence_kind", "image", "worker")
#: rows of counts in one answer; more asks for a narrower question
MAX_COUNTS = 10_000
#: a result hash as the lookup takes it (hex in either case); the OpenAPI document says so too
RESULT_HASH_PATTERN = "^(sha256:[0-9a-fA-F]{64}|sha384:[0-9a-fA-F]{96}|sha512:[0-9a-fA-F]{128})$"
_RESULT_HASH = re.compile(RESULT_HASH_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,9}")
_BIG_DIGITS = re.compile(r"[0-9]{1,19}")
MAX_INDEX = 2**63 - 1  # PostgreSQL's bigint


#: who vouches for a TPM quote's attestation key (the ``tpm2-quote`` contract of issue #13)
AK_PATHS = ("aws-nitrotpm", "gcp", "enrolled", "unendorsed")
_TPM2_QUOTE = str(EvidenceKind.TPM2_QUOTE)
_AK_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class EntryQuery(EntryFilter):
    """The ledger's filters (:class:`ledger.search.EntryFilter`) and two of ``tpm2-quote``
    entries, read from the entry bytes (``claims.ak``): ``ak_path``, who vouches for the
    quote's attestation key, and ``ak``, the SHA-256 of its SubjectPublicKeyInfo.

    No index column holds them (the ledger knows nothing of claims): each restricts the
    search to ``evidence_kind = 'tpm2-quote'``, which one is, and the claims of those
    entries are compared in PostgreSQL, so pages stay keyset pages of exact size."""

    ak_path: str | None = None
    ak: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, trim: bool = True) -> EntryQuery:
        base = EntryFilter.from_params(params, trim=trim)
        values: dict[str, str] = {}
        for name in ("ak_path", "ak"):
            raw = params.get(name) or ""
            text = raw.strip() if trim else raw
            if text:
                values[name] = text
        if values.get("ak_path") not in (None, *AK_PATHS):
            raise SearchError("ak_path", f"one of {', '.join(AK_PATHS)}")
        if "ak" in values:
            values["ak"] = values["ak"].lower()
            if not _AK_SHA256.fullmatch(values["ak"]):
                raise SearchError("ak", "64 hexadecimal digits (the SHA-256 of the AK's key)")
        inherited: dict[str, Any] = {f.name: getattr(base, f.name) for f in fields(EntryFilter)}
        return cls(**inherited, ak_path=values.get("ak_path"), ak=values.get("ak"))

    def where(self) -> list[Any]:
        clauses = super().where()
        if self.ak_path is None and self.ak is None:
            return clauses
        clauses.append(Entry.evidence_kind == _TPM2_QUOTE)
        if self.ak_path is not None:
            clauses.append(_claimed("path") == self.ak_path)
        if self.ak is not None:
            clauses.append(_claimed("sha256") == self.ak)
        return clauses


#: JSON escapes PostgreSQL's json functions refuse to decode: NUL, and UTF-16 surrogates
#: (canonical entry bytes write only lone ones as escapes; see ledger.entry). A worker's job
#: may hold either, so they are read as U+FFFD. An escape stays an escape (``\\u`` and four
#: hex digits in place of the same), so the text stays JSON and every other value as it was.
_UNDECODABLE = r"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})"


def entry_json() -> ColumnElement[Any]:
    """The entry bytes as PostgreSQL ``json``, for reading the values of a record that no
    index column holds (``json``, not ``jsonb``: nothing is kept but the text)."""
    text = func.regexp_replace(
        func.convert_from(Entry.data, literal("UTF8", String)),
        literal(_UNDECODABLE, String),
        literal(r"\\ufffd", String),
        literal("g", String),
    )
    return cast(text, JSON)


def _claimed(name: str) -> ColumnElement[Any]:
    """``claims.ak.<name>`` of the entry bytes as text (NULL where there is none)."""
    claimed: ColumnElement[Any] = entry_json()[("claims", "ak", name)].astext
    return claimed


def _invalid(parameter: str, message: str) -> Problem:
    return Problem(
        400,
        "invalid_parameter",
        f"{parameter[:64]}: {message}",
        extra={"parameter": parameter[:64]},
    )


def _only(allowed: Collection[str]) -> None:
    """Refuse parameters these endpoints do not know, and any given more than once."""
    for name in request.args:
        if name not in allowed:
            raise _invalid(name, f"unknown parameter; expected any of {', '.join(allowed)}")
        if len(request.args.getlist(name)) > 1:
            raise _invalid(name, "given more than once")


def _limit(default: int, maximum: int) -> int:
    text = request.args.get("limit") or ""
    if not text:
        return default
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= maximum:
        raise _invalid("limit", f"a whole number from 1 to {maximum}")
    return int(text)


def _cursor(name: str) -> str | None:
    return request.args.get(name) or None


def _url(path: str, params: dict[str, str]) -> str:
    return f"/api/v1{path}" + (f"?{urlencode(params)}" if params else "")


def _links(path: str, after: str | None, before: str | None) -> dict[str, str | None]:
    """Where the next and previous pages are: this request's parameters and the cursor."""
    base = {k: v for k, v in request.args.items() if v and k not in ("after", "before")}
    return {
        "next": _url(path, {**base, "after": after}) if after else None,
        "prev": _url(path, {**base, "before": before}) if before else None,
    }


# --- search ----------------------------------------------------------------------------------


def _entry_meta(row: EntryRow) -> dict[str, Any]:
    """What the API says of an entry, beside its record (``entry``)."""
    has_evidence = row.evidence_sha256 is not None
    return {
        "index": row.index,
        "appended_at": iso_utc(row.appended_at),
        "leaf_hash": row.leaf_hash.hex(),
        "has_evidence": has_evidence,
        "url": f"/api/v1/entries/{row.index}",
        "evidence_url": f"/api/v1/entries/{row.index}/evidence" if has_evidence else None,
    }


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _spliced(row: EntryRow) -> bytes:
    """The entry as JSON with its record spliced in as stored. The stored bytes are canonical
    JSON objects already (the ledger appends nothing else, and the audit checks it), so they
    are not decoded and encoded again: for a page of 1000 that was most of the time spent."""
    return _dumps(_entry_meta(row))[:-1] + b',"entry":' + row.data + b"}"


@bp.get("/entries")
@require("reader")
def search() -> Response:
    _only((*FILTERS, "sort", "after", "before", "limit", "count"))
    args = request.args
    sort = args.get("sort") or "index-desc"
    if sort not in SORTS:
        raise _invalid("sort", f"one of {', '.join(SORTS)}")
    limit = _limit(DEFAULT_PAGE, MAX_PAGE)
    count = args.get("count") or None
    if count not in (None, "exact"):
        raise _invalid("count", "'exact', or leave it out")
    session = db()
    try:
        selection = EntryQuery.from_params(args, trim=False)
        page = search_entries(
            session,
            selection,
            sort=sort,
            after=_cursor("after"),
            before=_cursor("before"),
            limit=limit,
        )
    except SearchError as exc:
        raise _invalid(exc.parameter, exc.message) from None
    rest: dict[str, Any] = {
        "next": page.after,
        "prev": page.before,
        "links": _links("/entries", page.after, page.before),
        "sort": sort,
        "limit": limit,
    }
    if count == "exact":
        rest["count"] = count_entries(session, selection)
    entries = b",".join(_spliced(row) for row in page.rows)
    body = b'{"entries":[' + entries + b"]," + _dumps(rest)[1:]
    return Response(body, mimetype="application/json")


# --- was this result attested? ----------------------------------------------------------------


def _parse_result_hash(text: str) -> str:
    """The canonical text (``sha256:<lowercase hex>``) of a result hash, or a 400."""
    if not _RESULT_HASH.fullmatch(text):
        raise _invalid(
            "result_hash", "expected 'sha256:' and 64 hex digits (or sha384: 96, sha512: 128)"
        )
    try:
        return str(ResultHash.parse(text))
    except ValueError as exc:
        raise _invalid("result_hash", str(exc)) from None


def _checkpoint_json(checkpoint: SignedCheckpoint) -> dict[str, Any]:
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.body.root_hash.hex(),
        "created_at": iso_utc(checkpoint.created_at),
        "note": checkpoint.note,
    }


def _attested_json(row: EntryRow, latest: SignedCheckpoint | None) -> dict[str, Any]:
    record = json.loads(row.data)
    if latest is not None and latest.tree_size > row.index:
        proof: dict[str, Any] = {
            "status": "included",
            "index": row.index,
            "tree_size": latest.tree_size,
            "leaf_hash": row.leaf_hash.hex(),
            "hashes": [h.hex() for h in inclusion_proof(db(), row.index, latest.tree_size)],
            "checkpoint": latest.note,
        }
    else:
        proof = {
            "status": "not_yet_checkpointed",
            "detail": f"no signed checkpoint covers entry {row.index} yet; retry shortly",
            "proof_url": f"/api/v1/entries/{row.index}/proof",
        }
    return {
        **_entry_meta(row),
        "entry": record,
        "entry_bytes_b64": base64.b64encode(row.data).decode(),
        "verdict": {
            "status": record.get("verdict"),
            "error": record.get("error"),
            "reasons": record.get("reasons") or [],
            "image": record.get("image"),
            "policy": record.get("policy"),
            "policy_revision": record.get("policy_revision"),
            "verified_at": record.get("verified_at"),
        },
        "worker": record.get("worker"),
        "module_id": record.get("module_id"),
        "inclusion_proof": proof,
    }


@bp.get("/results/<result_hash>")
@require("reader")
def result(result_hash: str) -> Response:
    _only(("after", "limit"))
    canonical = _parse_result_hash(result_hash)
    limit = _limit(MAX_RESULT_PAGE, MAX_RESULT_PAGE)
    session = db()
    selection = EntryFilter(result_hash=canonical)
    # The checkpoint first: every proof below is against it, and it only moves forward, so
    # an entry appended meanwhile is at worst reported as not yet covered.
    latest = latest_checkpoint(session)
    try:
        page = search_entries(
            session, selection, sort="index-asc", after=_cursor("after"), limit=limit
        )
    except SearchError as exc:
        raise _invalid(exc.parameter, exc.message) from None
    if not page.rows and _cursor("after") is None:
        raise Problem(
            404, "result_not_found", f"no entry of the ledger has the result hash {canonical}"
        )
    verdicts = dict.fromkeys(VERDICTS, 0) | verdict_counts(session, selection)
    return jsonify(
        {
            "result_hash": canonical,
            "entries_total": sum(verdicts.values()),
            "verdicts": verdicts,
            "checkpoint": _checkpoint_json(latest) if latest is not None else None,
            "entries": [_attested_json(row, latest) for row in page.rows],
            "next": page.after,
            "links": _links(f"/results/{canonical}", page.after, None),
        }
    )


# --- statistics ------------------------------------------------------------------------------


@bp.get("/stats")
@require("reader")
def stats() -> Response:
    _only(("bucket", "group_by", "since", "until", *STATS_GROUPS))
    args = request.args
    bucket = args.get("bucket") or "day"
    if bucket not in BUCKETS:
        raise _invalid("bucket", f"one of {', '.join(BUCKETS)}")
    group_by: list[str] = []
    for part in (args.get("group_by") or "").split(","):
        name = part.strip()
        if not name:
            continue
        if name not in STATS_GROUPS:
            raise _invalid("group_by", f"a comma-separated list of {', '.join(STATS_GROUPS)}")
        if name in group_by:
            raise _invalid("group_by", f"{name} is named twice")
        group_by.append(name)
    try:
        selection = EntryFilter.from_params(
            {k: args.get(k) or "" for k in ("since", "until")}, trim=False
        )
        where = EntryFilter.from_params({k: args.get(k) or "" for k in STATS_GROUPS}, trim=False)
    except SearchError as exc:
        raise _invalid(exc.parameter, exc.message) from None
    filters = {k: v for k in STATS_GROUPS if (v := getattr(where, k)) is not None}
    runtime: Any = current_app.extensions["attest_ledger.runtime"]
    with session_scope(runtime.sessions) as writer:
        refresh(writer, max_steps=1)  # bounded; cheap when the publisher keeps up (it does)
    session = db()
    counts = aggregate(
        session,
        bucket=bucket,
        since=selection.since,
        until=selection.until,
        group_by=tuple(group_by),
        where={"kind": "attestation", **filters},
        limit=MAX_COUNTS + 1,
    )
    if len(counts) > MAX_COUNTS:
        raise Problem(
            400,
            "too_many_counts",
            f"more than {MAX_COUNTS} counts: narrow since/until, take a larger bucket or "
            "group by less",
        )
    return jsonify(
        {
            "bucket": bucket,
            "group_by": group_by,
            "since": iso_utc(selection.since) if selection.since else None,
            "until": iso_utc(selection.until) if selection.until else None,
            "filters": filters,
            "counted_entries": counted(session),
            "tree_size": tree_state(session).size,
            "counts": [
                {"start": iso_utc(c.bucket), "group": c.group, "submissions": c.entries}
                for c in counts
            ],
        }
    )


# --- proof bundles ----------------------------------------------------------------------------

#: explicit lists an export may name
MAX_EXPORT_INDICES = 10_000
MAX_EXPORT_HASHES = 1_000


def _list(name: str, limit: int) -> list[str]:
    text = request.args.get(name) or ""
    items = [item for item in text.split(",") if item] if text else []
    if len(items) > limit:
        raise _invalid(name, f"at most {limit} items")
    return items


@bp.get("/export")
@require("reader")
def export() -> Response:
    """A proof bundle of the selected entries, as ``attest-ledger export`` writes it."""
    _only((*FILTERS, "result_hashes", "indices", "tree_size"))
    try:
        selection = EntryQuery.from_params(request.args, trim=False)
    except SearchError as exc:
        raise _invalid(exc.parameter, exc.message) from None
    hashes = tuple(_parse_result_hash(h) for h in _list("result_hashes", MAX_EXPORT_HASHES))
    indices = []
    for text in _list("indices", MAX_EXPORT_INDICES):
        if not _BIG_DIGITS.fullmatch(text) or int(text) > MAX_INDEX:
            raise _invalid("indices", "comma-separated entry indices (whole numbers)")
        indices.append(int(text))
    size_text = request.args.get("tree_size") or ""
    if size_text and (not _BIG_DIGITS.fullmatch(size_text) or int(size_text) > MAX_INDEX):
        raise _invalid("tree_size", "the size of a signed checkpoint")
    return bundle_response(
        current_app.extensions["attest_ledger.runtime"],
        BundleSelection(selection, hashes, tuple(indices)),
        int(size_text) if size_text else None,
        reader=f"api:{current_client().name}",
    )
