"""The JSON API, versioned under /api/v1.

Workers (``worker`` tokens)::

    POST /api/v1/challenges            fresh single-use nonces
    POST /api/v1/attestations          submit a document and a result hash -> receipt

Anyone (checkpoints and proofs between them are public, as in any transparency log)::

    GET  /api/v1/checkpoint[?tree_size=N]     the signed checkpoint (text/plain)
    GET  /api/v1/checkpoints[?before=&limit=] the list of checkpoints
    GET  /api/v1/log-key                      the ledger's verifier key
    GET  /api/v1/ear-keys                     the verifier's EAR-signing keys (JWKS)
    GET  /api/v1/consistency?first=&second=   a consistency proof between two sizes
    GET  /api/v1/tree                         the current (not yet checkpointed) size
    GET  /api/v1/openapi.json                 the OpenAPI 3.1 description of all of /api/v1

Readers (``reader`` tokens)::

    GET  /api/v1/entries/<index>               an entry, its bytes and hashes
    GET  /api/v1/entries/<index>/proof[?tree_size=N&format=json|tlog-proof]
    GET  /api/v1/entries/<index>/evidence      the raw attestation document (application/cbor)

The compliance queries (search, result lookup, statistics) are in :mod:`web.compliance`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from attest_ledger import challenges
from attest_ledger.intake import Client, Receipt
from ledger.checkpoint import tlog_proof
from ledger.checkpoints import SignedCheckpoint, checkpoint_at, latest_checkpoint, list_checkpoints
from ledger.reads import consistency_proof, get_entry, get_evidence, inclusion_proof, tree_state
from verifier.nitro.policy import NITRO_KINDS
from verifier.timefmt import iso_utc
from web.auth import current_client, require
from web.openapi import document
from web.problems import Problem
from web.sessions import db
from web.submission import parse_submission

__all__ = ["MAX_INDEX", "bp"]

bp = Blueprint("api", __name__, url_prefix="/api/v1")

_MAX_CHALLENGES = 100
#: the largest index or tree size (PostgreSQL's bigint); a larger index matches no route (404)
MAX_INDEX = 2**63 - 1
_INDEX = f"<int(max={MAX_INDEX}):index>"
_DIGITS = re.compile(r"[0-9]{1,19}")


def runtime() -> Any:
    return current_app.extensions["attest_ledger.runtime"]


def metrics() -> Any:
    return current_app.extensions["attest_ledger.metrics"]


# --- workers ---------------------------------------------------------------------------------


def _json_body(*, required: bool) -> dict[str, Any]:
    data = request.get_data(cache=True)
    if request.content_length is not None and len(data) != request.content_length:
        # The connection ended before the announced body did: never act on part of a request.
        raise Problem(400, "malformed_request", "the body is shorter than its Content-Length")
    if not data:
        if required:
            raise Problem(400, "malformed_request", "a JSON body is required")
        return {}
    if request.mimetype != "application/json":
        raise Problem(415, "unsupported_media_type", "the body must be application/json")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "malformed_request", "the body is not valid JSON") from None
    except RecursionError:  # "[[[[…": 10 KB of brackets was a 500
        raise Problem(400, "malformed_request", "the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise Problem(400, "malformed_request", "the body must be a JSON object")
    return body


@bp.post("/challenges")
@require("worker")
def issue_challenges() -> tuple[Response, int]:
    body = _json_body(required=False)
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= _MAX_CHALLENGES:
        raise Problem(
            400, "malformed_request", f"count must be an integer from 1 to {_MAX_CHALLENGES}"
        )
    settings = runtime().settings
    ttl = timedelta(seconds=settings.challenge_ttl)
    session = db()
    try:
        issued = challenges.issue(
            session,
            current_client().id,
            count,
            ttl,
            runtime().clock(),
            max_open=settings.max_open_challenges,
        )
    except challenges.ChallengeLimit as exc:
        raise Problem(429, exc.code, exc.message, retry_after=exc.retry_after) from None
    session.commit()
    return jsonify(
        {
            "challenges": [
                {"nonce": c.nonce.hex(), "expires_at": iso_utc(c.expires_at)} for c in issued
            ],
            "ttl_seconds": int(ttl.total_seconds()),
        }
    ), 201


@bp.post("/attestations")
@require("worker")
def submit_attestation() -> tuple[Response, int]:
    submission = parse_submission(_json_body(required=True), request.headers.get("Idempotency-Key"))
    client = current_client()
    started = time.perf_counter()
    receipt = runtime().intake.submit(Client(client.id, client.name), submission, session=db())
    metrics().submission(
        str(receipt.record.get("verdict")),
        time.perf_counter() - started,
        verify=receipt.verify_seconds,
        append=receipt.append_seconds,
        new=not (receipt.duplicate or receipt.replayed),
    )
    status = 200 if receipt.duplicate or receipt.replayed else 201
    return jsonify(_receipt_json(receipt)), status


class _LatestCheckpoint:
    """The latest checkpoint, re-read at most every ``ttl`` seconds, for receipts. A stale
    answer only ever says "pending" a moment longer: checkpoints only move forward."""

    def __init__(self, ttl: float = 0.25) -> None:
        self.ttl = ttl
        self._value: SignedCheckpoint | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> SignedCheckpoint | None:
        with self._lock:
            if time.monotonic() - self._read_at > self.ttl:
                self._value = latest_checkpoint(db())
                self._read_at = time.monotonic()
            return self._value


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    record = receipt.record
    cache = current_app.extensions.setdefault(
        "attest_ledger.latest", _LatestCheckpoint(runtime().settings.receipt_checkpoint_ttl)
    )
    latest = cache.get()
    if latest is not None and latest.tree_size > receipt.index:
        checkpoint: dict[str, Any] = {
            "status": "published",
            "tree_size": latest.tree_size,
            "note": latest.note,
            "proof_url": f"/api/v1/entries/{receipt.index}/proof?tree_size={latest.tree_size}",
        }
    else:
        settings = runtime().settings
        checkpoint = {
            "status": "pending",
            "expected_within_seconds": settings.checkpoint_interval,
            "or_after_entries": settings.checkpoint_entries,
            "url": "/api/v1/checkpoint",
        }
    verdict: dict[str, Any] = {
        "status": record.get("verdict"),
        "error": record.get("error"),
        "reasons": record.get("reasons", []),
        "image": record.get("image"),
        "policy": record.get("policy"),
        "policy_revision": record.get("policy_revision"),
        "verified_at": record.get("verified_at"),
    }
    if isinstance(record.get("devices"), list):
        verdict["cpu_status"] = record.get("cpu_verdict")
        verdict["devices"] = [
            {"submod": d.get("submod"), "evidence_kind": d.get("evidence_kind"),
             "status": d.get("verdict")}
            for d in record["devices"]
        ]  # fmt: skip
    return {
        "entry": {
            "index": receipt.index,
            "leaf_hash": receipt.leaf_hash.hex(),
            "url": f"/api/v1/entries/{receipt.index}",
        },
        "verdict": verdict,
        "evidence_sha256": record.get("evidence_sha256"),
        "ear": record.get("ear"),
        "duplicate": receipt.duplicate,
        "replayed": receipt.replayed,
        "checkpoint": checkpoint,
    }


# --- public ----------------------------------------------------------------------------------


def _arg(name: str) -> str | None:
    """The query parameter ``name``; given twice it is ambiguous, so refused (never the first
    value silently: ``tree_size=&tree_size=x`` once answered with the latest checkpoint)."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise Problem(400, "malformed_request", f"{name} is given more than once")
    return values[0] if values else None


def _int_arg(name: str, *, default: int | None = None, minimum: int = 0) -> int | None:
    text = _arg(name)
    if text is None or text == "":
        return default
    if not _DIGITS.fullmatch(text):  # not str.isdigit(): "²" is a digit to it, not to int()
        raise Problem(400, "malformed_request", f"{name} must be a non-negative integer")
    value = int(text)
    if value < minimum:
        raise Problem(400, "malformed_request", f"{name} must be at least {minimum}")
    if value > MAX_INDEX:  # PostgreSQL's bigint; beyond it the query itself fails
        raise Problem(400, "malformed_request", f"{name} must be at most {MAX_INDEX}")
    return value


@bp.get("/checkpoint")
def get_checkpoint() -> Response:
    size = _int_arg("tree_size")
    checkpoint = checkpoint_at(db(), size) if size is not None else latest_checkpoint(db())
    if checkpoint is None:
        raise Problem(
            404,
            "not_found",
            "no checkpoint" + (f" at tree size {size}" if size is not None else " yet"),
        )
    return Response(checkpoint.note, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


def _checkpoint_json(checkpoint: SignedCheckpoint) -> dict[str, Any]:
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.body.root_hash.hex(),
        "chain_head": checkpoint.body.chain_head.hex() if checkpoint.body.chain_head else None,
        "created_at": iso_utc(checkpoint.created_at),
        "note": checkpoint.note,
    }


@bp.get("/checkpoints")
def get_checkpoints() -> Response:
    before = _int_arg("before")
    limit = _int_arg("limit", default=50, minimum=1) or 50
    items = list_checkpoints(db(), before=before, limit=min(limit, 500))
    return jsonify({"checkpoints": [_checkpoint_json(c) for c in items]})


@bp.get("/log-key")
def get_log_key() -> Response:
    key = runtime().log_key
    return jsonify(
        {
            "origin": key.name,
            "verifier_key": str(key),
            "algorithm": "ed25519",
            "format": "c2sp.org/signed-note",
        }
    )


@bp.get("/ear-keys")
def get_ear_keys() -> Response:
    """The JWKS of the key that signs every verdict's EAR: public, and cacheable."""
    response = jsonify(runtime().ear_signer.jwks())
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/consistency")
def get_consistency() -> Response:
    first = _int_arg("first", minimum=1)
    second = _int_arg("second", minimum=1)
    if first is None or second is None:
        raise Problem(400, "malformed_request", "first and second tree sizes are required")
    hashes = consistency_proof(db(), first, second)
    return jsonify({"first": first, "second": second, "hashes": [h.hex() for h in hashes]})


# --- readers ---------------------------------------------------------------------------------


@bp.get(f"/entries/{_INDEX}")
@require("reader")
def get_entry_view(index: int) -> Response:
    stored = get_entry(db(), index)
    return jsonify(
        {
            "index": stored.index,
            "leaf_hash": stored.leaf_hash.hex(),
            "chain_hash": stored.chain_hash.hex(),
            "appended_at": iso_utc(stored.appended_at),
            "entry": json.loads(stored.data),
            "entry_bytes_b64": base64.b64encode(stored.data).decode(),
            "evidence_url": f"/api/v1/entries/{index}/evidence" if stored.evidence_sha256 else None,
        }
    )


@bp.get(f"/entries/{_INDEX}/proof")
@require("reader")
def get_inclusion_proof(index: int) -> Response:
    session = db()
    size = _int_arg("tree_size", minimum=1)
    proof_format = _arg("format") or "json"
    if proof_format not in ("json", "tlog-proof"):
        raise Problem(400, "malformed_request", "format must be json or tlog-proof")
    if size is None:
        latest = latest_checkpoint(session)
        if latest is None or latest.tree_size <= index:
            raise Problem(
                404,
                "not_yet_checkpointed",
                f"no checkpoint covers entry {index} yet; retry shortly",
            )
        size = latest.tree_size
    stored = get_entry(session, index)
    checkpoint = checkpoint_at(session, size)
    if checkpoint is None:  # a proof is only worth its signed root
        raise Problem(
            400,
            "tree_size_unavailable",
            f"no signed checkpoint has tree size {size}; /api/v1/checkpoints lists them",
        )
    hashes = inclusion_proof(session, index, size)
    if proof_format == "tlog-proof":
        return Response(tlog_proof(index, hashes, checkpoint.note), mimetype="text/plain")
    return jsonify(
        {
            "index": index,
            "tree_size": size,
            "leaf_hash": stored.leaf_hash.hex(),
            "hashes": [h.hex() for h in hashes],
            "checkpoint": checkpoint.note,
        }
    )


@bp.get(f"/entries/{_INDEX}/evidence")
@require("reader")
def get_evidence_view(index: int) -> Response:
    session = db()
    evidence = get_evidence(session, index)
    if evidence is None:
        raise Problem(404, "not_found", f"entry {index} has no evidence")
    kind = json.loads(get_entry(session, index).data).get("evidence_kind")
    nitro = kind is None or kind in NITRO_KINDS  # entries before evidence kinds were Nitro's
    suffix = "cbor" if nitro else "bin"
    return Response(
        evidence,
        mimetype="application/cbor" if nitro else "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="entry-{index}.{suffix}"'},
    )


@bp.get("/tree")
def get_tree() -> Response:
    """The current (not yet checkpointed) size; the root is only published signed."""
    return jsonify({"tree_size": tree_state(db()).size})


@bp.get("/openapi.json")
def get_openapi() -> Response:
    """The OpenAPI 3.1 description of every endpoint under /api/v1 (public)."""
    return jsonify(document())
