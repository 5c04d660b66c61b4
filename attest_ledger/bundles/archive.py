"""Reading a bundle's gzip tar stream with every read bounded.

``tarfile`` reads a PAX extended header ('x', 'g') or a GNU long name ('L', 'K') whole,
whatever size it declares, before the caller sees the member it belongs to: an archive
whose header declared 1 GiB made ``verify-bundle`` allocate 2 GB, and 3 GiB a MemoryError.
Here no header is read past :data:`MAX_META` bytes, and a member's data is read only by the
caller, who knows the size the format allows for its name. The standalone verifier shipped
in every bundle reads archives by the same rules with its own code.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from typing import IO

__all__ = ["MAX_META", "ArchiveError", "BoundedTar"]

#: The largest PAX or GNU long-name header accepted (ours write none).
MAX_META = 1 << 16
_BLOCK = 512
_OCTAL = re.compile(rb"[0-7]+")
_PAX_LENGTH = re.compile(rb"([1-9][0-9]{0,5}) ")


class ArchiveError(Exception):
    """The archive is not a tar stream this reader takes (the whole bundle fails)."""


class BoundedTar:
    """The regular files of a gzip tar stream, in order: iterate for ``(name, size)``, then
    call :meth:`read` or :meth:`skip` for that member's data before the next."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")

    def read(self, size: int) -> bytes:
        data = self._gzip.read(size)
        if len(data) != size:
            raise ArchiveError("the archive ends inside a member")
        self._gzip.read(-size % _BLOCK)
        return data

    def skip(self, size: int) -> None:
        left = size + -size % _BLOCK
        while left:
            chunk = self._gzip.read(min(left, 1 << 16))
            if not chunk:
                raise ArchiveError("the archive ends inside a member")
            left -= len(chunk)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        extended: dict[str, str] = {}
        long_name: str | None = None
        while True:
            header = self._gzip.read(_BLOCK)
            if not header or header == bytes(_BLOCK):
                return  # the end marker, or the end of the stream at a header
            if len(header) != _BLOCK:
                raise ArchiveError("the archive ends inside a header")
            _check_sum(header)
            kind, size = header[156:157], _size(header[124:136])
            if kind in (b"x", b"g", b"L", b"K"):
                if size > MAX_META:
                    raise ArchiveError(
                        f"a header of {size} bytes, more than the {MAX_META} allowed"
                    )
                data = self.read(size)
                if kind == b"x":
                    extended = _pax_records(data)
                elif kind == b"L":
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
                continue
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
            if header[257:262] == b"ustar" and header[345] != 0:
                prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
                name = f"{prefix}/{name}"
            name = extended.get("path", long_name or name)
            if "size" in extended:
                if not re.fullmatch(r"[0-9]{1,20}", extended["size"]):
                    raise ArchiveError("a PAX header's size is not a number")
                size = int(extended["size"])
            extended, long_name = {}, None
            if kind not in (b"0", b"\0"):
                raise ArchiveError(f"{name}: not a regular file under bundle/")
            yield name, size


def _number(field: bytes) -> int | None:
    digits = field.replace(b"\0", b" ").strip()
    if not digits:
        return None
    if not _OCTAL.fullmatch(digits):
        raise ArchiveError("a header field is not an octal number")
    return int(digits, 8)


def _size(field: bytes) -> int:
    if field[0] & 0x80:  # GNU base-256, for sizes an octal field cannot hold
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    return _number(field) or 0


def _check_sum(header: bytes) -> None:
    """POSIX: the sum of the header's bytes with the checksum field read as spaces (some
    writers summed signed bytes)."""
    rest = header[:148] + header[156:]
    unsigned = sum(rest) + 8 * 0x20
    signed = sum(b - 256 if b > 127 else b for b in rest) + 8 * 0x20
    if (_number(header[148:156]) or 0) not in (unsigned, signed):
        raise ArchiveError("a header's checksum is wrong")


def _pax_records(data: bytes) -> dict[str, str]:
    """``"<length> <key>=<value>\\n"`` records."""
    out, at = {}, 0
    while at < len(data):
        found = _PAX_LENGTH.match(data, at)
        length = int(found.group(1)) if found else 0
        if not found or at + length > len(data):
            raise ArchiveError("a PAX header is malformed")
        record = data[found.end() : at + length]
        key, equals, value = record.partition(b"=")
        if not equals or not record.endswith(b"\n"):
            raise ArchiveError("a PAX header is malformed")
        out[key.decode("utf-8", "replace")] = value[:-1].decode("utf-8", "replace")
        at += length
    return out
