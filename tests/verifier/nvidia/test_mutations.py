"""Every rule of the NVIDIA scheme against fresh reports signed by a test PKI (five P-384
certificates, leaf first), so that each mutation keeps a valid signature and fails on its
own rule only."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.verifier.nvidia.support import (
    AT,
    accept_any,
    build_report,
    default_opaque,
    evidence,
    make_pki,
    policy_for,
)
from verifier import (
    ChainInvalid,
    Endorsement,
    EndorsementKind,
    EndorsementMismatch,
    EvidenceTooLarge,
    FwidMismatch,
    MalformedEvidence,
    PolicyInvalid,
    PolicyViolation,
    ResultHash,
    SignatureInvalid,
    Status,
    UnsupportedEvidence,
    gpu_nonce,
)
from verifier.nvidia import NvidiaPolicy, parse_report

FWID = hashlib.sha384(b"firmware").digest()
PKI = make_pki(fwid=FWID)
VERIFIER = PKI.verifier()


def verify(data: bytes, policy: NvidiaPolicy | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    return VERIFIER.verify(
        evidence(data, *PKI.endorsements()),
        at=AT,
        policy=policy or policy_for(),
        **kwargs,  # type: ignore[arg-type]
    )


def violations(data: bytes, policy: NvidiaPolicy | None = None, **kwargs: object) -> list[str]:
    with pytest.raises(PolicyViolation) as info:
        verify(data, policy, **kwargs)
    return [v.code for v in info.value.violations]


def test_a_fresh_report_verifies_and_its_fwid_is_checked() -> None:
    result = verify(build_report(PKI.keys[0], fields=default_opaque(FWID)))
    assert result.status is Status.WARNING  # no RIMs: measurements not compared
    assert result.claims.to_dict()["fwid_checked"] is True
    assert result.matched_reference == "img"


def test_a_blackwell_leaf_fwid_is_read_from_its_dice_tcb_info() -> None:
    pki = make_pki(leaf_cn="GB100 A01 GSP FMC LF", fwid=FWID, blackwell=True)
    data = build_report(pki.keys[0], fields=default_opaque(FWID, flag=1))
    result = pki.verifier().verify(
        evidence(data, *pki.endorsements()), at=AT, policy=policy_for("BLACKWELL")
    )
    assert result.claims.to_dict()["arch"] == "BLACKWELL"
    assert result.claims.to_dict()["fwid_checked"] is True
    other = build_report(pki.keys[0], fields=default_opaque(bytes(48)))
    with pytest.raises(FwidMismatch):
        pki.verifier().verify(
            evidence(other, *pki.endorsements()), at=AT, policy=policy_for("BLACKWELL")
        )


def test_a_validly_signed_report_with_another_fwid_is_refused() -> None:
    with pytest.raises(FwidMismatch, match="not the leaf's"):
        verify(build_report(PKI.keys[0], fields=default_opaque(bytes(48))))


def test_a_fwid_in_the_report_but_none_in_the_leaf_is_refused() -> None:
    pki = make_pki(fwid=None)
    with pytest.raises(FwidMismatch, match="certifies none"):
        pki.verifier().verify(
            evidence(build_report(pki.keys[0], fields=default_opaque(FWID)), *pki.endorsements()),
            at=AT,
            policy=policy_for(),
        )


def test_a_flipped_measurement_byte_breaks_the_signature() -> None:
    data = bytearray(build_report(PKI.keys[0], fields=default_opaque(FWID)))
    data[60] ^= 1  # inside block 1's value
    with pytest.raises(SignatureInvalid):
        verify(bytes(data))


def test_a_report_signed_by_another_key_fails() -> None:
    other = make_pki(fwid=FWID)
    with pytest.raises(SignatureInvalid):
        verify(build_report(other.keys[0], fields=default_opaque(FWID)))


def test_trailing_bytes_are_not_signed_and_are_reported() -> None:
    result = verify(build_report(PKI.keys[0], fields=default_opaque(FWID), trailing=b"\x00\x01"))
    assert result.claims.to_dict()["trailing_bytes"] == 2


def test_the_gpu_nonce_binds_challenge_result_and_index() -> None:
    challenge, result = bytes(range(32)), ResultHash.of(b"result")
    nonce = gpu_nonce(challenge, result, 1)
    data = build_report(PKI.keys[0], nonce=nonce, fields=default_opaque(FWID))
    assert verify(data, nonce=nonce, result_hash=result).nonce_checked
    for other in (
        gpu_nonce(challenge, result, 0),
        gpu_nonce(bytes(32), result, 1),
        gpu_nonce(challenge, ResultHash.of(b"other"), 1),
    ):
        assert violations(data, nonce=other) == ["nonce_mismatch"]
    with pytest.raises(ValueError, match="only through its nonce"):
        verify(data, result_hash=result)


def test_gpu_nonce_layout_is_exact() -> None:
    challenge, result = b"\x07" * 32, ResultHash.of(b"r")
    expected = hashlib.sha256(
        b"attestation-ledger:gpu-nonce:v1:"
        + challenge
        + hashlib.sha256(result.user_data()).digest()
        + b"\x02"
    ).digest()
    assert gpu_nonce(challenge, result, 2) == expected
    with pytest.raises(ValueError, match="32 bytes"):
        gpu_nonce(b"short", result, 0)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        gpu_nonce(challenge, result, 256)


def test_versions_arch_and_feature_flags_are_appraised_together() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID, flag=0))
    policy = NvidiaPolicy.from_dict(
        {
            "name": "p",
            "evidence_kind": "nvidia-gpu",
            "images": [
                {
                    "name": "i",
                    "arch": "HOPPER",
                    "driver_versions": ["535.86.09"],
                    "vbios_versions": ["96.00.5e.00.01"],
                }
            ],
            "require_rims": ["driver"],
            "feature_flags": ["PPCIE"],
        }
    )
    assert sorted(violations(data, policy)) == [
        "driver_version_not_allowed",
        "feature_flag_not_allowed",
        "rim_missing",
        "vbios_version_not_allowed",
    ]


def test_an_image_of_another_arch_is_arch_not_allowed() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID))
    assert violations(data, policy_for("BLACKWELL")) == ["arch_not_allowed"]


def test_a_report_without_a_feature_flag_fails_a_policy_that_asks_for_one() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID, flag=None))
    assert violations(data, policy_for(feature_flags=("SPT", "MPT", "PPCIE"))) == [
        "feature_flag_not_allowed"
    ]
    result = verify(data, policy_for())  # feature_flags null: not looked at, but noted
    assert any("no confidential-computing mode" in note for note in result.notes)


def test_an_unknown_feature_flag_value_is_unsupported() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID, flag=7))
    with pytest.raises(UnsupportedEvidence, match="feature flag 7"):
        verify(data)


def test_accept_any_is_warning_at_best_and_still_checks_the_nonce() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID))
    assert verify(data, accept_any()).status is Status.WARNING
    assert violations(data, accept_any(), nonce=bytes(32)) == ["nonce_mismatch"]


def test_foreign_endorsement_kinds_are_refused() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID))
    vcek = Endorsement(EndorsementKind.VCEK, b"x")
    with pytest.raises(EndorsementMismatch, match="vcek"):
        VERIFIER.verify(evidence(data, *PKI.endorsements(), vcek), at=AT, policy=policy_for())


def test_more_than_twelve_endorsements_are_refused() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID))
    ocsp = [Endorsement(EndorsementKind.OCSP, bytes([i])) for i in range(8)]
    with pytest.raises(EvidenceTooLarge, match="at most 12"):
        VERIFIER.verify(evidence(data, *PKI.endorsements(), *ocsp), at=AT, policy=policy_for())


def test_ocsp_responses_are_kept_and_said_unchecked() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID))
    ocsp = Endorsement(EndorsementKind.OCSP, b"\x30\x03\x0a\x01\x00")
    result = VERIFIER.verify(evidence(data, *PKI.endorsements(), ocsp), at=AT, policy=policy_for())
    assert ("ocsp", ocsp.sha256) in [(e.kind, e.sha256) for e in result.endorsements]
    assert any("1 OCSP response(s) kept, none verified" in note for note in result.notes)


def test_a_chain_out_of_order_fails() -> None:
    data = build_report(PKI.keys[0], fields=default_opaque(FWID))
    chain = list(PKI.endorsements())
    chain[1], chain[2] = chain[2], chain[1]
    with pytest.raises(ChainInvalid):
        VERIFIER.verify(evidence(data, *chain), at=AT, policy=policy_for())


@pytest.mark.parametrize(
    ("offset", "value", "error"),
    [
        (0, 0x10, UnsupportedEvidence),  # SPDM 1.0
        (1, 0xE1, MalformedEvidence),  # not GET_MEASUREMENTS
        (2, 0x00, UnsupportedEvidence),  # no signature requested
        (3, 0x01, UnsupportedEvidence),  # one block, not all
        (38, 0x61, MalformedEvidence),  # not MEASUREMENTS
        (41, 63, MalformedEvidence),  # NumberOfBlocks disagrees with the record
        (46, 2, UnsupportedEvidence),  # a block's MeasurementSpecification is not DMTF
    ],
)
def test_header_fields_are_strict(offset: int, value: int, error: type[Exception]) -> None:
    data = bytearray(build_report(PKI.keys[0], fields=default_opaque(FWID)))
    data[offset] = value
    with pytest.raises(error):
        parse_report(bytes(data))


def test_a_repeated_opaque_field_is_malformed() -> None:
    key = PKI.keys[0]
    fields = default_opaque(FWID)
    data = build_report(key, fields=fields)
    good = parse_report(data)
    assert good.driver_version == "590.12"
    assert good.vbios_version == "96.00.a5.00.01"
    raw = bytearray(data)
    start = good.signature_offset - sum(4 + len(v) for v in fields.values())
    raw[start + 4 + len(fields[3]) : start + 4 + len(fields[3]) + 2] = (3).to_bytes(2, "little")
    with pytest.raises(MalformedEvidence, match="appears twice"):
        parse_report(bytes(raw))


def test_policy_json_round_trips_and_refuses_what_it_does_not_know() -> None:
    policy = policy_for(feature_flags=("PPCIE", "SPT"), require_rims=("vbios", "driver"))
    again = NvidiaPolicy.from_json(json.dumps(policy.to_dict()))  # as --policy FILE takes it
    assert again.to_dict() == policy.to_dict()
    assert again.digest == policy.digest
    base = policy.to_dict()
    for bad in (
        {**base, "images": []},
        {**base, "extra": 1},
        {**base, "feature_flags": ["CC"]},
        {**base, "require_rims": ["firmware"]},
        {**base, "images": [{"name": "i", "arch": "AMPERE", "vbios_versions": ["x"]}]},
        {**base, "images": [{"name": "i", "arch": "HOPPER", "vbios_versions": ["x"]}]},
        {
            **base,
            "images": [
                {"name": "i", "arch": "LS10", "driver_versions": ["1"], "vbios_versions": ["x"]}
            ],
        },
        {**base, "evidence_kind": "amd-sev-snp"},
    ):
        with pytest.raises(PolicyInvalid):
            NvidiaPolicy.from_dict(bad)


def test_accept_any_reads_the_same_in_code_and_in_json() -> None:
    """Regression (the standalone judge's agreement test): in code the accept-any policy
    required no RIM, read from JSON it required both."""
    import warnings

    from verifier import UnsafePolicyWarning
    from verifier.nvidia import NvidiaPolicy, UnsafeAcceptAnyNvidiaPolicy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePolicyWarning)
        in_code = UnsafeAcceptAnyNvidiaPolicy()
        from_json = NvidiaPolicy.from_dict(
            {"evidence_kind": "nvidia-gpu", "unsafe_accept_any": True}
        )
        asked = NvidiaPolicy.from_dict(
            {"evidence_kind": "nvidia-gpu", "unsafe_accept_any": True, "require_rims": ["vbios"]}
        )
    assert in_code.require_rims == from_json.require_rims == ()
    assert [str(k) for k in asked.require_rims] == ["vbios"]


def test_a_resource_index_of_non_ascii_digits_is_malformed_not_a_crash() -> None:
    """Regression (the standalone judge's fuzzing): "²" passed str.isdigit() and int() then
    raised a bare ValueError out of the parser."""
    from pathlib import Path

    import pytest

    from verifier import MalformedEvidence
    from verifier.nvidia import parse_rim

    rim = (
        Path(__file__).parents[2] / "fixtures" / "nvidia"
        / "nv_rim_vbios_1010_0200_882_96005E0001_PROD.swidtag"
    ).read_bytes()  # fmt: skip
    assert b'index="0"' in rim
    with pytest.raises(MalformedEvidence, match="decimal integer"):
        parse_rim(rim.replace(b'index="0"', 'index="²"'.encode(), 1))
