"""Group commit through the in-process batcher."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from ledger.audit import audit
from ledger.batcher import AppendBatcher, BatcherClosed
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.errors import InvalidEntry
from ledger.note import NoteSigner
from ledger.reads import get_evidence, tree_state
from tests.ledger.test_append import entry

pytestmark = pytest.mark.db


def test_concurrent_single_appends_share_transactions(session_factory) -> None:
    batcher = AppendBatcher(session_factory, max_batch=500, max_wait=0.005)
    results: dict[int, int] = {}
    lock = threading.Lock()

    def client(worker: int) -> None:
        for n in range(25):
            number = worker * 1000 + n
            appended = batcher.append(entry(number), timeout=60)
            with lock:
                results[number] = appended.index

    threads = [threading.Thread(target=client, args=(w,)) for w in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.close()
    assert len(results) == 800
    assert sorted(results.values()) == list(range(800))
    assert batcher.batches < 400  # far fewer commits than entries
    with session_factory() as session:
        assert tree_state(session).size == 800
        for number, index in list(results.items())[:50]:
            assert get_evidence(session, index) == b"evidence %d" % number


def test_acknowledgement_comes_after_commit_and_after_hooks_share_the_transaction(
    session_factory,
) -> None:
    seen = []

    def after(session, appended) -> None:
        # Runs inside the batch's transaction: the entry is visible here, not yet committed.
        size = session.execute(text("SELECT tree_size FROM ledger_sequencer")).scalar()
        seen.append((appended.index, size))

    batcher = AppendBatcher(session_factory)
    appended = batcher.append(entry(1), after=after, timeout=30)
    batcher.close()
    assert seen == [(0, 1)]
    with session_factory() as session:  # committed once append() returned
        assert tree_state(session).size == 1
    assert appended.index == 0


def _outcomes(futures) -> list[int | str]:
    """Each future's entry index, or the message of the error it raised."""
    outcomes: list[int | str] = []
    for future in futures:
        try:
            outcomes.append(future.result(timeout=30).index)
        except RuntimeError as exc:
            outcomes.append(str(exc))
    return outcomes


def test_one_failing_entry_does_not_sink_its_batch(session_factory) -> None:
    def explode(session, appended) -> None:
        raise RuntimeError("this caller's follow-up failed")

    batcher = AppendBatcher(session_factory, max_wait=0.2)
    futures = [batcher.submit(entry(i), after=explode if i == 3 else None) for i in range(6)]
    outcomes = _outcomes(futures)
    batcher.close()
    assert outcomes[3] == "this caller's follow-up failed"
    assert sorted(o for o in outcomes if isinstance(o, int)) == [0, 1, 2, 3, 4]
    with session_factory() as session:
        assert tree_state(session).size == 5


def test_follow_ups_run_once_per_batch_and_a_failure_stays_with_its_entry(
    session_factory,
) -> None:
    from ledger.batcher import FollowUp

    calls: list[list[tuple[int, str]]] = []

    def keep(session, items) -> None:
        size = session.execute(text("SELECT tree_size FROM ledger_sequencer")).scalar()
        assert size == max(appended.index for appended, _ in items) + 1  # same transaction
        if any(payload == "bad" for _, payload in items):
            raise RuntimeError("a bad payload")
        calls.append([(appended.index, payload) for appended, payload in items])

    batcher = AppendBatcher(session_factory, max_wait=0.3)
    payloads = ["a", "b", "c", "d"]
    futures = [batcher.submit(entry(i), after=FollowUp(keep, p)) for i, p in enumerate(payloads)]
    assert [f.result(timeout=30).index for f in futures] == [0, 1, 2, 3]
    assert calls == [[(0, "a"), (1, "b"), (2, "c"), (3, "d")]]  # one call for the batch

    calls.clear()
    payloads = ["e", "bad", "f"]
    futures = [
        batcher.submit(entry(10 + i), after=FollowUp(keep, p)) for i, p in enumerate(payloads)
    ]
    outcomes = _outcomes(futures)
    batcher.close()
    assert outcomes == [4, "a bad payload", 5]
    assert calls == [[(4, "e")], [(5, "f")]]  # retried one by one
    assert batcher.split_batches == 1
    with session_factory() as session:
        assert tree_state(session).size == 6


def test_invalid_entries_are_refused_at_submit(session_factory) -> None:
    from ledger.entry import NewEntry

    batcher = AppendBatcher(session_factory)
    with pytest.raises(InvalidEntry):
        batcher.submit(NewEntry(b"not json"))
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(entry(1))


def test_audit_after_batched_appends(session_factory) -> None:
    signer = NoteSigner.generate("example.com/batched")
    batcher = AppendBatcher(session_factory)
    futures = [batcher.submit(entry(i)) for i in range(300)]
    for future in futures:
        future.result(timeout=60)
    batcher.close()
    with session_scope(session_factory) as session:
        publish_checkpoint(session, signer)
    with session_factory() as session:
        assert audit(session, signer.verifier()).ok
