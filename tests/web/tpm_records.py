"""Ledger records of TPM 2.0 quotes and AK enrolments (issue #13), as the service writes them
(the contract in the issue: ``claims`` per ``TpmClaims.to_dict``, ``tpm_enrolment`` entries),
appended directly as the bundle tests append theirs, for the portal and compliance tests.

The quoted PCRs and the event log are real: the GCE SEV-SNP VM log of go-tpm-tools
(``tests/fixtures/tpm/eventlogs``, provenance in its README) and the PCR values go-tpm-tools
publishes for it, so the portal's event rows and digests are a real firmware's. The quote's
own bytes (attest, signature) are not read by these pages and are placeholders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import cbor2

from ledger.append import append, prepare_all
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.entry import NewEntry
from verifier import ResultHash
from verifier.binding import report_data
from verifier.tpm.eventlog import parse_event_log

EVENTLOGS = Path(__file__).parents[1] / "fixtures" / "tpm" / "eventlogs"
LOG_FILE = "gotpmtools_ubuntu-2404-amd-sevsnp.bin"
VERIFIED_AT = "2026-02-03T10:12:03.000Z"
NONCE = bytes(range(32))


def real_log() -> bytes:
    return (EVENTLOGS / LOG_FILE).read_bytes()


def real_pcrs() -> dict[str, dict[str, str]]:
    """bank -> PCR index (text) -> hex, as go-tpm-tools publishes them for the log."""
    published = json.loads((EVENTLOGS / "expected_pcrs.json").read_text())[LOG_FILE]["pcrs"]
    return {bank: dict(values) for bank, values in published.items()}


def ak_sha256(n: int) -> str:
    return hashlib.sha256(f"attestation key {n}".encode()).hexdigest()


def container(tag: str, *, event_log: bytes | None = None, ima_log: bytes | None = None) -> bytes:
    """A ``tpm2-quote/v1`` container (``format`` first) carrying the real PCRs; ``tag`` makes
    it unique (the ledger keeps one entry per evidence and worker)."""
    body: dict[str, Any] = {
        "format": "tpm2-quote/v1",
        "attest": b"\xffTCG\x80\x18" + tag.encode(),
        "signature": bytes(72),
        "ak": bytes(91),
        "pcrs": {
            bank: {int(i): bytes.fromhex(v) for i, v in values.items()}
            for bank, values in real_pcrs().items()
        },
    }
    if event_log is not None:
        body["event_log"] = event_log
    if ima_log is not None:
        body["ima_log"] = ima_log
    return cbor2.dumps(body)


def claims(
    *,
    path: str,
    ak: str,
    event_log: bytes | None = None,
    result: bytes | None = b"the answer",
    enrolment: str | None = None,
    certificate_subject: str | None = None,
    gcp: dict[str, Any] | None = None,
    nitro_document: dict[str, Any] | None = None,
) -> dict[str, Any]:
    extra = report_data(NONCE, ResultHash.of(result)) if result is not None else NONCE
    log = None
    if event_log is not None:
        parsed = parse_event_log(event_log)
        log = {
            "format": parsed.format,
            "sha256": hashlib.sha256(event_log).hexdigest(),
            "events": len(parsed.events),
            "replayed": sorted({e.pcr for e in parsed.events}),
        }
    return {
        "evidence_kind": "tpm2-quote",
        "ak": {
            "path": path,
            "sha256": ak,
            "key": "ecc-p256",
            "name_alg": "sha256",
            "enrolment": enrolment,
            "certificate_subject": certificate_subject,
            "gcp": gcp,
        },
        "quote": {
            "extra_data": extra.hex(),
            "clock": 123456789,
            "reset_count": 3,
            "restart_count": 0,
            "safe": True,
            "firmware_version": "2019102300163636",
            "pcr_digest": "ab" * 32,
            "signature": "ecdsa-sha256",
            "qualified_signer": "000b" + "cd" * 32,
        },
        "pcrs": real_pcrs(),
        "event_log": log,
        "nitro_document": nitro_document,
    }


def quote_record(
    *,
    worker: str = "worker-1",
    verdict: str = "affirming",
    image: str | None = None,
    policy_revision: int | None = None,
    job: dict[str, Any] | None = None,
    result: bytes = b"the answer",
    claims_: dict[str, Any] | None,
    reasons: list[dict[str, str]] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "attestation",
        "worker": worker,
        "verdict": verdict,
        "error": error,
        "reasons": reasons or [],
        "result_hash": str(ResultHash.of(result)),
        "job": job or {"id": "tpm-job"},
        "verified_at": VERIFIED_AT,
        "policy_revision": policy_revision,
        "policy": None,
        "image": image,
        "evidence_kind": "tpm2-quote",
        "claims": claims_,
        "nonce": NONCE.hex(),
        "trust_anchors": [],
    }


def ek_certificate(name: str) -> bytes:
    """Stands for an EK certificate's DER: the pages show only its digest."""
    return b"an EK certificate of " + name.encode()


def enrolment_record(
    name: str, ak: str, *, action: str = "enrolled", at: str = "2026-02-01T00:00:00.000Z"
) -> dict[str, Any]:
    """An enrolment entry; an enrolled one names its EK certificate, which
    :func:`append_record` stores (``endorsements=[("ek-certificate", ek_certificate(name))]``)."""
    if action == "revoked":
        return {"v": 1, "kind": "tpm_enrolment", "action": "revoked", "name": name,
                "ak_sha256": ak, "at": at}  # fmt: skip
    return {
        "v": 1,
        "kind": "tpm_enrolment",
        "action": "enrolled",
        "name": name,
        "ak_sha256": ak,
        "ak_public": "3059" + "00" * 89,
        "at": at,
        "ek_certificate_sha256": hashlib.sha256(ek_certificate(name)).hexdigest(),
        "ek_chain": "verified",
    }


def append_record(
    service: Any,
    record: dict[str, Any],
    evidence: bytes | None = None,
    endorsements: list[tuple[str, bytes]] | None = None,
) -> int:
    """Append ``record`` as the service would have, and sign a checkpoint covering it. An
    enrolled ``tpm_enrolment`` record is given its EK certificate."""
    if endorsements is None and record.get("kind") == "tpm_enrolment" and "ek_chain" in record:
        endorsements = [("ek-certificate", ek_certificate(record["name"]))]
    entry = NewEntry.from_record(record, evidence=evidence, endorsements=endorsements or ())
    with session_scope(service.runtime.sessions) as session:
        (appended,) = append(session, prepare_all([entry]))
        publish_checkpoint(session, service.runtime.signer)
    return appended.index


def append_policy(service: Any, images: dict[str, dict[str, Any]], worker: str) -> int:
    """A policy revision: the service's policy with these tpm2-quote images, ``worker``
    allowed them (a policy entry as :mod:`attest_ledger.policy_store` writes one)."""
    with session_scope(service.runtime.sessions) as session:
        current = service.runtime.policies.current(session)
    references = dict(current.references)
    references.update({name: ("tpm2-quote", reference) for name, reference in images.items()})
    workers = dict(current.workers)
    workers[worker] = frozenset(workers.get(worker, frozenset()) | set(images))
    config = dataclasses.replace(current, references=references, workers=workers)
    record = {
        "kind": "policy",
        "change": {"action": "image_added", "image": sorted(images)[0], "kind": "tpm2-quote"},
        "policy": config.snapshot(),
        "policy_sha256": config.digest(),
    }
    return append_record(service, record)
