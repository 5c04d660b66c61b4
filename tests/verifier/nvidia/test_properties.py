"""Property tests: whatever the report bytes, DER extension or RIM, the NVIDIA scheme raises
only our own errors (a VerifierError) and never another exception; no warning escapes
either (pytest turns warnings into errors here). No time is asserted."""

from __future__ import annotations

import contextlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verifier.nvidia.support import (
    AT,
    NV,
    PROD_RIM,
    accept_any,
    evidence,
    hex_report,
    hopper_chain,
)
from verifier import VerifierError
from verifier.nvidia import NvidiaVerifier, nvidia_rim_root, parse_report, parse_rim, verify_rim
from verifier.nvidia.fwid import _hopper_fwid, _tcb_info_fwid, parse_der
from verifier.x509 import LinkCache

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
VERIFIER = NvidiaVerifier()
REPORT = hex_report()
RIM = (NV / PROD_RIM).read_bytes()


def _mutate(base: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(base)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data[:cut] if cut is not None else data)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6)
cuts = st.none() | st.integers(0, 5000)


@SETTINGS
@given(st.binary(max_size=5000))
def test_arbitrary_bytes_raise_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(VerifierError):
        parse_report(data)
    with contextlib.suppress(VerifierError):
        VERIFIER.verify(evidence(data, *hopper_chain()), at=AT, policy=accept_any())


@SETTINGS
@given(edits, cuts)
def test_mutated_real_reports_raise_only_our_errors(
    changes: list[tuple[int, int]], cut: int | None
) -> None:
    data = _mutate(b"\x11\xe0\x01\xff" + REPORT[4:], changes, cut)
    with contextlib.suppress(VerifierError):
        VERIFIER.verify(evidence(data, *hopper_chain()), at=AT, policy=accept_any())


@SETTINGS
@given(st.binary(max_size=300))
def test_the_der_reader_raises_only_our_errors(data: bytes) -> None:
    for read in (lambda d: parse_der(d, "fuzz"), _hopper_fwid, _tcb_info_fwid):
        with contextlib.suppress(VerifierError):
            read(data)


@SETTINGS
@given(edits, st.none() | st.integers(0, 400))
def test_mutated_fwid_extensions_raise_only_our_errors(
    changes: list[tuple[int, int]], cut: int | None
) -> None:
    hopper = bytes.fromhex(
        "3081ba0201013076301006072a8648ce3d020106052b81040022036200"
        + "04" * 97
        + "303d0609608648016503040202"
        + "0430"
        + "ab" * 48
    )
    with contextlib.suppress(VerifierError):
        _hopper_fwid(_mutate(hopper, changes, cut))


@SETTINGS
@given(edits, st.none() | st.integers(0, len(RIM)))
def test_mutated_rims_raise_only_our_errors(
    changes: list[tuple[int, int]], cut: int | None
) -> None:
    data = _mutate(RIM, changes, cut)
    with contextlib.suppress(VerifierError):
        parse_rim(data)
    with contextlib.suppress(VerifierError):
        verify_rim(
            data, [nvidia_rim_root()], at=AT, clock_skew=accept_any().clock_skew, links=LinkCache()
        )


@SETTINGS
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_arbitrary_rims_raise_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(VerifierError):
        parse_rim(data)


def test_hostile_xml_is_refused_before_anything_is_resolved() -> None:
    import pytest

    from verifier import EvidenceTooLarge, MalformedEvidence

    entity = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    )
    with pytest.raises(MalformedEvidence):
        parse_rim(entity)
    with pytest.raises(EvidenceTooLarge):
        parse_rim(b"<r>" + b" " * (64 * 1024) + b"</r>")
