"""Taking one test database away and bringing it back, on a server other tests share.

``ALTER DATABASE ... ALLOW_CONNECTIONS false`` refuses every new connection to that database
(superusers' too) and ``pg_terminate_backend`` ends the ones it has: to the service it is
exactly a database server that went away, while the server itself, and every other test's
database on it, carries on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, pool, text

__all__ = ["database_away"]


@contextmanager
def database_away(admin_url: str, url: str) -> Iterator[None]:
    name = make_url(url).database
    admin = create_engine(admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
