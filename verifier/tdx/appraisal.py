"""Appraise an authentic TDX or SGX quote against its policy, collecting every violation.

The TCB status and advisories (from Intel's collateral) are mapped to EAR tiers by the
policy; reference values, debug, XFAM and SVN minimums are compared; the challenge nonce and
the result hash are checked in report_data as :mod:`verifier.binding` defines (nonce in bytes
0..31, SHA-256 of the result hash's ``user_data`` in 32..63), exactly as for SEV-SNP.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from verifier.binding import ResultHash, binding_tiers, report_data_violations
from verifier.errors import Violation
from verifier.tdx.claims import DcapClaims
from verifier.tdx.policy import SgxPolicy, SgxReferenceImage, TdxPolicy, TdxReferenceImage
from verifier.tdx.quote import EnclaveReport, TdReport

__all__ = ["DcapAppraisal", "appraise", "trustworthiness"]

_TD_CODES = {
    "mr_td": "mrtd_mismatch",
    "rtmr0": "rtmr_mismatch",
    "rtmr1": "rtmr_mismatch",
    "rtmr2": "rtmr_mismatch",
    "rtmr3": "rtmr_mismatch",
    "mr_config_id": "mrconfigid_mismatch",
    "mr_owner": "mrowner_mismatch",
    "mr_owner_config": "mrownerconfig_mismatch",
}
_EXECUTABLES = frozenset(
    {
        "mrtd_mismatch",
        "rtmr_mismatch",
        "mrenclave_mismatch",
        "mrsigner_mismatch",
        "isv_prod_id_mismatch",
        "isv_svn_too_old",
    }
)
_CONFIGURATION = frozenset(
    {
        "debug_mode",
        "xfam_not_allowed",
        "mrconfigid_mismatch",
        "mrowner_mismatch",
        "mrownerconfig_mismatch",
    }
)
_HARDWARE = frozenset({"tcb_status", "advisory_not_allowed", "tee_tcb_svn_too_old"})


@dataclass(frozen=True, slots=True)
class DcapAppraisal:
    violations: tuple[Violation, ...]
    notes: tuple[str, ...]
    matched_image: str | None
    #: The policy's tier for the TCB status and advisories: affirming, warning, contraindicated.
    tcb_tier: str


def appraise(
    claims: DcapClaims,
    policy: TdxPolicy | SgxPolicy,
    *,
    nonce: bytes | None,
    result_hash: ResultHash | None,
) -> DcapAppraisal:
    violations: list[Violation] = []
    notes: list[str] = []
    tier = _tcb(claims, policy, violations, notes)
    body = claims.quote.body
    if body.debug:
        what = (
            "TD attributes DEBUG (bit 0)"
            if isinstance(body, TdReport)
            else "ATTRIBUTES.DEBUG (bit 1)"
        )
        if policy.allow_debug:
            notes.append(f"debug: {what} is set, and this policy allows it")
        else:
            violations.append(
                Violation("debug_mode", f"{what} is set: the policy does not allow debug")
            )
    matched: str | None = None
    if isinstance(policy, TdxPolicy):
        assert isinstance(body, TdReport)  # noqa: S101 - the verifier matched kind and policy
        matched = _td_images(body, policy, violations)
        _td_rules(body, policy, violations)
    else:
        assert isinstance(body, EnclaveReport)  # noqa: S101 - as above
        matched = _sgx_images(body, policy, violations)
    if policy.accepts_any_measurement:
        notes.append("measurement not appraised: the policy accepts any (unsafe)")
    violations.extend(report_data_violations(body.report_data, nonce, result_hash))
    return DcapAppraisal(tuple(violations), tuple(notes), matched, tier)


def _tcb(
    claims: DcapClaims,
    policy: TdxPolicy | SgxPolicy,
    violations: list[Violation],
    notes: list[str],
) -> str:
    status = claims.tcb_status
    assert status is not None  # noqa: S101 - appraisal follows a TCB evaluation
    tier = policy.tcb_status[status]
    if tier == "contraindicated":
        violations.append(Violation("tcb_status", f"TCB status {status}: the policy refuses it"))
    elif tier == "warning":
        notes.append(f"TCB status {status}: allowed by the policy as a warning")
    advisories = claims.advisory_ids
    if advisories:
        allowed = policy.allowed_advisories
        if allowed is None:
            notes.append(f"advisories {', '.join(advisories)}: no allow-list, so a warning")
            tier = "warning" if tier == "affirming" else tier
        else:
            outside = [a for a in advisories if a not in allowed]
            for advisory in outside:
                violations.append(
                    Violation(
                        "advisory_not_allowed",
                        f"advisory {advisory} applies to this platform; the policy's "
                        "allow-list does not include it",
                    )
                )
            if outside:
                tier = "contraindicated"
            else:
                notes.append(f"advisories {', '.join(advisories)}: on the policy's allow-list")
    return tier


def _td_images(body: TdReport, policy: TdxPolicy, violations: list[Violation]) -> str | None:
    if policy.accepts_any_measurement:
        return None
    best: list[Violation] | None = None
    for image in policy.images:
        mismatches = _td_mismatches(body, image)
        if not mismatches:
            return image.name
        if best is None or len(mismatches) < len(best):
            best = mismatches
    violations.extend(best or [])
    return None


_TD_FIELDS = {
    "mr_td": (136, 184),
    "rtmr0": (328, 376),
    "rtmr1": (376, 424),
    "rtmr2": (424, 472),
    "rtmr3": (472, 520),
    "mr_config_id": (184, 232),
    "mr_owner": (232, 280),
    "mr_owner_config": (280, 328),
}


def _td_mismatches(body: TdReport, image: TdxReferenceImage) -> list[Violation]:
    out = []
    raw = body.raw
    for name, expected in image.expected().items():
        start, end = _TD_FIELDS[name]
        found = raw[start:end]
        if not hmac.compare_digest(found, expected):
            out.append(
                Violation(
                    _TD_CODES[name],
                    f"{name}: expected {expected.hex()} (image {image.name!r}), "
                    f"found {found.hex()}",
                )
            )
    return out


def _td_rules(body: TdReport, policy: TdxPolicy, violations: list[Violation]) -> None:
    if policy.xfam_allowed is not None and body.xfam not in policy.xfam_allowed:
        violations.append(
            Violation(
                "xfam_not_allowed",
                f"xfam: {body.xfam.hex()} is not among the policy's "
                f"{', '.join(v.hex() for v in policy.xfam_allowed)}",
            )
        )
    minimum = policy.min_tee_tcb_svn
    if minimum is not None:
        low = [i for i in range(16) if body.tee_tcb_svn[i] < minimum[i]]
        if low:
            violations.append(
                Violation(
                    "tee_tcb_svn_too_old",
                    f"TEE_TCB_SVN {body.tee_tcb_svn.hex()} is below the policy's minimum "
                    f"{minimum.hex()} at byte(s) {', '.join(map(str, low))}",
                )
            )


def _sgx_images(body: EnclaveReport, policy: SgxPolicy, violations: list[Violation]) -> str | None:
    if policy.accepts_any_measurement:
        return None
    best: list[Violation] | None = None
    for image in policy.images:
        mismatches = _sgx_mismatches(body, image)
        if not mismatches:
            return image.name
        if best is None or len(mismatches) < len(best):
            best = mismatches
    violations.extend(best or [])
    return None


def _sgx_mismatches(body: EnclaveReport, image: SgxReferenceImage) -> list[Violation]:
    out = []
    for name, code, found in (
        ("mr_enclave", "mrenclave_mismatch", body.mr_enclave),
        ("mr_signer", "mrsigner_mismatch", body.mr_signer),
    ):
        expected: bytes | None = getattr(image, name)
        if expected is not None and not hmac.compare_digest(found, expected):
            out.append(
                Violation(
                    code,
                    f"{name}: expected {expected.hex()} (image {image.name!r}), "
                    f"found {found.hex()}",
                )
            )
    if image.isv_prod_id is not None and body.isv_prod_id != image.isv_prod_id:
        out.append(
            Violation(
                "isv_prod_id_mismatch",
                f"isv_prod_id: expected {image.isv_prod_id} (image {image.name!r}), found "
                f"{body.isv_prod_id}",
            )
        )
    if image.min_isv_svn is not None and body.isv_svn < image.min_isv_svn:
        out.append(
            Violation(
                "isv_svn_too_old",
                f"isv_svn: {body.isv_svn}, the image {image.name!r} requires at least "
                f"{image.min_isv_svn}",
            )
        )
    return out


def trustworthiness(
    policy: TdxPolicy | SgxPolicy,
    claims: DcapClaims,
    appraisal: DcapAppraisal,
    *,
    nonce_checked: bool,
    result_binding_checked: bool,
) -> Mapping[str, str]:
    codes = {v.code for v in appraisal.violations}
    hardware = (
        "contraindicated"
        if codes & _HARDWARE
        else "warning"
        if appraisal.tcb_tier == "warning"
        else "affirming"
    )
    configuration = (
        "contraindicated" if codes & _CONFIGURATION else "warning" if claims.debug else "affirming"
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
            "hardware": hardware,  # PCK chain to Intel's root, TCB status from signed collateral
            "instance-identity": "affirming",  # the PCK certificate names the platform
            "configuration": configuration,
            "executables": executables,
            "sourced-data": sourced,
            "runtime-opaque": freshness,
        }
    )
