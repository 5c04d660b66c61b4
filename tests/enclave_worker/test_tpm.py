"""The TPM attester on a real software TPM (swtpm, libtpms) through tpm2-tools: every quote is
checked here with the test's own code (TPMS_ATTEST read by struct, the signature verified with
cryptography and the AK's PEM, the pcrDigest recomputed from the container's PCRs, the event
log parsed and replayed to the job PCR), not with the attester's or the verifier's."""

from __future__ import annotations

import contextlib
import hashlib
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave_worker.binding import ResultDigest
from enclave_worker.job import tamper
from enclave_worker.swtpm import Swtpm, SwtpmError
from enclave_worker.tcg_log import EventLogWriter
from enclave_worker.tpm import TPM2_QUOTE, TpmAttester, TpmError, check_quote, job_events

NONCE = bytes(range(32))
RESULT = ResultDigest.of(b"label=otter score=0.042")
_SIZES = {0x0004: ("sha1", 20), 0x000B: ("sha256", 32), 0x000C: ("sha384", 48),
          0x000D: ("sha512", 64)}  # fmt: skip


# The test's own readers of what the attester sends.


@dataclass(frozen=True)
class Attest:
    magic: int
    type: int
    signer: bytes
    extra_data: bytes
    selection: list[tuple[str, list[int]]]
    pcr_digest: bytes


def read_attest(data: bytes) -> Attest:
    """TPMS_ATTEST with TPMS_QUOTE_INFO (TPM 2.0 Library, Part 2, 10.12.12), big-endian."""
    magic, kind, signer_size = struct.unpack_from(">IHH", data)
    signer = data[8 : 8 + signer_size]
    at = 8 + signer_size
    (extra_size,) = struct.unpack_from(">H", data, at)
    extra = data[at + 2 : at + 2 + extra_size]
    at += 2 + extra_size + 8 + 4 + 4 + 1 + 8  # clock, resetCount, restartCount, safe, firmware
    (count,) = struct.unpack_from(">I", data, at)
    at += 4
    selection = []
    for _ in range(count):
        alg, size = struct.unpack_from(">HB", data, at)
        bits = int.from_bytes(data[at + 3 : at + 3 + size], "little")
        selection.append((_SIZES[alg][0], [i for i in range(8 * size) if bits >> i & 1]))
        at += 3 + size
    (digest_size,) = struct.unpack_from(">H", data, at)
    digest = data[at + 2 : at + 2 + digest_size]
    assert at + 2 + digest_size == len(data), "trailing bytes after the pcrDigest"
    return Attest(magic, kind, signer, extra, selection, digest)


def verify_signature(container: dict[str, Any], ak_pem: bytes) -> None:
    """The TPMT_SIGNATURE over the exact TPMS_ATTEST with the AK from its PEM; raises."""
    key = serialization.load_pem_public_key(ak_pem)
    signature = container["signature"]
    sig_alg, hash_alg = struct.unpack_from(">HH", signature)
    assert hash_alg == 0x000B  # SHA-256
    if sig_alg == 0x0018:  # ECDSA: TPM2B r, TPM2B s
        assert isinstance(key, ec.EllipticCurvePublicKey)
        (r_size,) = struct.unpack_from(">H", signature, 4)
        r = int.from_bytes(signature[6 : 6 + r_size], "big")
        (s_size,) = struct.unpack_from(">H", signature, 6 + r_size)
        s = int.from_bytes(signature[8 + r_size : 8 + r_size + s_size], "big")
        assert 8 + r_size + s_size == len(signature)
        key.verify(encode_dss_signature(r, s), container["attest"], ec.ECDSA(hashes.SHA256()))
    elif sig_alg == 0x0014:  # RSASSA: TPM2B signature
        assert isinstance(key, rsa.RSAPublicKey)
        (size,) = struct.unpack_from(">H", signature, 4)
        assert 6 + size == len(signature)
        key.verify(signature[6:], container["attest"], padding.PKCS1v15(), hashes.SHA256())
    else:
        pytest.fail(f"unexpected sigAlg 0x{sig_alg:04x}")


def pcr_digest(container: dict[str, Any], selection: list[tuple[str, list[int]]]) -> bytes:
    """SHA-256 (the AK's name algorithm) of the selected PCR values, bank by bank."""
    pcrs = container["pcrs"]
    return hashlib.sha256(
        b"".join(pcrs[bank][index] for bank, indexes in selection for index in indexes)
    ).digest()


def replay_log(log: bytes) -> tuple[list[tuple[int, int, dict[str, bytes], bytes]], dict]:
    """The events of a crypto-agile log after its Spec ID header, and the PCRs they replay to
    (each from zeros), per bank."""
    pcr, kind = struct.unpack_from("<II", log)
    assert (pcr, kind) == (0, 3)
    assert log[8:28] == bytes(20)
    (size,) = struct.unpack_from("<I", log, 28)
    spec = log[32 : 32 + size]
    assert spec[:16] == b"Spec ID Event03\0"
    assert spec[20:24] == bytes([0, 2, 0, 2])  # version 2.0, errata 0, UINT64
    (algorithms,) = struct.unpack_from("<I", spec, 24)
    sizes = dict(struct.unpack_from("<HH", spec, 28 + 4 * i) for i in range(algorithms))
    assert spec[28 + 4 * algorithms :] == b"\0"  # no vendor info
    at = 32 + size
    events = []
    replayed: dict[str, dict[int, bytes]] = {}
    while at < len(log):
        pcr, kind, count = struct.unpack_from("<III", log, at)
        at += 12
        digests = {}
        for _ in range(count):
            (alg,) = struct.unpack_from("<H", log, at)
            digests[_SIZES[alg][0]] = log[at + 2 : at + 2 + sizes[alg]]
            at += 2 + sizes[alg]
        (data_size,) = struct.unpack_from("<I", log, at)
        data = log[at + 4 : at + 4 + data_size]
        at += 4 + data_size
        events.append((pcr, kind, digests, data))
        for bank, digest in digests.items():
            old = replayed.setdefault(bank, {}).get(pcr, bytes(len(digest)))
            replayed[bank][pcr] = hashlib.new(bank, old + digest).digest()
    assert at == len(log)
    return events, replayed


def verify_quote(container: dict[str, Any], ak_pem: bytes, extra_data: bytes) -> Attest:
    """Every check of one container; returns its TPMS_ATTEST."""
    attest = read_attest(container["attest"])
    assert (attest.magic, attest.type) == (0xFF544347, 0x8018)
    assert attest.extra_data == extra_data
    verify_signature(container, ak_pem)
    assert attest.pcr_digest == pcr_digest(container, attest.selection)
    assert [(bank, sorted(container["pcrs"][bank])) for bank, _ in attest.selection] == (
        attest.selection
    )
    spki = serialization.load_pem_public_key(ak_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert container["ak"] == spki
    return attest


def binding(nonce: bytes, result: ResultDigest) -> bytes:
    """nonce || SHA-256 of the result binding, written out here again."""
    user_data = b"attestation-ledger:result:v1:sha256:" + result.digest
    return nonce + hashlib.sha256(user_data).digest()


# Fixtures: one manufactured swtpm for the module, an ECC and an RSA attester on it.


@pytest.fixture(scope="module")
def swtpm() -> Iterator[Swtpm]:
    with Swtpm(manufacture=True) as running:
        yield running


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tpm-attester")


@pytest.fixture(scope="module")
def ecc(swtpm, state) -> TpmAttester:
    return TpmAttester(swtpm.tcti, state, banks=("sha256", "sha384"), model="tpm-model")


@pytest.fixture(scope="module")
def rsa_attester(swtpm, state) -> TpmAttester:
    return TpmAttester(swtpm.tcti, state, ak_type="rsa")


def decode(evidence_data: bytes) -> dict[str, Any]:
    container = cbor2.loads(evidence_data)
    # "format" first (the kind shows in the first bytes), then canonical order and values
    assert evidence_data[1:22] == b"\x66format\x6dtpm2-quote/v1"
    rest = {k: v for k, v in container.items() if k != "format"}
    assert evidence_data[22:] == cbor2.dumps(rest, canonical=True)[1:]
    return container  # type: ignore[no-any-return]


def test_an_ecc_quote_verifies_with_the_tests_own_checks(ecc) -> None:
    evidence = ecc.attest(nonce=NONCE, result=RESULT)
    assert evidence.kind == TPM2_QUOTE == "tpm2-quote"
    assert evidence.endorsements == ()
    container = decode(evidence.data)
    assert set(container) == {"format", "attest", "signature", "ak", "pcrs", "event_log"}
    assert container["format"] == "tpm2-quote/v1"
    attest = verify_quote(container, ecc.ak_public_pem(), binding(NONCE, RESULT))
    assert len(attest.extra_data) == 64  # swtpm takes 64 bytes of extraData
    assert attest.selection == [("sha256", [0, 1, 2, 3, 4, 5, 6, 7, 23]),
                                ("sha384", [0, 1, 2, 3, 4, 5, 6, 7, 23])]  # fmt: skip
    assert attest.signer[:2] == b"\x00\x0b"  # the AK's name algorithm: SHA-256
    assert struct.unpack_from(">HH", container["signature"]) == (0x0018, 0x000B)


def test_the_log_replays_to_the_job_pcr_and_names_the_model_and_the_result(ecc) -> None:
    container = decode(ecc.attest(nonce=NONCE, result=RESULT).data)
    events, replayed = replay_log(container["event_log"])
    assert [data for _, _, _, data in events] == [
        b"attestation-ledger:model:tpm-model",
        b"attestation-ledger:result:" + RESULT.text().encode(),
    ]
    assert {(pcr, kind) for pcr, kind, _, _ in events} == {(23, 0x0D)}  # EV_IPL
    for _, _, digests, data in events:
        assert set(digests) == {"sha256", "sha384"}  # every bank swtpm_setup activated
        assert all(digest == hashlib.new(bank, data).digest() for bank, digest in digests.items())
    for bank in ("sha256", "sha384"):
        assert replayed[bank] == {23: container["pcrs"][bank][23]}
        assert container["pcrs"][bank][0] == bytes(len(container["pcrs"][bank][0]))
    assert (ecc.state_dir / "event_log.bin").read_bytes() == container["event_log"]


def test_each_job_starts_from_a_reset_pcr_so_equal_jobs_give_equal_pcrs(ecc) -> None:
    first = decode(ecc.attest(nonce=NONCE, result=RESULT).data)
    again = decode(ecc.attest(nonce=bytes(32), result=RESULT).data)
    other = decode(ecc.attest(nonce=NONCE, result=ResultDigest.of(b"another")).data)
    assert first["pcrs"] == again["pcrs"]
    assert first["pcrs"]["sha256"][23] != other["pcrs"]["sha256"][23]
    assert first["attest"] != again["attest"]


def test_the_input_digest_is_an_event_of_its_own(ecc) -> None:
    input_sha256 = hashlib.sha256(b"an input").digest()
    container = decode(ecc.attest(nonce=NONCE, result=RESULT, input_sha256=input_sha256).data)
    events, replayed = replay_log(container["event_log"])
    assert events[1][3] == b"attestation-ledger:input:sha256:" + input_sha256.hex().encode()
    assert len(events) == 3
    assert replayed["sha256"][23] == container["pcrs"]["sha256"][23]
    with pytest.raises(ValueError, match="32 bytes"):
        job_events("m", RESULT, b"short")


def test_an_rsa_quote_verifies_and_the_nonce_alone_is_32_bytes(swtpm, state) -> None:
    attester = TpmAttester(swtpm.tcti, state, ak_type="rsa", bind_result=False)
    container = decode(attester.attest(nonce=NONCE, result=RESULT).data)
    attest = verify_quote(container, attester.ak_public_pem(), NONCE)
    assert attest.selection == [("sha256", [0, 1, 2, 3, 4, 5, 6, 7, 23])]
    assert struct.unpack_from(">HHH", container["signature"]) == (0x0014, 0x000B, 256)
    key = serialization.load_pem_public_key(attester.ak_public_pem())
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048


def test_a_flipped_bit_or_the_other_ak_fails_the_signature(ecc, rsa_attester) -> None:
    container = decode(ecc.attest(nonce=NONCE, result=RESULT).data)
    flipped = bytearray(container["attest"])
    flipped[-1] ^= 1
    with pytest.raises(InvalidSignature):
        verify_signature({**container, "attest": bytes(flipped)}, ecc.ak_public_pem())
    other = decode(rsa_attester.attest(nonce=NONCE, result=RESULT).data)
    with pytest.raises(InvalidSignature):
        verify_signature({**other, "attest": container["attest"]}, rsa_attester.ak_public_pem())
    changed = {**container, "pcrs": {**container["pcrs"], "sha256": {
        **container["pcrs"]["sha256"], 0: b"\x01" * 32}}}  # fmt: skip
    attest = read_attest(container["attest"])
    assert pcr_digest(changed, attest.selection) != attest.pcr_digest


def test_the_ak_is_made_once_and_found_again_at_its_handle(swtpm, ecc, state) -> None:
    again = TpmAttester(swtpm.tcti, state, banks=("sha256", "sha384"))
    assert again.ak_public_der() == ecc.ak_public_der()
    assert ecc.ak_public_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    key = serialization.load_der_public_key(ecc.ak_public_der())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    persistent = tpm2(swtpm, "handles-persistent")
    assert "0x81008001" in persistent
    assert "0x81008002" in persistent
    assert "0x81010001" in persistent  # swtpm_setup's RSA EK, used as the AK's parent


def test_a_handle_holding_a_key_this_attester_did_not_make_is_refused(swtpm, ecc, tmp_path) -> None:
    with pytest.raises(TpmError, match="0x81008001 holds a key that this attester did not"):
        TpmAttester(swtpm.tcti, tmp_path)


def test_no_transient_object_is_left_on_the_tpm(swtpm, ecc, rsa_attester) -> None:
    ecc.attest(nonce=NONCE, result=RESULT)
    assert "0x80" not in tpm2(swtpm, "handles-transient")


def test_the_ek_certificate_chains_to_swtpms_local_ca(swtpm, ecc) -> None:
    der = ecc.ek_certificate()
    assert der is not None
    certificate = x509.load_der_x509_certificate(der)
    root, issuer = (x509.load_der_x509_certificate(c) for c in swtpm.ca_certificates)
    certificate.verify_directly_issued_by(issuer)
    issuer.verify_directly_issued_by(root)
    with pytest.raises((ValueError, InvalidSignature)):
        certificate.verify_directly_issued_by(root)
    assert isinstance(certificate.public_key(), rsa.RSAPublicKey)  # the RSA EK's


def test_a_bank_the_tpm_does_not_have_is_refused(swtpm, state) -> None:
    with pytest.raises(TpmError, match=r"no sha1 bank with PCR 23 .*sha256, sha384"):
        TpmAttester(swtpm.tcti, state, banks=("sha1",))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ak_type": "dsa"}, "the AK type is one of"),
        ({"pcr": 24}, "PCR indexes are 0..23"),
        ({"pcrs": (0, 99)}, "PCR indexes are 0..23"),
        ({"banks": ("md5",)}, "the banks are among"),
        ({"banks": ()}, "the banks are among"),
    ],
)
def test_bad_options_are_refused_before_the_tpm_is_used(tmp_path, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        TpmAttester("swtpm:host=127.0.0.1,port=1", tmp_path, **options)


def test_a_wrong_nonce_size_is_refused(ecc) -> None:
    with pytest.raises(ValueError, match="32 bytes, not 31"):
        ecc.attest(nonce=bytes(31), result=RESULT)
    with pytest.raises(ValueError, match="at most 64 bytes, not 65"):
        ecc.quote(bytes(65))


def test_a_stopped_swtpm_is_a_clear_error_naming_the_command(tmp_path) -> None:
    with Swtpm() as running:
        attester = TpmAttester(running.tcti, tmp_path)
        tcti = running.tcti
    assert not running.running
    with pytest.raises(TpmError, match=r"tpm2_pcrreset 23 failed .*Connection refused") as info:
        attester.attest(nonce=NONCE, result=RESULT)
    assert tcti in str(info.value)
    with pytest.raises(TpmError, match="tpm2_getcap pcrs failed"):
        TpmAttester(tcti, tmp_path)


def test_swtpm_stops_when_the_block_fails_and_keeps_a_given_state(tmp_path) -> None:
    keys: list[bytes] = []

    def fail_inside() -> None:
        with Swtpm(tmp_path / "s") as running:
            keys.append(TpmAttester(running.tcti, tmp_path / "a").ak_public_der())
            swtpms.append(running)
            raise RuntimeError("inside")

    swtpms: list[Swtpm] = []
    with pytest.raises(RuntimeError, match="inside"):
        fail_inside()
    (running,) = swtpms
    (first,) = keys
    assert not running.running
    with pytest.raises(SwtpmError, match="not running"):
        _ = running.tcti
    with Swtpm(tmp_path / "s") as again:  # the AK persisted in the swtpm's state
        assert TpmAttester(again.tcti, tmp_path / "a").ak_public_der() == first


def test_an_unmanufactured_swtpm_has_no_ek_certificate(tmp_path) -> None:
    with Swtpm() as running:
        attester = TpmAttester(running.tcti, tmp_path)
        assert attester.ek_certificate() is None
        assert running.ca_certificates == ()
        tcti = running.tcti
        assert "0x81010001" in tpm2(running, "handles-persistent")  # made by tpm2_createek
    assert tcti.startswith("swtpm:host=127.0.0.1,port=")


# The attester's own reading of its quote, fuzzed: it raises only TpmError.


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=64), st.binary(max_size=200))
def test_the_quote_reader_raises_only_its_own_error(attest, extra, values) -> None:
    with contextlib.suppress(TpmError):
        check_quote(attest, b"", extra, values)


def test_the_quote_reader_refuses_every_flipped_bit_it_reads(ecc) -> None:
    quote = ecc.quote(NONCE)
    values = b"".join(v for bank in ecc.banks for _, v in sorted(quote.pcrs[bank].items()))
    assert check_quote(quote.attest, quote.signature, NONCE, values) == quote
    # What it does not read: the qualifiedSigner's name (8..42), clockInfo and
    # firmwareVersion (76..101); the signature covers them, the verifier checks that.
    for at in [i for i in range(len(quote.attest)) if not (8 <= i < 42 or 76 <= i < 101)]:
        for bit in range(8):
            mutated = bytearray(quote.attest)
            mutated[at] ^= 1 << bit
            with pytest.raises(TpmError):
                check_quote(bytes(mutated), quote.signature, NONCE, values)
    with pytest.raises(TpmError, match="read back 10 bytes"):
        check_quote(quote.attest, quote.signature, NONCE, values[:10])
    with pytest.raises(TpmError, match="do not hash to the quote's pcrDigest"):
        check_quote(quote.attest, quote.signature, NONCE, bytes(len(values)))


def test_the_log_writer_refuses_unknown_banks() -> None:
    with pytest.raises(ValueError, match="banks must be among"):
        EventLogWriter(("sha3_256",))
    with pytest.raises(ValueError, match="banks must be among"):
        EventLogWriter(())


def tpm2(running: Swtpm, capability: str) -> str:
    return subprocess.run(
        ["tpm2_getcap", capability],  # noqa: S607 - the tool on PATH, as the attester runs it
        env={"TPM2TOOLS_TCTI": running.tcti},
        capture_output=True,
        check=True,
        text=True,
    ).stdout


def test_the_tampered_bad_mode_flips_a_signed_bit_and_keeps_the_format(ecc) -> None:
    evidence = ecc.attest(nonce=NONCE, result=RESULT)
    tampered = tamper(evidence)
    original, changed = decode(evidence.data), decode(tampered.data)  # still the container form
    assert {k: v for k, v in original.items() if k != "attest"} == {
        k: v for k, v in changed.items() if k != "attest"
    }
    diff = [a ^ b for a, b in zip(original["attest"], changed["attest"], strict=True)]
    assert sum(bin(d).count("1") for d in diff) == 1  # one bit, in the signed bytes
    verify_signature(original, ecc.ak_public_pem())
    with pytest.raises(InvalidSignature):
        verify_signature(changed, ecc.ak_public_pem())
