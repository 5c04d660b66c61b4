"""An NVIDIA policy's ``min_gpus`` and ``min_switches`` (issue #14): whole numbers 0 to 16,
anything else refused with :class:`PolicyInvalid`; and a policy object of any shape is read
or refused with PolicyInvalid, never another exception (house rule: every parser is fuzzed)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import UnsafePolicyWarning
from verifier.errors import PolicyInvalid
from verifier.nvidia import NvidiaPolicy
from verifier.nvidia.policy import MAX_REQUIRED_DEVICES

BASE: dict[str, Any] = {
    "name": "p",
    "evidence_kind": "nvidia-gpu",
    "images": [{"name": "s", "arch": "LS10", "vbios_versions": ["96.10.55.00.01"]}],
}


def test_the_device_counts_default_and_round_trip() -> None:
    policy = NvidiaPolicy.from_dict(BASE)
    assert (policy.min_gpus, policy.min_switches) == (1, 0)
    edge = NvidiaPolicy.from_dict({**BASE, "min_gpus": 0, "min_switches": MAX_REQUIRED_DEVICES})
    assert (edge.min_gpus, edge.min_switches) == (0, MAX_REQUIRED_DEVICES)
    assert NvidiaPolicy.from_dict(edge.to_dict()) == edge
    assert edge.digest != policy.digest  # the counts are part of what the policy id names


@pytest.mark.parametrize("key", ["min_gpus", "min_switches"])
@pytest.mark.parametrize(
    "value", [-1, MAX_REQUIRED_DEVICES + 1, 10**30, True, False, 1.0, "1", None, [1], {"n": 1}]
)
def test_a_device_count_that_is_not_a_whole_number_0_to_16_is_refused(key, value) -> None:
    with pytest.raises(PolicyInvalid, match="min_gpus and min_switches are whole numbers, 0 to"):
        NvidiaPolicy.from_dict({**BASE, key: value})


def test_accept_any_checks_the_device_counts_too() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        unsafe = {"evidence_kind": "nvidia-gpu", "unsafe_accept_any": True}
        assert NvidiaPolicy.from_dict({**unsafe, "min_switches": 4}).min_switches == 4
        with pytest.raises(PolicyInvalid, match="whole numbers"):
            NvidiaPolicy.from_dict({**unsafe, "min_gpus": -3})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=10) | st.sampled_from(["HOPPER", "LS10", "nvidia-gpu", "driver", "SPT"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=10,
)  # fmt: skip
_COUNT = st.integers(-3, 20) | _JSON


@settings(max_examples=200, deadline=None)
@given(
    counts=st.fixed_dictionaries({}, optional={"min_gpus": _COUNT, "min_switches": _COUNT}),
    others=st.dictionaries(
        st.sampled_from(
            [
                "images",
                "require_rims",
                "feature_flags",
                "clock_skew_seconds",
                "unsafe_accept_any",
                "name",
                "evidence_kind",
            ]
        ),
        _JSON,
        max_size=2,
    ),
)
def test_any_policy_object_is_read_or_refused_with_policy_invalid(counts, others) -> None:
    data = {**BASE, **others, **counts}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        try:
            policy = NvidiaPolicy.from_dict(data)
        except PolicyInvalid:
            return
    for key, default in (("min_gpus", 1), ("min_switches", 0)):
        value = getattr(policy, key)
        assert type(value) is int
        assert 0 <= value <= MAX_REQUIRED_DEVICES
        assert value == data.get(key, default)
