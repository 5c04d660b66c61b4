"""The result binding the worker asks its NSM to sign, written here independently of the
verifier (which checks it): ``b"attestation-ledger:result:v1:" + b"sha256:" + digest``.

Two separate implementations of one small format, tested against each other, catch a
change to either that the other did not follow.
"""

from __future__ import annotations

import hashlib

__all__ = ["bind_result", "result_hash_text"]

_PREFIX = b"attestation-ledger:result:v1:"


def bind_result(result: bytes) -> bytes:
    """The ``user_data`` that binds the SHA-256 of ``result``."""
    return _PREFIX + b"sha256:" + hashlib.sha256(result).digest()


def result_hash_text(result: bytes) -> str:
    """The result hash as the API takes it: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(result).hexdigest()
