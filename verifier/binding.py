"""The binding of a challenge nonce and a job's result hash into the evidence.

**Nitro** (``user_data``). An attester proves "this enclave computed this result" by asking
its NSM for a document whose ``user_data`` is exactly::

    user_data = b"attestation-ledger:result:v1:" || algorithm || b":" || digest

where ``algorithm`` is the ASCII name ``sha256``, ``sha384`` or ``sha512`` and ``digest`` is
the raw (not hex) hash of the result, 32, 48 or 64 bytes long. For SHA-256 that is 68 bytes.

Why this shape: the prefix separates our binding from any other use of ``user_data`` and
carries a version for later change; naming the algorithm makes the digest length, and so the
whole value, unambiguous; the digest is embedded rather than hashed again so that an auditor
reading a document sees the result hash itself. The comparison is of the whole value, in
constant time. The nonce travels in the document's own ``nonce`` field.

**64 bytes of report data** (SEV-SNP's ``report_data`` now, TDX's later). The evidence has
one 64-byte field for both, so::

    report_data = nonce (32 bytes, the service's challenge)
                  || SHA-256(b"attestation-ledger:result:v1:" || algorithm || b":" || digest)

the challenge as is in the first half, and in the second the SHA-256 of exactly the bytes
Nitro puts in ``user_data``: one definition of the binding for every scheme, and the nonce
readable in the evidence. Each half is checked on its own (a nonce or a result hash that is
not given is not checked), in constant time. :func:`report_data` builds the 64 bytes.

**NVIDIA GPUs** (the SPDM requester nonce, 32 bytes). A GPU's report has room for one nonce
and nothing else, and it travels beside a CPU's evidence that carries the challenge and the
result binding itself. Each GPU ``i`` (0, 1, ... in the order submitted) is asked for a
report whose requester nonce is::

    gpu_nonce = SHA-256(b"attestation-ledger:gpu-nonce:v1:" || challenge (32 bytes)
                        || SHA-256(result binding user_data) (32 bytes) || i (one byte))

so that a GPU report cannot be replayed under another CPU evidence (another challenge), for
another result, or in another GPU's place. :func:`gpu_nonce` computes it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from verifier.errors import Violation

__all__ = [
    "GPU_NONCE_PREFIX",
    "REPORT_DATA_BYTES",
    "REPORT_DATA_NONCE_BYTES",
    "RESULT_BINDING_PREFIX",
    "ResultHash",
    "gpu_nonce",
    "report_data",
]

RESULT_BINDING_PREFIX = b"attestation-ledger:result:v1:"
GPU_NONCE_PREFIX = b"attestation-ledger:gpu-nonce:v1:"
#: A GPU's index is one byte: at most 256 GPUs and NVSwitches beside one CPU evidence.
MAX_GPU_INDEX = 255
REPORT_DATA_BYTES = 64
#: The service's challenges are 32 random bytes: the first half of report_data.
REPORT_DATA_NONCE_BYTES = 32
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}


@dataclass(frozen=True, slots=True)
class ResultHash:
    """A hash of a computed result, written ``sha256:<hex>`` in text."""

    algorithm: str
    digest: bytes

    def __post_init__(self) -> None:
        size = _DIGEST_SIZES.get(self.algorithm)
        if size is None:
            raise ValueError(
                f"result hash algorithm: expected one of {', '.join(_DIGEST_SIZES)}, "
                f"found {self.algorithm[:20]!r}"
            )
        if len(self.digest) != size:
            raise ValueError(
                f"result hash: {self.algorithm} digests are {size} bytes, found {len(self.digest)}"
            )

    @classmethod
    def parse(cls, text: str) -> ResultHash:
        """Parse ``<algorithm>:<lowercase or uppercase hex>``; raises ``ValueError``."""
        algorithm, sep, hex_digest = text.partition(":")
        if not sep:
            raise ValueError(
                "result hash: expected '<algorithm>:<hex digest>', e.g. 'sha256:ab12...'"
            )
        try:
            digest = bytes.fromhex(hex_digest)
        except ValueError:
            raise ValueError("result hash: the digest is not hexadecimal") from None
        return cls(algorithm=algorithm.lower(), digest=digest)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> ResultHash:
        """Hash ``data`` (the result itself) with ``algorithm``."""
        if algorithm not in _DIGEST_SIZES:
            raise ValueError(f"result hash algorithm {algorithm!r} is not supported")
        return cls(algorithm=algorithm, digest=hashlib.new(algorithm, data).digest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.digest.hex()}"

    def user_data(self) -> bytes:
        """The exact ``user_data`` that binds this result hash (see the module docstring)."""
        return RESULT_BINDING_PREFIX + self.algorithm.encode("ascii") + b":" + self.digest

    def report_data_half(self) -> bytes:
        """The second half of a 64-byte report_data: SHA-256 of :meth:`user_data`."""
        return hashlib.sha256(self.user_data()).digest()


def report_data(nonce: bytes, result_hash: ResultHash) -> bytes:
    """The exact 64-byte report_data that binds ``nonce`` (32 bytes) and ``result_hash``.

    Raises ``ValueError`` for a nonce of another length: the layout has room for 32 bytes.
    """
    if len(nonce) != REPORT_DATA_NONCE_BYTES:
        raise ValueError(
            f"report_data binding: the nonce must be {REPORT_DATA_NONCE_BYTES} bytes, "
            f"found {len(nonce)}"
        )
    return nonce + result_hash.report_data_half()


def gpu_nonce(challenge: bytes, result_hash: ResultHash, index: int) -> bytes:
    """The 32-byte SPDM requester nonce GPU ``index`` must use beside a CPU evidence that
    binds ``challenge`` and ``result_hash`` (see the module docstring).

    Raises ``ValueError`` for a challenge that is not 32 bytes or an index outside 0..255.
    """
    if len(challenge) != REPORT_DATA_NONCE_BYTES:
        raise ValueError(
            f"gpu nonce: the challenge must be {REPORT_DATA_NONCE_BYTES} bytes, "
            f"found {len(challenge)}"
        )
    if isinstance(index, bool) or not 0 <= index <= MAX_GPU_INDEX:
        raise ValueError(f"gpu nonce: the index must be 0..{MAX_GPU_INDEX}, found {index!r}")
    return hashlib.sha256(
        GPU_NONCE_PREFIX + challenge + result_hash.report_data_half() + bytes([index])
    ).digest()


def report_data_violations(
    report_data: bytes, nonce: bytes | None, result_hash: ResultHash | None
) -> list[Violation]:
    """Every way a 64-byte report_data (SEV-SNP, TDX, SGX) falls short of the binding: the
    challenge in [0:32] and the SHA-256 of the result-hash binding in [32:64], each checked
    only when given; zeros are named as missing, anything else as a mismatch."""
    out = []
    first, second = report_data[:REPORT_DATA_NONCE_BYTES], report_data[REPORT_DATA_NONCE_BYTES:]
    if nonce is not None:
        if not any(first):
            out.append(
                Violation("nonce_missing", "report_data[0:32]: expected the nonce, found zeros")
            )
        elif not hmac.compare_digest(first, nonce):
            out.append(
                Violation(
                    "nonce_mismatch",
                    f"report_data[0:32]: expected the nonce {_preview(nonce)}, found "
                    f"{_preview(first)}",
                )
            )
    if result_hash is not None:
        expected = result_hash.report_data_half()
        if not any(second):
            out.append(
                Violation(
                    "result_binding_missing",
                    f"report_data[32:64]: expected the binding of {result_hash}, found zeros",
                )
            )
        elif not hmac.compare_digest(second, expected):
            out.append(
                Violation(
                    "result_binding_mismatch",
                    f"report_data[32:64]: expected the binding of {result_hash} "
                    f"({expected.hex()}), found {second.hex()}",
                )
            )
    return out


def _preview(value: bytes) -> str:
    text = value.hex()
    return f"{len(value)} bytes {text}" if len(text) <= 64 else f"{len(value)} bytes {text[:64]}..."


def binding_tiers(
    codes: set[str], *, nonce_checked: bool, result_binding_checked: bool
) -> tuple[str, str]:
    """The AR4SI tiers a report_data binding earns (freshness, sourced-data): contraindicated
    by any nonce or result-binding violation among ``codes``, affirming when checked, "none"
    when not asked for."""
    freshness = (
        "contraindicated"
        if any(c.startswith("nonce") for c in codes)
        else "affirming"
        if nonce_checked
        else "none"
    )
    sourced = (
        "contraindicated"
        if any(c.startswith("result_binding") for c in codes)
        else "affirming"
        if result_binding_checked
        else "none"
    )
    return freshness, sourced
