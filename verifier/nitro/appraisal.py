"""Appraise an authentic Nitro document against a policy, collecting every violation.

Nothing here raises for a violation: the verifier gathers them all, so that an operator sees
every mismatch at once, and then raises one :class:`~verifier.errors.PolicyViolation`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from verifier.binding import ResultHash
from verifier.errors import Violation
from verifier.nitro.claims import PCRAppraisal
from verifier.nitro.document import AttestationDocument
from verifier.nitro.policy import Policy
from verifier.result import TimeBasis
from verifier.timefmt import iso_utc

__all__ = ["Appraisal", "appraise", "trustworthiness"]


@dataclass(frozen=True, slots=True)
class Appraisal:
    violations: tuple[Violation, ...]
    notes: tuple[str, ...]
    matched_image: str | None
    pcr_appraisals: tuple[PCRAppraisal, ...]


def appraise(
    document: AttestationDocument,
    policy: Policy,
    *,
    at: datetime,
    time_basis: TimeBasis,
    nonce: bytes | None,
    result_hash: ResultHash | None,
) -> Appraisal:
    violations: list[Violation] = []
    notes: list[str] = []

    if document.kind is not policy.evidence_kind:
        violations.append(
            Violation(
                "evidence_kind_mismatch",
                f"evidence kind: expected {policy.evidence_kind}, found {document.kind}",
            )
        )

    if document.is_debug:
        if policy.allow_debug:
            notes.append("debug-mode enclave (PCR0 all zero) allowed by the policy")
        else:
            violations.append(
                Violation(
                    "debug_mode",
                    "debug-mode enclave (PCR0 all zero): the policy does not allow debug enclaves",
                    pcr_index=0,
                )
            )

    matched_image, pcr_violations = _match_images(document, policy)
    violations.extend(pcr_violations)
    if policy.accepts_any_measurement:
        notes.append("measurements not appraised: the policy accepts any PCR values (unsafe)")

    violations.extend(_freshness(document, policy, at=at, time_basis=time_basis, notes=notes))

    if nonce is not None:
        if document.nonce is None:
            violations.append(Violation("nonce_missing", "nonce: expected a nonce, found none"))
        elif not hmac.compare_digest(document.nonce, nonce):
            violations.append(
                Violation(
                    "nonce_mismatch",
                    f"nonce: expected {_preview(nonce)}, found {_preview(document.nonce)}",
                )
            )

    if result_hash is not None:
        expected = result_hash.user_data()
        if document.user_data is None:
            violations.append(
                Violation(
                    "result_binding_missing",
                    f"user_data: expected the binding of {result_hash}, found no user_data",
                )
            )
        elif not hmac.compare_digest(document.user_data, expected):
            violations.append(
                Violation(
                    "result_binding_mismatch",
                    f"user_data: expected the binding of {result_hash} "
                    f"({_preview(expected)}), found {_preview(document.user_data)}",
                )
            )

    return Appraisal(
        violations=tuple(violations),
        notes=tuple(notes),
        matched_image=matched_image,
        pcr_appraisals=_pcr_appraisals(document, policy),
    )


def trustworthiness(
    document: AttestationDocument,
    policy: Policy,
    violations: tuple[Violation, ...],
    *,
    nonce_checked: bool,
    result_binding_checked: bool,
) -> Mapping[str, str]:
    """The AR4SI claims a Nitro verdict speaks to, by tier name."""
    if not violations:  # the common case, without a pass over the codes
        return MappingProxyType(
            {
                "hardware": "affirming",
                "instance-identity": "affirming",
                "executables": "warning"
                if policy.accepts_any_measurement or document.is_debug
                else "affirming",
                "sourced-data": "affirming" if result_binding_checked else "none",
                "runtime-opaque": "affirming" if nonce_checked else "none",
            }
        )
    executables = (
        "contraindicated"
        if any(v.code in ("pcr_mismatch", "debug_mode") for v in violations)
        else "warning"
        if policy.accepts_any_measurement or document.is_debug
        else "affirming"
    )
    freshness = (
        "contraindicated"
        if any(v.code.startswith(("nonce", "document_")) for v in violations)
        else "affirming"
        if nonce_checked
        else "none"
    )
    sourced = (
        "contraindicated"
        if any(v.code.startswith("result_binding") for v in violations)
        else "affirming"
        if result_binding_checked
        else "none"
    )
    return MappingProxyType(
        {
            "hardware": "affirming",  # the chain reached the configured trust anchor
            "instance-identity": "affirming",  # module_id is inside the signed payload
            "executables": executables,
            "sourced-data": sourced,
            "runtime-opaque": freshness,
        }
    )


def _match_images(
    document: AttestationDocument, policy: Policy
) -> tuple[str | None, list[Violation]]:
    """The first image whose every PCR matches, or the mismatches of the closest image."""
    if policy.accepts_any_measurement:
        return None, []
    best: list[Violation] | None = None
    for image in policy.images:
        mismatches = [
            Violation(
                "pcr_mismatch",
                f"PCR{index}: expected {expected.hex()} (image {image.name!r}), "
                f"found {_pcr_text(document.pcrs.get(index))}",
                pcr_index=index,
            )
            for index, expected in image.pcrs.items()
            if document.pcrs.get(index) != expected
        ]
        if not mismatches:
            return image.name, []
        if best is None or len(mismatches) < len(best):
            best = mismatches
    return None, best or []


def _pcr_appraisals(document: AttestationDocument, policy: Policy) -> tuple[PCRAppraisal, ...]:
    out = []
    for index, value in document.pcrs.items():
        listing = [image for image in policy.images if index in image.pcrs]
        out.append(
            PCRAppraisal(
                index=index,
                value=value,
                matched_images=tuple(i.name for i in listing if i.pcrs[index] == value),
                referenced=bool(listing),
            )
        )
    return tuple(out)


def _freshness(
    document: AttestationDocument,
    policy: Policy,
    *,
    at: datetime,
    time_basis: TimeBasis,
    notes: list[str],
) -> list[Violation]:
    if time_basis is TimeBasis.DOCUMENT:
        notes.append(
            "verified as of the document's own timestamp: age and clock skew not evaluated"
        )
        return []
    age = at - document.timestamp
    if age < -policy.clock_skew:
        return [
            Violation(
                "document_from_future",
                f"timestamp: {iso_utc(document.timestamp)} is {-age} after the verification "
                f"time {iso_utc(at)}; the policy tolerates {policy.clock_skew} of clock skew",
            )
        ]
    if policy.max_age is not None and age > policy.max_age:
        return [
            Violation(
                "document_too_old",
                f"timestamp: the document is {age} old at {iso_utc(at)}; "
                f"the policy allows at most {policy.max_age}",
            )
        ]
    if policy.max_age is None:
        notes.append("the policy sets no maximum document age")
    return []


def _pcr_text(value: bytes | None) -> str:
    return "no such PCR" if value is None else value.hex()


def _preview(value: bytes) -> str:
    text = value.hex()
    return f"{len(value)} bytes {text}" if len(text) <= 64 else f"{len(value)} bytes {text[:64]}..."
