"""What an entry is, for the ledger: canonical JSON bytes, optionally committing to evidence.

The ledger does not interpret entries beyond this contract:

* the entry bytes are a JSON object in canonical form: keys sorted, no insignificant
  whitespace, UTF-8, no floating-point numbers (so that the form is unique and matches RFC
  8785 for every value it can hold); the bytes are what the Merkle leaf hashes;
* an entry stored with evidence carries ``"evidence_sha256": "<hex SHA-256 of the evidence>"``,
  so the evidence is committed to by the leaf and can be checked by anyone holding both;
* an entry may name endorsements, what its verdict rested on beside the evidence
  (certificates, CRLs, TCB documents): ``"endorsements": [{"kind": ..., "sha256": <hex>}]``.
  Each is stored once, content-addressed (``ledger_endorsements``), however many entries
  name it; the leaf commits to the digests, so anyone holding the bytes can check them;
* an entry may name devices judged beside its evidence (GPUs of the same inference):
  ``"devices": [{"evidence_sha256": <hex>, "endorsements": [{"kind", "sha256"}], ...}]``;
  each device's evidence and endorsements are stored like the entry's endorsements,
  content-addressed, and the leaf commits to their digests the same way;
* a few optional top-level keys (:data:`INDEX_KEYS`) are copied into indexed columns for
  queries. They are derived from the bytes, never supplied separately, so they cannot
  disagree with what the tree commits to, and the audit re-derives them.

Text is total: every string the service may meet is kept, exactly. The entry bytes hold it
as JSON (control characters such as NUL escaped, ``\\u0000``; a lone UTF-16 surrogate, which
JSON parsers produce from ``"\\ud800"`` and which UTF-8 cannot encode, written as that same
escape). PostgreSQL's text type cannot hold NUL or a lone surrogate, so the index columns,
which only serve queries, hold :func:`storable_text` of the value: each such character
replaced by U+FFFD. The bytes the leaf hashes are never changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.errors import InvalidEntry
from ledger.merkle import leaf_hash

__all__ = [
    "INDEX_KEYS",
    "MAX_ENTRY_BYTES",
    "NewEntry",
    "PreparedEntry",
    "canonical_json",
    "endorsement_digests",
    "storable_text",
]

#: Entries are records, not documents; evidence is stored beside them.
MAX_ENTRY_BYTES = 64 * 1024
MAX_EVIDENCE_BYTES = 64 * 1024
MAX_ENDORSEMENT_BYTES = 64 * 1024
#: every blob an entry names: its endorsements, and its devices' evidence and endorsements
MAX_ENDORSEMENTS = 256
MAX_DEVICES = 64
#: Top-level keys copied into indexed text columns (document_time is parsed as a timestamp).
INDEX_KEYS = (
    "kind",
    "verdict",
    "worker",
    "image",
    "pcr0",
    "module_id",
    "result_hash",
    "evidence_kind",
)
_INDEX_TEXT_LIMIT = 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
_HEX64 = re.compile("[0-9a-f]{64}")
_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a JSON object (see the module docstring)."""
    _reject_floats(value)
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (only ever inside a string literal): write its escape, which
        # json.loads reads back as the same string, so the form stays unique and total.
        return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text).encode()


def storable_text(value: str) -> str:
    """``value`` as PostgreSQL's text type can hold it: NUL and lone surrogates, which it
    cannot, become U+FFFD. For index columns only; the entry bytes keep the original."""
    return _NOT_STORABLE.sub("\ufffd", value)


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise InvalidEntry("entry: floating-point numbers are not allowed (not canonical)")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEntry("entry: object keys must be strings")
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to append: its canonical bytes and, optionally, the evidence and the
    endorsements it commits to."""

    data: bytes
    evidence: bytes | None = None
    endorsements: tuple[bytes, ...] = ()
    #: Set only by :meth:`from_record`, which made ``data`` from it: spares a re-parse.
    _record: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_record(
        cls,
        record: Mapping[str, Any],
        *,
        evidence: bytes | None = None,
        endorsements: Sequence[tuple[str, bytes]] = (),
        blobs: Sequence[bytes] = (),
    ) -> NewEntry:
        """Build the canonical bytes of ``record``, adding ``evidence_sha256`` if evidence,
        and ``endorsements`` (kind and SHA-256 of each, in the order given) if any.
        ``blobs``: what ``record`` names elsewhere (its devices' evidence and endorsements),
        stored beside the endorsements."""
        body = dict(record)
        if evidence is not None:
            body["evidence_sha256"] = hashlib.sha256(evidence).hexdigest()
        if endorsements:
            body["endorsements"] = [
                {"kind": kind, "sha256": hashlib.sha256(data).hexdigest()}
                for kind, data in endorsements
            ]
        entry = cls(
            data=canonical_json(body),
            evidence=evidence,
            endorsements=(*(data for _, data in endorsements), *blobs),
        )
        object.__setattr__(entry, "_record", body)
        return entry


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """A validated entry with everything the database rows need."""

    data: bytes
    evidence: bytes | None
    leaf_hash: bytes
    evidence_sha256: bytes | None
    columns: Mapping[str, Any]
    #: (SHA-256, bytes) of each endorsement the entry names, each once
    endorsements: tuple[tuple[bytes, bytes], ...] = ()


def prepare(entry: NewEntry) -> PreparedEntry:
    """Validate ``entry`` against the contract; raises :class:`InvalidEntry`."""
    if len(entry.data) > MAX_ENTRY_BYTES:
        raise InvalidEntry(f"entry: larger than {MAX_ENTRY_BYTES} bytes")
    # An entry from from_record() is canonical by construction; anything else is parsed.
    record = entry._record if entry._record is not None else parse_entry(entry.data)
    digest_text = record.get("evidence_sha256")
    if entry.evidence is None:
        if digest_text is not None:
            raise InvalidEntry("entry: names evidence_sha256 but no evidence was given")
        evidence_sha256 = None
    else:
        if len(entry.evidence) > MAX_EVIDENCE_BYTES:
            raise InvalidEntry(f"evidence: larger than {MAX_EVIDENCE_BYTES} bytes")
        evidence_sha256 = hashlib.sha256(entry.evidence).digest()
        if digest_text != evidence_sha256.hex():
            raise InvalidEntry("entry: evidence_sha256 does not match the evidence given")
    named = endorsement_digests(record)
    if len(entry.endorsements) > MAX_ENDORSEMENTS:
        raise InvalidEntry(f"entry: more than {MAX_ENDORSEMENTS} endorsements")
    given: dict[bytes, bytes] = {}
    for blob in entry.endorsements:
        if len(blob) > MAX_ENDORSEMENT_BYTES:
            raise InvalidEntry(f"endorsement: larger than {MAX_ENDORSEMENT_BYTES} bytes")
        given[hashlib.sha256(blob).digest()] = blob
    if set(given) != {bytes.fromhex(d) for d in named}:
        raise InvalidEntry("entry: the endorsements it names are not the ones given")
    return PreparedEntry(
        data=entry.data,
        evidence=entry.evidence,
        leaf_hash=leaf_hash(entry.data),
        evidence_sha256=evidence_sha256,
        endorsements=tuple(sorted(given.items())),
        columns=index_columns(record),
    )


def parse_entry(data: bytes) -> dict[str, Any]:
    """Parse and check entry bytes: a canonical JSON object. Raises :class:`InvalidEntry`."""
    if not isinstance(data, bytes):
        raise InvalidEntry("entry: bytes expected")
    if len(data) > MAX_ENTRY_BYTES:
        raise InvalidEntry(f"entry: larger than {MAX_ENTRY_BYTES} bytes")
    try:
        record = json.loads(data.decode("utf-8"), parse_float=_no_float, parse_constant=_no_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidEntry(f"entry: not JSON ({str(exc)[:80]})") from None
    if not isinstance(record, dict):
        raise InvalidEntry("entry: must be a JSON object")
    if canonical_json(record) != data:
        raise InvalidEntry("entry: not in canonical form (sorted keys, no whitespace, UTF-8)")
    digest = record.get("evidence_sha256")
    if digest is not None and (
        not isinstance(digest, str) or len(digest) != 64 or digest != digest.lower()
    ):
        raise InvalidEntry("entry: evidence_sha256 must be 64 lowercase hex digits")
    endorsement_digests(record)
    return record


def endorsement_digests(record: Mapping[str, Any]) -> list[str]:
    """The SHA-256 (hex) of each blob ``record`` names: its endorsements, then each device's
    evidence and endorsements. Raises :class:`InvalidEntry` if ``endorsements`` (top-level
    or a device's) is not a list of ``{"kind": str, "sha256": <64 lowercase hex>}``, or
    ``devices`` not a list of objects whose ``evidence_sha256`` is such a digest."""
    out = _named(record.get("endorsements"))
    devices = record.get("devices")
    if devices is not None:
        if not isinstance(devices, list) or len(devices) > MAX_DEVICES:
            raise InvalidEntry(f"entry: devices must be a list of at most {MAX_DEVICES}")
        for device in devices:
            digest = device.get("evidence_sha256") if isinstance(device, dict) else None
            if not isinstance(device, dict) or not (
                digest is None or (isinstance(digest, str) and _HEX64.fullmatch(digest))
            ):
                raise InvalidEntry("entry: each device is an object naming its evidence_sha256")
            if digest is not None:
                out.append(digest)
            out.extend(_named(device.get("endorsements")))
    if len(out) > MAX_ENDORSEMENTS:
        raise InvalidEntry(f"entry: names more than {MAX_ENDORSEMENTS} endorsements")
    return out


def _named(named: object) -> list[str]:
    if named is None:
        return []
    if not isinstance(named, list) or len(named) > MAX_ENDORSEMENTS:
        raise InvalidEntry(f"entry: endorsements must be a list of at most {MAX_ENDORSEMENTS}")
    out = []
    for item in named:
        digest = item.get("sha256") if isinstance(item, dict) else None
        if (
            not isinstance(item, dict)
            or set(item) != {"kind", "sha256"}
            or not isinstance(item["kind"], str)
            or not isinstance(digest, str)
            or not _HEX64.fullmatch(digest)
        ):
            raise InvalidEntry('entry: each endorsement is {"kind": ..., "sha256": <64 hex>}')
        out.append(digest)
    return out


def _no_float(text: str) -> Any:
    raise InvalidEntry(f"entry: floating-point numbers are not allowed ({text[:20]})")


def index_columns(record: Mapping[str, Any]) -> dict[str, Any]:
    """The indexed column values that ``record`` implies."""
    columns: dict[str, Any] = {}
    for key in INDEX_KEYS:
        value = record.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > _INDEX_TEXT_LIMIT):
            raise InvalidEntry(f"entry: {key} must be a string of at most 1024 characters")
        columns[key] = storable_text(value) if value is not None else None
    digest = record.get("evidence_sha256")
    columns["evidence_sha256"] = bytes.fromhex(digest) if digest else None
    moment = record.get("document_time")
    if moment is None:
        columns["document_time"] = None
    else:
        try:
            parsed = datetime.fromisoformat(moment) if isinstance(moment, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise InvalidEntry("entry: document_time must be an ISO-8601 instant with offset")
        columns["document_time"] = parsed
    return columns
