"""Appraise an authentic NVIDIA report against a policy and the verified RIMs, collecting
every violation (the verifier raises one PolicyViolation carrying them all).

Measurements: every active ``Resource index=i`` of each RIM is compared with measurement
block ``i + 1``: equal to one of its alternatives and of its size. A mismatch is one
``measurement_mismatch`` per index, naming the index, the block and the RIM. As NVIDIA's
verifier does, index 35 is not compared when the report says NVDEC0 is disabled (opaque
field 11 = 0x55), and said so in the notes.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from verifier.errors import Violation
from verifier.nvidia.claims import RimComparison
from verifier.nvidia.policy import ARCHITECTURES, NvidiaImage, NvidiaPolicy
from verifier.nvidia.report import NvdecStatus, SpdmReport
from verifier.nvidia.rim import Rim, RimKind

__all__ = ["NvidiaAppraisal", "appraise", "compare_rim", "trustworthiness"]

_NVDEC_INDEX = 35
_CONFIGURATION = frozenset(
    {
        "arch_not_allowed",
        "driver_version_not_allowed",
        "vbios_version_not_allowed",
        "feature_flag_not_allowed",
    }
)
_EXECUTABLES = frozenset({"measurement_mismatch", "rim_missing", "rim_version_mismatch"})


@dataclass(frozen=True, slots=True)
class NvidiaAppraisal:
    violations: tuple[Violation, ...]
    notes: tuple[str, ...]
    matched_image: str | None


def compare_rim(report: SpdmReport, rim: Rim) -> tuple[RimComparison, list[Violation]]:
    """Compare every active index of ``rim`` with the report's blocks."""
    matched = 0
    mismatched: list[int] = []
    skipped: list[int] = []
    violations: list[Violation] = []
    for measurement in rim.measurements:
        if measurement.index == _NVDEC_INDEX and report.nvdec0_status is NvdecStatus.DISABLED:
            skipped.append(measurement.index)
            continue
        block = report.block(measurement.index + 1)
        if block is None:
            found = "no such block"
        elif len(block.value) == measurement.size and any(
            hmac.compare_digest(block.value, value) for value in measurement.alternatives
        ):
            matched += 1
            continue
        else:
            found = block.value.hex()
        mismatched.append(measurement.index)
        violations.append(
            Violation(
                "measurement_mismatch",
                f"{rim.kind} RIM {rim.version}: index {measurement.index} (measurement block "
                f"{measurement.index + 1}) expected one of "
                f"{', '.join(v.hex()[:16] + '...' for v in measurement.alternatives)}, found "
                f"{found[:16]}{'...' if len(found) > 16 else ''}",
                measurement_index=measurement.index,
            )
        )
    comparison = RimComparison(
        kind=str(rim.kind),
        id=rim.tag_id,
        version=rim.version,
        sha256=rim.sha256,
        matched=matched,
        mismatched=tuple(mismatched),
        skipped=tuple(skipped),
    )
    return comparison, violations


def appraise(
    report: SpdmReport,
    arch: str,
    rims: Sequence[Rim],
    policy: NvidiaPolicy,
    *,
    nonce: bytes | None,
) -> tuple[NvidiaAppraisal, tuple[RimComparison, ...]]:
    violations: list[Violation] = []
    notes: list[str] = []

    matched, image_violations = _match_images(report, arch, policy)
    violations.extend(image_violations)
    if policy.accepts_any_measurement:
        notes.append("architecture and versions not appraised: the policy accepts any (unsafe)")

    comparisons = []
    given = {rim.kind: rim for rim in rims}
    for kind in policy.require_rims:
        if kind is RimKind.DRIVER and not ARCHITECTURES.get(arch, True):
            continue  # an NVSwitch has no driver, and no driver RIM: its BIOS RIM judges it
        if kind not in given:
            violations.append(
                Violation(
                    "rim_missing",
                    f"the policy requires the {kind} RIM; none was given with the evidence",
                )
            )
    for rim in rims:
        comparison, rim_violations = compare_rim(report, rim)
        comparisons.append(comparison)
        violations.extend(rim_violations)
        if comparison.skipped:
            notes.append(
                f"{rim.kind} RIM: index 35 not compared: the report says NVDEC0 is disabled"
            )
        reported = report.driver_version if rim.kind is RimKind.DRIVER else report.vbios_version
        if reported is None or reported.lower() != rim.version:
            violations.append(
                Violation(
                    "rim_version_mismatch",
                    f"{rim.kind} RIM is for version {rim.version}; the report's {rim.kind} "
                    f"version is {reported}",
                )
            )
    if not rims:
        notes.append("no RIM given: the measurements were not compared with reference values")

    if policy.feature_flags is not None:
        flag = report.feature_flag
        if flag is None:
            violations.append(
                Violation(
                    "feature_flag_not_allowed",
                    "the report states no confidential-computing mode (opaque field 36 is "
                    f"absent); the policy accepts {', '.join(policy.feature_flags)}",
                )
            )
        elif flag not in policy.feature_flags:
            violations.append(
                Violation(
                    "feature_flag_not_allowed",
                    f"feature flag {flag}: the policy accepts {', '.join(policy.feature_flags)}",
                )
            )
    elif report.feature_flag is None:
        notes.append("the report states no confidential-computing mode (no feature flag)")

    if nonce is not None and not hmac.compare_digest(report.requester_nonce, nonce):
        violations.append(
            Violation(
                "nonce_mismatch",
                f"requester nonce: expected {nonce.hex()}, found {report.requester_nonce.hex()}",
            )
        )
    return NvidiaAppraisal(tuple(violations), tuple(notes), matched), tuple(comparisons)


def _match_images(
    report: SpdmReport, arch: str, policy: NvidiaPolicy
) -> tuple[str | None, list[Violation]]:
    if policy.accepts_any_measurement:
        return None, []
    same_arch = [image for image in policy.images if image.arch == arch]
    if not same_arch:
        return None, [
            Violation(
                "arch_not_allowed",
                f"arch {arch}: the policy's images are for "
                f"{', '.join(sorted({i.arch for i in policy.images}))}",
            )
        ]
    best: list[Violation] | None = None
    for image in same_arch:
        mismatches = _image_mismatches(report, image)
        if not mismatches:
            return image.name, []
        if best is None or len(mismatches) < len(best):
            best = mismatches
    return None, best or []


def _image_mismatches(report: SpdmReport, image: NvidiaImage) -> list[Violation]:
    out = []
    driver = None if report.driver_version is None else report.driver_version.lower()
    if image.driver_versions and driver not in image.driver_versions:
        out.append(
            Violation(
                "driver_version_not_allowed",
                f"driver version {driver}: image {image.name!r} accepts "
                f"{', '.join(image.driver_versions)}",
            )
        )
    if report.vbios_version not in image.vbios_versions:
        out.append(
            Violation(
                "vbios_version_not_allowed",
                f"VBIOS version {report.vbios_version}: image {image.name!r} accepts "
                f"{', '.join(image.vbios_versions)}",
            )
        )
    return out


def trustworthiness(
    policy: NvidiaPolicy,
    violations: tuple[Violation, ...],
    *,
    rims_compared: bool,
    nonce_checked: bool,
) -> Mapping[str, str]:
    codes = {v.code for v in violations}
    configuration = (
        "contraindicated"
        if codes & _CONFIGURATION
        else ("warning" if policy.accepts_any_measurement else "affirming")
    )
    executables = (
        "contraindicated" if codes & _EXECUTABLES else "affirming" if rims_compared else "warning"
    )
    freshness = (
        "contraindicated" if "nonce_mismatch" in codes else "affirming" if nonce_checked else "none"
    )
    return MappingProxyType(
        {
            "hardware": "affirming",  # the device chain to the pinned NVIDIA root, signature
            "instance-identity": "affirming",  # the leaf certificate (and FWID when reported)
            "configuration": configuration,
            "executables": executables,
            "runtime-opaque": freshness,
        }
    )
