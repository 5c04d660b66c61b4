"""The simulated NitroTPM on a real software TPM (swtpm, libtpms): every document is read here
with the test's own CBOR reading (cbor2, no verifier code) and checked against what the test
reads from the TPM itself (``tpm2_pcrread``) and from the AK's public key; its COSE signature
is verified with cryptography and the simulated leaf's certificate."""

from __future__ import annotations

import hashlib
import os
import subprocess
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enclave_worker import SimulatedNitroPki, SimulatedNitroTpm, SimulatedNitroWarning
from enclave_worker.binding import NONCE_SIZE, ResultDigest
from enclave_worker.job import tamper
from enclave_worker.swtpm import Swtpm
from enclave_worker.tpm import TPM2_QUOTE, Quote, TpmAttester, TpmError
from tests.enclave_worker.test_tpm import binding, decode, verify_quote, verify_signature
from tests.support import SIM_AT, simulated_pki

NONCE = bytes(range(100, 132))
RESULT = ResultDigest.of(b"label=heron score=0.314")
PAYLOAD_ORDER = ["module_id", "digest", "timestamp", "nitrotpm_pcrs", "certificate",
                 "cabundle", "public_key", "user_data", "nonce"]  # fmt: skip


# The test's own readers.


def tpm_pcrs(swtpm: Swtpm, bank: str) -> dict[int, bytes]:
    """The TPM's PCRs of ``bank`` as tpm2_pcrread prints them (YAML-ish text, not -o)."""
    printed = subprocess.run(
        ["tpm2_pcrread", bank],  # noqa: S607 - the tool on PATH, as the attester runs it
        env={**os.environ, "TPM2TOOLS_TCTI": swtpm.tcti},
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    values = {}
    for line in printed.splitlines()[1:]:
        index, value = line.split(":")
        values[int(index)] = bytes.fromhex(value.strip().removeprefix("0x"))
    return values


def read_document(document: bytes) -> tuple[list[Any], dict[str, Any]]:
    """The COSE_Sign1 array and its payload map, and the payload's key order as written."""
    envelope = cbor2.loads(document)
    assert isinstance(envelope, list)
    assert len(envelope) == 4
    assert document[0] == 0x84  # untagged, as the NSM writes it
    protected, unprotected, payload, signature = envelope
    assert cbor2.loads(protected) == {1: -35}  # ES384
    assert unprotected == {}
    assert len(signature) == 96
    assert payload[0] == 0xBF  # indefinite-length map, as documents since 2025
    fields = cbor2.loads(payload)
    assert list(fields) == PAYLOAD_ORDER
    return envelope, fields


def verify_cose(envelope: list[Any], certificate_der: bytes) -> None:
    """The ES384 signature over Sig_structure1 with the certificate's key; raises."""
    protected, _, payload, signature = envelope
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    key = x509.load_der_x509_certificate(certificate_der).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(
        int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    )
    key.verify(der, to_be_signed, ec.ECDSA(hashes.SHA384()))


def ak_point(attester: TpmAttester) -> bytes:
    key = serialization.load_der_public_key(attester.ak_public_der())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    numbers = key.public_numbers()
    return b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


# Fixtures: one manufactured swtpm (banks sha256 and sha384) for the module.


@pytest.fixture(scope="module")
def swtpm() -> Iterator[Swtpm]:
    with Swtpm(manufacture=True) as running:
        yield running


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nitrotpm-attester")


@pytest.fixture(scope="module")
def pki() -> SimulatedNitroPki:
    return simulated_pki()


@pytest.fixture(scope="module")
def tpm(swtpm, state) -> TpmAttester:
    return TpmAttester(swtpm.tcti, state, banks=("sha256", "sha384"), model="nitro-model")


@pytest.fixture(scope="module")
def nitrotpm(tpm, pki) -> SimulatedNitroTpm:
    with pytest.warns(SimulatedNitroWarning, match="simulated PKI, not AWS"):
        return SimulatedNitroTpm(tpm, pki, clock=lambda: SIM_AT)


def test_the_document_binds_the_ak_the_nonce_and_the_tpms_sha384_pcrs(
    swtpm, tpm, pki, nitrotpm
) -> None:
    evidence = nitrotpm.attest(nonce=NONCE, result=RESULT)
    assert evidence.kind == TPM2_QUOTE == nitrotpm.kind
    assert evidence.endorsements == ()
    container = decode(evidence.data)  # format first, then canonical order
    assert set(container) == {"format", "attest", "signature", "ak", "pcrs", "event_log",
                              "nitro_document"}  # fmt: skip
    attest = verify_quote(container, tpm.ak_public_pem(), binding(NONCE, RESULT))
    assert [bank for bank, _ in attest.selection] == ["sha256", "sha384"]

    envelope, fields = read_document(container["nitro_document"])
    on_the_tpm = tpm_pcrs(swtpm, "sha384")
    assert sorted(on_the_tpm) == list(range(24))
    assert fields["nitrotpm_pcrs"] == on_the_tpm  # all 24, as the TPM holds them now
    for index, value in container["pcrs"]["sha384"].items():
        assert fields["nitrotpm_pcrs"][index] == value  # and the quoted ones among them
    assert fields["nitrotpm_pcrs"][23] != bytes(48)  # the job PCR, extended
    assert fields["public_key"] == ak_point(tpm)
    assert len(fields["public_key"]) == 65
    assert fields["nonce"] == NONCE == attest.extra_data[:NONCE_SIZE]
    assert fields["user_data"] is None
    assert fields["module_id"] == f"{pki.instance_id}-tpm0000000000000000"
    assert fields["digest"] == "SHA384"
    assert fields["timestamp"] == int(SIM_AT.timestamp() * 1000)
    assert fields["certificate"] == pki.leaf.der
    levels = ("root", "regional", "zonal", "instance")
    assert fields["cabundle"] == [pki.certificates[level].der for level in levels]
    verify_cose(envelope, fields["certificate"])


def test_the_signature_is_the_leafs_and_covers_the_payload(nitrotpm, pki) -> None:
    container = decode(nitrotpm.attest(nonce=NONCE, result=RESULT).data)
    envelope, fields = read_document(container["nitro_document"])
    with pytest.raises(InvalidSignature):  # the instance's key did not sign it
        verify_cose(envelope, pki.certificates["instance"].der)
    changed = dict(fields, nonce=bytes(32))
    payload = b"\xbf" + b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in changed.items())
    with pytest.raises(InvalidSignature):  # another nonce under the same signature
        verify_cose([envelope[0], {}, payload + b"\xff", envelope[3]], pki.leaf.der)


def test_the_nonce_alone_is_the_document_nonce_and_the_timestamp_is_given(
    swtpm, state, pki
) -> None:
    tpm = TpmAttester(swtpm.tcti, state, banks=("sha256", "sha384"), bind_result=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        nitrotpm = SimulatedNitroTpm(tpm, pki)
    later = SIM_AT + timedelta(minutes=7)
    container = decode(nitrotpm.attest(nonce=NONCE, result=RESULT, timestamp=later).data)
    attest = verify_quote(container, tpm.ak_public_pem(), NONCE)
    assert len(attest.extra_data) == 32
    _, fields = read_document(container["nitro_document"])
    assert fields["nonce"] == NONCE
    assert fields["timestamp"] == int(later.timestamp() * 1000)


def test_each_job_gets_its_own_document(nitrotpm) -> None:
    first = decode(nitrotpm.attest(nonce=NONCE, result=RESULT).data)
    other = decode(nitrotpm.attest(nonce=bytes(32), result=ResultDigest.of(b"other")).data)
    _, a = read_document(first["nitro_document"])
    _, b = read_document(other["nitro_document"])
    assert (a["nonce"], b["nonce"]) == (NONCE, bytes(32))
    assert a["nitrotpm_pcrs"][23] != b["nitrotpm_pcrs"][23]  # another result measured
    assert a["nitrotpm_pcrs"][23] == first["pcrs"]["sha384"][23]
    assert b["nitrotpm_pcrs"][23] == other["pcrs"]["sha384"][23]


def test_an_rsa_ak_cannot_be_bound(swtpm, state, pki) -> None:
    rsa_tpm = TpmAttester(swtpm.tcti, state, ak_type="rsa", banks=("sha256", "sha384"))
    with pytest.raises(ValueError, match="an RSA AK cannot be bound"):
        SimulatedNitroTpm(rsa_tpm, pki)


def test_a_tpm_attester_that_does_not_quote_sha384_is_refused(swtpm, state, pki) -> None:
    sha256_only = TpmAttester(swtpm.tcti, state)
    with pytest.raises(ValueError, match="must quote the sha384 bank"):
        SimulatedNitroTpm(sha256_only, pki)


def test_a_pcr_extended_between_the_quote_and_the_read_is_caught(swtpm, state, pki) -> None:
    class Interrupted(TpmAttester):
        """Another process extends a quoted PCR (16, the debug PCR) right after the quote."""

        def measured_quote(self, **job: Any) -> tuple[Quote, bytes]:
            done = super().measured_quote(**job)
            self.tools.run("tpm2_pcrextend", f"16:sha384={hashlib.sha384(b'x').hexdigest()}")
            return done

    tpm = Interrupted(swtpm.tcti, state, banks=("sha256", "sha384"), pcrs=(16,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        nitrotpm = SimulatedNitroTpm(tpm, pki)
    with pytest.raises(TpmError, match=r"sha384 PCR 16 is .* as quoted: it changed"):
        nitrotpm.attest(nonce=NONCE, result=RESULT)
    tpm.tools.run("tpm2_pcrreset", "16")


def test_the_payload_takes_the_24_sha384_pcrs_only(nitrotpm) -> None:
    pcrs = {index: bytes(48) for index in range(24)}
    assert nitrotpm.payload_fields(nonce=NONCE, pcrs=pcrs)["public_key"] == nitrotpm.ak_point
    for wrong in (
        {i: bytes(48) for i in range(16)},
        {**pcrs, 5: bytes(32)},
        {**pcrs, 24: bytes(48)},
    ):
        with pytest.raises(ValueError, match=r"the 24 sha384 PCRs 0..23 of 48 bytes"):
            nitrotpm.document(nonce=NONCE, pcrs=wrong)


def test_another_public_key_is_written_as_given(nitrotpm) -> None:
    other = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    pcrs = {index: bytes(48) for index in range(24)}
    _, fields = read_document(nitrotpm.document(nonce=NONCE, pcrs=pcrs, public_key=other))
    assert fields["public_key"] == other != nitrotpm.ak_point


def test_read_pcrs_reads_every_pcr_of_a_bank_the_tpm_has(swtpm, tpm) -> None:
    assert tpm.read_pcrs("sha256") == tpm_pcrs(swtpm, "sha256")
    assert set(map(len, tpm.read_pcrs("sha384").values())) == {48}
    with pytest.raises(TpmError, match=r"tpm2_pcrread sha1 gave 0 bytes.*the sha1 bank"):
        tpm.read_pcrs("sha1")  # swtpm_setup activated sha256 and sha384 only
    with pytest.raises(ValueError, match="the banks are among"):
        tpm.read_pcrs("md5")


def test_tampering_keeps_the_document_and_breaks_the_quotes_signature(tpm, nitrotpm) -> None:
    evidence = nitrotpm.attest(nonce=NONCE, result=RESULT)
    original, changed = decode(evidence.data), decode(tamper(evidence).data)
    assert changed["nitro_document"] == original["nitro_document"]
    verify_signature(original, tpm.ak_public_pem())
    with pytest.raises(InvalidSignature):
        verify_signature(changed, tpm.ak_public_pem())
