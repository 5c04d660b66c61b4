"""Proof bundles of Intel TDX and SGX verdicts (issue #12): the quotes, the collateral that
judged them and the roots travel in the bundle; both verifiers (the project's and the
standalone one shipped in it) judge every quote again at its recorded instant, with exactly
the collateral its entry names, and agree; tampering with a collateral document, dropping
one, or a forged affirming verdict is caught and named by both."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text

from attest_ledger.bundles.export import UnknownTrustAnchor, known_trust_anchors
from attest_ledger.collateral import keep
from enclave_worker import TcbStanding, simulated_sgx_measurement
from enclave_worker.simulated_dcap import DEFAULT_SGX_TCB
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from tests.enclave_worker.intel_support import intel_pki, sgx_enclave, tdx_platform
from tests.verifier.tdx.support import GTG_V5, OUTDATED, PHALA_SGX, PHALA_TDX
from tests.web.conftest import build_service
from tests.web.test_bundle import members, repack
from tests.web.test_snp_bundle import both, export
from tests.web.test_tdx_submissions import attest, submit
from verifier import INTEL_SGX_ROOT_CA_SHA256, TrustAnchor, parse_quote
from verifier.tdx import TdReport

pytestmark = pytest.mark.db

TD_IMAGE, SGX_IMAGE = "inference-td", "inference-enclave"
COLLATERAL = ("tcb-info", "qe-identity", "crl", "certificate")


def _status(reply) -> str:
    assert reply.status_code == 201, reply.json
    return str(reply.json["verdict"]["status"])


def _codes(reply) -> set[str]:
    return {r["code"] for r in reply.json["verdict"]["reasons"]}


@pytest.fixture
def mixed(db_url, tmp_path, sim_pki, sim_nsm):
    """Nitro and simulated TDX and SGX verdicts of every kind in one ledger, checkpointed."""
    root = tmp_path / "simulated-intel-root.pem"
    root.write_bytes(intel_pki().root_pem())
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm, intel_trust_root_path=root)
    td, enclave = tdx_platform(image=TD_IMAGE), sgx_enclave(image=SGX_IMAGE)
    with session_scope(service.runtime.sessions) as session:
        policies = service.runtime.policies
        policies.add_reference(session, TD_IMAGE, "intel-tdx", {"mr_td": td.measurement.hex()})
        policies.add_reference(
            session, SGX_IMAGE, "intel-sgx",
            {"mr_enclave": simulated_sgx_measurement(SGX_IMAGE).hex(), "min_isv_svn": 0},
        )  # fmt: skip
        policies.set_scheme_options(session, "intel-tdx", allowed_advisories=["INTEL-SA-00615"])
        policies.allow(session, "worker-1", TD_IMAGE)
        policies.allow(session, "worker-1", SGX_IMAGE)
    statuses, codes = [], []
    for n in range(2):
        result = b"nitro %d" % n
        reply = service.submit(
            service.document(nonce=service.challenge(), result=result), result=result
        )
        statuses.append(reply.json["verdict"]["status"])
    for platform in (td, td.variant(version=5), enclave):
        reply = submit(service, attest(service, platform))
        statuses.append(_status(reply))
    elsewhere = sgx_enclave(
        image=SGX_IMAGE, tcb=replace(DEFAULT_SGX_TCB, fmspc=bytes.fromhex("00A067110001"))
    )
    tampered = attest(service, td)
    flipped = bytearray(tampered.data)
    flipped[48 + 136] ^= 1  # a bit of MRTD, inside the signed body
    shortfalls = [
        submit(service, attest(service, td.variant(image="something-else"))),
        submit(service, attest(service, enclave.variant(debug=True))),
        submit(service, type(tampered)(tampered.kind, bytes(flipped), tampered.endorsements)),
        submit(service, attest(service, td), result=b"not what was attested"),
        submit(service, attest(service, td, nonce=bytes(32))),
        submit(service, attest(service, td.variant(standing=TcbStanding("OutOfDate")))),
        submit(service, attest(service, td.variant(standing=TcbStanding(matching=False)))),
        # a platform of another FMSPC, whose collateral nobody has sent or imported yet
        submit(service, attest(service, elsewhere), drop=COLLATERAL),
    ]
    for reply in shortfalls:
        statuses.append(_status(reply))
        codes.append(_codes(reply))
    assert codes == [
        {"mrtd_mismatch"}, {"debug_mode"}, {"signature_invalid"}, {"result_binding_mismatch"},
        {"nonce_unknown"}, {"tcb_status"}, {"no_matching_tcb_level"}, {"endorsement_missing"},
    ], codes  # fmt: skip
    with session_scope(service.runtime.sessions) as session:  # an operator imports it
        bare = attest(service, elsewhere)
        keep(session, [(e.kind, e.data) for e in bare.endorsements], source="import")
    completed = submit(service, attest(service, elsewhere), drop=COLLATERAL)
    statuses.append(_status(completed))
    advised = submit(  # an advisory on the policy's allow-list: affirming... at best warning
        service,
        attest(service, td.variant(standing=TcbStanding("SWHardeningNeeded", ("INTEL-SA-00615",)))),
    )
    statuses.append(_status(advised))
    assert statuses == ["affirming"] * 5 + ["contraindicated"] * 8 + ["affirming", "warning"]
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)
    service.intel_root = TrustAnchor.from_pem(intel_pki().root_pem(), name="simulated Intel")
    yield service
    service.runtime.close()


def test_a_mixed_bundle_is_judged_again_by_both_verifiers(mixed) -> None:
    archive = export(mixed)
    report, standalone = both(mixed, archive)
    assert report.ok, report.failures
    assert not standalone.failures, standalone.failures
    assert not standalone.notes, standalone.notes  # same codes, not only the same status
    assert report.rejudged == standalone.rejudged == 15
    assert report.verdicts["affirming"] == 6
    assert report.verdicts["warning"] == 1
    assert report.verdicts["contraindicated"] == 8
    manifest = json.loads(dict(members(archive))["manifest.json"])
    assert mixed.intel_root.fingerprint in manifest["trust_anchors"]
    # two collateral sets at most (the simulated platform's TCB info differs per standing),
    # each document stored once whatever the number of entries naming it
    shipped = [n for n, _ in members(archive) if n.startswith("endorsements/")]
    assert len(shipped) == len(set(shipped)) == len(manifest["endorsements"])
    evidence = [n for n, _ in members(archive) if "/evidence." in n]
    assert sum(n.endswith(".bin") for n in evidence) == 13


def test_the_simulated_intel_root_must_be_given_to_export(mixed) -> None:
    with pytest.raises(UnknownTrustAnchor) as raised:
        export(mixed, anchors=known_trust_anchors(mixed.runtime.trust_anchor))
    assert mixed.intel_root.fingerprint in raised.value.fingerprints


def _tcb_info_member(files) -> str:
    return next(
        name for name, data in files
        if name.startswith("endorsements/") and data.startswith(b'{"tcbInfo":')
    )  # fmt: skip


def test_tampering_with_a_collateral_document_is_named_by_both(mixed) -> None:
    files = members(export(mixed))
    tcb_info = _tcb_info_member(files)
    changed = [
        (n, d.replace(b'"UpToDate"', b'"OutOfDate"', 1) if n == tcb_info else d) for n, d in files
    ]
    report, standalone = both(mixed, repack(changed))
    assert tcb_info in {item for item, _ in report.failures}
    assert tcb_info in {item for item, _ in standalone.failures}
    dropped = [(n, d) for n, d in files if n != tcb_info]
    report, standalone = both(mixed, repack(dropped))
    failed = {item for item, _ in report.failures}
    assert "endorsements/" in failed
    assert sum(item.startswith("entries/") for item in failed) >= 1  # each entry using it
    assert failed == {item for item, _ in standalone.failures}


def test_a_collateral_document_signed_again_under_another_name_changes_the_verdict(
    mixed,
) -> None:
    """A TCB info whose bytes are changed and renamed by its new digest (as a forger with the
    ledger's files but not Intel's key could): the manifest does not name it, and the
    entries that name the original cannot find theirs; both verifiers say so."""
    files = members(export(mixed))
    tcb_info = _tcb_info_member(files)
    data = dict(files)[tcb_info].replace(b'"UpToDate"', b'"OutOfDate"', 1)
    renamed = f"endorsements/{hashlib.sha256(data).hexdigest()}.der"
    report, standalone = both(
        mixed, repack([(renamed, data) if n == tcb_info else (n, d) for n, d in files])
    )
    failed = {item for item, _ in report.failures}
    assert renamed in failed
    assert "endorsements/" in failed
    assert failed == {item for item, _ in standalone.failures}


def test_a_verdict_a_quote_does_not_support_is_caught(mixed) -> None:
    """An entry claiming 'affirming' for the tampered quote (the ledger's signature and
    proofs are sound; the evidence does not support it) fails in both verifiers."""
    from ledger.append import append, prepare_all
    from ledger.entry import NewEntry

    with mixed.runtime.sessions() as session:
        rows = [
            (idx, evidence)
            for idx, data, evidence in session.execute(
                text("SELECT idx, e.data, v.data FROM ledger_entries e "
                     "JOIN ledger_evidence v USING (idx)")
            )
            if json.loads(bytes(data)).get("error") == "signature_invalid"
        ]  # fmt: skip
        assert len(rows) == 1
        index, evidence = rows[0]
        kept = {
            bytes(row.sha256).hex(): bytes(row.data)
            for row in session.execute(text("SELECT sha256, data FROM ledger_endorsements"))
        }
        record = json.loads(
            bytes(
                session.execute(
                    text("SELECT data FROM ledger_entries WHERE idx = :i"), {"i": index}
                ).scalar_one()
            )
        )
    endorsements = [(e["kind"], kept[e["sha256"]]) for e in record.pop("endorsements")]
    record.pop("evidence_sha256")
    record.pop("ear")  # as before EARs: tests/web/test_ear.py forges those
    forged = {**record, "verdict": "affirming", "error": None, "reasons": [],
              "image": TD_IMAGE, "worker": "worker-3"}  # fmt: skip
    with session_scope(mixed.runtime.sessions) as session:
        entry = NewEntry.from_record(forged, evidence=bytes(evidence), endorsements=endorsements)
        appended = append(session, prepare_all([entry]))
        publish_checkpoint(session, mixed.runtime.signer)
    report, standalone = both(mixed, export(mixed))
    item = f"entries/{appended[0].index:012d}"
    assert [i for i, _ in report.failures] == [item], report.failures
    assert [i for i, _ in standalone.failures] == [item], standalone.failures
    assert "signature_invalid" in dict(report.failures)[item]
    assert "signature_invalid" in dict(standalone.failures)[item]


def test_trust_roots_given_to_the_verifiers(mixed) -> None:
    from attest_ledger.bundles import verify_bundle as standalone
    from attest_ledger.bundles.verify import verify_bundle

    archive = export(mixed)
    nitro = mixed.runtime.trust_anchor
    key = standalone.Key(str(mixed.runtime.log_key))
    assert not standalone.check(
        io.BytesIO(archive), key, [nitro.der, mixed.intel_root.der]
    ).failures
    report = verify_bundle(io.BytesIO(archive), mixed.runtime.log_key, trust_roots=[nitro])
    other = standalone.check(io.BytesIO(archive), key, [nitro.der])
    failed = {item for item, _ in report.failures}
    assert {item for item, _ in other.failures} == failed
    assert f"trust/{mixed.intel_root.fingerprint}.pem" in failed
    assert any(item.startswith("entries/") for item in failed)  # its Intel entries


@pytest.fixture
def real(db_url, tmp_path, sim_pki, sim_nsm):
    """Intel's real quotes with their real collateral, judged against Intel's pinned root at
    an instant inside each collateral's window (the service's clock set to it); their nonces
    are no challenge of ours and their report_data binds no result of ours, so they are
    recorded as rejections (the outdated one for its TCB), which both verifiers must reach
    again with the collateral shipped in the bundle."""
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm)
    samples = (PHALA_TDX, PHALA_SGX, GTG_V5, OUTDATED)
    with session_scope(service.runtime.sessions) as session:
        for n, sample in enumerate(samples):
            body = parse_quote(sample.bytes()).body
            reference = (
                {"mr_td": body.mr_td.hex()}
                if isinstance(body, TdReport)
                else {"mr_enclave": body.mr_enclave.hex()}
            )
            service.runtime.policies.add_reference(
                session, f"real-{n}", str(sample.kind), reference
            )
            service.runtime.policies.allow(session, "worker-1", f"real-{n}")
        service.runtime.policies.set_scheme_options(
            session, "intel-sgx", allowed_advisories=["INTEL-SA-00289", "INTEL-SA-00615"],
            tcb_status={"ConfigurationAndSWHardeningNeeded": "warning"},
        )  # fmt: skip
    service.replies = []
    for sample in samples:
        service.runtime.clock = lambda at=sample.at: at + timedelta(minutes=1)
        evidence = sample.evidence()
        service.replies.append(submit(service, evidence))
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)
    yield service
    service.runtime.close()


def test_real_quotes_are_judged_again_offline_with_their_collateral(real) -> None:
    found = [_codes(reply) for reply in real.replies]
    assert found[0] == {"nonce_unknown", "result_binding_mismatch"}, found
    assert found[1] == {"nonce_unknown", "result_binding_missing"}, found  # "Hello, world!"\0...
    assert found[2] == {"nonce_unknown", "result_binding_mismatch"}, found
    assert found[3] == {"nonce_unknown", "no_matching_tcb_level"}, found
    archive = export(real)
    report, standalone = both(real, archive)
    assert report.ok, report.failures
    assert not standalone.failures, standalone.failures
    assert report.rejudged == standalone.rejudged == 4
    manifest = json.loads(dict(members(archive))["manifest.json"])
    assert INTEL_SGX_ROOT_CA_SHA256 in manifest["trust_anchors"]
    # the standalone verifier holds no Intel collateral of its own: without a CRL the quotes
    # that used it cannot be judged, and both say so
    files = members(archive)
    crl = next(n for n, d in files if n.startswith("endorsements/") and d[:1] == b"\x30")
    report, standalone = both(real, repack([(n, d) for n, d in files if n != crl]))
    assert "endorsements/" in {item for item, _ in report.failures}
    assert any(item.startswith("entries/") for item, _ in standalone.failures)


def test_every_verdict_of_the_tdx_service_is_a_signed_ear(mixed) -> None:
    from tests.web.ear_support import every_verdict_is_a_signed_ear

    """Every verdict, of every kind and outcome, rejections included, is an EAR signed by
    the key the API publishes, saying what its entry says."""
    assert every_verdict_is_a_signed_ear(mixed) == {
        "aws-nitro-enclave affirming": 2,
        "intel-tdx affirming": 2,
        "intel-sgx affirming": 2,
        "intel-tdx contraindicated": 6,
        "intel-sgx contraindicated": 2,
        "intel-tdx warning": 1,
    }
