"""Arbitrary stored bytes in a composite entry (issue #14; house rule: every parser is fuzzed):
the portal re-reads a device's report (verifier.nvidia.parse_report), its RIMs
(verifier.nvidia.parse_rim), its certificates and the leaf's FWID from what the ledger stores,
and the record's device fields as recorded. A proven entry may hold anything there: the entry
page, the device page and the report download answer 200 for any of it, with a note where
something does not parse, never an error page.

The entries are real composite entries (a simulated SEV-SNP guest and two simulated GPUs,
submitted through the API), whose device 0 is then given other bytes and fields and appended
again as the service would store them."""

from __future__ import annotations

import copy
import hashlib
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.append import append, prepare_all
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.entry import NewEntry, endorsement_digests
from ledger.reads import get_endorsement, get_evidence
from tests.web.test_composite_submissions import (  # noqa: F401 - fixtures, used by name
    composite,
    cpu_evidence,
    device_evidence,
    nvidia_pki,
    stored,
    submit,
)
from tests.web.test_portal_nvidia import get, portal  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.db

_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
_counter = itertools.count()


def _mutated(data: bytes):
    edit = st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255))

    def apply(edits):
        out = bytearray(data)
        for at, value in edits:
            out[at] = value
        return bytes(out)

    return st.lists(edit, min_size=1, max_size=6).map(apply)


def _cut(data: bytes):
    return st.integers(0, len(data)).map(lambda n: data[:n])


#: canonical entry JSON has no floating-point numbers
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)


@pytest.fixture
def base(portal):  # noqa: F811 - the imported fixture
    """A real composite entry: its record, CPU evidence and every blob it names, by digest."""
    nonce = portal.challenge()
    devices = [device_evidence(g, nonce, i) for i, g in enumerate(portal.gpus)]
    reply = submit(portal, cpu_evidence(portal, nonce), devices)
    index = reply.json["entry"]["index"]
    record = stored(portal, index)
    with portal.runtime.sessions() as session:
        cpu = get_evidence(session, index)
        blobs = {d: get_endorsement(session, bytes.fromhex(d)) for d in endorsement_digests(record)}
    portal.base = (record, cpu, blobs)
    return portal


def _real(service, kind: str) -> bytes:
    record, _, blobs = service.base
    device = record["devices"][0]
    if kind == "report":
        return blobs[device["evidence_sha256"]]
    return next(blobs[e["sha256"]] for e in device["endorsements"] if e["kind"] == kind)


def _append(service, record: dict[str, Any], extra: list[bytes]) -> int:
    _, cpu, blobs = service.base
    known = {**blobs, **{hashlib.sha256(b).hexdigest(): b for b in extra}}
    named = [known[d] for d in dict.fromkeys(endorsement_digests(record))]
    top = [(e["kind"], known[e["sha256"]]) for e in record["endorsements"]]
    entry = NewEntry.from_record(record, evidence=cpu, endorsements=top, blobs=named)
    with session_scope(service.runtime.sessions) as session:
        (appended,) = append(session, prepare_all([entry]))
        publish_checkpoint(session, service.runtime.signer)
    assert not appended.duplicate  # a new entry (the same evidence by one worker is a repeat)
    return appended.index


@st.composite
def _stored(draw, report: bytes, rim: bytes, leaf: bytes):
    """Device 0's report, one RIM and the leaf, each real, cut, mutated or any bytes."""

    def variant(real: bytes):
        return draw(
            st.just(real) | _cut(real) | _mutated(real) | st.binary(max_size=300),
        )

    text = draw(st.text(max_size=12))
    xml = rim.replace(b'alternatives="1"', b'alternatives="' + text.encode() + b'"', 1)
    return variant(report), draw(st.sampled_from([variant(rim), xml])), variant(leaf)


def _render(service, record: dict[str, Any], extra: list[bytes]) -> str:
    """The device page of ``record`` appended (empty if device 0 has no page)."""
    index = _append(service, record, extra)
    get(service, f"/portal/entries/{index}")  # asserts a 200
    if record["devices"][0].get("submod") != "gpu0":  # renamed: no page under the old name
        get(service, f"/portal/entries/{index}/devices/gpu0", 404)
        return ""
    body = get(service, f"/portal/entries/{index}/devices/gpu0")
    assert (
        service.browser.get(f"/portal/entries/{index}/devices/gpu0/report.bin").status_code == 200
    )
    return body


@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
def test_any_stored_report_rim_or_certificate_renders_the_pages(base, data) -> None:
    real = {kind: _real(base, kind) for kind in ("report", "rim", "device-certificate")}
    report, rim, leaf = data.draw(_stored(real["report"], real["rim"], real["device-certificate"]))
    record = copy.deepcopy(base.base[0])
    n = next(_counter)
    record["job"], record["worker"] = {"id": f"fuzz-{n}"}, f"fuzz-{n}"  # not a repeat
    device = record["devices"][0]
    device["evidence_sha256"] = hashlib.sha256(report).hexdigest()
    chain = [e for e in device["endorsements"] if e["kind"] == "device-certificate"]
    rims = [e for e in device["endorsements"] if e["kind"] == "rim"]
    device["endorsements"] = [
        {"kind": "device-certificate", "sha256": hashlib.sha256(leaf).hexdigest()},
        *chain[1:],
        {"kind": "rim", "sha256": hashlib.sha256(rim).hexdigest()},
        *rims[1:],
    ]
    body = _render(base, record, [report, rim, leaf])
    assert device["evidence_sha256"] in body  # this entry's device, whatever its bytes
    if report != real["report"]:
        assert "could not be read" in body or 'class="m-' in body


@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "claims",
                "nonce",
                "index",
                "verdict",
                "submod",
                "image",
                "error",
                "trust_anchors",
                "policy",
                "evidence_kind",
            ]
        ),
        _JSON,
        max_size=4,
    ),
    claims=st.dictionaries(
        st.sampled_from(
            [
                "arch",
                "driver_version",
                "vbios_version",
                "feature_flag",
                "nonce",
                "fwid_checked",
                "rims",
                "chip_info",
                "measurements",
            ]
        ),
        _JSON
        | st.lists(
            st.dictionaries(
                st.sampled_from(["sha256", "matched", "mismatched"]),
                _JSON | st.just("0" * 64),
                max_size=3,
            ),
            max_size=2,
        ),
        max_size=4,
    ),
    top=st.fixed_dictionaries(
        {},
        optional={
            "nonce": _JSON | st.just("ab" * 32),
            "verified_at": _JSON,
            "cpu_verdict": _JSON,
            "result_hash": st.text(max_size=80),  # an indexed column: text, or the entry is refused
        },
    ),
)
@settings(max_examples=40, deadline=None, suppress_health_check=_FIXTURES)
def test_any_recorded_device_fields_render_the_pages(base, fields, claims, top) -> None:
    record = copy.deepcopy(base.base[0])
    n = next(_counter)
    record["job"], record["worker"] = {"id": f"fuzz-{n}"}, f"fuzz-{n}"  # not a repeat
    record.update(top)
    device = record["devices"][0]
    device.update(fields)
    if isinstance(device.get("claims"), dict):
        device["claims"].update(claims)
    _render(base, record, [])
