"""Settings: read once from the environment into a frozen object, then passed down.

This is the only module that reads ``os.environ`` (the CLI calls :meth:`Settings.from_env`
once). Every variable is optional:

=========================  ==========================================================
``DATABASE_URL``           PostgreSQL 14+ to use; unset means an embedded PostgreSQL 18
                           in ``<data dir>/postgres`` (started on demand, from a wheel)
``ATTEST_LEDGER_DATA_DIR`` where local state lives (default ``./var``)
``ATTEST_LEDGER_KEY``      the ledger's signing key (default ``<data dir>/ledger.key``)
``ATTEST_LEDGER_ORIGIN``   the log's origin, used when a key is created
                           (default ``attestation-ledger.localhost/log``)
=========================  ==========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_ORIGIN", "Settings"]

DEFAULT_ORIGIN = "attestation-ledger.localhost/log"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None
    ledger_key_path: Path
    ledger_origin: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("ATTEST_LEDGER_DATA_DIR") or "var").resolve()
        url = env.get("DATABASE_URL") or None
        key = env.get("ATTEST_LEDGER_KEY")
        return cls(
            data_dir=data_dir,
            database_url=normalise_database_url(url) if url else None,
            ledger_key_path=Path(key).resolve() if key else data_dir / "ledger.key",
            ledger_origin=env.get("ATTEST_LEDGER_ORIGIN") or DEFAULT_ORIGIN,
        )


def normalise_database_url(url: str) -> str:
    """Accept libpq-style ``postgresql://`` URLs and select the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
