"""A submission's body, parsed once at the edge into :class:`attest_ledger.intake.Submission`:
today's Nitro form (``attestation_document``) or evidence of any kind (``evidence``: kind,
data, endorsements), and the devices of the same inference (``devices``: a list of the same
shape, of a device kind: NVIDIA GPUs and NVSwitches). Every problem is a 400
``malformed_request`` (or 413) naming the field; nothing about the evidence itself is judged
here. The limits are the OpenAPI document's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from attest_ledger.intake import DeviceSubmission, Submission
from ledger.entry import canonical_json
from ledger.errors import InvalidEntry
from verifier import (
    MAX_EVIDENCE_BYTES,
    EndorsementKind,
    EvidenceKind,
    ResultHash,
    device_kinds,
    kinds,
)
from verifier.nvidia import MAX_NVIDIA_ENDORSEMENTS
from web.problems import Problem

__all__ = [
    "DEVICE_KINDS",
    "EVIDENCE_KINDS",
    "MAX_DEVICES",
    "MAX_DEVICE_EVIDENCE",
    "MAX_ENDORSEMENT_BYTES",
    "MAX_JOB_BYTES",
    "MAX_SUBMITTED_ENDORSEMENTS",
    "MAX_SUBMITTED_EVIDENCE",
    "parse_submission",
]

MAX_JOB_BYTES = 4096
#: evidence of any kind as submitted (an SNP report is 1184 bytes, a Nitro document 16 KiB, a
#: TPM quote with its event log tens of KiB): as much as the ledger keeps
MAX_SUBMITTED_EVIDENCE = 64 * 1024
MAX_SUBMITTED_ENDORSEMENTS = 8
#: a certificate, a CRL, a TCB document, a RIM (an NVIDIA RIM is ~20 KB)
MAX_ENDORSEMENT_BYTES = 32 * 1024
#: devices of one inference: an HGX board's 8 GPUs and 4 NVSwitches, and room to spare
MAX_DEVICES = 16
#: one device's report (a Hopper SPDM report is ~4 KB)
MAX_DEVICE_EVIDENCE = 16 * 1024
#: The endorsement kinds a submission may carry (verifier.EndorsementKind's stable names).
ENDORSEMENT_KINDS = tuple(str(kind) for kind in EndorsementKind)
IDEMPOTENCY_KEY_CHARS = 200
NITRO_ENCLAVE = str(EvidenceKind.AWS_NITRO_ENCLAVE)
#: the evidence kinds a submission may carry: those a scheme verifies
EVIDENCE_KINDS = tuple(str(kind) for kind in kinds())
#: the kinds a submission's devices may be, and what may come with them
DEVICE_KINDS = tuple(str(kind) for kind in device_kinds())
DEVICE_ENDORSEMENT_KINDS = ("device-certificate", "rim", "ocsp")


def _base64_field(name: str, value: Any, limit: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise Problem(400, "malformed_request", f"{name} must be a base64 string")
    if len(value) > (limit * 4) // 3 + 8:
        raise Problem(413, "payload_too_large", f"{name} is larger than {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(400, "malformed_request", f"{name} is not valid base64") from None


def _parse_evidence(body: dict[str, Any]) -> tuple[str, bytes, tuple[tuple[str, bytes], ...]]:
    """(kind, evidence, endorsements): from ``evidence`` (any kind), or from
    ``attestation_document`` (a Nitro document, the original form)."""
    if "evidence" in body and "attestation_document" in body:
        raise Problem(400, "malformed_request", "give evidence or attestation_document, not both")
    if "evidence" not in body:
        document = _base64_field(
            "attestation_document", body.get("attestation_document"), MAX_EVIDENCE_BYTES
        )  # (or evidence: {kind, data, endorsements} for any kind)
        return NITRO_ENCLAVE, document, ()
    evidence = body["evidence"]
    if not isinstance(evidence, dict) or set(evidence) - {"kind", "data", "endorsements"}:
        raise Problem(
            400, "malformed_request", "evidence must be an object: kind, data, endorsements"
        )
    kind = evidence.get("kind")
    if kind not in EVIDENCE_KINDS:
        raise Problem(
            400,
            "malformed_request",
            f"evidence.kind must be one of {', '.join(EVIDENCE_KINDS)}",
        )
    data = _base64_field("evidence.data", evidence.get("data"), MAX_SUBMITTED_EVIDENCE)
    listed = evidence.get("endorsements", [])
    if not isinstance(listed, list) or len(listed) > MAX_SUBMITTED_ENDORSEMENTS:
        raise Problem(
            400,
            "malformed_request",
            f"evidence.endorsements must be a list of at most {MAX_SUBMITTED_ENDORSEMENTS}",
        )
    return kind, data, _endorsements("evidence", listed)


def _endorsements(
    name: str, listed: list[Any], allowed: tuple[str, ...] = ENDORSEMENT_KINDS
) -> tuple[tuple[str, bytes], ...]:
    endorsements = []
    for n, item in enumerate(listed):
        field = f"{name}.endorsements[{n}]"
        if not isinstance(item, dict) or set(item) != {"kind", "data"}:
            raise Problem(400, "malformed_request", f"{field} must be an object: kind, data")
        if item["kind"] not in allowed:
            raise Problem(
                400, "malformed_request", f"{field}.kind must be one of {', '.join(allowed)}"
            )
        endorsements.append(
            (item["kind"], _base64_field(f"{field}.data", item["data"], MAX_ENDORSEMENT_BYTES))
        )
    return tuple(endorsements)


def _parse_devices(body: dict[str, Any]) -> tuple[DeviceSubmission, ...]:
    """The devices of the inference (``devices``), in nonce-index order."""
    listed = body.get("devices", [])
    if not isinstance(listed, list) or len(listed) > MAX_DEVICES:
        raise Problem(400, "malformed_request", f"devices must be a list of at most {MAX_DEVICES}")
    if listed and "evidence" not in body:
        raise Problem(
            400, "malformed_request", "devices go with evidence (the CPU TEE's), not alone"
        )
    devices = []
    for n, device in enumerate(listed):
        name = f"devices[{n}]"
        if not isinstance(device, dict) or set(device) - {"kind", "data", "endorsements"}:
            raise Problem(
                400, "malformed_request", f"{name} must be an object: kind, data, endorsements"
            )
        if device.get("kind") not in DEVICE_KINDS:
            raise Problem(
                400, "malformed_request", f"{name}.kind must be one of {', '.join(DEVICE_KINDS)}"
            )
        data = _base64_field(f"{name}.data", device.get("data"), MAX_DEVICE_EVIDENCE)
        endorsements = device.get("endorsements", [])
        if not isinstance(endorsements, list) or len(endorsements) > MAX_NVIDIA_ENDORSEMENTS:
            raise Problem(
                400,
                "malformed_request",
                f"{name}.endorsements must be a list of at most {MAX_NVIDIA_ENDORSEMENTS}",
            )
        devices.append(
            DeviceSubmission(
                device["kind"], data, _endorsements(name, endorsements, DEVICE_ENDORSEMENT_KINDS)
            )
        )
    return tuple(devices)


def parse_submission(body: dict[str, Any], idempotency_key: str | None) -> Submission:
    """The submission in ``body`` (a JSON object); ``idempotency_key``: the header's."""
    unknown = set(body) - {
        "attestation_document",
        "evidence",
        "result_hash",
        "job",
        "idempotency_key",
        "devices",
    }
    if unknown:
        raise Problem(
            400, "malformed_request", f"unknown field(s): {', '.join(sorted(unknown))[:100]}"
        )
    kind, document, endorsements = _parse_evidence(body)
    devices = _parse_devices(body)
    hash_text = body.get("result_hash")
    if not isinstance(hash_text, str):
        raise Problem(400, "malformed_request", "result_hash must be a string like 'sha256:<hex>'")
    try:
        result_hash = ResultHash.parse(hash_text)
    except ValueError as exc:
        raise Problem(400, "malformed_request", str(exc)) from None
    job = body.get("job", {})
    if not isinstance(job, dict):
        raise Problem(400, "malformed_request", "job must be a JSON object")
    try:
        if len(canonical_json(job)) > MAX_JOB_BYTES:
            raise Problem(400, "malformed_request", f"job is larger than {MAX_JOB_BYTES} bytes")
    except InvalidEntry as exc:
        raise Problem(400, "malformed_request", f"job: {exc.message}") from None
    except RecursionError:  # parsed, but too deep to walk
        raise Problem(400, "malformed_request", "job is nested too deeply") from None
    # an empty header is a key that breaks the rule, not an absent one
    key = idempotency_key if idempotency_key is not None else body.get("idempotency_key")
    if key is not None and (
        not isinstance(key, str)
        or not 1 <= len(key) <= IDEMPOTENCY_KEY_CHARS
        or not key.isprintable()
    ):
        raise Problem(
            400,
            "malformed_request",
            f"the idempotency key must be 1-{IDEMPOTENCY_KEY_CHARS} printable characters",
        )
    sent = {"result_hash": hash_text, "job": job}
    if "attestation_document" in body:  # as before: a retry of either form is recognised
        sent["document"] = body["attestation_document"]
    else:
        sent["evidence"] = body["evidence"]
    if "devices" in body:
        sent["devices"] = body["devices"]
    request_digest = hashlib.sha256(canonical_json(sent)).digest()
    return Submission(
        document,
        result_hash,
        job,
        key,
        request_digest,
        kind=kind,
        endorsements=endorsements,
        devices=devices,
    )
