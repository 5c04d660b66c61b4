"""Evidence kind -> scheme: the one place that knows every scheme.

::

    scheme_for("amd-sev-snp")                          # SnpVerifier, pinned AMD roots
    scheme_for("intel-tdx")                            # DcapVerifier, pinned Intel SGX root
    scheme_for("tpm2-quote")                           # TpmVerifier, pinned Google AK roots
    scheme_for("nvidia-gpu")                           # NvidiaVerifier, pinned NVIDIA roots
    scheme_for("aws-nitro-enclave", trust_anchors=[a])  # NitroVerifier trusting ``a`` only
    policy_from_json(text)                             # the policy of the kind it names
    detect_kind(data)                                  # which kind raw bytes are, if clear

A scheme keeps caches of verified links: build one per kind and keep it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from verifier.errors import MalformedEvidence, PolicyInvalid
from verifier.nitro.policy import NITRO_KINDS, Policy
from verifier.nitro.verify import NitroVerifier, parse_evidence
from verifier.nvidia.policy import NvidiaPolicy
from verifier.nvidia.verify import NvidiaVerifier
from verifier.policy import SchemePolicy
from verifier.scheme import EvidenceKind, Scheme
from verifier.snp.policy import SnpPolicy
from verifier.snp.report import REPORT_BYTES
from verifier.snp.verify import SnpVerifier
from verifier.tdx.policy import SgxPolicy, TdxPolicy
from verifier.tdx.quote import INTEL_QE_VENDOR_ID
from verifier.tdx.verify import DcapVerifier
from verifier.tpm.evidence import is_container
from verifier.tpm.policy import TpmPolicy
from verifier.tpm.verify import TpmVerifier
from verifier.x509 import TrustAnchor

__all__ = [
    "detect_kind",
    "device_kinds",
    "kinds",
    "policy_from_dict",
    "policy_from_json",
    "scheme_for",
]

_KINDS = (
    *NITRO_KINDS,
    EvidenceKind.AMD_SEV_SNP,
    EvidenceKind.INTEL_TDX,
    EvidenceKind.INTEL_SGX,
    EvidenceKind.TPM2_QUOTE,
)
#: Devices attached to a CPU TEE's evidence (a submission's ``devices``): judged beside it,
#: never alone, since their nonce is derived from the challenge the CPU evidence carries.
_DEVICE_KINDS = (EvidenceKind.NVIDIA_GPU,)
#: A COSE_Sign1 starts with an array of four (0x84) or tag 18 (0xD2); an SEV-SNP report's
#: first byte is its version's low byte (2, 3 or 5).
_COSE_FIRST_BYTES = (0x84, 0xD2)


def kinds() -> tuple[EvidenceKind, ...]:
    """The kinds of a CPU TEE's (or TPM's) evidence this verifier can verify today."""
    return _KINDS


def device_kinds() -> tuple[EvidenceKind, ...]:
    """The kinds of device evidence (GPUs, NVSwitches) judged beside a CPU TEE's."""
    return _DEVICE_KINDS


def scheme_for(
    kind: EvidenceKind | str, *, trust_anchors: Sequence[TrustAnchor] | None = None
) -> Scheme:
    """A new scheme for ``kind``. ``trust_anchors`` replaces the scheme's pinned roots (one
    P-384 root for Nitro; ARKs named ``CN=ARK-<product line>`` for SEV-SNP; P-256 roots for
    Intel TDX and SGX, one DcapVerifier serving both; the Google AK CA roots for TPM quotes,
    whose NitroTPM documents are judged against the pinned AWS root; the device root for
    NVIDIA GPUs, whose RIMs are judged against the pinned NVIDIA RIM root). Raises
    ``ValueError`` for a kind without a scheme or unusable anchors."""
    try:
        evidence_kind = EvidenceKind(kind)
    except ValueError:
        raise ValueError(f"unknown evidence kind {str(kind)[:40]!r}") from None
    if evidence_kind in NITRO_KINDS:
        if trust_anchors is None:
            return NitroVerifier()
        if len(trust_anchors) != 1:
            raise ValueError("a Nitro scheme trusts exactly one root")
        return NitroVerifier(trust_anchor=trust_anchors[0])
    if evidence_kind is EvidenceKind.AMD_SEV_SNP:
        return SnpVerifier(trust_anchors=trust_anchors)
    if evidence_kind in (EvidenceKind.INTEL_TDX, EvidenceKind.INTEL_SGX):
        return DcapVerifier(trust_anchors=trust_anchors)
    if evidence_kind is EvidenceKind.TPM2_QUOTE:
        return TpmVerifier(trust_anchors=trust_anchors)
    if evidence_kind is EvidenceKind.NVIDIA_GPU:
        return NvidiaVerifier(trust_anchors=trust_anchors)
    raise ValueError(f"evidence kind {evidence_kind} is reserved; no scheme verifies it yet")


def policy_from_dict(data: Any) -> SchemePolicy:
    """The policy of the kind ``data["evidence_kind"]`` names (Nitro enclaves if absent, as
    before there were schemes). Raises :class:`PolicyInvalid`."""
    if not isinstance(data, dict):
        raise PolicyInvalid("policy: expected a JSON object")
    if data.get("evidence_kind") == str(EvidenceKind.AMD_SEV_SNP):
        return SnpPolicy.from_dict(data)
    if data.get("evidence_kind") == str(EvidenceKind.INTEL_TDX):
        return TdxPolicy.from_dict(data)
    if data.get("evidence_kind") == str(EvidenceKind.INTEL_SGX):
        return SgxPolicy.from_dict(data)
    if data.get("evidence_kind") == str(EvidenceKind.TPM2_QUOTE):
        return TpmPolicy.from_dict(data)
    if data.get("evidence_kind") == str(EvidenceKind.NVIDIA_GPU):
        return NvidiaPolicy.from_dict(data)
    return Policy.from_dict(data)


def policy_from_json(text: str | bytes) -> SchemePolicy:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PolicyInvalid(f"policy: not valid JSON ({exc})") from None
    return policy_from_dict(data)


def detect_kind(data: bytes) -> EvidenceKind | None:
    """The kind of raw evidence bytes when it is unambiguous, else None: a COSE_Sign1 is a
    Nitro document (its payload says enclave or NitroTPM), 1184 bytes an SEV-SNP report, a
    DCAP quote header (version 3 with TEE type 0 for SGX, 4 or 5 with 0x81 for TDX, ECDSA
    P-256 key type, Intel's QE vendor id) an Intel quote, a CBOR map whose first entry is
    ``"format": "tpm2-quote/v1"`` a TPM quote. (An NVIDIA report, a device kind, is never
    detected here: tools read NVIDIA's evidence JSON or are told the kind.)"""
    if is_container(data):
        return EvidenceKind.TPM2_QUOTE
    if len(data) >= 28 and data[12:28] == INTEL_QE_VENDOR_ID and data[2:4] == b"\x02\x00":
        version = int.from_bytes(data[0:2], "little")
        tee = int.from_bytes(data[4:8], "little")
        if version == 3 and tee == 0:
            return EvidenceKind.INTEL_SGX
        if version in (4, 5) and tee == 0x81:
            return EvidenceKind.INTEL_TDX
    if data[:1] and data[0] in _COSE_FIRST_BYTES:
        try:
            return parse_evidence(data)[1].kind
        except MalformedEvidence:
            return EvidenceKind.AWS_NITRO_ENCLAVE
    if len(data) == REPORT_BYTES:
        return EvidenceKind.AMD_SEV_SNP
    return None
