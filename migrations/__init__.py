"""Alembic migrations: the only way the schema changes. Run with ``attest-ledger db upgrade``."""
