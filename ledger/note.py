"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

A signed note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> <base64(key ID || signature)>`` (U+2014). An Ed25519 key's ID is
``SHA-256(name || 0x0A || 0x01 || public key)[:4]``; its verifier key ("vkey") is written
``<name>+<hex key ID>+<base64(0x01 || public key)>`` and its private key, in the format of
Go's golang.org/x/mod/sumdb/note, ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``.

Opening a note follows the spec: signatures by unknown keys are ignored, a signature by a
known key that does not verify rejects the note, and a note with no verified signature is
rejected. Ed25519 is deterministic, so signing is byte-for-byte reproducible.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import InvalidNote

__all__ = ["NoteSigner", "NoteVerifier", "OpenedNote", "key_id", "open_note", "sign_note"]

_ED25519 = 0x01
_DASH = "\u2014"
_MAX_SIGNATURES = 100
_SKEY_PREFIX = "PRIVATE+KEY+"


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte Ed25519 key ID of C2SP signed-note."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([_ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise InvalidNote(f"key name {name[:40]!r}: must be non-empty, without spaces or '+'")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> NoteVerifier:
        _check_name(name)
        if len(public_key) != 32:
            raise InvalidNote("Ed25519 public keys are 32 bytes")
        return cls(name, key_id(name, public_key), Ed25519PublicKey.from_public_bytes(public_key))

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || key)>``; raises :class:`InvalidNote`."""
        name, sep1, rest = vkey.strip().partition("+")
        hex_id, sep2, encoded = rest.partition("+")
        if not sep1 or not sep2:
            raise InvalidNote("verifier key: expected <name>+<key ID>+<key>")
        try:
            claimed_id = bytes.fromhex(hex_id)
            key = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidNote("verifier key: key ID or key is not valid hex/base64") from None
        if len(claimed_id) != 4 or not key or key[0] != _ED25519:
            raise InvalidNote("verifier key: only Ed25519 keys (type 0x01) are supported")
        verifier = cls.from_public_key(name, key[1:])
        if verifier.key_id != claimed_id:
            raise InvalidNote("verifier key: the key ID does not match the key")
        return verifier

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([_ED25519]) + _raw_public(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> None:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            raise InvalidNote(f"signature by {self.name} does not verify") from None


@dataclass(frozen=True)
class NoteSigner:
    name: str
    key_id: bytes
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls.from_seed(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        _check_name(name)
        if len(seed) != 32:
            raise InvalidNote("Ed25519 seeds are 32 bytes")
        private = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(name, key_id(name, _raw_public(private.public_key())), private)

    @classmethod
    def parse(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``."""
        text = skey.strip()
        if not text.startswith(_SKEY_PREFIX):
            raise InvalidNote("signing key: expected PRIVATE+KEY+<name>+<key ID>+<key>")
        name, _, rest = text.removeprefix(_SKEY_PREFIX).partition("+")
        hex_id, _, encoded = rest.partition("+")
        try:
            claimed_id = bytes.fromhex(hex_id)
            key = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidNote("signing key: key ID or key is not valid hex/base64") from None
        if not key or key[0] != _ED25519:
            raise InvalidNote("signing key: only Ed25519 keys (type 0x01) are supported")
        signer = cls.from_seed(name, key[1:])
        if signer.key_id != claimed_id:
            raise InvalidNote("signing key: the key ID does not match the key")
        return signer

    def to_skey(self) -> str:
        seed = self.private_key.private_bytes_raw()
        encoded = base64.b64encode(bytes([_ED25519]) + seed).decode()
        return f"{_SKEY_PREFIX}{self.name}+{self.key_id.hex()}+{encoded}"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, self.private_key.public_key())

    def signature_line(self, text: str) -> str:
        signature = self.private_key.sign(text.encode())
        return f"{_DASH} {self.name} {base64.b64encode(self.key_id + signature).decode()}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise InvalidNote("note text must end with a newline")
    if "\n\n" in text:
        raise InvalidNote("note text must not contain a blank line")
    if any((ord(c) < 0x20 and c != "\n") or c == "\x7f" for c in text):
        raise InvalidNote("note text must not contain control characters")


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """``text`` followed by a blank line and one signature line per signer."""
    _check_text(text)
    if not signers:
        raise InvalidNote("a signed note needs at least one signer")
    return text + "\n" + "".join(signer.signature_line(text) for signer in signers)


@dataclass(frozen=True)
class OpenedNote:
    text: str
    #: Names of the keys whose signatures verified.
    verified_by: tuple[str, ...]


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Check ``note``'s signatures against ``verifiers``; raises :class:`InvalidNote`."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidNote("a signed note must be UTF-8") from None
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise InvalidNote("not a signed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[str] = []
    lines = block.splitlines()
    if not lines or len(lines) > _MAX_SIGNATURES:
        raise InvalidNote(f"a signed note needs 1..{_MAX_SIGNATURES} signature lines")
    for line in lines:
        dash, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if dash != _DASH or not name or not encoded or " " in encoded:
            raise InvalidNote("malformed signature line")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidNote(f"signature by {name}: not base64") from None
        if len(blob) < 5:
            raise InvalidNote(f"signature by {name}: too short")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            continue  # unknown (name, key ID): ignored, as the spec requires
        verifier.verify(text.encode(), blob[4:])
        verified.append(name)
    if not verified:
        raise InvalidNote("no signature by a known key")
    return OpenedNote(text=text, verified_by=tuple(verified))
