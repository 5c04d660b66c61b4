"""A real PostgreSQL for the tests: the embedded one, or the server named by TEST_DATABASE_URL.

The schema is built once per session by the real migrations into a template database; every
test that needs a database gets a fresh copy of it (CREATE DATABASE ... TEMPLATE), so tests
can commit, run several processes and tamper freely, without affecting each other.

Copying and dropping a database costs 0.3-1 s, most of a database test's time: a background
thread keeps the next copies ready and drops used ones while the tests run.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, pool, text

from attest_ledger.database import upgrade
from attest_ledger.settings import normalise_database_url

PREFIX = "attest_ledger_test_"
#: fresh databases made ahead of the tests that will ask for them
_AHEAD = 2
_counter = itertools.count()


class TestDatabases:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run = uuid.uuid4().hex[:8]
        self.template = f"{PREFIX}{self.run}_template"
        self._admin = create_engine(
            admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        self._strategy = ""
        #: copies made ahead, and used ones to drop, by the background thread
        self._ready: queue.Queue[str] = queue.Queue()
        self._used: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def tune_for_tests(self) -> None:
        """For the embedded server this run started (never a server it was given): no fsync
        and no full-page writes. A killed postmaster still loses nothing committed (the WAL
        is written to the OS at each commit); only a machine crash could, and the cluster is
        thrown away after the run. Copying the template per test is the suite's main cost."""
        with self._admin.connect() as connection:
            connection.execute(text("ALTER SYSTEM SET fsync = off"))
            connection.execute(text("ALTER SYSTEM SET full_page_writes = off"))
            connection.execute(text("SELECT pg_reload_conf()"))

    def create_template(self) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.template}"'))
            version = connection.execute(text("SHOW server_version_num")).scalar_one()
            fsync = connection.execute(text("SHOW fsync")).scalar_one()
        # PostgreSQL 15+ without fsync: copy the template's files (its checkpoint is then
        # cheap) rather than WAL-log every page; with fsync the checkpoint costs more (0.46 s
        # against 0.32 s a copy, measured on the embedded server)
        self._strategy = (
            " STRATEGY = FILE_COPY" if int(version) >= 150000 and fsync == "off" else ""
        )
        upgrade(self.url_for(self.template))
        self._thread = threading.Thread(target=self._prepare, name="test-databases", daemon=True)
        self._thread.start()

    def _new_name(self) -> str:
        return f"{PREFIX}{self.run}_{next(_counter)}_{os.getpid()}"

    def _create(self, name: str) -> None:
        with self._admin.connect() as connection:
            connection.execute(
                text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"{self._strategy}')
            )

    def _drop(self, name: str) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _prepare(self) -> None:
        """Keep ``_AHEAD`` copies ready; drop used ones. Errors end the thread: fresh() then
        makes its copies itself (and close() drops whatever is left)."""
        while not self._stop.is_set():
            try:
                self._drop(self._used.get_nowait())
                continue
            except queue.Empty:
                pass
            if self._ready.qsize() < _AHEAD:
                name = self._new_name()
                try:
                    self._create(name)
                except Exception:
                    return
                self._ready.put(name)
                continue
            self._wake.wait(0.5)
            self._wake.clear()

    @contextmanager
    def fresh(self) -> Iterator[str]:
        name = None
        if self._thread is not None and self._thread.is_alive():
            try:
                name = self._ready.get(timeout=120)
            except queue.Empty:
                name = None
        if name is None:
            name = self._new_name()
            self._create(name)
        self._wake.set()  # make the next one
        try:
            yield self.url_for(name)
        finally:
            if self._thread is not None and self._thread.is_alive():
                self._used.put(name)
                self._wake.set()
            else:
                self._drop(name)

    def empty(self) -> str:
        """A database without any schema (for migration tests); caller drops it via drop()."""
        name = f"{PREFIX}{self.run}_empty_{next(_counter)}"
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url_for(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self._admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
        with self._admin.connect() as connection:
            stale = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :pattern"),
                {"pattern": f"{PREFIX}{self.run}%"},
            ).scalars()
            for name in list(stale):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


def admin_url_from_environment() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    return normalise_database_url(url) if url else None
