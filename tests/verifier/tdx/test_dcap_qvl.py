"""The second evaluation: Phala's dcap-qvl (PyPI 0.7.0, a Rust core; a test and benchmark
dependency only) on every real sample and on simulated quotes, which must agree with ours:
the same TCB status and advisory IDs, or both refusing.

dcap-qvl is the peer the issue names. It refuses on its own account what our scheme leaves to
the policy (a debug TD or enclave), so the comparison is of authenticity and TCB evaluation:
our outcome is the TCB status of authentic evidence (whatever the policy then says), or a
refusal."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

import dcap_qvl
import pytest

from tests.verifier.tdx import pki
from tests.verifier.tdx.support import REAL_QUOTES, RealQuote
from verifier import (
    DcapVerifier,
    Evidence,
    PolicyViolation,
    UnsafeAcceptAnySgxPolicy,
    UnsafeAcceptAnyTdxPolicy,
    UnsafePolicyWarning,
    VerifierError,
)
from verifier.policy import SchemePolicy

VERIFIER = DcapVerifier()
SIMULATED = DcapVerifier(trust_anchors=[pki.anchor()])
LENIENT = {"OutOfDate": "warning", "OutOfDateConfigurationNeeded": "warning"}
Outcome = tuple[str, tuple[str, ...]] | None


def _policy(tdx: bool) -> SchemePolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        if tdx:
            return UnsafeAcceptAnyTdxPolicy(tcb_status=LENIENT, clock_skew=timedelta(0))
        return UnsafeAcceptAnySgxPolicy(tcb_status=LENIENT, clock_skew=timedelta(0))


def ours(verifier: DcapVerifier, evidence: Evidence, at: datetime, tdx: bool) -> Outcome:
    try:
        result = verifier.verify(evidence, at=at, policy=_policy(tdx))
    except PolicyViolation as exc:  # authentic: the policy refused (Revoked, ...)
        result = exc.result
    except VerifierError:
        return None
    claims = result.claims.to_dict()
    if claims["tcb_status"] == "Revoked":
        return None  # always contraindicated (no policy can accept it); dcap-qvl errors
    return str(claims["tcb_status"]), tuple(claims["advisory_ids"])  # type: ignore[arg-type]


def theirs(quote: bytes, collateral: str, at: datetime, root: bytes | None = None) -> Outcome:
    parsed = dcap_qvl.QuoteCollateralV3.from_json(collateral)
    try:
        if root is None:
            report = dcap_qvl.verify(quote, parsed, int(at.timestamp()))
        else:
            report = dcap_qvl.verify_with_root_ca(quote, parsed, root, int(at.timestamp()))
    except ValueError:
        return None
    return report.status, tuple(report.advisory_ids)


def _instants(sample: RealQuote) -> list[datetime]:
    return [
        sample.at,
        sample.latest_issue,
        sample.latest_issue - timedelta(seconds=1),
        sample.earliest_next_update - timedelta(seconds=1),
        sample.earliest_next_update + timedelta(seconds=1),
    ]


@pytest.mark.parametrize("sample", REAL_QUOTES, ids=lambda s: s.quote)
def test_both_evaluations_agree_on_every_real_sample(sample: RealQuote) -> None:
    collateral = sample.collateral_bytes().decode()
    tdx = sample.kind.value == "intel-tdx"
    for at in _instants(sample):
        mine = ours(VERIFIER, sample.evidence(), at, tdx)
        peer = theirs(sample.bytes(), collateral, at)
        assert mine == peer, at
    expected = None if sample.status is None else (sample.status, sample.advisories)
    assert ours(VERIFIER, sample.evidence(), sample.at, tdx) == expected


def test_the_one_instant_where_they_differ_is_the_end_of_a_window() -> None:
    # At exactly a nextUpdate instant, dcap-qvl still accepts a TCB info or QE identity (it
    # refuses only after it) and already refuses a CRL; we treat every nextUpdate alike, as
    # the instant the document is stale. The SGX sample's window ends on its QE identity's.
    from tests.verifier.tdx.support import PHALA_SGX, PHALA_TDX

    end = PHALA_SGX.earliest_next_update
    assert ours(VERIFIER, PHALA_SGX.evidence(), end, False) is None
    assert theirs(PHALA_SGX.bytes(), PHALA_SGX.collateral_bytes().decode(), end) is not None
    end = PHALA_TDX.earliest_next_update  # a CRL's nextUpdate: both refuse
    assert ours(VERIFIER, PHALA_TDX.evidence(), end, True) is None
    assert theirs(PHALA_TDX.bytes(), PHALA_TDX.collateral_bytes().decode(), end) is None


SIMULATED_PLATFORMS = {
    "tdx-up-to-date": pki.Platform(),
    "tdx-v5": pki.Platform(),
    "sgx-up-to-date": pki.Platform(tdx=False, tcb_levels=[pki.tcb_level(tdx=None)]),
    "sw-hardening": pki.Platform(
        tcb_levels=[pki.tcb_level("SWHardeningNeeded", advisories=("INTEL-SA-00615",))]
    ),
    "out-of-date": pki.Platform(
        tcb_levels=[pki.tcb_level("OutOfDate", advisories=("INTEL-SA-00001", "INTEL-SA-00002"))]
    ),
    "first-level-too-high": pki.Platform(
        tcb_levels=[
            pki.tcb_level(pce_svn=pki.PCE_SVN + 1),
            pki.tcb_level("ConfigurationAndSWHardeningNeeded", advisories=("INTEL-SA-00289",)),
        ]
    ),
    "no-matching-level": pki.Platform(tcb_levels=[pki.tcb_level(pce_svn=pki.PCE_SVN + 1)]),
    "tdx-module-out-of-date": pki.Platform(
        modules=[pki.module_identity(levels=((12, "UpToDate"), (4, "OutOfDate")))]
    ),
    "qe-out-of-date": pki.Platform(qe_levels=[(8, "UpToDate"), (6, "OutOfDate")]),
    "qe-revoked": pki.Platform(qe_levels=[(8, "UpToDate"), (6, "Revoked")]),
    "config-and-qe-out-of-date": pki.Platform(
        tcb_levels=[pki.tcb_level("ConfigurationNeeded")],
        qe_levels=[(8, "UpToDate"), (6, "OutOfDate")],
    ),
    "revoked-pck": pki.Platform(revoked_pck=(0x1234,)),
    "qe-not-intels": pki.Platform(qe_mrsigner=bytes(32)),
    "fmspc-of-another-platform": pki.Platform(fmspc=bytes.fromhex("00A067110000")),
}


@pytest.mark.parametrize("name", sorted(SIMULATED_PLATFORMS))
def test_both_evaluations_agree_on_simulated_quotes(name: str) -> None:
    platform = SIMULATED_PLATFORMS[name]
    quote = platform.quote(version=5) if name == "tdx-v5" else platform.quote()
    evidence = platform.evidence(quote)
    collateral = pki.dcap_qvl_json(platform)
    for at in (pki.AT, pki.NEXT_UPDATE + timedelta(seconds=1)):
        mine = ours(SIMULATED, evidence, at, platform.tdx)
        peer = theirs(quote, collateral, at, pki.root_der())
        assert mine == peer, (name, at)


def test_a_collateral_that_does_not_match_the_quote_is_refused_by_both() -> None:
    # FMSPC of the PCK certificate differs from the TCB info's.
    platform = pki.Platform()
    other = pki.Platform(fmspc=bytes.fromhex("00A067110000"))
    evidence = Evidence(platform.evidence().kind, platform.quote(), other.collateral())
    assert ours(SIMULATED, evidence, pki.AT, True) is None
    assert theirs(platform.quote(), pki.dcap_qvl_json(other), pki.AT, pki.root_der()) is None
