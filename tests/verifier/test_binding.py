"""The result-hash binding in user_data: an exact, versioned byte layout."""

from __future__ import annotations

import hashlib

import pytest

from verifier import REPORT_DATA_BYTES, RESULT_BINDING_PREFIX, ResultHash, report_data


def test_binding_layout_is_exact() -> None:
    # Test vector: SHA-256 of b"abc" bound with the v1 layout, written out by hand.
    digest = bytes.fromhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    expected = b"attestation-ledger:result:v1:sha256:" + digest
    assert ResultHash.of(b"abc").user_data() == expected
    assert len(expected) == 68
    assert RESULT_BINDING_PREFIX == b"attestation-ledger:result:v1:"


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_text_form_round_trips(algorithm: str) -> None:
    value = ResultHash.of(b"result", algorithm)
    assert ResultHash.parse(str(value)) == value
    assert str(value) == f"{algorithm}:{hashlib.new(algorithm, b'result').hexdigest()}"
    assert value.user_data().endswith(b":" + value.digest)


def test_parse_accepts_uppercase_hex_and_algorithm() -> None:
    value = ResultHash.of(b"x")
    assert ResultHash.parse("SHA256:" + value.digest.hex().upper()) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ab" * 32, "expected '<algorithm>:<hex digest>'"),
        ("md5:" + "ab" * 16, "expected one of sha256, sha384, sha512"),
        ("sha256:" + "ab" * 31, "sha256 digests are 32 bytes, found 31"),
        ("sha384:" + "ab" * 32, "sha384 digests are 48 bytes, found 32"),
        ("sha256:zz", "not hexadecimal"),
    ],
)
def test_bad_result_hashes_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResultHash.parse(text)


def test_unknown_algorithm_for_hashing() -> None:
    with pytest.raises(ValueError, match="not supported"):
        ResultHash.of(b"x", "md5")


def test_report_data_layout_is_exact() -> None:
    """64 bytes of report data (SEV-SNP): the 32-byte nonce, then SHA-256 of exactly the
    bytes Nitro puts in user_data. Test vector written out by hand."""
    nonce = bytes(range(32))
    digest = bytes.fromhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    user_data = b"attestation-ledger:result:v1:sha256:" + digest
    expected = nonce + hashlib.sha256(user_data).digest()
    assert report_data(nonce, ResultHash.of(b"abc")) == expected
    assert len(expected) == REPORT_DATA_BYTES == 64
    assert ResultHash.of(b"abc").report_data_half() == expected[32:]


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_report_data_takes_a_32_byte_nonce(size: int) -> None:
    with pytest.raises(ValueError, match=f"the nonce must be 32 bytes, found {size}"):
        report_data(bytes(size), ResultHash.of(b"abc"))
