"""The attester side: enclave workers that compute results and prove them with attestation.

It talks to the service over HTTP only and imports nothing from ``verifier``, ``ledger`` or
``web``. Its simulated NSM and PKI (Nitro) and its simulated AMD PKI and SEV-SNP platform
build evidence with their own code, an independent cross-check of the verifier.
"""

from enclave_worker.attester import (
    AMD_SEV_SNP,
    AWS_NITRO_ENCLAVE,
    Attester,
    Endorsement,
    Evidence,
    NitroAttester,
)
from enclave_worker.simulated_amd import SimulatedAmdPki, SimulatedAmdWarning
from enclave_worker.simulated_nsm import SimulatedNsm, simulated_image_pcrs
from enclave_worker.simulated_pki import SimulatedNitroPki, SimulatedNitroWarning
from enclave_worker.simulated_snp import (
    SimulatedSnpChip,
    SimulatedSnpPlatform,
    SnpGuest,
    simulated_snp_measurement,
)

__all__ = [
    "AMD_SEV_SNP",
    "AWS_NITRO_ENCLAVE",
    "Attester",
    "Endorsement",
    "Evidence",
    "NitroAttester",
    "SimulatedAmdPki",
    "SimulatedAmdWarning",
    "SimulatedNitroPki",
    "SimulatedNitroWarning",
    "SimulatedNsm",
    "SimulatedSnpChip",
    "SimulatedSnpPlatform",
    "SnpGuest",
    "simulated_image_pcrs",
    "simulated_snp_measurement",
]
