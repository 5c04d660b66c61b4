"""The result bindings a worker asks its TEE to sign, written here independently of the
verifier (which checks them).

* Nitro: ``user_data = b"attestation-ledger:result:v1:" || algorithm || b":" || digest``.
* Evidence with 64 bytes of report data (AMD SEV-SNP now, Intel TDX later):
  ``report_data = nonce (32 bytes) || SHA-256(user_data)``: the service's challenge as is in
  the first half, the result hash bound in the second.
* NVIDIA GPUs beside a CPU TEE: GPU ``i``'s SPDM requester nonce is
  ``SHA-256(b"attestation-ledger:gpu-nonce:v1:" || challenge (32) || SHA-256(user_data) (32)
  || i as one byte)``, so a GPU report cannot be replayed under another CPU evidence (another
  challenge), for another result, or as another GPU of the same job.

Two separate implementations of one small format, tested against each other, catch a
change to either that the other did not follow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = [
    "GPU_NONCE_PREFIX",
    "NONCE_SIZE",
    "REPORT_DATA_SIZE",
    "ResultDigest",
    "bind_result",
    "gpu_nonce",
    "report_data",
    "result_hash_text",
]

_PREFIX = b"attestation-ledger:result:v1:"
GPU_NONCE_PREFIX = b"attestation-ledger:gpu-nonce:v1:"
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
#: The service's challenges are 32 random bytes.
NONCE_SIZE = 32
REPORT_DATA_SIZE = 64


@dataclass(frozen=True)
class ResultDigest:
    """The hash of a job's result, as the worker binds it into its evidence."""

    algorithm: str
    digest: bytes

    def __post_init__(self) -> None:
        size = _DIGEST_SIZES.get(self.algorithm)
        if size is None:
            raise ValueError(f"unknown result hash algorithm {self.algorithm!r}")
        if len(self.digest) != size:
            raise ValueError(f"a {self.algorithm} digest has {size} bytes, not {len(self.digest)}")

    @classmethod
    def of(cls, result: bytes) -> ResultDigest:
        """The SHA-256 of ``result``."""
        return cls("sha256", hashlib.sha256(result).digest())

    def user_data(self) -> bytes:
        """What a Nitro worker asks its NSM to put in ``user_data``."""
        return _PREFIX + self.algorithm.encode() + b":" + self.digest

    def text(self) -> str:
        """As the API takes it: ``sha256:<hex>``."""
        return f"{self.algorithm}:{self.digest.hex()}"


def bind_result(result: bytes) -> bytes:
    """The ``user_data`` that binds the SHA-256 of ``result``."""
    return ResultDigest.of(result).user_data()


def result_hash_text(result: bytes) -> str:
    """The result hash as the API takes it: ``sha256:<hex>``."""
    return ResultDigest.of(result).text()


def report_data(nonce: bytes, result: ResultDigest) -> bytes:
    """The 64 bytes of report data that carry the challenge and bind the result."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"the challenge nonce must be {NONCE_SIZE} bytes, not {len(nonce)}")
    return nonce + hashlib.sha256(result.user_data()).digest()


def gpu_nonce(challenge: bytes, result: ResultDigest, index: int) -> bytes:
    """The 32-byte SPDM requester nonce of the job's GPU number ``index`` (0 to 255): it
    binds the service's ``challenge`` (which the CPU evidence carries too) and ``result``."""
    if len(challenge) != NONCE_SIZE:
        raise ValueError(f"the challenge nonce must be {NONCE_SIZE} bytes, not {len(challenge)}")
    if not 0 <= index <= 0xFF:
        raise ValueError(f"a GPU index is one byte (0 to 255), not {index}")
    return hashlib.sha256(
        GPU_NONCE_PREFIX + challenge + hashlib.sha256(result.user_data()).digest() + bytes([index])
    ).digest()
