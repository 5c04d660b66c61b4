"""The real SEV-SNP and TDX attesters, on Linux's configfs-tsm
(``/sys/kernel/config/tsm/report``, Linux 6.7 and later, with the ``sev-guest`` or
``tdx-guest`` driver).

A report is asked for by making a directory under the report root; the kernel fills it with
attributes: write up to 64 bytes to ``inblob`` (the report data), read ``outblob`` (an SNP
guest's 1184-byte report, a TD's quote, which the kernel gets from the host's quoting
service), ``auxblob`` (for ``sev_guest``: the certificate table the host supplied
with an extended report) and ``generation`` (which counts the writes: if it changed between
the write and the reads, another process used the same entry). ``provider`` names the
driver (``sev_guest``, ``tdx_guest``), ``privlevel`` selects the VMPL. The directory is
removed afterwards.

The certificate table (GHCB specification, "SNP Extended Guest Request") is a list of
24-byte entries (a GUID in RFC 4122 byte order, then offset and length, u32 little-endian,
relative to the table's start) ended by an entry whose GUID is all zero, followed by the
certificates, DER (or PEM, which some hosts write) at those offsets.

A TD's collateral is not on the guest (Intel PCS or the provider's PCCS serves it, and the
service holds or fetches it), so a real TDX worker sends the quote alone.

Where configfs-tsm is absent, :class:`ConfigfsTsm` refuses with :class:`TsmUnavailable`, as
:class:`~enclave_worker.nsm.DeviceNsm` does outside a Nitro enclave.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import ssl
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from enclave_worker.attester import AMD_SEV_SNP, INTEL_TDX, Endorsement, Evidence
from enclave_worker.binding import ResultDigest, report_data

__all__ = [
    "CERTIFICATE_GUIDS",
    "PROVIDERS",
    "TSM_REPORT",
    "CertificateTableEntry",
    "ConfigfsTsm",
    "ConfigfsTsmAttester",
    "TsmError",
    "TsmReport",
    "TsmUnavailable",
    "parse_certificate_table",
]

TSM_REPORT: Final = Path("/sys/kernel/config/tsm/report")
SEV_GUEST: Final = "sev_guest"
TDX_GUEST: Final = "tdx_guest"
#: The provider that produces each kind of evidence.
PROVIDERS: Final = {AMD_SEV_SNP: SEV_GUEST, INTEL_TDX: TDX_GUEST}
_REPORT_SIZE: Final = 1184
_ENTRY_SIZE: Final = 24
_TDX_HEADER_SIZE: Final = 48
_TEE_TYPE_TDX: Final = 0x81
#: The certificate table's GUIDs (GHCB specification) and the endorsement kinds they carry.
CERTIFICATE_GUIDS: Final = {
    uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd"): "vcek",
    uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1"): "vlek",
    uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"): "ask",
    uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"): "ark",
}


class TsmError(RuntimeError):
    """configfs-tsm failed or gave something unusable."""


class TsmUnavailable(TsmError):
    """There is no configfs-tsm here (not a confidential VM, or an older kernel)."""


@dataclass(frozen=True)
class TsmReport:
    provider: str
    outblob: bytes
    auxblob: bytes
    generation: int


@dataclass(frozen=True)
class CertificateTableEntry:
    guid: uuid.UUID
    data: bytes

    @property
    def kind(self) -> str | None:
        """``vcek``, ``vlek``, ``ask``, ``ark``, or None for a GUID not in the GHCB spec."""
        return CERTIFICATE_GUIDS.get(self.guid)


def parse_certificate_table(table: bytes) -> tuple[CertificateTableEntry, ...]:
    """The entries of a certificate table, in order; an empty table has none."""
    if not table:
        return ()
    entries: list[tuple[uuid.UUID, int, int]] = []
    offset = 0
    while True:
        if offset + _ENTRY_SIZE > len(table):
            raise TsmError(
                f"the certificate table ends at byte {len(table)} without its all-zero entry"
            )
        guid = uuid.UUID(bytes=table[offset : offset + 16])
        start, length = struct.unpack_from("<II", table, offset + 16)
        offset += _ENTRY_SIZE
        if guid.int == 0:
            break
        entries.append((guid, start, length))
    seen: set[uuid.UUID] = set()
    parsed = []
    for guid, start, length in entries:
        if guid in seen:
            raise TsmError(f"the certificate table lists {guid} twice")
        seen.add(guid)
        if length == 0 or start < offset or start + length > len(table):
            raise TsmError(
                f"the certificate table's entry {guid} points at bytes {start}..{start + length}"
                f", outside the certificates ({offset}..{len(table)})"
            )
        parsed.append(CertificateTableEntry(guid, _der(table[start : start + length], guid)))
    return tuple(parsed)


def _der(data: bytes, guid: uuid.UUID) -> bytes:
    if not data.startswith(b"-----BEGIN"):
        return data
    try:
        return ssl.PEM_cert_to_DER_cert(data.rstrip(b"\0").decode("ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TsmError(f"the certificate table's entry {guid} is neither DER nor PEM") from exc


class ConfigfsTsm:
    """Reports from configfs-tsm. Refuses on construction where it is absent."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        provider: str | None = None,
        privlevel: int | None = None,
    ) -> None:
        """``root``: :data:`TSM_REPORT` unless given; ``provider``: refuse any other
        (``sev_guest``); ``privlevel``: the VMPL to ask for (by default the kernel's floor)."""
        root = root or TSM_REPORT
        if not root.is_dir():
            raise TsmUnavailable(
                f"{root} does not exist: this is not a confidential VM with configfs-tsm "
                "(Linux 6.7 or later with the sev-guest or tdx-guest driver, configfs mounted)"
            )
        if privlevel is not None and not 0 <= privlevel <= 3:
            raise ValueError(f"privlevel must be 0..3, not {privlevel}")
        self.root = root
        self.provider = provider
        self.privlevel = privlevel

    def report(self, inblob: bytes) -> TsmReport:
        """One report over ``inblob`` (at most 64 bytes)."""
        if len(inblob) > 64:
            raise ValueError(f"inblob is at most 64 bytes, not {len(inblob)}")
        entry = self.root / f"attest-ledger-{os.getpid()}-{secrets.token_hex(6)}"
        try:
            self._make_entry(entry)
        except OSError as exc:
            raise TsmError(f"cannot create the report entry {entry}: {_reason(exc)}") from exc
        try:
            produced = self._collect(entry, inblob)
        except BaseException:
            with contextlib.suppress(OSError):  # the first failure is the one to report
                self._remove_entry(entry)
            raise
        try:
            self._remove_entry(entry)
        except OSError as exc:
            raise TsmError(f"cannot remove the report entry {entry}: {_reason(exc)}") from exc
        return produced

    def _collect(self, entry: Path, inblob: bytes) -> TsmReport:
        provider = self._read(entry / "provider").decode("ascii", "replace").strip()
        if self.provider is not None and provider != self.provider:
            raise TsmError(
                f"configfs-tsm's provider here is {provider!r}, not {self.provider!r}: "
                "this confidential VM is of another kind"
            )
        privlevel = self.privlevel
        if privlevel is None and (entry / "privlevel_floor").exists():
            floor = int(self._read(entry / "privlevel_floor"))
            privlevel = floor or None
        if privlevel is not None:
            self._write(entry / "privlevel", str(privlevel).encode())
        self._write(entry / "inblob", inblob)
        before = int(self._read(entry / "generation"))
        outblob = self._read(entry / "outblob")
        auxblob = self._read(entry / "auxblob") if (entry / "auxblob").exists() else b""
        after = int(self._read(entry / "generation"))
        if after != before:
            raise TsmError(
                f"another process wrote to the report entry {entry} while this one read it "
                f"(generation {before}, then {after}); ask again"
            )
        return TsmReport(provider=provider, outblob=outblob, auxblob=auxblob, generation=after)

    # The file operations, one place each (a test stands in for the kernel here).

    def _make_entry(self, entry: Path) -> None:
        os.mkdir(entry)

    def _remove_entry(self, entry: Path) -> None:
        os.rmdir(entry)

    def _read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise TsmError(f"cannot read {path}: {_reason(exc)}") from exc

    def _write(self, path: Path, data: bytes) -> None:
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise TsmError(f"cannot write {path}: {_reason(exc)}") from exc


def _reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        reason += " (configfs-tsm needs root, or CAP_SYS_ADMIN)"
    return reason


class ConfigfsTsmAttester:
    """The attester of a real confidential VM, report data ``nonce || SHA-256(user_data)``.

    * ``amd-sev-snp`` (``sev_guest``): the 1184-byte report, with endorsements from the host's
      certificate table (VCEK or VLEK, ASK, ARK) when it supplies one.
    * ``intel-tdx`` (``tdx_guest``): the quote as the kernel returns it (version 4 or 5, TEE
      type 0x81; any zero padding kept: the verifier parses by the length fields), alone.
    """

    def __init__(self, tsm: ConfigfsTsm | None = None, *, kind: str = AMD_SEV_SNP) -> None:
        if kind not in PROVIDERS:
            raise ValueError(f"configfs-tsm gives {sorted(PROVIDERS)} evidence, not {kind!r}")
        self.kind = kind
        self.provider = PROVIDERS[kind]
        self.tsm = tsm or ConfigfsTsm(provider=self.provider)

    def attest(self, *, nonce: bytes, result: ResultDigest) -> Evidence:
        produced = self.tsm.report(report_data(nonce, result))
        if produced.provider != self.provider:
            raise TsmError(
                f"configfs-tsm's provider is {produced.provider!r}, not {self.provider!r}"
            )
        if self.kind == INTEL_TDX:
            _check_tdx_quote(produced.outblob)
            return Evidence(self.kind, produced.outblob)
        if len(produced.outblob) != _REPORT_SIZE:
            raise TsmError(
                f"sev_guest returned {len(produced.outblob)} bytes, not a {_REPORT_SIZE}-byte "
                "report"
            )
        endorsements = tuple(
            Endorsement(entry.kind, entry.data)
            for entry in parse_certificate_table(produced.auxblob)
            if entry.kind is not None
        )
        return Evidence(self.kind, produced.outblob, endorsements)


def _check_tdx_quote(quote: bytes) -> None:
    """What tdx_guest gave is a TDX quote: a 48-byte header of version 4 or 5, TEE type 0x81
    (the rest is the verifier's to judge)."""
    if len(quote) < _TDX_HEADER_SIZE:
        raise TsmError(f"tdx_guest returned {len(quote)} bytes, not a quote")
    version, _key_type, tee_type = struct.unpack_from("<HHI", quote)
    if version not in (4, 5) or tee_type != _TEE_TYPE_TDX:
        raise TsmError(
            f"tdx_guest returned a quote of version {version}, TEE type {tee_type:#x}; "
            "expected version 4 or 5, TEE type 0x81"
        )
