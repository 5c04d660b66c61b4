"""The composition rule of issue #14 (:func:`attest_ledger.intake.composition_reasons`), each
way it falls short: the GPUs and the NVSwitches a worker's device policy requires are counted
by what each device's certificate says it is (a switch is not a GPU, a device whose arch is
unknown is neither), and without an NVIDIA device policy nothing is required."""

from __future__ import annotations

import pytest

from attest_ledger.intake import JudgedDevice, Verdict, composition_reasons
from tests.verifier.nvidia.support import hex_report
from verifier import Evidence, EvidenceKind, Status
from verifier.nvidia import NvidiaPolicy, parse_report
from verifier.nvidia.claims import NvidiaClaims

REPORT = parse_report(hex_report())


def device(index: int, arch: str | None) -> JudgedDevice:
    claims = NvidiaClaims(REPORT, arch, False, (), None, None)
    status = Status.AFFIRMING if arch else Status.CONTRAINDICATED
    verdict = Verdict(status, None, (), claims, None)
    submod = f"{'switch' if arch == 'LS10' else 'gpu'}{index}"
    evidence = Evidence(EvidenceKind.NVIDIA_GPU, b"report", ())
    return JudgedDevice(index, submod, evidence, verdict, None, None, ())


def policy(min_gpus: int = 1, min_switches: int = 0) -> NvidiaPolicy:
    return NvidiaPolicy.from_dict(
        {
            "name": "p",
            "evidence_kind": "nvidia-gpu",
            "images": [{"name": "s", "arch": "LS10", "vbios_versions": ["1"]}],
            "min_gpus": min_gpus,
            "min_switches": min_switches,
        }
    )


def messages(reasons: list[dict[str, str]]) -> str:
    assert all(r["code"] == "devices_missing" for r in reasons)
    assert all(r["submod"] == "composite" for r in reasons)
    return " ".join(r["message"] for r in reasons)


def test_what_the_policy_requires_is_met() -> None:
    devices = [device(0, "HOPPER"), device(1, "BLACKWELL"), device(2, "LS10")]
    assert composition_reasons(policy(2, 1), devices) == []
    assert composition_reasons(policy(0, 0), []) == []


@pytest.mark.parametrize(
    ("required", "archs", "expected"),
    [
        ((1, 0), [], "1 GPU(s) required, 0 given"),
        ((2, 0), ["HOPPER", "LS10"], "2 GPU(s) required, 1 given"),  # a switch is no GPU
        ((1, 0), ["LS10", "LS10"], "1 GPU(s) required, 0 given"),
        ((0, 1), ["HOPPER", "BLACKWELL"], "1 NVSwitch(es) required, 0 given"),  # nor a GPU a switch
        ((1, 0), [None], "1 GPU(s) required, 0 given"),  # a device whose arch is unknown
        ((0, 2), ["LS10", None], "2 NVSwitch(es) required, 1 given"),
        ((2, 2), ["HOPPER", "LS10"], "2 GPU(s) required, 1 given; 2 NVSwitch(es) required"),
    ],
)  # fmt: skip
def test_each_way_the_devices_fall_short(required, archs, expected) -> None:
    devices = [device(i, arch) for i, arch in enumerate(archs)]
    reasons = composition_reasons(policy(*required), devices)
    assert len(reasons) == 1
    assert expected in messages(reasons)
    assert policy(*required).policy_id in reasons[0]["message"]


def test_without_an_nvidia_device_policy_nothing_is_required() -> None:
    assert composition_reasons(None, []) == []
    assert composition_reasons(None, [device(0, "LS10")]) == []
