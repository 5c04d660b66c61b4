"""A job as an enclave worker runs it: compute, bind the result, attest, submit.

``compute`` is a small deterministic stand-in for inference: the same input always gives the
same result, so a result hash can be checked by anyone who has the input.

The bad modes produce wrong evidence on purpose, for demos and for testing the service's
refusals: each must come back as a contraindicated verdict with its reason. Not every mode
applies to every kind of evidence (:func:`bad_modes`): an SEV-SNP report or an Intel quote
carries no timestamp, so it cannot be stale; its freshness is the nonce alone.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2

from enclave_worker.attester import (
    AMD_SEV_SNP,
    AWS_NITRO_ENCLAVE,
    INTEL_SGX,
    INTEL_TDX,
    Attester,
    Evidence,
    NitroAttester,
)
from enclave_worker.binding import NONCE_SIZE, ResultDigest
from enclave_worker.client import LedgerClient
from enclave_worker.gpu import GpuAttester, GpuBadMode
from enclave_worker.tpm import TPM2_QUOTE, encode_container

__all__ = ["BadMode", "Job", "JobRunner", "bad_modes", "compute", "not_applicable", "tamper"]


def compute(job_input: bytes) -> bytes:
    """A deterministic "model": a label and a score derived from the input."""
    digest = job_input
    for _ in range(64):
        digest = hashlib.sha256(digest).digest()
    labels = ("cat", "dog", "heron", "otter", "lynx", "wren")
    score = int.from_bytes(digest[:2], "big") % 1000
    return f"label={labels[digest[2] % len(labels)]} score=0.{score:03d}".encode()


class BadMode(enum.StrEnum):
    WRONG_IMAGE = "wrong-image"  # an image the policy does not list (other PCRs, measurement)
    STALE = "stale"  # a document older than the maximum age (Nitro)
    WRONG_NONCE = "wrong-nonce"  # a nonce the service never issued
    REPLAY = "replay"  # a challenge that was already used
    TAMPERED = "tampered"  # a bit of the signed evidence flipped
    UNBOUND = "unbound"  # the evidence binds another result
    DEBUG = "debug"  # a debug-mode enclave (Nitro) or guest (SNP policy bit 19)


_NOT_APPLICABLE: dict[str, dict[BadMode, str]] = {
    AMD_SEV_SNP: {
        BadMode.STALE: "an SEV-SNP report carries no timestamp: its freshness is the nonce alone"
    },
    INTEL_TDX: {
        BadMode.STALE: "a TDX quote carries no timestamp: its freshness is the nonce alone"
    },
    INTEL_SGX: {
        BadMode.STALE: "an SGX quote carries no timestamp: its freshness is the nonce alone"
    },
    TPM2_QUOTE: {
        BadMode.STALE: "a TPM quote carries no timestamp: its freshness is the nonce alone",
        BadMode.DEBUG: "a TPM has no debug mode",
    },
}


def not_applicable(kind: str) -> dict[BadMode, str]:
    """The bad modes that ``kind`` of evidence cannot have, and why."""
    return dict(_NOT_APPLICABLE.get(kind, {}))


def bad_modes(kind: str) -> tuple[BadMode, ...]:
    """The bad modes that apply to ``kind`` of evidence, in :class:`BadMode`'s order."""
    return tuple(mode for mode in BadMode if mode not in _NOT_APPLICABLE.get(kind, {}))


#: Where :func:`tamper` flips a bit: in Nitro's COSE signature (the document's last 96 bytes);
#: in an SNP report's measurement (0x90), in a TDX quote's MRTD (byte 190: inside MRTD in
#: version 4, whose body starts at 48, and in version 5, at 54) and an SGX quote's MRENCLAVE
#: (48 + 64), inside the signed bytes, as someone claiming another image would.
_TAMPER_AT = {
    AWS_NITRO_ENCLAVE: (-7, 0x10),
    AMD_SEV_SNP: (0x90, 0x01),
    INTEL_TDX: (190, 0x01),
    INTEL_SGX: (112, 0x01),
}


def tamper(evidence: Evidence) -> Evidence:
    """``evidence`` with one bit flipped, so that its signature no longer verifies (a TPM
    quote: the last byte of its TPMS_ATTEST, inside the pcrDigest, as someone claiming other
    PCR values would)."""
    if evidence.kind == TPM2_QUOTE:
        container = cbor2.loads(evidence.data)
        attest = bytearray(container["attest"])
        attest[-1] ^= 0x01
        container["attest"] = bytes(attest)
        return replace(evidence, data=encode_container(container))
    if evidence.kind not in _TAMPER_AT:
        raise ValueError(f"no tampering defined for {evidence.kind}")
    offset, bit = _TAMPER_AT[evidence.kind]
    flipped = bytearray(evidence.data)
    flipped[offset] ^= bit
    return replace(evidence, data=bytes(flipped))


@dataclass(frozen=True)
class Job:
    id: str
    input: bytes


class JobRunner:
    def __init__(
        self,
        client: LedgerClient,
        attester: Attester,
        *,
        other_image: Attester | None = None,
        debug: Attester | None = None,
        gpus: GpuAttester | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``other_image`` and ``debug`` attest for the bad modes wrong-image and debug (a
        simulated attester of the same kind: real hardware cannot be told to lie). ``gpus``
        attests the job's devices after the CPU attester, with the same challenge and result
        hash, and their evidence goes in the submission's ``devices``."""
        self.client = client
        self.attester = attester
        self.gpus = gpus
        self.other_image = other_image
        self.debug = debug
        self.clock = clock
        self._last_nonce: bytes | None = None

    @property
    def kind(self) -> str:
        return self.attester.kind

    def run(
        self, job: Job, bad: BadMode | None = None, *, gpu_bad: GpuBadMode | None = None
    ) -> dict[str, Any]:
        """Run ``job`` and return the service's receipt. ``bad`` makes the CPU evidence
        wrong, ``gpu_bad`` the first device's (:class:`~enclave_worker.gpu.GpuBadMode`). The
        devices attest what the CPU evidence does (its challenge, the result it binds), so
        a CPU bad mode changes their nonces with it: ``unbound`` makes them bind the other
        result too, ``wrong-nonce`` and ``replay`` bind them to the CPU evidence's challenge."""
        if bad is not None and bad in not_applicable(self.kind):
            raise ValueError(f"bad mode {bad} does not apply: {not_applicable(self.kind)[bad]}")
        if gpu_bad is not None and self.gpus is None:
            raise ValueError(f"bad mode {gpu_bad} needs GPUs")
        result = compute(job.input)
        nonce = self.client.challenges(1)[0]
        if bad is BadMode.WRONG_NONCE:
            nonce = secrets.token_bytes(NONCE_SIZE)
        elif bad is BadMode.REPLAY and self._last_nonce is not None:
            nonce = self._last_nonce
        bound = ResultDigest.of(b"not the result" if bad is BadMode.UNBOUND else result)
        attester = self.attester
        if bad is BadMode.WRONG_IMAGE:
            attester = self._need(self.other_image, bad)
        elif bad is BadMode.DEBUG:
            attester = self._need(self.debug, bad)
        if bad is BadMode.STALE:
            if not isinstance(attester, NitroAttester):
                raise ValueError(f"bad mode {bad} needs a Nitro attester")
            evidence = attester.attest(
                nonce=nonce, result=bound, timestamp=self.clock() - timedelta(hours=1)
            )
        else:
            evidence = attester.attest(nonce=nonce, result=bound)
        if bad is BadMode.TAMPERED:
            evidence = tamper(evidence)
        devices = (
            None if self.gpus is None else self.gpus.attest(nonce=nonce, result=bound, bad=gpu_bad)
        )
        self._last_nonce = nonce
        return self.client.submit_evidence(
            evidence,
            ResultDigest.of(result).text(),
            job={"id": job.id, "input_sha256": hashlib.sha256(job.input).hexdigest()},
            idempotency_key=job.id,
            devices=devices,
        )

    def _need(self, attester: Attester | None, bad: BadMode) -> Attester:
        if attester is None:
            raise ValueError(f"bad mode {bad} needs a second (simulated) attester")
        if attester.kind != self.kind:
            raise ValueError(
                f"bad mode {bad} needs an attester of {self.kind}, not of {attester.kind}"
            )
        return attester
