"""The NVIDIA GPU and NVSwitch scheme (``nvidia-gpu``): SPDM 1.1 measurement reports signed
by the device's key, certified by a five-certificate chain to NVIDIA's Device Identity CA,
and compared with NVIDIA's signed reference integrity manifests (RIMs).

::

    report.py     the SPDM GET_MEASUREMENTS request and MEASUREMENTS response, parsed
                  strictly: blocks, nonce, opaque fields, the signature located by lengths
    fwid.py       the firmware ID a leaf certifies (Hopper extension, Blackwell DICE
                  TcbInfo), with a small strict DER reader
    roots.py      the pinned NVIDIA Device Identity CA and CoRIM signing Root CA (roots/)
    chain.py      device and RIM signer paths: P-384, SHA-384, the root by bytes, at a time
    rim.py        RIMs: hardened XML parsing, XML-DSig (signxml, C14N 1.1), measurements
    policy.py     architectures, driver and VBIOS versions, RIMs required, CC mode
    appraisal.py  the report against the policy and the RIMs, every violation collected
    claims.py     what the result carries
    evidence.py   NVIDIA's evidence JSON (a list of {arch, certificate, evidence, nonce})
    verify.py     NvidiaVerifier, which ties the steps together
"""

from verifier.nvidia.claims import NvidiaClaims, RimComparison
from verifier.nvidia.evidence import from_json
from verifier.nvidia.policy import NvidiaImage, NvidiaPolicy, UnsafeAcceptAnyNvidiaPolicy
from verifier.nvidia.report import FeatureFlag, MeasurementBlock, SpdmReport
from verifier.nvidia.rim import MAX_RIM_BYTES, Rim, RimKind, parse_rim, verify_rim
from verifier.nvidia.roots import (
    NVIDIA_DEVICE_ROOT_SHA256,
    NVIDIA_RIM_ROOT_SHA256,
    nvidia_device_root,
    nvidia_rim_root,
)
from verifier.nvidia.verify import MAX_NVIDIA_ENDORSEMENTS, NvidiaVerifier, parse_report

__all__ = [
    "MAX_NVIDIA_ENDORSEMENTS",
    "MAX_RIM_BYTES",
    "NVIDIA_DEVICE_ROOT_SHA256",
    "NVIDIA_RIM_ROOT_SHA256",
    "FeatureFlag",
    "MeasurementBlock",
    "NvidiaClaims",
    "NvidiaImage",
    "NvidiaPolicy",
    "NvidiaVerifier",
    "Rim",
    "RimComparison",
    "RimKind",
    "SpdmReport",
    "UnsafeAcceptAnyNvidiaPolicy",
    "from_json",
    "nvidia_device_root",
    "nvidia_rim_root",
    "parse_report",
    "parse_rim",
    "verify_rim",
]
