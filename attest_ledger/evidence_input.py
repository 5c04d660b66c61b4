"""Reading evidence from a file or stdin as raw CBOR, hex or base64."""

from __future__ import annotations

import base64
import binascii
import re
import sys
from pathlib import Path

from verifier import MAX_EVIDENCE_BYTES
from verifier.tpm.evidence import MAX_CONTAINER_BYTES

__all__ = ["MAX_INPUT_BYTES", "decode_evidence_text", "read_evidence"]

#: The largest evidence of any kind (a TPM quote's container with its event logs, 64 KiB);
#: hex doubles the size; leave room for line breaks.
MAX_INPUT_BYTES = max(MAX_EVIDENCE_BYTES, MAX_CONTAINER_BYTES) * 2 + 4096
_HEX = re.compile(rb"^[0-9a-fA-F]+$")
_BASE64 = re.compile(rb"^[A-Za-z0-9+/_-]+={0,2}$")


def read_evidence(path: str) -> bytes:
    """Read ``path`` ("-" for stdin) and return the evidence bytes.

    Raises ``OSError`` for I/O problems. Too-large input is returned truncated to one byte over
    the limit so that the verifier reports it as oversize.
    """
    if path == "-":
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    return decode_evidence_text(data)


def decode_evidence_text(data: bytes) -> bytes:
    """Raw CBOR is returned as is; ASCII hex or base64 (standard or URL-safe) is decoded.

    Anything else is returned unchanged, for the verifier to reject as malformed.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data  # binary: raw CBOR (a COSE_Sign1 starts with 0x84 or 0xD2)
    compact = "".join(text.split()).encode("ascii")
    if not compact:
        return data
    if _HEX.match(compact) and len(compact) % 2 == 0:
        return bytes.fromhex(compact.decode("ascii"))
    if _BASE64.match(compact):
        padded = compact + b"=" * (-len(compact) % 4)
        try:
            if b"-" in padded or b"_" in padded:
                return base64.urlsafe_b64decode(padded)
            return base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            return data
    return data
