"""AMD SEV-SNP through the service (issue #11): a simulated SNP guest submits its report and
endorsements; the verdict, the claims and the endorsements are recorded and audit; every way
the evidence can fall short is recorded with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
import warnings

import pytest
from sqlalchemy import text

from enclave_worker import SimulatedAmdWarning
from enclave_worker.binding import ResultDigest
from ledger.audit import audit
from ledger.db import session_scope
from tests.enclave_worker.snp_support import amd_pki, snp_platform
from tests.web.conftest import build_service
from verifier import ResultHash

pytestmark = pytest.mark.db

IMAGE = "inference-snp"


@pytest.fixture
def snp(db_url, tmp_path, sim_pki, sim_nsm):
    ark = tmp_path / "simulated-ark.pem"
    ark.write_bytes(amd_pki().ark_pem())
    service = build_service(db_url, tmp_path, sim_pki, sim_nsm, snp_trust_root_path=ark)
    service.platform = snp_platform(image=IMAGE)
    with session_scope(service.runtime.sessions) as session:
        service.runtime.policies.add_reference(
            session, IMAGE, "amd-sev-snp", {"measurement": service.platform.measurement.hex()}
        )
        service.runtime.policies.allow(session, "worker-1", IMAGE)
    yield service
    service.runtime.close()


def submit(service, evidence, *, who="worker-1", result=b"the answer", drop=()):
    body = {
        "evidence": {
            "kind": evidence.kind,
            "data": base64.b64encode(evidence.data).decode(),
            "endorsements": [
                {"kind": e.kind, "data": base64.b64encode(e.data).decode()}
                for e in evidence.endorsements
                if e.kind not in drop
            ],
        },
        "result_hash": str(ResultHash.of(result)),
        "job": {"id": "snp-job"},
    }
    return service.http.post("/api/v1/attestations", json=body, headers=service.auth(who))


def attest(service, platform=None, *, nonce=None, result=b"the answer"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        return (platform or service.platform).attest(
            nonce=nonce if nonce is not None else service.challenge(),
            result=ResultDigest.of(result),
        )


def stored(service, index: int) -> dict:
    with service.runtime.sessions() as session:
        data = session.execute(
            text("SELECT data FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).scalar_one()
    return json.loads(bytes(data))


def test_a_simulated_snp_guest_is_affirmed_and_recorded_with_its_endorsements(snp) -> None:
    evidence = attest(snp)
    reply = submit(snp, evidence)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "affirming", reply.json["verdict"]
    assert reply.json["verdict"]["image"] == IMAGE
    record = stored(snp, reply.json["entry"]["index"])
    assert record["evidence_kind"] == "amd-sev-snp"
    assert record["claims"]["measurement"] == snp.platform.measurement.hex()
    assert record["nonce"] == evidence.data[0x50 : 0x50 + 32].hex()
    assert record["trust_anchors"] == [hashlib.sha256(amd_pki().ark.der).hexdigest()]
    assert {e["kind"] for e in record["endorsements"]} == {"vcek", "ask", "ark"}
    with snp.runtime.sessions() as session:
        kept = session.execute(text("SELECT count(*) FROM ledger_endorsements")).scalar_one()
        assert kept == 3
        assert audit(session, snp.runtime.log_key).ok
    again = submit(snp, attest(snp))  # the same chip again: its VCEK is stored once
    assert again.status_code == 201
    with snp.runtime.sessions() as session:
        kept = session.execute(text("SELECT count(*) FROM ledger_endorsements")).scalar_one()
        assert kept == 3


@pytest.mark.parametrize(
    ("how", "codes"),
    [
        ("wrong-image", {"measurement_mismatch"}),
        ("debug", {"debug_mode"}),
        ("unbound", {"result_binding_mismatch"}),
        ("no-vcek", {"endorsement_missing"}),
        ("tampered", {"signature_invalid"}),
        ("foreign-nonce", {"nonce_unknown"}),
    ],
)
def test_every_shortfall_is_recorded_with_its_reason(snp, how, codes) -> None:
    platform, drop, result, nonce = snp.platform, (), b"the answer", None
    if how == "wrong-image":
        platform = snp.platform.variant(image="something-else")
    elif how == "debug":
        platform = snp.platform.variant(debug=True)
    elif how == "unbound":
        result = b"not what is submitted"
    elif how == "no-vcek":
        drop = ("vcek",)
    elif how == "foreign-nonce":
        nonce = bytes(32)
    evidence = attest(snp, platform, nonce=nonce, result=result)
    if how == "tampered":
        data = bytearray(evidence.data)
        data[0x90] ^= 1  # a bit of the signed measurement
        evidence = type(evidence)(evidence.kind, bytes(data), evidence.endorsements)
    reply = submit(snp, evidence, drop=drop)
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert codes <= {r["code"] for r in reply.json["verdict"]["reasons"]}, reply.json


def test_a_worker_without_an_snp_image_is_refused_closed(snp) -> None:
    reply = submit(snp, attest(snp, nonce=snp.challenge("worker-2")), who="worker-2")
    assert reply.json["verdict"]["status"] == "contraindicated"
    assert "no_reference_values" in {r["code"] for r in reply.json["verdict"]["reasons"]}


def test_garbage_of_a_known_kind_is_judged_and_recorded(snp) -> None:
    reply = snp.http.post(
        "/api/v1/attestations",
        json={
            "evidence": {"kind": "amd-sev-snp", "data": base64.b64encode(b"x" * 100).decode()},
            "result_hash": str(ResultHash.of(b"x")),
        },
        headers=snp.auth("worker-1"),
    )
    assert reply.status_code == 201, reply.json
    assert reply.json["verdict"]["error"] == "malformed"
    assert stored(snp, reply.json["entry"]["index"])["evidence_kind"] == "amd-sev-snp"


@pytest.mark.parametrize(
    "evidence",
    [
        {"kind": "nvidia-gpu", "data": "AA=="},  # reserved: no scheme verifies it yet
        {"kind": "amd-sev-snp"},
        {"kind": "amd-sev-snp", "data": "AA==", "endorsements": [{"kind": "vcek"}]},
        {"kind": "amd-sev-snp", "data": "AA==", "endorsements": "vcek"},
        {"kind": "amd-sev-snp", "data": "AA==", "extra": 1},
    ],
)
def test_malformed_evidence_objects_are_refused_without_an_entry(snp, evidence) -> None:
    reply = snp.http.post(
        "/api/v1/attestations",
        json={"evidence": evidence, "result_hash": str(ResultHash.of(b"x"))},
        headers=snp.auth("worker-1"),
    )
    assert reply.status_code == 400, reply.json
    assert reply.json["code"] == "malformed_request"


def test_the_api_serves_an_snp_report_as_octets(snp) -> None:
    reply = submit(snp, attest(snp))
    index = reply.json["entry"]["index"]
    served = snp.http.get(f"/api/v1/entries/{index}/evidence", headers=snp.auth("auditor"))
    assert served.status_code == 200
    assert served.mimetype == "application/octet-stream"
    assert f"entry-{index}.bin" in served.headers["Content-Disposition"]
    assert hashlib.sha256(served.data).hexdigest() == reply.json["evidence_sha256"]


def test_an_endorsement_of_no_known_kind_is_refused_without_an_entry(snp) -> None:
    """Regression (issue #12): an endorsement kind that matched the old pattern but names no
    kind (``foo``) reached the intake and answered 500."""
    reply = snp.http.post(
        "/api/v1/attestations",
        json={
            "evidence": {
                "kind": "amd-sev-snp",
                "data": base64.b64encode(bytes(1184)).decode(),
                "endorsements": [{"kind": "foo", "data": "AA=="}],
            },
            "result_hash": str(ResultHash.of(b"x")),
        },
        headers=snp.auth("worker-1"),
    )
    assert reply.status_code == 400, reply.json
    assert reply.json["code"] == "malformed_request"
    assert "tcb-info" in reply.json["detail"]  # it names the kinds there are
