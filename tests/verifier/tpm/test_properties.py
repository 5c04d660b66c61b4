"""Property tests: whatever the bytes, the TPMS_ATTEST, TPMT_SIGNATURE and container parsers
and the whole scheme raise only our own errors (VerifierError; PolicyInvalid for a policy),
never another exception or a warning. No time is asserted."""

from __future__ import annotations

import contextlib
import os

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verifier.tpm.support import AT, GCP_JSON, NITRO_JSON, TRUSTEE_JSON, accept_any, sample
from verifier import Evidence, EvidenceKind, PolicyInvalid, VerifierError, detect_kind
from verifier.tpm import Attest, TpmPolicy, TpmSignature, TpmVerifier, parse_container

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
VERIFIER = TpmVerifier()
POLICY = accept_any()
SAMPLES = [sample(p) for p in (NITRO_JSON, GCP_JSON, TRUSTEE_JSON)]
ATTESTS = [cbor2.loads(s.data)["attest"] for s in SAMPLES]
SIGNATURES = [cbor2.loads(s.data)["signature"] for s in SAMPLES]


def _mutated(base: bytes, data: st.DataObject) -> bytes:
    out = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        position = data.draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[position] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del out[position : position + data.draw(st.integers(1, 8))]
        else:
            out[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    return bytes(out)


@SETTINGS
@given(st.data())
def test_attest_parser_raises_only_our_errors(data: st.DataObject) -> None:
    raw = data.draw(st.one_of(st.binary(max_size=300), st.sampled_from(ATTESTS)))
    if data.draw(st.booleans()):
        raw = _mutated(raw, data)
    with contextlib.suppress(VerifierError):
        Attest.from_bytes(raw)


@SETTINGS
@given(st.data())
def test_signature_parser_raises_only_our_errors(data: st.DataObject) -> None:
    raw = data.draw(st.one_of(st.binary(max_size=600), st.sampled_from(SIGNATURES)))
    if data.draw(st.booleans()):
        raw = _mutated(raw, data)
    with contextlib.suppress(VerifierError):
        TpmSignature.from_bytes(raw)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.binary(max_size=60)
    | st.text(max_size=20)
)
_KEYS = st.integers(-2, 30) | st.text(max_size=8) | st.sampled_from(["sha256", "sha384", "0"])
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(st.data())
def test_container_parser_and_scheme_raise_only_our_errors(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(SAMPLES))
    choice = data.draw(st.sampled_from(["bytes", "field", "random"]))
    if choice == "bytes":
        raw = _mutated(base.data, data)
    elif choice == "field":
        fields = dict(cbor2.loads(base.data))
        key = data.draw(st.sampled_from([*fields, "extra", "event_log"]))
        fields[key] = data.draw(_VALUES)
        rest = {k: v for k, v in fields.items() if k != "format"}
        try:
            raw = b"\xa0" + cbor2.dumps("format") + cbor2.dumps("tpm2-quote/v1")
            raw = bytes([0xA0 + len(rest) + 1]) + raw[1:] + cbor2.dumps(rest)[1:]
        except (ValueError, TypeError, cbor2.CBOREncodeError):
            return
    else:
        raw = data.draw(st.binary(max_size=200))
    detect_kind(raw)
    with contextlib.suppress(VerifierError):
        parse_container(raw)
    evidence = Evidence(EvidenceKind.TPM2_QUOTE, raw, base.endorsements)
    with contextlib.suppress(VerifierError):
        VERIFIER.verify(evidence, at=AT, policy=POLICY)
    with contextlib.suppress(VerifierError):
        VERIFIER.describe(evidence)


@SETTINGS
@given(_VALUES)
def test_policy_parser_raises_only_policy_invalid(value: object) -> None:
    document = {"evidence_kind": "tpm2-quote", "name": "p", "images": value}
    with contextlib.suppress(PolicyInvalid):
        TpmPolicy.from_dict(document)
    with contextlib.suppress(PolicyInvalid):
        TpmPolicy.from_dict(
            {**document, "images": [{"name": "i", "pcrs": value, "events": [value]}]}
        )
