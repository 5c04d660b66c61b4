"""The OpenAPI 3.1 description of everything under /api/v1, served at /api/v1/openapi.json.

Built here, in code, from the same constants the endpoints use (sorts, verdicts, limits,
buckets), so that the two cannot drift apart silently; ``tests/web/test_openapi.py`` checks
that every route of the service under /api/v1 is described and nothing else is, and the
schemathesis test (``tests/e2e/test_openapi_schemathesis.py``) checks the live service's
answers against it: status codes, content types, headers and bodies.

Every error is an RFC 9457 problem (``application/problem+json``); each response lists the
stable ``code`` values it can carry.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from attest_ledger.collateral import KINDS as COLLATERAL_KINDS
from attest_ledger.settings import Settings
from ledger.search import KINDS, MAX_PAGE, SORTS, VERDICTS
from ledger.stats import BUCKETS
from verifier import MAX_EVIDENCE_BYTES, EvidenceKind
from verifier.nvidia import MAX_NVIDIA_ENDORSEMENTS
from web.collateral_api import (
    DEFAULT_IMPACT_PAGE,
    FMSPC_PATTERN,
    MAX_DOCUMENTS,
    MAX_IMPACT_PAGE,
    SHA256_PATTERN,
)
from web.compliance import (
    AK_PATHS,
    DEFAULT_PAGE,
    MAX_COUNTS,
    MAX_EXPORT_HASHES,
    MAX_EXPORT_INDICES,
    MAX_RESULT_PAGE,
    RESULT_HASH_PATTERN,
    STATS_GROUPS,
)
from web.submission import (
    DEVICE_ENDORSEMENT_KINDS,
    DEVICE_KINDS,
    ENDORSEMENT_KINDS,
    EVIDENCE_KINDS,
    IDEMPOTENCY_KEY_CHARS,
    MAX_DEVICE_EVIDENCE,
    MAX_DEVICES,
    MAX_ENDORSEMENT_BYTES,
    MAX_JOB_BYTES,
    MAX_SUBMITTED_ENDORSEMENTS,
    MAX_SUBMITTED_EVIDENCE,
)

__all__ = ["document"]

Schema = dict[str, Any]

_INT64 = 2**63 - 1
_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_STRING = {"type": ["string", "null"]}
#: what the search's result_hash filter takes (ledger.search: any algorithm, 32-128 digits)
_RESULT_HASH_FILTER = "^[A-Za-z0-9-]{1,16}:[0-9A-Fa-f]{32,128}$"
#: free text (names): at most 256 characters, none a control character (PostgreSQL text
#: cannot hold NUL, and no stored name has any)
_TEXT = {"type": "string", "maxLength": 256, "pattern": "^[^\\x00-\\x1F\\x7F-\\x9F]*$"}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "required": required, "properties": properties, **extra}


def _json(schema: Schema, description: str, **extra: Any) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _problem(description: str, *codes: str, headers: dict[str, Any] | None = None) -> Schema:
    """A problem-details response whose ``code`` is one of ``codes`` (any, if none given)."""
    schema: Schema = _ref("Problem")
    if codes:
        schema = {"allOf": [schema, {"properties": {"code": {"enum": list(codes)}}}]}
    response: Schema = {
        "description": description + (f" (`{'`, `'.join(codes)}`)" if codes else ""),
        "content": {"application/problem+json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _parameter(
    name: str, schema: Schema, description: str, *, where: str = "query", required: bool = False
) -> Schema:
    parameter: Schema = {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }
    if where == "query" and not required:
        # Every endpoint takes an empty value for "not given" (as the portal's forms send it).
        parameter["allowEmptyValue"] = True
    return parameter


def _integer(minimum: int = 0, maximum: int = _INT64, **extra: Any) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **extra}


# --- responses shared by many operations -----------------------------------------------------

_UNAUTHENTICATED = _problem(
    "No token, or an unknown or revoked one",
    "unauthenticated",
    headers={
        "WWW-Authenticate": {
            "description": 'Always `Bearer realm="attestation-ledger"`',
            "required": True,
            "schema": {"type": "string"},
        }
    },
)
_RATE_LIMITED = _problem(
    "Over the client's request rate",
    "rate_limited",
    headers={
        "Retry-After": {
            "description": "Seconds to wait",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    },
)
_INTERNAL = _problem("An internal error; no detail leaves the service")
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
#: every operation that reads or writes the database may meet it unavailable
_DATABASE_UNAVAILABLE = _problem(
    "The database is unavailable (down, restarting, unreachable or out of disk space); "
    "try again after Retry-After",
    "database_unavailable",
    headers=_RETRY_AFTER,
)
#: the front's answers (attest_ledger.front), before the app sees the request
_REQUEST_TIMEOUT = _problem(
    "The request's head or body did not arrive within ATTEST_LEDGER_HEAD_TIMEOUT or "
    "_BODY_TIMEOUT, or the connection was the oldest unfinished one of a flood from its address",
    "request_timeout",
)
_HEADERS_TOO_LARGE = _problem("The request head is larger than 64 KiB", "headers_too_large")
#: gunicorn's own answer, before the service sees the request: not problem details
_URI_TOO_LONG = {
    "description": (
        "The request line is longer than 4094 bytes: refused by the HTTP server (gunicorn) "
        "itself, in HTML, before the service sees the request"
    ),
    "content": {"text/html": {"schema": {"type": "string"}}},
}


def _secured(role: str, responses: dict[str, Schema]) -> dict[str, Schema]:
    """The answers every authenticated operation may give; an operation's own win."""
    return {
        "401": _UNAUTHENTICATED,
        "403": _problem(f"A token of another role than {role}", "forbidden"),
        "429": _RATE_LIMITED,
        "500": _INTERNAL,
        **responses,
    }


def _public(responses: dict[str, Schema]) -> dict[str, Schema]:
    return {**responses, "500": _INTERNAL}


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    role: str | None,
    tag: str,
    description: str | None = None,
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    database: bool = True,
) -> Schema:
    operation: Schema = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    responses = {"408": _REQUEST_TIMEOUT, "431": _HEADERS_TOO_LARGE, **responses}
    if database:
        responses = {"503": _DATABASE_UNAVAILABLE, **responses}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
        if any(p["in"] == "query" for p in parameters):
            responses = {**responses, "414": _URI_TOO_LONG}
    if body:
        operation["requestBody"] = body
    if role is None:
        operation["security"] = []
        operation["responses"] = _public(responses)
    else:
        operation["security"] = [{"bearer": []}]
        operation["x-role"] = role
        operation["responses"] = _secured(role, responses)
    return operation


# --- schemas ---------------------------------------------------------------------------------


def _schemas() -> dict[str, Schema]:
    reason = _object(
        ["code", "message"],
        {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "submod": {
                "type": "string",
                "description": "Whose reason, in a verdict with devices: a device's submod "
                "(gpu0, switch8...) or composite (the devices as a whole); absent: the CPU "
                "evidence's",
            },
        },
        description="Why a verdict is not affirming: a stable code and a message for people",
    )
    verdict = _object(
        ["status", "error", "reasons", "image", "policy", "policy_revision", "verified_at"],
        {
            "status": {"enum": [*VERDICTS, None]},
            "error": _NULLABLE_STRING,
            "reasons": {"type": "array", "items": _ref("Reason")},
            "image": _NULLABLE_STRING,
            "policy": _NULLABLE_STRING,
            "policy_revision": {"type": ["integer", "null"]},
            "verified_at": _NULLABLE_STRING,
            "cpu_status": {
                "enum": list(VERDICTS),
                "description": "With devices: the CPU evidence's own status (status is the "
                "composed one)",
            },
            "devices": {
                "type": "array",
                "description": "With devices: each device's submod, kind and status",
                "items": _object(
                    ["submod", "evidence_kind", "status"],
                    {
                        "submod": {"type": "string"},
                        "evidence_kind": {"type": "string"},
                        "status": {"enum": list(VERDICTS)},
                    },
                ),
            },
        },
    )
    record = {
        "type": "object",
        "description": (
            "The entry's record, decoded from its canonical JSON bytes. Verdicts have "
            "`kind` `attestation`; `policy` and `access` entries record changes of the "
            "reference values and of the tokens and accounts."
        ),
        "properties": {"kind": _NULLABLE_STRING},
        "additionalProperties": True,
    }
    published = _object(
        ["status", "tree_size", "note", "proof_url"],
        {
            "status": {"const": "published"},
            "tree_size": _integer(1),
            "note": {"type": "string"},
            "proof_url": {"type": "string"},
        },
    )
    pending = _object(
        ["status", "expected_within_seconds", "or_after_entries", "url"],
        {
            "status": {"const": "pending"},
            "expected_within_seconds": {"type": "number"},
            "or_after_entries": {"type": "integer"},
            "url": {"type": "string"},
        },
    )
    checkpoint_json = _object(
        ["tree_size", "root_hash", "chain_head", "created_at", "note"],
        {
            "tree_size": _integer(),
            "root_hash": _HEX32,
            "chain_head": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
            "created_at": _TIME,
            "note": {"type": "string", "description": "The C2SP signed note"},
        },
    )
    proof = _object(
        ["index", "tree_size", "leaf_hash", "hashes", "checkpoint"],
        {
            "index": _integer(),
            "tree_size": _integer(1),
            "leaf_hash": _HEX32,
            "hashes": {"type": "array", "items": _HEX32, "description": "RFC 9162, leaf upwards"},
            "checkpoint": {
                "type": "string",
                "description": "The signed checkpoint of that size (C2SP signed note)",
            },
        },
    )
    summary = _object(
        ["index", "appended_at", "leaf_hash", "entry", "has_evidence", "url", "evidence_url"],
        {
            "index": _integer(),
            "appended_at": _TIME,
            "leaf_hash": _HEX32,
            "entry": _ref("Record"),
            "has_evidence": {"type": "boolean"},
            "url": {"type": "string"},
            "evidence_url": _NULLABLE_STRING,
        },
    )
    links = _object(
        ["next", "prev"],
        {"next": _NULLABLE_STRING, "prev": _NULLABLE_STRING},
        description="The next and previous pages as URLs (this query with the cursor)",
    )
    included = _object(
        ["status", "index", "tree_size", "leaf_hash", "hashes", "checkpoint"],
        {
            "status": {"const": "included"},
            "index": _integer(),
            "tree_size": _integer(1),
            "leaf_hash": _HEX32,
            "hashes": {"type": "array", "items": _HEX32},
            "checkpoint": {"type": "string", "description": "The latest signed checkpoint"},
        },
    )
    not_covered = _object(
        ["status", "detail", "proof_url"],
        {
            "status": {"const": "not_yet_checkpointed"},
            "detail": {"type": "string"},
            "proof_url": {"type": "string"},
        },
    )
    attested = {
        "allOf": [
            _ref("EntrySummary"),
            _object(
                ["entry_bytes_b64", "verdict", "worker", "module_id", "inclusion_proof"],
                {
                    "entry_bytes_b64": {
                        "type": "string",
                        "contentEncoding": "base64",
                        "description": "The canonical bytes the leaf hash covers",
                    },
                    "verdict": _ref("Verdict"),
                    "worker": _NULLABLE_STRING,
                    "module_id": _NULLABLE_STRING,
                    "inclusion_proof": {
                        "oneOf": [_ref("IncludedProof"), _ref("NotYetCheckpointed")]
                    },
                },
            ),
        ]
    }
    group_value = {"type": ["string", "null"]}
    return {
        "Problem": _object(
            ["type", "title", "status", "detail", "code", "instance"],
            {
                "type": {"type": "string", "description": "urn:attestation-ledger:problem:<code>"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string", "description": "For people; never parse it"},
                "code": {"type": "string", "description": "Stable; branch on this"},
                "instance": {"type": "string"},
                "parameter": {
                    "type": "string",
                    "description": "With `invalid_parameter`: the query or path parameter",
                },
            },
            description="RFC 9457 problem details",
        ),
        "Reason": reason,
        "Verdict": verdict,
        "Record": record,
        "ChallengeRequest": _object(
            [],
            {"count": _integer(1, 100, default=1)},
            description="Unknown members are ignored",
        ),
        "Challenges": _object(
            ["challenges", "ttl_seconds"],
            {
                "challenges": {
                    "type": "array",
                    "items": _object(
                        ["nonce", "expires_at"],
                        {
                            "nonce": {"type": "string", "pattern": "^[0-9a-f]+$"},
                            "expires_at": _TIME,
                        },
                    ),
                },
                "ttl_seconds": _integer(),
            },
        ),
        "Submission": {
            **_object(
                ["result_hash"],
                {
                    "attestation_document": {
                        "type": "string",
                        "contentEncoding": "base64",
                        "contentMediaType": "application/cbor",
                        "description": f"An AWS Nitro document (the NSM's COSE_Sign1), at "
                        f"most {MAX_EVIDENCE_BYTES} bytes, in base64: the original form",
                    },
                    "evidence": _ref("Evidence"),
                    "devices": {
                        "type": "array",
                        "maxItems": MAX_DEVICES,
                        "description": "The devices of the same inference (NVIDIA GPUs and "
                        "NVSwitches), beside the CPU TEE's evidence. Device i's SPDM requester "
                        "nonce must be SHA-256('attestation-ledger:gpu-nonce:v1:' || challenge "
                        "|| SHA-256(result binding) || i), the challenge being the one the CPU "
                        "evidence carries: one verdict for the inference, an EAR submod per "
                        "device (gpu<i>, switch<i>)",
                        "items": _ref("DeviceEvidence"),
                    },
                    "result_hash": {"type": "string", "pattern": RESULT_HASH_PATTERN},
                    "job": {
                        "type": "object",
                        "description": f"Anything about the job (no floats; at most "
                        f"{MAX_JOB_BYTES} bytes)",
                    },
                    "idempotency_key": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": IDEMPOTENCY_KEY_CHARS,
                    },
                },
                additionalProperties=False,
            ),
            "oneOf": [{"required": ["attestation_document"]}, {"required": ["evidence"]}],
        },
        "Evidence": _object(
            ["kind", "data"],
            {
                "kind": {
                    "enum": list(EVIDENCE_KINDS),
                    "description": "The evidence kind: which scheme judges it",
                },
                "data": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": f"The signed evidence (a Nitro document, a 1184-byte SEV-SNP "
                    f"report, a DCAP quote, a tpm2-quote/v1 CBOR container), at most "
                    f"{MAX_SUBMITTED_EVIDENCE} bytes, in base64",
                },
                "endorsements": {
                    "type": "array",
                    "maxItems": MAX_SUBMITTED_ENDORSEMENTS,
                    "description": "What came with the evidence and vouches for it (SEV-SNP: "
                    "the VCEK or VLEK, and the ASK/ASVK and ARK or a CRL if at hand; TDX and "
                    "SGX: the quote's collateral, Intel PCS bodies for tcb-info and "
                    "qe-identity, DER CRLs and the TCB Signing certificate); each is recorded "
                    "with the verdict, stored once by its SHA-256",
                    "items": _object(
                        ["kind", "data"],
                        {
                            "kind": {"enum": list(ENDORSEMENT_KINDS)},
                            "data": {
                                "type": "string",
                                "contentEncoding": "base64",
                                "description": "DER (tcb-info, qe-identity: JSON), at most "
                                f"{MAX_ENDORSEMENT_BYTES} bytes",
                            },
                        },
                        additionalProperties=False,
                    ),
                },
            },
            additionalProperties=False,
        ),
        "DeviceEvidence": _object(
            ["kind", "data"],
            {
                "kind": {"enum": list(DEVICE_KINDS), "description": "The device's kind"},
                "data": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": "The SPDM GET_MEASUREMENTS request and signed response, at "
                    f"most {MAX_DEVICE_EVIDENCE} bytes, in base64",
                },
                "endorsements": {
                    "type": "array",
                    "maxItems": MAX_NVIDIA_ENDORSEMENTS,
                    "description": "The device's certificate chain (device-certificate, leaf "
                    "first, DER), and optionally its driver and VBIOS RIMs (rim, the SWID XML) "
                    "and OCSP responses (ocsp); RIMs not given are taken from the service's "
                    "RIM collateral",
                    "items": _object(
                        ["kind", "data"],
                        {
                            "kind": {"enum": list(DEVICE_ENDORSEMENT_KINDS)},
                            "data": {"type": "string", "contentEncoding": "base64"},
                        },
                        additionalProperties=False,
                    ),
                },
            },
            additionalProperties=False,
        ),
        "Receipt": _object(
            ["entry", "verdict", "evidence_sha256", "ear", "duplicate", "replayed", "checkpoint"],
            {
                "entry": _object(
                    ["index", "leaf_hash", "url"],
                    {"index": _integer(), "leaf_hash": _HEX32, "url": {"type": "string"}},
                ),
                "verdict": _ref("Verdict"),
                "evidence_sha256": {"type": ["string", "null"]},
                "ear": {
                    "type": ["string", "null"],
                    "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
                    "description": "The verdict as a signed EAR (draft-ietf-rats-ear): a JWT, "
                    "ES256, by the key GET /api/v1/ear-keys publishes (its kid). The entry "
                    "carries the same EAR, so its inclusion proof proves it was logged. Null "
                    "only for an entry recorded before EARs (a duplicate or replay of one)",
                },
                "duplicate": {"type": "boolean"},
                "replayed": {"type": "boolean"},
                "checkpoint": {"oneOf": [published, pending]},
            },
        ),
        "Checkpoint": checkpoint_json,
        "CheckpointList": _object(
            ["checkpoints"], {"checkpoints": {"type": "array", "items": _ref("Checkpoint")}}
        ),
        "LogKey": _object(
            ["origin", "verifier_key", "algorithm", "format"],
            {
                "origin": {"type": "string"},
                "verifier_key": {"type": "string", "description": "origin+keyid+base64"},
                "algorithm": {"const": "ed25519"},
                "format": {"const": "c2sp.org/signed-note"},
            },
        ),
        "EarKeys": _object(
            ["keys"],
            {
                "keys": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        ["kty", "crv", "x", "y", "kid", "alg", "use"],
                        {
                            "kty": {"const": "EC"},
                            "crv": {"const": "P-256"},
                            "x": {"type": "string"},
                            "y": {"type": "string"},
                            "kid": {
                                "type": "string",
                                "description": "RFC 7638 JWK thumbprint (SHA-256, base64url)",
                            },
                            "alg": {"const": "ES256"},
                            "use": {"const": "sig"},
                        },
                    ),
                }
            },
            description="A JWK Set (RFC 7517) of the verifier's EAR-signing public key(s)",
        ),
        "ConsistencyProof": _object(
            ["first", "second", "hashes"],
            {
                "first": _integer(1),
                "second": _integer(1),
                "hashes": {"type": "array", "items": _HEX32},
            },
        ),
        "Tree": _object(["tree_size"], {"tree_size": _integer()}),
        "Entry": _object(
            [
                "index",
                "leaf_hash",
                "chain_hash",
                "appended_at",
                "entry",
                "entry_bytes_b64",
                "evidence_url",
            ],
            {
                "index": _integer(),
                "leaf_hash": _HEX32,
                "chain_hash": _HEX32,
                "appended_at": _TIME,
                "entry": _ref("Record"),
                "entry_bytes_b64": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": "The canonical bytes the leaf hash covers",
                },
                "evidence_url": _NULLABLE_STRING,
            },
        ),
        "InclusionProof": proof,
        "EntrySummary": summary,
        "Links": links,
        "SearchPage": _object(
            ["entries", "next", "prev", "links", "sort", "limit"],
            {
                "entries": {"type": "array", "items": _ref("EntrySummary")},
                "next": {
                    "type": ["string", "null"],
                    "description": "Pass as `after` for the next page; null on the last",
                },
                "prev": {
                    "type": ["string", "null"],
                    "description": "Pass as `before` for the previous page; null on the first",
                },
                "links": _ref("Links"),
                "sort": {"enum": list(SORTS)},
                "limit": _integer(1, MAX_PAGE),
                "count": {
                    **_integer(),
                    "description": "With `count=exact`: how many entries match in all",
                },
            },
        ),
        "IncludedProof": included,
        "NotYetCheckpointed": not_covered,
        "AttestedEntry": attested,
        "ResultLookup": _object(
            [
                "result_hash",
                "entries_total",
                "verdicts",
                "checkpoint",
                "entries",
                "next",
                "links",
            ],
            {
                "result_hash": {"type": "string", "pattern": "^[a-z0-9-]+:[0-9a-f]+$"},
                "entries_total": _integer(),
                "verdicts": _object(
                    list(VERDICTS),
                    {v: _integer() for v in VERDICTS},
                    description="Entries with this result hash, per verdict (all pages)",
                ),
                "checkpoint": {
                    "oneOf": [
                        {"type": "null"},
                        _object(
                            ["tree_size", "root_hash", "created_at", "note"],
                            {
                                "tree_size": _integer(),
                                "root_hash": _HEX32,
                                "created_at": _TIME,
                                "note": {"type": "string"},
                            },
                        ),
                    ],
                    "description": "The latest signed checkpoint, which the proofs are against",
                },
                "entries": {"type": "array", "items": _ref("AttestedEntry")},
                "next": _NULLABLE_STRING,
                "links": _ref("Links"),
            },
        ),
        "Stats": _object(
            [
                "bucket",
                "group_by",
                "since",
                "until",
                "filters",
                "counted_entries",
                "tree_size",
                "counts",
            ],
            {
                "bucket": {"enum": list(BUCKETS)},
                "group_by": {"type": "array", "items": {"enum": list(STATS_GROUPS)}},
                "since": {"type": ["string", "null"], "format": "date-time"},
                "until": {"type": ["string", "null"], "format": "date-time"},
                "filters": {
                    "type": "object",
                    "properties": {g: {"type": "string"} for g in STATS_GROUPS},
                    "additionalProperties": False,
                },
                "counted_entries": {
                    **_integer(),
                    "description": "The counts cover every entry below this index",
                },
                "tree_size": _integer(),
                "counts": {
                    "type": "array",
                    "maxItems": MAX_COUNTS,
                    "items": _object(
                        ["start", "group", "submissions"],
                        {
                            "start": _TIME,
                            "group": {
                                "type": "object",
                                "properties": {g: group_value for g in STATS_GROUPS},
                                "additionalProperties": False,
                            },
                            "submissions": _integer(1),
                        },
                    ),
                },
            },
        ),
    }


# --- operations ------------------------------------------------------------------------------


def _index(description: str = "The entry's index (0-based)") -> Schema:
    return _parameter("index", _integer(), description, where="path")


_FILTERS: list[Schema] = [
    _parameter("since", _TIME, "Appended at or after (ISO 8601, or a date YYYY-MM-DD; UTC)"),
    _parameter("until", _TIME, "Appended before (ISO 8601, or a date; later than since)"),
    _parameter("kind", {"enum": list(KINDS)}, "The kind of entry"),
    _parameter("verdict", {"enum": list(VERDICTS)}, "The verdict"),
    _parameter("worker", _TEXT, "The worker's name"),
    _parameter("image", _TEXT, "The matched reference image"),
    _parameter(
        "pcr0", {"type": "string", "pattern": "^[0-9a-fA-F]{96}$"}, "PCR0 (SHA-384, in hex)"
    ),
    _parameter(
        "module",
        _TEXT,
        "A module ID (`i-…-enc…`), or an instance (`i-…`), which matches its every enclave",
    ),
    _parameter(
        "result_hash",
        {"type": "string", "pattern": _RESULT_HASH_FILTER},
        "The result hash, `<algorithm>:<hex>`",
    ),
    _parameter(
        "evidence_sha256",
        {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "The SHA-256 of the evidence (the attestation document)",
    ),
    _parameter(
        "evidence_kind",
        {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
        "The kind of evidence an attestation judged: "
        + ", ".join(f"`{k}`" for k in EvidenceKind)
        + " (this service judges "
        + ", ".join(f"`{k}`" for k in EVIDENCE_KINDS)
        + "; another kind matches what the ledger recorded of it, if anything)",
    ),
    _parameter(
        "ak_path",
        {"enum": list(AK_PATHS)},
        "`tpm2-quote` entries whose attestation key (AK) is vouched for this way (the "
        "entry's `claims.ak.path`): by an AWS NitroTPM document, a Google AK certificate, an "
        "enrolment in this ledger, or nothing",
    ),
    _parameter(
        "ak",
        {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "`tpm2-quote` entries quoted by this attestation key: the SHA-256 of its "
        "SubjectPublicKeyInfo (DER), in hex (the entry's `claims.ak.sha256`)",
    ),
]

_INVALID = _problem("A bad parameter; `parameter` names it", "invalid_parameter")

#: the settings' defaults, for the limits the document states
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}


def _collateral_document() -> Schema:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return _object(
        ["sha256", "kind", "tee", "fmspc", "name", "issued_at", "next_update", "source",
         "added_at", "url"],
        {
            "sha256": _HEX32,
            "kind": {"type": "string", "enum": list(COLLATERAL_KINDS)},
            "tee": _NULLABLE_STRING,
            "fmspc": _NULLABLE_STRING,
            "name": _NULLABLE_STRING,
            "issued_at": nullable_time,
            "next_update": nullable_time,
            "source": {"type": "string"},
            "added_at": _TIME,
            "url": {"type": "string"},
        },
    )  # fmt: skip


def _collateral_list() -> Schema:
    return _object(
        ["documents", "truncated", "limit"],
        {
            "documents": {"type": "array", "items": _collateral_document()},
            "truncated": {"type": "boolean"},
            "limit": _integer(1),
        },
    )


def _impact_page() -> Schema:
    tcb_info = _object(
        ["sha256", "tee", "fmspc", "issue_date", "tcb_evaluation_data_number", "url"],
        {
            "sha256": _HEX32,
            "tee": {"type": "string", "enum": ["TDX", "SGX"]},
            "fmspc": {"type": "string"},
            "issue_date": _TIME,
            "tcb_evaluation_data_number": _integer(),
            "url": {"type": "string"},
        },
    )
    marking = _object(
        ["tcb_info", "status", "error", "advisory_ids", "tcb_date"],
        {
            "tcb_info": tcb_info,
            "status": _NULLABLE_STRING,
            "error": {"type": ["string", "null"], "enum": ["no_matching_tcb_level", None]},
            "advisory_ids": {"type": "array", "items": {"type": "string"}},
            "tcb_date": _NULLABLE_STRING,
        },
    )
    entry = _object(
        ["index", "appended_at", "url", "evidence_kind", "image", "worker", "verdict", "fmspc",
         "old", "new", "marked_by"],
        {
            "index": _integer(),
            "appended_at": _TIME,
            "url": {"type": "string"},
            "evidence_kind": {"type": "string", "enum": ["intel-tdx", "intel-sgx"]},
            "image": _NULLABLE_STRING,
            "worker": _NULLABLE_STRING,
            "verdict": _NULLABLE_STRING,
            "fmspc": {"type": "string"},
            "old": _object(
                ["status", "tcb_date", "tcb_info_sha256", "tcb_evaluation_data_number"],
                {
                    "status": {"type": "string"},
                    "tcb_date": _NULLABLE_STRING,
                    "tcb_info_sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                    "tcb_evaluation_data_number": {"type": ["integer", "null"]},
                },
            ),
            "new": marking,
            "marked_by": {"type": "array", "items": marking, "minItems": 1},
        },
    )  # fmt: skip
    return _object(
        ["entries", "next", "links", "limit"],
        {
            "entries": {"type": "array", "items": entry},
            "next": _NULLABLE_STRING,
            "links": {"type": "object"},
            "limit": _integer(1),
        },
    )


def _paths() -> dict[str, Schema]:
    reader, worker = "reader", "worker"
    bad_request = _problem("Bad request", "malformed_request")
    return {
        "/api/v1/challenges": {
            "post": _operation(
                "issueChallenges",
                "Fresh single-use nonces",
                {
                    "201": _json(_ref("Challenges"), "The nonces, for this worker only"),
                    "400": bad_request,
                    "413": _problem("The body is too large", "payload_too_large"),
                    "415": _problem("Not application/json", "unsupported_media_type"),
                    "429": _problem(
                        "Over the client's request rate, or the worker already holds "
                        "ATTEST_LEDGER_MAX_OPEN_CHALLENGES open challenges (Retry-After: "
                        "until the soonest of them expires); nothing was issued",
                        "rate_limited",
                        "too_many_challenges",
                        headers=_RATE_LIMITED["headers"],
                    ),
                },
                role=worker,
                tag="workers",
                body={
                    "required": False,
                    "content": {"application/json": {"schema": _ref("ChallengeRequest")}},
                },
            )
        },
        "/api/v1/attestations": {
            "post": _operation(
                "submitAttestation",
                "Submit an attestation document and a result hash; returns the receipt",
                {
                    "201": _json(_ref("Receipt"), "Recorded (whatever the verdict)"),
                    "200": _json(
                        _ref("Receipt"),
                        "A replay of the same idempotency key, or evidence this worker "
                        "already recorded",
                    ),
                    "400": bad_request,
                    "409": _problem(
                        "Conflict; nothing was written",
                        "idempotency_conflict",
                        "nonce_already_used",
                    ),
                    "413": _problem(
                        "The body or the document is too large, or the verdict record of its "
                        "devices would not fit one ledger entry",
                        "payload_too_large",
                        "record_too_large",
                    ),
                    "415": _problem("Not application/json", "unsupported_media_type"),
                    "503": _problem(
                        "The ledger is busy (nothing was written), or the database is "
                        "unavailable (nothing was acknowledged: retry with the same idempotency "
                        "key, which never records twice)",
                        "ledger_busy",
                        "database_unavailable",
                        headers=_RETRY_AFTER,
                    ),
                },
                role=worker,
                tag="workers",
                parameters=[
                    _parameter(
                        "Idempotency-Key",
                        {"type": "string", "minLength": 1, "maxLength": 200},
                        "Instead of the body's idempotency_key",
                        where="header",
                    )
                ],
                body={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Submission")}},
                },
            )
        },
        "/api/v1/checkpoint": {
            "get": _operation(
                "getCheckpoint",
                "The latest signed checkpoint, or the one of a given size",
                {
                    "200": {
                        "description": "A C2SP signed note (tlog-checkpoint)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "400": bad_request,
                    "404": _problem("No checkpoint (of that size) yet", "not_found"),
                },
                role=None,
                tag="checkpoints",
                parameters=[_parameter("tree_size", _integer(), "A checkpointed tree size")],
            )
        },
        "/api/v1/checkpoints": {
            "get": _operation(
                "listCheckpoints",
                "The published checkpoints, newest first",
                {"200": _json(_ref("CheckpointList"), "A page"), "400": bad_request},
                role=None,
                tag="checkpoints",
                parameters=[
                    _parameter("before", _integer(), "Only sizes below this"),
                    _parameter("limit", _integer(1, default=50), "How many (at most 500)"),
                ],
            )
        },
        "/api/v1/log-key": {
            "get": _operation(
                "getLogKey",
                "The ledger's verifier key",
                {"200": _json(_ref("LogKey"), "The key")},
                role=None,
                tag="checkpoints",
                database=False,
            )
        },
        "/api/v1/ear-keys": {
            "get": _operation(
                "getEarKeys",
                "The verifier's EAR-signing public keys (JWKS)",
                {"200": _json(_ref("EarKeys"), "The JWK Set")},
                role=None,
                tag="checkpoints",
                description="The keys that sign every verdict's EAR (a receipt's ear, an "
                "entry's ear), each named by its kid, the RFC 7638 thumbprint. Public and "
                "cacheable.",
                database=False,
            )
        },
        "/api/v1/consistency": {
            "get": _operation(
                "getConsistencyProof",
                "A consistency proof between two tree sizes",
                {
                    "200": _json(_ref("ConsistencyProof"), "RFC 9162 consistency proof"),
                    "400": _problem(
                        "Missing or bad sizes", "malformed_request", "tree_size_unavailable"
                    ),
                },
                role=None,
                tag="checkpoints",
                parameters=[
                    _parameter("first", _integer(1), "The older size", required=True),
                    _parameter("second", _integer(1), "The newer size", required=True),
                ],
            )
        },
        "/api/v1/tree": {
            "get": _operation(
                "getTree",
                "The current (not yet checkpointed) tree size",
                {"200": _json(_ref("Tree"), "The size")},
                role=None,
                tag="checkpoints",
            )
        },
        "/api/v1/entries": {
            "get": _operation(
                "searchEntries",
                "Search entries (the portal's filters), a keyset page at a time",
                {
                    "200": _json(_ref("SearchPage"), "One page, in the order asked"),
                    "400": _INVALID,
                },
                role=reader,
                tag="compliance",
                description=(
                    "Filters combine with AND. Pages are keyset pages: follow `next` with "
                    "`after`, `prev` with `before`; a cursor belongs to its sort. Unknown "
                    "parameters, and parameters given twice, are refused."
                ),
                parameters=[
                    *_FILTERS,
                    _parameter("sort", {"enum": list(SORTS), "default": "index-desc"}, "Order"),
                    _parameter("after", {"type": "string"}, "The `next` cursor of a page"),
                    _parameter("before", {"type": "string"}, "The `prev` cursor of a page"),
                    _parameter(
                        "limit", _integer(1, MAX_PAGE, default=DEFAULT_PAGE), "Entries per page"
                    ),
                    _parameter("count", {"enum": ["exact"]}, "Add the number of matches"),
                ],
            )
        },
        "/api/v1/entries/{index}": {
            "get": _operation(
                "getEntry",
                "An entry: canonical bytes, leaf and chain hashes, decoded record",
                {
                    "200": _json(_ref("Entry"), "The entry"),
                    "404": _problem("No such entry", "not_found"),
                },
                role=reader,
                tag="entries",
                parameters=[_index()],
            )
        },
        "/api/v1/entries/{index}/proof": {
            "get": _operation(
                "getInclusionProof",
                "An entry's inclusion proof (default: against the latest checkpoint)",
                {
                    "200": {
                        "description": "JSON, or a C2SP tlog-proof with format=tlog-proof",
                        "content": {
                            "application/json": {"schema": _ref("InclusionProof")},
                            "text/plain": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _problem(
                        "Bad parameters, or a size no signed checkpoint has",
                        "malformed_request",
                        "tree_size_unavailable",
                    ),
                    "404": _problem(
                        "No such entry, or no checkpoint covers it yet",
                        "not_found",
                        "not_yet_checkpointed",
                    ),
                },
                role=reader,
                tag="entries",
                parameters=[
                    _index(),
                    _parameter("tree_size", _integer(1), "Prove against this size"),
                    _parameter(
                        "format", {"enum": ["json", "tlog-proof"], "default": "json"}, "Format"
                    ),
                ],
            )
        },
        "/api/v1/entries/{index}/evidence": {
            "get": _operation(
                "getEvidence",
                "The raw evidence an entry judged",
                {
                    "200": {
                        "description": "The evidence as received: a Nitro COSE_Sign1 document "
                        "(application/cbor), or the raw bytes of another kind (an SEV-SNP "
                        "report: application/octet-stream)",
                        "content": {
                            "application/cbor": {"schema": {"type": "string", "format": "binary"}},
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    "404": _problem("No such entry, or it has no evidence", "not_found"),
                },
                role=reader,
                tag="entries",
                parameters=[_index()],
            )
        },
        "/api/v1/collateral": {
            "get": _operation(
                "listCollateral",
                "The Intel collateral documents the service keeps, newest first",
                {"200": _json(_collateral_list(), "The documents"), "400": _INVALID},
                role=reader,
                tag="compliance",
                description=(
                    "TCB info, QE identity, CRLs and TCB Signing certificates, each named by "
                    f"the SHA-256 of its bytes; at most {MAX_DOCUMENTS} (`truncated` says if "
                    "more are kept)."
                ),
                parameters=[
                    _parameter(
                        "kind",
                        {"type": "string", "enum": list(COLLATERAL_KINDS)},
                        "Only documents of this kind",
                    ),
                    _parameter("fmspc", {"type": "string", "pattern": FMSPC_PATTERN}, "A platform"),
                    _parameter(
                        "limit", _integer(1, MAX_DOCUMENTS, default=MAX_DOCUMENTS), "Documents"
                    ),
                ],
            )
        },
        "/api/v1/collateral/{digest}": {
            "get": _operation(
                "getCollateral",
                "One kept collateral document, byte for byte",
                {
                    "200": {
                        "description": "The document (JSON PCS body, or DER CRL/certificate)",
                        "content": {
                            media: {"schema": {"type": "string", "format": "binary"}}
                            for media in (
                                "application/json",
                                "application/pkix-crl",
                                "application/pkix-cert",
                            )
                        },
                    },
                    "400": _INVALID,
                    "404": _problem("No document kept has this SHA-256", "not_found"),
                },
                role=reader,
                tag="compliance",
                parameters=[
                    _parameter(
                        "digest",
                        {"type": "string", "pattern": SHA256_PATTERN},
                        "SHA-256 of the document (lowercase hex)",
                        where="path",
                    )
                ],
            )
        },
        "/api/v1/collateral/impact": {
            "get": _operation(
                "getRevocationImpact",
                "TDX and SGX entries that a later TCB info marks OutOfDate or Revoked",
                {"200": _json(_impact_page(), "The entries, newest first"), "400": _INVALID},
                role=reader,
                tag="compliance",
                description=(
                    "Each TDX or SGX entry is judged again against every kept TCB info of its "
                    "TEE and FMSPC issued after the one that judged it (the verifier's own TCB "
                    "evaluation of its stored quote); listed when one puts it in a worse tier "
                    "that is OutOfDate, OutOfDateConfigurationNeeded or Revoked, or lists no "
                    "level it reaches (`error`: `no_matching_tcb_level`). `next` is the "
                    "`after` cursor of the next page."
                ),
                parameters=[
                    _parameter("fmspc", {"type": "string", "pattern": FMSPC_PATTERN}, "A platform"),
                    _parameter(
                        "since",
                        {"type": "string"},
                        "Only later TCB infos issued at or after this instant (ISO 8601)",
                    ),
                    _parameter(
                        "after",
                        {"type": "string", "pattern": "^[0-9]{1,19}$"},
                        "The `next` cursor of a page",
                    ),
                    _parameter(
                        "limit",
                        _integer(1, MAX_IMPACT_PAGE, default=DEFAULT_IMPACT_PAGE),
                        "Entries per page",
                    ),
                ],
            )
        },
        "/api/v1/results/{result_hash}": {
            "get": _operation(
                "lookUpResult",
                "Was this result attested? Every entry with this result hash, with proofs",
                {
                    "200": _json(_ref("ResultLookup"), "The entries, oldest first"),
                    "400": _INVALID,
                    "404": _problem("No entry has this result hash", "result_not_found"),
                },
                role=reader,
                tag="compliance",
                description=(
                    "Each entry comes with its verdict and reasons and with its inclusion "
                    "proof against the latest signed checkpoint, or `not_yet_checkpointed` "
                    f"when none covers it yet. At most {MAX_RESULT_PAGE} entries a page; "
                    "`next` is the `after` cursor of the next one."
                ),
                parameters=[
                    _parameter(
                        "result_hash",
                        {"type": "string", "pattern": RESULT_HASH_PATTERN},
                        "`<algorithm>:<hex>` (sha256, sha384, sha512)",
                        where="path",
                    ),
                    _parameter("after", {"type": "string"}, "The `next` cursor of a page"),
                    _parameter(
                        "limit",
                        _integer(1, MAX_RESULT_PAGE, default=MAX_RESULT_PAGE),
                        "Entries per page",
                    ),
                ],
            )
        },
        "/api/v1/stats": {
            "get": _operation(
                "getStats",
                "Submissions counted per hour, day or month, grouped and filtered",
                {
                    "200": _json(_ref("Stats"), "The counts, earliest first"),
                    "400": _problem(
                        "A bad parameter, or too many counts",
                        "invalid_parameter",
                        "too_many_counts",
                    ),
                },
                role=reader,
                tag="compliance",
                description=(
                    "Counts of attestation entries (every verdict), from the hourly counts, "
                    "brought up to date first. since and until are taken to whole hours: the "
                    "hour holding since, through the last hour that starts before until. At "
                    f"most {MAX_COUNTS} counts in one answer."
                ),
                parameters=[
                    _parameter("bucket", {"enum": list(BUCKETS), "default": "day"}, "Bucket (UTC)"),
                    _parameter(
                        "group_by",
                        {
                            "type": "string",
                            "pattern": "^((verdict|image|worker)(,(verdict|image|worker))*)?$",
                        },
                        "Comma-separated, each at most once; none: one count per bucket",
                    ),
                    _FILTERS[0],
                    _FILTERS[1],
                    _parameter("verdict", {"enum": list(VERDICTS)}, "Only this verdict"),
                    _parameter("image", _TEXT, "Only this image"),
                    _parameter("worker", _TEXT, "Only this worker"),
                ],
            )
        },
        "/api/v1/export": {
            "get": _operation(
                "exportBundle",
                "A proof bundle of the selected entries (as `attest-ledger export` writes it)",
                {
                    "200": {
                        "description": "The bundle: a gzip tar, byte-identical for the same "
                        "selection at the same checkpoint",
                        "content": {
                            "application/gzip": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "400": _problem(
                        "A bad parameter (`parameter` names it), or more entries than an "
                        f"export may hold (ATTEST_LEDGER_EXPORT_MAX_ENTRIES, "
                        f"default {_DEFAULTS['export_max_entries']})",
                        "invalid_parameter",
                        "export_too_large",
                    ),
                    "404": _problem(
                        "No entry covered by the checkpoint matches, or no checkpoint has "
                        "that size",
                        "nothing_to_export",
                        "not_found",
                    ),
                    "409": _problem(
                        "The selected entries were judged against a trust anchor this "
                        "service does not hold (configure it, or export with the command "
                        "line's --trust-root)",
                        "unknown_trust_anchor",
                    ),
                    "429": _problem(
                        "An export of this reader is still being built, or the service builds "
                        f"ATTEST_LEDGER_EXPORT_CONCURRENCY (default "
                        f"{_DEFAULTS['export_concurrency']}) already, or over the request "
                        "rate; nothing was started",
                        "export_in_progress",
                        "exports_busy",
                        "rate_limited",
                        headers=_RATE_LIMITED["headers"],
                    ),
                    "503": _problem(
                        "The bundle took longer than ATTEST_LEDGER_EXPORT_SECONDS (default "
                        f"{_DEFAULTS['export_seconds']:g}) to build and was stopped, or the "
                        "database is unavailable",
                        "export_timeout",
                        "database_unavailable",
                        headers=_RETRY_AFTER,
                    ),
                },
                role=reader,
                tag="compliance",
                description=(
                    "Entries selected by the search filters, and by explicit result hashes or "
                    "indices, each with its evidence and an inclusion proof to one signed "
                    "checkpoint (the latest, or `tree_size`), the ledger key, the trust "
                    "anchors, the policy revisions they name, a signed manifest, a report and "
                    "a standalone verifier. Limits: one export at a time per reader, "
                    "ATTEST_LEDGER_EXPORT_CONCURRENCY at a time in the whole service, "
                    "ATTEST_LEDGER_EXPORT_MAX_ENTRIES entries, ATTEST_LEDGER_EXPORT_SECONDS "
                    "to build; a build stops as soon as its client goes away. Larger bundles: "
                    "`attest-ledger export` where the database is."
                ),
                parameters=[
                    *_FILTERS,
                    _parameter(
                        "result_hashes",
                        {"type": "string", "maxLength": 200_000},
                        f"Comma-separated result hashes (at most {MAX_EXPORT_HASHES})",
                    ),
                    _parameter(
                        "indices",
                        {"type": "string", "pattern": "^[0-9]{1,19}(,[0-9]{1,19})*$"},
                        f"Comma-separated entry indices (at most {MAX_EXPORT_INDICES})",
                    ),
                    _parameter("tree_size", _integer(), "The signed checkpoint to prove against"),
                ],
            )
        },
        "/api/v1/openapi.json": {
            "get": _operation(
                "getOpenApi",
                "This document",
                {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                role=None,
                tag="meta",
                database=False,
            )
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once; treat it as read-only)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "attestation-ledger",
            "version": "1",
            "summary": "AWS Nitro attestation verdicts in an append-only Merkle ledger",
            "description": (
                "Workers submit attestation documents and receive receipts; readers (auditors, "
                "compliance systems) search the ledger and fetch entries, evidence and "
                "proofs; checkpoints and consistency proofs are public. Errors are RFC 9457 "
                "problem details with a stable `code`."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "workers", "description": "Submitting (worker tokens)"},
            {"name": "checkpoints", "description": "Public: checkpoints, key, proofs between"},
            {"name": "entries", "description": "One entry (reader tokens)"},
            {"name": "compliance", "description": "Queries (reader tokens)"},
            {"name": "meta", "description": "This description"},
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "Worker tokens (`alw_…`) submit; reader tokens (`alr_…`) read. Each "
                        "endpoint takes one role and refuses the other with 403."
                    ),
                }
            },
        },
    }
