"""Certificate path rules, one broken link at a time, on the simulated PKI."""

from __future__ import annotations

from datetime import timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from enclave_worker.simulated_nsm import encode_payload
from tests.support import (
    ENCLAVE_DOCUMENTS,
    SIM_AT,
    anchor_for,
    policy_for_pcrs,
    simulated_nsm,
    simulated_pki,
)
from verifier import (
    DOCUMENT_TIME,
    CertificateExpired,
    CertificateNotYetValid,
    ChainInvalid,
    NitroVerifier,
    SignatureInvalid,
    Status,
    UntrustedRoot,
    parse_evidence,
)

LEVEL_POSITION = {
    "root": "cabundle[0]",
    "regional": "cabundle[1]",
    "zonal": "cabundle[2]",
    "instance": "cabundle[3]",
    "leaf": "certificate",
}


def attempt(pki, *, at=SIM_AT, skew=timedelta(seconds=60)):
    """Verify a fresh document from ``pki``, trusting ``pki``'s root explicitly."""
    nsm = simulated_nsm(pki)
    policy = policy_for_pcrs(nsm.pcrs)
    if skew != policy.clock_skew:
        from dataclasses import replace

        policy = replace(policy, clock_skew=skew)
    verifier = NitroVerifier(trust_anchor=anchor_for(pki))
    return verifier.verify(nsm.attest(timestamp=SIM_AT), at=at, policy=policy)


def rejected(pki, error, message, **kwargs):
    with pytest.raises(error) as caught:
        attempt(pki, **kwargs)
    assert caught.value.code == error.code
    assert message in caught.value.message, caught.value.message
    return caught.value


def test_the_unaltered_simulated_chain_verifies(sim_pki) -> None:
    assert attempt(sim_pki).status is Status.AFFIRMING


def test_simulated_documents_are_untrusted_without_explicit_configuration(
    sim_nsm, sim_policy
) -> None:
    with pytest.raises(UntrustedRoot) as caught:
        NitroVerifier().verify(sim_nsm.attest(timestamp=SIM_AT), at=SIM_AT, policy=sim_policy)
    assert "AWS Nitro Enclaves Root-G1" in caught.value.message


@pytest.mark.parametrize("doc", ENCLAVE_DOCUMENTS[:2], ids=lambda d: d.file)
def test_real_document_with_a_substituted_root_is_untrusted(sim_pki, doc) -> None:
    """Replace cabundle[0] of a real document with another self-signed root: refused before the
    (now broken) signature is even looked at."""
    envelope = cbor2.loads(doc.read())
    payload = cbor2.loads(envelope[2])
    payload["cabundle"][0] = sim_pki.root.der
    envelope[2] = cbor2.dumps(payload)
    with pytest.raises(UntrustedRoot):
        NitroVerifier().verify(
            cbor2.dumps(envelope), at=DOCUMENT_TIME, policy=policy_for_pcrs(payload["pcrs"])
        )


def test_a_complete_forged_chain_is_untrusted_by_the_real_verifier(
    sim_pki, sim_nsm, sim_policy
) -> None:
    other = simulated_pki()
    with pytest.raises(UntrustedRoot):
        NitroVerifier(trust_anchor=anchor_for(sim_pki)).verify(
            simulated_nsm(other).attest(timestamp=SIM_AT), at=SIM_AT, policy=sim_policy
        )


def test_cabundle_in_reverse_order_is_untrusted(sim_pki, sim_nsm, sim_verifier, sim_policy) -> None:
    payload = sim_nsm.payload_fields(timestamp=SIM_AT)
    payload["cabundle"] = list(reversed(payload["cabundle"]))
    with pytest.raises(UntrustedRoot):
        sim_verifier.verify(sim_nsm.sign(encode_payload(payload)), at=SIM_AT, policy=sim_policy)


@pytest.mark.parametrize("level", list(LEVEL_POSITION))
def test_expired_certificate_at_each_level(sim_pki, level) -> None:
    spec = sim_pki.certificates[level].spec
    pki = sim_pki.reissue(
        level,
        not_before=spec.not_before - timedelta(days=400),
        not_after=SIM_AT - timedelta(seconds=1),
    )
    error = rejected(pki, CertificateExpired, f"{LEVEL_POSITION[level]} (")
    assert "expired at" in error.message


@pytest.mark.parametrize("level", list(LEVEL_POSITION))
def test_not_yet_valid_certificate_at_each_level(sim_pki, level) -> None:
    spec = sim_pki.certificates[level].spec
    pki = sim_pki.reissue(
        level, not_before=SIM_AT + timedelta(hours=1), not_after=spec.not_after + timedelta(days=1)
    )
    rejected(pki, CertificateNotYetValid, f"{LEVEL_POSITION[level]} (")


def test_clock_skew_tolerates_a_leaf_from_slightly_in_the_future(sim_pki) -> None:
    leaf = sim_pki.leaf.spec
    pki = sim_pki.reissue(
        "leaf", not_before=SIM_AT + timedelta(seconds=30), not_after=leaf.not_after
    )
    assert attempt(pki).status is Status.AFFIRMING
    rejected(pki, CertificateNotYetValid, "certificate (", skew=timedelta(seconds=10))


def test_expiry_gets_no_skew(sim_pki) -> None:
    pki = sim_pki.reissue("leaf", not_after=SIM_AT - timedelta(seconds=1))
    rejected(pki, CertificateExpired, "certificate (", skew=timedelta(hours=1))


def test_leaf_signed_by_the_wrong_intermediate(sim_pki) -> None:
    pki = sim_pki.reissue("leaf", signed_by="zonal")
    rejected(
        pki, ChainInvalid, "certificate: signature does not verify under the key of cabundle[3]"
    )


def test_leaf_naming_the_wrong_issuer(sim_pki) -> None:
    pki = sim_pki.reissue("leaf", signed_by="zonal", issuer_level="zonal")
    rejected(pki, ChainInvalid, "is not the subject of cabundle[3]")


@pytest.mark.parametrize("level", ["regional", "zonal", "instance"])
def test_ca_flag_missing(sim_pki, level) -> None:
    rejected(
        sim_pki.reissue(level, ca=False),
        ChainInvalid,
        f"{LEVEL_POSITION[level]}: expected a CA certificate",
    )
    rejected(
        sim_pki.reissue(level, ca=None),
        ChainInvalid,
        f"{LEVEL_POSITION[level]}: expected a CA certificate",
    )


def test_basic_constraints_must_be_critical_in_a_ca(sim_pki) -> None:
    rejected(
        sim_pki.reissue("zonal", basic_constraints_critical=False), ChainInvalid, "must be critical"
    )


@pytest.mark.parametrize(("level", "limit", "beneath"), [("regional", 1, 2), ("zonal", 0, 1)])
def test_path_length_constraint(sim_pki, level, limit, beneath) -> None:
    rejected(
        sim_pki.reissue(level, path_length=limit),
        ChainInvalid,
        f"pathLenConstraint {limit} allows fewer than the {beneath} CA certificate(s)",
    )


def test_root_path_length_constraint(sim_pki) -> None:
    rejected(
        sim_pki.reissue("root", path_length=1), ChainInvalid, "cabundle[0]: pathLenConstraint 1"
    )


@pytest.mark.parametrize("level", ["regional", "zonal", "instance"])
def test_key_cert_sign_missing(sim_pki, level) -> None:
    rejected(sim_pki.reissue(level, key_cert_sign=False), ChainInvalid, "keyCertSign")
    rejected(sim_pki.reissue(level, key_usage_critical=None), ChainInvalid, "keyCertSign")


def test_leaf_must_not_be_a_ca(sim_pki) -> None:
    rejected(
        sim_pki.reissue("leaf", ca=True),
        ChainInvalid,
        "certificate: the signing certificate must not be a CA",
    )


def test_leaf_needs_digital_signature(sim_pki) -> None:
    rejected(sim_pki.reissue("leaf", digital_signature=False), ChainInvalid, "digitalSignature")
    rejected(sim_pki.reissue("leaf", key_usage_critical=None), ChainInvalid, "digitalSignature")


def test_leaf_without_basic_constraints_is_an_end_entity(sim_pki) -> None:
    assert attempt(sim_pki.reissue("leaf", ca=None)).status is Status.AFFIRMING


@pytest.mark.parametrize("level", ["zonal", "leaf"])
def test_signature_algorithm_must_be_ecdsa_sha384(sim_pki, level) -> None:
    rejected(
        sim_pki.reissue(level, hash_algorithm="sha256"),
        ChainInvalid,
        "expected signature algorithm ecdsa-with-SHA384",
    )


def test_signing_key_must_be_p384(sim_pki) -> None:
    pki = sim_pki.reissue("leaf", private_key=ec.generate_private_key(ec.SECP256R1()))
    rejected(pki, ChainInvalid, "certificate: expected a P-384 public key")


def test_unknown_critical_extension_is_rejected(sim_pki) -> None:
    extension = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"
    )
    rejected(
        sim_pki.reissue("instance", extra_extensions=((extension, True),)),
        ChainInvalid,
        "unsupported critical extension 1.3.6.1.4.1.99999.1",
    )
    # The same extension, not critical, is ignored as RFC 5280 says.
    assert (
        attempt(sim_pki.reissue("instance", extra_extensions=((extension, False),))).status
        is Status.AFFIRMING
    )


def test_unparseable_certificate_is_a_broken_chain(sim_nsm, sim_verifier, sim_policy) -> None:
    payload = sim_nsm.payload_fields(timestamp=SIM_AT)
    payload["cabundle"][2] = b"\x30\x03\x02\x01\x00"
    with pytest.raises(ChainInvalid, match=r"cabundle\[2\]: not a DER X.509 v3 certificate"):
        sim_verifier.verify(sim_nsm.sign(encode_payload(payload)), at=SIM_AT, policy=sim_policy)


def test_shorter_chain_with_consistent_constraints_verifies(sim_pki) -> None:
    """The path is whatever the cabundle says, as long as every rule holds: the root may sign
    the instance CA directly. Only a holder of the root key can make such a chain."""
    pki = sim_pki.reissue("instance", signed_by="root", issuer_level="root")
    nsm = simulated_nsm(pki)
    payload = nsm.payload_fields(timestamp=SIM_AT)
    payload["cabundle"] = [pki.root.der, pki.certificates["instance"].der]
    raw = nsm.sign(encode_payload(payload))
    result = NitroVerifier(trust_anchor=anchor_for(pki)).verify(
        raw, at=SIM_AT, policy=policy_for_pcrs(nsm.pcrs)
    )
    assert [c.position for c in result.certificates] == [
        "cabundle[0]",
        "cabundle[1]",
        "certificate",
    ]


class TestLinkCache:
    def test_cached_links_are_still_checked_for_validity(self, sim_pki) -> None:
        nsm = simulated_nsm(sim_pki)
        verifier = NitroVerifier(trust_anchor=anchor_for(sim_pki))
        raw = nsm.attest(timestamp=SIM_AT)
        policy = policy_for_pcrs(nsm.pcrs, max_age=None)
        verifier.verify(raw, at=SIM_AT, policy=policy)
        assert len(verifier._links) == 3  # regional, zonal, instance
        zonal_end = sim_pki.certificates["zonal"].spec.not_after
        with pytest.raises(CertificateExpired, match=r"cabundle\[2\] \(CN=.*zonal"):
            verifier.verify(raw, at=zonal_end + timedelta(seconds=1), policy=policy)

    def test_a_different_certificate_never_hits_anothers_entry(self, sim_pki) -> None:
        verifier = NitroVerifier(trust_anchor=anchor_for(sim_pki))
        good = simulated_nsm(sim_pki)
        verifier.verify(good.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy_for_pcrs(good.pcrs))
        bad = simulated_nsm(sim_pki.reissue("zonal", ca=False))  # same key and subject, new bytes
        with pytest.raises(ChainInvalid, match="expected a CA"):
            verifier.verify(
                bad.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy_for_pcrs(bad.pcrs)
            )

    def test_the_leaf_link_is_verified_every_time(self, sim_pki) -> None:
        verifier = NitroVerifier(trust_anchor=anchor_for(sim_pki))
        good = simulated_nsm(sim_pki)
        verifier.verify(good.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy_for_pcrs(good.pcrs))
        forged = simulated_nsm(sim_pki.reissue("leaf", signed_by="zonal"))
        with pytest.raises(ChainInvalid, match="signature does not verify"):
            verifier.verify(
                forged.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy_for_pcrs(forged.pcrs)
            )

    def test_cache_is_bounded(self) -> None:
        from verifier.nitro.chain import LinkCache

        cache = LinkCache(maxsize=2)
        for i in range(5):
            cache.put((b"p", bytes([i]), 1, 5), object())  # type: ignore[arg-type]
        assert len(cache) == 2
        assert cache.get((b"p", bytes([4]), 1, 5)) is not None
        assert cache.get((b"p", bytes([0]), 1, 5)) is None
        with pytest.raises(ValueError, match="at least 1"):
            LinkCache(maxsize=0)


def test_signature_is_checked_after_the_chain(sim_pki, sim_nsm, sim_verifier, sim_policy) -> None:
    raw = bytearray(sim_nsm.attest(timestamp=SIM_AT))
    raw[-1] ^= 0x01
    with pytest.raises(SignatureInvalid):
        sim_verifier.verify(bytes(raw), at=SIM_AT, policy=sim_policy)


def test_parsed_document_travels_with_chain_errors(sim_pki) -> None:
    pki = sim_pki.reissue("zonal", ca=False)
    error = rejected(pki, ChainInvalid, "expected a CA")
    assert error.document is not None
    assert error.document.module_id == pki.module_id
    _, document = parse_evidence(simulated_nsm(pki).attest(timestamp=SIM_AT))
    assert document.cabundle[2] == pki.certificates["zonal"].der


@pytest.mark.parametrize("serial", [0, -5])
def test_non_positive_serial_is_rejected(sim_pki, serial) -> None:
    """Found by the property tests: cryptography warns about (and will one day refuse) such
    certificates; either way it must be a broken chain, not another exception."""
    import warnings

    from cryptography.utils import CryptographyDeprecationWarning

    # cryptography will not build such a certificate, so patch the DER of a real one.
    zonal = sim_pki.certificates["zonal"]
    tbs_serial = zonal.certificate.serial_number.to_bytes(20, "big").lstrip(b"\x00")
    der = zonal.der
    at = der.index(tbs_serial)
    length = der[at - 1]
    replacement = b"\x00" if serial == 0 else b"\xfb"
    patched = der[: at - 1] + bytes([len(replacement)]) + replacement + der[at + length :]
    # Lengths of the enclosing SEQUENCEs shrink by (length - 1); rebuild them.
    shrink = length - len(replacement)
    body = bytearray(patched)
    for offset in (1, 5):  # outer SEQUENCE and tbsCertificate, both with 2-byte lengths (0x82)
        size = int.from_bytes(body[offset + 1 : offset + 3], "big") - shrink
        body[offset + 1 : offset + 3] = size.to_bytes(2, "big")
    nsm = simulated_nsm(sim_pki)
    payload = nsm.payload_fields(timestamp=SIM_AT)
    payload["cabundle"][2] = bytes(body)
    raw = nsm.sign(encode_payload(payload))
    verifier = NitroVerifier(trust_anchor=anchor_for(sim_pki))
    for mode, message in (
        ("error", "serial number which wasn't positive"),
        ("ignore", "must be positive"),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter(mode, CryptographyDeprecationWarning)
            with pytest.raises(ChainInvalid, match=r"cabundle\[2\]") as caught:
                verifier.verify(raw, at=SIM_AT, policy=policy_for_pcrs(nsm.pcrs))
        assert message in caught.value.message


def test_a_warm_verifier_checks_exactly_two_signatures_per_document(sim_pki, monkeypatch) -> None:
    """The promise behind the benchmark: with the CA links cached, each document still costs
    the leaf link and the COSE signature, and nothing is taken on trust from the cache."""
    from verifier.nitro import chain, cose

    nsm = simulated_nsm(sim_pki)
    verifier = NitroVerifier(trust_anchor=anchor_for(sim_pki))
    policy = policy_for_pcrs(nsm.pcrs)
    verifier.verify(nsm.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy)  # warm

    calls = {"links": 0, "cose": 0}
    original_link, original_cose = chain._check_signature, cose.COSESign1.verify_signature

    def count_link(*args, **kwargs):
        calls["links"] += 1
        return original_link(*args, **kwargs)

    def count_cose(self, key):
        calls["cose"] += 1
        return original_cose(self, key)

    monkeypatch.setattr(chain, "_check_signature", count_link)
    monkeypatch.setattr(cose.COSESign1, "verify_signature", count_cose)
    for _ in range(3):
        verifier.verify(nsm.attest(timestamp=SIM_AT), at=SIM_AT, policy=policy)
    assert calls == {"links": 3, "cose": 3}


def test_a_name_attribute_of_the_wrong_length_is_a_broken_chain(sim_pki) -> None:
    """Found by the SEV-SNP property tests: cryptography warns (UserWarning) each time it
    reads a country name that is not two letters, which escaped the verifier as a warning,
    or as an exception of another type where warnings are errors. Now a broken chain."""
    import warnings

    from cryptography.x509.oid import NameOID

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # building it warns too
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "USA", _validate=False),
                x509.NameAttribute(NameOID.COMMON_NAME, "zonal"),
            ]
        )
    pki = sim_pki.reissue("zonal", subject=subject)
    error = rejected(pki, ChainInvalid, "cabundle[2]: malformed certificate (invalid name:")
    assert "Attribute's length must be >= 2 and <= 2, but it was 3" in error.message
