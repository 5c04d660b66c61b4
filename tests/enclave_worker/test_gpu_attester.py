"""The GPU attester (enclave_worker.gpu): each device's report is made over its gpu_nonce
(checked with the tests' own SPDM reader and against the verifier's gpu_nonce, written
apart), and the project's NvidiaVerifier, trusting the simulated roots, accepts the
evidence at the job's time with that nonce; the bad modes give the verifier's nonce code.
The client's body with devices, and the job runner passing them, against an httpx
MockTransport (the body's shape only: the service end to end is the integrator's test)."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave_worker import GpuAttester, GpuBadMode, SimulatedNvidiaWarning
from enclave_worker.attester import Endorsement as WorkerEndorsement
from enclave_worker.attester import Evidence as WorkerEvidence
from enclave_worker.attester import NitroAttester
from enclave_worker.binding import ResultDigest, gpu_nonce
from enclave_worker.client import LedgerClient
from enclave_worker.gpu import MAX_DEVICES, simulated_devices, write_simulated_rims
from enclave_worker.job import BadMode, Job, JobRunner, compute
from enclave_worker.simulated_nvidia import SimulatedGpu
from tests.enclave_worker.nvidia_support import nvidia_pki, parse_report
from tests.support import SIM_AT
from verifier import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    PolicyViolation,
    ResultHash,
    Status,
    TrustAnchor,
    UnsafePolicyWarning,
)
from verifier import binding as verifier_binding
from verifier.nvidia import NvidiaPolicy, NvidiaVerifier, UnsafeAcceptAnyNvidiaPolicy

CHALLENGE = bytes(range(32))
RESULT = b"label=heron score=0.042"
DIGEST = ResultDigest.of(RESULT)
#: The default versions simulated_devices gives each architecture.
VERSIONS = {
    "HOPPER": ("590.12", "96.00.a5.00.01"),
    "BLACKWELL": ("590.12", "97.00.e4.00.11"),
    "LS10": (None, "96.10.55.00.01"),
}


def devices(arch: str = "HOPPER", gpus: int = 2, switches: int = 1) -> list[SimulatedGpu]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return simulated_devices(nvidia_pki(), gpus=gpus, switches=switches, arch=arch)


def verifier() -> NvidiaVerifier:
    pki = nvidia_pki()
    return NvidiaVerifier(
        trust_anchors=[TrustAnchor.from_der(pki.device_root.der, name="simulated device root")],
        rim_anchors=[TrustAnchor.from_der(pki.rim_root.der, name="simulated RIM root")],
    )


def as_verifier_evidence(evidence: WorkerEvidence) -> Evidence:
    assert evidence.kind == "nvidia-gpu"
    return Evidence(
        EvidenceKind.NVIDIA_GPU,
        evidence.data,
        tuple(Endorsement(EndorsementKind(e.kind), e.data) for e in evidence.endorsements),
    )


def strict_policy(arch: str = "HOPPER") -> NvidiaPolicy:
    """The simulated devices' versions, with every RIM the device has required (the verifier
    requires a driver RIM of an NVSwitch too when asked, and a switch has none)."""
    images = [
        {"name": arch.lower(), "arch": arch, "vbios_versions": [vbios]}
        | ({"driver_versions": [driver]} if driver else {})
        for arch, (driver, vbios) in VERSIONS.items()
    ]
    return NvidiaPolicy.from_dict(
        {"evidence_kind": "nvidia-gpu", "name": "simulated", "images": images,
         "require_rims": ["vbios"] if arch == "LS10" else ["driver", "vbios"]}
    )  # fmt: skip


def accept_any(**options: Any) -> UnsafeAcceptAnyNvidiaPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        return UnsafeAcceptAnyNvidiaPolicy(**options)


def common_name(der: bytes) -> str:
    (name,) = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME
    )
    return str(name.value)


# --- the reports and their nonces -------------------------------------------------------------


@pytest.mark.parametrize("arch", ["HOPPER", "BLACKWELL"])
def test_each_report_is_made_over_its_devices_gpu_nonce(arch: str) -> None:
    made = GpuAttester(devices(arch)).attest(nonce=CHALLENGE, result=DIGEST)
    assert [e.kind for e in made] == ["nvidia-gpu"] * 3
    for index, evidence in enumerate(made):
        nonce = parse_report(evidence.data).nonce
        assert nonce == gpu_nonce(CHALLENGE, DIGEST, index)
        # the verifier's own formula, written apart
        assert nonce == verifier_binding.gpu_nonce(CHALLENGE, ResultHash.of(RESULT), index)
    assert len({parse_report(e.data).nonce for e in made}) == 3


def test_gpus_come_first_then_switches_each_with_its_chain_leaf_first() -> None:
    made = GpuAttester(devices("BLACKWELL", gpus=2, switches=2)).attest(
        nonce=CHALLENGE, result=DIGEST
    )
    leaves = [common_name(e.endorsements[0].data) for e in made]
    assert (
        leaves
        == ["GB100 A01 GSP FMC LF (simulated)"] * 2 + ["LS_10 A01 FSP FMC LF (simulated)"] * 2
    )
    for evidence in made:
        assert [e.kind for e in evidence.endorsements] == ["device-certificate"] * 5  # no RIMs
        assert common_name(evidence.endorsements[-1].data) == (
            "NVIDIA Device Identity CA (simulated)"
        )
    # every device its own identity
    assert len({e.endorsements[1].data for e in made}) == 4


def test_rims_are_attached_only_when_asked() -> None:
    made = GpuAttester(devices(), attach_rims=True).attest(nonce=CHALLENGE, result=DIGEST)
    kinds = [[e.kind for e in evidence.endorsements] for evidence in made]
    assert kinds == [["device-certificate"] * 5 + ["rim", "rim"]] * 2 + [
        ["device-certificate"] * 5 + ["rim"]  # an NVSwitch has no driver RIM
    ]


@pytest.mark.parametrize("arch", ["HOPPER", "BLACKWELL"])
def test_the_verifier_affirms_them_at_the_jobs_time_with_the_rims(arch: str) -> None:
    made = GpuAttester(devices(arch), attach_rims=True).attest(nonce=CHALLENGE, result=DIGEST)
    for index, evidence in enumerate(made):
        nonce = gpu_nonce(CHALLENGE, DIGEST, index)
        device_arch = arch if index < 2 else "LS10"
        result = verifier().verify(
            as_verifier_evidence(evidence),
            at=SIM_AT,
            policy=strict_policy(device_arch),
            nonce=nonce,
        )
        assert result.status is Status.AFFIRMING
        assert result.claims.arch == device_arch
        warned = verifier().verify(
            as_verifier_evidence(evidence),
            at=SIM_AT,
            policy=accept_any(require_rims=("vbios",)),
            nonce=nonce,
        )
        assert warned.status is Status.WARNING


def test_without_rims_an_accept_any_policy_that_requires_none_warns() -> None:
    made = GpuAttester(devices(gpus=1, switches=0)).attest(nonce=CHALLENGE, result=DIGEST)
    result = verifier().verify(
        as_verifier_evidence(made[0]),
        at=SIM_AT,
        policy=accept_any(),
        nonce=gpu_nonce(CHALLENGE, DIGEST, 0),
    )
    assert result.status is Status.WARNING


def nonce_code(evidence: WorkerEvidence, nonce: bytes) -> str:
    """The one code the verifier refuses ``evidence`` with, expecting ``nonce``."""
    with pytest.raises(PolicyViolation) as caught:
        verifier().verify(
            as_verifier_evidence(evidence), at=SIM_AT, policy=accept_any(), nonce=nonce
        )
    (code,) = {violation.code for violation in caught.value.violations}
    return code


def test_a_report_is_refused_as_another_device_of_the_job_or_for_another_result() -> None:
    first, second, _switch = GpuAttester(devices()).attest(nonce=CHALLENGE, result=DIGEST)
    assert nonce_code(second, gpu_nonce(CHALLENGE, DIGEST, 0)) == "nonce_mismatch"
    assert nonce_code(first, gpu_nonce(CHALLENGE, ResultDigest.of(b"other"), 0)) == (
        "nonce_mismatch"
    )
    assert nonce_code(first, gpu_nonce(bytes(32), DIGEST, 0)) == "nonce_mismatch"


@pytest.mark.parametrize("bad", list(GpuBadMode))
def test_the_bad_modes_spoil_the_first_device_only(bad: GpuBadMode) -> None:
    made = GpuAttester(devices()).attest(nonce=CHALLENGE, result=DIGEST, bad=bad)
    nonces = [parse_report(e.data).nonce for e in made]
    if bad is GpuBadMode.WRONG_INDEX:
        assert nonces[0] == gpu_nonce(CHALLENGE, DIGEST, 1)
    else:
        assert nonces[0] not in {gpu_nonce(CHALLENGE, DIGEST, i) for i in range(3)}
    assert nonce_code(made[0], gpu_nonce(CHALLENGE, DIGEST, 0)) == "nonce_mismatch"
    for index in (1, 2):
        assert nonces[index] == gpu_nonce(CHALLENGE, DIGEST, index)


def test_another_challenge_is_a_fresh_one_each_time() -> None:
    attester = GpuAttester(devices(gpus=1, switches=0))
    nonces = {
        parse_report(attester.attest(nonce=CHALLENGE, result=DIGEST, bad=bad)[0].data).nonce
        for bad in (GpuBadMode.OTHER_CHALLENGE, GpuBadMode.OTHER_CHALLENGE)
    }
    assert len(nonces) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpus": 0}, "at least one GPU"),
        ({"gpus": 1, "switches": -1}, "must not be negative"),
        ({"gpus": 10, "switches": 7}, f"at most {MAX_DEVICES} devices"),
        ({"gpus": 1, "arch": "LS10"}, "one of ['HOPPER', 'BLACKWELL']"),
        ({"gpus": 1, "arch": "AMPERE"}, "one of ['HOPPER', 'BLACKWELL']"),
    ],
)
def test_device_counts_and_architectures_are_checked(options: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        simulated_devices(nvidia_pki(), **options)


@settings(max_examples=60, deadline=None)
@given(
    gpus=st.integers(-2, 18),
    switches=st.integers(-2, 18),
    arch=st.sampled_from(["HOPPER", "BLACKWELL", "LS10", "hopper", ""]),
)
def test_any_counts_give_the_devices_in_order_or_a_value_error(
    gpus: int, switches: int, arch: str
) -> None:
    try:
        made = devices(arch, gpus=gpus, switches=switches)
    except ValueError:
        assert (
            arch not in {"HOPPER", "BLACKWELL"} or gpus < 1 or switches < 0 or gpus + switches > 16
        )
        return
    assert [device.arch for device in made] == [arch] * gpus + ["LS10"] * switches


def test_an_attester_has_one_to_sixteen_devices_and_a_32_byte_challenge() -> None:
    with pytest.raises(ValueError, match="at least one device"):
        GpuAttester([])
    (device,) = devices(gpus=1, switches=0)
    with pytest.raises(ValueError, match="at most 16 devices"):
        GpuAttester([device] * 17)
    with pytest.raises(ValueError, match="must be 32 bytes, not 31"):
        GpuAttester([device]).attest(nonce=bytes(31), result=DIGEST)


def test_simulated_devices_warn() -> None:
    with pytest.warns(SimulatedNvidiaWarning, match="not NVIDIA hardware"):
        simulated_devices(nvidia_pki(), gpus=1)


# --- the RIMs a worker writes for the service -------------------------------------------------


def test_the_written_rims_complete_every_simulated_device(tmp_path: Path) -> None:
    paths = write_simulated_rims(nvidia_pki(), tmp_path)
    assert sorted(p.name for p in paths) == [
        "GB100-driver-590.12.xml",
        "GB100-vbios-97.00.E4.00.11.xml",
        "GH100-driver-590.12.xml",
        "GH100-vbios-96.00.A5.00.01.xml",
        "LS_10-vbios-96.10.55.00.01.xml",
    ]
    assert all(p.parent == tmp_path / "rims" for p in paths)
    rims = {p.name.split("-")[0] + "-" + p.name.split("-")[1]: p.read_bytes() for p in paths}
    for arch, chip in (("HOPPER", "GH100"), ("BLACKWELL", "GB100")):
        made = GpuAttester(devices(arch)).attest(nonce=CHALLENGE, result=DIGEST)
        for index, evidence in enumerate(made):
            chip_of = chip if index < 2 else "LS_10"
            kinds = ("vbios",) if chip_of == "LS_10" else ("driver", "vbios")
            completed = WorkerEvidence(
                evidence.kind,
                evidence.data,
                evidence.endorsements
                + tuple(WorkerEndorsement("rim", rims[f"{chip_of}-{k}"]) for k in kinds),
            )
            result = verifier().verify(
                as_verifier_evidence(completed),
                at=SIM_AT,
                policy=strict_policy("LS10" if chip_of == "LS_10" else arch),
                nonce=gpu_nonce(CHALLENGE, DIGEST, index),
            )
            assert result.status is Status.AFFIRMING


def test_written_rims_are_kept(tmp_path: Path) -> None:
    (first, *_) = write_simulated_rims(nvidia_pki(), tmp_path)
    first.write_bytes(b"imported already")
    again = write_simulated_rims(nvidia_pki(), tmp_path)
    assert again[0] == first
    assert first.read_bytes() == b"imported already"


# --- the client's body and the job runner -----------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/challenges":
            return httpx.Response(201, json={"challenges": [{"nonce": CHALLENGE.hex()}]})
        self.bodies.append(json.loads(request.content))
        self.keys.append(request.headers.get("Idempotency-Key"))
        return httpx.Response(201, json={"entry": {"index": 0}, "verdict": {}})

    def client(self) -> LedgerClient:
        return LedgerClient("http://service", "tok", transport=httpx.MockTransport(self))


def test_devices_go_in_the_evidence_form_after_the_cpu_evidence() -> None:
    recorder = Recorder()
    made = GpuAttester(devices()).attest(nonce=CHALLENGE, result=DIGEST)
    cpu = WorkerEvidence("amd-sev-snp", b"report", (WorkerEndorsement("vcek", b"cert"),))
    recorder.client().submit_evidence(
        cpu, DIGEST.text(), job={"id": "j"}, idempotency_key="j", devices=made
    )
    (body,) = recorder.bodies
    assert set(body) == {"evidence", "result_hash", "job", "idempotency_key", "devices"}
    assert body["evidence"] == cpu.to_json()
    assert len(body["devices"]) == 3
    for device, evidence in zip(body["devices"], made, strict=True):
        assert set(device) == {"kind", "data", "endorsements"}
        assert device["kind"] == "nvidia-gpu"
        assert base64.b64decode(device["data"], validate=True) == evidence.data
        assert [e["kind"] for e in device["endorsements"]] == ["device-certificate"] * 5
        assert [base64.b64decode(e["data"]) for e in device["endorsements"]] == [
            e.data for e in evidence.endorsements
        ]
    assert recorder.keys == ["j"]


def test_a_nitro_document_with_devices_takes_the_evidence_form() -> None:
    recorder = Recorder()
    document = WorkerEvidence("aws-nitro-enclave", b"cose")
    made = GpuAttester(devices(gpus=1, switches=0)).attest(nonce=CHALLENGE, result=DIGEST)
    client = recorder.client()
    client.submit_evidence(document, DIGEST.text(), devices=made)
    client.submit_evidence(document, DIGEST.text())
    with_devices, without = recorder.bodies
    assert with_devices["evidence"] == {
        "kind": "aws-nitro-enclave",
        "data": base64.b64encode(b"cose").decode(),
        "endorsements": [],
    }
    assert len(with_devices["devices"]) == 1
    assert set(without) == {"attestation_document", "result_hash", "job"}


def test_the_job_runner_binds_the_devices_to_the_cpu_challenge_and_result(sim_nsm) -> None:
    from verifier import parse_evidence

    recorder = Recorder()
    runner = JobRunner(recorder.client(), NitroAttester(sim_nsm), gpus=GpuAttester(devices()))
    runner.run(Job("job-1", b"an input"))
    runner.run(Job("job-2", b"an input"), BadMode.UNBOUND)
    runner.run(Job("job-3", b"an input"), gpu_bad=GpuBadMode.WRONG_INDEX)
    good, unbound, wrong_index = recorder.bodies
    result = ResultDigest.of(compute(b"an input"))
    _, document = parse_evidence(base64.b64decode(good["evidence"]["data"]))
    assert document.nonce == CHALLENGE
    assert good["result_hash"] == result.text()

    def nonces(body: dict[str, Any]) -> list[bytes]:
        return [parse_report(base64.b64decode(d["data"])).nonce for d in body["devices"]]

    assert nonces(good) == [gpu_nonce(CHALLENGE, result, i) for i in range(3)]
    # the devices attest what the CPU evidence does: here another result
    other = ResultDigest.of(b"not the result")
    assert nonces(unbound) == [gpu_nonce(CHALLENGE, other, i) for i in range(3)]
    assert nonces(wrong_index) == [gpu_nonce(CHALLENGE, result, i) for i in (1, 1, 2)]


def test_a_gpu_bad_mode_needs_gpus(sim_nsm) -> None:
    runner = JobRunner(Recorder().client(), NitroAttester(sim_nsm))
    with pytest.raises(ValueError, match="needs GPUs"):
        runner.run(Job("j", b"i"), gpu_bad=GpuBadMode.OTHER_CHALLENGE)
