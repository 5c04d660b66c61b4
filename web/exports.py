"""Proof bundles over HTTP, for the compliance API and the portal: the same archive as
``attest-ledger export``, spooled to a temporary file (so memory does not grow with the
selection) and streamed from there once it is complete."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Any

from flask import Response
from sqlalchemy.orm import Session

from attest_ledger.bundle import (
    BundleError,
    BundleSelection,
    UnknownTrustAnchor,
    export_bundle,
    known_trust_anchors,
)
from web.problems import Problem

__all__ = ["bundle_response"]

_CHUNK = 1 << 16


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(_CHUNK):
            yield chunk


def bundle_response(runtime: Any, selection: BundleSelection, tree_size: int | None) -> Response:
    """The bundle as an attachment, or a Problem: 404 ``nothing_to_export`` when no entry
    covered by the checkpoint matches, 404 ``not_found`` for an unknown checkpoint size, 409
    ``unknown_trust_anchor`` when the entries name an anchor this service does not hold."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the generator or below
    try:
        with runtime.engine.connect() as plain:
            snapshot = plain.execution_options(isolation_level="REPEATABLE READ")
            with Session(bind=snapshot) as session, session.begin():
                summary = export_bundle(
                    session, spool, signer=runtime.signer,
                    trust_anchors=known_trust_anchors(runtime.trust_anchor), selection=selection,
                    tree_size=tree_size,
                )  # fmt: skip
    except UnknownTrustAnchor as exc:
        spool.close()
        raise Problem(409, "unknown_trust_anchor", str(exc)) from None
    except BundleError as exc:
        spool.close()
        code = "not_found" if "tree size" in str(exc) else "nothing_to_export"
        raise Problem(404, code, str(exc)) from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    name = f"attestation-ledger-bundle-{summary.tree_size}-{summary.entries}.tar.gz"
    return Response(
        _chunks(spool),
        mimetype="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(summary.bytes_written),
        },
    )
