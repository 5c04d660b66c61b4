"""Errors raised by the ledger. One root, stable machine-readable codes.

::

    LedgerError                     code
    ├── InvalidEntry                invalid_entry        not canonical JSON, wrong evidence...
    ├── InvalidProof                invalid_proof        a Merkle proof does not verify
    ├── InvalidNote                 invalid_note         a signed note or checkpoint is malformed or
    │                                                    its signature does not verify
    ├── EntryNotFound               not_found            no entry at that index
    ├── TreeSizeUnavailable         tree_size_unavailable  beyond the current tree
    ├── LedgerBusy                  ledger_busy          the sequencer lock was not obtained in time
    ├── DatabaseUnavailable         database_unavailable the database cannot be reached or used now
    │                                                    (server down or restarting, connection
    │                                                    lost, disk full); try again later
    ├── CheckpointConflict          checkpoint_conflict  another writer moved the latest checkpoint
    └── LedgerCorrupt               ledger_corrupt       stored state contradicts itself
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CheckpointConflict",
    "DatabaseUnavailable",
    "EntryNotFound",
    "InvalidEntry",
    "InvalidNote",
    "InvalidProof",
    "LedgerBusy",
    "LedgerCorrupt",
    "LedgerError",
    "TreeSizeUnavailable",
]


class LedgerError(Exception):
    code: ClassVar[str] = "ledger_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


class InvalidEntry(LedgerError):
    code = "invalid_entry"


class InvalidProof(LedgerError):
    code = "invalid_proof"


class InvalidNote(LedgerError):
    code = "invalid_note"


class EntryNotFound(LedgerError):
    code = "not_found"


class TreeSizeUnavailable(LedgerError):
    code = "tree_size_unavailable"


class LedgerBusy(LedgerError):
    code = "ledger_busy"


class DatabaseUnavailable(LedgerError):
    """The database cannot be used now. Whatever the failed transaction wrote was rolled
    back, unless the connection broke during its COMMIT: then it may have been committed, and
    only a look-up (an idempotent retry) tells."""

    code = "database_unavailable"


class CheckpointConflict(LedgerError):
    code = "checkpoint_conflict"


class LedgerCorrupt(LedgerError):
    code = "ledger_corrupt"
