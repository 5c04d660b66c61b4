"""The simulated TDX and SGX quotes, byte for byte at the offsets of tests/fixtures/tdx/
README.md (read here with struct and slices, not with the module that writes them), and
their three signatures checked with cryptography directly: the quote by the attestation key
over header and body, the QE report by the PCK key, the QE binding of the attestation key."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.exceptions import InvalidSignature

from enclave_worker import simulated_sgx_measurement, simulated_tdx_measurement
from enclave_worker.binding import ResultDigest
from enclave_worker.intel_quote import SgxReportBody, TdReport, parse_quote
from tests.enclave_worker.intel_support import (
    common_name,
    fixture,
    pem_chain,
    raw_key,
    sgx_enclave,
    tdx_platform,
    verify_raw,
)

NONCE = bytes(range(100, 132))
RESULT = ResultDigest.of(b"the result")
BOUND = NONCE + hashlib.sha256(RESULT.user_data()).digest()
QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
REAL = (
    "phala_dcapqvl_tdx_quote.bin",
    "tdx_gtg_quote_v5_sample.dat",
    "phala_dcapqvl_sgx_quote.bin",
    "tdx_dcapqvl_quote_outdated.bin",
)


def u16(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<H", data, offset)[0])


def u32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def tdx_quote(**options: object) -> bytes:
    return tdx_platform(**options).attest(nonce=NONCE, result=RESULT).data


def sgx_quote(**options: object) -> bytes:
    return sgx_enclave(**options).attest(nonce=NONCE, result=RESULT).data


def signature_data(quote: bytes, body_end: int) -> bytes:
    length = u32(quote, body_end)
    assert len(quote) == body_end + 4 + length  # nothing after the quote
    return quote[body_end + 4 :]


def check_qe_part(part: bytes, *, ca: str) -> None:
    """QE report 384, its signature 64, auth data (u16 + 00..1f), type 5, size, PEM + NUL."""
    assert u16(part, 448) == 32
    assert part[450:482] == bytes(range(32))
    assert u16(part, 482) == 5
    chain = part[488:]
    assert u32(part, 484) == len(chain)
    assert chain.endswith(b"-----END CERTIFICATE-----\n\x00")
    assert chain.count(b"\x00") == 1
    leaf, issuer, root = pem_chain(chain[:-1])
    assert [common_name(c) for c in (leaf, issuer, root)] == [
        "Intel SGX PCK Certificate",
        f"Intel SGX PCK {ca} CA",
        "Intel SGX Root CA (simulated)",
    ]


# --- layout ----------------------------------------------------------------------------


def test_a_tdx_v4_quote_has_the_real_layout() -> None:
    quote = tdx_quote()
    assert quote[0:2] == b"\x04\x00"  # version 4
    assert quote[2:4] == b"\x02\x00"  # ECDSA-256 with P-256
    assert quote[4:8] == b"\x81\x00\x00\x00"  # TDX
    assert quote[8:12] == bytes(4)  # reserved in v4
    assert quote[12:28] == QE_VENDOR
    body = quote[48 : 48 + 584]
    assert body[0:16] == bytes([6, 1, 3]) + bytes(13)  # TEE_TCB_SVN
    assert body[136:184] == simulated_tdx_measurement("demo-inference")  # MRTD
    assert body[520:584] == BOUND  # REPORTDATA
    assert int.from_bytes(body[120:128], "little") == 1 << 28  # TD attributes, debug clear
    assert int.from_bytes(body[128:136], "little") == 0x602E7  # XFAM
    assert body[472:520] == bytes(48)  # RTMR3 (nothing logged at run time)
    assert all(any(body[offset : offset + 48]) for offset in (328, 376, 424))  # RTMR0-2
    data = signature_data(quote, 48 + 584)
    assert u16(data, 128) == 6  # certification data type 6 wraps the rest
    assert u32(data, 130) == len(data) - 134
    check_qe_part(data[134:], ca="Platform")


def test_a_tdx_v5_quote_has_the_body_descriptor_and_a_td_report_15() -> None:
    quote = tdx_quote(version=5)
    assert quote[0:2] == b"\x05\x00"
    assert quote[4:8] == b"\x81\x00\x00\x00"
    assert u16(quote, 48) == 3  # TD report 1.5
    assert u32(quote, 50) == 648
    body = quote[54 : 54 + 648]
    assert body[136:184] == simulated_tdx_measurement("demo-inference")
    assert body[520:584] == BOUND
    assert body[584:600] == bytes([6, 1, 3]) + bytes(13)  # TEE_TCB_SVN2
    assert body[600:648] == bytes(48)  # MRSERVICETD
    data = signature_data(quote, 54 + 648)
    assert u16(data, 128) == 6
    check_qe_part(data[134:], ca="Platform")


def test_a_v5_quote_may_carry_a_td_report_10() -> None:
    quote = tdx_quote(version=5, tdx15=False)
    assert (u16(quote, 48), u32(quote, 50)) == (2, 584)
    assert quote[54 + 520 : 54 + 584] == BOUND
    signature_data(quote, 54 + 584)


def test_an_sgx_v3_quote_has_the_real_layout() -> None:
    enclave = sgx_enclave()
    quote = enclave.attest(nonce=NONCE, result=RESULT).data
    assert quote[0:2] == b"\x03\x00"
    assert quote[2:4] == b"\x02\x00"
    assert quote[4:8] == bytes(4)  # SGX
    assert u16(quote, 8) == 8  # QE SVN: the QE report's ISV SVN
    assert u16(quote, 10) == 13  # PCE SVN
    assert quote[12:28] == QE_VENDOR
    body = quote[48 : 48 + 384]
    assert body[0:16] == bytes([11, 11, 2, 2, 255, 1]) + bytes(10)  # CPUSVN
    assert body[48:64] == bytes.fromhex("0500000000000000e700000000000000")  # not debug
    assert body[64:96] == simulated_sgx_measurement("demo-inference")  # MRENCLAVE
    assert body[128:160] == enclave.enclave.mr_signer  # MRSIGNER
    assert body[256:260] == bytes(4)  # ISVPRODID, ISVSVN
    assert body[320:384] == BOUND
    data = signature_data(quote, 48 + 384)
    check_qe_part(data[128:], ca="Processor")  # no type 6 wrapper in v3
    assert u16(quote, 8) == u16(data, 128 + 258)  # the QE report's ISV SVN


def test_debug_sets_the_debug_bits() -> None:
    td = tdx_quote(debug=True)[48 + 120 : 48 + 128]
    assert int.from_bytes(td, "little") == (1 << 28) | 1
    sgx = sgx_quote(debug=True)[48 + 48 : 48 + 56]
    assert int.from_bytes(sgx, "little") == 0x07  # INIT, DEBUG, MODE64BIT


def test_another_image_is_another_measurement_and_boot() -> None:
    base = tdx_platform()
    other = base.variant(image="other")
    quote = other.attest(nonce=NONCE, result=RESULT).data
    assert quote[48 + 136 : 48 + 184] == simulated_tdx_measurement("other")
    assert other.measurement != base.measurement
    assert other.guest.rtmr_values[0] != base.guest.rtmr_values[0]
    assert other.quoting_enclave is base.quoting_enclave  # the same platform
    sgx = sgx_enclave().variant(image="other").attest(nonce=NONCE, result=RESULT).data
    assert sgx[48 + 64 : 48 + 96] == simulated_sgx_measurement("other")


def test_the_measurements_are_the_contracts() -> None:
    # docs: issue #12's design, "Simulated measurements" (exact prefixes).
    assert (
        simulated_tdx_measurement("demo-inference")
        == hashlib.sha384(b"attestation-ledger:simulated-tdx:demo-inference").digest()
    )
    assert (
        simulated_sgx_measurement("demo-inference")
        == hashlib.sha256(b"attestation-ledger:simulated-sgx:demo-inference").digest()
    )


@pytest.mark.parametrize("name", REAL)
def test_the_layout_code_reads_and_rewrites_real_quotes(name: str) -> None:
    """The structures that write simulated quotes reproduce real ones field for field."""
    data = fixture(name)
    parsed = parse_quote(data)
    assert parsed.header.to_bytes() == data[:48]
    start = 48 + (6 if parsed.body_descriptor else 0)
    body = parsed.body.to_bytes()
    assert body == data[start : start + len(body)]
    assert SgxReportBody.from_bytes(parsed.qe_report).to_bytes() == parsed.qe_report
    assert parsed.size == {"phala_dcapqvl_tdx_quote.bin": 4936}.get(name, len(data))
    verify_raw(raw_key(parsed.attestation_key), parsed.signature, parsed.signed)


def test_real_td_report_fields_are_where_the_readme_says() -> None:
    body = parse_quote(fixture("phala_dcapqvl_tdx_quote.bin")).body
    assert isinstance(body, TdReport)
    assert body.mr_td.hex().startswith("91eb2b44")
    assert body.mr_td.hex().endswith("873118b7")
    assert body.rtmrs[3] == bytes(48)
    assert not body.debug
    assert body.tee_tcb_svn.hex().startswith("060103")


# --- signatures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "body_end", "qe_at"),
    [
        (tdx_quote, 48 + 584, 134),
        (lambda: tdx_quote(version=5), 54 + 648, 134),
        (sgx_quote, 48 + 384, 128),
    ],
    ids=["tdx-v4", "tdx-v5", "sgx-v3"],
)
def test_the_three_signatures_verify(make, body_end, qe_at) -> None:
    quote = make()
    data = signature_data(quote, body_end)
    signature, attestation_key = data[:64], data[64:128]
    # 1. the quote, by the attestation key, over every byte before the length
    verify_raw(raw_key(attestation_key), signature, quote[:body_end])
    flipped = bytearray(quote[:body_end])
    flipped[body_end - 70] ^= 1  # a bit of the report data
    with pytest.raises(InvalidSignature):
        verify_raw(raw_key(attestation_key), signature, bytes(flipped))
    # 2. the QE report, by the PCK leaf's key
    qe_report, qe_signature = data[qe_at : qe_at + 384], data[qe_at + 384 : qe_at + 448]
    leaf, issuer, root = pem_chain(data[qe_at + 488 : -1])
    pck_key = leaf.public_key()
    verify_raw(pck_key, qe_signature, qe_report)  # type: ignore[arg-type]
    # 3. the QE binding: SHA-256(attestation key || QE auth data) || 32 zero bytes
    auth = data[qe_at + 450 : qe_at + 482]
    assert qe_report[320:352] == hashlib.sha256(attestation_key + auth).digest()
    assert qe_report[352:384] == bytes(32)
    # and the chain to the simulated root
    leaf.verify_directly_issued_by(issuer)
    issuer.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)


def test_a_tampered_body_no_longer_verifies() -> None:
    quote = bytearray(tdx_quote())
    quote[48 + 136] ^= 1
    data = signature_data(bytes(quote), 48 + 584)
    with pytest.raises(InvalidSignature):
        verify_raw(raw_key(data[64:128]), data[:64], bytes(quote[: 48 + 584]))


def test_quotes_are_deterministic_for_a_seed_and_a_time() -> None:
    assert tdx_quote() == tdx_quote()
    assert sgx_quote() == sgx_quote()
    assert tdx_quote() != tdx_quote(seed=b"another platform")
    one, other = tdx_platform(seed=None), tdx_platform(seed=None)
    assert one.quoting_enclave.pck != other.quoting_enclave.pck  # random when not seeded


def test_the_body_is_the_fields_given() -> None:
    platform = tdx_platform()
    fields = platform.fields(BOUND)
    assert TdReport.from_bytes(fields.to_bytes()) == fields
    assert platform.sign(fields) == platform.quote(BOUND)
    with pytest.raises(ValueError, match="report_data is 64 bytes"):
        platform.quote(b"short")
    with pytest.raises(ValueError, match="version 4 or 5"):
        tdx_platform(version=3)
