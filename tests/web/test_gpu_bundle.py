"""Proof bundles of composite verdicts (issue #14): a CPU TEE's evidence (a simulated SEV-SNP
guest, or a Nitro document) with its GPUs' and NVSwitches' reports. Each device's report and
endorsements travel in endorsements/ like any endorsement, the NVIDIA device and RIM roots
the devices were judged against in trust/; both verifiers (the project's and the standalone
one shipped in the bundle) judge every device again, with the nonce each must carry derived
again, then the composition, and agree on every bundle; tampering with what a device verdict
rests on, or a device verdict the evidence does not support, is named by both."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from typing import Any

import pytest
from sqlalchemy import text

from attest_ledger.bundles import verify_bundle as standalone
from attest_ledger.bundles.export import UnknownTrustAnchor, known_trust_anchors
from attest_ledger.clients import create_client
from ledger.append import append, prepare_all
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.entry import NewEntry
from ledger.errors import InvalidEntry
from tests.web.test_bundle import members, repack
from tests.web.test_composite_submissions import (
    GPU_IMAGE,
    IMAGE,
    RESULT,
    cpu_evidence,
    device_evidence,
    gpu,
    submit,
)
from tests.web.test_composite_submissions import composite as composite  # noqa: PLC0414 - a fixture
from tests.web.test_composite_submissions import nvidia_pki as nvidia_pki  # noqa: PLC0414 - a fixture
from tests.web.test_snp_bundle import both, export
from verifier import ResultHash, TrustAnchor

pytestmark = pytest.mark.db

CASES = max(24, int(os.environ.get("ATTEST_LEDGER_FUZZ_CASES", "0")) // 20)
SEED = int(os.environ.get("ATTEST_LEDGER_FUZZ_SEED", "1414"))
#: workers the forged entries name (the ledger keeps one entry per evidence and worker)
FORGERS = [f"forger-{n}" for n in range(CASES)]


def _submitted(reply) -> dict[str, Any]:
    assert reply.status_code == 201, reply.json
    return dict(reply.json)


@pytest.fixture
def ledger(composite):
    """Composite verdicts of every kind in one ledger, checkpointed: by index, what each is."""
    service, made = composite, {}
    with session_scope(service.runtime.sessions) as session:  # whom forged entries name
        for worker in ("idle-worker", *FORGERS):
            if worker != "idle-worker":
                create_client(session, worker, "worker")
            for image in (IMAGE, GPU_IMAGE, "nvswitch"):
                service.runtime.policies.allow(session, worker, image)

    def add(name: str, reply) -> None:
        made[name] = _submitted(reply)["entry"]["index"]

    nonce = service.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(service.gpus)]
    add("affirming", submit(service, cpu_evidence(service, nonce), devices))
    again = service.challenge()  # the same GPU reports beside another CPU evidence
    add("replayed", submit(service, cpu_evidence(service, again), devices))
    nonce = service.challenge("worker-2")  # a worker without a GPU image, with a GPU
    one = [device_evidence(service.gpus[0], nonce, 0)]
    add("no_gpu_image", submit(service, cpu_evidence(service, nonce), one, who="worker-2"))
    nonce = service.challenge("worker-2")  # ... and without: no composition at all
    add("plain", submit(service, cpu_evidence(service, nonce), [], who="worker-2"))
    nonce = service.challenge()
    add("missing", submit(service, cpu_evidence(service, nonce), []))
    nonce = service.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(service.gpus)]
    devices[1]["endorsements"] = [e for e in devices[1]["endorsements"] if e["kind"] != "rim"]
    devices[0]["data"] = base64.b64encode(b"not an SPDM report").decode()
    add("bad_devices", submit(service, cpu_evidence(service, nonce), devices))
    document = service.document(nonce=None)  # a Nitro document carrying no challenge
    body = {
        "evidence": {"kind": "aws-nitro-enclave", "data": base64.b64encode(document).decode()},
        "devices": [device_evidence(service.gpus[0], service.challenge(), 0)],
        "result_hash": str(ResultHash.of(RESULT)),
    }
    add("unbound", service.http.post("/api/v1/attestations", json=body,
                                     headers=service.auth("worker-1")))  # fmt: skip
    with session_scope(service.runtime.sessions) as session:
        service.runtime.policies.set_scheme_options(session, "nvidia-gpu", min_switches=1)
    switch = gpu(service.gpus[0].pki, "LS10")
    nonce = service.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate([*service.gpus, switch])]
    add("with_switch", submit(service, cpu_evidence(service, nonce), devices))
    nonce = service.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(service.gpus)]
    add("no_switch", submit(service, cpu_evidence(service, nonce), devices))
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)
    service.made = made
    return service


def _record(service, index: int) -> dict[str, Any]:
    with service.runtime.sessions() as session:
        data = session.execute(
            text("SELECT data FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).scalar_one()
    return dict(json.loads(bytes(data)))


def _codes(record: dict[str, Any], submod: str | None) -> set[str]:
    return {r["code"] for r in record["reasons"] if r.get("submod") == submod}


def test_what_the_ledger_holds(ledger) -> None:
    """The fixture's verdicts are those the service gives (so the bundle tests below judge
    every kind of composite again)."""
    record = {name: _record(ledger, index) for name, index in ledger.made.items()}
    assert record["affirming"]["verdict"] == "affirming"
    assert _codes(record["replayed"], "gpu0") == {"nonce_mismatch"}
    assert _codes(record["no_gpu_image"], "gpu0") == {"no_reference_values"}
    assert "devices" not in record["plain"]
    assert _codes(record["missing"], "composite") == {"devices_missing"}
    assert record["missing"]["devices"] == []
    assert _codes(record["bad_devices"], "gpu0") == {"malformed"}
    # gpu1 came without RIMs: the service took them from the RIMs kept (earlier devices
    # brought them), named them in the entry, and the bundle carries them
    assert _codes(record["bad_devices"], "gpu1") == set()
    completed = record["bad_devices"]["devices"][1]["endorsements"]
    assert [e["kind"] for e in completed].count("rim") == 2
    assert _codes(record["unbound"], "gpu0") == {"nonce_missing"}
    assert record["with_switch"]["verdict"] == "affirming"
    assert [d["submod"] for d in record["with_switch"]["devices"]] == ["gpu0", "gpu1", "switch2"]
    assert _codes(record["no_switch"], "composite") == {"devices_missing"}


def test_a_composite_bundle_is_judged_again_by_both_verifiers(ledger) -> None:
    archive = export(ledger)
    report, other = both(ledger, archive)
    assert report.ok, report.failures
    assert not other.failures, other.failures
    assert report.rejudged == other.rejudged == len(ledger.made)
    files = dict(members(archive))
    manifest = json.loads(files["manifest.json"])
    pki = ledger.gpus[0].pki
    for root in (pki.device_root.der, pki.rim_root.der):  # the devices' roots travel too
        assert hashlib.sha256(root).hexdigest() in manifest["trust_anchors"]
    for name in ledger.made:
        record = _record(ledger, ledger.made[name])
        for device in record.get("devices", []):  # each report and endorsement, by digest
            for digest in (
                device["evidence_sha256"],
                *(e["sha256"] for e in device["endorsements"]),
            ):
                assert digest in manifest["endorsements"]
                assert hashlib.sha256(files[f"endorsements/{digest}.der"]).hexdigest() == digest
    assert "devices" in files["README.txt"].decode()


def test_the_devices_roots_must_be_given_to_export(ledger) -> None:
    with pytest.raises(UnknownTrustAnchor) as raised:
        export(ledger, anchors=known_trust_anchors(*[
            a for a in ledger.runtime.trust_anchors
            if a.fingerprint != hashlib.sha256(ledger.gpus[0].pki.rim_root.der).hexdigest()
        ]))  # fmt: skip
    assert raised.value.fingerprints == (
        hashlib.sha256(ledger.gpus[0].pki.rim_root.der).hexdigest(),
    )


def _device_files(ledger, archive: bytes, name: str) -> tuple[list[tuple[str, bytes]], str]:
    files = members(archive)
    report = _record(ledger, ledger.made[name])["devices"][0]["evidence_sha256"]
    return files, f"endorsements/{report}.der"


def test_a_tampered_or_dropped_device_report_is_named_by_both(ledger) -> None:
    files, blob = _device_files(ledger, export(ledger), "with_switch")
    changed = [(n, d[:-1] + bytes([d[-1] ^ 1]) if n == blob else d) for n, d in files]
    report, _ = both(ledger, repack(changed))
    failed = {item for item, _ in report.failures}
    assert blob in failed
    assert f"entries/{ledger.made['with_switch']:012d}" in failed  # its report is not there
    dropped = [(n, d) for n, d in files if n != blob]
    report, _ = both(ledger, repack(dropped))
    failed = {item for item, _ in report.failures}
    assert {"endorsements/", f"entries/{ledger.made['with_switch']:012d}"} <= failed


def test_a_device_rim_swapped_for_another_is_named_by_both(ledger) -> None:
    """The RIM a device was judged with, replaced in the bundle by the same bytes under its
    name but with another RIM's content: its digest fails; and the entry's device cannot be
    judged without it."""
    files = members(export(ledger))
    record = _record(ledger, ledger.made["affirming"])
    rim = next(e["sha256"] for e in record["devices"][0]["endorsements"] if e["kind"] == "rim")
    name = f"endorsements/{rim}.der"
    swapped = [(n, d.replace(b"<", b"< ", 1) if n == name else d) for n, d in files]
    report, _ = both(ledger, repack(swapped))
    failed = {item for item, _ in report.failures}
    assert name in failed
    assert f"entries/{ledger.made['affirming']:012d}" in failed


def test_an_edited_device_verdict_in_the_bundle_fails_its_proof(ledger) -> None:
    index = ledger.made["replayed"]
    files = members(export(ledger))
    entry = f"entries/{index:012d}/entry.json"
    record = json.loads(dict(files)[entry])
    record["devices"][0]["verdict"] = "affirming"
    forged = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    report, _ = both(ledger, repack([(n, forged if n == entry else d) for n, d in files]))
    failed = {item for item, _ in report.failures}
    assert f"entries/{index:012d}/proof.tlog-proof" in failed


def _forge(ledger, name: str, change, worker: str = "idle-worker") -> int:
    """Append (as a rogue operator could) a copy of the entry ``name`` for another worker,
    changed by ``change``, without its EAR (as before EARs: tests/web/test_ear.py forges
    those): the log's signature and proofs are sound, the evidence does not support it."""
    index = ledger.made[name]
    with ledger.runtime.sessions() as session:
        evidence = bytes(session.execute(
            text("SELECT data FROM ledger_evidence WHERE idx = :i"), {"i": index}
        ).scalar_one())  # fmt: skip
        kept = {
            bytes(row.sha256).hex(): bytes(row.data)
            for row in session.execute(text("SELECT sha256, data FROM ledger_endorsements"))
        }
    record = _record(ledger, index)
    endorsements = [(e["kind"], kept[e["sha256"]]) for e in record.pop("endorsements", [])]
    record.pop("evidence_sha256")
    record.pop("ear")
    blobs = [
        kept[digest]
        for device in record.get("devices", [])
        for digest in (device["evidence_sha256"], *(e["sha256"] for e in device["endorsements"]))
    ]
    forged = change({**record, "worker": worker}, lambda n: _record(ledger, ledger.made[n]))
    with session_scope(ledger.runtime.sessions) as session:
        entry = NewEntry.from_record(
            forged, evidence=evidence, endorsements=endorsements, blobs=blobs
        )
        appended = append(session, prepare_all([entry]))
    return appended[0].index


def _unsupported(record: dict[str, Any], _: Any) -> dict[str, Any]:
    """The replayed GPUs' verdicts said affirming, and the composed verdict with them."""
    for device in record["devices"]:
        device["verdict"] = "affirming"
    record["reasons"] = [r for r in record["reasons"] if "submod" not in r]
    record["verdict"] = "affirming"
    return record


def _other_nonce(record: dict[str, Any], _: Any) -> dict[str, Any]:
    record["devices"][1]["nonce"] = record["devices"][0]["nonce"]
    return record


def _composed_better(record: dict[str, Any], _: Any) -> dict[str, Any]:
    record["verdict"] = "affirming"  # the devices are missing; the composite says so
    record["reasons"] = [r for r in record["reasons"] if r.get("submod") != "composite"]
    return record


def _not_composed(record: dict[str, Any], _: Any) -> dict[str, Any]:
    """A worker whose policy requires GPUs, its entry without its devices composed."""
    record["verdict"] = record.pop("cpu_verdict")
    record.pop("devices")
    record["reasons"] = [r for r in record["reasons"] if "submod" not in r]
    return record


def _switch_called_a_gpu(record: dict[str, Any], _: Any) -> dict[str, Any]:
    record["devices"][2]["submod"] = "gpu2"
    record["reasons"] = [r for r in record["reasons"] if "submod" not in r]
    return record


def _rebound(record: dict[str, Any], entry: Any) -> dict[str, Any]:
    """The replayed GPU reports made to look bound: the entry names the challenge they were
    made for (another CPU evidence's), their nonces and verdicts as they were there."""
    original = entry("affirming")
    record["nonce"] = original["nonce"]
    record["devices"] = original["devices"]
    record["reasons"] = [r for r in record["reasons"] if "submod" not in r]
    record["verdict"] = "affirming"
    return record


@pytest.mark.parametrize(
    ("name", "change", "said"),
    [
        ("replayed", _unsupported, "re-verified as contraindicated (nonce_mismatch)"),
        ("affirming", _other_nonce, "its nonce is"),
        ("missing", _composed_better, "fall short by devices_missing"),
        ("missing", _not_composed, "its policy requires devices"),
        ("with_switch", _switch_called_a_gpu, "judged again it is switch2"),
        ("replayed", _rebound, "not the challenge its CPU evidence carries"),
    ],
)
def test_a_device_verdict_the_evidence_does_not_support_is_named_by_both(
    ledger, name, change, said
) -> None:
    forged = _forge(ledger, name, change)
    with session_scope(ledger.runtime.sessions) as session:
        publish_checkpoint(session, ledger.runtime.signer)
    report, other = both(ledger, export(ledger))
    item = f"entries/{forged:012d}"
    assert {i for i, _ in report.failures} == {item}, report.failures
    assert any(said in message for _, message in report.failures), report.failures
    assert {i for i, _ in other.failures} == {item}, other.failures


def test_the_standalone_gpu_nonce_is_the_services() -> None:
    from enclave_worker.binding import ResultDigest
    from enclave_worker.binding import gpu_nonce as worker_nonce
    from verifier.binding import gpu_nonce

    for n in range(8):
        challenge, result = hashlib.sha256(b"c%d" % n).digest(), ResultHash.of(b"r%d" % n)
        binding = standalone.binding_of(str(result))
        assert binding is not None
        assert standalone.gpu_nonce(challenge, binding, n * 31) == gpu_nonce(
            challenge, result, n * 31
        ) == worker_nonce(challenge, ResultDigest.of(b"r%d" % n), n * 31)  # fmt: skip


def test_the_standalone_reads_nvidia_images_and_settings_of_a_recorded_policy() -> None:
    snapshot: dict[str, Any] = {
        "images": [
            {
                "name": "h100",
                "kind": "nvidia-gpu",
                "reference": {
                    "arch": "hopper",
                    "driver_versions": ["590.12"],
                    "vbios_versions": ["96.00.A5.00.01"],
                },
            }
        ],
        "allow_debug": False,
        "max_age_seconds": None,
        "clock_skew_seconds": 30,
        "workers": {"w": ["h100"]},
        "schemes": {"nvidia-gpu": {"min_switches": 2, "feature_flags": ["PPCIE"]}},
    }
    assert standalone.policy_problem(snapshot) is None
    policy = standalone.worker_policy(snapshot, "w", "nvidia-gpu")
    assert policy is not None
    read = standalone.nvidia_policy(policy)
    assert read["images"] == [{"name": "h100", "arch": "HOPPER", "driver_versions": ["590.12"],
                               "vbios_versions": ["96.00.a5.00.01"]}]  # fmt: skip
    assert (read["min_gpus"], read["min_switches"], read["feature_flags"]) == (1, 2, {"PPCIE"})
    assert standalone.worker_policy(snapshot, "other", "nvidia-gpu") is None
    assert standalone.composition(policy, ["HOPPER", "LS10"]) == {"devices_missing"}
    assert standalone.composition(policy, ["HOPPER", "LS10", "LS10"]) == set()
    assert standalone.composition(None, []) == set()
    for settings in ({"min_gpus": 17}, {"min_gpus": True}, {"require_rims": ["kernel"]},
                     {"feature_flags": [{}]}, {"colour": 1}):  # fmt: skip
        bad = {**snapshot, "schemes": {"nvidia-gpu": settings}}
        assert standalone.policy_problem(bad) is not None, settings
    for reference in ({"arch": "AMPERE", "vbios_versions": ["1"]}, {"arch": "LS10"},
                      {"arch": "LS10", "vbios_versions": ["1"], "driver_versions": ["1"]},
                      {"arch": "HOPPER", "vbios_versions": ["1"], "extra": 1}):  # fmt: skip
        bad = {**snapshot, "images": [{"name": "h100", "kind": "nvidia-gpu",
                                       "reference": reference}]}  # fmt: skip
        assert standalone.policy_problem(bad) is not None, reference


def test_the_standalone_ear_comparison_covers_the_devices() -> None:
    from attest_ledger.ear import build_ear, ear_disagreements

    record = {
        "verdict": "contraindicated", "cpu_verdict": "affirming", "evidence_sha256": "ab" * 32,
        "result_hash": "sha256:" + "00" * 32, "worker": "w", "policy": "worker:w",
        "verified_at": "2026-01-01T00:00:00.000Z", "evidence_kind": "amd-sev-snp",
        "reasons": [{"code": "nonce_mismatch", "message": "", "submod": "gpu0"}],
        "devices": [{"submod": "gpu0", "verdict": "contraindicated", "evidence_kind": "nvidia-gpu",
                     "evidence_sha256": "cd" * 32, "policy": "worker:w"}],
    }  # fmt: skip
    claims = build_ear(record, evidence_sha256="ab" * 32, trustworthiness_vector={})
    assert standalone.ear_differs(claims, record) == [] == ear_disagreements(claims, record)
    for change in (
        {"cpu_verdict": "warning"},
        {"devices": [{**record["devices"][0], "verdict": "affirming"}]},
        {"devices": [{**record["devices"][0], "evidence_sha256": "ef" * 32}]},
        {"devices": [{**record["devices"][0], "policy": None}]},
        {"devices": [{**record["devices"][0], "submod": "gpu1"}]},
        {"devices": []},
    ):
        changed = {**record, **change}
        assert standalone.ear_differs(claims, changed), change
        assert len(standalone.ear_differs(claims, changed)) == len(
            ear_disagreements(claims, changed)
        ), change


def test_device_roots_split_by_where_the_chain_ends(nvidia_pki) -> None:
    device = (nvidia_pki.device_root.certificate, nvidia_pki.device_root.der)
    rim = (nvidia_pki.rim_root.certificate, nvidia_pki.rim_root.der)
    evidence = gpu(nvidia_pki).evidence(bytes(32))
    chain = [e.data for e in evidence.endorsements if e.kind == "device-certificate"]
    assert standalone.device_roots([chain], [rim, device]) == ([device], [rim])
    assert standalone.device_roots([chain[:-1]], [rim, device]) == ([device], [rim])
    assert standalone.device_roots([[]], [rim, device]) == ([rim, device], [rim, device])
    TrustAnchor.from_der(device[1], name="device root")  # an anchor either verifier takes


def test_a_bundle_verifier_reads_an_entry_with_many_device_endorsements(ledger) -> None:
    """The most blobs an entry may name (every device's report and twelve endorsements):
    neither verifier trips over a limit of its own before judging."""
    index = ledger.made["with_switch"]
    record = _record(ledger, index)
    assert sum(1 + len(d["endorsements"]) for d in record["devices"]) > standalone.MAX_ENDORSEMENTS
    report, other = both(ledger, export(ledger))
    assert report.ok, report.failures
    assert not other.failures


_COMPOSITES = ["affirming", "replayed", "no_gpu_image", "missing", "bad_devices", "unbound",
               "with_switch", "no_switch"]  # fmt: skip


def _mutate_device(device: dict[str, Any], rng: random.Random, others: list[dict]) -> None:
    key = rng.choice(["verdict", "nonce", "submod", "index", "evidence_kind", "trust_anchors",
                      "endorsements", "evidence_sha256", "policy", "claims"])  # fmt: skip
    if key == "trust_anchors":
        anchors = list(device["trust_anchors"])
        # (an anchor the exporter does not hold is refused at export: UnknownTrustAnchor)
        device[key] = rng.choice([anchors[::-1], anchors[:1], [], "x", [5], anchors * 2])
    elif key == "endorsements":
        named = list(device["endorsements"])
        move = rng.randrange(4)
        if move == 0 and named:
            del named[rng.randrange(len(named))]
        elif move == 1:
            named.reverse()
        elif move == 2 and named:
            at = rng.randrange(len(named))
            kinds = ["vcek", "rim", "device-certificate", "ocsp", "nope", "ak-certificate"]
            named[at] = {**named[at], "kind": rng.choice(kinds)}
        else:
            named = [*named, *named[:1]]
        device[key] = named
    elif key == "evidence_sha256":
        device[key] = rng.choice([o["evidence_sha256"] for o in others])
    else:
        device[key] = rng.choice(
            {"verdict": ["affirming", "warning", "contraindicated", None, 5],
             "nonce": [None, "00" * 32, "zz", 5, device.get("nonce")],
             "submod": ["gpu0", "gpu1", "switch2", "composite", None],
             "index": [0, 1, 2, 5, None, "0", True],
             "evidence_kind": ["nvidia-gpu", "amd-sev-snp", None],
             "policy": [None, "worker:x"], "claims": [None, {}]}[key]
        )  # fmt: skip


def _mutate(record: dict[str, Any], rng: random.Random, entry: Any) -> dict[str, Any]:
    """``record`` (a composite) changed in one to three places, as a rogue operator could."""
    record = json.loads(json.dumps(record))
    others = [d for name in ("affirming", "with_switch") for d in entry(name)["devices"]]
    for _ in range(rng.choice([1, 1, 2, 3])):
        move = rng.randrange(8)
        devices = record.get("devices")
        if move <= 2 and isinstance(devices, list) and devices:
            _mutate_device(rng.choice(devices), rng, others)
        elif move == 3 and isinstance(devices, list):
            choice = rng.randrange(4)
            if choice == 0 and devices:
                del devices[rng.randrange(len(devices))]
            elif choice == 1:
                devices.reverse()
            elif choice == 2 and devices:
                devices.append(json.loads(json.dumps(rng.choice(devices))))
            else:
                devices.append(json.loads(json.dumps(rng.choice(others))))
        elif move == 4:
            reasons = record["reasons"]
            if reasons and rng.random() < 0.5:
                del reasons[rng.randrange(len(reasons))]
            else:
                reasons.append({"code": rng.choice(["nonce_mismatch", "devices_missing", "x"]),
                                "message": "",
                                "submod": rng.choice(["gpu0", "gpu1", "composite"])})  # fmt: skip
        elif move == 5:
            record[rng.choice(["cpu_verdict", "verdict"])] = rng.choice(
                ["affirming", "warning", "contraindicated", "x", None]
            )
        elif move == 6:
            record["nonce"] = rng.choice([None, "00" * 32, entry("affirming")["nonce"], "zz"])
        else:
            record.pop(rng.choice(["devices", "cpu_verdict"]), None)
    return record


def test_both_verifiers_agree_on_forged_composite_entries(ledger) -> None:
    """Differential fuzzing of what a composite entry says: entries forged (appended as a
    rogue operator could: proven, without EARs) from the service's composites with their
    devices' fields, reasons, verdicts and nonce changed, devices dropped, reordered or
    added. Both verifiers must name the same failing entries and never raise; most forgeries
    fail. ``ATTEST_LEDGER_FUZZ_CASES`` runs more, ``ATTEST_LEDGER_FUZZ_SEED`` others."""
    rng = random.Random(SEED)
    forged = {}
    for worker in FORGERS:
        name = rng.choice(_COMPOSITES)
        change = lambda record, entry: _mutate(record, rng, entry)  # noqa: E731 - one use
        try:
            forged[_forge(ledger, name, change, worker)] = name
        except InvalidEntry:  # the ledger refuses an entry of the wrong shape: not forged
            continue
    with session_scope(ledger.runtime.sessions) as session:
        publish_checkpoint(session, ledger.runtime.signer)
    report, other = both(ledger, export(ledger))
    failed = {item for item, _ in report.failures}
    assert failed == {item for item, _ in other.failures}
    entries = {"/".join(item.split("/")[:2]) for item in failed}
    assert entries <= {f"entries/{index:012d}" for index in forged}, failed
    assert len(entries) >= len(forged) // 2, (len(entries), len(forged))


_TARGETS = ("trust/", "endorsements/", "policies/")


def test_both_verifiers_name_the_same_items_on_mutated_composite_bundles(ledger) -> None:
    """Differential fuzzing of a composite bundle's members: the devices' reports, chains
    and RIMs in endorsements/, the NVIDIA roots in trust/, the policy revisions, changed a
    bit, cut, dropped, duplicated or swapped with another member's bytes. Both verifiers
    must name the same failing items and never raise."""
    from tests.web.test_bundle import _ours, _standalone

    files = members(export(ledger))
    targets = [n for n, _ in files if n.startswith(_TARGETS)]
    rng = random.Random(SEED + 1)
    for n in range(CASES // 2):
        mutated = list(files)
        for _ in range(rng.choice([1, 1, 2])):
            name = rng.choice(targets)
            at = next((i for i, (m, _) in enumerate(mutated) if m == name), None)
            if at is None:
                continue
            data = mutated[at][1]
            move = rng.randrange(5)
            if move == 0 and data:
                changed = bytearray(data)
                changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
                mutated[at] = (name, bytes(changed))
            elif move == 1:
                mutated[at] = (name, data[: rng.randrange(len(data) + 1)])
            elif move == 2:
                del mutated[at]
            elif move == 3:
                mutated.insert(at, (name, data))
            else:
                mutated[at] = (name, rng.choice(files)[1])
        archive = repack(mutated)
        ours, theirs = _ours(ledger, archive), _standalone(ledger, archive)
        assert sorted({i for i, _ in ours}) == sorted({i for i, _ in theirs}), (n, ours, theirs)


def test_the_shipped_script_alone_passes_a_composite_bundle(ledger, tmp_path) -> None:
    """The standalone verifier as a regulator runs it: the script from the bundle, isolated
    from the project (``-I``), on the composite bundle; and on one with a device's report
    changed, naming it."""
    import subprocess
    import sys

    archive = export(ledger)
    files = members(archive)
    script = tmp_path / "verify_bundle.py"
    script.write_bytes(dict(files)["verify_bundle.py"])
    good = tmp_path / "composite.tar.gz"
    good.write_bytes(archive)
    key = str(ledger.runtime.log_key)
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(good), "--log-key", key],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(ledger.made)} attestations re-verified" in done.stdout
    _, blob = _device_files(ledger, archive, "affirming")
    bad = tmp_path / "changed.tar.gz"
    bad.write_bytes(repack([(n, d[:-1] + bytes([d[-1] ^ 1]) if n == blob else d)
                            for n, d in files]))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(bad), "--log-key", key],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"FAIL {blob}" in done.stdout
    assert f"FAIL entries/{ledger.made['affirming']:012d}" in done.stdout
