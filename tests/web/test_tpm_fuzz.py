"""Arbitrary evidence as a ``tpm2-quote`` (issue #13; house rule: every parser is fuzzed): the
portal page of an entry recording any bytes, or a mutated container with event logs, renders
(it parses the stored container and its logs itself); and a submission of any bytes through
the service is judged and recorded with a reason code, never a 500."""

from __future__ import annotations

import base64
import itertools

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.conftest import page
from tests.web.tpm_records import (
    ak_sha256,
    append_record,
    claims,
    container,
    quote_record,
    real_log,
)
from verifier import ResultHash
from web.submission import MAX_SUBMITTED_EVIDENCE

pytestmark = pytest.mark.db

_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
_LOG = real_log()
_GOOD = container("fuzz", event_log=_LOG, ima_log=b"10 " + b"00" * 20 + b" ima-ng sha256:" +
                  b"00" * 32 + b" /init\n")  # fmt: skip


def _mutated(data: bytes):
    edit = st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255))

    def apply(edits):
        out = bytearray(data)
        for at, value in edits:
            out[at] = value
        return bytes(out)

    return st.lists(edit, min_size=1, max_size=6).map(apply)


def _shaped(values):
    """A container whose fields hold values of any type."""
    keys = st.sampled_from(["format", "attest", "signature", "ak", "pcrs", "event_log",
                            "ima_log", "nitro_document", "x"])  # fmt: skip
    return st.dictionaries(keys, values, max_size=8).map(
        lambda d: cbor2.dumps({"format": "tpm2-quote/v1", **d})
    )


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=64) | st.text(max_size=16)
    | st.just(_LOG[:2048]) | st.just(_LOG[:600]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.integers(0, 30) | st.text(max_size=8),
                                                        c, max_size=3),
    max_leaves=12,
)  # fmt: skip
_EVIDENCE = (
    st.binary(max_size=512) | _mutated(_GOOD) | _shaped(_VALUES)
    | st.just(_GOOD[: len(_GOOD) // 2])
)  # fmt: skip
_counter = itertools.count()


@given(evidence=_EVIDENCE, with_log=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
def test_any_evidence_recorded_as_a_tpm_quote_renders_its_page(portal, evidence, with_log) -> None:
    n = next(_counter)
    claims_ = claims(path="enrolled", ak=ak_sha256(n), event_log=_LOG if with_log else None,
                     enrolment="rack1")  # fmt: skip
    record = quote_record(worker=f"fuzz-{n}", claims_=claims_, job={"id": f"job-{n}"})
    index = append_record(portal, record, evidence)
    page(portal, f"/portal/entries/{index}")  # asserts a 200


@given(evidence=_EVIDENCE.filter(bool))  # empty data is a malformed request (400)
@settings(max_examples=40, deadline=None, suppress_health_check=_FIXTURES)
def test_any_bytes_submitted_as_a_tpm_quote_are_recorded_with_a_code(service, evidence) -> None:
    body = {
        "evidence": {"kind": "tpm2-quote", "data": base64.b64encode(evidence).decode(),
                     "endorsements": []},
        "result_hash": str(ResultHash.of(b"the answer")),
        "job": {"id": f"fuzz-{next(_counter)}"},
    }  # fmt: skip
    reply = service.http.post("/api/v1/attestations", json=body, headers=service.auth("worker-1"))
    if len(evidence) > MAX_SUBMITTED_EVIDENCE:  # refused before it is judged, by its size
        assert reply.status_code == 413, reply.json
        return
    assert reply.status_code in (201, 200), (reply.status_code, reply.json)
    verdict = reply.json["verdict"]
    assert verdict["status"] != "affirming"
    assert verdict["reasons"], verdict
    assert all(isinstance(r["code"], str) and r["code"] for r in verdict["reasons"])
    assert isinstance(reply.json["entry"]["index"], int)
