"""``attest-ledger worker run --gpus N --simulated-nvidia DIR`` and ``worker nvidia-pki DIR``:
the refusals, what the directory holds, and the devices a run sends, against the stand-in
for the service of test_worker_cli (a real HTTP server in a thread; the run against the
real service is the integrator's end-to-end test)."""

from __future__ import annotations

import base64
import stat
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from attest_ledger.cli import main
from enclave_worker.binding import ResultDigest, gpu_nonce
from enclave_worker.job import compute
from tests.enclave_worker.nvidia_support import nvidia_pki, parse_report, verify_chain
from tests.enclave_worker.test_worker_cli import (  # noqa: F401 - fixtures
    Service,
    amd_root,
    run,
    service,
    settings,
)

RIMS = [
    "GB100-driver-590.12.xml",
    "GB100-vbios-97.00.E4.00.11.xml",
    "GH100-driver-590.12.xml",
    "GH100-vbios-96.00.A5.00.01.xml",
    "LS_10-vbios-96.10.55.00.01.xml",
]


@pytest.fixture
def nvidia_dir(tmp_path) -> Path:
    """The session's simulated NVIDIA PKI, persisted (no new keys made)."""
    directory = tmp_path / "simulated-nvidia"
    nvidia_pki().save(directory)
    return directory


def common_name(der: bytes) -> str:
    (name,) = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME
    )
    return str(name.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpus", "2"], "--gpus needs --simulated-nvidia DIR: the GPUs are simulated (there "
                          "is no real GPU path here)"),
        (["--gpus", "0", "--simulated-nvidia", "d"], "--gpus is at least 1, not 0"),
        (["--gpus", "1", "--switches", "-1", "--simulated-nvidia", "d"],
         "--switches must not be negative"),
        (["--gpus", "8", "--switches", "9", "--simulated-nvidia", "d"],
         "at most 16 devices per submission: --gpus + --switches is 17"),
        (["--switches", "2"], "--switches: only with --gpus N"),
        (["--simulated-nvidia", "d", "--gpu-arch", "BLACKWELL"],
         "--gpu-arch, --simulated-nvidia: only with --gpus N"),
        (["--gpu-bad", "gpu-wrong-index"], "--gpu-bad: only with --gpus N"),
        (["--tee", "amd-sev-snp", "--gpus", "1"], "--gpus needs --simulated-nvidia"),
    ],
)  # fmt: skip
def test_gpu_options_that_do_not_fit_are_refused(capsys, settings, argv, message) -> None:  # noqa: F811
    code, out, err = run(capsys, settings, "worker", "run", "--token", "t", *argv)
    assert code == 2
    assert message in err
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpus", "two"], "invalid int value: 'two'"),
        (["--gpus", "1", "--gpu-arch", "AMPERE"], "invalid choice: 'AMPERE'"),
        (["--gpus", "1", "--gpu-arch", "LS10"], "invalid choice: 'LS10'"),
        (["--gpus", "1", "--gpu-bad", "tampered"], "invalid choice: 'tampered'"),
    ],
)
def test_gpu_option_values_are_checked_by_the_parser(capsys, settings, argv, message) -> None:  # noqa: F811
    with pytest.raises(SystemExit) as exited:
        main(["worker", "run", "--token", "t", *argv], settings=settings)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_help_says_there_is_no_real_gpu_path(capsys, settings) -> None:  # noqa: F811
    with pytest.raises(SystemExit):
        main(["worker", "run", "--help"], settings=settings)
    assert "no real GPU path here" in " ".join(capsys.readouterr().out.split())


def test_worker_nvidia_pki_creates_the_directory_and_prints_the_settings(
    capsys,
    settings,  # noqa: F811
    tmp_path,
) -> None:
    directory = tmp_path / "nv"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the command silences the simulation's warnings
        code, out, err = run(capsys, settings, "worker", "nvidia-pki", str(directory))
    assert code == 0, err
    assert out.splitlines() == [
        f"ATTEST_LEDGER_NVIDIA_TRUST_ROOT={directory / 'device-root.pem'}",
        f"ATTEST_LEDGER_NVIDIA_RIM_ROOT={directory / 'rim-root.pem'}",
    ]
    assert "SIMULATED NVIDIA PKI (not NVIDIA)" in err
    assert f"attest-ledger collateral import {directory / 'rims'}/*.xml" in err
    assert sorted(p.name for p in (directory / "rims").iterdir()) == RIMS
    assert stat.S_IMODE((directory / "device-root.key").stat().st_mode) == 0o600
    root = (directory / "device-root.pem").read_bytes()
    assert (
        "NVIDIA Device Identity CA (simulated)"
        in x509.load_pem_x509_certificate(root).subject.rfc4514_string()
    )
    rim = (directory / "rims" / RIMS[0]).read_bytes()
    assert run(capsys, settings, "worker", "nvidia-pki", str(directory))[0] == 0
    assert (directory / "device-root.pem").read_bytes() == root  # kept
    assert (directory / "rims" / RIMS[0]).read_bytes() == rim


@pytest.mark.parametrize("command", ["nvidia-pki", "run"])
def test_a_broken_nvidia_directory_is_a_clear_error(
    capsys,
    settings,  # noqa: F811
    nvidia_dir,
    command,
) -> None:
    (nvidia_dir / "device-root.key").write_bytes(b"not a key")
    argv = (
        ["nvidia-pki", str(nvidia_dir)]
        if command == "nvidia-pki"
        else ["run", "--token", "t", "--gpus", "1", "--simulated-nvidia", str(nvidia_dir)]
    )
    code, out, err = run(capsys, settings, "worker", *argv)
    assert code == 2
    assert f"attest-ledger worker {command}:" in err
    assert "Traceback" not in err
    assert out == ""


def test_a_directory_of_another_kind_of_root_is_refused(
    capsys,
    settings,  # noqa: F811
    nvidia_dir,
) -> None:
    (nvidia_dir / "device-root.pem").write_bytes(nvidia_pki().rim_root.pem())
    (nvidia_dir / "device-root.key").write_bytes((nvidia_dir / "rim-root.key").read_bytes())
    code, _, err = run(capsys, settings, "worker", "nvidia-pki", str(nvidia_dir))
    assert code == 2
    assert "is not a simulated NVIDIA root" in err


@pytest.mark.parametrize("arch", ["HOPPER", "BLACKWELL"])
def test_a_worker_with_gpus_sends_them_bound_to_each_jobs_challenge(
    capsys,
    settings,  # noqa: F811
    service: Service,  # noqa: F811
    nvidia_dir,
    arch,
) -> None:
    chip = {"HOPPER": "GH100", "BLACKWELL": "GB100"}[arch]
    code, out, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--count", "2", "--name", "w", "--gpus", "2", "--switches", "1", "--gpu-arch", arch,
        "--simulated-nvidia", str(nvidia_dir),
    )  # fmt: skip
    assert code == 0, err
    assert f"SIMULATED NVIDIA {arch} GPUs x2 and LS10 NVSwitches x1 (not NVIDIA hardware)" in err
    assert "no simulated NVIDIA PKI" not in err  # the persisted one was found
    assert sorted(p.name for p in (nvidia_dir / "rims").iterdir()) == RIMS
    assert len(out.splitlines()) == 2
    root = nvidia_pki().device_root.der
    for n, body in enumerate(service.bodies):
        # a Nitro document with devices takes the evidence form
        assert set(body) == {"evidence", "result_hash", "job", "idempotency_key", "devices"}
        assert body["evidence"]["kind"] == "aws-nitro-enclave"
        result = ResultDigest.of(compute(f"w input {n}".encode()))
        assert body["result_hash"] == result.text()
        leaves = []
        for index, device in enumerate(body["devices"]):
            assert device["kind"] == "nvidia-gpu"
            chain = tuple(
                x509.load_der_x509_certificate(base64.b64decode(e["data"]))
                for e in device["endorsements"]
            )
            assert [e["kind"] for e in device["endorsements"]] == ["device-certificate"] * 5
            verify_chain(chain)
            assert base64.b64decode(device["endorsements"][-1]["data"]) == root
            report = parse_report(base64.b64decode(device["data"]))
            assert report.nonce == gpu_nonce(service.nonces[n], result, index)
            leaves.append(common_name(base64.b64decode(device["endorsements"][0]["data"])))
        assert leaves == [f"{chip} A01 GSP FMC LF (simulated)"] * 2 + [
            "LS_10 A01 FSP FMC LF (simulated)"
        ]


def test_a_worker_creates_its_nvidia_directory_and_says_what_the_service_needs(
    capsys,
    settings,  # noqa: F811
    service: Service,  # noqa: F811
    amd_root,  # noqa: F811
    tmp_path,
) -> None:
    directory = tmp_path / "new-nv"
    code, _, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--tee", "amd-sev-snp", "--count", "1",
        "--gpus", "1", "--simulated-nvidia", str(directory), "--gpu-bad", "gpu-other-challenge",
    )  # fmt: skip
    assert code == 0, err
    assert f"no simulated NVIDIA PKI in {directory}: creating a NEW one" in err
    assert f"ATTEST_LEDGER_NVIDIA_TRUST_ROOT={directory / 'device-root.pem'}" in err
    assert f"ATTEST_LEDGER_NVIDIA_RIM_ROOT={directory / 'rim-root.pem'}" in err
    assert sorted(p.name for p in (directory / "rims").iterdir()) == RIMS
    (body,) = service.bodies
    assert body["evidence"]["kind"] == "amd-sev-snp"
    (device,) = body["devices"]
    result = ResultDigest.of(compute(b"worker input 0"))
    # --gpu-bad gpu-other-challenge: made for a challenge the service did not give this job
    assert parse_report(base64.b64decode(device["data"])).nonce != gpu_nonce(
        service.nonces[0], result, 0
    )


def test_a_worker_says_when_the_service_does_not_trust_its_nvidia_roots(
    capsys,
    settings,  # noqa: F811
    service: Service,  # noqa: F811
    nvidia_dir,
) -> None:
    service.reasons = [
        {"code": "untrusted_root", "message": "not the pinned root", "submod": "gpu1"}
    ]
    code, out, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--count", "2", "--gpus", "2", "--simulated-nvidia", str(nvidia_dir),
    )  # fmt: skip
    assert code == 0, err
    assert "2 submissions had devices judged untrusted_root" in err
    assert f"ATTEST_LEDGER_NVIDIA_TRUST_ROOT={nvidia_dir / 'device-root.pem'}" in err
    assert all('"reasons": ["untrusted_root"]' in line for line in out.splitlines())


def test_no_hint_when_only_the_cpu_evidence_is_untrusted(
    capsys,
    settings,  # noqa: F811
    service: Service,  # noqa: F811
    nvidia_dir,
) -> None:
    service.reasons = [{"code": "untrusted_root", "message": "not the pinned root"}]
    code, _, err = run(
        capsys, settings, "worker", "run", "--server", service.url, "--token", "t",
        "--count", "1", "--gpus", "1", "--simulated-nvidia", str(nvidia_dir),
    )  # fmt: skip
    assert code == 0, err
    assert "devices judged untrusted_root" not in err


@hypothesis_settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    gpus=st.one_of(st.integers(-3, 20), st.integers()),
    switches=st.one_of(st.none(), st.integers(-3, 20), st.integers()),
)
def test_any_device_counts_run_or_are_refused_with_a_reason(
    capsys,
    settings,  # noqa: F811
    nvidia_dir,
    gpus,
    switches,
) -> None:
    """``--count 0``: the devices are made, no job is run (no service is needed)."""
    argv = ["worker", "run", "--token", "t", "--count", "0", "--gpus", str(gpus)]
    argv += ["--simulated-nvidia", str(nvidia_dir)]
    if switches is not None:
        argv += ["--switches", str(switches)]
    code, out, err = run(capsys, settings, *argv)
    fits = gpus >= 1 and (switches or 0) >= 0 and gpus + (switches or 0) <= 16
    assert code == (0 if fits else 2), err
    assert "Traceback" not in err
    if not fits:
        assert out == ""
        assert err.startswith("attest-ledger worker run: ")
        assert "--gpus" in err or "--switches" in err
