"""One database session per request, opened on first use and closed at teardown.

Request sessions run in autocommit mode: requests read, or make single-statement writes
(issuing challenges). Everything that must be atomic (a verdict, its evidence, the challenge
it used, its idempotency key) is written in one transaction by the append batcher.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

__all__ = ["db", "init_sessions"]


def db() -> Session:
    """The request's session (autocommit: requests only read, or write one statement)."""
    if "db_session" not in g:
        runtime = current_app.extensions["attest_ledger.runtime"]
        g.db_session = (runtime.reads or runtime.sessions)()
    session: Session = g.db_session
    return session


def init_sessions(app: Flask) -> None:
    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            try:
                session.close()
            except SQLAlchemyError:  # the database went away: the answer (a 503) stands
                session.invalidate()
