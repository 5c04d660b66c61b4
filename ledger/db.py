"""Engines and sessions. Nothing here runs at import time; callers build what they need.

The transaction belongs to the caller: ``session_scope`` is the one place that commits (on
success) or rolls back (on any exception), for command-line tools and background workers;
the web app has its own per-request equivalent.

When the database goes away (the server is killed or restarted, a backend is terminated, the
disk fills up) the errors surface as psycopg or SQLAlchemy errors of many shapes;
:func:`unavailable_reason` tells them from all other errors, so that callers can answer
"unavailable, try again" instead of failing. Pooled connections that the server closed while
they were idle are noticed when they are checked out and replaced (the whole pool with them),
without a round trip per checkout.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "CONNECT_TIMEOUT",
    "driver_connection",
    "make_engine",
    "make_session_factory",
    "session_scope",
    "unavailable_reason",
]

#: Seconds a new connection may take (libpq's connect_timeout): a server that does not answer
#: at all must not hold a request, or the append batcher, for the operating system's TCP
#: timeout of minutes.
CONNECT_TIMEOUT = 10


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    application_name: str = "attest-ledger",
    pre_ping: bool = True,
    lock_timeout: float | None = None,
) -> Engine:
    """An engine for ``url`` (``postgresql+psycopg://...``), READ COMMITTED.

    ``pre_ping`` tests each connection as it leaves the pool (a round trip each time); the
    service turns it off and recycles connections instead, since its hot path checks out
    several sessions per request. ``lock_timeout`` (seconds) becomes the connections' default,
    so that no statement waits on a lock forever and appends need not set it themselves.
    """
    connect_args: dict[str, object] = {
        "application_name": application_name,
        "connect_timeout": CONNECT_TIMEOUT,
    }
    if lock_timeout is not None:
        connect_args["options"] = f"-c lock_timeout={max(1, int(lock_timeout * 1000))}"
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
        connect_args=connect_args,
    )
    event.listen(engine, "checkout", _replace_if_closed_by_server)
    return engine


#: poll() events that mean the peer has gone: hung up, reset, or shut its side down.
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)


def _replace_if_closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: replace a connection the server has closed since it was checked in.

    An idle connection in the pool has nothing to read. When the server goes (killed,
    restarted, the backend terminated), the socket reports a hang-up, or at least input: the
    server's last words. One poll() with no timeout sees that, a microsecond instead of a
    round trip (``pool_pre_ping``); only when there is input without a hang-up (a notice,
    a TLS record) is the connection asked, with one ``SELECT 1``. A dead one is replaced, and
    with it every connection made before now (``InvalidatePoolError``): after a restart they
    are all dead, and a request should not have to find that out for each of them.
    """
    connection: psycopg.Connection[Any] = dbapi_connection
    if connection.closed or connection.broken:
        raise exc.InvalidatePoolError("the connection was closed")
    try:
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN | _GONE)
        events = poller.poll(0)
    except (OSError, psycopg.Error) as error:
        raise exc.InvalidatePoolError("the connection's socket is unusable") from error
    if not events:
        return
    if events[0][1] & _GONE:
        raise exc.InvalidatePoolError("the database server closed the connection")
    try:
        connection.execute("SELECT 1")
        connection.rollback()
    except psycopg.Error as error:
        raise exc.InvalidatePoolError("the database server closed the connection") from error


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction commits if the block succeeds and rolls back otherwise."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under ``session``'s transaction, for the hot paths (appends,
    per-request lookups) where SQLAlchemy's per-statement overhead is most of the cost.
    Statements on it are part of the session's transaction."""
    raw = session.connection().connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("the ledger needs the psycopg 3 driver (postgresql+psycopg://)")
    return raw


#: SQLSTATEs and classes of errors that mean "the database cannot be used now", and what to
#: tell the client (never the server's own message: it may name hosts, roles or files).
_REASONS = {
    "53100": "the database server is out of disk space",
    "53200": "the database server is out of memory",
    "53300": "the database server has too many connections",
    "57P01": "the database server ended the connection (shut down or terminated)",
    "57P02": "the database server crashed",
    "57P03": "the database server is starting up or recovering",
    "57P04": "the database was dropped",
    "57P05": "the database server ended an idle connection",
}
_REASON_CLASSES = {
    "08": "the connection to the database server failed",
    "53": "the database server is out of resources",
    "58": "the database server reported a system error",
}
_LOST = "the database server cannot be reached, or the connection to it was lost"


def unavailable_reason(error: BaseException) -> str | None:
    """Why ``error`` means the database cannot be used now (a short reason to show), or None
    if it is any other error (a bug, a constraint, a lock timeout).

    Unavailable: no connection could be made, the connection broke, the server is shutting
    down, crashed or is recovering, or it is out of resources (disk full, SQLSTATE 53100).
    The error itself, the DBAPI error SQLAlchemy wraps, and the errors it was raised from or
    while handling are all looked at (a rollback on a dead connection fails too, and its error
    then hides the first one).
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        reason = _reason(current)
        if reason is not None:
            return reason
        pending.extend((getattr(current, "orig", None), current.__cause__, current.__context__))
    return None


def _reason(error: BaseException) -> str | None:
    if isinstance(error, exc.TimeoutError):  # the pool: no connection came free in time
        return "no database connection became free in time"
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return _LOST
    if not isinstance(error, psycopg.Error):
        return None
    state = error.sqlstate
    if state is None:
        # Raised by the driver itself: connecting failed, or the connection is lost or closed.
        return _LOST if isinstance(error, psycopg.OperationalError) else None
    if state in _REASONS:
        return _REASONS[state]
    return _REASON_CLASSES.get(state[:2])
