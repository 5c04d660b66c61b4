"""Every reader of RIM collateral (an operator's import file, a RIM a worker attaches, a RIM
service's answer) only ever raises the project's own error, whatever the bytes; a device of
any bytes or endorsements is completed without raising (issue #14; house rule: every parser is
fuzzed). Mutations start from NVIDIA's real VBIOS RIM and a simulated driver RIM."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import warnings
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_ledger import rim_collateral
from attest_ledger.collateral import CollateralError
from attest_ledger.rim_collateral import (
    RimSource,
    describe_rim,
    documents_in_file,
    looks_like_rim,
    rim_ids,
)
from enclave_worker import SimulatedGpu, SimulatedNvidiaPki, SimulatedNvidiaWarning
from enclave_worker.simulated_rim import SimulatedRim
from tests.support import SIM_AT
from tests.verifier.nvidia.support import NV, PROD_RIM, hex_report
from verifier import Endorsement, EndorsementKind, Evidence, EvidenceKind
from verifier.nvidia import parse_report

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None)
REAL = (NV / PROD_RIM).read_bytes()


def _simulated_driver() -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        pki = SimulatedNvidiaPki.generate(at=SIM_AT)
        return SimulatedRim(SimulatedGpu(pki)).driver()


DRIVER = _simulated_driver()
IDS = st.sampled_from(
    [
        None,
        "NV_GPU_DRIVER_GH100_590.12",
        "NV_GPU_VBIOS_1010_0200_882_96005E0001",
        "NV_SWITCH_BIOS_5612_0002_890_9610550001",
        "x",
        "",
    ]
)


def _check(data: bytes, rim_id: str | None = None) -> None:
    with contextlib.suppress(CollateralError):
        info = describe_rim(data, rim_id)
        assert info.kind in ("driver", "vbios")
        assert info.version == info.version.lower()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real or simulated RIM with bytes replaced, cut, or an attribute value changed."""
    data = bytearray(draw(st.sampled_from([REAL, DRIVER])))
    how = draw(st.sampled_from(["flip", "cut", "attribute", "insert"]))
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif how == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "attribute":
        name = draw(
            st.sampled_from(
                [
                    b"colloquialVersion",
                    b"index",
                    b"size",
                    b"alternatives",
                    b"active",
                    b"product",
                    b"tagId",
                    b"ns2:Hash0",
                ]
            )
        )
        value = draw(st.text(max_size=12).map(lambda t: t.encode("utf-8", "replace")))
        start = data.find(name + b'="')
        if start >= 0:
            begin = start + len(name) + 2
            end = data.find(b'"', begin)
            data[begin:end] = value.replace(b'"', b"")
    else:
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.sampled_from([b"<!DOCTYPE x>", b"&amp;", b"<x>", b"\x00", b"]]>"]))
    return bytes(data)


@given(st.binary(max_size=4096) | st.text(max_size=1024).map(str.encode), IDS)
@SETTINGS
def test_arbitrary_bytes_as_a_rim_only_raise_our_error(data: bytes, rim_id: str | None) -> None:
    _check(data, rim_id)


@given(mutated(), IDS)
@SETTINGS
def test_mutated_rims_only_raise_our_error(data: bytes, rim_id: str | None) -> None:
    _check(data, rim_id)


@given(
    st.binary(max_size=2048) | st.text(max_size=512).map(str.encode) | mutated(),
    st.sampled_from([None, "a.xml", "NV_GPU_DRIVER_GH100_590.12.xml", "x.swidtag"]),
)
@SETTINGS
def test_arbitrary_files_only_raise_our_error(data: bytes, name: str | None) -> None:
    try:
        documents = documents_in_file(data, name=name)
    except CollateralError:
        return
    for document in documents:  # what it returns is keepable: each describes
        describe_rim(document.data, document.rim_id)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": IDS | JSON_VALUES,
            "rim": st.sampled_from(
                [base64.b64encode(REAL).decode(), base64.b64encode(DRIVER).decode(), "", "%"]
            )
            | JSON_VALUES,
            "sha256": JSON_VALUES,
        },
    )
)
@SETTINGS
def test_service_json_of_any_shape_only_raises_our_error(body: dict[str, object]) -> None:
    with contextlib.suppress(CollateralError):
        for document in documents_in_file(json.dumps(body).encode()):
            describe_rim(document.data, document.rim_id)


@given(st.binary(max_size=600))
@SETTINGS
def test_rim_ids_of_any_parseable_report_are_strings_or_none(tail: bytes) -> None:
    """Project fields of any bytes name an id or none, never raise."""
    report = parse_report(hex_report())
    opaque = dict(report.opaque)
    opaque[17], opaque[18], opaque[15] = tail[:8], tail[8:16], tail[16:24]
    odd = dataclasses.replace(report, opaque=opaque)
    for value in rim_ids(odd, "GH100").values():
        assert value is None or value.isascii()


@pytest.mark.db
@given(
    st.binary(max_size=512) | st.just(hex_report()),
    st.lists(
        st.tuples(
            st.sampled_from(
                [EndorsementKind.RIM, EndorsementKind.DEVICE_CERTIFICATE, EndorsementKind.OCSP]
            ),
            st.binary(max_size=256) | mutated() | st.sampled_from([REAL, DRIVER]),
        ),
        max_size=3,
    ),
)
@settings(
    max_examples=max(EXAMPLES // 4, 20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_device_is_completed_without_raising(session_factory, data, endorsements) -> None:
    evidence = Evidence(
        EvidenceKind.NVIDIA_GPU, data, tuple(Endorsement(k, d) for k, d in endorsements)
    )
    completed = RimSource(session_factory).complete(evidence, datetime(2024, 6, 1, tzinfo=UTC))
    assert completed.endorsements[: len(evidence.endorsements)] == evidence.endorsements


_SERVICE_KEYS = st.sampled_from(["id", "rim", "sha256", "request_id", "rim_format", "x"])


@given(
    st.dictionaries(_SERVICE_KEYS | st.text(max_size=6), JSON_VALUES, max_size=5).map(
        lambda d: json.dumps(d).encode()
    )
    | st.binary(max_size=300).map(lambda b: b"{" + b)
    | st.text(max_size=200).map(lambda t: ("{" + t).encode("utf-8", "surrogatepass")),
    IDS,
)
@SETTINGS
def test_any_answer_to_a_rim_asked_for_only_raises_our_error(
    data: bytes, asked: str | None
) -> None:
    """The RIM service's answer as the fetcher reads it (``asked``: the id it asked for):
    any object, any bytes after a brace; the RIM it gives is the one asked for."""
    try:
        document = rim_collateral._from_service_json(data, asked)
    except CollateralError:
        return
    assert isinstance(document.data, bytes)
    if asked is not None:
        assert document.rim_id == asked


@given(st.binary(max_size=600) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
@SETTINGS
def test_any_file_is_told_a_rim_or_not_without_raising(data: bytes) -> None:
    assert isinstance(looks_like_rim(data), bool)
    assert isinstance(looks_like_rim(b"  " + data), bool)
