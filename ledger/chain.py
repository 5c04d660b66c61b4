"""The hash chain over the entries, beside the Merkle tree.

``chain[i] = SHA-256(chain[i-1] || leaf_hash[i])`` with ``chain[-1] = GENESIS``, where
``GENESIS = SHA-256("attestation-ledger:chain:v1")``. Each entry row stores its chain hash and
every checkpoint names the chain head at its size, so an auditor can walk the entries in
order with nothing but SHA-256. The Merkle tree gives the compact proofs; the chain is the
simplest possible statement of order, easy to explain and to check.
"""

from __future__ import annotations

import hashlib

__all__ = ["GENESIS", "next_chain_hash"]

GENESIS = hashlib.sha256(b"attestation-ledger:chain:v1").digest()


def next_chain_hash(previous: bytes, leaf_hash: bytes) -> bytes:
    return hashlib.sha256(previous + leaf_hash).digest()
