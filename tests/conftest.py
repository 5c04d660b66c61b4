"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger.database import start_embedded
from enclave_worker import SimulatedNitroPki, SimulatedNsm
from ledger.db import make_engine, make_session_factory
from tests.db_support import TestDatabases, admin_url_from_environment
from tests.support import anchor_for, policy_for_pcrs, simulated_nsm, simulated_pki
from verifier import NitroVerifier, Policy


@pytest.fixture(scope="session")
def sim_pki() -> SimulatedNitroPki:
    """A simulated chain valid around tests.support.SIM_AT."""
    return simulated_pki()


@pytest.fixture(scope="session")
def sim_nsm(sim_pki: SimulatedNitroPki) -> SimulatedNsm:
    return simulated_nsm(sim_pki)


@pytest.fixture(scope="session")
def sim_verifier(sim_pki: SimulatedNitroPki) -> NitroVerifier:
    """A verifier configured, explicitly, to trust the simulated root."""
    return NitroVerifier(trust_anchor=anchor_for(sim_pki))


@pytest.fixture
def sim_policy(sim_nsm: SimulatedNsm) -> Policy:
    return policy_for_pcrs(sim_nsm.pcrs, name="sim")


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    """The PostgreSQL server for this run: TEST_DATABASE_URL, or an embedded one."""
    admin_url = admin_url_from_environment()
    embedded = admin_url is None
    if admin_url is None:
        directory: Path = tmp_path_factory.mktemp("postgres") / "data"
        admin_url = start_embedded(directory, cleanup="delete")
    manager = TestDatabases(admin_url)
    if embedded:
        manager.tune_for_tests()
    manager.create_template()
    yield manager
    manager.close()


@pytest.fixture
def db_url(databases: TestDatabases) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    with databases.fresh() as url:
        yield url


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()
