"""Appraise an authentic SEV-SNP report against a policy, collecting every violation.

Nothing here raises for a violation: the verifier gathers them all, so that an operator sees
every mismatch at once, and then raises one :class:`~verifier.errors.PolicyViolation`.

The challenge nonce and the result hash are bound in ``report_data`` as
:mod:`verifier.binding` defines: the nonce in bytes 0..31, SHA-256 of the result hash's
``user_data`` in bytes 32..63. Each half is checked when its value is given; an all-zero half
is reported as missing rather than mismatched.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from verifier.binding import ResultHash, binding_tiers, report_data_violations
from verifier.errors import Violation
from verifier.snp.claims import SnpClaims
from verifier.snp.policy import SnpPolicy, SnpReferenceImage
from verifier.snp.report import VMPL_HOST

__all__ = ["SnpAppraisal", "appraise", "trustworthiness"]

#: The violation code of each image field that differs.
_MISMATCH_CODES = {
    "measurement": "measurement_mismatch",
    "host_data": "host_data_mismatch",
    "id_key_digest": "id_key_mismatch",
    "author_key_digest": "author_key_mismatch",
    "family_id": "family_id_mismatch",
    "image_id": "image_id_mismatch",
}
_EXECUTABLES = frozenset(
    {
        "measurement_mismatch",
        "id_key_mismatch",
        "author_key_mismatch",
        "family_id_mismatch",
        "image_id_mismatch",
    }
)
_CONFIGURATION = frozenset(
    {
        "host_data_mismatch",
        "debug_mode",
        "smt_not_allowed",
        "migration_agent_not_allowed",
        "vmpl_too_high",
    }
)


@dataclass(frozen=True, slots=True)
class SnpAppraisal:
    violations: tuple[Violation, ...]
    notes: tuple[str, ...]
    matched_image: str | None


def appraise(
    claims: SnpClaims,
    policy: SnpPolicy,
    *,
    nonce: bytes | None,
    result_hash: ResultHash | None,
) -> SnpAppraisal:
    report = claims.report
    violations: list[Violation] = []
    notes: list[str] = []

    if report.policy.debug:
        if policy.allow_debug:
            notes.append("debug allowed by the guest policy (bit 19), and by this policy")
        else:
            violations.append(
                Violation(
                    "debug_mode",
                    "guest policy allows debugging (bit 19): the policy does not allow debug "
                    "guests",
                )
            )
    if report.policy.smt_allowed and not policy.allow_smt:
        violations.append(
            Violation(
                "smt_not_allowed",
                "guest policy allows the host to use SMT (bit 16): the policy does not",
            )
        )
    if report.policy.migrate_ma and not policy.allow_migration_agent:
        violations.append(
            Violation(
                "migration_agent_not_allowed",
                "guest policy allows a migration agent (bit 18): the policy does not",
            )
        )
    if report.vmpl > policy.max_vmpl:
        found = "the host (0xFFFFFFFF)" if report.vmpl == VMPL_HOST else f"VMPL {report.vmpl}"
        violations.append(
            Violation(
                "vmpl_too_high",
                f"vmpl: the report was requested by {found}; the policy allows VMPL "
                f"{policy.max_vmpl} at most",
            )
        )

    matched, image_violations = _match_images(claims, policy)
    violations.extend(image_violations)
    if policy.accepts_any_measurement:
        notes.append("measurement not appraised: the policy accepts any (unsafe)")

    violations.extend(_minimum_tcb(claims, policy, notes))
    violations.extend(report_data_violations(report.report_data, nonce, result_hash))
    return SnpAppraisal(tuple(violations), tuple(notes), matched)


def _match_images(claims: SnpClaims, policy: SnpPolicy) -> tuple[str | None, list[Violation]]:
    """The first image whose every value matches, or the mismatches of the closest one."""
    if policy.accepts_any_measurement:
        return None, []
    best: list[Violation] | None = None
    for image in policy.images:
        mismatches = _image_mismatches(claims, image)
        if not mismatches:
            return image.name, []
        if best is None or len(mismatches) < len(best):
            best = mismatches
    return None, best or []


def _image_mismatches(claims: SnpClaims, image: SnpReferenceImage) -> list[Violation]:
    report = claims.report
    out = []
    for name, expected in image.expected().items():
        found: bytes = getattr(report, name)
        if name == "author_key_digest" and not report.author_key_en:
            out.append(
                Violation(
                    "author_key_mismatch",
                    f"author_key_digest: expected {expected.hex()} (image {image.name!r}), but "
                    "the guest was launched without an author key (author_key_en is 0)",
                )
            )
        elif not hmac.compare_digest(found, expected):
            out.append(
                Violation(
                    _MISMATCH_CODES[name],
                    f"{name}: expected {expected.hex()} (image {image.name!r}), "
                    f"found {found.hex()}",
                )
            )
    return out


def _minimum_tcb(claims: SnpClaims, policy: SnpPolicy, notes: list[str]) -> list[Violation]:
    tcb = claims.reported_tcb
    if tcb is None or not policy.min_tcb:
        return []
    out = []
    for component, minimum in policy.min_tcb.items():
        found = tcb.components.get(component)
        if found is None:
            if minimum:
                notes.append(f"min_tcb {component} does not apply to {tcb.product}")
            continue
        if found < minimum:
            out.append(
                Violation(
                    "tcb_too_old",
                    f"reported_tcb {component}: SPL {found}, the policy requires at least "
                    f"{minimum}",
                    component=component,
                )
            )
    return out


def trustworthiness(
    policy: SnpPolicy,
    claims: SnpClaims,
    violations: tuple[Violation, ...],
    *,
    nonce_checked: bool,
    result_binding_checked: bool,
) -> Mapping[str, str]:
    """The AR4SI claims an SEV-SNP verdict speaks to, by tier name."""
    codes = {v.code for v in violations}
    hardware = "contraindicated" if "tcb_too_old" in codes else "affirming"
    configuration = (
        "contraindicated"
        if codes & _CONFIGURATION
        else "warning"
        if claims.report.policy.debug
        else "affirming"
    )
    executables = (
        "contraindicated"
        if codes & _EXECUTABLES
        else "warning"
        if policy.accepts_any_measurement
        else "affirming"
    )
    freshness, sourced = binding_tiers(
        codes, nonce_checked=nonce_checked, result_binding_checked=result_binding_checked
    )
    return MappingProxyType(
        {
            "hardware": hardware,  # the VCEK/VLEK chained to a trusted ARK, at an acceptable TCB
            "instance-identity": "affirming",  # chip_id (VCEK) or the CSP's VLEK, report_id signed
            "configuration": configuration,
            "executables": executables,
            "sourced-data": sourced,
            "runtime-opaque": freshness,
        }
    )
