"""Appending, reading and proving on a real PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from ledger.append import append
from ledger.chain import GENESIS, next_chain_hash
from ledger.db import session_scope
from ledger.entry import NewEntry, canonical_json
from ledger.errors import EntryNotFound, InvalidEntry, TreeSizeUnavailable
from ledger.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from ledger.models import Entry, Evidence, Node
from ledger.reads import (
    chain_head_at,
    consistency_proof,
    get_entry,
    get_evidence,
    inclusion_proof,
    index_of_leaf,
    root_at,
    tree_state,
)
from tests.ledger.test_merkle import mth

pytestmark = pytest.mark.db


def entry(n: int, *, evidence: bool = True, **extra) -> NewEntry:
    record = {
        "kind": "attestation",
        "n": n,
        "verdict": "affirming" if n % 3 else "contraindicated",
        **extra,
    }
    return NewEntry.from_record(record, evidence=b"evidence %d" % n if evidence else None)


def test_append_assigns_dense_indices_and_stores_everything(session_factory) -> None:
    with session_factory() as session:
        assert tree_state(session).size == 0
        assert root_at(session, 0) == EMPTY_ROOT
    entries = [entry(i) for i in range(10)]
    with session_scope(session_factory) as session:
        results = append(session, entries)
    assert [r.index for r in results] == list(range(10))
    assert not any(r.duplicate for r in results)

    with session_factory() as session:
        state = tree_state(session)
        assert state.size == 10
        datas = [e.data for e in entries]
        assert state.root == mth(datas) == root_at(session, 10)
        chain = GENESIS
        for i, e in enumerate(entries):
            stored = get_entry(session, i)
            assert stored.data == e.data
            assert stored.leaf_hash == leaf_hash(e.data) == results[i].leaf_hash
            chain = next_chain_hash(chain, stored.leaf_hash)
            assert stored.chain_hash == chain
            assert get_evidence(session, i) == b"evidence %d" % i
            assert stored.evidence_sha256 == hashlib.sha256(b"evidence %d" % i).digest()
        assert state.chain_head == chain == chain_head_at(session, 10)
        row = session.execute(select(Entry).where(Entry.idx == 3)).scalar_one()
        assert row.kind == "attestation"
        assert row.verdict == "contraindicated"
        assert row.appended_at is not None


@pytest.mark.parametrize("threshold", [0, 10_000])
def test_both_write_paths_store_the_same_ledger(session_factory, monkeypatch, threshold) -> None:
    """Small batches are written by one statement, large ones by COPY; forcing every batch
    down one path must give the same rows, byte for byte, as the mixed default."""
    import ledger.append as module

    sizes = [1, 3, 70, 64, 65, 2]
    batches, n = [], 0
    for size in sizes:
        batches.append([entry(n + i, evidence=(n + i) % 4 != 0) for i in range(size)])
        n += size

    def stored(session):
        return (
            session.execute(
                text(
                    "SELECT idx, data, leaf_hash, chain_hash, verdict, evidence_sha256 "
                    "FROM ledger_entries ORDER BY idx"
                )
            ).all(),
            session.execute(text("SELECT idx, data FROM ledger_evidence ORDER BY idx")).all(),
            session.execute(text("SELECT level, idx, hash FROM ledger_nodes ORDER BY 1, 2")).all(),
            session.execute(
                text("SELECT tree_size, chain_head, compact_range FROM ledger_sequencer")
            ).one(),
        )

    monkeypatch.setattr(module, "COPY_THRESHOLD", threshold)
    for batch in batches:
        with session_scope(session_factory) as session:
            append(session, batch)
    with session_factory() as session:
        rows = stored(session)
        assert rows[3].tree_size == n
        assert rows[3].chain_head == chain_head_at(session, n)
        assert tree_state(session).root == mth([e.data for b in batches for e in b])
        assert len(rows[1]) == sum(1 for i in range(n) if i % 4 != 0)
        assert [bytes(r.data) for r in rows[1]] == [b"evidence %d" % r.idx for r in rows[1]]
        for size in range(1, n + 1, 7):  # the stored nodes give proofs that verify
            root = root_at(session, size)
            for index in range(0, size, 5):
                proof = inclusion_proof(session, index, size)
                verify_inclusion(rows[0][index].leaf_hash, index, size, proof, root)
    # The same ledger written the other way, in a second transaction that is rolled back.
    monkeypatch.setattr(module, "COPY_THRESHOLD", 10_000 - threshold)
    session = session_factory()
    try:
        session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        for table in ("ledger_evidence", "ledger_nodes", "ledger_entries"):
            session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            session.execute(text(f"DELETE FROM {table}"))
            session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        session.execute(text("ALTER TABLE ledger_sequencer DISABLE TRIGGER USER"))
        session.execute(
            text("UPDATE ledger_sequencer SET tree_size = 0, chain_head = :g, compact_range = ''"),
            {"g": GENESIS},
        )
        session.execute(text("ALTER TABLE ledger_sequencer ENABLE TRIGGER USER"))
        for batch in batches:
            append(session, batch)
        again = stored(session)
    finally:
        session.rollback()
        session.close()
    assert again[0] == rows[0]
    assert again[1] == rows[1]
    assert again[2] == rows[2]
    assert again[3] == rows[3]


def test_the_lock_timeout_bounds_the_wait_and_leaves_the_callers_setting(
    session_factory,
) -> None:
    from ledger.errors import LedgerBusy

    holder = session_factory()
    holder.execute(text("SELECT 1 FROM ledger_sequencer FOR UPDATE"))
    try:
        with session_factory() as session:
            session.execute(text("SET LOCAL lock_timeout = '7s'"))
            with pytest.raises(LedgerBusy):
                append(session, [entry(1)], lock_timeout=0.1)
            session.rollback()
        with session_factory() as session:
            session.execute(text("SET LOCAL lock_timeout = '7s'"))
            holder.rollback()  # free: the append goes through and the setting is back
            append(session, [entry(1)], lock_timeout=0.1)
            assert session.execute(text("SHOW lock_timeout")).scalar() == "7s"
            session.commit()
    finally:
        holder.rollback()
        holder.close()
    with session_factory() as session:
        assert tree_state(session).size == 1


def test_proofs_from_storage_verify_at_every_size(session_factory) -> None:
    entries = [entry(i, evidence=False) for i in range(37)]
    with session_scope(session_factory) as session:
        for start in range(0, 37, 5):  # several batches
            append(session, entries[start : start + 5])
    datas = [e.data for e in entries]
    with session_factory() as session:
        for size in range(1, 38):
            root = root_at(session, size)
            assert root == mth(datas[:size])
            for index in range(0, size, 3):
                verify_inclusion(
                    leaf_hash(datas[index]),
                    index,
                    size,
                    inclusion_proof(session, index, size),
                    root,
                )
            for old in range(1, size + 1, 4):
                verify_consistency(
                    old, size, consistency_proof(session, old, size), mth(datas[:old]), root
                )


def test_stored_nodes_are_about_one_per_entry(session_factory) -> None:
    with session_scope(session_factory) as session:
        append(session, [entry(i, evidence=False) for i in range(1000)])
    with session_factory() as session:
        nodes = session.execute(select(func.count()).select_from(Node)).scalar()
        assert nodes == sum(1000 >> level for level in range(1, 11))  # 994


def test_appending_the_same_evidence_twice_returns_the_existing_index(session_factory) -> None:
    with session_scope(session_factory) as session:
        first = append(session, [entry(1), entry(2)])
    with session_scope(session_factory) as session:
        again = append(session, [entry(3), entry(2, note="resubmitted"), entry(3), entry(4)])
    assert [(r.index, r.duplicate) for r in again] == [(2, False), (1, True), (2, True), (3, False)]
    assert again[1].leaf_hash == first[1].leaf_hash
    with session_factory() as session:
        assert tree_state(session).size == 4


def test_the_same_evidence_from_another_worker_is_its_own_entry(session_factory) -> None:
    """A repeat is the same evidence from the same submitter; from another worker it is that
    worker's entry (issue #10: a copied document must not block the worker it belongs to)."""
    with session_scope(session_factory) as session:
        first = append(session, [entry(1, worker="alpha")])
    with session_scope(session_factory) as session:
        again = append(
            session,
            [entry(1, worker="beta"), entry(1, worker="alpha"), entry(1, worker="beta")],
        )
    assert [(r.index, r.duplicate) for r in again] == [(1, False), (0, True), (1, True)]
    assert again[1].leaf_hash == first[0].leaf_hash
    with session_factory() as session, pytest.raises(DBAPIError, match="unique"):
        # the database itself holds the rule: a second row for (evidence, worker) is refused
        session.execute(
            text(
                "INSERT INTO ledger_entries (idx, data, leaf_hash, chain_hash, worker, "
                "evidence_sha256) SELECT 2, data, leaf_hash, chain_hash, worker, "
                "evidence_sha256 FROM ledger_entries WHERE idx = 1"
            )
        )


def test_a_rolled_back_append_leaves_nothing(session_factory) -> None:
    session = session_factory()
    append(session, [entry(i) for i in range(5)])
    session.rollback()
    session.close()
    with session_factory() as session:
        assert tree_state(session).size == 0
        assert session.execute(select(func.count()).select_from(Entry)).scalar() == 0
    with session_scope(session_factory) as session:
        assert append(session, [entry(9)])[0].index == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (NewEntry(b'{"b":1,"a":2}'), "canonical form"),
        (NewEntry(b'{"a": 1}'), "canonical form"),
        (NewEntry(b"[1,2]"), "JSON object"),
        (NewEntry(b"not json"), "not JSON"),
        (NewEntry(b'{"a":1.5}'), "floating-point"),
        (NewEntry(b'{"a":NaN}'), "floating-point"),
        (NewEntry(b'{"a":1,"a":2}'), "canonical form"),
        (NewEntry(b'{"evidence_sha256":"' + b"00" * 32 + b'"}'), "no evidence was given"),
        (NewEntry(canonical_json({"evidence_sha256": "00" * 32}), evidence=b"x"), "does not match"),
        (NewEntry(canonical_json({"evidence_sha256": "AB" * 32}), evidence=b"x"), "lowercase hex"),
        (NewEntry(canonical_json({"verdict": 5})), "verdict must be a string"),
        (NewEntry(canonical_json({"document_time": "yesterday"})), "document_time"),
        (NewEntry(canonical_json({"document_time": "2026-01-01T00:00:00"})), "with offset"),
        (NewEntry(b"{" + b'"a":"' + b"x" * 70000 + b'"}'), "larger than"),
    ],
)
def test_entries_that_break_the_contract_are_refused_and_nothing_is_written(
    session_factory, bad, message
) -> None:
    with session_factory() as session, pytest.raises(InvalidEntry, match=message):
        append(session, [entry(1), bad])
    with session_factory() as session:
        assert tree_state(session).size == 0


def test_canonical_json_refuses_floats() -> None:
    with pytest.raises(InvalidEntry, match="floating-point"):
        canonical_json({"a": [1, {"b": 0.5}]})


def test_document_time_is_indexed(session_factory) -> None:
    moment = "2026-06-01T12:00:00.000Z".replace("Z", "+00:00")
    with session_scope(session_factory) as session:
        append(session, [entry(1, document_time=moment)])
    with session_factory() as session:
        row = session.execute(select(Entry.document_time)).scalar_one()
        assert row == datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_reads_out_of_range(session_factory) -> None:
    with session_scope(session_factory) as session:
        append(session, [entry(i) for i in range(3)])
    with session_factory() as session:
        with pytest.raises(TreeSizeUnavailable, match="the tree has 3"):
            root_at(session, 4)
        with pytest.raises(EntryNotFound):
            inclusion_proof(session, 3, 3)
        with pytest.raises(TreeSizeUnavailable):
            consistency_proof(session, 0, 3)
        with pytest.raises(EntryNotFound, match="no entry at index 7"):
            get_entry(session, 7)
        assert index_of_leaf(session, leaf_hash(entry(1).data)) == 1
        assert index_of_leaf(session, bytes(32)) is None


def test_entries_without_evidence(session_factory) -> None:
    with session_scope(session_factory) as session:
        append(session, [entry(1, evidence=False), entry(1, evidence=False)])  # no dedup key
    with session_factory() as session:
        assert tree_state(session).size == 2
        assert get_evidence(session, 0) is None
        assert session.execute(select(func.count()).select_from(Evidence)).scalar() == 0


class TestAppendOnly:
    """The database itself refuses to change what was appended."""

    @pytest.fixture
    def filled(self, session_factory):
        with session_scope(session_factory) as session:
            append(session, [entry(i) for i in range(4)])
        return session_factory

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE ledger_entries SET data = 'x' WHERE idx = 1",
            "DELETE FROM ledger_entries WHERE idx = 3",
            "TRUNCATE ledger_entries CASCADE",
            "UPDATE ledger_evidence SET data = 'x'",
            "DELETE FROM ledger_evidence",
            "UPDATE ledger_nodes SET hash = hash",
            "DELETE FROM ledger_nodes",
            "TRUNCATE ledger_nodes",
            "DELETE FROM ledger_sequencer",
            "TRUNCATE ledger_sequencer",
            "UPDATE ledger_sequencer SET tree_size = 2",
            "DELETE FROM ledger_latest_checkpoint",
        ],
    )
    def test_changes_are_rejected(self, filled, statement) -> None:
        with (
            filled() as session,
            pytest.raises(DBAPIError, match=r"append-only|only moves forward"),
        ):
            session.execute(text(statement))

    def test_checkpoints_are_append_only(self, filled) -> None:
        from ledger.checkpoints import publish_checkpoint
        from ledger.note import NoteSigner

        signer = NoteSigner.generate("example.com/test-log")
        with session_scope(filled) as session:
            publish_checkpoint(session, signer)
        for statement in (
            "UPDATE ledger_checkpoints SET note = 'x'",
            "DELETE FROM ledger_checkpoints",
            "UPDATE ledger_latest_checkpoint SET tree_size = NULL",
        ):
            with (
                filled() as session,
                pytest.raises(DBAPIError, match=r"append-only|only moves forward"),
            ):
                session.execute(text(statement))
