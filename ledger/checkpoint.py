"""C2SP tlog-checkpoint bodies (c2sp.org/tlog-checkpoint) with the ledger's chain extension.

A checkpoint body is::

    <origin>
    <tree size, decimal>
    <base64 root hash>
    chain-head <base64 chain hash after tree size entries>

The fourth line is an extension line, which the spec allows (monitors that do not know it
ignore it); it ties the hash chain to the signed tree head. Checkpoints without it, as other
logs write them, parse too.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ledger.errors import InvalidNote
from ledger.merkle import HASH_SIZE

__all__ = [
    "CHAIN_EXTENSION",
    "TLOG_PROOF_HEADER",
    "CheckpointBody",
    "TlogProof",
    "parse_tlog_proof",
    "tlog_proof",
]

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"

CHAIN_EXTENSION = "chain-head"
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    tree_size: int
    root_hash: bytes
    chain_head: bytes | None = None

    def to_text(self) -> str:
        lines = [self.origin, str(self.tree_size), base64.b64encode(self.root_hash).decode()]
        if self.chain_head is not None:
            lines.append(f"{CHAIN_EXTENSION} {base64.b64encode(self.chain_head).decode()}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> CheckpointBody:
        """Parse a checkpoint body (the note text); raises :class:`InvalidNote`."""
        if not text.endswith("\n"):
            raise InvalidNote("checkpoint: must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidNote("checkpoint: expected origin, tree size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not origin or " " in origin or "+" in origin:
            raise InvalidNote("checkpoint: the origin line is empty or has spaces or '+'")
        if not _SIZE.fullmatch(size_text):
            raise InvalidNote("checkpoint: the tree size is not a canonical decimal number")
        root = _hash(root_text, "root hash")
        chain_head = None
        for extension in extensions:
            key, _, value = extension.partition(" ")
            if key == CHAIN_EXTENSION:
                if chain_head is not None:
                    raise InvalidNote("checkpoint: more than one chain-head line")
                chain_head = _hash(value, "chain head")
        return cls(origin, int(size_text), root, chain_head)


def _hash(text: str, what: str, where: str = "checkpoint") -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidNote(f"{where}: the {what} is not base64") from None
    if len(value) != HASH_SIZE:
        raise InvalidNote(f"{where}: the {what} must be {HASH_SIZE} bytes")
    return value


def tlog_proof(index: int, hashes: list[bytes], note: str) -> str:
    """A C2SP tlog-proof: the header, the leaf index, the inclusion proof hashes (base64, one
    per line), a blank line and the signed checkpoint the proof leads to."""
    lines = [TLOG_PROOF_HEADER, f"index {index}", *(base64.b64encode(h).decode() for h in hashes)]
    return "\n".join(lines) + "\n\n" + note


@dataclass(frozen=True)
class TlogProof:
    """A parsed C2SP tlog-proof. Nothing in it is checked yet: the caller opens ``note`` with
    the keys it trusts, then checks the inclusion proof against the opened checkpoint."""

    index: int
    hashes: list[bytes]
    note: str
    extra: bytes | None = None


def parse_tlog_proof(text: str | bytes) -> TlogProof:
    """Parse ``c2sp.org/tlog-proof@v1``: the header, an optional ``extra <base64>`` line,
    ``index <n>``, the audit path (base64, one hash per line), a blank line, the checkpoint."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidNote("tlog-proof: not UTF-8") from exc
    head, blank, note = text.partition("\n\n")
    if not blank or not note:
        raise InvalidNote("tlog-proof: no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise InvalidNote(f"tlog-proof: the first line must be {TLOG_PROOF_HEADER}")
    at = 1
    extra = None
    if at < len(lines) and lines[at].startswith("extra "):
        extra = _base64(lines[at].removeprefix("extra "), "extra data")
        at += 1
    if at >= len(lines) or not lines[at].startswith("index "):
        raise InvalidNote("tlog-proof: the index line is missing")
    number = lines[at].removeprefix("index ")
    if not _SIZE.fullmatch(number):
        raise InvalidNote("tlog-proof: the index is not a decimal number")
    hashes = [_hash(line, "proof hash", "tlog-proof") for line in lines[at + 1 :]]
    return TlogProof(int(number), hashes, note, extra)


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise InvalidNote(f"tlog-proof: the {what} is not base64") from exc
