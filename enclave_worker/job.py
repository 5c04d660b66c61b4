"""A job as an enclave worker runs it: compute, bind the result, attest, submit.

``compute`` is a small deterministic stand-in for inference: the same input always gives the
same result, so a result hash can be checked by anyone who has the input.

The bad modes produce wrong evidence on purpose, for demos and for testing the service's
refusals: each must come back as a contraindicated verdict with its reason.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from enclave_worker.binding import bind_result, result_hash_text
from enclave_worker.client import LedgerClient
from enclave_worker.nsm import Nsm

__all__ = ["BadMode", "Job", "JobRunner", "compute"]


def compute(job_input: bytes) -> bytes:
    """A deterministic "model": a label and a score derived from the input."""
    digest = job_input
    for _ in range(64):
        digest = hashlib.sha256(digest).digest()
    labels = ("cat", "dog", "heron", "otter", "lynx", "wren")
    score = int.from_bytes(digest[:2], "big") % 1000
    return f"label={labels[digest[2] % len(labels)]} score=0.{score:03d}".encode()


class BadMode(enum.StrEnum):
    WRONG_IMAGE = "wrong-image"  # an enclave image the policy does not list
    STALE = "stale"  # a document older than the maximum age
    WRONG_NONCE = "wrong-nonce"  # a nonce the service never issued
    REPLAY = "replay"  # a challenge that was already used
    TAMPERED = "tampered"  # a byte of the signature flipped
    UNBOUND = "unbound"  # user_data binds another result
    DEBUG = "debug"  # a debug-mode enclave


@dataclass(frozen=True)
class Job:
    id: str
    input: bytes


class JobRunner:
    def __init__(
        self,
        client: LedgerClient,
        nsm: Nsm,
        *,
        other_image_nsm: Nsm | None = None,
        debug_nsm: Nsm | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.nsm = nsm
        self.other_image_nsm = other_image_nsm
        self.debug_nsm = debug_nsm
        self.clock = clock
        self._last_nonce: bytes | None = None

    def run(self, job: Job, bad: BadMode | None = None) -> dict[str, Any]:
        """Run ``job`` and return the service's receipt."""
        result = compute(job.input)
        nonce = self.client.challenges(1)[0]
        if bad is BadMode.WRONG_NONCE:
            nonce = secrets.token_bytes(32)
        elif bad is BadMode.REPLAY and self._last_nonce is not None:
            nonce = self._last_nonce
        user_data = bind_result(b"not the result" if bad is BadMode.UNBOUND else result)
        nsm = self.nsm
        if bad is BadMode.WRONG_IMAGE:
            nsm = self._need(self.other_image_nsm, bad)
        elif bad is BadMode.DEBUG:
            nsm = self._need(self.debug_nsm, bad)
        if bad is BadMode.STALE:
            stamped: Any = nsm
            document = stamped.attest(
                user_data=user_data, nonce=nonce, timestamp=self.clock() - timedelta(hours=1)
            )
        else:
            document = nsm.attest(user_data=user_data, nonce=nonce)
        if bad is BadMode.TAMPERED:
            flipped = bytearray(document)
            flipped[-7] ^= 0x10
            document = bytes(flipped)
        self._last_nonce = nonce
        return self.client.submit(
            document,
            result_hash_text(result),
            job={"id": job.id, "input_sha256": hashlib.sha256(job.input).hexdigest()},
            idempotency_key=job.id,
        )

    @staticmethod
    def _need(nsm: Nsm | None, bad: BadMode) -> Nsm:
        if nsm is None:
            raise ValueError(f"bad mode {bad} needs a second (simulated) NSM")
        return nsm
