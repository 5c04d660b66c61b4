"""Property tests: whatever the input, the verifier raises only its own error types.

Arbitrary bytes, arbitrary CBOR and mutated real and simulated documents must produce a
verified result or a VerifierError, never another exception and never a hang (pytest-timeout
bounds each test; no time is asserted).
"""

from __future__ import annotations

import contextlib
import os
import warnings

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave_worker.simulated_nsm import encode_payload
from tests.support import REAL_DOCUMENTS, SIM_AT
from verifier import (
    DOCUMENT_TIME,
    AttestationDocument,
    COSESign1,
    NitroVerifier,
    UnsafeAcceptAnyPolicy,
    UnsafePolicyWarning,
    VerifierError,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UnsafePolicyWarning)
    ACCEPT_ANY = UnsafeAcceptAnyPolicy(allow_debug=True)

REAL = [d.read() for d in REAL_DOCUMENTS]
VERIFIER = NitroVerifier()
# HYPOTHESIS_EXAMPLES=20000 make test runs a deeper search (done before each release).
EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.binary(max_size=64)
    | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=12) | st.integers(-40, 40), inner, max_size=6)
    ),
    max_leaves=20,
)


def verify_any(raw: bytes) -> None:
    with contextlib.suppress(VerifierError):
        VERIFIER.verify(raw, at=DOCUMENT_TIME, policy=ACCEPT_ANY)


@SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(raw: bytes) -> None:
    verify_any(raw)


@SETTINGS
@given(st.binary(max_size=64))
def test_arbitrary_bytes_behind_a_cose_prefix(tail: bytes) -> None:
    verify_any(b"\x84\x44\xa1\x01\x38\x22\xa0" + tail)


@SETTINGS
@given(cbor_values)
def test_arbitrary_cbor_as_the_envelope(value) -> None:
    verify_any(cbor2.dumps(value))


@SETTINGS
@given(cbor_values)
def test_arbitrary_cbor_as_the_payload(value) -> None:
    with contextlib.suppress(VerifierError):
        AttestationDocument.from_payload(cbor2.dumps(value))


@SETTINGS
@given(
    st.sampled_from(REAL),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_real_documents(raw: bytes, edits) -> None:
    out = bytearray(raw)
    for position, value in edits:
        out[position % len(out)] = value
    verify_any(bytes(out))


@SETTINGS
@given(st.sampled_from(REAL), st.integers(min_value=0), st.integers(min_value=0, max_value=200))
def test_truncated_and_spliced_real_documents(raw: bytes, cut: int, width: int) -> None:
    cut %= len(raw)
    verify_any(raw[:cut])
    verify_any(raw[:cut] + raw[cut + width :])
    verify_any(raw[:cut] + raw[:width] + raw[cut:])


@pytest.fixture(scope="module")
def sim_fields(sim_nsm):
    return sim_nsm.payload_fields(timestamp=SIM_AT)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(
        [
            "module_id",
            "digest",
            "timestamp",
            "pcrs",
            "certificate",
            "cabundle",
            "public_key",
            "user_data",
            "nonce",
        ]
    ),
    cbor_values,
)
def test_simulated_documents_with_any_field_value(
    sim_nsm, sim_verifier, sim_fields, field, value
) -> None:
    fields = dict(sim_fields)
    fields[field] = value
    raw = sim_nsm.sign(encode_payload(fields))
    with contextlib.suppress(VerifierError):
        sim_verifier.verify(raw, at=SIM_AT, policy=ACCEPT_ANY)


@SETTINGS
@given(st.binary(min_size=1, max_size=512))
def test_envelope_parser_alone(raw: bytes) -> None:
    with contextlib.suppress(VerifierError):
        COSESign1.from_bytes(raw)
