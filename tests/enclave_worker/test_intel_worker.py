"""The Intel attesters in the worker: ``worker run --tee intel-tdx|intel-sgx`` and ``worker
pki --tee intel-tdx`` against a stand-in for the service, the bad modes on quotes, and the
real TDX backend on configfs-tsm (against a stand-in for the kernel, and refusing cleanly
where configfs-tsm is absent, as here)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from enclave_worker import (
    INTEL_SGX,
    INTEL_TDX,
    simulated_sgx_measurement,
    simulated_tdx_measurement,
)
from enclave_worker.binding import ResultDigest
from enclave_worker.intel_quote import SgxReportBody, TdReport, parse_quote
from enclave_worker.job import BadMode, bad_modes, not_applicable, tamper
from enclave_worker.simulated_intel import ROOT_FILE
from enclave_worker.tsm import TSM_REPORT, ConfigfsTsm, ConfigfsTsmAttester, TsmError
from tests.enclave_worker import test_worker_cli
from tests.enclave_worker.intel_support import (
    common_name,
    fixture,
    intel_pki,
    pem_chain,
    raw_key,
    sgx_enclave,
    tdx_platform,
    verify_raw,
)
from tests.enclave_worker.test_worker_cli import run

# The stand-in for the service and the settings of the Nitro and SNP worker tests.
service = test_worker_cli.service
settings = test_worker_cli.settings

NONCE, RESULT = bytes(range(32)), ResultDigest.of(b"result")


@pytest.fixture
def intel_root(tmp_path) -> Path:
    """The session's simulated Intel PKI, persisted where `worker run` looks by default."""
    directory = tmp_path / "simulated-intel"
    intel_pki().save(directory)
    return directory


def submitted_quote(body: dict) -> bytes:  # type: ignore[type-arg]
    return base64.b64decode(body["evidence"]["data"])


def test_a_tdx_worker_submits_quotes_with_collateral(capsys, settings, service, intel_root) -> None:
    code, out, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "intel-tdx", "--count", "8", "--mix", "--image", "td-image", "--name", "w",
    )  # fmt: skip
    assert code == 0, err
    assert "SIMULATED TDX (not Intel hardware)" in err
    assert "creating a NEW one" not in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["bad"] for line in lines] == [None] * 3 + ["wrong-image"] + [None] * 3 + [
        "wrong-nonce"  # the mix skips "stale", which does not apply to TDX
    ]
    root = pem_chain(intel_pki().root_pem())[0]
    for n, body in enumerate(service.bodies):
        evidence = body["evidence"]
        assert evidence["kind"] == INTEL_TDX
        assert [e["kind"] for e in evidence["endorsements"]] == [
            "tcb-info", "qe-identity", "crl", "crl", "certificate",
        ]  # fmt: skip
        quote = parse_quote(submitted_quote(body))
        verify_raw(raw_key(quote.attestation_key), quote.signature, quote.signed)
        assert pem_chain(quote.pck_chain_pem)[2] == root  # the service's trusted root
        assert isinstance(quote.body, TdReport)
        image = "td-image-unapproved" if n == 3 else "td-image"
        assert quote.body.mr_td == simulated_tdx_measurement(image)
        assert (quote.body.report_data[:32] == service.nonces[n]) is (n != 7)
        assert not quote.body.debug


def test_an_sgx_worker_sends_debug_enclaves_when_told(
    capsys, settings, service, intel_root
) -> None:
    code, _, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "intel-sgx", "--count", "2", "--bad", "debug",
    )  # fmt: skip
    assert code == 0, err
    assert "SIMULATED SGX" in err
    for body in service.bodies:
        assert body["evidence"]["kind"] == INTEL_SGX
        quote = parse_quote(submitted_quote(body))
        assert isinstance(quote.body, SgxReportBody)
        assert quote.body.debug
        assert quote.body.mr_enclave == simulated_sgx_measurement("demo-inference")


def test_a_worker_without_the_services_root_says_so(capsys, settings, service) -> None:
    service.untrusted = True
    code, _, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "intel-tdx", "--count", "1",
    )  # fmt: skip
    assert code == 0
    assert "creating a NEW one" in err
    assert "--simulated-intel" in err
    assert "1 submissions were judged untrusted_root" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tee", "intel-tdx", "--bad", "stale"], "does not apply to intel-tdx: a TDX quote"),
        (["--tee", "intel-sgx", "--bad", "stale"], "does not apply to intel-sgx"),
        (["--tee", "intel-tdx", "--simulated-amd", "x"], "give --simulated-intel"),
        (["--tee", "amd-sev-snp", "--simulated-intel", "x"], "give --simulated-amd"),
        (["--simulated-intel", "x"], "give --simulated-pki"),
        (["--tee", "intel-sgx", "--device"], "no real intel-sgx backend"),
        (["--tee", "intel-tdx", "--device", "--bad", "debug"], "needs simulated hardware"),
        (["--tee", "intel-tdx", "--device", "--simulated-intel", "x"], "takes no simulated"),
    ],
)
def test_intel_options_that_do_not_fit_are_refused(capsys, settings, argv, message) -> None:
    code, out, err = run(capsys, settings, "worker", "run", "--token", "t", *argv)
    assert code == 2
    assert message in err
    assert out == ""


def test_the_real_tdx_device_is_refused_cleanly_where_absent(
    capsys,
    settings,
    tmp_path,
    monkeypatch,
) -> None:
    monkeypatch.setattr("enclave_worker.tsm.TSM_REPORT", tmp_path / "no" / "tsm" / "report")
    code, out, err = run(
        capsys, settings, "worker", "run", "--token", "t", "--tee", "intel-tdx", "--device"
    )
    assert code == 2
    assert "not a confidential VM with configfs-tsm" in err
    assert "Traceback" not in err
    assert out == ""


def test_worker_pki_creates_the_simulated_intel_root(capsys, settings, tmp_path) -> None:
    code, out, _ = run(capsys, settings, "worker", "pki", "--tee", "intel-tdx")
    assert code == 0
    directory = tmp_path / "simulated-intel"
    assert out.strip() == str(directory / ROOT_FILE)
    assert stat.S_IMODE((directory / "root.key").stat().st_mode) == 0o600
    first = (directory / ROOT_FILE).read_bytes()
    assert common_name(pem_chain(first)[0]) == "Intel SGX Root CA (simulated)"
    assert run(capsys, settings, "worker", "pki", "--tee", "intel-sgx")[0] == 0
    assert (directory / ROOT_FILE).read_bytes() == first  # kept: the same PKI serves both


# --- the bad modes on quotes -------------------------------------------------------------


def test_quotes_cannot_be_stale() -> None:
    for kind in (INTEL_TDX, INTEL_SGX):
        assert BadMode.STALE in not_applicable(kind)
        assert BadMode.STALE not in bad_modes(kind)
        assert BadMode.TAMPERED in bad_modes(kind)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (tdx_platform, "mr_td"),
        (lambda: tdx_platform(version=5), "mr_td"),
        (sgx_enclave, "mr_enclave"),
    ],
    ids=["tdx-v4", "tdx-v5", "sgx"],
)
def test_tampering_flips_a_signed_bit_of_the_measurement(make, field) -> None:
    evidence = make().attest(nonce=NONCE, result=RESULT)
    tampered = tamper(evidence)
    before, after = parse_quote(evidence.data), parse_quote(tampered.data)
    assert getattr(before.body, field) != getattr(after.body, field)
    assert bytes(a ^ b for a, b in zip(evidence.data, tampered.data, strict=True)).count(0) == (
        len(evidence.data) - 1
    )
    assert after.signature == before.signature  # the signature no longer covers the bytes
    assert tampered.endorsements == evidence.endorsements


# --- configfs-tsm, provider tdx_guest ------------------------------------------------------


class TdxKernel(ConfigfsTsm):
    """configfs-tsm with the tdx-guest driver, on a plain directory: the quote of a
    simulated TD over what is written to inblob, zero-padded as some hosts deliver it."""

    def __init__(
        self, root: Path, *, provider_name: str = "tdx_guest", outblob: bytes | None = None
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(root, provider="tdx_guest")
        self.platform = tdx_platform(with_collateral=False)
        self.provider_name = provider_name
        self.outblob = outblob
        self.entries: list[Path] = []

    def _make_entry(self, entry: Path) -> None:
        entry.mkdir()
        self.entries.append(entry)
        (entry / "provider").write_text(self.provider_name + "\n")
        (entry / "generation").write_text("0\n")

    def _write(self, path: Path, data: bytes) -> None:
        super()._write(path, data)
        (path.parent / "generation").write_text("1\n")
        if path.name == "inblob":
            quote = self.platform.quote(data.ljust(64, b"\0")) + bytes(70)
            (path.parent / "outblob").write_bytes(self.outblob or quote)

    def _remove_entry(self, entry: Path) -> None:
        for child in entry.iterdir():
            child.unlink()
        entry.rmdir()


def test_a_quote_through_configfs_tsm(tmp_path) -> None:
    kernel = TdxKernel(tmp_path / "report")
    evidence = ConfigfsTsmAttester(kernel, kind=INTEL_TDX).attest(nonce=NONCE, result=RESULT)
    assert evidence.kind == INTEL_TDX
    assert evidence.endorsements == ()  # a TD's collateral is not on the guest
    assert evidence.data.endswith(bytes(70))  # kept as received
    quote = parse_quote(evidence.data)
    assert quote.size == len(evidence.data) - 70
    assert quote.body.report_data == NONCE + hashlib.sha256(RESULT.user_data()).digest()
    verify_raw(raw_key(quote.attestation_key), quote.signature, quote.signed)
    assert not any(entry.exists() for entry in kernel.entries)


@pytest.mark.parametrize(
    ("kernel_options", "message"),
    [
        ({"provider_name": "sev_guest"}, "provider here is 'sev_guest', not 'tdx_guest'"),
        ({"outblob": b"short"}, "returned 5 bytes, not a quote"),
        ({"outblob": fixture("phala_dcapqvl_sgx_quote.bin")}, "version 3, TEE type 0x0"),
    ],
)
def test_what_is_not_a_tdx_quote_is_refused(tmp_path, kernel_options, message) -> None:
    kernel = TdxKernel(tmp_path / "report", **kernel_options)
    with pytest.raises(TsmError, match=message):
        ConfigfsTsmAttester(kernel, kind=INTEL_TDX).attest(nonce=NONCE, result=RESULT)


def test_configfs_tsm_gives_only_its_kinds(tmp_path) -> None:
    with pytest.raises(ValueError, match="not 'intel-sgx'"):
        ConfigfsTsmAttester(TdxKernel(tmp_path / "report"), kind=INTEL_SGX)


def test_configfs_tsm_tdx_here() -> None:
    """Exercised for real only inside a TD; everywhere else a clean refusal."""
    if TSM_REPORT.is_dir():  # a TD (as root)? then a real quote comes back
        try:
            evidence = ConfigfsTsmAttester(kind=INTEL_TDX).attest(nonce=NONCE, result=RESULT)
        except TsmError as exc:  # an SEV-SNP guest has configfs-tsm too
            assert "not 'tdx_guest'" in str(exc)  # noqa: PT017
        else:
            assert parse_quote(evidence.data).body.report_data[:32] == NONCE
    else:
        with pytest.raises(TsmError, match=str(TSM_REPORT)):
            ConfigfsTsmAttester(kind=INTEL_TDX)
