"""Alembic environment. Run through ``attest-ledger db ...``, which passes the database URL
(or an open connection) in ``config.attributes``; nothing here reads the environment.

Each migration runs in its own transaction with a lock timeout, and the whole run holds a
session-level advisory lock so that two deployments can never migrate at once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from attest_ledger.models import ServiceBase
from ledger.models import Base

#: pg_advisory_lock key shared by every migration run ("attest-l" in ASCII).
MIGRATION_LOCK = 0x6174746573742D6C

config = context.config
target_metadata = [Base.metadata, ServiceBase.metadata]


def run(connection: Connection) -> None:
    connection.execute(text("SET lock_timeout = '10s'"))
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            transaction_per_migration=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: run migrations with `attest-ledger db upgrade`")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        run(connection)
    engine.dispose()


def run_offline() -> None:
    context.configure(
        url=config.attributes.get("url") or config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
