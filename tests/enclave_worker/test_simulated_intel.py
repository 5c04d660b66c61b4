"""The simulated Intel PKI against Intel's real one (the chains inside the quotes and the
TCB Signing certificate of the collateral in tests/fixtures/tdx): names, extensions in
order, criticality, lifetimes and the SGX extension's structure; the CRLs; persistence;
and the collateral signed over its exact text, describing the platform that quoted."""

from __future__ import annotations

import json
import os
import re
import stat
import warnings
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclave_worker import SimulatedIntelPki, SimulatedIntelWarning, TcbStanding
from enclave_worker.binding import ResultDigest
from enclave_worker.intel_quote import parse_quote
from enclave_worker.simulated_intel import FILES, ROOT_FILE
from tests.enclave_worker.intel_support import (
    SGX_OID,
    common_name,
    endorsement,
    fixture,
    intel_pki,
    pcs_member,
    pem_chain,
    sgx_enclave,
    sgx_extension_tree,
    tdx_platform,
    verify_raw,
)
from tests.support import SIM_AT

NONCE, RESULT = bytes(32), ResultDigest.of(b"r")


def real_chain(name: str) -> list[x509.Certificate]:
    return pem_chain(parse_quote(fixture(name)).pck_chain_pem)


def real_tcb_signing() -> x509.Certificate:
    collateral = json.loads(fixture("phala_dcapqvl_tdx_quote_collateral.json"))
    return pem_chain(collateral["tcb_info_issuer_chain"].encode())[0]


def simulated_chain(platform: object) -> list[x509.Certificate]:
    return pem_chain(platform.quoting_enclave.pck_chain_pem)  # type: ignore[attr-defined]


def profile(certificate: x509.Certificate) -> list[tuple[str, bool]]:
    return [(e.oid.dotted_string, e.critical) for e in certificate.extensions]


def name_shape(name: x509.Name) -> list[tuple[str, str]]:
    """Attribute types in order and the values, the CN without " (simulated)"."""
    return [(a.oid.dotted_string, str(a.value).removesuffix(" (simulated)")) for a in name]


@pytest.mark.parametrize(
    ("real", "simulated"),
    [("phala_dcapqvl_tdx_quote.bin", "tdx"), ("phala_dcapqvl_sgx_quote.bin", "sgx")],
)
def test_the_pck_chain_has_intels_profile(real: str, simulated: str) -> None:
    platform = tdx_platform() if simulated == "tdx" else sgx_enclave()
    for ours, intels in zip(simulated_chain(platform), real_chain(real), strict=True):
        assert name_shape(ours.subject) == name_shape(intels.subject)
        assert name_shape(ours.issuer) == name_shape(intels.issuer)
        assert profile(ours) == profile(intels)
        assert ours.signature_algorithm_oid == intels.signature_algorithm_oid
        for extension in (x509.KeyUsage, x509.BasicConstraints):
            assert (
                ours.extensions.get_extension_for_class(extension).value
                == intels.extensions.get_extension_for_class(extension).value
            )
        key = ours.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"
    leaf, ca, _root = simulated_chain(platform)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=7 * 365 + 2)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


@pytest.mark.parametrize(
    ("real", "simulated"),
    [("phala_dcapqvl_tdx_quote.bin", "tdx"), ("phala_dcapqvl_sgx_quote.bin", "sgx")],
)
def test_the_sgx_extension_has_intels_structure(real: str, simulated: str) -> None:
    platform = tdx_platform() if simulated == "tdx" else sgx_enclave()
    ours = sgx_extension_tree(simulated_chain(platform)[0])
    intels = sgx_extension_tree(real_chain(real)[0])
    assert list(ours) == list(intels)  # the same OIDs in the same order
    assert [(tag, len(v)) for tag, v in ours.values()] == [
        (tag, len(v)) if tag != 0x02 else (tag, len(ours[oid][1]))
        for oid, (tag, v) in intels.items()
    ]  # the same types; octet strings of the same sizes
    tcb = platform.tcb
    assert ours[f"{SGX_OID}.4"] == (0x04, tcb.fmspc)
    assert ours[f"{SGX_OID}.3"] == (0x04, b"\0\0")
    assert ours[f"{SGX_OID}.2.17"] == (0x02, bytes([tcb.pce_svn]))
    assert ours[f"{SGX_OID}.2.18"] == (0x04, bytes(tcb.sgx_components))
    components = [ours[f"{SGX_OID}.2.{n}"][1] for n in range(1, 17)]
    assert [int.from_bytes(c, "big") for c in components] == list(tcb.sgx_components)
    assert ours[f"{SGX_OID}.5"][1] == (b"\x01" if simulated == "tdx" else b"\x00")


def test_the_tcb_signing_certificate_has_intels_profile() -> None:
    ours = x509.load_der_x509_certificate(intel_pki().tcb_signing.der)
    intels = real_tcb_signing()
    assert name_shape(ours.subject) == name_shape(intels.subject)
    assert profile(ours) == profile(intels)
    assert common_name(ours) == "Intel SGX TCB Signing"
    ours.verify_directly_issued_by(x509.load_der_x509_certificate(intel_pki().root.der))


def test_the_root_is_self_signed_and_says_simulated() -> None:
    root = x509.load_der_x509_certificate(intel_pki().root.der)
    assert common_name(root) == "Intel SGX Root CA (simulated)"
    root.verify_directly_issued_by(root)
    assert root.not_valid_after_utc.isoformat() == "2049-12-31T23:59:59+00:00"
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    assert constraints.path_length == 1


def test_the_crls_are_signed_by_their_issuers_and_revoke_what_is_asked() -> None:
    pki = intel_pki()
    platform = tdx_platform()
    leaf, ca, root = simulated_chain(platform)
    crl = x509.load_der_x509_crl(pki.pck_crl("platform", at=SIM_AT, revoked=[leaf.serial_number]))
    assert crl.issuer == leaf.issuer == ca.subject
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    revoked = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert revoked is not None
    reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=30)  # type: ignore[operator]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    empty = x509.load_der_x509_crl(pki.pck_crl("processor", at=SIM_AT))
    assert common_name_of(empty.issuer) == "Intel SGX PCK Processor CA"
    assert len(empty) == 0
    root_crl = x509.load_der_x509_crl(pki.root_crl(at=SIM_AT, revoked=[ca.serial_number]))
    assert root_crl.issuer == root.subject
    assert root_crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert root_crl.get_revoked_certificate_by_serial_number(ca.serial_number) is not None


def common_name_of(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def members(pki: SimulatedIntelPki) -> dict[str, tuple[bytes, int]]:
    """Each member's certificate and private scalar (keys compare by identity)."""
    return {
        member: (ca.der, ca.private_key.private_numbers().private_value)
        for member in FILES
        for ca in [getattr(pki, member)]
    }


def test_the_pki_persists_and_comes_back(tmp_path) -> None:
    directory = tmp_path / "simulated-intel"
    with pytest.warns(SimulatedIntelWarning, match="creating a simulated Intel root"):
        created = SimulatedIntelPki.load_or_create(directory, at=SIM_AT)
    for certificate_file, key_file in FILES.values():
        assert stat.S_IMODE(os.stat(directory / key_file).st_mode) == 0o600
        assert (directory / certificate_file).read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading an existing root does not warn
        loaded = SimulatedIntelPki.load_or_create(directory, at=SIM_AT + timedelta(days=9))
    assert members(loaded) == members(created)
    assert (directory / ROOT_FILE).read_bytes() == created.root_pem()


def test_a_lost_member_is_made_again_under_the_same_root(tmp_path) -> None:
    directory = tmp_path / "pki"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        created = SimulatedIntelPki.load_or_create(directory, at=SIM_AT)
        (directory / FILES["tcb_signing"][1]).unlink()
        again = SimulatedIntelPki.load_or_create(directory, at=SIM_AT)
    assert members(again)["root"] == members(created)["root"]
    assert members(again)["tcb_signing"] != members(created)["tcb_signing"]
    signing = x509.load_der_x509_certificate(again.tcb_signing.der)
    signing.verify_directly_issued_by(x509.load_der_x509_certificate(created.root.der))


def test_something_else_in_the_directory_is_refused(tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        SimulatedIntelPki.load_or_create(tmp_path, at=SIM_AT)
        other = SimulatedIntelPki.generate(at=SIM_AT)
    tcb_signing = x509.load_der_x509_certificate(other.tcb_signing.der)
    (tmp_path / ROOT_FILE).write_bytes(tcb_signing.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValueError, match="not a simulated Intel root"):
        SimulatedIntelPki.load_or_create(tmp_path, at=SIM_AT)


# --- collateral ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tdx", "sgx"])
def test_the_collateral_is_signed_over_its_exact_text(kind: str) -> None:
    platform = tdx_platform() if kind == "tdx" else sgx_enclave()
    evidence = platform.attest(nonce=NONCE, result=RESULT)
    assert [e.kind for e in evidence.endorsements] == [
        "tcb-info", "qe-identity", "crl", "crl", "certificate",
    ]  # fmt: skip
    (certificate,) = endorsement(evidence, "certificate")
    signer = x509.load_der_x509_certificate(certificate)
    assert common_name(signer) == "Intel SGX TCB Signing"
    signer.verify_directly_issued_by(x509.load_der_x509_certificate(intel_pki().root.der))
    key = signer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    for kind_name, member in (("tcb-info", "tcbInfo"), ("qe-identity", "enclaveIdentity")):
        (body,) = endorsement(evidence, kind_name)
        text, signature = pcs_member(body, member)
        verify_raw(key, signature, text)
        assert re.fullmatch(rb'"signature":"[0-9a-f]{128}"}', body[len(text) + len(member) + 5 :])
    tcb_text, _ = pcs_member(endorsement(evidence, "tcb-info")[0], "tcbInfo")
    with pytest.raises(InvalidSignature):  # re-serialised text is other bytes
        verify_raw(key, pcs_member(endorsement(evidence, "tcb-info")[0], "tcbInfo")[1],
                   json.dumps(json.loads(tcb_text)).encode())  # fmt: skip


@pytest.mark.parametrize("kind", ["tdx", "sgx"])
def test_the_collateral_describes_the_platform_that_quoted(kind: str) -> None:
    platform = tdx_platform() if kind == "tdx" else sgx_enclave()
    evidence = platform.attest(nonce=NONCE, result=RESULT)
    quote = parse_quote(evidence.data)
    leaf = pem_chain(quote.pck_chain_pem)[0]
    tree = sgx_extension_tree(leaf)
    tcb_info = json.loads(pcs_member(endorsement(evidence, "tcb-info")[0], "tcbInfo")[0])
    assert tcb_info["id"] == ("TDX" if kind == "tdx" else "SGX")
    assert tcb_info["version"] == 3
    assert bytes.fromhex(tcb_info["fmspc"]) == tree[f"{SGX_OID}.4"][1]
    assert tcb_info["issueDate"] == "2026-06-01T12:00:00Z"
    assert tcb_info["nextUpdate"] == "2026-07-01T12:00:00Z"
    first = tcb_info["tcbLevels"][0]
    assert first["tcbStatus"] == "UpToDate"
    assert [c["svn"] for c in first["tcb"]["sgxtcbcomponents"]] == list(platform.tcb.sgx_components)
    assert first["tcb"]["pcesvn"] == platform.tcb.pce_svn
    if kind == "tdx":
        assert bytes(c["svn"] for c in first["tcb"]["tdxtcbcomponents"]) == (
            quote.body.tee_tcb_svn  # type: ignore[union-attr]
        )
        assert tcb_info["tdxModuleIdentities"][0]["id"] == "TDX_01"
    else:
        assert "tdxModule" not in tcb_info
    qe_identity = json.loads(
        pcs_member(endorsement(evidence, "qe-identity")[0], "enclaveIdentity")[0]
    )
    qe_report = quote.qe_report
    assert qe_identity["id"] == ("TD_QE" if kind == "tdx" else "QE")
    assert bytes.fromhex(qe_identity["mrsigner"]) == qe_report[128:160]
    assert qe_identity["isvprodid"] == int.from_bytes(qe_report[256:258], "little")
    assert qe_identity["tcbLevels"][0]["tcb"]["isvsvn"] == int.from_bytes(
        qe_report[258:260], "little"
    )
    mask = bytes.fromhex(qe_identity["attributesMask"])
    masked = bytes(a & m for a, m in zip(qe_report[48:64], mask, strict=True))
    assert masked == bytes.fromhex(qe_identity["attributes"])
    pck_crl, root_crl = (x509.load_der_x509_crl(c) for c in endorsement(evidence, "crl"))
    assert pck_crl.issuer == leaf.issuer
    assert common_name_of(root_crl.issuer) == "Intel SGX Root CA (simulated)"


def test_the_standing_shapes_the_levels() -> None:
    platform = tdx_platform(standing=TcbStanding("SWHardeningNeeded", ("INTEL-SA-00615",)))
    levels = json.loads(platform.tcb_info())["tcbLevels"]
    assert [level["tcbStatus"] for level in levels] == [
        "UpToDate",
        "SWHardeningNeeded",
        "OutOfDate",
    ]
    assert levels[1]["advisoryIDs"] == ["INTEL-SA-00615"]
    assert levels[1]["tcb"]["pcesvn"] == platform.tcb.pce_svn
    assert levels[0]["tcb"]["pcesvn"] > platform.tcb.pce_svn
    unmatched = json.loads(platform.tcb_info(standing=TcbStanding(matching=False)))["tcbLevels"]
    assert all(level["tcb"]["pcesvn"] > platform.tcb.pce_svn for level in unmatched)
    with pytest.raises(ValueError, match="unknown TCB status"):
        TcbStanding("Fine")


def test_collateral_variants_for_the_verifiers_refusals() -> None:
    platform = sgx_enclave()
    serial = simulated_chain(platform)[0].serial_number
    collateral = platform.collateral(
        at=SIM_AT + timedelta(days=40), fmspc=bytes(6), revoked_pcks=[serial]
    )
    tcb_info = json.loads(pcs_member(collateral[0].data, "tcbInfo")[0])
    assert tcb_info["fmspc"] == "000000000000"
    assert tcb_info["issueDate"] == "2026-07-11T12:00:00Z"
    pck_crl = x509.load_der_x509_crl(collateral[2].data)
    assert pck_crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert (
        platform.variant(with_collateral=False).attest(nonce=NONCE, result=RESULT).endorsements
        == ()
    )


def test_collateral_is_deterministic() -> None:
    assert tdx_platform().collateral() == tdx_platform().collateral()
