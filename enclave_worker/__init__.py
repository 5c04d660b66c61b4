"""The attester side: enclave workers that compute results and prove them with attestation.

It talks to the service over HTTP only and imports nothing from ``verifier``, ``ledger`` or
``web``. Its simulated NSM and PKI (Nitro) and its simulated AMD PKI and SEV-SNP platform
build evidence with their own code, an independent cross-check of the verifier; so do its
simulated Intel PKI, TDX trust domains and SGX enclaves (quotes and collateral), its
simulated NitroTPM (a software TPM's quote with a NitroTPM document for its AK), and its
simulated NVIDIA device PKI, GPUs and NVSwitches (SPDM reports) and RIMs, which a
:class:`GpuAttester` attaches to a job's CPU evidence.
"""

from enclave_worker.attester import (
    AMD_SEV_SNP,
    AWS_NITRO_ENCLAVE,
    INTEL_SGX,
    INTEL_TDX,
    Attester,
    Endorsement,
    Evidence,
    NitroAttester,
)
from enclave_worker.gpu import GpuAttester, GpuBadMode
from enclave_worker.intel_collateral import TcbStanding
from enclave_worker.simulated_amd import SimulatedAmdPki, SimulatedAmdWarning
from enclave_worker.simulated_dcap import (
    SimulatedSgxEnclave,
    SimulatedTdxPlatform,
    simulated_sgx_measurement,
    simulated_tdx_measurement,
)
from enclave_worker.simulated_intel import SimulatedIntelPki, SimulatedIntelWarning
from enclave_worker.simulated_nitrotpm import SimulatedNitroTpm
from enclave_worker.simulated_nsm import SimulatedNsm, simulated_image_pcrs
from enclave_worker.simulated_nvidia import (
    NVIDIA_GPU,
    SimulatedGpu,
    SimulatedNvidiaPki,
    SimulatedNvidiaWarning,
    simulated_gpu_measurements,
)
from enclave_worker.simulated_pki import SimulatedNitroPki, SimulatedNitroWarning
from enclave_worker.simulated_rim import SimulatedRim
from enclave_worker.simulated_snp import (
    SimulatedSnpChip,
    SimulatedSnpPlatform,
    SnpGuest,
    simulated_snp_measurement,
)

__all__ = [
    "AMD_SEV_SNP",
    "AWS_NITRO_ENCLAVE",
    "INTEL_SGX",
    "INTEL_TDX",
    "NVIDIA_GPU",
    "Attester",
    "Endorsement",
    "Evidence",
    "GpuAttester",
    "GpuBadMode",
    "NitroAttester",
    "SimulatedAmdPki",
    "SimulatedAmdWarning",
    "SimulatedGpu",
    "SimulatedIntelPki",
    "SimulatedIntelWarning",
    "SimulatedNitroPki",
    "SimulatedNitroTpm",
    "SimulatedNitroWarning",
    "SimulatedNsm",
    "SimulatedNvidiaPki",
    "SimulatedNvidiaWarning",
    "SimulatedRim",
    "SimulatedSgxEnclave",
    "SimulatedSnpChip",
    "SimulatedSnpPlatform",
    "SimulatedTdxPlatform",
    "SnpGuest",
    "TcbStanding",
    "simulated_gpu_measurements",
    "simulated_image_pcrs",
    "simulated_sgx_measurement",
    "simulated_snp_measurement",
    "simulated_tdx_measurement",
]
