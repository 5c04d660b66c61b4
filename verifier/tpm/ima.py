"""The Linux IMA binary measurement list (``binary_runtime_measurements``), parsed strictly,
with the digests the kernel extends into each PCR bank.

Layout of one entry (little-endian, as the kernel writes it on x86 and arm64, and always with
``ima_canonical_fmt``; ``ima_measurements_show`` in security/integrity/ima/ima_fs.c)::

    pcr u32 | template digest [20] (SHA-1) | name_len u32 | template name [name_len]
    template "ima":    file digest [20] | path_len u32 | path [path_len]   (no NUL)
    any other:         data_len u32 | data [data_len], data = fields, each u32 len | bytes

What the kernel extends (security/integrity/ima/ima_crypto.c, ``ima_calc_field_array_hash``
and ``ima_calc_field_array_hash_tfm``, since Linux 5.8): for every PCR bank, the bank's hash
over the template's fields, each field preceded by its u32 length, except for the legacy
``ima`` template whose two fields are hashed without lengths and whose path is zero-padded to
256 bytes (IMA_EVENT_NAME_LEN_MAX + 1). The SHA-1 result is the template digest the log
carries; the other banks' digests are not in the log and are computed here the same way. A
bank whose algorithm the kernel cannot compute gets the SHA-1 digest zero-padded instead (and
so did every non-SHA-1 bank before 5.8): that case is not reproduced here, a SHA-256 replay
assumes a kernel with SHA-256 (every distribution kernel since 5.8).

Violations (``ima_add_violation``: a file opened for write while measured, or measured while
open for write) are logged with an all-zero template digest, and the kernel extends every bank
with all-ones of the bank's size instead (``ima_init_digests``, ``ima_add_template_entry``):
the digests recorded here are those extended values.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from verifier.errors import EvidenceTooLarge, MalformedEvidence

__all__ = [
    "IMA_BANKS",
    "MAX_IMA_LOG_BYTES",
    "ImaEntry",
    "ima_fields",
    "parse_ima_entries",
]

#: The same bound as the TCG log: the whole evidence is at most 64 KiB.
MAX_IMA_LOG_BYTES = 64 * 1024
#: The banks whose digests are computed for each entry (the kernel does it for every bank the
#: TPM has allocated; these are the ones the evidence format names).
IMA_BANKS: dict[str, Callable[[bytes], bytes]] = {
    "sha1": lambda data: hashlib.sha1(data, usedforsecurity=False).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sha384": lambda data: hashlib.sha384(data).digest(),
    "sha512": lambda data: hashlib.sha512(data).digest(),
}
_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
_SHA1_BYTES = 20
_IMA_TEMPLATE = "ima"
_IMA_NAME_PADDED = 256  # IMA_EVENT_NAME_LEN_MAX + 1
_TEMPLATE_NAME = re.compile(r"[a-z0-9_-]{1,15}")  # IMA_TEMPLATE_NAME_LEN_MAX is 15
_MAX_FIELDS = 16  # IMA_TEMPLATE_NUM_FIELDS_MAX is 15
_U32 = struct.Struct("<I")
_MAX_PCR = 23


@dataclass(frozen=True, slots=True)
class ImaEntry:
    """One measurement: the PCR, the template name, its data as logged and the digest the
    kernel extended into each bank (all-ones of the bank's size for a violation)."""

    pcr: int
    template: str
    template_data: bytes
    digests: dict[str, bytes]
    violation: bool


def _take(data: bytes, offset: int, size: int, what: str) -> tuple[bytes, int]:
    end = offset + size
    if end > len(data):
        raise MalformedEvidence(
            f"IMA log: {what} needs {size} bytes at offset {offset}, {len(data) - offset} remain"
        )
    return data[offset:end], end


def _u32(data: bytes, offset: int, what: str) -> tuple[int, int]:
    raw, offset = _take(data, offset, 4, what)
    return _U32.unpack(raw)[0], offset


def ima_fields(template: str, template_data: bytes) -> tuple[bytes, ...]:
    """The fields of an entry's template data: for ``ima``, the 20-byte file digest and the
    path; for any other template, its length-prefixed fields, which must fill the data exactly.
    """
    if template == _IMA_TEMPLATE:
        return template_data[:_SHA1_BYTES], template_data[_SHA1_BYTES + 4 :]
    fields: list[bytes] = []
    offset = 0
    while offset < len(template_data):
        if len(fields) == _MAX_FIELDS:
            raise MalformedEvidence(f"IMA log: template {template} has over {_MAX_FIELDS} fields")
        size, offset = _u32(template_data, offset, f"{template} field length")
        field, offset = _take(template_data, offset, size, f"{template} field")
        fields.append(field)
    return tuple(fields)


def _hash_input(template: str, template_data: bytes) -> bytes:
    if template == _IMA_TEMPLATE:
        digest, path = ima_fields(template, template_data)
        return digest + path.ljust(_IMA_NAME_PADDED, b"\0")
    return template_data  # the fields as logged are already u32 length || bytes, in order


def parse_ima_entries(data: bytes) -> tuple[ImaEntry, ...]:
    """Parse a binary IMA measurement list; raise MalformedEvidence or EvidenceTooLarge."""
    if len(data) > MAX_IMA_LOG_BYTES:
        raise EvidenceTooLarge(
            f"IMA log: {len(data)} bytes, at most {MAX_IMA_LOG_BYTES} are accepted"
        )
    if not data:
        raise MalformedEvidence("IMA log: empty")
    entries: list[ImaEntry] = []
    offset = 0
    while offset < len(data):
        at = offset
        pcr, offset = _u32(data, offset, "PCR index")
        if pcr > _MAX_PCR:
            raise MalformedEvidence(f"IMA log: entry at offset {at} names PCR {pcr}, not 0..23")
        logged, offset = _take(data, offset, _SHA1_BYTES, "template digest")
        name_size, offset = _u32(data, offset, "template name length")
        raw_name, offset = _take(data, offset, name_size, "template name")
        template = raw_name.decode("ascii", errors="replace")
        if not _TEMPLATE_NAME.fullmatch(template):
            raise MalformedEvidence(
                f"IMA log: entry at offset {at} has template name {raw_name[:32]!r}, "
                "expected 1 to 15 of a-z 0-9 _ -"
            )
        start = offset
        if template == _IMA_TEMPLATE:
            _, offset = _take(data, offset, _SHA1_BYTES, "ima file digest")
            path_size, offset = _u32(data, offset, "ima path length")
            if path_size >= _IMA_NAME_PADDED:
                raise MalformedEvidence(
                    f"IMA log: ima path of {path_size} bytes, at most {_IMA_NAME_PADDED - 1}"
                )
            _, offset = _take(data, offset, path_size, "ima path")
            template_data = data[start:offset]
        else:
            size, offset = _u32(data, offset, "template data length")
            template_data, offset = _take(data, offset, size, "template data")
            ima_fields(template, template_data)  # must split into fields exactly
        violation = logged == bytes(_SHA1_BYTES)
        if violation:
            digests = {bank: b"\xff" * size for bank, size in _DIGEST_SIZES.items()}
        else:
            hashed = _hash_input(template, template_data)
            digests = {bank: digest(hashed) for bank, digest in IMA_BANKS.items()}
            if digests["sha1"] != logged:
                raise MalformedEvidence(
                    f"IMA log: entry at offset {at}: template digest {logged.hex()} is not the "
                    f"SHA-1 of its template data ({digests['sha1'].hex()})"
                )
        entries.append(ImaEntry(pcr, template, template_data, digests, violation))
    return tuple(entries)
