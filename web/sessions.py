"""One database session per request, opened on first use and closed at teardown.

Views that write commit explicitly; anything not committed is rolled back when the session
closes, so a failed request leaves nothing half-written.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

__all__ = ["db", "init_sessions"]


def db() -> Session:
    if "db_session" not in g:
        g.db_session = current_app.extensions["attest_ledger.runtime"].sessions()
    session: Session = g.db_session
    return session


def init_sessions(app: Flask) -> None:
    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
