"""Settings: read once from the environment into a frozen object, then passed down.

This is the only module that reads ``os.environ`` (the CLI calls :meth:`Settings.from_env`
once). Every variable is optional:

=====================================  ==================================================
``DATABASE_URL``                       PostgreSQL 14+ to use; unset means an embedded
                                       PostgreSQL 18 in ``<data dir>/postgres``
``ATTEST_LEDGER_DATA_DIR``             local state (default ``./var``)
``ATTEST_LEDGER_KEY``                  the checkpoint-signing key (``<data dir>/ledger.key``)
``ATTEST_LEDGER_ORIGIN``               the log's origin, used when a key is created
``ATTEST_LEDGER_EAR_KEY``              the EAR-signing key, P-256 PEM
                                       (``<data dir>/ear-key.pem``)
``ATTEST_LEDGER_TRUST_ROOT``           a PEM root to trust *instead of* AWS's (the simulated
                                       PKI of demos and tests; the service warns)
``ATTEST_LEDGER_SNP_TRUST_ROOT``       PEM ARK(s) to trust *instead of* AMD's (the simulated
                                       SEV-SNP platform; the service warns)
``ATTEST_LEDGER_BIND``                 where ``serve`` listens (``127.0.0.1:8000``)
``ATTEST_LEDGER_WORKERS``              gunicorn worker processes (default: the CPU count)
``ATTEST_LEDGER_THREADS``              threads per worker process (default 8)
``ATTEST_LEDGER_CHECKPOINT_INTERVAL``  seconds before waiting entries are checkpointed (5)
``ATTEST_LEDGER_CHECKPOINT_ENTRIES``   entries that trigger a checkpoint at once (1000)
``ATTEST_LEDGER_CHALLENGE_TTL``        seconds a challenge stays valid (300)
``ATTEST_LEDGER_MAX_OPEN_CHALLENGES``  open challenges one worker may hold (1000)
``ATTEST_LEDGER_RATE_LIMIT``           requests per second per client and process (200)
``ATTEST_LEDGER_WORKER_TOKEN``         the token ``worker run`` uses (or ``--token-file``)
``ATTEST_LEDGER_COOKIE_SECURE``        portal cookies only over HTTPS or to localhost (1)
``ATTEST_LEDGER_SESSION_HOURS``        how long a portal sign-in lasts (8)
``ATTEST_LEDGER_EXPORT_CONCURRENCY``   proof bundles built at once over HTTP, service-wide (2)
``ATTEST_LEDGER_EXPORT_MAX_ENTRIES``   entries one bundle over HTTP may hold (100000)
``ATTEST_LEDGER_EXPORT_SECONDS``       seconds a bundle over HTTP may take to build (600)
``ATTEST_LEDGER_HEAD_TIMEOUT``         seconds a client has to send a request's head (10)
``ATTEST_LEDGER_BODY_TIMEOUT``         seconds a client has to send a request's body (20)
``ATTEST_LEDGER_CONNECTIONS_PER_IP``   connections per client address and process that
                                       may wait on an unfinished request (100; 0: no cap)
=====================================  ==================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

_N = TypeVar("_N", int, float)

__all__ = ["DEFAULT_ORIGIN", "Settings", "SettingsError", "normalise_database_url"]

DEFAULT_ORIGIN = "attestation-ledger.localhost/log"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None
    ledger_key_path: Path
    ledger_origin: str = DEFAULT_ORIGIN
    #: the verifier's EAR-signing key (None: ``<data dir>/ear-key.pem``)
    ear_key: Path | None = None
    trust_root_path: Path | None = None
    snp_trust_root_path: Path | None = None
    #: Intel DCAP: a root to trust INSTEAD of the pinned Intel SGX Root CA (simulated PKI)
    intel_trust_root_path: Path | None = None
    #: PEM NVIDIA device root(s) / RIM root(s) trusted INSTEAD of NVIDIA's (simulated GPUs)
    nvidia_trust_root_path: Path | None = None
    nvidia_rim_root_path: Path | None = None
    #: Intel DCAP: a PCCS or Intel PCS to fetch collateral from (None: nothing is fetched)
    pccs_url: str | None = None
    #: NVIDIA: the RIM service (or a mirror) to fetch missing RIMs from (None: nothing is
    #: fetched)
    rim_url: str | None = None
    bind: str = "127.0.0.1:8000"
    workers: int = 0  # 0: the CPU count
    threads: int = 8
    checkpoint_interval: float = 5.0
    checkpoint_entries: int = 1000
    challenge_ttl: float = 300.0
    max_open_challenges: int = 1000
    rate_limit: float = 200.0
    #: a composite submission: CPU evidence and up to 16 devices' reports and chains
    max_request_bytes: int = 512 * 1024
    worker_token: str | None = None
    #: How stale the latest checkpoint named in receipts may be (saves a query per receipt).
    receipt_checkpoint_ttl: float = 0.25
    #: Portal session cookies are Secure (sent over HTTPS, and to http://localhost only).
    cookie_secure: bool = True
    session_hours: float = 8.0
    export_concurrency: int = 2
    export_max_entries: int = 100_000
    export_seconds: float = 600.0
    #: The serving front (attest_ledger.front): seconds for a request's head and for its
    #: body, and connections per client address and process waiting on unfinished requests.
    head_timeout: float = 10.0
    body_timeout: float = 20.0
    connections_per_ip: int = 100

    @property
    def ear_key_path(self) -> Path:
        """The EAR-signing key's file."""
        return self.ear_key if self.ear_key is not None else self.data_dir / "ear-key.pem"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("ATTEST_LEDGER_DATA_DIR") or "var").resolve()
        url = env.get("DATABASE_URL") or None
        key = env.get("ATTEST_LEDGER_KEY")
        ear_key = env.get("ATTEST_LEDGER_EAR_KEY")
        root = env.get("ATTEST_LEDGER_TRUST_ROOT")
        snp_root = env.get("ATTEST_LEDGER_SNP_TRUST_ROOT")
        intel_root = env.get("ATTEST_LEDGER_INTEL_TRUST_ROOT")
        nvidia_root = env.get("ATTEST_LEDGER_NVIDIA_TRUST_ROOT")
        nvidia_rim_root = env.get("ATTEST_LEDGER_NVIDIA_RIM_ROOT")
        return cls(
            data_dir=data_dir,
            database_url=normalise_database_url(url) if url else None,
            ledger_key_path=Path(key).resolve() if key else data_dir / "ledger.key",
            ledger_origin=env.get("ATTEST_LEDGER_ORIGIN") or DEFAULT_ORIGIN,
            ear_key=Path(ear_key).resolve() if ear_key else None,
            trust_root_path=Path(root).resolve() if root else None,
            snp_trust_root_path=Path(snp_root).resolve() if snp_root else None,
            intel_trust_root_path=Path(intel_root).resolve() if intel_root else None,
            nvidia_trust_root_path=Path(nvidia_root).resolve() if nvidia_root else None,
            nvidia_rim_root_path=Path(nvidia_rim_root).resolve() if nvidia_rim_root else None,
            pccs_url=env.get("ATTEST_LEDGER_PCCS_URL") or None,
            rim_url=env.get("ATTEST_LEDGER_RIM_URL") or None,
            bind=env.get("ATTEST_LEDGER_BIND") or "127.0.0.1:8000",
            workers=_number(env, "ATTEST_LEDGER_WORKERS", 0, int),
            threads=_number(env, "ATTEST_LEDGER_THREADS", 8, int),
            checkpoint_interval=_number(env, "ATTEST_LEDGER_CHECKPOINT_INTERVAL", 5.0, float),
            checkpoint_entries=_number(env, "ATTEST_LEDGER_CHECKPOINT_ENTRIES", 1000, int),
            challenge_ttl=_number(env, "ATTEST_LEDGER_CHALLENGE_TTL", 300.0, float),
            max_open_challenges=_number(env, "ATTEST_LEDGER_MAX_OPEN_CHALLENGES", 1000, int),
            rate_limit=_number(env, "ATTEST_LEDGER_RATE_LIMIT", 200.0, float),
            worker_token=env.get("ATTEST_LEDGER_WORKER_TOKEN") or None,
            cookie_secure=_flag(env, "ATTEST_LEDGER_COOKIE_SECURE", default=True),
            session_hours=_number(env, "ATTEST_LEDGER_SESSION_HOURS", 8.0, float),
            export_concurrency=_number(env, "ATTEST_LEDGER_EXPORT_CONCURRENCY", 2, int),
            export_max_entries=_number(env, "ATTEST_LEDGER_EXPORT_MAX_ENTRIES", 100_000, int),
            export_seconds=_number(env, "ATTEST_LEDGER_EXPORT_SECONDS", 600.0, float),
            head_timeout=_positive(env, "ATTEST_LEDGER_HEAD_TIMEOUT", 10.0),
            body_timeout=_positive(env, "ATTEST_LEDGER_BODY_TIMEOUT", 20.0),
            connections_per_ip=_number(env, "ATTEST_LEDGER_CONNECTIONS_PER_IP", 100, int),
        )


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    text = (env.get(name) or "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 1 or 0, found {text!r}")


def _number(env: Mapping[str, str], name: str, default: _N, kind: type[_N]) -> _N:
    text = env.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number, found {text!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default, float)
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name} must be a positive number of seconds")
    return value


def normalise_database_url(url: str) -> str:
    """Accept libpq-style ``postgresql://`` URLs and select the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
