"""Property tests: whatever the quote, collateral or policy, the DCAP scheme raises only our
own errors (a VerifierError, or PolicyInvalid for a policy) and never another exception; no
warning escapes either (pytest turns warnings into errors here). No time is asserted;
pytest-timeout bounds each test."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verifier.tdx.support import GTG_V5, PHALA_SGX, PHALA_TDX, REAL_QUOTES, RealQuote
from verifier import (
    DcapVerifier,
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    PolicyInvalid,
    UnsafePolicyWarning,
    VerifierError,
    detect_kind,
    endorsements_from_dcap_qvl_json,
    parse_quote,
    policy_from_dict,
)
from verifier.tdx.collateral import parse_qe_identity, parse_tcb_info, split_signed_body
from verifier.tdx.pck import parse_pck_extension

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
VERIFIER = DcapVerifier()
HEADERS = [q.bytes()[:48] for q in REAL_QUOTES]


def verify_any(evidence: Evidence, at: object = PHALA_TDX.at) -> None:
    sample = PHALA_TDX if evidence.kind is EvidenceKind.INTEL_TDX else PHALA_SGX
    with contextlib.suppress(VerifierError):
        VERIFIER.verify(evidence, at=at, policy=sample.accept_any())  # type: ignore[arg-type]


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=6000),
        st.tuples(st.sampled_from(HEADERS), st.binary(max_size=6000)).map(lambda t: t[0] + t[1]),
    )
)
def test_arbitrary_bytes_raise_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(VerifierError):
        parse_quote(data)
    detect_kind(data)  # never raises
    verify_any(PHALA_TDX.evidence(data))
    verify_any(PHALA_SGX.evidence(data))


@SETTINGS
@given(st.sampled_from(REAL_QUOTES), st.data())
def test_mutated_real_quotes_raise_only_our_errors(sample: RealQuote, data: st.DataObject) -> None:
    raw = bytearray(sample.bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    evidence = sample.evidence(bytes(raw))
    with contextlib.suppress(VerifierError):
        VERIFIER.verify(evidence, at=sample.at, policy=sample.accept_any())
    with contextlib.suppress(VerifierError):
        VERIFIER.describe(evidence)


@SETTINGS
@given(
    st.sampled_from(
        [
            EndorsementKind.TCB_INFO,
            EndorsementKind.QE_IDENTITY,
            EndorsementKind.CRL,
            EndorsementKind.CERTIFICATE,
        ]
    ),
    st.one_of(
        st.binary(max_size=3000),
        st.text(max_size=300).map(str.encode),
        st.builds(
            lambda t, s: b'{"tcbInfo":' + t.encode() + b',"signature":"' + s.hex().encode() + b'"}',
            st.text(max_size=100),
            st.binary(min_size=64, max_size=64),
        ),
    ),
)
def test_arbitrary_collateral_raises_only_our_errors(kind: EndorsementKind, data: bytes) -> None:
    for sample in (PHALA_TDX, GTG_V5):
        evidence = sample.evidence()
        given = tuple(e for e in evidence.endorsements if e.kind is not kind)
        verify_any(
            Evidence(evidence.kind, evidence.data, (*given, Endorsement(kind, data))), sample.at
        )
    for member in ("tcbInfo", "enclaveIdentity"):
        with contextlib.suppress(VerifierError):
            split_signed_body(data, member, "test")
    with contextlib.suppress(VerifierError):
        parse_tcb_info(data)
    with contextlib.suppress(VerifierError):
        parse_qe_identity(data)
    with contextlib.suppress(VerifierError):
        parse_pck_extension(data)


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.dictionaries(
            st.sampled_from(
                [
                    "tcb_info",
                    "tcb_info_signature",
                    "qe_identity",
                    "qe_identity_signature",
                    "pck_crl",
                    "root_ca_crl",
                    "tcb_info_issuer_chain",
                    "qe_identity_issuer_chain",
                    "pck_crl_issuer_chain",
                ]
            ),
            st.one_of(st.text(max_size=50), st.integers(), st.lists(st.integers(-1, 300))),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_arbitrary_dcap_qvl_json_raises_only_malformed(data: bytes) -> None:
    with contextlib.suppress(VerifierError):
        endorsements_from_dcap_qvl_json(data)


@SETTINGS
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=100),
)
def test_header_fields_raise_only_our_errors(version: int, key: int, tee: int, rest: bytes) -> None:
    header = struct.pack("<HHI", version, key, tee) + HEADERS[0][8:]
    with contextlib.suppress(VerifierError):
        parse_quote(header + rest)
    detect_kind(header + rest)


@SETTINGS
@given(
    st.dictionaries(
        st.text(max_size=20),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.text(max_size=20),
            st.lists(st.text(max_size=10), max_size=3),
        ),
    )
)
def test_arbitrary_policies_raise_only_policy_invalid(data: dict[str, object]) -> None:
    for kind in ("intel-tdx", "intel-sgx"):
        with contextlib.suppress(PolicyInvalid), warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            policy_from_dict({**data, "evidence_kind": kind, "name": "p"})
