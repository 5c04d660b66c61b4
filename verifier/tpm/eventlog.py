"""Measured-boot event logs: the TCG PC Client firmware log and the Linux IMA log, parsed
strictly into frozen events, and replayed into the PCR values they account for.

TCG PC Client Platform Firmware Profile (section 10, "Event Logging"), little-endian::

    first event, SHA-1 format (TCG_PCClientPCREvent):
        pcrIndex u32 | eventType u32 | digest [20] | eventDataSize u32 | event
    in a crypto-agile log it is EV_NO_ACTION in PCR 0 with a zero digest, carrying
    TCG_EfiSpecIDEvent: signature "Spec ID Event03\\0" | platformClass u32 |
        specVersionMinor u8 (0) | specVersionMajor u8 (2) | specErrata u8 | uintnSize u8 (1|2) |
        numberOfAlgorithms u32 | {algorithmId u16, digestSize u16} * n | vendorInfoSize u8 |
        vendorInfo
    then TCG_PCR_EVENT2s:
        pcrIndex u32 | eventType u32 | count u32 | {hashAlg u16, digest} * count |
        eventSize u32 | event

Each TCG_PCR_EVENT2 carries one digest for each algorithm the Spec ID event declares, in any
order, no other and none twice (so that every bank replays the same events); an algorithm this
verifier does not know is skipped by the size the Spec ID event declares for it, as the
profile says, and a known one must be declared with its own size. A log whose first event is
not a Spec ID event is a legacy SHA-1 log (TPM 1.2 firmware, old OVMF): every event is in the
SHA-1 format. Nothing may follow the last event.

Replay: every PCR starts at zeros, except PCR 0 after an EV_NO_ACTION "StartupLocality"
event (the locality the TPM2_Startup came from: 3 gives ...03, 4 an H-CRTM ...04); each
event other than EV_NO_ACTION extends its PCR with its digest of the bank:
``PCR = H(PCR || digest)``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from verifier.errors import EvidenceTooLarge, MalformedEvidence
from verifier.tpm.ima import ima_fields, parse_ima_entries

__all__ = [
    "BANKS",
    "EVENT_TYPES",
    "EV_NO_ACTION",
    "IMA_MEASUREMENT",
    "IMA_VIOLATION",
    "MAX_EVENTS",
    "MAX_EVENT_LOG_BYTES",
    "Event",
    "EventLog",
    "parse_event_log",
    "parse_ima_log",
    "replay_violations",
]

#: The whole evidence is at most 64 KiB (ledger limit), so is any log in it.
MAX_EVENT_LOG_BYTES = 64 * 1024
#: An event takes at least 32 bytes, so 64 KiB holds at most 2048; bound it anyway.
MAX_EVENTS = 4096
_MAX_ALGORITHMS = 16  # TPM 2.0 defines under twenty hash algorithms
_MAX_UNKNOWN_DIGEST = 128  # an unknown algorithm's declared size (SHA-512 is 64)
_PCR_COUNT = 24

#: Bank name -> (TPM_ALG_ID, digest size, hash function).
BANKS: Mapping[str, tuple[int, int, Callable[[bytes], bytes]]] = MappingProxyType(
    {
        "sha1": (0x0004, 20, lambda data: hashlib.sha1(data, usedforsecurity=False).digest()),
        "sha256": (0x000B, 32, lambda data: hashlib.sha256(data).digest()),
        "sha384": (0x000C, 48, lambda data: hashlib.sha384(data).digest()),
        "sha512": (0x000D, 64, lambda data: hashlib.sha512(data).digest()),
    }
)
_BANK_BY_ALG = {alg: name for name, (alg, _, _) in BANKS.items()}
#: Algorithms a log may declare that this verifier does not replay (skipped by their declared
#: size): SM3-256 and the SHA-3 family; their sizes are known, so they are checked too.
_OTHER_ALG_SIZES = {0x0012: 32, 0x0027: 32, 0x0028: 48, 0x0029: 64}

EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
#: IMA has no event types: these two are this verifier's, for IMA events.
IMA_MEASUREMENT = 0x0
IMA_VIOLATION = 0x1

#: TCG PC Client PFP, table "Event Types" (and the EFI ones of the UEFI section).
EVENT_TYPES: Mapping[int, str] = MappingProxyType(
    {
        0x00000000: "EV_PREBOOT_CERT",
        0x00000001: "EV_POST_CODE",
        0x00000002: "EV_UNUSED",
        0x00000003: "EV_NO_ACTION",
        0x00000004: "EV_SEPARATOR",
        0x00000005: "EV_ACTION",
        0x00000006: "EV_EVENT_TAG",
        0x00000007: "EV_S_CRTM_CONTENTS",
        0x00000008: "EV_S_CRTM_VERSION",
        0x00000009: "EV_CPU_MICROCODE",
        0x0000000A: "EV_PLATFORM_CONFIG_FLAGS",
        0x0000000B: "EV_TABLE_OF_DEVICES",
        0x0000000C: "EV_COMPACT_HASH",
        0x0000000D: "EV_IPL",
        0x0000000E: "EV_IPL_PARTITION_DATA",
        0x0000000F: "EV_NONHOST_CODE",
        0x00000010: "EV_NONHOST_CONFIG",
        0x00000011: "EV_NONHOST_INFO",
        0x00000012: "EV_OMIT_BOOT_DEVICE_EVENTS",
        0x00000013: "EV_POST_CODE2",
        0x80000000: "EV_EFI_EVENT_BASE",
        0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
        0x80000002: "EV_EFI_VARIABLE_BOOT",
        0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
        0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
        0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
        0x80000006: "EV_EFI_GPT_EVENT",
        0x80000007: "EV_EFI_ACTION",
        0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
        0x80000009: "EV_EFI_HANDOFF_TABLES",
        0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        0x8000000B: "EV_EFI_HANDOFF_TABLES2",
        0x8000000C: "EV_EFI_VARIABLE_BOOT2",
        0x8000000D: "EV_EFI_GPT_EVENT2",
        0x80000010: "EV_EFI_HCRTM_EVENT",
        0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
        0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB",
        0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
        0x800000E3: "EV_EFI_SPDM_DEVICE_POLICY",
        0x800000E4: "EV_EFI_SPDM_DEVICE_AUTHORITY",
    }
)

_SPEC_ID_SIGNATURE = b"Spec ID Event03\0"
_STARTUP_LOCALITY = b"StartupLocality\0"
_STARTUP_LOCALITIES = (0, 3, 4)
_SHA1_EVENT = struct.Struct("<II20sI")
_EVENT2_HEAD = struct.Struct("<III")
_SPEC_ID_HEAD = struct.Struct("<16sIBBBBI")
_ALG_SIZE = struct.Struct("<HH")
_U32 = struct.Struct("<I")
_DESCRIPTION_CHARS = 160


def type_name(event_type: int) -> str:
    """The event type's name in the TCG table, or ``EV_0x`` and its eight hex digits."""
    return EVENT_TYPES.get(event_type, f"EV_0x{event_type:08X}")


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a log. For an IMA event, ``type`` is IMA_MEASUREMENT or IMA_VIOLATION,
    ``type_name`` the template name ("ima-ng", ...), ``data`` the template data as logged, and
    ``digests`` what the kernel extended (all-ones for a violation)."""

    pcr: int
    type: int
    type_name: str
    digests: Mapping[str, bytes]
    data: bytes

    def description(self) -> str | None:
        """A short printable summary of the event data where its type is known, else None.
        Never raises; never returns a control or format character."""
        try:
            text = _describe(self)
        except (ValueError, IndexError, struct.error, MalformedEvidence):
            return None
        return None if text is None else _printable(text)


@dataclass(frozen=True, slots=True)
class EventLog:
    """A parsed log: ``format`` is "tcg-pc-client" or "ima"."""

    format: str
    events: tuple[Event, ...]
    #: The banks every extending event has a digest for, in the log's order.
    banks: tuple[str, ...] = ()

    def replay(self, bank: str) -> dict[int, bytes]:
        """PCR index -> value after replaying the log in ``bank``, for every PCR the log
        extends (and PCR 0 if a StartupLocality event set its start). Raises
        MalformedEvidence for a bank the log has no digests for."""
        if bank not in self.banks:
            have = ", ".join(self.banks) or "none"
            raise MalformedEvidence(f"the {self.format} log has no {bank} digests ({have})")
        _, size, digest = BANKS[bank]
        pcrs: dict[int, bytes] = {}
        for event in self.events:
            if event.type == EV_NO_ACTION and self.format == "tcg-pc-client":
                locality = _startup_locality(event)
                if locality is not None:
                    pcrs[0] = bytes(size - 1) + bytes([locality])
                continue
            pcrs[event.pcr] = digest(pcrs.get(event.pcr, bytes(size)) + event.digests[bank])
        return pcrs


def replay_violations(log: EventLog, quoted: Mapping[str, Mapping[int, bytes]]) -> list[str]:
    """One message per PCR whose replayed value differs from the quoted one, for every bank
    the quote carries and the log has digests for, and every PCR the log accounts for that the
    quote includes (a PCR the quote does not include cannot be compared and is not reported).
    Empty when the log replays to the quote."""
    messages: list[str] = []
    for bank in BANKS:
        if bank not in quoted or bank not in log.banks:
            continue
        replayed = log.replay(bank)
        for pcr in sorted(replayed):
            have = quoted[bank].get(pcr)
            if have is not None and have != replayed[pcr]:
                messages.append(
                    f"pcr {pcr} ({bank}): the log replays to {replayed[pcr].hex()}, "
                    f"the quote has {have.hex()}"
                )
    return messages


# --- parsing -------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise MalformedEvidence(
                f"event log: {what} needs {size} bytes at offset {self.offset}, "
                f"{len(self.data) - self.offset} remain"
            )
        out = self.data[self.offset : end]
        self.offset = end
        return out

    def unpack(self, layout: struct.Struct, what: str) -> tuple[int, ...]:
        values: tuple[int, ...] = layout.unpack(self.take(layout.size, what))
        return values

    @property
    def done(self) -> bool:
        return self.offset == len(self.data)


def _check_size(data: bytes) -> None:
    if len(data) > MAX_EVENT_LOG_BYTES:
        raise EvidenceTooLarge(
            f"event log: {len(data)} bytes, at most {MAX_EVENT_LOG_BYTES} are accepted"
        )
    if not data:
        raise MalformedEvidence("event log: empty")


def _check_pcr(pcr: int, at: int) -> None:
    if pcr >= _PCR_COUNT:
        raise MalformedEvidence(f"event log: event at offset {at} names PCR {pcr}, not 0..23")


def _event_data(reader: _Reader, size: int, at: int) -> bytes:
    if size > MAX_EVENT_LOG_BYTES:
        raise EvidenceTooLarge(f"event log: event at offset {at} claims {size} bytes of data")
    return reader.take(size, "event data")


def _sha1_event(reader: _Reader) -> tuple[int, int, bytes, bytes]:
    at = reader.offset
    pcr, event_type, digest, size = _SHA1_EVENT.unpack(reader.take(_SHA1_EVENT.size, "event"))
    _check_pcr(pcr, at)
    return pcr, event_type, digest, _event_data(reader, size, at)


def _spec_id(data: bytes) -> dict[int, int]:
    """The Spec ID event's algorithms: TPM_ALG_ID -> digest size, in the declared order."""
    reader = _Reader(data)
    _sig, platform_class, minor, major, _errata, uintn, count = reader.unpack(
        _SPEC_ID_HEAD, "Spec ID event"
    )
    if (major, minor) != (2, 0) or uintn not in (1, 2) or platform_class > 1:
        raise MalformedEvidence(
            f"event log: Spec ID event for version {major}.{minor}, uintnSize {uintn}, "
            f"platformClass {platform_class}; expected 2.0, 1 or 2, 0 or 1"
        )
    if not 1 <= count <= _MAX_ALGORITHMS:
        raise MalformedEvidence(
            f"event log: Spec ID event declares {count} algorithms, expected 1..{_MAX_ALGORITHMS}"
        )
    sizes: dict[int, int] = {}
    for _ in range(count):
        alg, size = reader.unpack(_ALG_SIZE, "Spec ID algorithm")
        bank = _BANK_BY_ALG.get(alg)
        expected = BANKS[bank][1] if bank else _OTHER_ALG_SIZES.get(alg)
        if alg in sizes or (expected is not None and size != expected):
            raise MalformedEvidence(
                f"event log: Spec ID event declares algorithm 0x{alg:04x} with {size} bytes"
                + (" twice" if alg in sizes else f", it has {expected}")
            )
        if not 1 <= size <= _MAX_UNKNOWN_DIGEST:
            raise MalformedEvidence(
                f"event log: Spec ID event declares algorithm 0x{alg:04x} with {size} bytes"
            )
        sizes[alg] = size
    (vendor_size,) = reader.take(1, "vendorInfoSize")
    reader.take(vendor_size, "vendorInfo")
    if not reader.done:
        raise MalformedEvidence(
            f"event log: {len(data) - reader.offset} bytes after the Spec ID event's vendorInfo"
        )
    return sizes


def _event2(reader: _Reader, sizes: Mapping[int, int]) -> Event:
    at = reader.offset
    pcr, event_type, count = reader.unpack(_EVENT2_HEAD, "event")
    _check_pcr(pcr, at)
    if count != len(sizes):
        raise MalformedEvidence(
            f"event log: event at offset {at} has {count} digests, the Spec ID event declares "
            f"{len(sizes)} algorithms"
        )
    digests: dict[str, bytes] = {}
    seen: set[int] = set()
    for _ in range(count):
        (alg,) = struct.unpack("<H", reader.take(2, "digest algorithm"))
        if alg not in sizes or alg in seen:
            raise MalformedEvidence(
                f"event log: event at offset {at} has a digest of algorithm 0x{alg:04x}, "
                + ("twice" if alg in seen else "which the Spec ID event does not declare")
            )
        seen.add(alg)
        digest = reader.take(sizes[alg], "digest")
        bank = _BANK_BY_ALG.get(alg)
        if bank is not None:
            digests[bank] = digest
    (size,) = reader.unpack(_U32, "event size")
    data = _event_data(reader, size, at)
    return Event(pcr, event_type, type_name(event_type), MappingProxyType(digests), data)


def _startup_locality(event: Event) -> int | None:
    if event.pcr == 0 and event.data[:16] == _STARTUP_LOCALITY and len(event.data) == 17:
        return event.data[16]
    return None


def _check_startup_locality(events: list[Event]) -> None:
    extended_pcr0 = False
    found = False
    for event in events:
        if event.type == EV_NO_ACTION and event.data.startswith(_STARTUP_LOCALITY):
            locality = _startup_locality(event)
            if locality is None or locality not in _STARTUP_LOCALITIES:
                raise MalformedEvidence(
                    f"event log: StartupLocality event with {len(event.data)} bytes "
                    f"{event.data[16:17].hex()}: expected PCR 0, locality 0, 3 or 4"
                )
            if found or extended_pcr0:
                raise MalformedEvidence(
                    "event log: StartupLocality after "
                    + ("another one" if found else "an extension of PCR 0")
                )
            found = True
        elif event.type != EV_NO_ACTION and event.pcr == 0:
            extended_pcr0 = True


def parse_event_log(data: bytes) -> EventLog:
    """Parse a TCG PC Client binary log (crypto-agile, or legacy SHA-1);
    raise MalformedEvidence or EvidenceTooLarge."""
    _check_size(data)
    reader = _Reader(data)
    pcr, event_type, digest, first = _sha1_event(reader)
    events: list[Event] = []
    if first.startswith(_SPEC_ID_SIGNATURE):
        if (pcr, event_type, digest) != (0, EV_NO_ACTION, bytes(20)):
            raise MalformedEvidence(
                "event log: the Spec ID event must be EV_NO_ACTION in PCR 0 with a zero digest"
            )
        sizes = _spec_id(first)
        banks = tuple(_BANK_BY_ALG[alg] for alg in sizes if alg in _BANK_BY_ALG)
        events.append(
            Event(0, EV_NO_ACTION, "EV_NO_ACTION", MappingProxyType({"sha1": digest}), first)
        )
        while not reader.done:
            if len(events) == MAX_EVENTS:
                raise EvidenceTooLarge(f"event log: more than {MAX_EVENTS} events")
            event = _event2(reader, sizes)
            if event.type == EV_NO_ACTION and event.data.startswith(_SPEC_ID_SIGNATURE):
                raise MalformedEvidence("event log: a second Spec ID event")
            events.append(event)
    else:
        banks = ("sha1",)
        events.append(_legacy_event(pcr, event_type, digest, first))
        while not reader.done:
            if len(events) == MAX_EVENTS:
                raise EvidenceTooLarge(f"event log: more than {MAX_EVENTS} events")
            event = _legacy_event(*_sha1_event(reader))
            if event.type == EV_NO_ACTION and event.data.startswith(_SPEC_ID_SIGNATURE):
                raise MalformedEvidence("event log: a Spec ID event after the first event")
            events.append(event)
    _check_startup_locality(events)
    return EventLog("tcg-pc-client", tuple(events), banks)


def _legacy_event(pcr: int, event_type: int, digest: bytes, data: bytes) -> Event:
    return Event(pcr, event_type, type_name(event_type), MappingProxyType({"sha1": digest}), data)


def parse_ima_log(data: bytes) -> EventLog:
    """Parse a Linux IMA binary measurement list (``binary_runtime_measurements``); raise
    MalformedEvidence or EvidenceTooLarge. See :mod:`verifier.tpm.ima` for what is extended."""
    entries = parse_ima_entries(data)
    if len(entries) > MAX_EVENTS:
        raise EvidenceTooLarge(f"IMA log: more than {MAX_EVENTS} entries")
    events = tuple(
        Event(
            entry.pcr,
            IMA_VIOLATION if entry.violation else IMA_MEASUREMENT,
            entry.template,
            MappingProxyType(entry.digests),
            entry.template_data,
        )
        for entry in entries
    )
    return EventLog("ima", events, tuple(BANKS))


# --- descriptions --------------------------------------------------------------------------


def _printable(text: str) -> str | None:
    text = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    if len(text) > _DESCRIPTION_CHARS:
        text = text[: _DESCRIPTION_CHARS - 1] + "…"
    return text or None


def _utf16(data: bytes) -> str:
    return data[: len(data) // 2 * 2].decode("utf-16-le", errors="replace").split("\0")[0]


def _text(data: bytes) -> str | None:
    """The data as text: UTF-16LE when it looks like it (every odd byte zero), else UTF-8,
    up to the first NUL; None when it is mostly not text."""
    if len(data) >= 4 and len(data) % 2 == 0 and not any(data[1:8:2]):
        return _utf16(data)
    text = data.split(b"\0")[0].decode("utf-8", errors="replace")
    readable = sum(ch.isprintable() and ch != "\ufffd" for ch in text)
    return text if text and readable * 4 >= len(text) * 3 else None


def _variable_name(data: bytes) -> str:
    """UEFI_VARIABLE_DATA: VariableName GUID [16] | UnicodeNameLength u64 |
    VariableDataLength u64 | UnicodeName [2 * length] | VariableData."""
    name_chars, _ = struct.unpack_from("<QQ", data, 16)
    name = data[32 : 32 + 2 * min(name_chars, 256)]
    return _utf16(name)


def _device_path_files(data: bytes) -> str | None:
    """UEFI_IMAGE_LOAD_EVENT: location u64 | length u64 | link-time address u64 |
    LengthOfDevicePath u64 | DevicePath; the file path nodes (type 4, subtype 4) joined."""
    (path_size,) = struct.unpack_from("<Q", data, 24)
    path = data[32 : 32 + min(path_size, len(data))]
    files: list[str] = []
    offset = 0
    while offset + 4 <= len(path):
        node_type, subtype, length = struct.unpack_from("<BBH", path, offset)
        if length < 4 or node_type == 0x7F:
            break
        if (node_type, subtype) == (4, 4):
            files.append(_utf16(path[offset + 4 : offset + length]))
        offset += length
    return "".join(files) or None


def _describe(event: Event) -> str | None:
    data = event.data
    if not event.type_name.startswith("EV_"):  # an IMA template
        return _describe_ima(event)
    name = event.type_name
    if name == "EV_SEPARATOR":
        return f"separator {data.hex()}" if len(data) <= 8 else "separator"
    if name == "EV_NO_ACTION":
        signature = data[:16].split(b"\0")[0].decode("ascii", errors="replace")
        locality = _startup_locality(event)
        return f"StartupLocality {locality}" if locality is not None else signature
    if name in {"EV_EFI_VARIABLE_DRIVER_CONFIG", "EV_EFI_VARIABLE_BOOT",
                "EV_EFI_VARIABLE_BOOT2", "EV_EFI_VARIABLE_AUTHORITY"}:  # fmt: skip
        return _variable_name(data)
    if name in {"EV_EFI_BOOT_SERVICES_APPLICATION", "EV_EFI_BOOT_SERVICES_DRIVER",
                "EV_EFI_RUNTIME_SERVICES_DRIVER"}:  # fmt: skip
        return _device_path_files(data)
    if name == "EV_EVENT_TAG":
        tag, size = struct.unpack_from("<II", data)
        return f"tag 0x{tag:08x}, {size} bytes"
    if name in {"EV_EFI_PLATFORM_FIRMWARE_BLOB", "EV_EFI_GPT_EVENT", "EV_EFI_HANDOFF_TABLES"}:
        return f"{len(data)} bytes"
    if name == "EV_EFI_PLATFORM_FIRMWARE_BLOB2":
        return data[1 : 1 + data[0]].decode("ascii", errors="replace")
    return _text(data)


def _describe_ima(event: Event) -> str | None:
    fields = ima_fields(event.type_name, event.data)
    if len(fields) < 2:
        return None
    path = fields[1].split(b"\0")[0].decode("utf-8", errors="replace")
    return f"violation: {path}" if event.type == IMA_VIOLATION else path
