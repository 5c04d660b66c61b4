"""TPM 2.0 quotes through the service (issue #13): a real software TPM (swtpm, driven by
tpm2-tools) quotes over the service's challenge with the job measured into PCR 23 and logged;
the quote is judged on the ``enrolled`` path against the ledger's enrolments, and every way it
can fall short is recorded with its reason. The real cloud samples go through the same intake
(NitroTPM and GCP), their roots and times as the fixtures say."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from attest_ledger.tpm_enrolments import enroll, revoke
from enclave_worker.binding import ResultDigest
from enclave_worker.job import tamper
from enclave_worker.swtpm import Swtpm
from enclave_worker.tpm import TpmAttester, job_events
from ledger.audit import audit
from ledger.db import session_scope
from tests.web.conftest import build_service
from verifier import ResultHash

pytestmark = pytest.mark.db

IMAGE = "inference-tpm"
MODEL = "tpm-model"


def model_event_digest(model: str) -> str:
    """The SHA-256 of the model event the attester logs first (its data is the label)."""
    return hashlib.sha256(job_events(model, ResultDigest.of(b"x"))[0]).hexdigest()


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory):
    with Swtpm(tmp_path_factory.mktemp("swtpm"), manufacture=True) as running:
        yield running


@pytest.fixture(scope="module")
def attester(swtpm, tmp_path_factory) -> TpmAttester:
    return TpmAttester(swtpm.tcti, tmp_path_factory.mktemp("attester"), model=MODEL)


@pytest.fixture
def tpm(db_url, tmp_path, sim_pki, sim_nsm, attester):
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm)
    reference = {"events": [{"pcr": 23, "digest": {"sha256": model_event_digest(MODEL)},
                             "label": "model"}]}  # fmt: skip
    with session_scope(service.runtime.sessions) as session:
        service.runtime.policies.add_reference(session, IMAGE, "tpm2-quote", reference)
        service.runtime.policies.allow(session, "worker-1", IMAGE)
    service.attester = attester
    yield service
    service.runtime.close()


def enrol(service, attester, name="rack1-node3") -> int:
    with session_scope(service.runtime.sessions) as session:
        return enroll(session, name, attester.ak_public_pem(), now=service.runtime.clock()).index


def submit(service, evidence, *, who="worker-1", result=b"the answer"):
    body = {
        "evidence": {
            "kind": evidence.kind,
            "data": base64.b64encode(evidence.data).decode(),
            "endorsements": [
                {"kind": e.kind, "data": base64.b64encode(e.data).decode()}
                for e in evidence.endorsements
            ],
        },
        "result_hash": str(ResultHash.of(result)),
        "job": {"id": "tpm-job"},
    }
    return service.http.post("/api/v1/attestations", json=body, headers=service.auth(who))


def quote(service, attester=None, *, nonce=None, result=b"the answer"):
    return (attester or service.attester).attest(
        nonce=nonce if nonce is not None else service.challenge(), result=ResultDigest.of(result)
    )


def stored(service, index: int) -> dict:
    with service.runtime.sessions() as session:
        data = session.execute(
            text("SELECT data FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).scalar_one()
    return json.loads(bytes(data))


def codes_of(reply) -> set[str]:
    return {r["code"] for r in reply.json["verdict"]["reasons"]}


def test_an_enrolled_swtpm_quote_is_affirmed_and_recorded(tpm) -> None:
    enrolment = enrol(tpm, tpm.attester)
    evidence = quote(tpm)
    reply = submit(tpm, evidence)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    assert reply.json["verdict"]["image"] == IMAGE
    record = stored(tpm, reply.json["entry"]["index"])
    assert record["evidence_kind"] == "tpm2-quote"
    ak = record["claims"]["ak"]
    assert ak["path"] == "enrolled"
    assert ak["enrolment"] == "rack1-node3"
    assert ak["sha256"] == hashlib.sha256(tpm.attester.ak_public_der()).hexdigest()
    assert record["claims"]["event_log"]["events"] >= 3  # header, model, result
    assert 23 in record["claims"]["event_log"]["replayed"]
    assert record["evidence_sha256"] == hashlib.sha256(evidence.data).hexdigest()
    # the nonce the quote carries is the service's challenge, the first half of extraData
    assert record["nonce"] == record["claims"]["quote"]["extra_data"][:64]
    assert enrolment < reply.json["entry"]["index"]
    with tpm.runtime.sessions() as session:
        assert audit(session, tpm.runtime.log_key).ok


def test_an_ak_nobody_enrolled_is_unendorsed_and_a_revoked_one_is_refused(tpm) -> None:
    reply = submit(tpm, quote(tpm))
    assert reply.status_code == 201
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes_of(reply) == {"ak_unendorsed"}
    enrol(tpm, tpm.attester, "n1")
    assert submit(tpm, quote(tpm)).json["verdict"]["status"] == "affirming"
    with session_scope(tpm.runtime.sessions) as session:
        revoke(session, "n1", now=tpm.runtime.clock())
    reply = submit(tpm, quote(tpm))
    assert codes_of(reply) == {"ak_enrolment_revoked"}


@pytest.mark.parametrize(
    ("how", "codes"),
    [
        ("wrong-image", {"event_missing"}),
        ("unbound", {"result_binding_mismatch"}),
        ("tampered", {"tpm_signature_invalid"}),
        ("foreign-nonce", {"nonce_unknown"}),
    ],
)
def test_every_shortfall_is_recorded_with_its_reason(tpm, swtpm, tmp_path, how, codes) -> None:
    enrol(tpm, tpm.attester)
    attester, result, nonce = tpm.attester, b"the answer", None
    if how == "wrong-image":  # the same TPM and AK, another model measured
        attester = TpmAttester(swtpm.tcti, Path(tpm.attester.state_dir), model="other-model")
    elif how == "unbound":
        result = b"not what is submitted"
    elif how == "foreign-nonce":
        nonce = b"\x07" * 32
    evidence = quote(tpm, attester, nonce=nonce, result=result)
    if how == "tampered":
        evidence = tamper(evidence)
    reply = submit(tpm, evidence)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes <= codes_of(reply), reply.json["verdict"]
