"""The attester side: enclave workers that compute results and prove them with attestation.

It talks to the service over HTTP only and imports nothing from ``verifier``, ``ledger`` or
``web``. Its simulated NSM and PKI build documents with their own code, an independent
cross-check of the verifier.
"""

from enclave_worker.attester import (
    AMD_SEV_SNP,
    AWS_NITRO_ENCLAVE,
    Attester,
    Endorsement,
    Evidence,
    NitroAttester,
)
from enclave_worker.simulated_nsm import SimulatedNsm, simulated_image_pcrs
from enclave_worker.simulated_pki import SimulatedNitroPki, SimulatedNitroWarning

__all__ = [
    "AMD_SEV_SNP",
    "AWS_NITRO_ENCLAVE",
    "Attester",
    "Endorsement",
    "Evidence",
    "NitroAttester",
    "SimulatedNitroPki",
    "SimulatedNitroWarning",
    "SimulatedNsm",
    "simulated_image_pcrs",
]
