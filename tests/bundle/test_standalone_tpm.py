"""The standalone verifier's TPM 2.0 parts on their own: the three real quotes (AWS NitroTPM,
GCP vTPM, a bare quote) with their known outcomes at their times; each rule broken on its own
gives its code; quotes signed in the test by keys made in the test (TPMS_ATTEST built here by
the specification, not by the judge's code) carry event logs built here by hand; arbitrary
bytes as a container, TPMS_ATTEST, TPMT_SIGNATURE or log only ever give a contraindicated
verdict with a code (never an exception, never a warning: pytest turns warnings into errors
here); Google's roots are trust anchors; recorded TPM policies and enrolment entries are
read, malformed ones refused. Agreement with the project's verifier is for the differential
test."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_ledger.bundles import verify_bundle as standalone
from tests.support import FIXTURES

TPM = "tpm2-quote"
HERE = FIXTURES / "tpm"
AT = datetime(2026, 2, 3, 10, 12, 2, tzinfo=UTC)  # the NitroTPM document's timestamp
SKEW = timedelta(seconds=60)
SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CODES = {
    "malformed", "oversize", "tpm_signature_invalid", "pcr_digest_mismatch",
    "event_log_mismatch", "ak_unendorsed", "ak_enrolment_revoked",
    "ak_binding_invalid", "ak_certificate_mismatch", "chain_invalid", "untrusted_root",
    "expired", "not_yet_valid", "signature_invalid", "unsupported", "endorsement_mismatch",
}  # fmt: skip
BANK_IDS = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}


def _json(name: str) -> dict[str, Any]:
    return dict(json.loads((HERE / name).read_text()))


def _pem_ders(text: str) -> list[bytes]:
    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(text.encode())]


def _anchor(der: bytes) -> standalone.Anchor:
    return standalone.load_anchor(der), der


AWS = _pem_ders((FIXTURES / "nitro" / "aws_nitro_root_g1.pem").read_text())[0]
GOOGLE = _pem_ders((HERE / "gcp_ekak_root.pem").read_text())[0]
GOOGLE_2018 = (HERE / "tpm_gcp_tpm_ek_root_1.cer").read_bytes()
INTERMEDIATE_2018 = (HERE / "tpm_gcp_tpm_ek_intermediate_2.crt").read_bytes()
ANCHORS = [_anchor(AWS), _anchor(GOOGLE), _anchor(GOOGLE_2018)]


# --- the real samples, in the contract's container (converted here, by the contract) -------


def container(**fields: Any) -> bytes:
    """The evidence map, ``format`` first."""
    return bytes(cbor2.dumps({"format": "tpm2-quote/v1", **fields}))


def _p256_spki(x: str, y: str) -> bytes:
    numbers = ec.EllipticCurvePublicNumbers(int(x, 16), int(y, 16), ec.SECP256R1())
    return numbers.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _tpm2b(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def ecdsa_signature(der: bytes, bank: str = "sha256") -> bytes:
    """A DER ECDSA signature as a TPMT_SIGNATURE (ECDSA, the hash), the same r and s."""
    r, s = decode_dss_signature(der)
    return (
        (0x0018).to_bytes(2, "big")
        + BANK_IDS[bank].to_bytes(2, "big")
        + b"".join(_tpm2b(v.to_bytes(32, "big")) for v in (r, s))
    )


def vaportpm(name: str) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """(container fields, endorsements) of a vaportpm sample."""
    data = _json(name)
    quote = data["attestation"]["tpm"]["ecc_p256"]
    key = data["ak_pubkeys"]["ecc_p256"]
    fields: dict[str, Any] = {
        "attest": bytes.fromhex(quote["attest_data"]),
        "signature": ecdsa_signature(bytes.fromhex(quote["signature"])),
        "ak": _p256_spki(key["x"], key["y"]),
        "pcrs": {
            bank: {int(i): bytes.fromhex(v) for i, v in values.items()}
            for bank, values in data["pcrs"].items()
        },
    }
    endorsements: list[tuple[str, bytes]] = []
    if "nitro" in data["attestation"]:
        fields["nitro_document"] = bytes.fromhex(data["attestation"]["nitro"]["document"])
    if "gcp" in data["attestation"]:
        chain = _pem_ders(data["attestation"]["gcp"]["ak_cert_chain"])
        endorsements = [("ak-certificate", chain[0])] + [("certificate", d) for d in chain[1:]]
    return fields, endorsements


def trustee() -> dict[str, Any]:
    data = _json("trustee_tpm_evidence.json")
    quote = data["tpm_quote"]
    return {
        "attest": base64.b64decode(quote["message"]),
        "signature": base64.b64decode(quote["signature"]),
        "ak": base64.b64decode(data["ak_public"]),
        "pcrs": {"sha256": {i: bytes.fromhex(v) for i, v in enumerate(quote["pcrs"])}},
    }


NITRO, _ = vaportpm("vaportpm_test-nitro-fixture.json")
GCP, GCP_CHAIN = vaportpm("vaportpm_test-gcp-amd-fixture.json")
TRUSTEE = trustee()


def policy(images: list[dict[str, Any]] | None = None, **settings_: Any) -> dict[str, Any]:
    return standalone.tpm_policy(images, {**standalone.TPM_DEFAULTS, **settings_}, SKEW)


def image_of(pcrs: dict[str, dict[int, bytes]], events: list[Any] | None = None) -> dict[str, Any]:
    """A recorded image ({"pcrs": {bank: {"i": hex}}, "events": [...]}) of these PCRs."""
    out: dict[str, Any] = {
        "pcrs": {b: {str(i): v.hex() for i, v in values.items()} for b, values in pcrs.items()}
    }
    if events is not None:
        out["events"] = events
    return out


def judged(
    fields: dict[str, Any],
    endorsements: list[tuple[str, bytes]] | None = None,
    *,
    at: datetime = AT,
    anchors: list[standalone.Anchor] | None = None,
    enrolments: list[dict[str, Any]] | None = None,
    policy_: dict[str, Any] | None = None,
    binding: bytes | None = None,
) -> tuple[str, set[str]]:
    return standalone.judge(
        TPM, container(**fields), ANCHORS if anchors is None else anchors, policy_, at, binding,
        endorsements or [], None, enrolments or [],
    )  # fmt: skip


def test_the_fixtures_are_the_ones_described() -> None:
    for line in (HERE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((HERE / name).read_bytes()).hexdigest() == digest, name
    for der in (GOOGLE, GOOGLE_2018):
        assert hashlib.sha256(der).hexdigest() in standalone.GOOGLE_ROOTS


# --- the real samples at their times ----------------------------------------------------------


def test_the_nitrotpm_quote_is_vouched_for_by_its_nitro_document() -> None:
    """Its image (its 24 SHA-384 PCRs) affirms; with no image for the worker the intake's
    accept-any policy leaves only no_reference_values; the document's chain is judged at the
    verification time, as every certificate is: a later instant finds it expired."""
    mine = policy([image_of(NITRO["pcrs"])])
    assert judged(NITRO, policy_=mine) == ("affirming", set())
    assert judged(NITRO) == ("contraindicated", {"no_reference_values"})
    assert judged(NITRO, policy_=policy()) == ("warning", set())
    assert judged(NITRO, policy_=mine, at=AT + timedelta(days=400)) == (
        "contraindicated", {"expired"},
    )  # fmt: skip
    # the Nitro root is the entry's, compared by DER: without it, no document vouches
    google_only = [_anchor(GOOGLE), _anchor(GOOGLE_2018)]
    assert judged(NITRO, anchors=google_only) == (
        "contraindicated", {"no_reference_values", "untrusted_root"},
    )  # fmt: skip


def test_the_gcp_quote_chains_to_the_ek_ak_ca_root_only() -> None:
    mine = policy([image_of(GCP["pcrs"])])
    assert judged(GCP, GCP_CHAIN, policy_=mine) == ("affirming", set())
    assert judged(GCP, GCP_CHAIN, policy_=mine, at=datetime(2056, 1, 1, tzinfo=UTC)) == (
        "affirming", set(),
    )  # fmt: skip
    only_2018 = [_anchor(AWS), _anchor(GOOGLE_2018)]
    assert judged(GCP, GCP_CHAIN, anchors=only_2018, policy_=mine) == (
        "contraindicated", {"untrusted_root"},
    )  # fmt: skip
    # the AK certificate's window: notBefore 2026-02-02T06:57:47Z (the skew tolerates 60 s)
    early = datetime(2026, 2, 2, 6, 56, 46, tzinfo=UTC)
    assert judged(GCP, GCP_CHAIN, policy_=mine, at=early) == ("contraindicated", {"not_yet_valid"})
    assert judged(GCP, GCP_CHAIN, policy_=mine, at=early + timedelta(seconds=2))[0] == "affirming"
    late = datetime(2056, 1, 27, tzinfo=UTC)
    assert judged(GCP, GCP_CHAIN, policy_=mine, at=late) == ("contraindicated", {"expired"})


def test_the_delivered_root_is_not_trusted_for_being_delivered() -> None:
    """The chain as delivered ends with the root itself: only the root the entry names, by
    DER, is trusted; without the intermediate there is no path."""
    ak, intermediate = GCP_CHAIN[0], GCP_CHAIN[1]
    assert GCP_CHAIN[2] == ("certificate", GOOGLE)
    assert judged(GCP, [ak, intermediate], policy_=policy())[0] == "warning"
    assert judged(GCP, [ak, GCP_CHAIN[2]], policy_=policy()) == (
        "contraindicated", {"untrusted_root"},
    )  # fmt: skip
    assert judged(GCP, [ak], policy_=policy()) == ("contraindicated", {"untrusted_root"})
    # the 2018 intermediate is a CA: as the AK certificate it is refused
    assert judged(GCP, [("ak-certificate", INTERMEDIATE_2018)], policy_=policy()) == (
        "contraindicated", {"chain_invalid"},
    )  # fmt: skip
    # two AK certificates: which would be the AK's? (the project's endorsement_mismatch)
    two = [ak, ("ak-certificate", ak[1]), intermediate]
    assert judged(GCP, two, policy_=policy()) == ("contraindicated", {"endorsement_mismatch"})


def test_the_bare_quote_verifies_but_nothing_vouches_for_its_key() -> None:
    for at in (AT, datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)):
        assert judged(TRUSTEE, at=at, policy_=policy()) == ("contraindicated", {"ak_unendorsed"})


# --- each rule broken on its own ---------------------------------------------------------------


def _flip(data: bytes, at: int, mask: int = 1) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


@pytest.mark.parametrize("sample", ["nitro", "gcp", "trustee"])
def test_every_flipped_bit_of_the_quote_is_caught(sample: str) -> None:
    """Every byte of TPMS_ATTEST is signed: one bit changed anywhere is malformed (a field
    the parser checks: magic, type, a size, safe, the selection), unsupported (a hash
    algorithm this judge does not know, as the project's parser says) or breaks the AK's
    signature."""
    fields, chain = {"nitro": (NITRO, []), "gcp": (GCP, GCP_CHAIN), "trustee": (TRUSTEE, [])}[
        sample
    ]
    attest = fields["attest"]
    seen = set()
    for at in range(len(attest)):
        status, codes = judged({**fields, "attest": _flip(attest, at)}, chain)
        assert status == "contraindicated"
        assert codes - {"no_reference_values"} in (
            {"malformed"}, {"unsupported"}, {"tpm_signature_invalid"},
        )  # fmt: skip
        seen |= codes
    assert {"malformed", "tpm_signature_invalid"} <= seen
    assert judged({**fields, "attest": _flip(attest, 0)}, chain)[1] >= {"malformed"}  # magic
    assert judged({**fields, "attest": _flip(attest, 5)}, chain)[1] >= {"malformed"}  # type


def test_a_changed_missing_or_extra_pcr_breaks_the_pcr_digest() -> None:
    pcrs = NITRO["pcrs"]["sha384"]
    changed = {"sha384": {**pcrs, 7: _flip(pcrs[7], 0)}}
    missing = {"sha384": {i: v for i, v in pcrs.items() if i != 23}}
    extra = {"sha384": pcrs, "sha256": {0: bytes(32)}}
    assert judged({**NITRO, "pcrs": changed}) == (
        "contraindicated", {"no_reference_values", "pcr_digest_mismatch"},
    )  # fmt: skip
    # values not exactly the quote's selection: malformed, as the project's parser says
    for sent in (missing, extra):
        assert judged({**NITRO, "pcrs": sent}) == (
            "contraindicated", {"no_reference_values", "malformed"},
        )  # fmt: skip


def test_a_foreign_ak_breaks_the_signature() -> None:
    """The GCP quote sent with the NitroTPM AK (the same curve, another key), or with the
    bare quote's RSA key."""
    for ak in (NITRO["ak"], TRUSTEE["ak"]):
        assert judged({**GCP, "ak": ak}, GCP_CHAIN, policy_=policy()) == (
            "contraindicated", {"tpm_signature_invalid"},
        )  # fmt: skip
    # the signature's hash is the one TPMT_SIGNATURE names: SHA-384 does not verify it
    sha384 = GCP["signature"][:2] + b"\x00\x0c" + GCP["signature"][4:]
    assert judged({**GCP, "signature": sha384}, GCP_CHAIN, policy_=policy())[1] == {
        "tpm_signature_invalid"
    }


def test_a_nitro_document_vouches_only_for_its_own_key() -> None:
    """The GCP quote with the NitroTPM document: the document's public_key is not that AK."""
    both = {**GCP, "nitro_document": NITRO["nitro_document"]}
    assert judged(both, GCP_CHAIN, policy_=policy()) == (
        "contraindicated", {"ak_binding_invalid"},
    )  # fmt: skip
    # an enclave's document (pcrs, no nitrotpm_pcrs) does not vouch for a TPM's AK
    enclave = (FIXTURES / "nitro" / "evervault_beta_valid.cbor").read_bytes()
    assert judged({**NITRO, "nitro_document": enclave})[1] - {"no_reference_values"} in (
        {"ak_binding_invalid"}, {"untrusted_root"}, {"expired"}, {"not_yet_valid"},
    )  # fmt: skip
    # one changed byte of the document's signature
    document = NITRO["nitro_document"]
    assert judged({**NITRO, "nitro_document": _flip(document, len(document) - 1)}) == (
        "contraindicated", {"no_reference_values", "signature_invalid"},
    )  # fmt: skip


def test_an_ak_certificate_for_another_key_is_a_mismatch() -> None:
    """The NitroTPM quote without its document, with the GCP AK certificate chain."""
    bare = {k: v for k, v in NITRO.items() if k != "nitro_document"}
    assert judged(bare, GCP_CHAIN, policy_=policy()) == (
        "contraindicated", {"ak_certificate_mismatch"},
    )  # fmt: skip
    assert judged(bare, policy_=policy()) == ("contraindicated", {"ak_unendorsed"})


def enrolment(ak: bytes, action: str, at: datetime) -> dict[str, Any]:
    return {"action": action, "ak_sha256": hashlib.sha256(ak).hexdigest(), "at": at, "name": "n"}


def test_an_enrolled_ak_is_vouched_for_until_revoked() -> None:
    """The bare quote's AK enrolled: its PCRs all at reset values are then the policy's
    concern (reject_all_reset); enrolment after the instant, or a revocation at or before
    it, is not enrolled."""
    ak, hour = TRUSTEE["ak"], timedelta(hours=1)
    mine = policy([image_of(TRUSTEE["pcrs"])])
    on = [enrolment(ak, "enrolled", AT - hour)]
    assert judged(TRUSTEE, enrolments=on, policy_=mine) == ("contraindicated", {"pcrs_all_reset"})
    lenient = policy([image_of(TRUSTEE["pcrs"])], reject_all_reset=False)
    assert judged(TRUSTEE, enrolments=on, policy_=lenient) == ("affirming", set())
    assert judged(TRUSTEE, enrolments=[enrolment(ak, "enrolled", AT)], policy_=lenient)[0] == (
        "affirming"
    )
    later = [enrolment(ak, "enrolled", AT + timedelta(milliseconds=1))]
    assert judged(TRUSTEE, enrolments=later, policy_=lenient) == (
        "contraindicated", {"ak_unendorsed"},
    )  # fmt: skip
    for revoked_at, outcome in (
        (AT - timedelta(minutes=1), ("contraindicated", {"ak_enrolment_revoked"})),
        (AT, ("contraindicated", {"ak_enrolment_revoked"})),
        (AT + timedelta(milliseconds=1), ("affirming", set())),
    ):
        book = [*on, enrolment(ak, "revoked", revoked_at)]
        assert judged(TRUSTEE, enrolments=book, policy_=lenient) == outcome
    other = [enrolment(GCP["ak"], "enrolled", AT - hour)]  # another AK's enrolment
    assert judged(TRUSTEE, enrolments=other, policy_=lenient) == (
        "contraindicated", {"ak_unendorsed"},
    )  # fmt: skip


def test_the_result_binding_is_extra_data_32_to_64() -> None:
    """32 bytes of extraData hold the nonce only: a requested binding is missing. The bare
    quote's 64 bytes hold something else in [32:64]: a mismatch."""
    binding = standalone.binding_of("sha256:" + "ab" * 32)
    assert judged(NITRO, policy_=policy(), binding=binding) == (
        "contraindicated", {"result_binding_missing"},
    )  # fmt: skip
    enrolled = [enrolment(TRUSTEE["ak"], "enrolled", AT)]
    lenient = policy(reject_all_reset=False)
    assert judged(TRUSTEE, enrolments=enrolled, policy_=lenient, binding=binding) == (
        "contraindicated", {"result_binding_mismatch"},
    )  # fmt: skip


def test_the_policy_names_each_shortfall() -> None:
    pcrs = GCP["pcrs"]["sha256"]
    wrong = image_of({"sha256": {0: pcrs[0], 4: bytes(32)}})
    assert judged(GCP, GCP_CHAIN, policy_=policy([wrong])) == (
        "contraindicated", {"pcr_mismatch"},
    )  # fmt: skip
    right = image_of({"sha256": {0: pcrs[0]}})
    assert judged(GCP, GCP_CHAIN, policy_=policy([wrong, right]))[0] == "affirming"
    # a PCR of a bank the quote does not carry
    assert judged(GCP, GCP_CHAIN, policy_=policy([image_of({"sha1": {0: bytes(20)}})]))[1] == {
        "pcr_mismatch"
    }
    assert judged(GCP, GCP_CHAIN, policy_=policy([right], ak_paths=["enrolled"])) == (
        "contraindicated", {"ak_path_not_allowed"},
    )  # fmt: skip
    assert judged(GCP, GCP_CHAIN, policy_=policy([right], require_event_log=True)) == (
        "contraindicated", {"event_log_missing"},
    )  # fmt: skip


# --- quotes made here, with event logs made here ---------------------------------------------


def attest(
    pcrs: dict[str, dict[int, bytes]], extra: bytes = b"\x11" * 32, name_alg: str = "sha256"
) -> bytes:
    """TPMS_ATTEST (ATTEST_QUOTE) by TPM 2.0 Part 2, over ``pcrs``, big-endian."""
    selection = b""
    for bank, values in pcrs.items():
        bits = sum(1 << i for i in values)
        selection += BANK_IDS[bank].to_bytes(2, "big") + b"\x03" + bits.to_bytes(3, "little")
    digest = hashlib.new(
        name_alg, b"".join(values[i] for values in pcrs.values() for i in sorted(values))
    ).digest()
    name = BANK_IDS[name_alg].to_bytes(2, "big") + hashlib.new(name_alg, b"ak").digest()
    return (
        struct.pack(">IH", 0xFF544347, 0x8018) + _tpm2b(name) + _tpm2b(extra)
        + struct.pack(">QIIB", 123456, 3, 0, 1) + struct.pack(">Q", 0x2019102300163636)
        + struct.pack(">I", len(pcrs)) + selection + _tpm2b(digest)
    )  # fmt: skip


P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
RSA2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed(key: Any, data: bytes, scheme: str = "ecdsa", bank: str = "sha256") -> bytes:
    """TPMT_SIGNATURE: sigAlg, hashAlg, then r and s (ECDSA) or the signature (RSA)."""
    head = {"rsassa": 0x0014, "rsapss": 0x0016, "ecdsa": 0x0018}[scheme].to_bytes(2, "big")
    head += BANK_IDS[bank].to_bytes(2, "big")
    algorithm = {
        "sha1": hashes.SHA1(),  # noqa: S303 - a TPM signs with the SHA-1 it is told to
        "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(),
    }[bank]  # fmt: skip
    if scheme == "ecdsa":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm)))
        size = (key.curve.key_size + 7) // 8
        return head + _tpm2b(r.to_bytes(size, "big")) + _tpm2b(s.to_bytes(size, "big"))
    pad = padding.PKCS1v15() if scheme == "rsassa" else padding.PSS(
        mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH
    )  # fmt: skip
    return head + _tpm2b(key.sign(data, pad, algorithm))


def spki(key: Any) -> bytes:
    return bytes(key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def made(
    pcrs: dict[str, dict[int, bytes]], key: Any = P256, scheme: str = "ecdsa", **logs: bytes
) -> dict[str, Any]:
    data = attest(pcrs)
    return {"attest": data, "signature": signed(key, data, scheme), "ak": spki(key),
            "pcrs": pcrs, **logs}  # fmt: skip


def sha1(data: bytes) -> Any:
    """A digest of a TPM's SHA-1 bank (a PCR bank, not a security choice of ours)."""
    return hashlib.sha1(data, usedforsecurity=False)


def extend(value: bytes, digest: bytes, bank: str) -> bytes:
    return hashlib.new(bank, value + digest).digest()


def tcg_event(pcr: int, kind: int, digests: dict[str, bytes], data: bytes) -> bytes:
    """TCG_PCR_EVENT2: pcrIndex, eventType, TPML_DIGEST_VALUES, eventSize, event (LE)."""
    body = struct.pack("<III", pcr, kind, len(digests))
    for bank, digest in digests.items():
        body += struct.pack("<H", BANK_IDS[bank]) + digest
    return body + struct.pack("<I", len(data)) + data


def tcg_log(*events: bytes, banks: tuple[str, ...] = ("sha1", "sha256")) -> bytes:
    """The SHA-1 format header event with the Spec ID Event03, then ``events``."""
    sizes = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
    spec = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(banks))
    spec += b"".join(struct.pack("<HH", BANK_IDS[b], sizes[b]) for b in banks) + b"\0"
    return (
        struct.pack("<II", 0, 3)
        + bytes(20)
        + struct.pack("<I", len(spec))
        + spec
        + b"".join(events)
    )


def kernel_events() -> tuple[bytes, dict[str, bytes]]:
    """Two events on PCR 23 (and a StartupLocality 3 on PCR 0, then one on PCR 0): the log,
    and the SHA-256 PCRs they replay to, computed here."""
    one = {"sha1": sha1(b"kernel").digest(), "sha256": hashlib.sha256(b"kernel").digest()}
    two = {"sha1": sha1(b"initrd").digest(), "sha256": hashlib.sha256(b"initrd").digest()}
    crtm = {"sha1": sha1(b"crtm").digest(), "sha256": hashlib.sha256(b"crtm").digest()}
    locality = tcg_event(0, 3, {"sha1": bytes(20), "sha256": bytes(32)},
                         b"StartupLocality\0\x03")  # fmt: skip
    log = tcg_log(
        locality, tcg_event(0, 8, crtm, b"crtm"), tcg_event(23, 13, one, b"kernel"),
        tcg_event(23, 13, two, b"initrd"),
    )  # fmt: skip
    pcr0 = extend(bytes(31) + b"\x03", crtm["sha256"], "sha256")
    pcr23 = extend(extend(bytes(32), one["sha256"], "sha256"), two["sha256"], "sha256")
    return log, {"pcr0": pcr0, "pcr23": pcr23, "kernel": one["sha256"]}


def enrolled_at(ak: bytes) -> list[dict[str, Any]]:
    return [enrolment(ak, "enrolled", AT - timedelta(days=1))]


def test_quotes_made_here_verify_with_every_signature_scheme() -> None:
    pcrs = {"sha256": {23: hashlib.sha256(b"x").digest()}}
    mine = policy([image_of(pcrs)])
    for key, scheme, bank in (
        (P256, "ecdsa", "sha256"), (P384, "ecdsa", "sha384"), (RSA2048, "rsassa", "sha256"),
        (RSA2048, "rsapss", "sha256"), (RSA2048, "rsassa", "sha1"), (P256, "ecdsa", "sha512"),
    ):  # fmt: skip
        data = attest(pcrs)
        fields: dict[str, Any] = {"attest": data, "signature": signed(key, data, scheme, bank),
                                  "ak": spki(key), "pcrs": pcrs}  # fmt: skip
        assert judged(fields, enrolments=enrolled_at(fields["ak"]), policy_=mine) == (
            "affirming", set(),
        ), (scheme, bank)  # fmt: skip
    # an RSA signature by an EC key, and the reverse: not the AK's signature
    data = attest(pcrs)
    for key, ak in ((RSA2048, P256), (P256, RSA2048)):
        fields = {"attest": data, "signature": signed(key, data, "rsassa" if key is RSA2048
                  else "ecdsa"), "ak": spki(ak), "pcrs": pcrs}  # fmt: skip
        assert judged(fields, enrolments=enrolled_at(fields["ak"]), policy_=mine)[1] == {
            "tpm_signature_invalid"
        }


def test_an_event_log_made_here_replays_to_the_quoted_pcrs() -> None:
    log, values = kernel_events()
    pcrs = {"sha256": {0: values["pcr0"], 23: values["pcr23"]}}
    fields = made(pcrs, event_log=log)
    book = enrolled_at(fields["ak"])
    kernel = {"pcr": 23, "digest": {"sha256": values["kernel"].hex()}, "label": "kernel"}
    mine = policy([image_of({}, [kernel])], require_event_log=True)
    assert judged(fields, enrolments=book, policy_=mine) == ("affirming", set())
    absent = {"pcr": 23, "digest": {"sha256": hashlib.sha256(b"other").hexdigest()}}
    on_other_pcr = {**kernel, "pcr": 9}
    for event in (absent, on_other_pcr):
        assert judged(fields, enrolments=book, policy_=policy([image_of({}, [event])])) == (
            "contraindicated", {"event_missing"},
        )  # fmt: skip
    # one PCR 23 value that the log does not replay to; the locality not honoured
    for wrong in ({0: values["pcr0"], 23: bytes(32)},
                  {0: extend(bytes(32), hashlib.sha256(b"crtm").digest(), "sha256"),
                   23: values["pcr23"]}):  # fmt: skip
        other = made({"sha256": wrong}, event_log=log)
        assert judged(other, enrolments=book, policy_=mine) == (
            "contraindicated", {"event_log_mismatch"},
        )  # fmt: skip
    # the log touches PCR 0, which the quote does not carry: PCR 23 is proven, PCR 0 is not,
    # so an expected event in PCR 0 is not found in what the log proves
    only_23 = made({"sha256": {23: values["pcr23"]}}, event_log=log)
    assert judged(only_23, enrolments=book, policy_=mine) == ("affirming", set())
    crtm = {"pcr": 0, "digest": {"sha256": hashlib.sha256(b"crtm").hexdigest()}}
    assert judged(fields, enrolments=book, policy_=policy([image_of({}, [crtm])]))[0] == (
        "affirming"
    )
    assert judged(only_23, enrolments=book, policy_=policy([image_of({}, [crtm])])) == (
        "contraindicated", {"event_missing"},
    )  # fmt: skip
    # an expected event by its SHA-1 digest: the quote has no SHA-1 bank, so it is not proven
    by_sha1 = {"pcr": 23, "digest": {"sha1": sha1(b"kernel").hexdigest()}}
    assert judged(fields, enrolments=book, policy_=policy([image_of({}, [by_sha1])])) == (
        "contraindicated", {"event_missing"},
    )  # fmt: skip
    # the log has no digest of the quoted bank (SHA-384): nothing accounts for its events
    sha384 = made({"sha384": {23: bytes(48)}}, event_log=log)
    assert judged(sha384, enrolments=book, policy_=mine)[1] == {"event_log_mismatch"}


def test_a_broken_event_log_is_malformed() -> None:
    log, values = kernel_events()
    pcrs = {"sha256": {0: values["pcr0"], 23: values["pcr23"]}}
    header = len(tcg_log())
    broken = [
        log[:-1],  # cut inside the last event
        log + b"\0",  # a trailing byte
        b"\x01" + log[1:],  # the header event on PCR 1
        log[:32] + b"Spec ID Event02\0" + log[48:],  # not the crypto-agile header
        log[:header] + struct.pack("<I", 24) + log[header + 4 :],  # PCR 24
        log[:header + 8] + struct.pack("<I", 1) + log[header + 12 :],  # one digest of two
    ]  # fmt: skip
    for data in broken:
        fields = made(pcrs, event_log=data)
        assert judged(fields, enrolments=enrolled_at(fields["ak"]), policy_=policy()) == (
            "contraindicated", {"malformed"},
        )  # fmt: skip


def ima_entry(path: bytes, content: bytes, template: bytes = b"ima-ng") -> tuple[bytes, bytes]:
    """One binary IMA record and the data the kernel hashes for it (ima_fs.c, ima_api.c)."""
    if template == b"ima":
        file_digest = sha1(content).digest()
        hashed = file_digest + path + bytes(256 - len(path))
        record = file_digest + struct.pack("<I", len(path)) + path
    else:
        d_ng = b"sha256:\0" + hashlib.sha256(content).digest()
        n_ng = path + b"\0"
        hashed = struct.pack("<I", len(d_ng)) + d_ng + struct.pack("<I", len(n_ng)) + n_ng
        record = struct.pack("<I", len(hashed)) + hashed
    head = struct.pack("<I", 10) + sha1(hashed).digest()
    return head + struct.pack("<I", len(template)) + template + record, hashed


def test_an_ima_log_made_here_replays_to_pcr_10() -> None:
    """ima-ng and ima records, and a violation (zero template digest: all ones extended)."""
    first, hashed1 = ima_entry(b"/usr/bin/job", b"job")
    second, hashed2 = ima_entry(b"/etc/conf", b"conf", b"ima")
    violation = bytearray(ima_entry(b"/tmp/x", b"x")[0])
    violation[4:24] = bytes(20)
    pcr10 = bytes(32)
    for hashed in (hashed1, hashed2):
        pcr10 = extend(pcr10, hashlib.sha256(hashed).digest(), "sha256")
    pcr10 = extend(pcr10, b"\xff" * 32, "sha256")
    log = first + second + bytes(violation)
    fields = made({"sha256": {10: pcr10}}, ima_log=log)
    book = enrolled_at(fields["ak"])
    job = {"pcr": 10, "digest": {"sha256": hashlib.sha256(hashed1).hexdigest()}}
    assert judged(fields, enrolments=book, policy_=policy([image_of({}, [job])])) == (
        "affirming", set(),
    )  # fmt: skip
    # the SHA-1 bank is extended with the logged template digests
    pcr10_sha1 = bytes(20)
    for hashed in (hashed1, hashed2):
        pcr10_sha1 = extend(pcr10_sha1, sha1(hashed).digest(), "sha1")
    pcr10_sha1 = extend(pcr10_sha1, b"\xff" * 20, "sha1")
    both = made({"sha1": {10: pcr10_sha1}, "sha256": {10: pcr10}}, ima_log=log)
    assert judged(both, enrolments=enrolled_at(both["ak"]), policy_=policy())[0] == "warning"
    tampered = made({"sha256": {10: pcr10}}, ima_log=first + second)
    assert judged(tampered, enrolments=book, policy_=policy())[1] == {"event_log_mismatch"}
    cut = made({"sha256": {10: pcr10}}, ima_log=log[:-3])
    assert judged(cut, enrolments=book, policy_=policy())[1] == {"malformed"}


# --- the container, and arbitrary bytes ------------------------------------------------------


def test_the_container_is_strict() -> None:
    good = container(**GCP)
    assert standalone.tpm_container(good)["pcrs"] == GCP["pcrs"]
    bad = [
        {**GCP, "extra": b"x"},  # an unknown key
        {**GCP, "format": "tpm2-quote/v2"},
        {**GCP, "attest": GCP["attest"].hex()},  # text, not bytes
        {**GCP, "pcrs": {"sha3": {0: bytes(32)}}},  # an unknown bank
        {**GCP, "pcrs": {"sha256": {24: bytes(32)}}},  # PCR 24
        {**GCP, "pcrs": {"sha256": {0: bytes(31)}}},  # a value of the wrong size
        {**GCP, "event_log": None},
    ]
    for fields in bad:
        with pytest.raises(standalone.Reject, match="malformed"):
            standalone.tpm_container(bytes(cbor2.dumps({"format": "tpm2-quote/v1", **fields})))
    without = {k: v for k, v in GCP.items() if k != "ak"}
    with pytest.raises(standalone.Reject, match="malformed"):
        standalone.tpm_container(container(**without))
    with pytest.raises(standalone.Reject, match="oversize"):
        standalone.tpm_container(container(**GCP, event_log=bytes(64 * 1024)))
    with pytest.raises(standalone.Reject, match="malformed"):
        standalone.tpm_container(good + b"\0")


PARSERS = (
    standalone.tpm_container, standalone.tpm_attest, standalone.tpm_signature,
    standalone.tcg_log, standalone.ima_log,
)  # fmt: skip
LOG, _VALUES = kernel_events()
SEEDS = (container(**NITRO), GCP["attest"], TRUSTEE["attest"], TRUSTEE["signature"],
         GCP["signature"], LOG, ima_entry(b"/bin/a", b"a")[0])  # fmt: skip


def _mutated(seed: bytes, data: st.DataObject) -> bytes:
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(seed) - 1))
        seed = seed[:at] + bytes([data.draw(st.integers(0, 255))]) + seed[at + 1 :]
    if data.draw(st.booleans()):
        seed = seed[: data.draw(st.integers(0, len(seed)))]
    return seed


def _code(parse: Any, value: bytes) -> str | None:
    try:
        parse(value)
    except standalone.Reject as rejected:
        return rejected.code
    return None


@SETTINGS
@given(data=st.data(), raw=st.binary(max_size=600))
def test_the_parsers_raise_only_reject(data: st.DataObject, raw: bytes) -> None:
    """Any bytes, or a real structure with bytes changed or cut, to every TPM parser."""
    seed = data.draw(st.sampled_from(SEEDS))
    for value in (raw, _mutated(seed, data)):
        for parse in PARSERS:
            assert _code(parse, value) in {None, "malformed", "oversize", "unsupported"}


@SETTINGS
@given(data=st.data())
def test_mutated_evidence_is_contraindicated_with_one_code(data: st.DataObject) -> None:
    """A real sample's container with bytes changed or cut anywhere (attest, signature, AK,
    PCRs, the Nitro document): never an exception, and one code of the contract's."""
    fields, chain = data.draw(st.sampled_from([(NITRO, []), (GCP, GCP_CHAIN), (TRUSTEE, [])]))
    evidence = _mutated(container(**fields), data)
    status, codes = standalone.judge(TPM, evidence, ANCHORS, None, AT, None, chain)
    assert status == "contraindicated"
    assert len(codes - {"no_reference_values"}) <= 1, codes
    assert codes - {"no_reference_values"} <= CODES


@SETTINGS
@given(der=st.binary(max_size=1500), kind=st.sampled_from(["ak-certificate", "certificate"]))
def test_arbitrary_bytes_as_an_ak_certificate_are_contraindicated_with_a_code(
    der: bytes, kind: str
) -> None:
    chain = [GCP_CHAIN[0], *GCP_CHAIN[1:], (kind, der)] if kind == "certificate" else [
        (kind, der), *GCP_CHAIN[1:]
    ]  # fmt: skip
    status, codes = judged(GCP, chain, policy_=policy())
    assert status in ("contraindicated", "warning")
    assert codes <= CODES


# --- anchors, recorded policies, enrolment entries -------------------------------------------


def test_googles_roots_are_trust_anchors_and_their_intermediate_is_not() -> None:
    for der in (GOOGLE, GOOGLE_2018):
        assert standalone.load_anchor(der).public_bytes(Encoding.DER) == der
    for der in (INTERMEDIATE_2018, GCP_CHAIN[0][1], GOOGLE[:-1]):
        with pytest.raises(standalone.Bad, match="Google"):
            standalone.load_anchor(der)


def _snapshot(**changes: object) -> dict[str, object]:
    pcrs = {"sha256": {"0": "ab" * 32}, "sha384": {"23": "00" * 48}}
    event = {"pcr": 9, "digest": {"sha256": "CD" * 32}, "label": "kernel"}
    snapshot: dict[str, object] = {
        "images": [
            {"name": "n", "pcrs": {"0": "00" * 48}},
            {"name": "t", "kind": TPM, "reference": {"pcrs": pcrs, "events": [event]}},
        ],
        "allow_debug": False,
        "max_age_seconds": 300,
        "clock_skew_seconds": 30,
        "workers": {"w": ["n", "t"]},
        "schemes": {TPM: {"ak_paths": ["gcp"], "require_event_log": True}},
    }
    snapshot.update(changes)
    return snapshot


def test_a_policy_with_tpm_images_and_settings_is_read() -> None:
    snapshot = _snapshot()
    assert standalone.policy_problem(snapshot) is None
    tpm = standalone.worker_policy(snapshot, "w", TPM)
    assert tpm is not None
    assert tpm["images"] == [{
        "pcrs": {"sha256": {0: b"\xab" * 32}, "sha384": {23: bytes(48)}},
        "events": [(9, {"sha256": b"\xcd" * 32})],
    }]  # fmt: skip
    assert (tpm["ak_paths"], tpm["require_event_log"], tpm["reject_all_reset"]) == (
        {"gcp"}, True, True,
    )  # fmt: skip
    assert tpm["skew"] == timedelta(seconds=30)
    assert standalone.worker_policy(_snapshot(workers={"w": ["n"]}), "w", TPM) is None


@pytest.mark.parametrize(
    "image",
    [
        {"pcrs": {"sha256": {"24": "00" * 32}}},
        {"pcrs": {"sha256": {"0": "00" * 31}}},
        {"pcrs": {"md5": {"0": "00" * 16}}},
        {"pcrs": {}},
        {"events": [{"pcr": 9, "digest": {}}]},
        {"events": [{"pcr": 24, "digest": {"sha256": "00" * 32}}]},
        {"events": [{"pcr": 9, "digest": {"sha256": "00" * 32}, "extra": 1}]},
        {"pcrs": {"sha256": {"0": "00" * 32}}, "other": 1},
    ],
)
def test_malformed_tpm_images_are_refused(image: dict[str, Any]) -> None:
    images = [{"name": "t", "kind": TPM, "reference": image}]
    assert standalone.policy_problem(_snapshot(images=images, workers={"w": ["t"]})) is not None


@pytest.mark.parametrize(
    "settings_",
    [
        {"ak_paths": ["unendorsed"]},
        {"ak_paths": []},
        {"require_event_log": 1},
        {"reject_all_reset": None},
        {"unknown": True},
    ],
)
def test_malformed_tpm_settings_are_refused(settings_: dict[str, Any]) -> None:
    assert standalone.policy_problem(_snapshot(schemes={TPM: settings_})) is not None


def test_enrolment_entries_are_read_and_checked() -> None:
    ak = TRUSTEE["ak"]
    record = {
        "v": 1, "kind": "tpm_enrolment", "action": "enrolled", "name": "rack-1",
        "ak_sha256": hashlib.sha256(ak).hexdigest(), "ak_public": ak.hex(),
        "at": "2026-02-01T00:00:00.000Z", "ek_certificate_sha256": None, "ek_chain": "not_given",
    }  # fmt: skip
    enrolment_, problem = standalone.enrolment_problem(record)
    assert problem is None
    assert enrolment_ == {"action": "enrolled", "ak_sha256": record["ak_sha256"], "name": "rack-1",
                          "at": datetime(2026, 2, 1, tzinfo=UTC)}  # fmt: skip
    revoked = {"v": 1, "kind": "tpm_enrolment", "action": "revoked", "name": "rack-1",
               "ak_sha256": record["ak_sha256"], "at": "2026-02-02T00:00:00.000Z"}  # fmt: skip
    assert standalone.enrolment_problem(revoked)[0] is not None
    for change in (
        {"ak_public": GCP["ak"].hex()}, {"ak_public": "zz"}, {"at": "2026-02-01T00:00:00Z"},
        {"action": "renewed"}, {"kind": "policy"}, {"v": 2}, {"ak_sha256": "AB" * 32},
        {"name": ""},
    ):  # fmt: skip
        enrolment_, problem = standalone.enrolment_problem({**record, **change})
        assert enrolment_ is None
        assert problem


def _enrolment_entry(action: str = "enrolled") -> bytes:
    ak = TRUSTEE["ak"]
    record: dict[str, Any] = {
        "v": 1, "kind": "tpm_enrolment", "action": action, "name": "rack-1",
        "ak_sha256": hashlib.sha256(ak).hexdigest(), "at": "2026-02-01T00:00:00.000Z",
    }  # fmt: skip
    if action == "enrolled":
        record |= {"ak_public": ak.hex(), "ek_certificate_sha256": None, "ek_chain": "not_given"}
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _checker(entries: list[bytes], named: list[int]) -> standalone.Checker:
    """A checker past its header: a tree of ``entries``, the manifest naming ``named``."""
    raw = b"\x01" + ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    key_id = hashlib.sha256(b"test\n" + raw).digest()[:4].hex()
    checker = standalone.Checker(
        standalone.Key(f"test+{key_id}+{base64.b64encode(raw).decode()}"), frozenset()
    )
    leaves = [standalone.leaf(e) for e in entries]
    assert len(leaves) == 2  # a two-leaf tree: each leaf's proof is the other leaf
    checker.manifest = {"enrolments": named}
    checker.note, checker.size, checker.root = "note\n", 2, standalone.node(*leaves)
    return checker


def _proof(index: int, sibling: bytes) -> bytes:
    text = f"c2sp.org/tlog-proof@v1\nindex {index}\n{base64.b64encode(sibling).decode()}\n\nnote\n"
    return text.encode()


def test_a_bundle_s_enrolment_entries_are_proven_and_read() -> None:
    enrolled_, revoked = _enrolment_entry(), _enrolment_entry("revoked")
    checker = _checker([enrolled_, revoked], [0, 1])
    checker.member("enrolments/000000000000.json", enrolled_)
    checker.member("enrolments/000000000000.tlog-proof", _proof(0, standalone.leaf(revoked)))
    checker.member("enrolments/000000000001.tlog-proof", _proof(1, standalone.leaf(enrolled_)))
    checker.member("enrolments/000000000001.json", revoked)
    assert checker.failures == []
    assert [(i, e["action"]) for i, e in sorted(checker.enrolments.items())] == [
        (0, "enrolled"), (1, "revoked"),
    ]  # fmt: skip
    # a proof for another leaf, an entry the manifest does not name, an entry that is not one
    checker = _checker([enrolled_, revoked], [0])
    checker.member("enrolments/000000000000.json", enrolled_)
    checker.member("enrolments/000000000000.tlog-proof", _proof(0, standalone.leaf(enrolled_)))
    checker.member("enrolments/000000000001.json", revoked)
    checker.member("enrolments/000000000001.tlog-proof", _proof(1, standalone.leaf(enrolled_)))
    assert [item for item, _ in checker.failures] == [
        "enrolments/000000000000.json", "enrolments/000000000001.json",
    ]  # fmt: skip
    assert "inclusion proof" in checker.failures[0][1]
    assert "not named" in checker.failures[1][1]
    policy_entry = json.dumps({"kind": "policy"}, separators=(",", ":")).encode()
    checker = _checker([policy_entry, revoked], [0])
    checker.member("enrolments/000000000000.json", policy_entry)
    checker.member("enrolments/000000000000.tlog-proof", _proof(0, standalone.leaf(revoked)))
    assert checker.failures == [("enrolments/000000000000.json", "not a TPM enrolment entry")]
    assert checker.enrolments == {}
