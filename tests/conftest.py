"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from enclave_worker import SimulatedNitroPki, SimulatedNsm
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
