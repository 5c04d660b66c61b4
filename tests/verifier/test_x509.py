"""The X.509 pieces every scheme shares."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.verifier.snp.support import SNP
from verifier import CertificateExpired, CertificateNotYetValid, TrustAnchor
from verifier.x509 import (
    CertificateInfo,
    check_validity,
    load_der_certificate,
    load_der_crl,
    serial_number_text,
)

AT = datetime(2026, 6, 1, tzinfo=UTC)


def certificate_named(country: str) -> bytes:
    key = ec.generate_private_key(ec.SECP384R1())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # building a bad name warns too
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country, _validate=False)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(AT)
        .not_valid_after(AT + timedelta(days=1))
        .sign(key, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )


def test_a_name_of_the_wrong_length_is_refused_at_load_not_warned_about() -> None:
    """cryptography warns whenever such a name is read; here it is a ValueError, once."""
    assert load_der_certificate(certificate_named("US")).subject
    with pytest.raises(ValueError, match="invalid name: Attribute's length must be"):
        load_der_certificate(certificate_named("USA"))


def test_serial_zero_is_tolerated_only_when_asked() -> None:
    der = (SNP / "virtee_snp_vcek_milan.der").read_bytes()
    certificate = load_der_certificate(der, allow_zero_serial=True)
    assert serial_number_text(certificate) == "0"  # read where the warning is silenced
    # Otherwise it is refused, whatever the process's warning filters (issue #11: under
    # -W error it was refused, elsewhere accepted)
    for action in ("error", "ignore", "default"):
        with warnings.catch_warnings():
            warnings.simplefilter(action)  # type: ignore[call-overload]
            with pytest.raises(ValueError, match="serial number is not positive"):
                load_der_certificate(der)


def test_crls_are_loaded_the_same_way() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "USA", _validate=False)])
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(AT)
        .next_update(AT + timedelta(days=1))
        .sign(key, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )
    with pytest.raises(ValueError, match="invalid name: Attribute's length"):
        load_der_crl(crl)


def test_validity_applies_the_skew_to_not_before_only() -> None:
    info = CertificateInfo("x", "leaf", "CN=x", "CN=y", "1", "00", AT, AT + timedelta(hours=1))
    check_validity(info, AT - timedelta(seconds=60), timedelta(seconds=60))
    with pytest.raises(CertificateNotYetValid):
        check_validity(info, AT - timedelta(seconds=61), timedelta(seconds=60))
    with pytest.raises(CertificateExpired):
        check_validity(info, AT + timedelta(hours=1, seconds=1), timedelta(days=1))
    assert info.valid_at(AT)
    assert not info.valid_at(AT - timedelta(seconds=1))


def test_anchors_take_a_p384_or_rsa_key() -> None:
    ark = (SNP / "amd_milan_ark.pem").read_bytes()
    assert TrustAnchor.from_pem(ark, name="ARK-Milan").subject.startswith("CN=ARK-Milan")
    with pytest.raises(ValueError, match="lacks CA extensions"):
        TrustAnchor.from_der(certificate_named("US"), name="plain")
