"""Proof bundles over HTTP, for the compliance API and the portal: the same archive as
``attest-ledger export``, spooled to a temporary file (so memory does not grow with the
selection) and streamed from there once it is complete.

Bounded, because a bundle costs the service a second of CPU per thousand entries or so:

* one export at a time per reader (API token or portal user) and at most
  ``export_concurrency`` at a time in the whole service (every process: PostgreSQL advisory
  locks count them); beyond that the answer is 429 ``export_in_progress`` or ``exports_busy``
  with Retry-After, at once, with nothing started;
* at most ``export_max_entries`` entries (400 ``export_too_large``: narrow the selection, or
  run ``attest-ledger export`` where the database is);
* at most ``export_seconds`` to build it (503 ``export_timeout``);
* stopped as soon as the client goes away: the build checks the client's socket as it goes,
  and the spool file is removed.
"""

from __future__ import annotations

import hashlib
import logging
import selectors
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from flask import Response, request
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from attest_ledger.bundles.export import (
    BundleError,
    BundleSelection,
    UnknownTrustAnchor,
    export_bundle,
    known_trust_anchors,
)
from web.problems import Problem

__all__ = ["EXPORT_LOCK", "ExportCancelled", "bundle_response"]

_CHUNK = 1 << 16
#: pg_advisory_lock classes: one lock per reader, and the service's export slots ("expo").
EXPORT_LOCK = 0x6578706F
_SLOT_BASE = EXPORT_LOCK << 16
#: How often (seconds) the build looks at the clock and at the client's socket.
_CHECK_EVERY = 0.25

log = logging.getLogger(__name__)


class ExportCancelled(Exception):
    """The client went away or the time ran out: the build stops and its spool is removed."""


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(_CHUNK):
            yield chunk


def _reader_key(reader: str) -> int:
    """A 63-bit advisory-lock key for one reader (API token or portal user)."""
    return int.from_bytes(hashlib.sha256(f"export:{reader}".encode()).digest()[:8], "big") >> 1


def _take_slots(locks: Connection, reader: str, concurrency: int) -> None:
    """Take this reader's lock and one of the service's export slots on ``locks`` (a
    connection of its own, held while the export is built); raise a 429 Problem if either is
    taken. Session-level locks: they end with the connection, whatever happens."""
    mine = locks.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _reader_key(reader)})
    if not mine.scalar():
        raise Problem(
            429,
            "export_in_progress",
            "an export of yours is still being built; wait for it (or cancel it) first",
            retry_after=5,
        )
    for slot in range(concurrency):
        taken = locks.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _SLOT_BASE + slot})
        if taken.scalar():
            return
    raise Problem(
        429,
        "exports_busy",
        f"{concurrency} exports are being built already; try again shortly",
        retry_after=5,
    )


def _client_gone() -> Callable[[], bool]:
    """A check that the client has closed its connection (False when it cannot be told)."""
    client = request.environ.get("gunicorn.socket")
    if not isinstance(client, socket.socket):
        return lambda: False

    def gone() -> bool:
        # Polled, never read with the socket's own timeout: the serving front gives sockets
        # one, and a peek would then wait for it (30 s) whatever MSG_DONTWAIT says.
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(client, selectors.EVENT_READ)
                if not selector.select(timeout=0):
                    return False  # open, nothing sent: the client is waiting for its bundle
            return client.recv(1, socket.MSG_PEEK) == b""  # readable: data, or the end
        except (BlockingIOError, InterruptedError):
            return False
        except (OSError, ValueError):
            return True

    return gone


def _watch(deadline: float, gone: Callable[[], bool]) -> Callable[[int, int], None]:
    checked = float("-inf")  # the first entry is checked, the rest every _CHECK_EVERY

    def progress(done: int, total: int) -> None:
        nonlocal checked
        now = time.monotonic()
        if now - checked < _CHECK_EVERY:
            return
        checked = now
        if now > deadline:
            raise ExportCancelled("timeout")
        if gone():
            raise ExportCancelled("client gone")

    return progress


def bundle_response(
    runtime: Any, selection: BundleSelection, tree_size: int | None, *, reader: str
) -> Response:
    """The bundle as an attachment, or a Problem: 404 ``nothing_to_export`` when no entry
    covered by the checkpoint matches, 404 ``not_found`` for an unknown checkpoint size, 409
    ``unknown_trust_anchor`` when the entries name an anchor this service does not hold, and
    the limits of the module docstring."""
    settings = runtime.settings
    with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as locks:
        try:
            _take_slots(locks, reader, settings.export_concurrency)
            spool, summary = _build(runtime, selection, tree_size, reader)
        finally:  # pooled connections keep session locks: give them back, built or refused
            locks.execute(text("SELECT pg_advisory_unlock_all()"))
    name = f"attestation-ledger-bundle-{summary.tree_size}-{summary.entries}.tar.gz"
    return Response(
        _chunks(spool),
        mimetype="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(summary.bytes_written),
        },
    )


def _build(
    runtime: Any, selection: BundleSelection, tree_size: int | None, reader: str
) -> tuple[IO[bytes], Any]:
    settings = runtime.settings
    started = time.monotonic()
    progress = _watch(started + settings.export_seconds, _client_gone())
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the generator or below
    try:
        with runtime.engine.connect() as plain:
            snapshot = plain.execution_options(isolation_level="REPEATABLE READ")
            with Session(bind=snapshot) as session, session.begin():
                summary = export_bundle(
                    session, spool, signer=runtime.signer,
                    trust_anchors=known_trust_anchors(*runtime.trust_anchors),
                    selection=selection,
                    tree_size=tree_size, max_entries=settings.export_max_entries,
                    progress=progress, ear_key=runtime.ear_signer.public_jwk(),
                )  # fmt: skip
    except UnknownTrustAnchor as exc:
        spool.close()
        raise Problem(409, "unknown_trust_anchor", str(exc)) from None
    except BundleError as exc:
        spool.close()
        code = exc.code if exc.code != "bundle_error" else None
        if code is None:
            code = "not_found" if "tree size" in str(exc) else "nothing_to_export"
        status = 400 if code == "export_too_large" else 404
        raise Problem(status, code, str(exc)) from None
    except ExportCancelled as exc:
        spool.close()
        log.warning(
            "export for %s stopped after %.1f s: %s", reader, time.monotonic() - started, exc
        )
        if str(exc) == "timeout":
            raise Problem(
                503,
                "export_timeout",
                f"the bundle took longer than {settings.export_seconds:g} s to build; narrow "
                "the selection, or run `attest-ledger export` where the database is",
                retry_after=60,
            ) from None
        raise Problem(499, "client_closed_request", "the client went away") from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, summary
