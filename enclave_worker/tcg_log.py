"""A TCG PC Client crypto-agile event log, written by the attester for what it extends.

The format is the TCG PC Client Platform Firmware Profile's (section 10, "Event Logging"),
the one Linux exposes as ``binary_bios_measurements``; everything is little-endian:

* the first event is in the SHA-1 format (``TCG_PCClientPCREvent``): PCR index 0,
  ``EV_NO_ACTION``, 20 zero bytes of digest, then the ``TCG_EfiSpecIDEventStruct``:
  signature ``"Spec ID Event03\\0"``, platform class, spec version 2.0 errata 0, uintn size,
  then the number of algorithms and each algorithm's TPM_ALG_ID and digest size, then an empty
  vendor info;
* every later event is a ``TCG_PCR_EVENT2``: PCR index (u32), event type (u32), a
  ``TPML_DIGEST_VALUES`` (count u32, then per bank its TPM_ALG_ID u16 and digest, in the
  header's order), the event data's size (u32) and the data.

The attester's events are ``EV_IPL`` with a printable label as data (as GRUB logs the
strings it measures) and, in each bank, the digest of that label with the bank's hash: anyone
with the log can recompute the digests and replay them to the quoted PCR. Written here,
independently of the verifier's parser (``verifier.tpm.eventlog``), which reads it back.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BANKS",
    "EV_IPL",
    "EV_NO_ACTION",
    "EventLogWriter",
    "LoggedEvent",
    "spec_id_event",
]

EV_NO_ACTION: Final = 0x00000003
EV_IPL: Final = 0x0000000D
#: TPM_ALG_ID and digest size of each PCR bank (TPM 2.0 Library, Part 2, table 9).
BANKS: Final = {"sha1": (0x0004, 20), "sha256": (0x000B, 32), "sha384": (0x000C, 48),
                "sha512": (0x000D, 64)}  # fmt: skip
_SIGNATURE: Final = b"Spec ID Event03\0"
_PLATFORM_CLASS_CLIENT: Final = 0
_UINTN_SIZE_64: Final = 2  # UINT64 (1 would be UINT32)


def spec_id_event(banks: Sequence[str]) -> bytes:
    """The log's first event: the SHA-1-format header that names the banks of the events."""
    algorithms = b"".join(struct.pack("<HH", *BANKS[bank]) for bank in banks)
    spec = (
        _SIGNATURE
        + struct.pack("<IBBBB", _PLATFORM_CLASS_CLIENT, 0, 2, 0, _UINTN_SIZE_64)
        + struct.pack("<I", len(banks))
        + algorithms
        + b"\0"  # vendorInfoSize: none
    )
    return struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(spec)) + spec


@dataclass(frozen=True)
class LoggedEvent:
    """One extend: the PCR, the event type, the data, and its digest in each bank."""

    pcr: int
    type: int
    data: bytes
    digests: tuple[tuple[str, bytes], ...]

    def encode(self) -> bytes:
        """The ``TCG_PCR_EVENT2``."""
        values = b"".join(
            struct.pack("<H", BANKS[bank][0]) + digest for bank, digest in self.digests
        )
        return (
            struct.pack("<III", self.pcr, self.type, len(self.digests))
            + values
            + struct.pack("<I", len(self.data))
            + self.data
        )


class EventLogWriter:
    """The events of one PCR's measurements since its reset, with their digests per bank."""

    def __init__(self, banks: Sequence[str]) -> None:
        unknown = [bank for bank in banks if bank not in BANKS]
        if unknown or not banks:
            raise ValueError(f"the log's banks must be among {sorted(BANKS)}, not {list(banks)}")
        self.banks = tuple(banks)
        self.events: list[LoggedEvent] = []

    def measure(self, pcr: int, label: bytes, event_type: int = EV_IPL) -> LoggedEvent:
        """Record ``label`` measured into ``pcr``: its digest in every bank of the log."""
        digests = tuple((bank, hashlib.new(bank, label).digest()) for bank in self.banks)
        event = LoggedEvent(pcr, event_type, label, digests)
        self.events.append(event)
        return event

    def encode(self) -> bytes:
        """The binary log: the Spec ID header, then every event in the order measured."""
        return spec_id_event(self.banks) + b"".join(event.encode() for event in self.events)
