"""Proof bundles of AMD SEV-SNP verdicts (issue #11): the reports, their endorsements and the
roots travel in the bundle; both verifiers (the project's and the standalone one shipped in
it) judge every report again at its recorded instant and agree; tampering with what an SNP
verdict rests on is caught and named by both."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import warnings
from datetime import timedelta

import pytest
from sqlalchemy import text

from attest_ledger.bundles.export import (
    UnknownTrustAnchor,
    export_bundle,
    known_trust_anchors,
)
from attest_ledger.bundles.verify import verify_bundle
from enclave_worker import SimulatedAmdWarning
from enclave_worker.binding import ResultDigest
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from tests.enclave_worker.snp_support import amd_pki, snp_platform
from tests.verifier.snp.support import GENOA, SNP_AT, VIRTEE, VLEK
from tests.web.conftest import build_service
from tests.web.test_bundle import members, repack
from verifier import AMD_ARK_SHA256, ResultHash, TrustAnchor, parse_report
from verifier.snp import amd_trust_store

pytestmark = pytest.mark.db

IMAGE = "inference-snp"


def _submit(service, kind, data, endorsements, *, who="worker-1", result=b"the answer"):
    body = {
        "evidence": {
            "kind": kind,
            "data": base64.b64encode(data).decode(),
            "endorsements": [
                {"kind": str(k), "data": base64.b64encode(d).decode()} for k, d in endorsements
            ],
        },
        "result_hash": str(ResultHash.of(result)),
        "job": {"id": "snp-bundle"},
    }
    reply = service.http.post("/api/v1/attestations", json=body, headers=service.auth(who))
    assert reply.status_code == 201, reply.json
    return reply.json


def _attest(service, platform, *, nonce=None, result=b"the answer"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        return platform.attest(
            nonce=nonce if nonce is not None else service.challenge(),
            result=ResultDigest.of(result),
        )


def _snp(service, evidence, **kwargs):
    pairs = [(e.kind, e.data) for e in evidence.endorsements]
    return _submit(service, "amd-sev-snp", evidence.data, pairs, **kwargs)


@pytest.fixture
def mixed(db_url, tmp_path, sim_pki, sim_nsm):
    """Nitro and simulated SEV-SNP verdicts of every kind in one ledger, checkpointed."""
    ark = tmp_path / "simulated-ark.pem"
    ark.write_bytes(amd_pki().ark_pem())
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm, snp_trust_root_path=ark)
    platform = snp_platform(image=IMAGE)
    with session_scope(service.runtime.sessions) as session:
        service.runtime.policies.add_reference(
            session, IMAGE, "amd-sev-snp", {"measurement": platform.measurement.hex()}
        )
        service.runtime.policies.set_scheme_options(
            session, "amd-sev-snp", min_tcb={"snp": 1}, allow_smt=True
        )
        service.runtime.policies.allow(session, "worker-1", IMAGE)
    verdicts = []
    for n in range(2):
        result = b"nitro %d" % n
        reply = service.submit(
            service.document(nonce=service.challenge(), result=result), result=result
        )
        verdicts.append(reply.json["verdict"]["status"])
    for n in range(3):
        verdicts.append(_snp(service, _attest(service, platform, result=b"snp %d" % n),
                             result=b"snp %d" % n)["verdict"]["status"])  # fmt: skip
    tampered = _attest(service, platform)
    flipped = bytearray(tampered.data)
    flipped[0x90] ^= 1
    bad = [
        _snp(service, _attest(service, platform.variant(image="something-else"))),
        _snp(service, _attest(service, platform.variant(debug=True))),
        _snp(service, _attest(service, platform), result=b"not what was attested"),
        _snp(service, type(tampered)(tampered.kind, bytes(flipped), tampered.endorsements)),
        _snp(service, _attest(service, platform, nonce=bytes(32))),
        _submit(service, "amd-sev-snp", b"x" * 100, []),
        _snp(service, _attest(service, platform, nonce=service.challenge("worker-2")),
             who="worker-2"),
    ]  # fmt: skip
    verdicts.extend(reply["verdict"]["status"] for reply in bad)
    assert verdicts == ["affirming"] * 5 + ["contraindicated"] * 7, verdicts
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)
    service.ark = TrustAnchor.from_pem(amd_pki().ark_pem(), name="simulated ARK")
    yield service
    service.runtime.close()


def export(service, anchors=None, **kwargs) -> bytes:
    out = io.BytesIO()
    anchors = known_trust_anchors(*service.runtime.trust_anchors) if anchors is None else anchors
    with service.runtime.sessions() as session:
        export_bundle(session, out, signer=service.runtime.signer, trust_anchors=anchors,
                      ear_key=service.runtime.ear_signer.public_jwk(),
                      **kwargs)  # fmt: skip
    return out.getvalue()


def both(service, archive: bytes, **kwargs):
    """The project's report and the standalone checker, which must name the same items."""
    from attest_ledger.bundles import verify_bundle as standalone

    report = verify_bundle(io.BytesIO(archive), service.runtime.log_key, **kwargs)
    other = standalone.check(io.BytesIO(archive), standalone.Key(str(service.runtime.log_key)))
    assert sorted({i for i, _ in other.failures}) == sorted({i for i, _ in report.failures}), (
        "standalone only:",
        sorted({i for i, _ in other.failures} - {i for i, _ in report.failures}),
        "project only:",
        sorted({i for i, _ in report.failures} - {i for i, _ in other.failures}),
    )
    assert other.rejudged == report.rejudged or report.failures
    return report, other


def _record(service, index: int) -> dict:
    with service.runtime.sessions() as session:
        query = text("SELECT data FROM ledger_entries WHERE idx = :i")
        return json.loads(session.execute(query, {"i": index}).scalar_one())


def test_a_mixed_bundle_is_judged_again_by_both_verifiers(mixed) -> None:
    archive = export(mixed)
    report, standalone = both(mixed, archive)
    assert report.ok, report.failures
    assert not standalone.failures
    assert report.rejudged == 12  # every attestation, both schemes, every rejection
    assert report.verdicts["affirming"] == 5
    assert report.verdicts["contraindicated"] == 7
    names = [name for name, _ in members(archive)]
    manifest = json.loads(dict(members(archive))["manifest.json"])
    assert mixed.ark.fingerprint in manifest["trust_anchors"]
    assert mixed.runtime.trust_anchor.fingerprint in manifest["trust_anchors"]
    # the simulated ARK is no pinned AMD root: no packaged ASK/ASVK is shipped for it
    assert not set(manifest["endorsements"]) & {
        hashlib.sha256(i.der).hexdigest() for i in amd_trust_store().intermediates.values()
    }
    shipped = [n for n in names if n.startswith("endorsements/")]
    assert shipped == sorted(shipped)
    assert len(shipped) == len(manifest["endorsements"]) == 3
    assert names.index(shipped[-1]) < min(names.index(n) for n in names if "/" in n
                                          and n.startswith(("policies/", "entries/")))  # fmt: skip
    evidence = [n for n in names if "/evidence." in n]
    assert sum(n.endswith(".bin") for n in evidence) == 10
    assert sum(n.endswith(".cbor") for n in evidence) == 2
    for name, data in members(archive):
        if name.startswith("endorsements/"):
            assert hashlib.sha256(data).hexdigest() == name.split("/")[1].removesuffix(".der")


def test_the_simulated_ark_must_be_given_to_export(mixed) -> None:
    with pytest.raises(UnknownTrustAnchor) as raised:
        export(mixed, anchors=known_trust_anchors(mixed.runtime.trust_anchor))
    assert raised.value.fingerprints == (mixed.ark.fingerprint,)


def test_tampering_with_what_an_snp_verdict_rests_on_is_named_by_both(mixed) -> None:
    files = members(export(mixed))
    vcek = next(
        name for name, data in files if name.startswith("endorsements/") and b"SEV-VCEK" in data
    )
    changed = [(n, d[:-1] + bytes([d[-1] ^ 1]) if n == vcek else d) for n, d in files]
    report, _ = both(mixed, repack(changed))
    assert vcek in {item for item, _ in report.failures}
    dropped = [(n, d) for n, d in files if n != vcek]
    report, _ = both(mixed, repack(dropped))
    failed = {item for item, _ in report.failures}
    assert "endorsements/" in failed
    assert sum(item.startswith("entries/") for item in failed) >= 5  # each entry using it
    extra = hashlib.sha256(b"unnamed").hexdigest()
    report, _ = both(mixed, repack([*files[:-3], (f"endorsements/{extra}.der", b"unnamed"),
                                    *files[-3:]]))  # fmt: skip
    assert f"endorsements/{extra}.der" in {item for item, _ in report.failures}
    renamed = [(n.replace("evidence.bin", "evidence.cbor"), d) for n, d in files]
    report, _ = both(mixed, repack(renamed))
    assert any(item.endswith("evidence.cbor") for item, _ in report.failures)


def test_a_verdict_an_snp_report_does_not_support_is_caught(mixed) -> None:
    """An entry claiming 'affirming' for the tampered report (the ledger's signature and
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
    record = _record(mixed, index)
    endorsements = [(e["kind"], kept[e["sha256"]]) for e in record.pop("endorsements")]
    record.pop("evidence_sha256")
    record.pop("ear")  # as before EARs: tests/web/test_ear.py forges those
    forged = {
        **record,
        "verdict": "affirming",
        "error": None,
        "reasons": [],
        "image": IMAGE,
        "worker": "worker-3",
    }  # another worker: the same evidence of one is one entry
    with session_scope(mixed.runtime.sessions) as session:
        entry = NewEntry.from_record(forged, evidence=bytes(evidence), endorsements=endorsements)
        appended = append(session, prepare_all([entry]))
        publish_checkpoint(session, mixed.runtime.signer)
    report, _ = both(mixed, export(mixed))
    item = f"entries/{appended[0].index:012d}"
    assert [i for i, _ in report.failures] == [item], report.failures
    assert "signature_invalid" in dict(report.failures)[item]


def test_trust_roots_given_to_the_verifier(mixed) -> None:
    archive = export(mixed)
    nitro = mixed.runtime.trust_anchor
    report = verify_bundle(io.BytesIO(archive), mixed.runtime.log_key,
                           trust_roots=[nitro, mixed.ark])  # fmt: skip
    assert report.ok, report.failures
    report = verify_bundle(io.BytesIO(archive), mixed.runtime.log_key, trust_roots=[nitro])
    failed = {item for item, _ in report.failures}
    from attest_ledger.bundles import verify_bundle as standalone

    key = standalone.Key(str(mixed.runtime.log_key))
    assert not standalone.check(io.BytesIO(archive), key, [nitro.der, mixed.ark.der]).failures
    other = standalone.check(io.BytesIO(archive), key, [nitro.der])
    assert {item for item, _ in other.failures} == failed
    assert f"trust/{mixed.ark.fingerprint}.pem" in failed
    assert any(item.startswith("entries/") for item in failed)  # its SNP entries cannot be judged


@pytest.fixture
def real(db_url, tmp_path, sim_pki, sim_nsm):
    """Real AMD reports (Milan VCEK, Milan VLEK, Genoa v5) judged against AMD's pinned roots
    at a time inside their certificates' windows; their nonces are no challenge of ours and
    their report_data binds no result of ours, so they are recorded as rejections, which both
    verifiers must reach again through AMD's packaged ASK and ASVK shipped in the bundle."""
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm)
    service.runtime.clock = lambda: SNP_AT + timedelta(hours=1)
    with session_scope(service.runtime.sessions) as session:
        for n, sample in enumerate((VIRTEE, VLEK, GENOA)):
            measurement = parse_report(sample.bytes()).measurement.hex()
            service.runtime.policies.add_reference(
                session, f"real-{n}", "amd-sev-snp", {"measurement": measurement}
            )
            service.runtime.policies.allow(session, "worker-1", f"real-{n}")
        service.runtime.policies.set_scheme_options(session, "amd-sev-snp", max_vmpl=1)
    service.replies = [
        _submit(service, "amd-sev-snp", s.bytes(), [(s.kind, s.key_der())])
        for s in (VIRTEE, VLEK, GENOA)
    ]
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)
    yield service
    service.runtime.close()


def test_real_amd_reports_are_judged_again_offline_with_the_packaged_intermediates(real) -> None:
    for reply in real.replies:
        codes = {r["code"] for r in reply["verdict"]["reasons"]}
        assert codes in (  # Genoa's report_data[32:64] is zero: no binding at all
            {"nonce_unknown", "result_binding_mismatch"},
            {"nonce_unknown", "result_binding_missing"},
        ), reply["verdict"]
    archive = export(real)
    report, standalone = both(real, archive)
    assert report.ok, report.failures
    assert not standalone.failures, standalone.failures
    assert report.rejudged == 3
    manifest = json.loads(dict(members(archive))["manifest.json"])
    assert set(AMD_ARK_SHA256.values()) <= set(manifest["trust_anchors"])
    packaged = {hashlib.sha256(i.der).hexdigest() for i in amd_trust_store().intermediates.values()}
    assert packaged <= set(manifest["endorsements"])  # six: ASK and ASVK of each line
    # the standalone verifier holds no AMD certificate of its own: without the shipped ASK,
    # the Milan VCEK entries cannot be judged (and it says so, as the project verifier does
    # for an endorsement named by an entry)
    files = members(archive)
    milan_ask = hashlib.sha256(
        amd_trust_store().intermediates[next(k for k in amd_trust_store().intermediates
                                             if k[0].value == "Milan" and k[1].value == "ask")].der
    ).hexdigest()  # fmt: skip
    dropped = [(n, d) for n, d in files if n != f"endorsements/{milan_ask}.der"]
    report = verify_bundle(io.BytesIO(repack(dropped)), real.runtime.log_key)
    assert "endorsements/" in {item for item, _ in report.failures}


def test_every_verdict_of_the_snp_service_is_a_signed_ear(mixed) -> None:
    from tests.web.ear_support import every_verdict_is_a_signed_ear

    """Every verdict, of every kind and outcome, rejections included, is an EAR signed by
    the key the API publishes, saying what its entry says."""
    assert every_verdict_is_a_signed_ear(mixed) == {
        "aws-nitro-enclave affirming": 2,
        "amd-sev-snp affirming": 3,
        "amd-sev-snp contraindicated": 7,
    }
