"""The database watchdog of ``attest-ledger serve``: a thread in gunicorn's master process.

With the embedded PostgreSQL (``DATABASE_URL`` unset) the service started the server, so it
looks after it: once a second it reads the server's ``postmaster.pid``, and if the process it
names is gone (killed with SIGKILL, by the OOM killer, crashed) it starts the server again on
the same data directory and socket, so that the URL the workers hold stays right; crash
recovery replays the WAL, and nothing committed is lost. A failed start is tried again after
0.5, 1, 2, 4 ... seconds (at most 30). What it never does:

* act on a server whose postmaster is alive, however slow or unresponsive (a long crash
  recovery, a stopped process, a full disk): it only ever starts a server that is not running;
* start a server that was stopped on purpose (no ``postmaster.pid``: ``pg_ctl stop``, or the
  last user of the embedded server leaving), unless it is in the middle of restarting one
  that crashed.

With ``DATABASE_URL`` set the database is someone else's: the watchdog never starts anything;
it connects every few seconds and logs when the database becomes unavailable and when it is
back. Either way the workers answer 503 ``database_unavailable`` while it is down and
``/readyz`` says why.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import SQLAlchemyError

from attest_ledger import database, postmaster
from attest_ledger.settings import Settings
from ledger.db import unavailable_reason

__all__ = ["EmbeddedWatchdog", "ExternalMonitor", "watch"]

log = logging.getLogger("attest_ledger.watchdog")


def watch(settings: Settings) -> EmbeddedWatchdog | ExternalMonitor:
    """Start the watchdog that fits the settings (the database must be resolved already:
    :func:`attest_ledger.database.database_url`); it stops when the process exits."""
    watchdog: EmbeddedWatchdog | ExternalMonitor
    if settings.database_url:
        log.info(
            "DATABASE_URL names an external PostgreSQL: its outages are reported here and "
            "in /readyz, never repaired by this service"
        )
        watchdog = ExternalMonitor(settings.database_url)
    else:
        watchdog = EmbeddedWatchdog(settings.data_dir / "postgres")
        log.info("the embedded PostgreSQL in %s is started again if it dies", watchdog.data_dir)
    atexit.register(watchdog.stop)  # before the wheel's own exit handler stops the server
    return watchdog.start()


class _Thread:
    def __init__(self, name: str, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> _Thread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if os.getpid() != self._pid:  # a forked gunicorn worker: the thread is not here
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # a watchdog that dies watches nothing
                log.exception("database watchdog: unexpected error")
            self._stop.wait(self.interval)

    def check(self) -> None:
        raise NotImplementedError


class EmbeddedWatchdog(_Thread):
    def __init__(
        self,
        data_dir: Path,
        *,
        interval: float = 1.0,
        first_backoff: float = 0.5,
        max_backoff: float = 30.0,
        start_timeout: float = 30.0,
        restart: Callable[..., str] = database.restart_embedded,
    ) -> None:
        super().__init__("embedded-postgres-watchdog", interval)
        self.data_dir = data_dir.resolve()
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.start_timeout = start_timeout
        self._restart = restart
        self.restarts = 0  # servers started again
        self._crashed: postmaster.Postmaster | None = None  # restarting after this one died
        self._crashed_at = 0.0
        self._attempts = 0
        self._next_attempt = 0.0
        self._said_stopped = False

    def start(self) -> EmbeddedWatchdog:
        super().start()
        return self

    def check(self) -> None:
        """One look at the server, and a restart if it crashed and the back-off allows."""
        current = postmaster.read(self.data_dir)
        if current is not None and postmaster.alive(current):
            self._said_stopped = False
            if self._crashed is not None and current.status == "ready":
                self._recovered(self._crashed, current)
            return  # alive: never touched, however slow
        if self._crashed is None:
            if current is None:  # stopped on purpose, not crashed
                if not self._said_stopped:
                    log.warning(
                        "embedded PostgreSQL in %s is not running and was stopped cleanly "
                        "(no postmaster.pid): not starting it again",
                        self.data_dir,
                    )
                    self._said_stopped = True
                return
            log.error(
                "embedded PostgreSQL (pid %d) in %s is gone: starting it again "
                "(crash recovery replays the WAL)",
                current.pid,
                self.data_dir,
            )
            self._crashed, self._crashed_at = current, time.monotonic()
            self._attempts, self._next_attempt = 0, 0.0
        if time.monotonic() < self._next_attempt:
            return
        self._attempts += 1
        outcome = self._restart(self.data_dir, timeout=self.start_timeout)
        started = postmaster.read(self.data_dir)
        if started is not None and postmaster.alive(started):
            if started.status == "ready":
                self._recovered(self._crashed, started)
            else:  # recovering longer than pg_ctl waited: alive, so left to finish
                log.warning(
                    "embedded PostgreSQL (pid %d) is %s after restart attempt %d",
                    started.pid,
                    started.status,
                    self._attempts,
                )
            return
        backoff = min(self.max_backoff, self.first_backoff * 2 ** (self._attempts - 1))
        self._next_attempt = time.monotonic() + backoff
        log.warning(
            "embedded PostgreSQL: restart attempt %d failed (%s); next in %.1f s (log: %s)",
            self._attempts,
            outcome or "no output",
            backoff,
            self.data_dir / "log",
        )

    def _recovered(self, crashed: postmaster.Postmaster, running: postmaster.Postmaster) -> None:
        self.restarts += 1
        log.warning(
            "embedded PostgreSQL is running again (pid %d, was %d) after %.1f s and %d attempt(s)",
            running.pid,
            crashed.pid,
            time.monotonic() - self._crashed_at,
            self._attempts,
        )
        self._crashed = None


class ExternalMonitor(_Thread):
    """Reports (logs) when an external database becomes unavailable and when it is back."""

    def __init__(self, url: str, *, interval: float = 5.0) -> None:
        super().__init__("database-monitor", interval)
        self._engine = create_engine(  # a connection per look, none kept
            url,
            poolclass=pool.NullPool,
            connect_args={"connect_timeout": 5, "application_name": "attest-ledger-monitor"},
        )
        self._down: str | None = None

    def start(self) -> ExternalMonitor:
        super().start()
        return self

    def check(self) -> None:
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            reason = unavailable_reason(exc) or type(exc).__name__
            if self._down is None:
                log.error("the database is unavailable: %s (not ours to restart)", reason)
            self._down = reason
            return
        if self._down is not None:
            log.warning("the database is available again")
            self._down = None
