"""Whatever bytes an operator gives as ``--ak``, ``--ek-cert`` or ``--ek-ca``, the enrolment
parsers only ever raise EnrolmentError (house rule: every parser is fuzzed). Arbitrary bytes
rarely parse, so the strategies also mutate a few bytes of a real SPKI and of real
certificates: that reaches unknown key and curve OIDs, bad X.509 versions and names that
only fail when read."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from hypothesis import example, given, settings
from hypothesis import strategies as st

from attest_ledger.tpm_enrolments import (
    EnrolmentError,
    _certificate,
    ak_public_der,
    check_ek_chain,
)

NOW = datetime.now(UTC)
_VENDOR = x509.Name(
    [x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.COMMON_NAME, "V")]
)
_CA_KEY = ec.generate_private_key(ec.SECP256R1())
_EK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate_der(subject: x509.Name, key, signer) -> bytes:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(_VENDOR)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(signer, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


CA = _certificate_der(_VENDOR, _CA_KEY, _CA_KEY)
EK = _certificate_der(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EK")]), _EK_KEY, _CA_KEY)
AK = _CA_KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
ED25519 = (
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
)


def _mutated(data: bytes):
    """``data`` with one to four bytes overwritten."""
    edit = st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255))

    def apply(edits):
        out = bytearray(data)
        for at, value in edits:
            out[at] = value
        return bytes(out)

    return st.lists(edit, min_size=1, max_size=4).map(apply)


_ARBITRARY = st.binary(max_size=2048) | st.text(max_size=512).map(str.encode)


def test_the_unmutated_inputs_pass() -> None:
    assert ak_public_der(AK)
    check_ek_chain(_certificate(EK, "--ek-cert"), [_certificate(CA, "--ek-ca")], NOW)


@given(_ARBITRARY | _mutated(AK) | _mutated(ED25519))
@example(ED25519.replace(bytes.fromhex("06032b6570"), bytes.fromhex("06032b6579")))  # unknown OID
@settings(max_examples=400, deadline=None)
def test_arbitrary_bytes_as_ak_only_raise_enrolment_error(data: bytes) -> None:
    with contextlib.suppress(EnrolmentError):
        assert ak_public_der(data)


@given(_ARBITRARY | _mutated(EK), _ARBITRARY | _mutated(CA))
@settings(max_examples=600, deadline=None)
def test_arbitrary_ek_certificate_and_ca_only_raise_enrolment_error(ek: bytes, ca: bytes) -> None:
    with contextlib.suppress(EnrolmentError):
        check_ek_chain(_certificate(ek, "--ek-cert"), [_certificate(ca, "--ek-ca")], NOW)


@given(st.booleans(), _mutated(EK) | _mutated(CA))
@settings(max_examples=600, deadline=None)
def test_one_mutated_certificate_in_a_good_chain_only_raises_enrolment_error(
    in_ek: bool, mutated: bytes
) -> None:
    ek, ca = (mutated, CA) if in_ek else (EK, mutated)
    with contextlib.suppress(EnrolmentError):
        check_ek_chain(_certificate(ek, "--ek-cert"), [_certificate(ca, "--ek-ca")], NOW)
