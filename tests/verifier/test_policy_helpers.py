"""The shared policy helpers of verifier.policy, as every scheme's policy parses with them."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest

from verifier.errors import PolicyInvalid, Violation
from verifier.nitro.policy import Policy
from verifier.nvidia.policy import NvidiaPolicy
from verifier.policy import (
    UnsafePolicyWarning,
    json_seconds,
    policy_image_object,
    policy_images,
    policy_loads,
    policy_name,
    policy_object,
)
from verifier.result import Status, status_of
from verifier.snp.policy import SnpPolicy
from verifier.tdx.policy import SgxPolicy, TdxPolicy
from verifier.tpm.policy import TpmPolicy

SCHEMES = [Policy, SnpPolicy, TdxPolicy, SgxPolicy, TpmPolicy, NvidiaPolicy]


def test_json_seconds_is_an_integer_when_whole() -> None:
    assert json_seconds(timedelta(seconds=60)) == 60
    assert isinstance(json_seconds(timedelta(seconds=60)), int)
    assert json_seconds(timedelta(seconds=1.5)) == 1.5


def test_loads_refuses_what_is_not_json() -> None:
    with pytest.raises(PolicyInvalid, match="not valid JSON"):
        policy_loads(b"{")
    with pytest.raises(PolicyInvalid, match="not valid JSON"):
        policy_loads(b"\xff")
    assert policy_loads('{"a": 1}') == {"a": 1}


def test_object_refuses_non_objects_and_unknown_keys_even_non_string_ones() -> None:
    with pytest.raises(PolicyInvalid, match="expected a JSON object"):
        policy_object([], frozenset())
    with pytest.raises(PolicyInvalid, match=r"unknown key\(s\) '1', 'b'"):
        policy_object({1: 0, "b": 0, "a": 0}, frozenset({"a"}))


def test_images_name_and_image_object() -> None:
    assert policy_images({}) == []
    with pytest.raises(PolicyInvalid, match="'images' must be a list"):
        policy_images({"images": {}})
    assert policy_name({}, "default") == "default"
    with pytest.raises(PolicyInvalid, match="'name' must be a string"):
        policy_name({}, None)
    with pytest.raises(PolicyInvalid, match="each image must be an object"):
        policy_image_object([], {"name"})
    with pytest.raises(PolicyInvalid, match=r"image: unknown key\(s\) 'x'"):
        policy_image_object({"name": "a", "x": 1}, {"name"})
    with pytest.raises(PolicyInvalid, match="image 'name' must be a string"):
        policy_image_object({"name": 1}, {"name"})


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_refuses_the_common_faults_alike(scheme: type) -> None:
    with pytest.raises(PolicyInvalid, match="not valid JSON"):
        scheme.from_json("[")
    with pytest.raises(PolicyInvalid, match="expected a JSON object"):
        scheme.from_dict([])
    with pytest.raises(PolicyInvalid, match="unknown key"):
        scheme.from_dict({"no-such-key": 1})


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_refuses_an_empty_non_unsafe_policy(scheme: type) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsafePolicyWarning)
        with pytest.raises(PolicyInvalid, match="if that is really meant"):
            scheme(name="empty", images=())


def test_status_of_and_judged() -> None:
    violation = Violation("code", "message")
    assert status_of((violation,), warning=False) is Status.CONTRAINDICATED
    assert status_of((violation,), warning=True) is Status.CONTRAINDICATED
    assert status_of((), warning=True) is Status.WARNING
    assert status_of((), warning=False) is Status.AFFIRMING


@pytest.mark.parametrize(
    ("scheme", "kind"),
    [
        (Policy, "aws-nitro-enclave"),
        (SnpPolicy, "amd-sev-snp"),
        (TdxPolicy, "intel-tdx"),
        (SgxPolicy, "intel-sgx"),
        (TpmPolicy, "tpm2-quote"),
        (NvidiaPolicy, "nvidia-gpu"),
    ],
)
def test_every_scheme_refuses_an_unsafe_policy_whose_name_is_not_a_string(
    scheme: type, kind: str
) -> None:
    with pytest.raises(PolicyInvalid, match="'name' must be a string"):
        scheme.from_dict({"evidence_kind": kind, "unsafe_accept_any": True, "name": 5})
