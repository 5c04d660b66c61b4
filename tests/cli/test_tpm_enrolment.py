"""``attest-ledger tpm enroll|revoke|list`` on a real database: every enrolment and revocation
is a ledger entry, an EK certificate is checked against the TPM vendor's CA given with it,
and the verifier is handed exactly what the ledger knows."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from attest_ledger.database import engine_for
from attest_ledger.tpm_enrolments import enrolment_book, enrolment_of
from ledger.db import make_session_factory
from ledger.reads import get_endorsement, get_entry
from tests.cli.support import run

pytestmark = pytest.mark.db

NOW = datetime.now(UTC)


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificate(subject, issuer, key, signer, *, ca: bool, days: int = 365):
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def vendor(tmp_path_factory):
    """A TPM vendor's root and intermediate CA, and an RSA EK certificate under them."""
    folder = tmp_path_factory.mktemp("vendor")
    root_key = ec.generate_private_key(ec.SECP384R1())
    inter_key = ec.generate_private_key(ec.SECP384R1())
    ek_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = _certificate("Vendor Root", "Vendor Root", root_key, root_key, ca=True)
    inter = _certificate("Vendor EK CA", "Vendor Root", inter_key, root_key, ca=True)
    ek = _certificate("EK", "Vendor EK CA", ek_key, inter_key, ca=False)
    other_key = ec.generate_private_key(ec.SECP384R1())
    other = _certificate("Vendor EK CA", "Vendor Root", other_key, other_key, ca=True)
    paths = {}
    for label, cert, encoding in (
        ("root", root, Encoding.PEM),
        ("inter", inter, Encoding.PEM),
        ("ek", ek, Encoding.DER),
        ("other", other, Encoding.PEM),
    ):
        path = folder / f"{label}.crt"
        path.write_bytes(cert.public_bytes(encoding))
        paths[label] = str(path)
    paths["ek_sha256"] = hashlib.sha256(ek.public_bytes(Encoding.DER)).hexdigest()
    return paths


def _ak(tmp_path, label="ak"):
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path = tmp_path / f"{label}.pem"
    path.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return str(path), hashlib.sha256(der).hexdigest()


def test_enrolment_and_revocation_are_entries(capsys, settings, tmp_path, vendor) -> None:
    ak, ak_sha256 = _ak(tmp_path)
    code, out, err = run(
        capsys, settings, "tpm", "enroll", "rack1-node3", "--ak", ak,
        "--ek-cert", vendor["ek"], "--ek-ca", vendor["inter"], "--ek-ca", vendor["root"],
    )  # fmt: skip
    assert code == 0, err
    enrolled = json.loads(out)
    assert enrolled["ak_sha256"] == ak_sha256
    assert enrolled["ek_chain"] == "verified"

    engine = engine_for(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            record = json.loads(get_entry(session, enrolled["entry"]).data)
            assert record["kind"] == "tpm_enrolment"
            assert record["action"] == "enrolled"
            assert record["name"] == "rack1-node3"
            assert hashlib.sha256(bytes.fromhex(record["ak_public"])).hexdigest() == ak_sha256
            assert record["ek_certificate_sha256"] == vendor["ek_sha256"]
            assert record["endorsements"] == [
                {"kind": "ek-certificate", "sha256": vendor["ek_sha256"]}
            ]
            stored = get_endorsement(session, bytes.fromhex(vendor["ek_sha256"]))
            assert stored is not None
            assert hashlib.sha256(stored).hexdigest() == vendor["ek_sha256"]
            at = datetime.fromisoformat(record["at"])
            found = enrolment_of(session, ak_sha256)
            assert found is not None
            assert found.enrolled_at == at  # the table and the entry give the same instant
            assert found.revoked_at is None
            assert enrolment_book(session, [ak_sha256]).enrolment(ak_sha256) == found
            assert enrolment_book(session, ["00" * 32]).enrolment("00" * 32) is None

        listed = [json.loads(line) for line in run(capsys, settings, "tpm", "list")[1].splitlines()]
        assert [(e["name"], e["revoked_at"]) for e in listed] == [("rack1-node3", None)]

        code, out, _ = run(capsys, settings, "tpm", "revoke", "rack1-node3")
        assert code == 0
        revoked = json.loads(out)
        with make_session_factory(engine)() as session:
            record = json.loads(get_entry(session, revoked["entry"]).data)
            assert (record["action"], record["ak_sha256"]) == ("revoked", ak_sha256)
            found = enrolment_of(session, ak_sha256)
            assert found is not None
            assert found.revoked_at == datetime.fromisoformat(record["at"])
    finally:
        engine.dispose()
    assert run(capsys, settings, "tpm", "revoke", "rack1-node3")[0] == 2  # already revoked
    # a revoked AK is never enrolled again, under any name
    code, _, err = run(capsys, settings, "tpm", "enroll", "again", "--ak", ak)
    assert code == 2
    assert "already enrolled" in err


def test_refusals(capsys, settings, tmp_path, vendor) -> None:
    ak, _ = _ak(tmp_path)
    other_ak, _ = _ak(tmp_path, "other")
    # an EK certificate under another CA of the same name (signature fails)
    code, _, err = run(
        capsys, settings, "tpm", "enroll", "n1", "--ak", ak,
        "--ek-cert", vendor["ek"], "--ek-ca", vendor["other"],
    )  # fmt: skip
    assert code == 2
    assert "no CA certificate given issued" in err
    # the intermediate alone is not a self-signed root
    code, _, err = run(
        capsys, settings, "tpm", "enroll", "n1", "--ak", ak,
        "--ek-cert", vendor["ek"], "--ek-ca", vendor["inter"],
    )  # fmt: skip
    assert code == 2
    # an EK certificate means nothing without its CA; a CA without an EK certificate either
    assert (
        run(capsys, settings, "tpm", "enroll", "n1", "--ak", ak, "--ek-cert", vendor["ek"])[0] == 2
    )
    assert (
        run(capsys, settings, "tpm", "enroll", "n1", "--ak", ak, "--ek-ca", vendor["root"])[0] == 2
    )
    # not a key; a key too weak; a bad name
    code, _, err = run(capsys, settings, "tpm", "enroll", "n1", "--ak", vendor["root"])
    assert code == 2
    assert "not a public key" in err
    weak = tmp_path / "weak.pem"
    weak.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    assert "2048 bits" in run(capsys, settings, "tpm", "enroll", "n1", "--ak", str(weak))[2]
    assert run(capsys, settings, "tpm", "enroll", "bad name", "--ak", ak)[0] == 2
    # nothing of the above was recorded; the first good enrolment is, and its name is taken
    assert run(capsys, settings, "tpm", "list")[1] == ""
    assert run(capsys, settings, "tpm", "enroll", "n1", "--ak", ak)[0] == 0
    code, _, err = run(capsys, settings, "tpm", "enroll", "n1", "--ak", other_ak)
    assert code == 2
    assert "already exists" in err
    assert run(capsys, settings, "tpm", "revoke", "nobody")[0] == 2


def test_a_real_swtpm_ak_and_ek_certificate_enrol_as_written_by_worker_tpm_ak(
    capsys, settings, tmp_path
) -> None:
    """`worker tpm-ak` starts the swtpm under --tpm-state (manufactured: an EK certificate
    from swtpm's local CA), makes its AK and writes what `tpm enroll` takes; the EK
    certificate chains to that CA, and the AK is the one the worker quotes with."""
    out = tmp_path / "enrol"
    code, printed, err = run(
        capsys, settings, "worker", "tpm-ak", "--tpm-state", str(tmp_path / "tpm"),
        "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    written = json.loads(printed)
    assert written["ek_certificate"] == str(out / "ek.der")
    assert len(written["ek_ca"]) >= 1
    code, printed, err = run(
        capsys, settings, "tpm", "enroll", "swtpm-1", "--ak", written["ak"],
        "--ek-cert", written["ek_certificate"],
        *[arg for ca in written["ek_ca"] for arg in ("--ek-ca", ca)],
    )  # fmt: skip
    assert code == 0, err
    enrolled = json.loads(printed)
    assert enrolled["ek_chain"] == "verified"
    assert enrolled["ak_sha256"] == written["ak_sha256"]
    # the same state again: the same AK, found at its handle
    code, printed, _ = run(
        capsys, settings, "worker", "tpm-ak", "--tpm-state", str(tmp_path / "tpm"),
        "--out", str(tmp_path / "again"),
    )  # fmt: skip
    assert code == 0
    assert json.loads(printed)["ak_sha256"] == written["ak_sha256"]
