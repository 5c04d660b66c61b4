"""Property tests: whatever the report, endorsements or policy, the SEV-SNP scheme raises
only our own errors (a VerifierError, or PolicyInvalid for a policy) and never another
exception; no warning escapes either (pytest turns warnings into errors here). No time is
asserted; pytest-timeout bounds each test."""

from __future__ import annotations

import contextlib
import os
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verifier.snp import pki
from tests.verifier.snp.pki import AT, ReportFields
from tests.verifier.snp.support import GENOA, REAL_REPORTS, SNP_AT, VIRTEE, VLEK, accept_any
from verifier import (
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    PolicyInvalid,
    SnpPolicy,
    SnpVerifier,
    UnsafePolicyWarning,
    VerifierError,
    detect_kind,
)

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
VERIFIER = SnpVerifier()
POLICY = accept_any()
KINDS = list(EndorsementKind)


def verify_any(evidence: Evidence, verifier: SnpVerifier = VERIFIER, at=SNP_AT) -> None:
    with contextlib.suppress(VerifierError):
        verifier.verify(evidence, at=at, policy=POLICY)


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.binary(min_size=1184, max_size=1184),
        st.binary(min_size=0x2A0, max_size=0x2A0).map(lambda b: b + bytes(0x4A0 - 0x2A0)),
    )
)
def test_arbitrary_bytes_raise_only_our_errors(data: bytes) -> None:
    verify_any(VIRTEE.evidence(data=data))
    detect_kind(data)  # never raises
    with contextlib.suppress(VerifierError):
        VERIFIER.describe(VIRTEE.evidence(data=data))


@SETTINGS
@given(
    st.sampled_from(REAL_REPORTS),
    st.lists(st.tuples(st.integers(0, 1183), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutated_real_reports_raise_only_our_errors(sample, changes) -> None:
    data = bytearray(sample.bytes())
    for offset, value in changes:
        data[offset] = value
    verify_any(sample.evidence(data=bytes(data)))


@SETTINGS
@given(
    st.sampled_from([VIRTEE, VLEK, GENOA]),
    st.lists(st.tuples(st.sampled_from(KINDS), st.binary(max_size=300)), max_size=4),
)
def test_arbitrary_endorsements_raise_only_our_errors(sample, extra) -> None:
    endorsements = tuple(Endorsement(kind, data) for kind, data in extra)
    verify_any(Evidence(EvidenceKind.AMD_SEV_SNP, sample.bytes(), endorsements))
    verify_any(sample.evidence(*endorsements))


@SETTINGS
@given(
    st.sampled_from([VIRTEE, GENOA, VLEK]),
    st.lists(st.tuples(st.integers(0, 1500), st.integers(0, 7)), min_size=1, max_size=4),
)
def test_mutated_keys_raise_only_our_errors(sample, flips) -> None:
    """Bit flips in a real serial-0 VCEK/VLEK: parse errors, broken links and mismatches,
    never another exception or an escaping CryptographyDeprecationWarning."""
    der = bytearray(sample.key_der())
    for offset, bit in flips:
        der[offset % len(der)] ^= 1 << bit
    verify_any(
        Evidence(EvidenceKind.AMD_SEV_SNP, sample.bytes(), (Endorsement(sample.kind, bytes(der)),))
    )


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 7)), min_size=1, max_size=4))
def test_mutated_crls_raise_only_our_errors(flips) -> None:
    crl = bytearray(CRL)
    for offset, bit in flips:
        crl[offset % len(crl)] ^= 1 << bit
    verify_any(_with(TEST_ITEM, Endorsement(EndorsementKind.CRL, bytes(crl))), TEST_VERIFIER, AT)


report_fields = st.builds(
    ReportFields,
    version=st.sampled_from([2, 3, 5]),
    policy=st.integers(0, 2**64 - 1),
    vmpl=st.sampled_from([0, 1, 2, 3, 4, 0xFFFFFFFF]),
    flags=st.integers(0, 63),
    reported_tcb=st.binary(min_size=8, max_size=8),
    cpuid=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    report_data=st.binary(min_size=64, max_size=64),
)


@SETTINGS
@given(report_fields)
def test_signed_reports_with_arbitrary_fields_raise_only_our_errors(fields: ReportFields) -> None:
    """Reports the test PKI signs, with arbitrary values in the fields that steer parsing
    and appraisal: a verdict or one of our errors."""
    milan = pki.milan_pki()
    vek = milan.vcek(ReportFields())
    item = Evidence(
        EvidenceKind.AMD_SEV_SNP,
        pki.sign_report(fields.body(), vek.key),
        (Endorsement(EndorsementKind.VCEK, vek.der), Endorsement(EndorsementKind.ASK, milan.ask)),
    )
    verify_any(item, TEST_VERIFIER, AT)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-300, 300) | st.floats() | st.text(max_size=100),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=15,
)
POLICY_KEYS = st.sampled_from(
    ["name", "evidence_kind", "images", "allow_debug", "allow_smt", "allow_migration_agent",
     "max_vmpl", "min_tcb", "clock_skew_seconds", "unsafe_accept_any"]
)  # fmt: skip


@SETTINGS
@given(st.dictionaries(POLICY_KEYS, json_values, max_size=10), json_values)
def test_arbitrary_policies_raise_only_policy_invalid(data, image) -> None:
    data = {**data, "evidence_kind": "amd-sev-snp"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        for candidate in (data, {**data, "images": [image]}):
            with contextlib.suppress(PolicyInvalid):
                SnpPolicy.from_dict(candidate)


def _with(item: Evidence, extra: Endorsement) -> Evidence:
    return Evidence(item.kind, item.data, (*item.endorsements, extra))


def _test_item() -> tuple[SnpVerifier, Evidence, bytes]:
    milan = pki.milan_pki()
    vek = milan.vcek(ReportFields())
    item = Evidence(
        EvidenceKind.AMD_SEV_SNP,
        pki.sign_report(ReportFields().body(), vek.key),
        (Endorsement(EndorsementKind.VCEK, vek.der), Endorsement(EndorsementKind.ASK, milan.ask)),
    )
    return (
        SnpVerifier(trust_anchors=[milan.anchor]),
        item,
        pki.crl("ARK-Milan", milan.ark_key, [1, 2]),
    )


TEST_VERIFIER, TEST_ITEM, CRL = _test_item()
