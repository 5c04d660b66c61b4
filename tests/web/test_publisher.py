"""Checkpoint publication in the service: one publisher elected, taking over when it dies."""

from __future__ import annotations

import time

import pytest

from attest_ledger.publisher import CheckpointPublisher
from ledger.append import append
from ledger.checkpoints import latest_checkpoint
from ledger.db import make_engine, session_scope
from ledger.note import NoteSigner
from tests.ledger.test_append import entry

pytestmark = pytest.mark.db


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_one_publisher_at_a_time_and_a_successor_takes_over(db_url, session_factory) -> None:
    signer = NoteSigner.generate("example.com/publisher")
    engines = [make_engine(db_url, pool_size=2) for _ in range(2)]
    published: list[int] = []
    first = CheckpointPublisher(
        engines[0], signer, interval=0.2, max_entries=5, poll=0.05, on_publish=published.append
    ).start()
    second = CheckpointPublisher(
        engines[1], signer, interval=0.2, max_entries=5, poll=0.05, on_publish=published.append
    ).start()
    try:
        wait_for(lambda: first.leader or second.leader)
        time.sleep(0.5)
        assert [first.leader, second.leader].count(True) == 1

        with session_scope(session_factory) as session:
            append(session, [entry(i) for i in range(3)])
        wait_for(lambda: bool(published) and published[-1] == 3)  # after the interval

        leader, other = (first, second) if first.leader else (second, first)
        leader.stop()
        wait_for(lambda: other.leader)
        with session_scope(session_factory) as session:
            append(session, [entry(i) for i in range(3, 10)])  # more than max_entries: at once
        wait_for(lambda: published[-1] == 10)
        with session_factory() as session:
            assert latest_checkpoint(session).tree_size == 10
    finally:
        first.stop()
        second.stop()
        for engine in engines:
            engine.dispose()
