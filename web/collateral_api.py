"""What the service keeps of Intel's collateral, and what later collateral says of the
entries it judged (reader tokens), read-only JSON under /api/v1::

    GET /api/v1/collateral[?kind=&fmspc=&limit=]     the documents kept, newest first
    GET /api/v1/collateral/<digest>                  one document, byte for byte
    GET /api/v1/collateral/impact[?fmspc=&since=&after=&limit=]
        the TDX and SGX entries a later TCB info marks OutOfDate or Revoked
        (:mod:`attest_ledger.impact`), newest first, in keyset pages like /api/v1/entries

Parameters are refused as the compliance API refuses them: unknown, repeated or malformed,
a 400 ``invalid_parameter`` problem naming the parameter.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from attest_ledger.collateral import KINDS
from attest_ledger.impact import revocation_impact
from attest_ledger.models import CollateralDocument
from ledger.search import SearchError, parse_time
from verifier import EvidenceKind
from verifier.tdx import DcapVerifier
from verifier.timefmt import iso_utc
from web.auth import require
from web.compliance import MAX_INDEX, _invalid, _limit, _links, _only
from web.problems import Problem
from web.sessions import db

__all__ = [
    "DEFAULT_IMPACT_PAGE",
    "FMSPC_PATTERN",
    "MAX_DOCUMENTS",
    "MAX_IMPACT_PAGE",
    "SHA256_PATTERN",
    "bp",
]

bp = Blueprint("collateral", __name__, url_prefix="/api/v1")

DEFAULT_IMPACT_PAGE = 100
MAX_IMPACT_PAGE = 1000
#: documents listed in one answer (newest first); more asks for a narrower question
MAX_DOCUMENTS = 1000
FMSPC_PATTERN = "^[0-9a-fA-F]{12}$"
SHA256_PATTERN = "^[0-9a-f]{64}$"
_FMSPC = re.compile(FMSPC_PATTERN)
_SHA256 = re.compile(SHA256_PATTERN)
_INDEX = re.compile(r"[0-9]{1,19}")
_MIMETYPES = {
    "tcb-info": "application/json",
    "qe-identity": "application/json",
    "crl": "application/pkix-crl",
    "certificate": "application/pkix-cert",
}


def _fmspc() -> str | None:
    text = request.args.get("fmspc") or None
    if text is not None and not _FMSPC.fullmatch(text):
        raise _invalid("fmspc", "12 hex digits (6 bytes), such as B0C06F000000")
    return None if text is None else text.lower()


def _document_json(document: CollateralDocument) -> dict[str, object]:
    digest = bytes(document.sha256).hex()
    return {
        "sha256": digest,
        "kind": document.kind,
        "tee": document.tee,
        "fmspc": None if document.fmspc is None else document.fmspc.upper(),
        "name": document.name,
        "issued_at": None if document.issued_at is None else iso_utc(document.issued_at),
        "next_update": None if document.next_update is None else iso_utc(document.next_update),
        "source": document.source,
        "added_at": iso_utc(document.added_at),
        "url": f"/api/v1/collateral/{digest}",
    }


@bp.get("/collateral")
@require("reader")
def list_collateral() -> Response:
    _only(("kind", "fmspc", "limit"))
    kind = request.args.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise _invalid("kind", f"one of {', '.join(KINDS)}")
    fmspc = _fmspc()
    limit = _limit(MAX_DOCUMENTS, MAX_DOCUMENTS)
    query = select(CollateralDocument).order_by(
        CollateralDocument.issued_at.desc().nulls_last(), CollateralDocument.sha256
    )
    if kind is not None:
        query = query.where(CollateralDocument.kind == kind)
    if fmspc is not None:
        query = query.where(CollateralDocument.fmspc == fmspc)
    documents = db().execute(query.limit(limit + 1)).scalars().all()
    return jsonify(
        {
            "documents": [_document_json(d) for d in documents[:limit]],
            "truncated": len(documents) > limit,
            "limit": limit,
        }
    )


@bp.get("/collateral/<digest>")
@require("reader")
def get_collateral(digest: str) -> Response:
    _only(())
    sha256 = digest
    if not _SHA256.fullmatch(sha256):
        raise Problem(404, "not_found", "a collateral document is named by 64 lowercase hex")
    document = db().get(CollateralDocument, bytes.fromhex(sha256))
    if document is None:
        raise Problem(404, "not_found", "no collateral document kept has that SHA-256")
    return Response(
        bytes(document.data),
        mimetype=_MIMETYPES.get(document.kind, "application/octet-stream"),
        headers={"Content-Disposition": f'attachment; filename="{document.kind}-{sha256[:16]}"'},
    )


def service_dcap_verifier() -> DcapVerifier:
    """The service's own DCAP verifier (its Intel roots): later collateral counts only if
    one of them vouches for it."""
    scheme = current_app.extensions["attest_ledger.runtime"].intake.schemes[
        str(EvidenceKind.INTEL_TDX)
    ]
    assert isinstance(scheme, DcapVerifier)  # noqa: S101 - the runtime builds one
    return scheme


@bp.get("/collateral/impact")
@require("reader")
def get_impact() -> Response:
    _only(("fmspc", "since", "after", "limit"))
    fmspc = _fmspc()
    since = None
    if request.args.get("since"):
        try:
            since = parse_time("since", request.args["since"])
        except SearchError as exc:
            raise _invalid(exc.parameter, exc.message) from None
    after_text = request.args.get("after") or None
    after = None
    if after_text is not None:
        if not _INDEX.fullmatch(after_text) or int(after_text) > MAX_INDEX:
            raise _invalid("after", "an entry index, as 'next' gave it")
        after = int(after_text)
    limit = _limit(DEFAULT_IMPACT_PAGE, MAX_IMPACT_PAGE)
    page = revocation_impact(
        db(), service_dcap_verifier(), fmspc=fmspc, since=since, after=after, limit=limit
    )
    return jsonify(
        {
            "entries": [entry.to_dict() for entry in page.entries],
            "next": page.after,
            "links": _links("/collateral/impact", page.after, None),
            "limit": limit,
        }
    )
