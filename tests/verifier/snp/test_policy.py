"""The SEV-SNP policy: every violation with its own code, collected together; the
report_data binding; the JSON form."""

from __future__ import annotations

import dataclasses
import json
import warnings
from datetime import UTC, datetime

import pytest

from tests.verifier.snp import pki
from tests.verifier.snp.pki import AT, ReportFields, SnpTestPki
from tests.verifier.snp.support import SNP_AT, VIRTEE, accept_any
from verifier import (
    DOCUMENT_TIME,
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    NitroVerifier,
    Policy,
    PolicyInvalid,
    PolicyViolation,
    ReferenceImage,
    ResultHash,
    SnpPolicy,
    SnpReferenceImage,
    SnpVerifier,
    Status,
    UnsafeAcceptAnySnpPolicy,
    UnsafePolicyWarning,
    policy_from_json,
    report_data,
)

MEASUREMENT = ReportFields().measurement
NONCE = bytes(range(32))
RESULT = ResultHash.of(b"the job's result")


@pytest.fixture(scope="module")
def milan() -> SnpTestPki:
    return pki.milan_pki()


@pytest.fixture(scope="module")
def verifier(milan: SnpTestPki) -> SnpVerifier:
    return SnpVerifier(trust_anchors=[milan.anchor])


def signed(test_pki: SnpTestPki, fields: ReportFields) -> Evidence:
    vek = test_pki.vcek(fields)
    return Evidence(
        EvidenceKind.AMD_SEV_SNP,
        pki.sign_report(fields.body(), vek.key),
        (
            Endorsement(EndorsementKind.VCEK, vek.der),
            Endorsement(EndorsementKind.ASK, test_pki.ask),
        ),
    )


def policy(**overrides: object) -> SnpPolicy:
    arguments: dict[str, object] = {
        "name": "snp",
        "images": (SnpReferenceImage("inference-snp-v1", MEASUREMENT),),
    }
    arguments.update(overrides)
    return SnpPolicy(**arguments)


def violations(
    verifier: SnpVerifier, item: Evidence, snp_policy: SnpPolicy, **kwargs: object
) -> list[str]:
    with pytest.raises(PolicyViolation) as caught:
        verifier.verify(item, at=AT, policy=snp_policy, **kwargs)
    assert caught.value.code == "policy_violation"
    assert caught.value.result.status is Status.CONTRAINDICATED
    return [v.code for v in caught.value.violations]


def test_a_matching_report_is_affirmed(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    result = verifier.verify(signed(milan, ReportFields()), at=AT, policy=policy())
    assert result.status is Status.AFFIRMING
    assert result.matched_reference == "inference-snp-v1"
    assert result.policy.policy_id.startswith("snp@sha256:")


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("measurement", "measurement_mismatch"),
        ("host_data", "host_data_mismatch"),
        ("id_key_digest", "id_key_mismatch"),
        ("author_key_digest", "author_key_mismatch"),
        ("family_id", "family_id_mismatch"),
        ("image_id", "image_id_mismatch"),
    ],
)
def test_each_reference_value_has_its_code(
    verifier: SnpVerifier, milan: SnpTestPki, field: str, code: str
) -> None:
    fields = ReportFields(flags=1)  # author_key_en, so that author_key_digest is meaningful
    size = len(getattr(fields, field))
    expected = {
        name: getattr(fields, name)
        for name in ("host_data", "id_key_digest", "author_key_digest", "family_id", "image_id")
    }
    expected[field] = bytes([0xAA]) * size
    image = SnpReferenceImage(
        "v1",
        MEASUREMENT if field != "measurement" else bytes(48),
        **{k: v for k, v in expected.items() if k != "measurement"},
    )
    if field == "measurement":
        image = dataclasses.replace(image, measurement=bytes([0xAA]) * 48)
    assert violations(verifier, signed(milan, fields), policy(images=(image,))) == [code]


def test_an_author_key_is_required_when_the_image_names_one(
    verifier: SnpVerifier, milan: SnpTestPki
) -> None:
    fields = ReportFields(flags=0)  # author_key_en clear
    image = SnpReferenceImage("v1", MEASUREMENT, author_key_digest=fields.author_key_digest)
    with pytest.raises(PolicyViolation, match=r"launched without an author key"):
        verifier.verify(signed(milan, fields), at=AT, policy=policy(images=(image,)))


def test_the_first_matching_image_wins_and_otherwise_the_closest_is_reported(
    verifier: SnpVerifier, milan: SnpTestPki
) -> None:
    other = SnpReferenceImage("old", bytes(48), host_data=bytes([1]) * 32)
    near = SnpReferenceImage("near", bytes([2]) * 48)
    good = SnpReferenceImage("current", MEASUREMENT)
    result = verifier.verify(
        signed(milan, ReportFields()), at=AT, policy=policy(images=(other, good))
    )
    assert result.matched_reference == "current"
    assert violations(verifier, signed(milan, ReportFields()), policy(images=(other, near))) == [
        "measurement_mismatch"
    ]


def test_guest_policy_rules(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    fields = ReportFields(policy=0x30000 | 1 << 19 | 1 << 18, vmpl=2)
    codes = violations(verifier, signed(milan, fields), policy(allow_smt=False, max_vmpl=1))
    assert codes == [
        "debug_mode",
        "smt_not_allowed",
        "migration_agent_not_allowed",
        "vmpl_too_high",
    ]


def test_debug_allowed_is_a_warning(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    fields = ReportFields(policy=0x30000 | 1 << 19)
    result = verifier.verify(signed(milan, fields), at=AT, policy=policy(allow_debug=True))
    assert result.status is Status.WARNING
    assert result.trustworthiness_vector()["configuration"] == 32
    assert any("debug allowed" in note for note in result.notes)


def test_smt_disallowed_by_the_guest_passes_a_strict_policy(
    verifier: SnpVerifier, milan: SnpTestPki
) -> None:
    fields = ReportFields(policy=0x20000)  # bit 16 clear: no SMT
    result = verifier.verify(signed(milan, fields), at=AT, policy=policy(allow_smt=False))
    assert result.status is Status.AFFIRMING


def test_a_host_requested_report_exceeds_any_vmpl(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    fields = ReportFields(vmpl=0xFFFFFFFF)
    with pytest.raises(PolicyViolation, match=r"requested by the host") as caught:
        verifier.verify(signed(milan, fields), at=AT, policy=policy(max_vmpl=3))
    assert [v.code for v in caught.value.violations] == ["vmpl_too_high"]


def test_minimum_tcb_per_component(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    minimum = {"bootloader": 4, "tee": 0, "snp": 9, "microcode": 115, "fmc": 1}
    with pytest.raises(PolicyViolation) as caught:
        verifier.verify(signed(milan, ReportFields()), at=AT, policy=policy(min_tcb=minimum))
    found = [(v.code, v.component) for v in caught.value.violations]
    assert found == [("tcb_too_old", "bootloader"), ("tcb_too_old", "snp")]
    assert caught.value.result.trustworthiness_vector()["hardware"] == 96
    assert any("min_tcb fmc does not apply to Milan" in n for n in caught.value.result.notes)
    assert caught.value.to_dict()["violations"][0]["component"] == "bootloader"
    met = {"bootloader": 3, "snp": 8, "microcode": 115}
    result = verifier.verify(signed(milan, ReportFields()), at=AT, policy=policy(min_tcb=met))
    assert result.status is Status.AFFIRMING


# --- the report_data binding -----------------------------------------------------------------


def test_a_bound_report_is_affirmed_with_both_checks(
    verifier: SnpVerifier, milan: SnpTestPki
) -> None:
    fields = ReportFields(report_data=report_data(NONCE, RESULT))
    result = verifier.verify(
        signed(milan, fields), at=AT, policy=policy(), nonce=NONCE, result_hash=RESULT
    )
    assert result.status is Status.AFFIRMING
    assert result.nonce_checked
    assert result.result_binding_checked
    vector = result.trustworthiness_vector()
    assert vector["runtime-opaque"] == vector["sourced-data"] == 2


def test_binding_violations(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    bound = signed(milan, ReportFields(report_data=report_data(NONCE, RESULT)))
    assert violations(verifier, bound, policy(), nonce=bytes(reversed(NONCE))) == ["nonce_mismatch"]
    assert violations(verifier, bound, policy(), result_hash=ResultHash.of(b"another")) == [
        "result_binding_mismatch"
    ]
    # The result hash must be bound in report_data as its SHA-256, not as user_data itself.
    assert violations(verifier, bound, policy(), nonce=NONCE[:16]) == ["nonce_mismatch"]
    unbound = signed(milan, ReportFields(report_data=bytes(64)))
    assert violations(verifier, unbound, policy(), nonce=NONCE, result_hash=RESULT) == [
        "nonce_missing",
        "result_binding_missing",
    ]
    # Only the half that is given is checked.
    half = signed(milan, ReportFields(report_data=NONCE + bytes(32)))
    assert verifier.verify(half, at=AT, policy=policy(), nonce=NONCE).status is Status.AFFIRMING


def test_every_violation_is_reported_at_once(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    fields = ReportFields(policy=0x30000 | 1 << 19, vmpl=1, measurement=bytes(48))
    codes = violations(
        verifier,
        signed(milan, fields),
        policy(min_tcb={"microcode": 200}),
        nonce=NONCE,
        result_hash=RESULT,
    )
    assert codes == [
        "debug_mode",
        "vmpl_too_high",
        "measurement_mismatch",
        "tcb_too_old",
        "nonce_missing",
        "result_binding_missing",
    ]


def test_the_real_report_data_is_not_our_binding() -> None:
    with pytest.raises(PolicyViolation) as caught:
        SnpVerifier().verify(
            VIRTEE.evidence(), at=SNP_AT, policy=VIRTEE.policy(), nonce=NONCE, result_hash=RESULT
        )
    assert [v.code for v in caught.value.violations] == [
        "nonce_mismatch",
        "result_binding_mismatch",
    ]


# --- the JSON form ---------------------------------------------------------------------------

DESIGN_EXAMPLE = {
    "name": "inference-snp",
    "evidence_kind": "amd-sev-snp",
    "images": [
        {
            "name": "inference-snp-v1",
            "measurement": "ab" * 48,
            "host_data": "01" * 32,
            "id_key_digest": "02" * 48,
            "author_key_digest": "03" * 48,
            "family_id": "04" * 16,
            "image_id": "05" * 16,
        },
        {"name": "inference-snp-v2", "measurement": "CD" * 48},
    ],
    "allow_debug": False,
    "allow_smt": True,
    "allow_migration_agent": False,
    "max_vmpl": 0,
    "min_tcb": {"bootloader": 0, "tee": 0, "snp": 0, "microcode": 0, "fmc": 0},
    "clock_skew_seconds": 60,
}


def test_the_design_example_round_trips() -> None:
    parsed = SnpPolicy.from_json(json.dumps(DESIGN_EXAMPLE))
    assert parsed.images[1].measurement == bytes([0xCD]) * 48
    assert parsed.images[0].family_id == bytes([4]) * 16
    again = SnpPolicy.from_dict(parsed.to_dict())
    assert again.to_dict() == parsed.to_dict()
    assert again.digest == parsed.digest
    assert policy_from_json(json.dumps(DESIGN_EXAMPLE)).digest == parsed.digest
    assert SnpPolicy.from_dict({**DESIGN_EXAMPLE, "max_vmpl": 1}).digest != parsed.digest


def test_the_json_form_has_no_floating_point() -> None:
    """What the ledger records is canonical JSON, which has no floating-point numbers."""
    parsed = SnpPolicy.from_json(json.dumps(DESIGN_EXAMPLE))
    assert parsed.to_dict()["clock_skew_seconds"] == 60
    assert isinstance(parsed.to_dict()["clock_skew_seconds"], int)
    assert json.dumps(parsed.to_dict()).count(".") == 0


def test_defaults() -> None:
    minimal = SnpPolicy.from_dict(
        {
            "name": "m",
            "evidence_kind": "amd-sev-snp",
            "images": [{"name": "a", "measurement": "00" * 48}],
        }
    )
    assert (minimal.allow_debug, minimal.allow_smt, minimal.allow_migration_agent) == (
        False,
        True,
        False,
    )
    assert minimal.max_vmpl == 0
    assert dict(minimal.min_tcb) == {}
    assert minimal.clock_skew.total_seconds() == 60


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": []}, "lists no reference images"),
        ({"evidence_kind": "aws-nitro-enclave"}, "needs evidence_kind 'amd-sev-snp'"),
        ({"colour": "red"}, "unknown key"),
        ({"max_vmpl": 4}, "max_vmpl must be 0..3"),
        ({"max_vmpl": True}, "'max_vmpl' must be an integer"),
        ({"min_tcb": {"ucode": 1}}, "min_tcb names 'ucode'"),
        ({"min_tcb": {"snp": 256}}, "min_tcb snp must be an integer 0..255"),
        ({"min_tcb": {"snp": 1.5}}, "min_tcb snp must be an integer 0..255"),
        ({"allow_smt": "yes"}, "'allow_smt' must be true or false"),
        ({"images": [{"name": "a", "measurement": "00" * 47}]}, "measurement must be 48 bytes"),
        ({"images": [{"name": "a", "measurement": "zz" * 48}]}, "not hexadecimal"),
        ({"images": [{"name": "a"}]}, "'measurement' is required"),
        ({"images": [{"name": "a", "measurement": "00" * 48, "pcrs": {}}]}, "unknown key"),
        (
            {"images": [{"name": "a", "measurement": "00" * 48, "host_data": "00" * 48}]},
            "host_data must be 32 bytes",
        ),
        (
            {"images": [{"name": "a", "measurement": "00" * 48}] * 2},
            "names must be unique",
        ),
        ({"clock_skew_seconds": -1}, "clock_skew_seconds"),
    ],
)
def test_bad_policies_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyInvalid, match=message):
        SnpPolicy.from_dict({**DESIGN_EXAMPLE, **change})


def test_accept_any_is_explicit_and_warns() -> None:
    with pytest.warns(UnsafePolicyWarning, match=r"accepts any launch measurement"):
        unsafe = policy_from_json('{"evidence_kind": "amd-sev-snp", "unsafe_accept_any": true}')
    assert isinstance(unsafe, UnsafeAcceptAnySnpPolicy)
    assert unsafe.to_dict()["unsafe_accept_any"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        with pytest.raises(PolicyInvalid, match=r"takes no reference images"):
            SnpPolicy.from_dict({**DESIGN_EXAMPLE, "unsafe_accept_any": True})


def test_accept_any_is_at_best_a_warning(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    result = verifier.verify(signed(milan, ReportFields()), at=AT, policy=accept_any())
    assert result.status is Status.WARNING
    assert result.trustworthiness_vector()["executables"] == 32


def test_each_scheme_takes_only_its_own_policy(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    nitro_policy = Policy(name="n", images=(ReferenceImage("i", {0: bytes(48)}),))
    with pytest.raises(PolicyInvalid, match=r"an SEV-SNP report needs an SEV-SNP policy"):
        verifier.verify(signed(milan, ReportFields()), at=AT, policy=nitro_policy)
    with pytest.raises(PolicyInvalid, match=r"a Nitro document needs a Nitro policy"):
        NitroVerifier().verify(b"", at=AT, policy=policy())
    with pytest.raises(PolicyInvalid, match=r"a Nitro policy judges"):
        Policy(
            name="n",
            images=(ReferenceImage("i", {0: bytes(48)}),),
            evidence_kind=EvidenceKind.AMD_SEV_SNP,
        )


def test_time_is_an_aware_datetime(verifier: SnpVerifier, milan: SnpTestPki) -> None:
    item = signed(milan, ReportFields())
    with pytest.raises(ValueError, match=r"timezone-aware"):
        verifier.verify(item, at=datetime(2026, 6, 1), policy=policy())
    with pytest.raises(TypeError, match=r"carries no time"):
        verifier.verify(item, at=DOCUMENT_TIME, policy=policy())
    assert verifier.verify(item, at=AT.astimezone(UTC), policy=policy()).verified_at == AT
