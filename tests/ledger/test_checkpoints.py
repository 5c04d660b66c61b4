"""Signed checkpoints: forward only, by compare-and-swap, after a proven consistency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from ledger.append import append
from ledger.checkpoint import CheckpointBody
from ledger.checkpoints import (
    checkpoint_at,
    latest_checkpoint,
    list_checkpoints,
    publish_checkpoint,
)
from ledger.db import session_scope
from ledger.errors import CheckpointConflict, LedgerCorrupt
from ledger.merkle import EMPTY_ROOT, verify_consistency
from ledger.note import NoteSigner, open_note
from ledger.reads import consistency_proof, root_at
from tests.ledger.test_append import entry

pytestmark = pytest.mark.db

SIGNER = NoteSigner.generate("example.com/attestation-ledger-test")


def add(factory, start: int, count: int) -> None:
    with session_scope(factory) as session:
        append(session, [entry(i) for i in range(start, start + count)])


def test_first_checkpoint_of_an_empty_ledger(session_factory) -> None:
    with session_scope(session_factory) as session:
        assert latest_checkpoint(session) is None
        checkpoint = publish_checkpoint(session, SIGNER)
    assert checkpoint.tree_size == 0
    assert checkpoint.body.root_hash == EMPTY_ROOT
    opened = open_note(checkpoint.note, [SIGNER.verifier()])
    assert CheckpointBody.parse(opened.text) == checkpoint.body
    assert checkpoint.body.origin == SIGNER.name


def test_checkpoints_move_forward_with_root_and_chain_head(session_factory) -> None:
    add(session_factory, 0, 5)
    with session_scope(session_factory) as session:
        first = publish_checkpoint(session, SIGNER)
    add(session_factory, 5, 7)
    with session_scope(session_factory) as session:
        second = publish_checkpoint(session, SIGNER)
        again = publish_checkpoint(session, SIGNER)  # nothing new: the same checkpoint
    assert (first.tree_size, second.tree_size, again.tree_size) == (5, 12, 12)
    assert again.note == second.note
    with session_factory() as session:
        assert latest_checkpoint(session).note == second.note
        assert second.body.root_hash == root_at(session, 12)
        assert second.body.chain_head is not None
        proof = consistency_proof(session, 5, 12)
        verify_consistency(5, 12, proof, first.body.root_hash, second.body.root_hash)
        assert [c.tree_size for c in list_checkpoints(session)] == [12, 5]
        assert [c.tree_size for c in list_checkpoints(session, before=12)] == [5]
        assert checkpoint_at(session, 5).note == first.note
        assert checkpoint_at(session, 6) is None


def test_compare_and_swap_refuses_a_stale_writer(session_factory) -> None:
    """Writer A reads the latest checkpoint, writer B publishes first: A must not also
    advance from the checkpoint B already moved past."""
    add(session_factory, 0, 3)
    with session_scope(session_factory) as session:
        publish_checkpoint(session, SIGNER)
    add(session_factory, 3, 3)

    a = session_factory()
    a.execute(text("SELECT 1"))  # A's transaction has begun
    a_started = threading.Event()
    results: dict[str, object] = {}

    def writer_a() -> None:
        try:
            a_started.set()
            results["a"] = publish_checkpoint(a, SIGNER)
            a.commit()
        except Exception as exc:
            results["a"] = exc
            a.rollback()

    b = session_factory()
    results["b"] = publish_checkpoint(b, SIGNER)  # B holds the pointer row, not committed
    thread = threading.Thread(target=writer_a)
    thread.start()
    a_started.wait()
    thread.join(0.5)
    assert thread.is_alive()  # A waits on B's row lock
    b.commit()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(results["a"], CheckpointConflict)
    a.close()
    b.close()
    with session_factory() as session:
        assert latest_checkpoint(session).tree_size == 6


def test_a_checkpoint_with_a_broken_signature_stops_publication(session_factory) -> None:
    add(session_factory, 0, 2)
    with session_scope(session_factory) as session:
        publish_checkpoint(session, SIGNER)
    add(session_factory, 2, 2)
    other = NoteSigner.generate(SIGNER.name)
    with session_factory() as session, pytest.raises(LedgerCorrupt, match="does not verify"):
        publish_checkpoint(session, other)


def test_an_inconsistent_tree_is_never_signed(session_factory, databases) -> None:
    """Rewrite a stored node behind the ledger's back (superuser, triggers off): the next
    publication must refuse, because the tree no longer extends the last checkpoint."""
    add(session_factory, 0, 8)
    with session_scope(session_factory) as session:
        publish_checkpoint(session, SIGNER)
    add(session_factory, 8, 8)
    with session_scope(session_factory) as session:
        session.execute(text("SET session_replication_role = replica"))
        session.execute(
            text("UPDATE ledger_nodes SET hash = sha256(hash) WHERE level = 3 AND idx = 1")
        )
    with session_factory() as session, pytest.raises(LedgerCorrupt):
        publish_checkpoint(session, SIGNER)
    with session_factory() as session:
        assert latest_checkpoint(session).tree_size == 8


def test_a_damaged_compact_range_is_detected(session_factory) -> None:
    add(session_factory, 0, 5)
    with session_scope(session_factory) as session:
        session.execute(text("SET session_replication_role = replica"))
        session.execute(
            text(
                "UPDATE ledger_sequencer "
                "SET compact_range = sha256(compact_range) || sha256(compact_range)"
            )
        )
    with (
        session_factory() as session,
        pytest.raises(LedgerCorrupt, match=r"disagree on the root|compact range"),
    ):
        publish_checkpoint(session, SIGNER)
