"""The simulated PKI and NSM reproduce AWS's profile, measured against a real chain."""

from __future__ import annotations

import itertools
import warnings
from datetime import timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from enclave_worker import SimulatedNitroPki, SimulatedNitroWarning, SimulatedNsm
from enclave_worker.simulated_pki import LEVELS
from tests.support import NITRO, SIM_AT

REAL_CHAIN_SOURCE = "yawn_nitro_attest.cbor"


def real_chain() -> list[x509.Certificate]:
    payload = cbor2.loads(cbor2.loads((NITRO / REAL_CHAIN_SOURCE).read_bytes())[2])
    ders = [*payload["cabundle"], payload["certificate"]]
    return [x509.load_der_x509_certificate(der) for der in ders]


def profile(certificate: x509.Certificate) -> dict:
    """What must match AWS at each level: algorithms, extensions and their criticality."""
    out: dict = {
        "signature": certificate.signature_algorithm_oid,
        "curve": certificate.public_key().curve.name,  # type: ignore[union-attr]
        "version": certificate.version,
        "extensions": sorted((e.oid.dotted_string, e.critical) for e in certificate.extensions),
    }
    basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    out["ca"] = (basic.ca, basic.path_length)
    out["key_usage"] = (
        usage.digital_signature,
        usage.content_commitment,
        usage.key_cert_sign,
        usage.crl_sign,
    )
    return out


def test_every_level_has_awss_profile(sim_pki) -> None:
    for level, real in zip(LEVELS, real_chain(), strict=True):
        ours = sim_pki.certificates[level].certificate
        assert profile(ours) == profile(real), level


@pytest.mark.parametrize(
    ("level", "lifetime"),
    [
        ("root", timedelta(days=365 * 30)),
        ("regional", timedelta(hours=481)),
        ("zonal", timedelta(hours=135)),
        ("instance", timedelta(hours=24)),
        ("leaf", timedelta(hours=3, seconds=3)),
    ],
)
def test_lifetimes_match_aws(sim_pki, level, lifetime) -> None:
    certificate = sim_pki.certificates[level].certificate
    ours = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert abs(ours - lifetime) <= timedelta(seconds=1)
    real = dict(zip(LEVELS, real_chain(), strict=True))[level]
    theirs = real.not_valid_after_utc - real.not_valid_before_utc
    assert abs(ours - theirs) <= max(timedelta(hours=7), theirs * 0.05), (
        level
    )  # zonal varies 134-144 h


def test_every_certificate_is_valid_at_the_generation_time(sim_pki) -> None:
    for issued in sim_pki.certificates.values():
        assert (
            issued.certificate.not_valid_before_utc
            <= SIM_AT
            <= issued.certificate.not_valid_after_utc
        )


def test_chain_links_verify_with_cryptography(sim_pki) -> None:
    chain = [sim_pki.certificates[level].certificate for level in LEVELS]
    for parent, child in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)


def test_names_say_simulated(sim_pki) -> None:
    for issued in sim_pki.certificates.values():
        common_name = issued.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[
            0
        ].value
        assert "simulated" in common_name


def test_creating_a_simulated_pki_or_nsm_warns(sim_pki) -> None:
    with pytest.warns(SimulatedNitroWarning, match="not AWS"):
        SimulatedNitroPki.generate(at=SIM_AT)
    with pytest.warns(SimulatedNitroWarning, match="simulated PKI"):
        SimulatedNsm(sim_pki)


def test_generation_needs_an_aware_time() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        with pytest.raises(ValueError, match="timezone-aware"):
            SimulatedNitroPki.generate(at=SIM_AT.replace(tzinfo=None))


def test_documents_have_the_nsm_layout(sim_nsm) -> None:
    raw = sim_nsm.attest(user_data=b"u", nonce=b"n", timestamp=SIM_AT)
    assert raw[:7] == bytes.fromhex("8444a1013822a0")  # untagged, {1: -35}, {}
    _protected, _unprotected, payload, signature = cbor2.loads(raw)
    assert payload[0] == 0xBF  # indefinite-length map, as since 2025
    fields = cbor2.loads(payload)
    assert list(fields) == [
        "module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle",
        "public_key", "user_data", "nonce",
    ]  # fmt: skip
    assert fields["public_key"] is None
    assert fields["timestamp"] == int(SIM_AT.timestamp() * 1000)
    assert sorted(fields["pcrs"]) == list(range(16))
    assert all(len(v) == 48 for v in fields["pcrs"].values())
    assert len(signature) == 96
    assert len(fields["cabundle"]) == 4


def test_debug_nsm_zeroes_the_image_measurements(sim_pki) -> None:
    from tests.support import simulated_nsm

    debug = simulated_nsm(sim_pki, debug=True)
    for index in (0, 1, 2, 8):
        assert debug.pcrs[index] == bytes(48)
    assert debug.pcrs[4] != bytes(48)


def test_reissue_keeps_the_key_so_children_still_chain(sim_pki) -> None:
    changed = sim_pki.reissue("zonal", not_after=SIM_AT + timedelta(days=1))
    assert changed.certificates["zonal"].der != sim_pki.certificates["zonal"].der
    changed.certificates["instance"].certificate.verify_directly_issued_by(
        changed.certificates["zonal"].certificate
    )
    assert (
        changed.certificates["zonal"]
        .certificate.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
        .value.path_length
        == 1
    )


def test_new_leaf_rotates_the_key(sim_pki) -> None:
    later = SIM_AT + timedelta(hours=2)
    rotated = sim_pki.with_new_leaf(at=later)
    assert rotated.leaf.private_key is not sim_pki.leaf.private_key
    assert rotated.leaf.certificate.not_valid_before_utc == later - timedelta(minutes=1)
    rotated.leaf.certificate.verify_directly_issued_by(rotated.certificates["instance"].certificate)
