"""The GPU side of a composite submission: the devices beside a CPU TEE attest with nonces
bound to the CPU evidence's challenge and the job's result.

:class:`GpuAttester` holds the job's devices (GPUs first, then NVSwitches) and, given the
service's challenge and the result, returns one ``nvidia-gpu`` :class:`Evidence` per device:
device ``i``'s SPDM report is made over :func:`~enclave_worker.binding.gpu_nonce` of
(challenge, result, ``i``), with the device chain (leaf first, root last) as its
``device-certificate`` endorsements. RIMs are not attached unless asked: the service
completes each device's driver and VBIOS RIMs from its collateral.

Only simulated devices exist here (:class:`~enclave_worker.simulated_nvidia.SimulatedGpu`):
there is no path to a real GPU's SPDM responder in this worker.
"""

from __future__ import annotations

import enum
import secrets
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from enclave_worker.attester import Evidence
from enclave_worker.binding import NONCE_SIZE, ResultDigest, gpu_nonce
from enclave_worker.persist import locked, write_atomically
from enclave_worker.simulated_nvidia import (
    NVIDIA_GPU,
    SimulatedGpu,
    SimulatedNvidiaPki,
    SimulatedNvidiaWarning,
)
from enclave_worker.simulated_rim import RimKind, SimulatedRim

__all__ = [
    "GPU_ARCHS",
    "MAX_DEVICES",
    "RIMS_DIR",
    "GpuAttester",
    "GpuBadMode",
    "simulated_devices",
    "write_simulated_rims",
]

#: The service takes at most this many devices per submission (contract section 1).
MAX_DEVICES: Final = 16
#: The GPU architectures a job's GPUs may have (its NVSwitches are LS10).
GPU_ARCHS: Final = ("HOPPER", "BLACKWELL")
#: Where a simulated NVIDIA directory keeps the RIMs of its devices' firmware.
RIMS_DIR: Final = "rims"
#: Every simulated device a worker makes runs this image, so that a (chip, kind, version)
#: names one RIM, as NVIDIA's do.
_IMAGE: Final = "default"


class GpuBadMode(enum.StrEnum):
    """Wrong GPU evidence on purpose, for negative tests; each applies to device 0 only,
    so the other devices of the job show what a good one looks like."""

    #: Device 0's report is made for another challenge, as a report replayed from another
    #: job (under another CPU evidence) is: the service finds ``nonce_mismatch``.
    OTHER_CHALLENGE = "gpu-other-challenge"
    #: Device 0's report is made with index 1's nonce, as if it were another device of the
    #: same job: ``nonce_mismatch`` too.
    WRONG_INDEX = "gpu-wrong-index"


class GpuAttester:
    """The devices of one worker, in submission order (position ``i`` is the gpu_nonce
    index). ``attach_rims`` sends each device's driver and VBIOS RIMs after its chain."""

    kind = NVIDIA_GPU

    def __init__(self, devices: Sequence[SimulatedGpu], *, attach_rims: bool = False) -> None:
        if not devices:
            raise ValueError("a GPU attester needs at least one device")
        if len(devices) > MAX_DEVICES:
            raise ValueError(f"at most {MAX_DEVICES} devices per submission, not {len(devices)}")
        self.devices = tuple(devices)
        self.attach_rims = attach_rims

    def attest(
        self, *, nonce: bytes, result: ResultDigest, bad: GpuBadMode | None = None
    ) -> list[Evidence]:
        """One evidence per device: device ``i``'s report over
        ``gpu_nonce(nonce, result, i)``, where ``nonce`` is the challenge the CPU evidence
        carries."""
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"the challenge nonce must be {NONCE_SIZE} bytes, not {len(nonce)}")
        evidence = []
        for index, device in enumerate(self.devices):
            challenge, nonce_index = nonce, index
            if index == 0 and bad is GpuBadMode.OTHER_CHALLENGE:
                challenge = _other(nonce)
            elif index == 0 and bad is GpuBadMode.WRONG_INDEX:
                nonce_index = 1
            made = device.evidence(gpu_nonce(challenge, result, nonce_index))
            if self.attach_rims:
                rims = SimulatedRim(device).endorsements()
                made = Evidence(made.kind, made.data, made.endorsements + rims)
            evidence.append(made)
        return evidence


def _other(challenge: bytes) -> bytes:
    while True:
        other = secrets.token_bytes(NONCE_SIZE)
        if other != challenge:
            return other


def simulated_devices(
    pki: SimulatedNvidiaPki, *, gpus: int, switches: int = 0, arch: str = "HOPPER"
) -> list[SimulatedGpu]:
    """``gpus`` simulated GPUs of ``arch`` (HOPPER or BLACKWELL) then ``switches`` LS10
    NVSwitches, each a new device (its own identity), all at the default driver and VBIOS of
    their architecture (whose RIMs :func:`write_simulated_rims` writes). Warns once."""
    if arch not in GPU_ARCHS:
        raise ValueError(f"a GPU's architecture is one of {list(GPU_ARCHS)}, not {arch!r}")
    if gpus < 1:
        raise ValueError(f"a job with devices has at least one GPU, not {gpus}")
    if switches < 0:
        raise ValueError(f"the number of NVSwitches must not be negative, not {switches}")
    if gpus + switches > MAX_DEVICES:
        raise ValueError(
            f"at most {MAX_DEVICES} devices per submission, not {gpus} GPUs + {switches} switches"
        )
    warnings.warn(
        "simulated NVIDIA GPUs sign with a simulated device PKI, not NVIDIA hardware",
        SimulatedNvidiaWarning,
        stacklevel=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return [SimulatedGpu(pki, arch=arch, image=_IMAGE) for _ in range(gpus)] + [
            SimulatedGpu(pki, arch="LS10", image=_IMAGE) for _ in range(switches)
        ]


def write_simulated_rims(pki: SimulatedNvidiaPki, directory: Path) -> list[Path]:
    """The driver and VBIOS RIMs of every simulated device :func:`simulated_devices` makes
    (Hopper, Blackwell, LS10 at their default versions), signed under ``pki``'s RIM chain,
    written to ``directory/rims/<chip>-<kind>-<version>.xml`` where missing (a file already
    there is kept: the service may have imported it). Returns every RIM's path. Holds the
    directory's lock, as :meth:`SimulatedNvidiaPki.load_or_create` does."""
    target = directory / RIMS_DIR
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    with locked(directory / ".lock"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        for arch in (*GPU_ARCHS, "LS10"):
            rim = SimulatedRim(SimulatedGpu(pki, arch=arch, image=_IMAGE, secret=bytes(32)))
            kinds: tuple[RimKind, ...] = ("vbios",) if arch == "LS10" else ("driver", "vbios")
            for kind in kinds:
                path = target / f"{rim.gpu.chip}-{kind}-{rim.version(kind)}.xml"
                if not path.exists():
                    write_atomically(path, rim.document(kind), 0o644)
                paths.append(path)
    return paths
