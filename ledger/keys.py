"""The ledger's signing key on disk: created once with mode 0600, never overwritten.

The file holds one line, the key in the format of Go's note package
(``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || Ed25519 seed)>``), so existing tooling can
read it. The public half, the verifier key, is what auditors and regulators are given.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ledger.errors import InvalidNote
from ledger.note import NoteSigner

__all__ = ["KeyFileError", "create_signing_key", "load_signing_key"]


class KeyFileError(Exception):
    """The key file is missing, unreadable, too open, or already exists."""


def create_signing_key(path: Path, name: str) -> NoteSigner:
    """Create a new Ed25519 signing key named ``name`` at ``path`` (mode 0600).

    Refuses to replace an existing file: a ledger's key must never change silently.
    """
    signer = NoteSigner.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; the ledger key is never replaced") from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(signer.to_skey() + "\n")
    return signer


def load_signing_key(path: Path) -> NoteSigner:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        raise KeyFileError(
            f"{path} does not exist; create it with `attest-ledger keys init`"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} is readable by others (mode {stat.filemode(mode)}); chmod 600 it"
        )
    try:
        return NoteSigner.parse(text)
    except InvalidNote as exc:
        raise KeyFileError(f"{path}: {exc.message}") from None
