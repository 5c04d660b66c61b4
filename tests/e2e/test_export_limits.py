"""An export over HTTP stops when its client goes away (issue #10, item 8): sixteen whole-ledger
exports once kept running after their clients had left. Real gunicorn, a real socket."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from ledger.append import append
from ledger.db import make_engine, make_session_factory, session_scope
from tests.ledger.test_append import entry

pytestmark = [pytest.mark.db, pytest.mark.e2e]

ENTRIES = 30_000  # far more than an export builds in the seconds this test waits


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def advisory_locks(engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            ).scalar_one()
        )


def test_an_export_stops_when_its_client_goes_away(live, db_url) -> None:
    engine = make_engine(db_url)
    locks = create_engine(db_url)
    try:
        _stops_when_the_client_goes(live, make_session_factory(engine), locks)
    finally:
        locks.dispose()
        engine.dispose()


def _stops_when_the_client_goes(live, sessions, locks) -> None:
    for start in range(0, ENTRIES, 1000):
        with session_scope(sessions) as session:
            append(session, [entry(n) for n in range(start, start + 1000)])
    base = live["base"]
    wait_for(
        lambda: (
            httpx.get(f"{base}/api/v1/checkpoint").text.split("\n")[1] != "0"
            and int(httpx.get(f"{base}/api/v1/checkpoint").text.split("\n")[1]) >= ENTRIES
        ),
        60,
        "a checkpoint over the whole ledger",
    )
    held = advisory_locks(locks)  # the checkpoint publisher's election lock
    port = int(base.rsplit(":", 1)[1])
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(
        b"GET /api/v1/export?kind=attestation HTTP/1.1\r\nHost: test\r\n"
        b"Authorization: Bearer " + live["tokens"]["auditor"].encode() + b"\r\n\r\n"
    )
    wait_for(lambda: advisory_locks(locks) >= held + 2, 30, "the export to start")
    client.close()  # the auditor gives up
    wait_for(lambda: advisory_locks(locks) == held, 20, "the export to stop")
    wait_for(
        lambda: "stopped" in live["log"].read_text() and "client gone" in live["log"].read_text(),
        10,
        "the service to say why it stopped",
    )
    # and the next export of the same reader is not refused as "in progress"
    answer = httpx.get(
        f"{base}/api/v1/export?indices=0,1",
        headers={"Authorization": f"Bearer {live['tokens']['auditor']}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text  # and an export that is not left, ends
