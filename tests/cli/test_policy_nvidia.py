"""``attest-ledger policy`` for NVIDIA GPUs and NVSwitches (issue #14) on a real database:
images from NVIDIA's real evidence (the versions tests/fixtures/nvidia/README.shared.md gives
for each sample), or by hand; every setting; every refusal, with its message and exit code 2.
The images taken from each sample are then the ones the verifier matches that sample with."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from attest_ledger import database
from attest_ledger.cli.policy import nvidia_reference
from attest_ledger.policy_store import PolicyStore
from attest_ledger.settings import Settings
from ledger.db import make_session_factory
from ledger.reads import get_entry
from tests.cli.support import run
from tests.verifier.nvidia.support import AT, NV
from verifier import Evidence, EvidenceKind, PolicyViolation, VerifierError
from verifier.nvidia import NvidiaPolicy, NvidiaVerifier, from_json

pytestmark = pytest.mark.db

REPORT = str(NV / "nv_sdk_hopperAttestationReport.txt")
CHAIN = str(NV / "nv_sdk_hopperCertChain.txt")
HOPPER = str(NV / "nv_sdk_hopper_evidence.json")
BLACKWELL = str(NV / "nv_veraison_blackwell-evidence.json")
SWITCH = str(NV / "nv_sdk_switch_evidence_ls10.json")
#: What README.shared.md says each sample reports (the arch: its leaf's chip).
EXPECTED = {
    "h100": (HOPPER, {"arch": "HOPPER", "driver_versions": ["590.12"],
                      "vbios_versions": ["96.00.a5.00.01"]}),
    "gb100": (BLACKWELL, {"arch": "BLACKWELL", "driver_versions": ["590.48.01"],
                          "vbios_versions": ["97.00.e4.00.11"]}),
    "ls10": (SWITCH, {"arch": "LS10", "vbios_versions": ["96.10.55.00.01"]}),
}  # fmt: skip
ADD = ("policy", "image", "add")
SET = ("policy", "set", "--type", "nvidia-gpu")


def shown(capsys, settings) -> dict:
    code, out, _ = run(capsys, settings, "policy", "show")
    assert code == 0
    return json.loads(out)


def recorded(err: str) -> int:
    found = re.search(r"recorded as ledger entry (\d+)", err)
    assert found is not None, err
    return int(found.group(1))


def ledger_entry(settings: Settings, index: int) -> dict:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            return json.loads(get_entry(session, index).data)
    finally:
        engine.dispose()


def worker_policy(settings: Settings, worker: str) -> NvidiaPolicy:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            policy = PolicyStore().current(session).for_worker(worker, "nvidia-gpu")
    finally:
        engine.dispose()
    assert isinstance(policy, NvidiaPolicy)
    return policy


def test_images_from_the_real_evidence_are_the_versions_it_reports(capsys, settings) -> None:
    run(capsys, settings, "workers", "add", "w1")
    entries = []
    for name, (path, _) in EXPECTED.items():
        code, _, err = run(
            capsys, settings, *ADD, name, "--type", "nvidia-gpu", "--from-evidence", path
        )
        assert code == 0, err
        assert "(read, not verified)" in err
        entries.append(recorded(err))
        assert run(capsys, settings, "policy", "allow", "w1", name)[0] == 0
    assert entries == sorted(entries)
    # the hex report, its arch from the leaf of its chain
    code, _, err = run(
        capsys, settings, *ADD, "h100-535", "--type", "nvidia-gpu",
        "--from-evidence", REPORT, "--chain", CHAIN,
    )  # fmt: skip
    assert code == 0, err
    assert "1 HOPPER device(s) (read, not verified): driver 535.86.09; VBIOS 96.00.5e.00.01" in err
    images = {image["name"]: image for image in shown(capsys, settings)["images"]}
    for name, (_, reference) in EXPECTED.items():
        assert images[name] == {"name": name, "kind": "nvidia-gpu", "reference": reference}
    assert images["h100-535"]["reference"] == {
        "arch": "HOPPER", "driver_versions": ["535.86.09"], "vbios_versions": ["96.00.5e.00.01"],
    }  # fmt: skip

    # the worker's device policy matches each sample by these images (no RIM given here)
    assert run(capsys, settings, *SET, "--require-rims", "none")[0] == 0
    policy = worker_policy(settings, "w1")
    scheme = NvidiaVerifier()
    for name, (path, _) in EXPECTED.items():
        ((report, chain, _, nonce),) = from_json(Path(path).read_bytes())
        result = scheme.verify(
            Evidence(EvidenceKind.NVIDIA_GPU, report, chain), at=AT, policy=policy, nonce=nonce
        )
        # matched by its image; no RIM compared, so the executables (and status) only warn
        assert (result.matched_reference, result.violations) == (name, ()), name
        assert result.trustworthiness["configuration"] == "affirming"
        assert result.status == "warning"
    # and a worker with another arch's image only: the sample matches none
    run(capsys, settings, "workers", "add", "w2")
    assert run(capsys, settings, "policy", "allow", "w2", "gb100")[0] == 0
    ((report, chain, _, nonce),) = from_json(Path(HOPPER).read_bytes())
    with pytest.raises(PolicyViolation):
        scheme.verify(
            Evidence(EvidenceKind.NVIDIA_GPU, report, chain),
            at=AT,
            policy=worker_policy(settings, "w2"),
            nonce=nonce,
        )


def test_an_image_by_hand_and_versions_beside_the_evidence(capsys, settings) -> None:
    code, _, err = run(
        capsys, settings, *ADD, "h100", "--type", "nvidia-gpu", "--arch", "hopper",
        "--driver-version", "590.12", "--driver-version", "535.86.09",
        "--vbios-version", "96.00.A5.00.01", "--vbios-version", "96.00.a5.00.01",
    )  # fmt: skip
    assert code == 0, err
    recorded(err)
    code, _, err = run(
        capsys, settings, *ADD, "ls10", "--type", "nvidia-gpu", "--from-evidence", SWITCH,
        "--vbios-version", "96.10.60.00.01",
    )  # fmt: skip
    assert code == 0, err
    images = {image["name"]: image for image in shown(capsys, settings)["images"]}
    assert images["h100"]["reference"] == {
        "arch": "HOPPER",
        "driver_versions": ["535.86.09", "590.12"],
        "vbios_versions": ["96.00.a5.00.01"],
    }
    assert images["ls10"]["reference"] == {
        "arch": "LS10", "vbios_versions": ["96.10.55.00.01", "96.10.60.00.01"],
    }  # fmt: skip


def test_one_arch_taken_from_evidence_of_several(capsys, settings, tmp_path) -> None:
    both = tmp_path / "gpu-and-switch.json"
    both.write_text(
        json.dumps([*json.loads(Path(HOPPER).read_text()), *json.loads(Path(SWITCH).read_text())])
    )
    nvidia = (*ADD, "x", "--type", "nvidia-gpu", "--from-evidence", str(both))
    code, _, err = run(capsys, settings, *nvidia)
    assert code == 2
    assert "devices of several architectures (HOPPER, LS10)" in err
    assert run(capsys, settings, *nvidia, "--arch", "LS10")[0] == 0
    images = shown(capsys, settings)["images"]
    assert images == [{"name": "x", "kind": "nvidia-gpu", "reference": EXPECTED["ls10"][1]}]


def test_settings(capsys, settings) -> None:
    assert shown(capsys, settings).get("schemes", {}).get("nvidia-gpu") is None
    code, _, err = run(
        capsys, settings, *SET, "--require-rims", "vbios,vbios", "--feature-flags",
        "PPCIE,SPT,PPCIE", "--min-gpus", "8", "--min-switches", "4",
    )  # fmt: skip
    assert code == 0, err
    index = recorded(err)
    assert shown(capsys, settings)["schemes"]["nvidia-gpu"] == {
        "require_rims": ["vbios"], "feature_flags": ["PPCIE", "SPT"],
        "min_gpus": 8, "min_switches": 4,
    }  # fmt: skip
    # the change is a ledger entry holding the complete policy after it
    entry = ledger_entry(settings, index)
    assert entry["kind"] == "policy"
    assert entry["change"] == {
        "action": "options_set", "kind": "nvidia-gpu", "require_rims": ["vbios"],
        "feature_flags": ["PPCIE", "SPT"], "min_gpus": 8, "min_switches": 4,
    }  # fmt: skip
    assert entry["policy"]["schemes"]["nvidia-gpu"]["min_switches"] == 4
    code, _, err = run(
        capsys, settings, *SET, "--feature-flags", "any", "--require-rims", "driver,vbios",
        "--min-gpus", "0",
    )  # fmt: skip
    assert code == 0, err
    assert shown(capsys, settings)["schemes"]["nvidia-gpu"] == {
        "require_rims": ["driver", "vbios"], "feature_flags": None,
        "min_gpus": 0, "min_switches": 4,
    }  # fmt: skip
    assert run(capsys, settings, *SET, "--require-rims", "none")[0] == 0
    assert shown(capsys, settings)["schemes"]["nvidia-gpu"]["require_rims"] == []


def test_refusals(capsys, settings, tmp_path) -> None:
    nvidia = (*ADD, "x", "--type", "nvidia-gpu")
    vbios = ("--vbios-version", "96.00.a5.00.01")
    unreadable = tmp_path / "garbage.json"
    unreadable.write_text('[{"arch": "HOPPER"}]')
    assert run(capsys, settings, *nvidia, "--arch", "LS10", *vbios)[0] == 0
    for argv, message in (
        (nvidia, "an NVIDIA image needs --arch HOPPER|BLACKWELL|LS10"),
        ((*nvidia, "--arch", "AMPERE", *vbios), "arch must be one of HOPPER, BLACKWELL, LS10"),
        (
            (*nvidia, "--arch", "LS10", "--driver-version", "590.12", *vbios),
            "LS10 devices report no driver version",
        ),
        ((*nvidia, "--arch", "HOPPER", *vbios), "a HOPPER image must list driver_versions"),
        ((*nvidia, "--arch", "LS10"), "vbios_versions must not be empty"),
        ((*nvidia, "--arch", "LS10", "--vbios-version", "9" * 41), "versions must be a list"),
        ((*nvidia, "--arch", "LS10", *vbios), "exists"),
        ((*nvidia, "--arch", "HOPPER", "--chain", CHAIN), "--chain is for --from-evidence"),
        ((*nvidia, "--from-evidence", HOPPER, "--chain", CHAIN), "carries each device's"),
        ((*nvidia, "--from-evidence", REPORT), "its arch is unknown; give the device's --chain"),
        (
            (*nvidia, "--from-evidence", REPORT, "--chain", CHAIN, "--arch", "BLACKWELL"),
            "no BLACKWELL device in it (found HOPPER)",
        ),
        ((*nvidia, "--from-evidence", str(unreadable)), "must be strings"),
        ((*nvidia, "--from-evidence", str(tmp_path / "missing")), "cannot read"),
        ((*nvidia, "--from-evidence", REPORT, "--chain", HOPPER), "not a certificate"),
        ((*nvidia, "--pcr", "0=" + "00" * 48), "--pcr not for --type nvidia-gpu"),
        ((*nvidia, "--measurement", "ab" * 48), "--measurement not for --type nvidia-gpu"),
        ((*ADD, "y", "--type", "amd-sev-snp", "--arch", "HOPPER"), "--arch not for"),
        ((*ADD, "y", "--from-evidence", HOPPER), "--from-evidence not for --type aws-nitro"),
        ((*SET, "--min-gpus", "-1"), "min_gpus and min_switches are whole numbers, 0 to 16"),
        ((*SET, "--min-switches", "17"), "min_gpus and min_switches are whole numbers"),
        ((*SET, "--feature-flags", "TURBO"), "feature_flags are SPT, MPT or PPCIE"),
        ((*SET, "--feature-flags", "spt"), "feature_flags are SPT, MPT or PPCIE"),
        ((*SET, "--feature-flags", "none"), "--feature-flags: name SPT, MPT and/or PPCIE"),
        ((*SET, "--require-rims", "driver,firmware"), "require_rims are driver or vbios"),
        (SET, "nothing to change"),
        ((*SET, "--allow-debug"), "--allow-debug not for --type nvidia-gpu"),
        ((*SET, "--skew", "5"), "--skew not for --type nvidia-gpu"),
        ((*SET, "--ak-paths", "gcp"), "--ak-paths not for --type nvidia-gpu"),
        (("policy", "set", "--min-gpus", "2"), "--min-gpus not for --type aws-nitro-enclave"),
        (
            ("policy", "set", "--type", "tpm2-quote", "--require-rims", "none"),
            "--require-rims not for --type tpm2-quote",
        ),
        (
            ("policy", "set", "--type", "amd-sev-snp", "--feature-flags", "any"),
            "--feature-flags not for --type amd-sev-snp",
        ),
    ):
        code, _, err = run(capsys, settings, *argv)
        assert code == 2, (argv, err)
        assert message in err, (argv, err)
    with pytest.raises(SystemExit) as exited:  # argparse's own refusal: usage, code 2
        run(capsys, settings, *SET, "--min-gpus", "two")
    assert exited.value.code == 2
    assert "--min-gpus: invalid int value: 'two'" in capsys.readouterr().err
    # nothing refused was recorded
    assert shown(capsys, settings).get("schemes", {}).get("nvidia-gpu") is None


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=4096),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=40),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["arch", "certificate", "evidence", "nonce", "x"]), inner
                )
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps([value]).encode()),
    ),
    st.sampled_from([None, "HOPPER", "LS10"]),
)
def test_reading_evidence_raises_only_our_errors(data: bytes, arch: str | None) -> None:
    with contextlib.suppress(ValueError, VerifierError):
        nvidia_reference(data, chain=(), arch=arch)


def test_the_store_keeps_an_nvidia_image_in_one_form(capsys, settings) -> None:
    """An arch as NVIDIA writes it, versions lowercased (as the verifier compares them),
    whoever adds the image."""
    engine = database.engine_for(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            PolicyStore().add_reference(
                session, "ls10", "nvidia-gpu", {"arch": "ls10", "vbios_versions": ["96.10.AB"]}
            )
            session.commit()
    finally:
        engine.dispose()
    assert shown(capsys, settings)["images"] == [
        {"name": "ls10", "kind": "nvidia-gpu",
         "reference": {"arch": "LS10", "vbios_versions": ["96.10.ab"]}},
    ]  # fmt: skip
