"""The ledger when its database goes away: connections closed by the server are replaced, an
unavailable database is told from every other error, and the batcher fails its callers at
once (never half-writing, never hanging)."""

from __future__ import annotations

import select
import threading

import psycopg
import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ledger.batcher import AppendBatcher
from ledger.db import driver_connection, make_engine, make_session_factory, unavailable_reason
from ledger.errors import DatabaseUnavailable
from ledger.reads import tree_state
from tests.ledger.test_append import entry
from tests.outage_support import database_away

pytestmark = pytest.mark.db


@pytest.fixture
def engines():
    """make_engine, and every engine made disposed of however the test ends."""
    made = []

    def make(url: str, **kwargs):
        made.append(make_engine(url, **kwargs))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def _admin(databases):
    return create_engine(databases.admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")


def _backend_pid(session: Session) -> int:
    with driver_connection(session).cursor() as cursor:  # the service's hot-path style
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def test_connections_the_server_closed_are_replaced_at_checkout(db_url, databases, engines) -> None:
    """What a restarted server leaves in a pool without pre-ping: connections that are all
    dead. The first request after the restart must not be the one to find out."""
    factory = make_session_factory(engines(db_url, pool_size=3, pre_ping=False))
    sessions = [factory() for _ in range(3)]
    before = {_backend_pid(session) for session in sessions}
    sockets = [driver_connection(session).fileno() for session in sessions]
    for session in sessions:
        session.close()
    with factory() as session:  # a healthy connection is reused, not replaced
        assert _backend_pid(session) in before
    admin = _admin(databases)
    with admin.connect() as connection:
        connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
            {"pids": list(before)},
        )
    admin.dispose()
    for fd in sockets:  # the backends exit a moment after being told to: wait for the hang-up
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(30_000), "the server never closed a terminated backend's connection"
    after = set()
    for _ in range(3):
        with factory() as session:
            after.add(_backend_pid(session))
    assert after.isdisjoint(before)


def _refused() -> psycopg.OperationalError:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect("host=/nonexistent-socket-dir port=1 connect_timeout=2")
    return caught.value


def test_unavailable_errors_are_told_from_every_other_error(db_url, databases, engines) -> None:
    url = db_url.replace("postgresql+psycopg://", "postgresql://")
    assert unavailable_reason(_refused()) is not None

    with psycopg.connect(url) as victim, psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError) as terminated:
            victim.execute("SELECT 1")
    assert unavailable_reason(terminated.value) is not None

    with database_away(databases.admin_url, db_url):  # a database refusing connections
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(url)
        with pytest.raises(OperationalError) as wrapped, engines(db_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    assert unavailable_reason(refused.value) is not None
    assert unavailable_reason(wrapped.value) is not None  # SQLAlchemy's wrapper too

    with psycopg.connect(url, autocommit=True) as connection:
        for statement, error in (
            ("SELECT 1/0", psycopg.errors.DivisionByZero),
            ("SET statement_timeout = 1; SELECT pg_sleep(1)", psycopg.errors.QueryCanceled),
            ("INSERT INTO ledger_entries (idx) VALUES (NULL)", psycopg.errors.NotNullViolation),
        ):
            with pytest.raises(error) as other:
                connection.execute(statement)
            assert unavailable_reason(other.value) is None, statement
        connection.execute("SET statement_timeout = 0")
    assert unavailable_reason(ValueError("not a database error")) is None
    assert unavailable_reason(psycopg.errors.DiskFull("could not extend file")) is not None


def test_a_batch_fails_all_its_callers_at_once_when_the_database_is_away(
    db_url, databases, engines
) -> None:
    factory = make_session_factory(engines(db_url, pre_ping=False))
    batcher = AppendBatcher(factory, max_wait=0.05)
    try:
        batcher.append(entry(0), timeout=30)
        with database_away(databases.admin_url, db_url):
            futures = [batcher.submit(entry(n)) for n in range(1, 6)]
            for future in futures:
                with pytest.raises(DatabaseUnavailable) as caught:
                    future.result(timeout=30)
                assert caught.value.code == "database_unavailable"
            assert batcher.split_batches == 0  # not retried entry by entry: all fail alike
        assert batcher.append(entry(6), timeout=30).index == 1  # back; nothing half-written
    finally:
        batcher.close()
    with factory() as session:
        assert tree_state(session).size == 2


def test_an_append_not_committed_in_time_is_unavailable_and_may_commit_later(
    db_url, engines
) -> None:
    factory = make_session_factory(engines(db_url))
    batcher = AppendBatcher(factory, lock_timeout=None)  # waits for the lock as long as it takes
    holder = factory()
    try:
        holder.execute(text("SELECT 1 FROM ledger_sequencer WHERE id = 1 FOR UPDATE"))
        with pytest.raises(DatabaseUnavailable, match=r"not committed within 0\.5 seconds"):
            batcher.append(entry(1), timeout=0.5)
        holder.rollback()  # the lock goes; the batch it waited for commits after all
        done = threading.Event()
        batcher.submit(entry(2)).add_done_callback(lambda _future: done.set())
        assert done.wait(30)
    finally:
        holder.close()
        batcher.close()
    with factory() as session:
        assert tree_state(session).size == 2
