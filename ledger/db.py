"""Engines and sessions. Nothing here runs at import time; callers build what they need.

The transaction belongs to the caller: ``session_scope`` is the one place that commits (on
success) or rolls back (on any exception), for command-line tools and background workers;
the web app has its own per-request equivalent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "make_session_factory", "session_scope"]


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "attest-ledger") -> Engine:
    """An engine for ``url`` (``postgresql+psycopg://...``), READ COMMITTED, pre-pinged."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        isolation_level="READ COMMITTED",
        connect_args={"application_name": application_name},
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
