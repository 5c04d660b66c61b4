"""Endorsements (issue #11): what a verdict rests on beside its evidence is stored once,
content-addressed, append-only; the entry names each by its SHA-256; the audit checks them;
and the evidence kind is an index column, filled for entries recorded before it existed."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError

from attest_ledger.database import downgrade, upgrade
from ledger.append import append
from ledger.batcher import AppendBatcher
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.entry import NewEntry, parse_entry
from ledger.errors import InvalidEntry
from ledger.reads import get_endorsement
from tests.ledger.test_audit import run_audit, tamper

pytestmark = pytest.mark.db

VCEK = b"0\x82 a certificate, say"
ASK = b"0\x82 its issuer"


def snp_entry(n: int, *endorsements: tuple[str, bytes]) -> NewEntry:
    record = {"kind": "attestation", "evidence_kind": "amd-sev-snp", "n": n, "verdict": "affirming"}
    return NewEntry.from_record(record, evidence=b"report %d" % n, endorsements=endorsements)


def test_endorsements_are_named_by_digest_and_stored_once(session_factory) -> None:
    with session_scope(session_factory) as session:
        append(session, [snp_entry(1, ("vcek", VCEK), ("ask", ASK)), snp_entry(2, ("vcek", VCEK))])
    with session_scope(session_factory) as session:
        append(session, [snp_entry(3, ("vcek", VCEK))])
    with session_factory() as session:
        stored = session.execute(text("SELECT count(*) FROM ledger_endorsements")).scalar_one()
        assert stored == 2  # the VCEK once, however many entries name it
        data = session.execute(text("SELECT data FROM ledger_entries WHERE idx = 0")).scalar_one()
        record = parse_entry(bytes(data))
        assert record["endorsements"] == [
            {"kind": "vcek", "sha256": hashlib.sha256(VCEK).hexdigest()},
            {"kind": "ask", "sha256": hashlib.sha256(ASK).hexdigest()},
        ]
        assert get_endorsement(session, hashlib.sha256(ASK).digest()) == ASK
        kinds = session.execute(text("SELECT DISTINCT evidence_kind FROM ledger_entries")).all()
        assert kinds == [("amd-sev-snp",)]
    assert run_audit(session_factory).ok


def test_endorsements_known_stored_are_not_sent_again(session_factory) -> None:
    """``stored`` names blobs committed already (the table is append-only): they are not
    written again. Proven by naming one that is NOT stored: it stays absent (the audit, which
    reads the table, then finds the entry names a missing endorsement)."""
    with session_scope(session_factory) as session:
        append(session, [snp_entry(1, ("vcek", VCEK))], stored={hashlib.sha256(VCEK).digest()})
    with session_factory() as session:
        assert session.execute(text("SELECT count(*) FROM ledger_endorsements")).scalar_one() == 0
    assert not run_audit(session_factory).ok


def test_a_batcher_sends_an_endorsement_once_and_remembers_only_what_it_committed(
    session_factory,
) -> None:
    batcher = AppendBatcher(session_factory)
    try:
        first = batcher.append(snp_entry(1, ("vcek", VCEK), ("ask", ASK)))
        assert not first.duplicate
        assert set(batcher._stored) == {hashlib.sha256(VCEK).digest(), hashlib.sha256(ASK).digest()}
        batcher.append(snp_entry(2, ("vcek", VCEK)))
        # a duplicate of entry 1's evidence with a new blob: nothing appended, nothing remembered
        other = b"0\x82 another chip's"
        again = batcher.append(
            NewEntry.from_record(
                {"kind": "attestation", "evidence_kind": "amd-sev-snp", "n": 9},
                evidence=b"report 1",
                endorsements=[("vcek", other)],
            )
        )
        assert again.duplicate
        assert hashlib.sha256(other).digest() not in batcher._stored
    finally:
        batcher.close()
    with session_factory() as session:
        assert session.execute(text("SELECT count(*) FROM ledger_endorsements")).scalar_one() == 2
    assert run_audit(session_factory).ok


def test_an_entry_must_name_exactly_the_endorsements_given(session_factory) -> None:
    named_only = NewEntry(
        data=snp_entry(1, ("vcek", VCEK)).data, evidence=b"report 1", endorsements=()
    )
    given_only = NewEntry(data=snp_entry(1).data, evidence=b"report 1", endorsements=(VCEK,))
    malformed = NewEntry.from_record({"kind": "attestation", "endorsements": [{"sha256": "x"}]})
    for bad in (named_only, given_only, malformed):
        with session_scope(session_factory) as session, pytest.raises(InvalidEntry):
            append(session, [bad])
    with session_factory() as session:
        assert session.execute(text("SELECT count(*) FROM ledger_endorsements")).scalar_one() == 0


def test_endorsements_are_append_only(session_factory) -> None:
    with session_scope(session_factory) as session:
        append(session, [snp_entry(1, ("vcek", VCEK))])
    for statement in (
        "UPDATE ledger_endorsements SET data = 'x'",
        "DELETE FROM ledger_endorsements",
        "TRUNCATE ledger_endorsements",
    ):
        with session_factory() as session, pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM ledger_endorsements", "is missing"),
        ("UPDATE ledger_endorsements SET data = 'changed'", "another SHA-256"),
    ],
)
def test_the_audit_finds_a_missing_or_changed_endorsement(session_factory, statement, message):
    with session_scope(session_factory) as session:
        append(session, [snp_entry(1), snp_entry(2, ("vcek", VCEK))])
    tamper(session_factory, statement)
    report = run_audit(session_factory)
    assert not report.ok
    assert (report.divergence.index, report.divergence.what) == (1, "endorsement")
    assert message in report.divergence.message


def test_the_migration_fills_the_evidence_kind_of_earlier_entries(databases) -> None:
    url = databases.empty()
    try:
        upgrade(url, "0006")
        engine = make_engine(url)
        with engine.begin() as connection:  # entries as the service wrote them before 0007
            connection.execute(text("SET session_replication_role = replica"))
        with session_scope(make_session_factory(engine)) as session:
            session.execute(
                text(
                    "INSERT INTO ledger_entries (idx, data, leaf_hash, chain_hash, kind) "
                    "VALUES (0, :d0, :h, :h, 'attestation'), (1, :d1, :h, :h, 'policy')"
                ),
                {
                    "d0": b'{"evidence_kind":"aws-nitro-enclave","kind":"attestation"}',
                    "d1": b'{"kind":"policy"}',
                    "h": b"\x00" * 32,
                },
            )
        engine.dispose()
        upgrade(url)
        plain = create_engine(url, poolclass=pool.NullPool)
        with plain.connect() as connection:
            rows = connection.execute(
                text("SELECT idx, evidence_kind FROM ledger_entries ORDER BY idx")
            ).all()
            assert rows == [(0, "aws-nitro-enclave"), (1, None)]
            with pytest.raises(DBAPIError, match="append-only"):  # the trigger is back
                connection.execute(text("UPDATE ledger_entries SET evidence_kind = 'x'"))
        plain.dispose()
        downgrade(url, "0006")
        upgrade(url)
    finally:
        databases.drop(url)
