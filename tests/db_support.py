"""A real PostgreSQL for the tests: the embedded one, or the server named by TEST_DATABASE_URL.

The schema is built once per session by the real migrations into a template database; every
test that needs a database gets a fresh copy of it (CREATE DATABASE ... TEMPLATE), so tests
can commit, run several processes and tamper freely, without affecting each other.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, pool, text

from attest_ledger.database import upgrade
from attest_ledger.settings import normalise_database_url

PREFIX = "attest_ledger_test_"
_counter = itertools.count()


class TestDatabases:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run = uuid.uuid4().hex[:8]
        self.template = f"{PREFIX}{self.run}_template"
        self._admin = create_engine(
            admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
        )

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def create_template(self) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.template}"'))
        upgrade(self.url_for(self.template))

    @contextmanager
    def fresh(self) -> Iterator[str]:
        name = f"{PREFIX}{self.run}_{next(_counter)}_{os.getpid()}"
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        try:
            yield self.url_for(name)
        finally:
            with self._admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

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
