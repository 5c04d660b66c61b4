"""The audit recomputes everything and locates tampering done as a superuser, triggers off."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ledger.append import append
from ledger.audit import audit
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.note import NoteSigner
from tests.ledger.test_append import entry

pytestmark = pytest.mark.db

SIGNER = NoteSigner.generate("example.com/attestation-ledger-audit")


@pytest.fixture
def ledger(session_factory):
    """40 entries (most with evidence) and checkpoints at sizes 10, 25 and 40."""
    for start, count in ((0, 10), (10, 15), (25, 15)):
        with session_scope(session_factory) as session:
            append(session, [entry(i, evidence=i % 4 != 0) for i in range(start, start + count)])
        with session_scope(session_factory) as session:
            publish_checkpoint(session, SIGNER)
    return session_factory


def run_audit(factory, **kwargs):
    with factory() as session:
        return audit(session, SIGNER.verifier(), **kwargs)


def tamper(factory, *statements: str) -> None:
    with session_scope(factory) as session:
        session.execute(text("SET session_replication_role = replica"))  # triggers off
        for statement in statements:
            session.execute(text(statement))


def test_an_untouched_ledger_passes(ledger) -> None:
    seen = []
    report = run_audit(ledger, progress=lambda done, total: seen.append((done, total)), chunk=7)
    assert report.ok, report.divergence
    assert (report.entries, report.checkpoints) == (40, 3)
    assert report.nodes == sum(40 >> level for level in range(1, 6))
    assert seen[-1] == (40, 40)
    assert len(seen) > 3  # progress was reported along the way


def test_an_empty_ledger_passes(session_factory) -> None:
    assert run_audit(session_factory).ok


@pytest.mark.parametrize(
    ("statements", "index", "what"),
    [
        (
            [
                "UPDATE ledger_entries SET data = convert_to(replace(convert_from(data, 'UTF8'), "
                "'affirming', 'affirmed'), 'UTF8') WHERE idx = 17"
            ],
            17,
            "leaf_hash",
        ),
        (["UPDATE ledger_entries SET leaf_hash = sha256(leaf_hash) WHERE idx = 5"], 5, "leaf_hash"),
        (["UPDATE ledger_nodes SET hash = sha256(hash) WHERE level = 2 AND idx = 3"], 12, "node"),
        (["UPDATE ledger_nodes SET hash = sha256(hash) WHERE level = 5 AND idx = 0"], 0, "node"),
        (
            [
                "DELETE FROM ledger_evidence WHERE idx = 39",
                "DELETE FROM ledger_entries WHERE idx = 39",
            ],
            39,
            "missing_entry",
        ),
        (
            [
                "DELETE FROM ledger_evidence WHERE idx = 21",
                "DELETE FROM ledger_entries WHERE idx = 21",
            ],
            21,
            "missing_entry",
        ),
        (
            [
                # entry 30 and entry 31 (with their evidence) trade places
                *(
                    f"UPDATE {table} SET idx = {new} WHERE idx = {old}"
                    for old, new in ((30, 999999), (31, 30), (999999, 31))
                    for table in ("ledger_entries", "ledger_evidence")
                ),
            ],
            30,
            "chain",
        ),
        (["UPDATE ledger_evidence SET data = data || 'x'::bytea WHERE idx = 9"], 9, "evidence"),
        (["DELETE FROM ledger_evidence WHERE idx = 10"], 10, "evidence"),
        (["UPDATE ledger_entries SET chain_hash = sha256(chain_hash) WHERE idx = 33"], 33, "chain"),
        (["UPDATE ledger_entries SET verdict = 'affirming' WHERE idx = 3"], 3, "index_columns"),
        (["INSERT INTO ledger_nodes VALUES (1, 20, sha256('x'))"], None, "extra_node"),
        (["UPDATE ledger_sequencer SET chain_head = sha256(chain_head)"], None, "sequencer"),
    ],
    ids=[
        "changed-entry-bytes",
        "changed-leaf-hash",
        "changed-node",
        "changed-top-node",
        "deleted-last-row",
        "deleted-middle-row",
        "swapped-rows",
        "changed-evidence",
        "deleted-evidence",
        "changed-chain-hash",
        "changed-index-column",
        "extra-node",
        "changed-sequencer",
    ],
)
def test_tampering_is_caught_and_located(ledger, statements, index, what) -> None:
    tamper(ledger, *statements)
    report = run_audit(ledger)
    assert not report.ok
    assert report.divergence.what == what, report.divergence
    assert report.divergence.index == index, report.divergence


def test_a_rewritten_checkpoint_is_caught(ledger) -> None:
    """Replace the size-25 checkpoint with one signed by another key, over a false root."""
    impostor = NoteSigner.generate(SIGNER.name)
    forged = f"{SIGNER.name}\n25\n{'A' * 43}=\n"
    note = forged + "\n" + impostor.signature_line(forged)
    tamper(ledger, f"UPDATE ledger_checkpoints SET note = '{note}' WHERE tree_size = 25")
    report = run_audit(ledger)
    assert report.divergence.what == "checkpoint_signature"
    assert report.divergence.checkpoint == 25


def test_a_checkpoint_with_a_false_root_is_caught(ledger) -> None:
    """Even correctly signed (as by a stolen key), a checkpoint must match the entries."""
    from ledger.checkpoint import CheckpointBody
    from ledger.note import sign_note

    body = CheckpointBody(SIGNER.name, 25, b"\x07" * 32, chain_head=b"\x08" * 32)
    note = sign_note(body.to_text(), [SIGNER])
    tamper(ledger, f"UPDATE ledger_checkpoints SET note = '{note}' WHERE tree_size = 25")
    report = run_audit(ledger)
    assert report.divergence.what == "checkpoint_root"
    assert report.divergence.checkpoint == 25
    assert report.divergence.index == 24


def test_a_deleted_checkpoint_pointer_target_is_caught(ledger) -> None:
    tamper(ledger, "UPDATE ledger_latest_checkpoint SET tree_size = 10")
    report = run_audit(ledger)
    assert report.divergence.what == "latest_checkpoint"


def test_the_first_divergence_by_index_is_reported(ledger) -> None:
    tamper(
        ledger,
        "UPDATE ledger_entries SET leaf_hash = sha256(leaf_hash) WHERE idx = 30",
        "UPDATE ledger_nodes SET hash = sha256(hash) WHERE level = 1 AND idx = 4",  # entries 8-9
    )
    report = run_audit(ledger)
    assert (report.divergence.index, report.divergence.what) == (8, "node")


def test_a_wrong_verifier_key_fails_every_checkpoint(ledger) -> None:
    with ledger() as session:
        report = audit(session, NoteSigner.generate(SIGNER.name).verifier())
    assert report.divergence.what == "checkpoint_signature"
    assert report.divergence.checkpoint == 10
