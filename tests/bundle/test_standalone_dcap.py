"""The standalone verifier's Intel DCAP parts on their own: arbitrary bytes as a quote or as
any collateral document only ever give a contraindicated verdict with a code (never an
exception, never a warning: pytest turns warnings into errors here); Intel's SGX root and a
simulated P-256 root are trust anchors; recorded policies with TDX and SGX images and
settings are read, malformed ones refused. Agreement with the project's verifier is
tests/bundle/test_judge_agreement_dcap.py's."""

from __future__ import annotations

import json
import os
import warnings
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_ledger.bundles import verify_bundle as standalone
from enclave_worker.intel_collateral import pcs_body
from tests.enclave_worker.intel_support import intel_pki, tdx_platform
from tests.verifier.tdx.support import PHALA_TDX
from verifier import ResultHash, UnsafePolicyWarning
from verifier.tdx import intel_sgx_root_ca

SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
KINDS = ("tcb-info", "qe-identity", "crl", "certificate")
CODES = {
    "malformed", "oversize", "unsupported", "signature_invalid", "chain_invalid",
    "untrusted_root", "expired", "not_yet_valid", "revoked", "endorsement_missing",
    "endorsement_mismatch", "qe_report_signature_invalid", "qe_binding_invalid",
    "collateral_signature_invalid", "fmspc_mismatch", "tcb_type_mismatch",
    "no_matching_tcb_level", "qe_identity_mismatch",
}  # fmt: skip
RESULT = ResultHash.of(b"the result")
INTEL = intel_sgx_root_ca().der
SIMULATED = intel_pki().root.der
PLATFORM = tdx_platform()
SIM_QUOTE = PLATFORM.quote(bytes(32) + RESULT.report_data_half())
SIM_COLLATERAL = [(str(e.kind), e.data) for e in PLATFORM.collateral()]
SIM_AT = PLATFORM.at + timedelta(hours=1)
REAL_QUOTE = PHALA_TDX.bytes()
REAL_COLLATERAL = [(str(e.kind), e.data) for e in PHALA_TDX.evidence().endorsements]


def _anchor(der: bytes) -> standalone.Anchor:
    return x509.load_der_x509_certificate(der), der


def judged(
    quote: bytes, endorsements: list[tuple[str, bytes]], *, real: bool = False
) -> tuple[str, set[str]]:
    anchor, at = (INTEL, PHALA_TDX.at) if real else (SIMULATED, SIM_AT)
    binding = standalone.binding_of(str(RESULT))
    return standalone.judge("intel-tdx", quote, [_anchor(anchor)], None, at, binding, endorsements)


def test_the_quotes_are_judged_with_their_collateral() -> None:
    """The baseline the properties below start from: each quote passes (but for the missing
    reference values, with which the intake judges under an accept-any policy)."""
    assert judged(SIM_QUOTE, SIM_COLLATERAL) == ("contraindicated", {"no_reference_values"})
    status, codes = judged(REAL_QUOTE, REAL_COLLATERAL, real=True)
    assert status == "contraindicated"
    assert codes == {"no_reference_values", "result_binding_mismatch"}
    policy = standalone.dcap_policy(
        [{"mr_td": PLATFORM.measurement.hex()}],
        standalone.DCAP_DEFAULTS["intel-tdx"],
        timedelta(seconds=60),
    )
    binding = standalone.binding_of(str(RESULT))
    verdict = standalone.judge(
        "intel-tdx", SIM_QUOTE, [_anchor(SIMULATED)], policy, SIM_AT, binding, SIM_COLLATERAL
    )
    assert verdict == ("affirming", set())


def _one_code(status: str, codes: set[str]) -> None:
    assert status == "contraindicated"
    assert len(codes - {"no_reference_values"}) == 1, codes
    assert codes - {"no_reference_values"} <= CODES, codes


def _changed(data: bytes, at: int, xor: int) -> bytes:
    at %= len(data)
    return data[:at] + bytes([data[at] ^ xor]) + data[at + 1 :]


@SETTINGS
@given(
    quote=st.one_of(
        st.binary(max_size=6000),
        st.binary(min_size=48, max_size=48)
        .filter(lambda header: header != SIM_QUOTE[:48])
        .map(lambda header: header + SIM_QUOTE[48:]),
        st.tuples(st.integers(0, len(SIM_QUOTE) - 1), st.integers(1, 255)).map(
            lambda change: _changed(SIM_QUOTE, *change)
        ),
        st.integers(0, len(SIM_QUOTE) - 1).map(lambda end: SIM_QUOTE[:end]),
    )
)
def test_arbitrary_bytes_as_a_quote_are_contraindicated_with_a_code(quote: bytes) -> None:
    """Any bytes, any header on a real body, or the quote with one byte changed (all of it
    is signed, certified or a length) or cut short. The one change that keeps the verdict:
    the PCK chain's PEM text is not signed, and PEM tolerates other whitespace between its
    lines; the certificates, which are, stay the same (so must the verdict)."""
    status, codes = judged(quote, SIM_COLLATERAL)
    if codes == {"no_reference_values"}:
        assert _certificates(quote) == _certificates(SIM_QUOTE) != []
        # a change inside the chain's PEM text (it starts at its first BEGIN line; the chain
        # is three certificates, so where it starts is not a fixed distance from the end)
        start = SIM_QUOTE.index(b"-----BEGIN CERTIFICATE-----")
        assert len(quote) == len(SIM_QUOTE)
        assert quote[:start] == SIM_QUOTE[:start]
        return
    _one_code(status, codes)


def _certificates(quote: bytes) -> list[bytes]:
    chain = standalone.dcap_quote(quote)["chain"]
    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(chain)]


@SETTINGS
@given(
    at=st.integers(0, len(REAL_QUOTE) - 1),
    xor=st.integers(1, 255),
)
def test_a_real_quote_with_one_byte_changed_is_contraindicated_with_a_code(
    at: int, xor: int
) -> None:
    """Intel's real TDX quote, which ends in 70 zero bytes that are not signed: a change
    there is a malformed quote, anywhere else it breaks a length, a signature or a chain
    (but for whitespace in the chain's PEM text: see above)."""
    quote = _changed(REAL_QUOTE, at, xor)
    status, codes = judged(quote, REAL_COLLATERAL, real=True)
    if codes == {"no_reference_values", "result_binding_mismatch"}:
        assert _certificates(quote) == _certificates(REAL_QUOTE) != []
        return
    _one_code(status, codes - {"result_binding_mismatch"})


@SETTINGS
@given(
    data=st.data(),
    kind=st.sampled_from(KINDS),
    document=st.binary(max_size=3000),
)
def test_arbitrary_bytes_as_any_collateral_document_never_raise(
    data: st.DataObject, kind: str, document: bytes
) -> None:
    """One document of the collateral replaced by any bytes of any kind, or by itself with a
    byte changed (all of it is signed), or added beside the rest."""
    real = data.draw(st.booleans())
    collateral = list(REAL_COLLATERAL if real else SIM_COLLATERAL)
    at = data.draw(st.integers(0, len(collateral) - 1))
    how = data.draw(st.sampled_from(["replace", "change", "add"]))
    if how == "replace":
        collateral[at] = (kind, document)
    elif how == "change":
        collateral[at] = (
            collateral[at][0],
            _changed(collateral[at][1], data.draw(st.integers(0, 10**6)), 1 + at),
        )
    else:
        collateral.insert(at, (kind, document))
    status, codes = judged(REAL_QUOTE if real else SIM_QUOTE, collateral, real=real)
    assert status == "contraindicated"
    assert "no_reference_values" in codes
    assert codes - {"no_reference_values", "result_binding_mismatch"} <= CODES
    assert len(codes) <= 2, codes


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1, 2**33) | st.text(max_size=20)
    | st.sampled_from(["UpToDate", "OutOfDate", "Revoked", "TDX", "TD_QE", "SGX", "QE",
                       "2026-06-01T12:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
                       "00" * 6, "FF" * 16, "00" * 48, "FF FF FF", "00 " * 5 + "0"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=5),
    max_leaves=20,
)  # fmt: skip


def _document(member: str) -> tuple[int, dict[str, Any]]:
    index = 0 if member == "tcbInfo" else 1
    body = SIM_COLLATERAL[index][1]
    text = body[len(member) + 4 : body.rindex(b',"signature":"')]
    return index, json.loads(text)


@SETTINGS
@given(
    member=st.sampled_from(["tcbInfo", "enclaveIdentity"]),
    path=st.lists(st.integers(0, 50), min_size=1, max_size=4),
    value=JSON,
    whole=st.booleans(),
)
def test_signed_collateral_of_any_shape_is_contraindicated_with_a_code(
    member: str, path: list[int], value: Any, whole: bool
) -> None:
    """A TCB info or QE identity signed by the (simulated) TCB Signing key, so that it gets
    past its signature, whose JSON is anything: or the real one with one value anywhere in it
    replaced by anything. The verdict is the quote's own, or contraindicated with one code."""
    index, document = _document(member)
    if whole:
        document = value
    else:
        node: Any = document
        for step in path:
            children = list(node) if isinstance(node, dict) else range(len(node))
            key = list(children)[step % len(children)] if children else None
            if key is None:
                break
            if isinstance(node[key], dict | list) and node[key] and step % 3:
                node = node[key]
                continue
            node[key] = value
            break
    text = json.dumps(document, separators=(",", ":")).encode()
    collateral = list(SIM_COLLATERAL)
    collateral[index] = (
        collateral[index][0],
        pcs_body(member, text, intel_pki().tcb_signing.private_key),
    )
    status, codes = judged(SIM_QUOTE, collateral)
    assert status == "contraindicated"
    assert "no_reference_values" in codes
    assert len(codes - {"no_reference_values"}) <= 1, codes
    assert codes - {"no_reference_values", "tcb_status"} <= CODES, codes


def test_intel_roots_are_trust_anchors() -> None:
    assert standalone.load_anchor(INTEL).subject == intel_sgx_root_ca().certificate.subject
    assert standalone.load_anchor(SIMULATED)
    with pytest.raises(standalone.Bad):
        standalone.load_anchor(intel_pki().tcb_signing.der)  # not a CA
    with pytest.raises(standalone.Bad):
        standalone.load_anchor(intel_pki().platform_ca.der)  # not self-signed


def _policy(**changes: Any) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "images": [
            {"name": "td", "kind": "intel-tdx",
             "reference": {"mr_td": "aa" * 48, "rtmr3": "00" * 48}},
            {"name": "enclave", "kind": "intel-sgx",
             "reference": {"mr_signer": "bb" * 32, "isv_prod_id": 1, "min_isv_svn": 2}},
        ],
        "allow_debug": False, "max_age_seconds": 300, "clock_skew_seconds": 60,
        "workers": {"w": ["td", "enclave"]},
        "schemes": {
            "intel-tdx": {"allow_debug": True, "xfam_allowed": ["e702060000000000"],
                          "min_tee_tcb_svn": "00" * 16, "tcb_status": {"OutOfDate": "warning"},
                          "allowed_advisories": ["INTEL-SA-00615"]},
            "intel-sgx": {"tcb_status": {}, "allowed_advisories": None},
        },
    }  # fmt: skip
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = snapshot
        for name in parents:
            node = node[int(name)] if isinstance(node, list) else node[name]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return snapshot


def test_a_recorded_policy_with_tdx_and_sgx_images_and_settings_is_read() -> None:
    from attest_ledger.bundles.verify import _check_policy

    snapshot = _policy()
    assert standalone.policy_problem(snapshot) is None
    _check_policy(snapshot)
    tdx = standalone.worker_policy(snapshot, "w", "intel-tdx")
    assert tdx is not None
    assert tdx["images"] == [{"mr_td": b"\xaa" * 48, "rtmr3": bytes(48)}]
    assert tdx["xfam_allowed"] == [bytes.fromhex("e702060000000000")]
    assert tdx["tcb_status"]["OutOfDate"] == "warning"
    assert tdx["allowed_advisories"] == {"INTEL-SA-00615"}
    assert tdx["skew"] == timedelta(seconds=60)
    sgx = standalone.worker_policy(snapshot, "w", "intel-sgx")
    assert sgx is not None
    assert sgx["images"] == [{"mr_signer": b"\xbb" * 32, "isv_prod_id": 1, "min_isv_svn": 2}]
    assert sgx["tcb_status"]["OutOfDate"] == "contraindicated"
    assert standalone.worker_policy(snapshot, "other", "intel-tdx") is None


@pytest.mark.parametrize(
    "changes",
    [
        {"images__0__reference__mr_td": "aa" * 47},
        {"images__0__reference__mr_td": KeyError},
        {"images__0__reference__rtmr4": "00" * 48},
        {"images__0__reference__mr_td": "zz" * 48},
        {"images__0__kind": "intel-tdx-2"},
        {"images__1__reference__mr_signer": KeyError},
        {"images__1__reference__isv_prod_id": True},
        {"images__1__reference__min_isv_svn": 65536},
        {"images__1__reference__mr_td": "aa" * 48},
        {"schemes__intel-tdx__allow_debug": "yes"},
        {"schemes__intel-tdx__xfam_allowed": []},
        {"schemes__intel-tdx__xfam_allowed": ["e7020600"]},
        {"schemes__intel-tdx__min_tee_tcb_svn": "00" * 15},
        {"schemes__intel-tdx__tcb_status": {"Revoked": "warning"}},
        {"schemes__intel-tdx__tcb_status": {"OutOfDate": "affirming"}},
        {"schemes__intel-tdx__tcb_status": {"Unknown": "warning"}},
        {"schemes__intel-tdx__tcb_status": {"OutOfDate": "fine"}},
        {"schemes__intel-tdx__allowed_advisories": ["CVE-2024-0001"]},
        {"schemes__intel-tdx__allowed_advisories": "INTEL-SA-00615"},
        {"schemes__intel-sgx__xfam_allowed": None},  # a TDX setting
        {"schemes__intel-sgx__unsafe_accept_any": True},
        {"schemes__intel-sgx": []},
    ],
)
def test_malformed_tdx_and_sgx_policies_are_refused(changes: dict[str, Any]) -> None:
    """By the standalone verifier, and by the project's, alike."""
    from attest_ledger.bundles.verify import _check_policy
    from attest_ledger.policy_store import PolicyError

    assert standalone.policy_problem(_policy(**changes)) == "not a recorded policy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)  # unsafe_accept_any, then refused
        with pytest.raises(PolicyError):
            _check_policy(_policy(**changes))


@pytest.mark.parametrize(
    ("member", "key", "value", "expected"),
    [
        # bytes.fromhex skips whitespace: 8 characters, 3 bytes, against a 4-byte MISCSELECT
        ("enclaveIdentity", "miscselectMask", "FF FF FF", {"malformed"}),
        ("enclaveIdentity", "attributesMask", "FF" * 14 + " F F", {"malformed"}),
        # the year 1 less the clock skew is no date; the document is simply current
        ("tcbInfo", "issueDate", "0001-01-01T00:00:00Z", set()),
        ("enclaveIdentity", "issueDate", "0001-01-01T00:00:30Z", set()),
        ("tcbInfo", "nextUpdate", "9999-12-31T23:59:59-01:00", set()),
    ],
)
def test_signed_collateral_the_project_verifier_raises_on_is_judged(
    member: str, key: str, value: str, expected: set[str]
) -> None:
    """Values that made the project's verifier raise (ValueError from its mask comparison,
    OverflowError from subtracting the clock skew: found by this judge, issue #12) are judged
    by both, fail closed, never an exception, and alike."""
    from attest_ledger.explain import judge_again
    from verifier import (
        DcapVerifier,
        Endorsement,
        EndorsementKind,
        Evidence,
        EvidenceKind,
        ResultHash,
        TrustAnchor,
    )

    index, document = _document(member)
    document[key] = value
    text = json.dumps(document, separators=(",", ":")).encode()
    collateral = list(SIM_COLLATERAL)
    signer = intel_pki().tcb_signing.private_key
    collateral[index] = (collateral[index][0], pcs_body(member, text, signer))
    assert judged(SIM_QUOTE, collateral) == ("contraindicated", {"no_reference_values", *expected})
    project = DcapVerifier(trust_anchors=[TrustAnchor.from_der(SIMULATED, name="simulated")])
    evidence = Evidence(
        EvidenceKind.INTEL_TDX,
        SIM_QUOTE,
        tuple(Endorsement(EndorsementKind(kind), data) for kind, data in collateral),
    )
    status, _, reasons = judge_again(
        evidence, project, None, ResultHash.parse(str(RESULT)), at=SIM_AT
    )
    assert (status, {code for code, _ in reasons}) == (
        "contraindicated",
        {"no_reference_values", *expected},
    )
