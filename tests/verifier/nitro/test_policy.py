"""Policy construction (fail closed) and appraisal (every violation reported together)."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.support import SIM_AT, simulated_nsm
from verifier import (
    DOCUMENT_TIME,
    EvidenceKind,
    Policy,
    PolicyInvalid,
    PolicyViolation,
    ReferenceImage,
    ResultHash,
    Status,
    TimeBasis,
    UnsafeAcceptAnyPolicy,
    UnsafePolicyWarning,
)

PCR = bytes(range(48))


def image(name: str = "img", **pcrs: bytes) -> ReferenceImage:
    return ReferenceImage(name, {int(k[3:]): v for k, v in pcrs.items()} or {0: PCR})


class TestConstruction:
    def test_an_empty_policy_is_refused(self) -> None:
        with pytest.raises(PolicyInvalid, match="lists no reference images") as caught:
            Policy(name="empty", images=())
        assert caught.value.code == "policy_invalid"

    def test_accept_any_must_be_asked_for_and_warns(self) -> None:
        with pytest.warns(UnsafePolicyWarning, match="accepts any enclave measurement"):
            policy = UnsafeAcceptAnyPolicy()
        assert policy.accepts_any_measurement
        assert policy.to_dict()["unsafe_accept_any"] is True

    def test_accept_any_takes_no_images(self) -> None:
        with (
            pytest.warns(UnsafePolicyWarning),
            pytest.raises(PolicyInvalid, match="takes no reference images"),
        ):
            UnsafeAcceptAnyPolicy(images=(image(),))

    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (lambda: ReferenceImage("", {0: PCR}), "non-empty name"),
            (lambda: ReferenceImage("a", {}), "lists no PCR values"),
            (lambda: ReferenceImage("a", {32: PCR}), "outside 0..31"),
            (lambda: ReferenceImage("a", {-1: PCR}), "outside 0..31"),
            (lambda: ReferenceImage("a", {0: PCR[:47]}), "PCR0 must be 48 bytes"),
            (lambda: Policy(name="", images=(image(),)), "non-empty name"),
            (lambda: Policy(name="p", images=(image("x"), image("x"))), "must be unique"),
            (
                lambda: Policy(name="p", images=(image(),), max_age=timedelta(0)),
                "max_age must be positive",
            ),
            (
                lambda: Policy(name="p", images=(image(),), clock_skew=timedelta(seconds=-1)),
                "must not be negative",
            ),
        ],
    )
    def test_bad_values_are_refused(self, make, message) -> None:
        with pytest.raises(PolicyInvalid, match=message):
            make()

    def test_json_round_trip_and_stable_digest(self) -> None:
        policy = Policy(
            name="inference-prod",
            images=(
                image("v1", pcr0=PCR, pcr1=PCR[::-1]),
                image("v2", pcr0=bytes(48)[:47] + b"\x01"),
            ),
            allow_debug=False,
            max_age=timedelta(minutes=10),
            clock_skew=timedelta(seconds=30),
        )
        again = Policy.from_json(json.dumps(policy.to_dict()))
        assert again == policy
        assert again.digest == policy.digest
        assert policy.policy_id == f"inference-prod@sha256:{policy.digest}"
        changed = replace(policy, allow_debug=True)
        assert changed.digest != policy.digest

    def test_json_accept_any_needs_the_explicit_key_and_warns(self) -> None:
        with pytest.raises(PolicyInvalid, match="lists no reference images"):
            Policy.from_json('{"name": "p"}')
        with pytest.warns(UnsafePolicyWarning):
            policy = Policy.from_json('{"unsafe_accept_any": true}')
        assert isinstance(policy, UnsafeAcceptAnyPolicy)

    def test_json_null_max_age_means_unlimited(self) -> None:
        text = json.dumps({"name": "p", "images": [image().to_dict()], "max_age_seconds": None})
        assert Policy.from_json(text).max_age is None
        assert Policy.from_json(
            json.dumps({"name": "p", "images": [image().to_dict()]})
        ).max_age == timedelta(minutes=5)

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("not json", "not valid JSON"),
            ("[]", "expected a JSON object"),
            ('{"name": "p", "images": [], "colour": 1}', "unknown key(s) 'colour'"),
            (
                '{"name": 5, "images": [{"name": "a", "pcrs": {"0": "' + "00" * 48 + '"}}]}',
                "'name' must be a string",
            ),
            ('{"name": "p", "images": {}}', "'images' must be a list"),
            ('{"name": "p", "images": [{"name": "a"}]}', "exactly 'name' and 'pcrs'"),
            ('{"name": "p", "images": [{"name": "a", "pcrs": {"x": "00"}}]}', "is not a number"),
            ('{"name": "p", "images": [{"name": "a", "pcrs": {"0": "zz"}}]}', "not hexadecimal"),
            ('{"name": "p", "images": [{"name": "a", "pcrs": {"0": 5}}]}', "must be a hex string"),
            ('{"name": "p", "images": [{"name": "a", "pcrs": {"0": "00"}}]}', "must be 48 bytes"),
            ('{"name": "p", "evidence_kind": "sgx", "images": []}', "evidence_kind must be one of"),
            (
                '{"name": "p", "allow_debug": "yes", "images": []}',
                "'allow_debug' must be true or false",
            ),
            ('{"name": "p", "max_age_seconds": "5", "images": []}', "must be a number of seconds"),
            ('{"name": "p", "max_age_seconds": -5, "images": []}', "must be between"),
            (
                '{"name": "p", "clock_skew_seconds": null, "images": []}',
                "must be a number of seconds",
            ),
            ('{"unsafe_accept_any": "yes"}', "'unsafe_accept_any' must be true or false"),
        ],
    )
    def test_json_errors_say_what_is_wrong(self, document, message) -> None:
        with pytest.raises(PolicyInvalid) as caught:
            Policy.from_json(document)
        assert message in caught.value.message


class TestAppraisal:
    def test_affirming_with_matched_image_and_per_pcr_appraisal(
        self, sim_nsm, sim_verifier
    ) -> None:
        other = ReferenceImage("other", {0: PCR})
        mine = ReferenceImage("mine", {i: sim_nsm.pcrs[i] for i in (0, 1, 2)})
        policy = Policy(name="p", images=(other, mine))
        result = sim_verifier.verify(sim_nsm.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy)
        assert result.status is Status.AFFIRMING
        assert result.matched_image == "mine"
        by_index = {p.index: p for p in result.pcr_appraisals}
        assert by_index[0].matched_images == ("mine",)
        assert by_index[0].referenced
        assert not by_index[5].referenced

    def test_pcr_mismatch_names_index_expected_and_found(self, sim_nsm, sim_verifier) -> None:
        policy = Policy(name="p", images=(ReferenceImage("prod", {0: sim_nsm.pcrs[0], 2: PCR}),))
        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(sim_nsm.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy)
        (violation,) = caught.value.violations
        assert violation.code == "pcr_mismatch"
        assert violation.pcr_index == 2
        assert PCR.hex() in violation.message
        assert sim_nsm.pcrs[2].hex() in violation.message
        assert "'prod'" in violation.message
        assert caught.value.code == "policy_violation"
        assert caught.value.result.status is Status.CONTRAINDICATED

    def test_closest_image_is_reported(self, sim_nsm, sim_verifier) -> None:
        far = ReferenceImage("far", {0: PCR, 1: PCR, 2: PCR})
        near = ReferenceImage("near", {0: sim_nsm.pcrs[0], 1: sim_nsm.pcrs[1], 2: PCR})
        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(
                sim_nsm.attest(timestamp=SIM_AT),
                at=SIM_AT,
                policy=Policy(name="p", images=(far, near)),
            )
        assert [v.pcr_index for v in caught.value.violations] == [2]
        assert "'near'" in caught.value.violations[0].message

    def test_a_pcr_the_document_lacks_is_a_mismatch(self, sim_nsm, sim_verifier) -> None:
        policy = Policy(name="p", images=(ReferenceImage("x", {20: PCR}),))
        with pytest.raises(PolicyViolation, match=r"PCR20: expected .* found no such PCR"):
            sim_verifier.verify(sim_nsm.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy)

    def test_all_violations_are_reported_together(self, sim_pki, sim_verifier) -> None:
        nsm = simulated_nsm(sim_pki, debug=True)
        policy = Policy(
            name="p", images=(ReferenceImage("prod", {1: PCR}),), max_age=timedelta(minutes=1)
        )
        raw = nsm.attest(timestamp=SIM_AT, nonce=b"old", user_data=b"something else")
        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(
                raw,
                at=SIM_AT + timedelta(minutes=10),
                policy=policy,
                nonce=b"fresh",
                result_hash=ResultHash.of(b"result"),
            )
        codes = [v.code for v in caught.value.violations]
        assert codes == [
            "debug_mode",
            "pcr_mismatch",
            "document_too_old",
            "nonce_mismatch",
            "result_binding_mismatch",
        ]
        vector = caught.value.result.trustworthiness_vector()
        assert vector["executables"] == 96
        assert vector["sourced-data"] == 96

    def test_nonce(self, sim_nsm, sim_verifier, sim_policy) -> None:
        raw = sim_nsm.attest(timestamp=SIM_AT, nonce=b"challenge-1")
        assert sim_verifier.verify(
            raw, at=SIM_AT, policy=sim_policy, nonce=b"challenge-1"
        ).nonce_checked
        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(raw, at=SIM_AT, policy=sim_policy, nonce=b"challenge-2")
        assert [v.code for v in caught.value.violations] == ["nonce_mismatch"]
        without = sim_nsm.attest(timestamp=SIM_AT)
        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(without, at=SIM_AT, policy=sim_policy, nonce=b"challenge-1")
        assert [v.code for v in caught.value.violations] == ["nonce_missing"]

    def test_result_binding(self, sim_nsm, sim_verifier, sim_policy) -> None:
        result_hash = ResultHash.of(b"the model's answer")
        raw = sim_nsm.attest(timestamp=SIM_AT, user_data=result_hash.user_data())
        result = sim_verifier.verify(raw, at=SIM_AT, policy=sim_policy, result_hash=result_hash)
        assert result.result_binding_checked
        assert result.trustworthiness_vector()["sourced-data"] == 2

        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(
                raw, at=SIM_AT, policy=sim_policy, result_hash=ResultHash.of(b"another answer")
            )
        assert [v.code for v in caught.value.violations] == ["result_binding_mismatch"]

        # The bare digest, without the versioned prefix, is not a binding.
        bare = sim_nsm.attest(timestamp=SIM_AT, user_data=result_hash.digest)
        with pytest.raises(PolicyViolation, match=r"expected the binding"):
            sim_verifier.verify(bare, at=SIM_AT, policy=sim_policy, result_hash=result_hash)

        nothing = sim_nsm.attest(timestamp=SIM_AT)
        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(nothing, at=SIM_AT, policy=sim_policy, result_hash=result_hash)
        assert [v.code for v in caught.value.violations] == ["result_binding_missing"]

    def test_maximum_age(self, sim_nsm, sim_verifier, sim_policy) -> None:
        raw = sim_nsm.attest(timestamp=SIM_AT)
        assert sim_verifier.verify(raw, at=SIM_AT + timedelta(minutes=5), policy=sim_policy)
        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(
                raw, at=SIM_AT + timedelta(minutes=5, milliseconds=1), policy=sim_policy
            )
        assert [v.code for v in caught.value.violations] == ["document_too_old"]
        unlimited = replace(sim_policy, max_age=None)
        result = sim_verifier.verify(raw, at=SIM_AT + timedelta(hours=2), policy=unlimited)
        assert "no maximum document age" in " ".join(result.notes)

    def test_documents_from_the_future_beyond_the_skew(
        self, sim_nsm, sim_verifier, sim_policy
    ) -> None:
        raw = sim_nsm.attest(timestamp=SIM_AT + timedelta(seconds=50))
        assert sim_verifier.verify(raw, at=SIM_AT, policy=sim_policy).status is Status.AFFIRMING
        late = sim_nsm.attest(timestamp=SIM_AT + timedelta(seconds=61))
        with pytest.raises(PolicyViolation) as caught:
            sim_verifier.verify(late, at=SIM_AT, policy=sim_policy)
        assert [v.code for v in caught.value.violations] == ["document_from_future"]

    def test_verifying_as_of_the_document_time_skips_age_and_says_so(
        self, sim_nsm, sim_verifier, sim_policy
    ) -> None:
        raw = sim_nsm.attest(timestamp=SIM_AT + timedelta(minutes=30))
        result = sim_verifier.verify(raw, at=DOCUMENT_TIME, policy=sim_policy)
        assert result.time_basis is TimeBasis.DOCUMENT
        assert result.verified_at == SIM_AT + timedelta(minutes=30)
        assert any("own timestamp" in note for note in result.notes)

    def test_accept_any_is_warning_at_best(self, sim_nsm, sim_verifier) -> None:
        with pytest.warns(UnsafePolicyWarning):
            policy = UnsafeAcceptAnyPolicy()
        result = sim_verifier.verify(sim_nsm.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy)
        assert result.status is Status.WARNING
        assert result.trustworthiness_vector()["executables"] == 32

    def test_accept_any_still_refuses_debug(self, sim_pki, sim_verifier) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            policy = UnsafeAcceptAnyPolicy()
        raw = simulated_nsm(sim_pki, debug=True).attest(timestamp=SIM_AT)
        with pytest.raises(PolicyViolation, match="debug"):
            sim_verifier.verify(raw, at=SIM_AT, policy=policy)

    def test_naive_or_missing_time_is_a_programming_error(
        self, sim_nsm, sim_verifier, sim_policy
    ) -> None:
        raw = sim_nsm.attest(timestamp=SIM_AT)
        with pytest.raises(ValueError, match="timezone-aware"):
            sim_verifier.verify(raw, at=SIM_AT.replace(tzinfo=None), policy=sim_policy)
        with pytest.raises(TypeError, match=r"verifier\.Policy"):
            sim_verifier.verify(raw, at=SIM_AT, policy={"name": "p"})  # type: ignore[arg-type]

    def test_ear_form(self, sim_nsm, sim_verifier, sim_policy) -> None:
        result = sim_verifier.verify(
            sim_nsm.attest(timestamp=SIM_AT, nonce=b"n"), at=SIM_AT, policy=sim_policy, nonce=b"n"
        )
        ear = result.to_ear()
        json.dumps(ear)  # JSON-ready
        appraisal = ear["submods"][EvidenceKind.AWS_NITRO_ENCLAVE.value]
        assert appraisal["ear.status"] == "affirming"
        assert appraisal["ear.appraisal-policy-id"] == sim_policy.policy_id
        assert appraisal["ear.trustworthiness-vector"] == {
            "hardware": 2,
            "instance-identity": 2,
            "executables": 2,
            "sourced-data": 0,
            "runtime-opaque": 2,
        }
        claims = appraisal["attestation-ledger.claims"]
        assert claims["module_id"] == sim_nsm.pki.module_id
        assert claims["nonce"] == b"n".hex()
        assert len(claims["certificates"]) == 5
        assert ear["iat"] == int(SIM_AT.timestamp())
