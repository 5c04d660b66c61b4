"""One verdict for one inference (issue #14): a CPU TEE's evidence (a simulated SEV-SNP guest)
with the reports of its GPUs and NVSwitches (simulated, with their own device and RIM PKIs),
each GPU's nonce bound to the challenge the CPU evidence carries, the result and its index.
The record composes them; the EAR has a submod per device; the devices' reports and
endorsements are stored content-addressed beside the entry."""

from __future__ import annotations

import base64
import hashlib
import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from attest_ledger.ear import verify_ear
from attest_ledger.rim_collateral import RimDocument, keep_rims
from enclave_worker import SimulatedAmdWarning
from enclave_worker.binding import ResultDigest, gpu_nonce
from enclave_worker.simulated_nvidia import (
    SimulatedGpu,
    SimulatedNvidiaPki,
    SimulatedNvidiaWarning,
)
from enclave_worker.simulated_rim import SimulatedRim
from ledger.audit import audit
from ledger.db import session_scope
from tests.enclave_worker.snp_support import amd_pki, snp_platform
from tests.web.conftest import NOW, build_service
from verifier import ResultHash

pytestmark = pytest.mark.db

IMAGE, GPU_IMAGE = "inference-snp", "h100-cc"
RESULT = b"the answer"


@pytest.fixture(scope="module")
def nvidia_pki() -> SimulatedNvidiaPki:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return SimulatedNvidiaPki.generate(at=NOW)


def gpu(pki: SimulatedNvidiaPki, arch: str = "HOPPER") -> SimulatedGpu:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return SimulatedGpu(pki, arch=arch)


@pytest.fixture
def composite(db_url, tmp_path, sim_pki, sim_nsm, nvidia_pki):
    ark = tmp_path / "simulated-ark.pem"
    ark.write_bytes(amd_pki().ark_pem())
    roots = tmp_path / "nvidia-device-root.pem"
    roots.write_bytes(nvidia_pki.root_pem())
    rim_root = tmp_path / "nvidia-rim-root.pem"
    rim_root.write_bytes(nvidia_pki.rim_root_pem())
    service = build_service(
        db_url, tmp_path, sim_pki, sim_nsm, snp_trust_root_path=ark,
        nvidia_trust_root_path=roots, nvidia_rim_root_path=rim_root,
    )  # fmt: skip
    service.platform = snp_platform(image=IMAGE)
    service.gpus = [gpu(nvidia_pki), gpu(nvidia_pki)]
    probe = service.gpus[0]
    with session_scope(service.runtime.sessions) as session:
        policies = service.runtime.policies
        policies.add_reference(
            session, IMAGE, "amd-sev-snp", {"measurement": service.platform.measurement.hex()}
        )
        policies.add_reference(
            session, GPU_IMAGE, "nvidia-gpu",
            {"arch": "HOPPER", "driver_versions": [probe.driver], "vbios_versions": [probe.vbios]},
        )  # fmt: skip
        policies.add_reference(
            session, "nvswitch", "nvidia-gpu",
            {"arch": "LS10", "vbios_versions": [gpu(nvidia_pki, "LS10").vbios]},
        )  # fmt: skip
        for image in (IMAGE, GPU_IMAGE, "nvswitch"):
            policies.allow(session, "worker-1", image)
        policies.allow(session, "worker-2", IMAGE)  # no GPU image: its devices fail closed
    yield service
    service.runtime.close()


def encode(evidence, *, rims=()) -> dict:
    return {
        "kind": evidence.kind,
        "data": base64.b64encode(evidence.data).decode(),
        "endorsements": [
            {"kind": e.kind, "data": base64.b64encode(e.data).decode()}
            for e in (*evidence.endorsements, *rims)
        ],
    }


def cpu_evidence(service, nonce, result=RESULT):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        return service.platform.attest(nonce=nonce, result=ResultDigest.of(result))


def device_evidence(device: SimulatedGpu, nonce: bytes, index: int, result=RESULT) -> dict:
    evidence = device.evidence(gpu_nonce(nonce, ResultDigest.of(result), index))
    return encode(evidence, rims=SimulatedRim(device).endorsements())


def submit(service, cpu, devices, *, who="worker-1", key=None, result=RESULT):
    body = {
        "evidence": encode(cpu),
        "devices": devices,
        "result_hash": str(ResultHash.of(result)),
        "job": {"id": "composite"},
    }
    headers = service.auth(who) | ({"Idempotency-Key": key} if key else {})
    return service.http.post("/api/v1/attestations", json=body, headers=headers)


def stored(service, index: int) -> dict:
    with service.runtime.sessions() as session:
        data = session.execute(
            text("SELECT data FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).scalar_one()
    return json.loads(bytes(data))


def codes(reply, submod=None) -> set[str]:
    return {r["code"] for r in reply.json["verdict"]["reasons"] if r.get("submod") == submod}


def test_a_cpu_and_two_gpus_make_one_affirming_verdict_with_a_submod_each(composite) -> None:
    nonce = composite.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(composite.gpus)]
    reply = submit(composite, cpu_evidence(composite, nonce), devices)
    assert reply.status_code == 201, reply.json
    verdict = reply.json["verdict"]
    assert verdict["status"] == "affirming", verdict
    assert verdict["cpu_status"] == "affirming"
    assert [(d["submod"], d["status"]) for d in verdict["devices"]] == [
        ("gpu0", "affirming"), ("gpu1", "affirming"),
    ]  # fmt: skip
    record = stored(composite, reply.json["entry"]["index"])
    assert record["cpu_verdict"] == "affirming"
    assert record["verdict"] == "affirming"
    for index, (device, listed) in enumerate(zip(composite.gpus, record["devices"], strict=True)):
        assert listed["index"] == index
        assert listed["image"] == GPU_IMAGE
        assert listed["nonce"] == gpu_nonce(nonce, ResultDigest.of(RESULT), index).hex()
        assert listed["claims"]["nonce"] == listed["nonce"]
        assert listed["claims"]["arch"] == "HOPPER"
        assert {e["kind"] for e in listed["endorsements"]} == {"device-certificate", "rim"}
        assert (
            listed["evidence_sha256"]
            == hashlib.sha256(base64.b64decode(devices[index]["data"])).hexdigest()
        )
        assert device.arch == "HOPPER"
    with composite.runtime.sessions() as session:
        digests = {
            bytes(row[0]).hex()
            for row in session.execute(text("SELECT sha256 FROM ledger_endorsements"))
        }
        assert audit(session, composite.runtime.log_key).ok
    for listed in record["devices"]:  # each report and endorsement kept content-addressed
        assert listed["evidence_sha256"] in digests
        assert {e["sha256"] for e in listed["endorsements"]} <= digests
    ear = verify_ear(record["ear"], composite.runtime.ear_signer.jwks()["keys"]).claims
    assert set(ear["submods"]) == {"cpu0", "gpu0", "gpu1"}
    assert ear["ear.status"] == "affirming"
    assert (
        ear["submods"]["gpu1"]["attestation-ledger.evidence-sha256"]
        == (record["devices"][1]["evidence_sha256"])
    )
    assert ear["submods"]["gpu0"]["ear.trustworthiness-vector"]  # the device's own vector


def test_a_gpu_report_replayed_under_another_cpu_evidence_is_refused(composite) -> None:
    first = composite.challenge()
    devices = [device_evidence(g, first, i) for i, g in enumerate(composite.gpus)]
    assert (
        submit(composite, cpu_evidence(composite, first), devices).json["verdict"]["status"]
        == "affirming"
    )
    second = composite.challenge()  # another CPU evidence, the same GPU reports
    reply = submit(composite, cpu_evidence(composite, second), devices)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert reply.json["verdict"]["cpu_status"] == "affirming"
    assert codes(reply, "gpu0") == {"nonce_mismatch"} == codes(reply, "gpu1")
    assert codes(reply) == set()  # the CPU evidence itself is fine


def test_a_gpu_report_for_another_result_or_another_slot_is_refused(composite) -> None:
    nonce = composite.challenge()
    one, two = composite.gpus
    devices = [
        device_evidence(one, nonce, 0, result=b"another answer"),
        device_evidence(two, nonce, 0),  # made for slot 0, sent in slot 1
    ]
    reply = submit(composite, cpu_evidence(composite, nonce), devices)
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes(reply, "gpu0") == {"nonce_mismatch"} == codes(reply, "gpu1")


def test_the_devices_a_policy_requires_must_be_there(composite) -> None:
    nonce = composite.challenge()
    reply = submit(composite, cpu_evidence(composite, nonce), [])
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes(reply, "composite") == {"devices_missing"}
    assert reply.json["verdict"]["cpu_status"] == "affirming"
    with session_scope(composite.runtime.sessions) as session:
        composite.runtime.policies.set_scheme_options(session, "nvidia-gpu", min_switches=1)
    nonce = composite.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(composite.gpus)]
    reply = submit(composite, cpu_evidence(composite, nonce), devices)
    assert codes(reply, "composite") == {"devices_missing"}
    assert "1 NVSwitch(es) required, 0 given" in str(reply.json["verdict"]["reasons"])
    switch = gpu(composite.gpus[0].pki, "LS10")
    nonce = composite.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate([*composite.gpus, switch])]
    reply = submit(composite, cpu_evidence(composite, nonce), devices)
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    assert [d["submod"] for d in reply.json["verdict"]["devices"]] == ["gpu0", "gpu1", "switch2"]


def test_devices_of_a_worker_without_a_gpu_image_fail_closed(composite) -> None:
    nonce = composite.challenge("worker-2")
    devices = [device_evidence(composite.gpus[0], nonce, 0)]
    reply = submit(composite, cpu_evidence(composite, nonce), devices, who="worker-2")
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes(reply, "gpu0") == {"no_reference_values"}
    assert reply.json["verdict"]["cpu_status"] == "affirming"


def test_a_worker_without_a_gpu_image_needs_no_device(composite) -> None:
    nonce = composite.challenge("worker-2")
    reply = submit(composite, cpu_evidence(composite, nonce), [], who="worker-2")
    assert reply.json["verdict"]["status"] == "affirming"
    assert "devices" not in reply.json["verdict"]
    assert "devices" not in stored(composite, reply.json["entry"]["index"])


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("tampered", "signature_invalid"),
        ("no-chain", "endorsement_missing"),
        ("garbage", "malformed"),
    ],
)
def test_each_way_a_device_falls_short_is_recorded_under_its_submod(
    composite, how, expected
) -> None:
    nonce = composite.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(composite.gpus)]
    bad = devices[1]
    if how == "tampered":
        data = bytearray(base64.b64decode(bad["data"]))
        data[60] ^= 1
        bad["data"] = base64.b64encode(bytes(data)).decode()
    elif how == "no-chain":
        bad["endorsements"] = [e for e in bad["endorsements"] if e["kind"] != "device-certificate"]
    else:
        bad["data"] = base64.b64encode(b"not an SPDM report").decode()
    reply = submit(composite, cpu_evidence(composite, nonce), devices)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert expected in codes(reply, "gpu1"), reply.json["verdict"]
    assert codes(reply, "gpu0") == set()
    record = stored(composite, reply.json["entry"]["index"])
    assert record["devices"][1]["verdict"] == "contraindicated"
    assert record["devices"][0]["verdict"] == "affirming"


def test_a_cpu_evidence_without_a_challenge_cannot_bind_its_devices(composite) -> None:
    nonce = composite.challenge()
    document = composite.document(nonce=None)  # a Nitro document carrying no nonce
    body = {
        "evidence": {"kind": "aws-nitro-enclave", "data": base64.b64encode(document).decode()},
        "devices": [device_evidence(composite.gpus[0], nonce, 0)],
        "result_hash": str(ResultHash.of(RESULT)),
    }
    reply = composite.http.post(
        "/api/v1/attestations", json=body, headers=composite.auth("worker-1")
    )
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes(reply, "gpu0") == {"nonce_missing"}
    assert "no 32-byte challenge to bind" in str(reply.json["verdict"]["reasons"])
    record = stored(composite, reply.json["entry"]["index"])
    assert record["devices"][0]["nonce"] is None


def test_devices_go_with_the_evidence_form_only(composite) -> None:
    nonce = composite.challenge()
    body = {
        "attestation_document": base64.b64encode(composite.document(nonce=nonce)).decode(),
        "devices": [device_evidence(composite.gpus[0], nonce, 0)],
        "result_hash": str(ResultHash.of(RESULT)),
    }
    reply = composite.http.post(
        "/api/v1/attestations", json=body, headers=composite.auth("worker-1")
    )
    assert reply.status_code == 400
    assert "devices go with evidence" in reply.json["detail"]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda b: b.update(devices={"kind": "nvidia-gpu"}), "devices must be a list"),
        (lambda b: b.update(devices=[{}] * 17), "devices must be a list of at most 16"),
        (lambda b: b["devices"][0].update(kind="amd-sev-snp"), "devices[0].kind must be one of"),
        (lambda b: b["devices"][0].update(extra=1), "devices[0] must be an object"),
        (lambda b: b["devices"][0].update(data="***"), "devices[0].data is not valid base64"),
        (lambda b: b["devices"][0].update(endorsements=[{"kind": "vcek", "data": "AA=="}]),
         "devices[0].endorsements[0].kind must be one of"),
        (lambda b: b["devices"][0].update(endorsements=[{"kind": "rim", "data": "AA=="}] * 13),
         "devices[0].endorsements must be a list of at most 12"),
        (lambda b: b["evidence"].update(kind="nvidia-gpu"), "evidence.kind must be one of"),
    ],
)  # fmt: skip
def test_malformed_devices_are_refused_before_judging(composite, change, detail) -> None:
    nonce = composite.challenge()
    body = {
        "evidence": encode(cpu_evidence(composite, nonce)),
        "devices": [device_evidence(composite.gpus[0], nonce, 0)],
        "result_hash": str(ResultHash.of(RESULT)),
    }
    change(body)
    reply = composite.http.post(
        "/api/v1/attestations", json=body, headers=composite.auth("worker-1")
    )
    assert reply.status_code == 400, reply.json
    assert reply.json["code"] == "malformed_request"
    assert detail in reply.json["detail"]


def test_an_idempotency_key_covers_the_devices_too(composite) -> None:
    nonce = composite.challenge()
    cpu = cpu_evidence(composite, nonce)
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(composite.gpus)]
    first = submit(composite, cpu, devices, key="job-1")
    again = submit(composite, cpu, devices, key="job-1")
    assert again.json["replayed"]
    assert again.json["entry"] == first.json["entry"]
    other = submit(composite, cpu, devices[:1], key="job-1")
    assert other.status_code == 409, other.json


def test_a_retry_answered_from_the_ledger_completes_no_device(composite) -> None:
    """Review: a replayed or duplicate submission is answered from the stored entry; its
    devices' RIMs are not completed again (keeping attached RIMs, perhaps fetching)."""
    source = composite.runtime.intake.device_collateral
    completed: list[bytes] = []

    class Counting:
        def complete(self, evidence, at):
            completed.append(evidence.data)
            return source.complete(evidence, at)

    composite.runtime.intake.device_collateral = Counting()
    nonce = composite.challenge()
    cpu = cpu_evidence(composite, nonce)
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(composite.gpus)]
    first = submit(composite, cpu, devices, key="job-retry")
    assert first.status_code == 201, first.json
    assert len(completed) == 2
    assert submit(composite, cpu, devices, key="job-retry").json["replayed"]
    assert submit(composite, cpu, devices).json["duplicate"]
    assert len(completed) == 2


def test_rims_not_sent_are_taken_from_the_kept_collateral_and_named_in_the_entry(
    composite,
) -> None:
    # an import by another process is seen once the choice remembered expires (10 s): here
    # at once (tests/cli/test_rim_collateral.py tests the remembering)
    composite.runtime.intake.device_collateral.choice_seconds = 0
    nonce = composite.challenge()
    one, two = composite.gpus
    bare = [encode(g.evidence(gpu_nonce(nonce, ResultDigest.of(RESULT), i))) for i, g in
            enumerate(composite.gpus)]  # fmt: skip
    reply = submit(composite, cpu_evidence(composite, nonce), bare)
    assert codes(reply, "gpu0") == {"rim_missing"}  # nothing kept yet: the verdict says so
    rims = SimulatedRim(one)
    with session_scope(composite.runtime.sessions) as session:
        kept = keep_rims(
            session, [RimDocument(rims.driver()), RimDocument(rims.vbios())], source="import"
        )
    assert kept == 2
    nonce = composite.challenge()
    bare = [encode(g.evidence(gpu_nonce(nonce, ResultDigest.of(RESULT), i))) for i, g in
            enumerate(composite.gpus)]  # fmt: skip
    reply = submit(composite, cpu_evidence(composite, nonce), bare)
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    record = stored(composite, reply.json["entry"]["index"])
    named = {e["sha256"] for e in record["devices"][1]["endorsements"] if e["kind"] == "rim"}
    assert named == {hashlib.sha256(rims.driver()).hexdigest(),
                     hashlib.sha256(rims.vbios()).hexdigest()}  # fmt: skip
    assert two.driver == one.driver


def test_rims_one_device_brought_are_kept_and_complete_the_others(composite) -> None:
    nonce = composite.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(composite.gpus)]
    devices[1]["endorsements"] = [
        e for e in devices[1]["endorsements"] if e["kind"] != "rim"
    ]  # only gpu0 brings its RIMs; gpu1 runs the same firmware
    reply = submit(composite, cpu_evidence(composite, nonce), devices)
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    record = stored(composite, reply.json["entry"]["index"])
    assert [e["kind"] for e in record["devices"][1]["endorsements"]].count("rim") == 2
    with composite.runtime.sessions() as session:
        kept = session.execute(
            text("SELECT count(*) FROM collateral_documents WHERE kind = 'rim'")
        ).scalar_one()
    assert kept == 2


_FUZZ = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=40, deadline=None, suppress_health_check=_FUZZ, derandomize=True)
@given(
    data=st.binary(max_size=600) | st.binary(min_size=3000, max_size=5000),
    flip=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=4),
    kinds=st.lists(st.sampled_from(["device-certificate", "rim", "ocsp"]), max_size=3),
    junk=st.binary(max_size=200),
)
def test_any_device_bytes_are_judged_and_recorded_with_a_reason(
    composite, data, flip, kinds, junk
) -> None:
    nonce = composite.challenge()
    good = device_evidence(composite.gpus[0], nonce, 0)
    report = bytearray(base64.b64decode(good["data"]))
    for at, value in flip:
        report[at % len(report)] = value
    mutated = {**good, "data": base64.b64encode(bytes(report)).decode()}
    arbitrary = {
        "kind": "nvidia-gpu",
        "data": base64.b64encode(data or b"\0").decode(),
        "endorsements": [
            {"kind": kind, "data": base64.b64encode(junk or b"\0").decode()} for kind in kinds
        ],
    }
    reply = submit(composite, cpu_evidence(composite, nonce), [mutated, arbitrary])
    assert reply.status_code == 201, reply.json
    devices = stored(composite, reply.json["entry"]["index"])["devices"]
    assert devices[1]["verdict"] == "contraindicated"
    assert codes(reply, "gpu1")  # a stable code says why
    if flip:
        assert devices[0]["verdict"] in ("affirming", "contraindicated")
    else:
        assert devices[0]["verdict"] == "affirming"


def test_sixteen_devices_failing_every_block_fit_one_entry(composite) -> None:
    """The most devices a submission may carry, each with every measurement wrong: one
    reason per code and device (the first message, and how many more), so the record fits."""
    rims = SimulatedRim(composite.gpus[0])
    with session_scope(composite.runtime.sessions) as session:
        keep_rims(session, [RimDocument(rims.driver()), RimDocument(rims.vbios())], source="import")
    nonce = composite.challenge()
    bad = composite.gpus[0].variant(blocks={n: bytes([n]) * 48 for n in range(1, 60)})
    devices = [
        encode(bad.evidence(gpu_nonce(nonce, ResultDigest.of(RESULT), i))) for i in range(16)
    ]
    reply = submit(composite, cpu_evidence(composite, nonce), devices)
    assert reply.status_code == 201, reply.json
    record = stored(composite, reply.json["entry"]["index"])
    assert len(record["devices"]) == 16
    for index in range(16):
        mine = [r for r in record["reasons"] if r.get("submod") == f"gpu{index}"]
        assert [r["code"] for r in mine] == ["measurement_mismatch"]
        assert "more of this code)" in mine[0]["message"]


def test_a_record_that_would_not_fit_an_entry_is_refused_and_nothing_recorded(
    composite, monkeypatch
) -> None:
    monkeypatch.setattr("attest_ledger.intake.MAX_ENTRY_BYTES", 4000)  # one device is more
    nonce = composite.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(composite.gpus)]
    with composite.runtime.sessions() as session:
        before = session.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
    reply = submit(composite, cpu_evidence(composite, nonce), devices)
    assert reply.status_code == 413, reply.json
    assert reply.json["code"] == "record_too_large"
    with composite.runtime.sessions() as session:
        after = session.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
    assert after == before


def test_a_forged_rim_a_worker_attaches_is_never_handed_to_another_device(composite) -> None:
    """RIMs a worker attaches judge its own device as they came; they are kept for other
    devices only when signed under the RIM roots the service trusts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        forger = SimulatedNvidiaPki.generate(at=NOW)  # a RIM PKI the service does not trust
    nonce = composite.challenge()
    one, two = composite.gpus
    forged = encode(
        one.evidence(gpu_nonce(nonce, ResultDigest.of(RESULT), 0)),
        rims=SimulatedRim(one, pki=forger).endorsements(),
    )
    bare = encode(two.evidence(gpu_nonce(nonce, ResultDigest.of(RESULT), 1)))
    reply = submit(composite, cpu_evidence(composite, nonce), [forged, bare])
    assert reply.status_code == 201, reply.json
    assert codes(reply, "gpu0") & {"rim_chain_invalid", "untrusted_root"}, reply.json["verdict"]
    assert codes(reply, "gpu1") == {"rim_missing"}  # not the forged RIM
    with composite.runtime.sessions() as session:
        kept = session.execute(
            text("SELECT count(*) FROM collateral_documents WHERE kind = 'rim'")
        ).scalar_one()
    assert kept == 0


def test_the_service_adds_only_the_rims_that_fit_a_device(composite) -> None:
    rims = SimulatedRim(composite.gpus[0])
    with session_scope(composite.runtime.sessions) as session:
        keep_rims(session, [RimDocument(rims.driver()), RimDocument(rims.vbios())], source="import")
    nonce = composite.challenge()
    device = device_evidence(composite.gpus[0], nonce, 0)
    chain = [e for e in device["endorsements"] if e["kind"] == "device-certificate"]
    ocsp = {"kind": "ocsp", "data": base64.b64encode(b"an OCSP response").decode()}
    device["endorsements"] = [*chain, *[ocsp] * 6]  # 11 of 12: room for one RIM
    reply = submit(composite, cpu_evidence(composite, nonce), [device])
    assert reply.status_code == 201, reply.json
    assert codes(reply, "gpu0") == {"rim_missing"}  # one RIM added, not an oversize device
    record = stored(composite, reply.json["entry"]["index"])
    assert [e["kind"] for e in record["devices"][0]["endorsements"]].count("rim") == 1
