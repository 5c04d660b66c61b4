"""Appraise an authentic TPM quote against a policy, collecting every violation: reference
images (PCR values and expected events), a required event log, the AK path, the binding
in extraData, and an all-reset PCR set.

The binding (extraData): 32 bytes are the challenge nonce itself; 64 bytes are
``verifier.binding.report_data(nonce, result_hash)``, checked half by half as SEV-SNP's and
TDX's report_data are; any other length cannot hold the nonce (``nonce_mismatch``) nor a
result binding (``result_binding_missing``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from verifier.binding import (
    REPORT_DATA_BYTES,
    REPORT_DATA_NONCE_BYTES,
    ResultHash,
    binding_tiers,
    report_data_violations,
)
from verifier.errors import Violation
from verifier.tpm.claims import TpmClaims
from verifier.tpm.policy import TpmPolicy, TpmReferenceImage

__all__ = ["TpmAppraisal", "appraise", "trustworthiness"]

_EXECUTABLES = frozenset({"pcr_mismatch", "event_missing", "event_log_missing"})
_CONFIGURATION = frozenset({"pcrs_all_reset"})


@dataclass(frozen=True, slots=True)
class TpmAppraisal:
    violations: tuple[Violation, ...]
    notes: tuple[str, ...]
    matched_image: str | None


def appraise(
    claims: TpmClaims,
    policy: TpmPolicy,
    *,
    nonce: bytes | None,
    result_hash: ResultHash | None,
) -> TpmAppraisal:
    violations: list[Violation] = []
    notes: list[str] = []
    if claims.ak_path not in policy.ak_paths:
        violations.append(
            Violation(
                "ak_path_not_allowed",
                f"ak: vouched for by {claims.ak_path}; the policy accepts "
                f"{', '.join(policy.ak_paths)}",
            )
        )
    if policy.require_event_log and claims.event_log is None:
        violations.append(
            Violation("event_log_missing", "event log: the policy requires one, none came")
        )
    matched, image_violations = _match_images(claims, policy)
    violations.extend(image_violations)
    if policy.accepts_any_measurement:
        notes.append("PCR values not appraised: the policy accepts any (unsafe)")
    if policy.reject_all_reset and _all_reset(claims.pcrs):
        violations.append(
            Violation(
                "pcrs_all_reset",
                "pcrs: every quoted PCR is at its reset value (zeros or all ff): nothing was "
                "measured",
            )
        )
    violations.extend(_binding(claims.attest.extra_data, nonce, result_hash))
    return TpmAppraisal(tuple(violations), tuple(notes), matched)


def _all_reset(pcrs: Mapping[str, Mapping[int, bytes]]) -> bool:
    return all(
        not any(v) or v == b"\xff" * len(v) for values in pcrs.values() for v in values.values()
    )


def _binding(
    extra_data: bytes, nonce: bytes | None, result_hash: ResultHash | None
) -> list[Violation]:
    if len(extra_data) == REPORT_DATA_BYTES:
        return report_data_violations(extra_data, nonce, result_hash)
    out = []
    if nonce is not None:
        if len(extra_data) == REPORT_DATA_NONCE_BYTES and not any(extra_data):
            out.append(Violation("nonce_missing", "extraData: expected the nonce, found zeros"))
        elif len(extra_data) != REPORT_DATA_NONCE_BYTES or not hmac.compare_digest(
            extra_data, nonce
        ):
            out.append(
                Violation(
                    "nonce_mismatch",
                    f"extraData: expected the nonce {nonce.hex()[:64]}, found "
                    f"{len(extra_data)} bytes {extra_data.hex()[:64]}",
                )
            )
    if result_hash is not None:
        out.append(
            Violation(
                "result_binding_missing",
                f"extraData: {len(extra_data)} bytes cannot bind {result_hash}; a result "
                "binding needs the 64 bytes of report_data(nonce, result_hash)",
            )
        )
    return out


def _match_images(claims: TpmClaims, policy: TpmPolicy) -> tuple[str | None, list[Violation]]:
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


def _image_mismatches(claims: TpmClaims, image: TpmReferenceImage) -> list[Violation]:
    out = []
    for bank, values in image.pcrs.items():
        quoted = claims.pcrs.get(bank, {})
        for index, expected in values.items():
            found = quoted.get(index)
            if found is None:
                out.append(
                    Violation(
                        "pcr_mismatch",
                        f"{bank} PCR {index}: expected {expected.hex()} (image {image.name!r}), "
                        "but the quote does not cover it",
                        pcr_index=index,
                    )
                )
            elif not hmac.compare_digest(found, expected):
                out.append(
                    Violation(
                        "pcr_mismatch",
                        f"{bank} PCR {index}: expected {expected.hex()} (image {image.name!r}), "
                        f"found {found.hex()}",
                        pcr_index=index,
                    )
                )
    log = claims.event_log
    for wanted in image.events:
        present = log is not None and log.proves(wanted.pcr, wanted.digests)
        if not present:
            where = (
                "the events the log proves (in PCRs and banks it replayed to the quote)"
                if log is not None
                else "any log (no event log came)"
            )
            out.append(
                Violation(
                    "event_missing",
                    f"{wanted.describe()} (image {image.name!r}) is not in {where}",
                    pcr_index=wanted.pcr,
                )
            )
    return out


def trustworthiness(
    policy: TpmPolicy,
    claims: TpmClaims,
    violations: tuple[Violation, ...],
    *,
    nonce_checked: bool,
    result_binding_checked: bool,
) -> Mapping[str, str]:
    """The AR4SI claims a TPM verdict speaks to, by tier name."""
    codes = {v.code for v in violations}
    hardware = (
        "contraindicated"
        if "ak_path_not_allowed" in codes
        else "affirming"
        if claims.ak_path in ("aws-nitrotpm", "gcp")
        else "warning"  # enrolled: the operator vouches for the AK, not a vendor
    )
    executables = (
        "contraindicated"
        if codes & _EXECUTABLES
        else "warning"
        if policy.accepts_any_measurement
        else "affirming"
    )
    configuration = "contraindicated" if codes & _CONFIGURATION else "affirming"
    freshness, sourced = binding_tiers(
        codes, nonce_checked=nonce_checked, result_binding_checked=result_binding_checked
    )
    return MappingProxyType(
        {
            "hardware": hardware,
            "instance-identity": "affirming",  # the AK, vouched for by its path
            "configuration": configuration,
            "executables": executables,
            "sourced-data": sourced,
            "runtime-opaque": freshness,
        }
    )
