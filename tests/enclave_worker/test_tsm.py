"""The configfs-tsm backend: the certificate table parser on tables built here byte by byte,
the whole exchange against a stand-in for the kernel, and its refusal where configfs-tsm is
absent (as on this machine)."""

from __future__ import annotations

import hashlib
import struct
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from enclave_worker.binding import ResultDigest
from enclave_worker.snp_report import parse_report
from enclave_worker.tsm import (
    TSM_REPORT,
    ConfigfsTsm,
    ConfigfsTsmAttester,
    TsmError,
    TsmUnavailable,
    parse_certificate_table,
)
from tests.enclave_worker.snp_support import fixture, snp_platform

# The GHCB specification's GUIDs, written out as the 16 bytes a host puts in the table (RFC
# 4122 order), so that a change of byte order in the parser shows.
VCEK = bytes.fromhex("63da758de6644564adc5f4b93be8accd")
VLEK = bytes.fromhex("a8074bc2a25a483eaae639c045a0b8a1")
ASK = bytes.fromhex("4ab7b379bbac4fe4a02f05aef327c782")
ARK = bytes.fromhex("c0b406a4a803495297433fb6014cd0ae")
OTHER = bytes.fromhex("00112233445566778899aabbccddeeff")


def table(*entries: tuple[bytes, bytes], terminator: bool = True) -> bytes:
    """A certificate table: 24-byte entries (GUID, offset u32 LE, length u32 LE), an all-zero
    entry, then the certificates at their offsets."""
    header_size = 24 * (len(entries) + (1 if terminator else 0))
    header, body = b"", b""
    for guid, data in entries:
        header += guid + struct.pack("<II", header_size + len(body), len(data))
        body += data
    if terminator:
        header += bytes(24)
    return header + body


def test_a_hosts_table_gives_each_certificate_by_kind() -> None:
    vcek, ask, ark = b"vcek der", b"ask der bytes", b"ark der"
    entries = parse_certificate_table(
        table((VCEK, vcek), (ASK, ask), (ARK, ark), (OTHER, b"?")) + bytes(100)  # padded page
    )
    assert [(e.kind, e.data) for e in entries] == [
        ("vcek", vcek),
        ("ask", ask),
        ("ark", ark),
        (None, b"?"),
    ]
    assert entries[0].guid == uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
    assert parse_certificate_table(table((VLEK, b"v")))[0].kind == "vlek"


def test_an_empty_table_has_no_certificates() -> None:
    assert parse_certificate_table(b"") == ()
    assert parse_certificate_table(bytes(24)) == ()


def test_pem_entries_come_out_der() -> None:
    ark_pem = fixture("amd_genoa_ark.pem")
    (entry,) = parse_certificate_table(table((ARK, ark_pem)))
    from cryptography import x509

    der = x509.load_pem_x509_certificate(ark_pem).public_bytes(serialization.Encoding.DER)
    assert entry.data == der
    assert hashlib.sha256(entry.data).hexdigest().startswith("4c6598d1")  # ARK-Genoa's pin


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (table((VCEK, b"x"), terminator=False), "without its all-zero entry"),
        (table((VCEK, b"x"))[:30], "without its all-zero entry"),
        (table((VCEK, b"x"))[:-1], "outside the certificates"),
        (VCEK + struct.pack("<II", 0, 8) + bytes(24), "outside the certificates"),
        (VCEK + struct.pack("<II", 48, 0) + bytes(24) + b"x", "outside the certificates"),
        (table((VCEK, b"x"), (VCEK, b"y")), "twice"),
        (table((ARK, b"-----BEGIN CERTIFICATE-----\nnot base64!\n")), "neither DER nor PEM"),
    ],
)
def test_bad_tables_are_refused_with_a_reason(blob, message) -> None:
    with pytest.raises(TsmError, match=message):
        parse_certificate_table(blob)


def test_configfs_tsm_is_refused_where_it_is_absent(tmp_path) -> None:
    with pytest.raises(TsmUnavailable, match="not a confidential VM with configfs-tsm"):
        ConfigfsTsm(tmp_path / "tsm" / "report")


def test_configfs_tsm_here() -> None:
    """Exercised for real only inside an SEV-SNP guest; everywhere else a clean refusal."""
    if TSM_REPORT.is_dir():  # an SEV-SNP guest (as root): a real report comes back
        evidence = ConfigfsTsmAttester().attest(nonce=b"n" * 32, result=ResultDigest.of(b"r"))
        assert parse_report(evidence.data)[0].report_data[:32] == b"n" * 32
    else:
        with pytest.raises(TsmUnavailable, match=str(TSM_REPORT)):
            ConfigfsTsmAttester()


class FakeKernel(ConfigfsTsm):
    """configfs-tsm's behaviour, on a plain directory: making an entry creates its
    attributes; writing inblob bumps generation and produces the report."""

    def __init__(self, root: Path, *, provider_name: str = "sev_guest", floor: int = 0,
                 auxblob: bytes = b"", meddle: bool = False, **kwargs: object) -> None:  # fmt: skip
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(root, **kwargs)  # type: ignore[arg-type]
        self.platform = snp_platform()
        self.provider_name, self.floor, self.auxblob, self.meddle = (
            provider_name, floor, auxblob, meddle,
        )  # fmt: skip
        self.written: dict[str, bytes] = {}
        self.entries: list[Path] = []

    def _make_entry(self, entry: Path) -> None:
        entry.mkdir()
        self.entries.append(entry)
        (entry / "provider").write_text(self.provider_name + "\n")
        (entry / "generation").write_text("0\n")
        (entry / "privlevel_floor").write_text(f"{self.floor}\n")
        (entry / "auxblob").write_bytes(self.auxblob)

    def _write(self, path: Path, data: bytes) -> None:
        super()._write(path, data)
        self.written[path.name] = data
        generation = int((path.parent / "generation").read_text()) + 1
        (path.parent / "generation").write_text(f"{generation}\n")
        if path.name == "inblob":
            (path.parent / "outblob").write_bytes(self.platform.report(data.ljust(64, b"\0")))

    def _read(self, path: Path) -> bytes:
        data = super()._read(path)
        if self.meddle and path.name == "outblob":  # another process writes meanwhile
            self._write(path.parent / "inblob", bytes(64))
        return data

    def _remove_entry(self, entry: Path) -> None:
        for child in entry.iterdir():
            child.unlink()
        entry.rmdir()


def test_a_report_through_configfs_tsm(tmp_path) -> None:
    kernel = FakeKernel(
        tmp_path / "report",
        provider="sev_guest",
        auxblob=table((VCEK, b"the vcek"), (ASK, b"the ask"), (ARK, b"the ark")),
    )
    nonce, result = b"c" * 32, ResultDigest.of(b"result")
    evidence = ConfigfsTsmAttester(kernel).attest(nonce=nonce, result=result)
    assert evidence.kind == "amd-sev-snp"
    fields, _, _ = parse_report(evidence.data)
    assert fields.report_data == nonce + hashlib.sha256(result.user_data()).digest()
    assert kernel.written == {"inblob": fields.report_data}  # privlevel left at the floor 0
    assert [(e.kind, e.data) for e in evidence.endorsements] == [
        ("vcek", b"the vcek"), ("ask", b"the ask"), ("ark", b"the ark"),
    ]  # fmt: skip
    assert kernel.entries
    assert not any(entry.exists() for entry in kernel.entries)


def test_no_certificates_from_the_host_means_no_endorsements(tmp_path) -> None:
    kernel = FakeKernel(tmp_path / "report", provider="sev_guest")
    evidence = ConfigfsTsmAttester(kernel).attest(nonce=bytes(32), result=ResultDigest.of(b""))
    assert evidence.endorsements == ()


def test_the_vmpl_is_asked_for(tmp_path) -> None:
    kernel = FakeKernel(tmp_path / "a", floor=1)
    kernel.report(bytes(64))
    assert kernel.written["privlevel"] == b"1"
    chosen = FakeKernel(tmp_path / "b", privlevel=2)
    chosen.report(bytes(64))
    assert chosen.written["privlevel"] == b"2"
    with pytest.raises(ValueError, match="privlevel"):
        FakeKernel(tmp_path / "c", privlevel=4)


def test_another_kind_of_confidential_vm_is_refused(tmp_path) -> None:
    kernel = FakeKernel(tmp_path / "report", provider="sev_guest", provider_name="tdx_guest")
    with pytest.raises(TsmError, match="provider here is 'tdx_guest', not 'sev_guest'"):
        ConfigfsTsmAttester(kernel).attest(nonce=bytes(32), result=ResultDigest.of(b""))
    assert not any(entry.exists() for entry in kernel.entries)  # removed after a failure too


def test_a_concurrent_write_is_detected(tmp_path) -> None:
    kernel = FakeKernel(tmp_path / "report", meddle=True)
    with pytest.raises(TsmError, match=r"generation 1, then 2"):
        kernel.report(bytes(64))


def test_kernel_errors_become_our_errors(tmp_path) -> None:
    kernel = FakeKernel(tmp_path / "report")
    kernel.root = tmp_path / "gone"  # the entry cannot be made
    with pytest.raises(TsmError, match="cannot create the report entry"):
        kernel.report(bytes(64))
    with pytest.raises(ValueError, match="at most 64 bytes"):
        kernel.report(bytes(65))
