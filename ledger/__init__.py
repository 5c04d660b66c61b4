"""The audit ledger: an RFC 9162 Merkle log with a hash chain and signed checkpoints.

Arrives with issue #3; nothing here yet.
"""
