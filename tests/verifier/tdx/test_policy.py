"""TdxPolicy and SgxPolicy: reference images, debug, XFAM, SVN minimums, TCB status tiers and
advisory allow-lists, nonce and result binding; their JSON forms. TCB statuses other than the
real samples' come from the test PKI's collateral."""

from __future__ import annotations

import json
import warnings

import pytest

from tests.verifier.tdx import pki
from tests.verifier.tdx.support import PHALA_SGX, PHALA_TDX
from verifier import (
    DcapClaims,
    DcapVerifier,
    PolicyInvalid,
    PolicyViolation,
    ResultHash,
    SgxPolicy,
    SgxReferenceImage,
    Status,
    TdxPolicy,
    TdxReferenceImage,
    UnsafeAcceptAnySgxPolicy,
    UnsafeAcceptAnyTdxPolicy,
    UnsafePolicyWarning,
    policy_from_dict,
    policy_from_json,
    report_data,
)

VERIFIER = DcapVerifier()
SIMULATED = DcapVerifier(trust_anchors=[pki.anchor()])
TD_IMAGE = TdxReferenceImage("td", pki.MR_TD)
SGX_IMAGE = SgxReferenceImage("enclave", mr_enclave=pki.MR_ENCLAVE, mr_signer=pki.MR_SIGNER)


def td_policy(**overrides: object) -> TdxPolicy:
    arguments: dict[str, object] = {"name": "p", "images": (TD_IMAGE,)}
    arguments.update(overrides)
    return TdxPolicy(**arguments)  # type: ignore[arg-type]


def sgx_policy(**overrides: object) -> SgxPolicy:
    arguments: dict[str, object] = {"name": "p", "images": (SGX_IMAGE,)}
    arguments.update(overrides)
    return SgxPolicy(**arguments)  # type: ignore[arg-type]


def codes(error: PolicyViolation) -> list[str]:
    return [v.code for v in error.violations]


# --- images and rules --------------------------------------------------------------------


def test_a_matching_td_is_affirming() -> None:
    result = SIMULATED.verify(pki.Platform().evidence(), at=pki.AT, policy=td_policy())
    assert result.status is Status.AFFIRMING
    assert result.matched_reference == "td"
    assert result.trustworthiness["executables"] == "affirming"


def test_td_image_mismatches() -> None:
    image = TdxReferenceImage("td", bytes(48), rtmr3=b"\x01" * 48, mr_owner=b"\x02" * 48)
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(pki.Platform().evidence(), at=pki.AT, policy=td_policy(images=(image,)))
    assert codes(caught.value) == ["mrtd_mismatch", "rtmr_mismatch", "mrowner_mismatch"]
    assert caught.value.result.status is Status.CONTRAINDICATED
    # The closest image is reported; another image that matches wins.
    both = td_policy(images=(image, TdxReferenceImage("rtmr", pki.MR_TD, rtmr3=bytes(48))))
    result = SIMULATED.verify(pki.Platform().evidence(), at=pki.AT, policy=both)
    assert result.matched_reference == "rtmr"


def test_a_debug_td_is_refused_unless_allowed() -> None:
    evidence = pki.Platform().evidence(debug=True)
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(evidence, at=pki.AT, policy=td_policy())
    assert codes(caught.value) == ["debug_mode"]
    assert isinstance(caught.value.claims, DcapClaims)
    assert caught.value.claims.to_dict()["debug"] is True
    allowed = SIMULATED.verify(evidence, at=pki.AT, policy=td_policy(allow_debug=True))
    assert allowed.status is Status.WARNING
    assert allowed.trustworthiness["configuration"] == "warning"


def test_xfam_allow_list_and_minimum_tee_tcb_svn() -> None:
    evidence = pki.Platform().evidence()
    policy = td_policy(xfam_allowed=(bytes(8),), min_tee_tcb_svn=bytes([12]) + bytes(15))
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(evidence, at=pki.AT, policy=policy)
    assert codes(caught.value) == ["xfam_not_allowed", "tee_tcb_svn_too_old"]
    fine = td_policy(
        xfam_allowed=(bytes.fromhex("e702060000000000"),), min_tee_tcb_svn=pki.TEE_TCB_SVN
    )
    assert SIMULATED.verify(evidence, at=pki.AT, policy=fine).status is Status.AFFIRMING


def test_sgx_images() -> None:
    platform = pki.Platform(tdx=False, tcb_levels=[pki.tcb_level(tdx=None)])
    assert (
        SIMULATED.verify(platform.evidence(), at=pki.AT, policy=sgx_policy()).status
        is Status.AFFIRMING
    )
    signer_only = SgxReferenceImage("s", mr_signer=pki.MR_SIGNER, isv_prod_id=1, min_isv_svn=2)
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(
            platform.evidence(isv_svn=1), at=pki.AT, policy=sgx_policy(images=(signer_only,))
        )
    assert codes(caught.value) == ["isv_prod_id_mismatch", "isv_svn_too_old"]
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(platform.evidence(debug=True), at=pki.AT, policy=sgx_policy())
    assert codes(caught.value) == ["debug_mode"]
    other = SgxReferenceImage("o", mr_enclave=bytes(32))
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(platform.evidence(), at=pki.AT, policy=sgx_policy(images=(other,)))
    assert codes(caught.value) == ["mrenclave_mismatch"]


def test_nonce_and_result_binding_in_report_data() -> None:
    nonce = bytes(range(32))
    result_hash = ResultHash.of(b"result")
    evidence = pki.Platform().evidence(report_data=report_data(nonce, result_hash))
    result = SIMULATED.verify(
        evidence, at=pki.AT, policy=td_policy(), nonce=nonce, result_hash=result_hash
    )
    assert result.nonce_checked
    assert result.result_binding_checked
    assert result.trustworthiness["runtime-opaque"] == "affirming"
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(
            evidence,
            at=pki.AT,
            policy=td_policy(),
            nonce=bytes(32) + b"",
            result_hash=ResultHash.of(b"other"),
        )
    assert codes(caught.value) == ["nonce_mismatch", "result_binding_mismatch"]
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(pki.Platform().evidence(), at=pki.AT, policy=td_policy(), nonce=nonce)
    assert codes(caught.value) == ["nonce_missing"]


# --- TCB status and advisories -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "tier"),
    [
        ("UpToDate", Status.AFFIRMING),
        ("SWHardeningNeeded", Status.WARNING),
        ("ConfigurationNeeded", Status.WARNING),
        ("ConfigurationAndSWHardeningNeeded", Status.WARNING),
        ("OutOfDate", None),
        ("OutOfDateConfigurationNeeded", None),
        ("Revoked", None),
    ],
)
def test_default_tcb_status_tiers(status: str, tier: Status | None) -> None:
    platform = pki.Platform(tcb_levels=[pki.tcb_level(status)])
    if tier is None:
        with pytest.raises(PolicyViolation) as caught:
            SIMULATED.verify(platform.evidence(), at=pki.AT, policy=td_policy())
        assert codes(caught.value) == ["tcb_status"]
        assert caught.value.result.trustworthiness["hardware"] == "contraindicated"
    else:
        result = SIMULATED.verify(platform.evidence(), at=pki.AT, policy=td_policy())
        assert result.status is tier
        assert result.claims.to_dict()["tcb_status"] == status


def test_out_of_date_may_be_mapped_to_warning_revoked_never() -> None:
    platform = pki.Platform(tcb_levels=[pki.tcb_level("OutOfDate")])
    lenient = td_policy(tcb_status={"OutOfDate": "warning"})
    assert SIMULATED.verify(platform.evidence(), at=pki.AT, policy=lenient).status is Status.WARNING
    with pytest.raises(PolicyInvalid, match="Revoked TCB is always contraindicated"):
        td_policy(tcb_status={"Revoked": "warning"})
    with pytest.raises(PolicyInvalid, match="only UpToDate may be affirming"):
        td_policy(tcb_status={"OutOfDate": "affirming"})
    strict = td_policy(tcb_status={"SWHardeningNeeded": "contraindicated"})
    sw = pki.Platform(tcb_levels=[pki.tcb_level("SWHardeningNeeded")])
    with pytest.raises(PolicyViolation):
        SIMULATED.verify(sw.evidence(), at=pki.AT, policy=strict)


def test_the_first_level_the_platform_reaches_decides() -> None:
    higher = pki.tcb_level("UpToDate", pce_svn=pki.PCE_SVN + 1)
    platform = pki.Platform(
        tcb_levels=[higher, pki.tcb_level("SWHardeningNeeded", advisories=("INTEL-SA-00615",))]
    )
    result = SIMULATED.verify(platform.evidence(), at=pki.AT, policy=td_policy())
    assert result.claims.to_dict()["tcb_status"] == "SWHardeningNeeded"
    assert result.claims.to_dict()["advisory_ids"] == ["INTEL-SA-00615"]


def test_an_out_of_date_qe_or_tdx_module_lowers_the_platform() -> None:
    qe = pki.Platform(qe_levels=[(8, "UpToDate"), (6, "OutOfDate")])
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(qe.evidence(), at=pki.AT, policy=td_policy())
    assert caught.value.result.claims.to_dict()["tcb_status"] == "OutOfDate"
    config = pki.Platform(
        tcb_levels=[pki.tcb_level("ConfigurationNeeded")],
        modules=[pki.module_identity(levels=((12, "UpToDate"), (4, "OutOfDate")))],
    )
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(config.evidence(), at=pki.AT, policy=td_policy())
    tcb = caught.value.result.claims.to_dict()
    assert tcb["tcb_status"] == "OutOfDateConfigurationNeeded"
    revoked = pki.Platform(qe_levels=[(8, "UpToDate"), (6, "Revoked")])
    with pytest.raises(PolicyViolation) as caught:
        SIMULATED.verify(
            revoked.evidence(), at=pki.AT, policy=td_policy(tcb_status={"OutOfDate": "warning"})
        )
    assert caught.value.result.claims.to_dict()["tcb_status"] == "Revoked"


def test_advisories_warn_without_a_list_and_refuse_outside_one() -> None:
    evidence = PHALA_SGX.evidence()
    listed = PHALA_SGX.policy(allowed_advisories=("INTEL-SA-00289", "INTEL-SA-00615"))
    result = VERIFIER.verify(evidence, at=PHALA_SGX.at, policy=listed)
    assert result.status is Status.WARNING  # ConfigurationAndSWHardeningNeeded still warns
    with pytest.raises(PolicyViolation) as caught:
        VERIFIER.verify(
            evidence,
            at=PHALA_SGX.at,
            policy=PHALA_SGX.policy(allowed_advisories=("INTEL-SA-00615",)),
        )
    assert codes(caught.value) == ["advisory_not_allowed"]
    assert "INTEL-SA-00289" in caught.value.violations[0].message
    # UpToDate with an advisory and no list: warning.
    platform = pki.Platform(tcb_levels=[pki.tcb_level(advisories=("INTEL-SA-00999",))])
    assert (
        SIMULATED.verify(platform.evidence(), at=pki.AT, policy=td_policy()).status
        is Status.WARNING
    )


def test_the_real_tdx_sample_with_its_own_image_and_a_wrong_one() -> None:
    assert (
        VERIFIER.verify(PHALA_TDX.evidence(), at=PHALA_TDX.at, policy=PHALA_TDX.policy()).status
        is Status.AFFIRMING
    )
    with pytest.raises(PolicyViolation) as caught:
        VERIFIER.verify(PHALA_TDX.evidence(), at=PHALA_TDX.at, policy=td_policy())
    assert codes(caught.value) == ["mrtd_mismatch"]


# --- JSON forms --------------------------------------------------------------------------


def test_tdx_policy_json_round_trip() -> None:
    policy = td_policy(
        images=(TdxReferenceImage("td", pki.MR_TD, rtmr0=b"\x01" * 48, mr_config_id=b"\x02" * 48),),
        xfam_allowed=(bytes.fromhex("e702060000000000"),),
        min_tee_tcb_svn=pki.TEE_TCB_SVN,
        tcb_status={"OutOfDate": "warning"},
        allowed_advisories=("INTEL-SA-00615",),
    )
    data = policy.to_dict()
    assert data["tcb_status"]["OutOfDate"] == "warning"  # type: ignore[index]
    assert data["tcb_status"]["UpToDate"] == "affirming"  # type: ignore[index]
    again = policy_from_json(json.dumps(data))
    assert isinstance(again, TdxPolicy)
    assert again.to_dict() == data
    assert again.digest == policy.digest
    assert policy.policy_id.startswith("p@sha256:")


def test_sgx_policy_json_round_trip() -> None:
    policy = sgx_policy(
        images=(SgxReferenceImage("e", mr_signer=pki.MR_SIGNER, isv_prod_id=0, min_isv_svn=1),)
    )
    again = policy_from_dict(json.loads(json.dumps(policy.to_dict())))
    assert isinstance(again, SgxPolicy)
    assert again.to_dict() == policy.to_dict()
    assert again.to_dict()["allowed_advisories"] is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "p", "evidence_kind": "intel-tdx", "images": []}, "lists no reference images"),
        (
            {"name": "p", "evidence_kind": "intel-tdx", "images": [{"name": "i"}]},
            "'mr_td' is required",
        ),
        ({"name": "p", "evidence_kind": "intel-tdx", "extra": 1}, "unknown key"),
        (
            {"name": "p", "evidence_kind": "intel-tdx", "images": [{"name": "i", "mr_td": "00"}]},
            "48 bytes",
        ),
        (
            {
                "name": "p",
                "evidence_kind": "intel-tdx",
                "images": [{"name": "i", "mr_td": "00" * 48}],
                "allowed_advisories": ["CVE-1"],
            },
            "not an Intel advisory ID",
        ),
        (
            {
                "name": "p",
                "evidence_kind": "intel-tdx",
                "images": [{"name": "i", "mr_td": "00" * 48}],
                "tcb_status": {"Fine": "warning"},
            },
            "tcb_status names",
        ),
        (
            {"name": "p", "evidence_kind": "intel-sgx", "images": [{"name": "i"}]},
            "mr_enclave, mr_signer",
        ),
        (
            {
                "name": "p",
                "evidence_kind": "intel-sgx",
                "images": [{"name": "i", "mr_signer": "00" * 32, "isv_prod_id": -1}],
            },
            "0..65535",
        ),
    ],
)
def test_unusable_policies(data: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyInvalid, match=message):
        policy_from_dict(data)


def test_unsafe_accept_any_warns_and_caps_at_warning() -> None:
    with pytest.warns(UnsafePolicyWarning):
        tdx = UnsafeAcceptAnyTdxPolicy()
    with pytest.warns(UnsafePolicyWarning):
        policy_from_dict({"evidence_kind": "intel-sgx", "unsafe_accept_any": True})
    assert tdx.to_dict()["unsafe_accept_any"] is True
    result = SIMULATED.verify(pki.Platform().evidence(), at=pki.AT, policy=tdx)
    assert result.status is Status.WARNING
    assert result.trustworthiness["executables"] == "warning"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        with pytest.raises(PolicyInvalid, match="takes no reference images"):
            UnsafeAcceptAnySgxPolicy(images=(SGX_IMAGE,))
