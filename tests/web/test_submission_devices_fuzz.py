"""A submission's ``devices`` (issue #14; house rule: every parser is fuzzed, only our errors
escape): any JSON value for ``devices``, for each device and each of its fields, is either
parsed into devices or refused with a 400 ``malformed_request`` / 413 ``payload_too_large``
Problem, never another exception; through the service, never a 500."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import ResultHash
from web.problems import Problem
from web.submission import (
    DEVICE_ENDORSEMENT_KINDS,
    DEVICE_KINDS,
    MAX_DEVICE_EVIDENCE,
    MAX_ENDORSEMENT_BYTES,
    parse_submission,
)

_B64 = base64.b64encode(b"a device report").decode()
_BIG = base64.b64encode(bytes(MAX_DEVICE_EVIDENCE + 3)).decode()  # past the device limit
_HUGE = base64.b64encode(bytes(MAX_ENDORSEMENT_BYTES + 3)).decode()
_TEXT = st.text(max_size=12) | st.sampled_from(["\ud800", "\x00", "AA==", "***", _B64, ""])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["kind", "data", "endorsements", "x"]) | _TEXT, inner,
                      max_size=4),
    max_leaves=10,
)  # fmt: skip
_KIND = st.sampled_from([*DEVICE_KINDS, "amd-sev-snp", "NVIDIA-GPU"]) | _JSON
_DATA = st.sampled_from([_B64, _BIG, "AA==", "A", ""]) | _JSON
_ENDORSEMENT = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from([*DEVICE_ENDORSEMENT_KINDS, "vcek"]) | _JSON,
        "data": st.sampled_from([_B64, _HUGE, "%%"]) | _JSON,
        "extra": _JSON,
    },
)
_DEVICE = st.fixed_dictionaries(
    {},
    optional={
        "kind": _KIND,
        "data": _DATA,
        "endorsements": st.lists(_ENDORSEMENT | _JSON, max_size=14) | _JSON,
        "nonce": _JSON,
    },
)
_DEVICES = st.lists(_DEVICE | _JSON, max_size=18) | _JSON


def _body(devices: object, evidence: bool) -> dict[str, object]:
    body: dict[str, object] = {"devices": devices, "result_hash": str(ResultHash.of(b"x"))}
    if evidence:
        body["evidence"] = {"kind": "amd-sev-snp", "data": "AA==", "endorsements": []}
    else:
        body["attestation_document"] = "AA=="
    return body


@settings(max_examples=150, deadline=None)
@given(devices=_DEVICES, evidence=st.booleans())
def test_any_devices_parse_or_are_refused_with_our_problem(devices, evidence) -> None:
    refused: Problem | None = None
    try:
        submission = parse_submission(_body(devices, evidence), None)
    except Problem as problem:
        refused = problem
    if refused is not None:
        assert (refused.status, refused.code) in {
            (400, "malformed_request"),
            (413, "payload_too_large"),
        }, refused.detail
        assert refused.detail
        return
    assert isinstance(devices, list)  # what parsed was a list of well-formed devices
    assert len(submission.devices) == len(devices)
    assert not devices or evidence
    for device in submission.devices:
        assert str(device.kind) in DEVICE_KINDS
        assert isinstance(device.data, bytes)
        assert device.data


_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.mark.db
@settings(max_examples=25, deadline=None, suppress_health_check=_FIXTURES)
@given(devices=_DEVICES)
def test_any_devices_submitted_are_never_a_500(service, devices) -> None:
    reply = service.http.post(
        "/api/v1/attestations", json=_body(devices, True), headers=service.auth("worker-1")
    )
    assert reply.status_code in (200, 201, 400, 413), (reply.status_code, reply.json)
    if reply.status_code >= 400:
        assert reply.json["code"] in ("malformed_request", "payload_too_large"), reply.json
