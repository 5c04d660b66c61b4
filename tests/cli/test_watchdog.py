"""The watchdog's judgement, on postmaster.pid files and real processes: a crashed server is
started again (with back-off), a living one is never touched however unready, and one that
was stopped on purpose stays stopped. (tests/e2e/test_outage.py kills real servers.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from attest_ledger import postmaster
from attest_ledger.watchdog import EmbeddedWatchdog


def write_pid_file(data_dir: Path, pid: int, status: str = "ready") -> postmaster.Postmaster:
    data_dir.mkdir(exist_ok=True)
    lines = [str(pid), str(data_dir), "1795993309", "5432", str(data_dir), "", "  1  2", status]
    (data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")
    (data_dir / ".s.PGSQL.5432.lock").write_text(f"{pid}\n{data_dir}\n")
    read = postmaster.read(data_dir)
    assert read is not None
    return read


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


class Restarts:
    def __init__(self, data_dir: Path, *, succeed: bool) -> None:
        self.data_dir, self.succeed, self.calls = data_dir, succeed, 0
        self.server: subprocess.Popen[bytes] | None = None

    def __call__(self, directory: Path, *, timeout: float) -> str:
        self.calls += 1
        if not self.succeed:
            return "pg_ctl: could not start server"
        # a process whose command line names the data directory, as a postmaster's does
        self.server = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)", "-D", str(directory)]
        )
        write_pid_file(directory, self.server.pid)
        return "server started"

    def close(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return (tmp_path / "postgres").resolve()


def test_a_crashed_server_is_started_again(data_dir: Path) -> None:
    write_pid_file(data_dir, dead_pid())
    restart = Restarts(data_dir, succeed=True)
    watchdog = EmbeddedWatchdog(data_dir, restart=restart)
    try:
        watchdog.check()
        assert (restart.calls, watchdog.restarts) == (1, 1)
        watchdog.check()  # running again: left alone
        assert restart.calls == 1
    finally:
        restart.close()


def test_failed_restarts_back_off(data_dir: Path) -> None:
    write_pid_file(data_dir, dead_pid())
    restart = Restarts(data_dir, succeed=False)
    watchdog = EmbeddedWatchdog(data_dir, restart=restart, first_backoff=60.0)
    watchdog.check()
    watchdog.check()  # within the back-off: not tried again
    assert (restart.calls, watchdog.restarts) == (1, 0)
    watchdog._next_attempt = 0.0  # the back-off has passed
    watchdog.check()
    assert restart.calls == 2


def test_a_server_stopped_on_purpose_stays_stopped(data_dir: Path) -> None:
    data_dir.mkdir()  # no postmaster.pid: pg_ctl stop, or the last user left
    restart = Restarts(data_dir, succeed=True)
    watchdog = EmbeddedWatchdog(data_dir, restart=restart)
    watchdog.check()
    watchdog.check()
    assert restart.calls == 0


def test_a_living_postmaster_is_never_touched_however_unready(data_dir: Path) -> None:
    slow = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-D", str(data_dir)]
    )
    try:
        write_pid_file(data_dir, slow.pid, status="starting")  # a long crash recovery, say
        restart = Restarts(data_dir, succeed=True)
        watchdog = EmbeddedWatchdog(data_dir, restart=restart)
        for _ in range(3):
            watchdog.check()
        assert restart.calls == 0
        assert postmaster.alive(postmaster.read(data_dir))
    finally:
        slow.kill()
        slow.wait()


def test_the_lock_files_of_a_zombie_or_a_reused_pid_are_cleared(data_dir: Path) -> None:
    """PostgreSQL takes a lock file naming any existing process for a live server's."""
    zombie = subprocess.Popen([sys.executable, "-c", ""])
    try:
        for _ in range(3000):  # it exits at once; unreaped, it stays a zombie
            if psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.01)
        dead = write_pid_file(data_dir, zombie.pid)
        assert not postmaster.alive(dead)
        assert postmaster.clear_stale_locks(data_dir, dead)
        assert not (data_dir / "postmaster.pid").exists()
        assert not (data_dir / ".s.PGSQL.5432.lock").exists()
    finally:
        zombie.wait()

    reused = write_pid_file(data_dir, psutil.Process().pid)  # this test, not a postmaster
    assert not postmaster.alive(reused)
    assert postmaster.clear_stale_locks(data_dir, reused)
    assert postmaster.read(data_dir) is None

    gone = write_pid_file(data_dir, dead_pid())  # PostgreSQL ignores these by itself
    assert not postmaster.clear_stale_locks(data_dir, gone)
    assert postmaster.read(data_dir) == gone


JOIN = """
import sys
from pathlib import Path
from attest_ledger.database import start_embedded
start_embedded(Path(sys.argv[1]))
print("joined", flush=True)
sys.stdin.readline()
"""


def test_the_last_user_stops_the_server_running_now_not_the_one_it_joined(tmp_path) -> None:
    """A user joins the embedded server; it dies (kill -9) and a second user, joining, starts
    it again. When the first user leaves last, it must stop the server that runs now, or
    that server would outlive every user."""
    data_dir = (tmp_path / "postgres").resolve()

    def join() -> subprocess.Popen[str]:
        user = subprocess.Popen(
            [sys.executable, "-c", JOIN, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert user.stdout is not None
        assert user.stdout.readline().strip() == "joined"
        return user

    first = join()
    try:
        crashed = postmaster.read(data_dir)
        assert crashed is not None
        psutil.Process(crashed.pid).kill()
        second = join()  # finds the server dead, and starts it
        second.communicate("\n", timeout=60)
        running = postmaster.read(data_dir)
        assert running is not None
        assert running.pid != crashed.pid
        assert postmaster.alive(running)
        # Once the killed postmaster is reaped (PID 1 does it here within a second or two),
        # the process the first user recorded is gone; where it stays a zombie the wheel
        # would stop the right server by chance. Either way the promise below must hold.
        for _ in range(100):
            if not psutil.pid_exists(crashed.pid):
                break
            time.sleep(0.1)
    finally:
        first.communicate("\n", timeout=60)  # the last user leaves
    leaked = postmaster.alive(running)
    if leaked:  # not left running on a shared machine, even when the test fails
        psutil.Process(running.pid).send_signal(signal.SIGINT)
    assert not leaked
