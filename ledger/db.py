"""Engines and sessions. Nothing here runs at import time; callers build what they need.

The transaction belongs to the caller: ``session_scope`` is the one place that commits (on
success) or rolls back (on any exception), for command-line tools and background workers;
the web app has its own per-request equivalent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["driver_connection", "make_engine", "make_session_factory", "session_scope"]


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
    connect_args: dict[str, object] = {"application_name": application_name}
    if lock_timeout is not None:
        connect_args["options"] = f"-c lock_timeout={max(1, int(lock_timeout * 1000))}"
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
        connect_args=connect_args,
    )


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
