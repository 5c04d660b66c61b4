"""The service while its database is away: every endpoint that needs the database answers
503 ``database_unavailable`` with Retry-After (as its OpenAPI entry says), /readyz says why,
and all of it recovers when the database is back."""

from __future__ import annotations

import base64

import pytest

from ledger.errors import DatabaseUnavailable
from tests.outage_support import database_away
from verifier import ResultHash
from web.openapi import document

pytestmark = pytest.mark.db


def _call(service, path: str, method: str, operation: dict, body: dict):
    concrete = path.replace("{index}", "0").replace("{result_hash}", "sha256:" + "0" * 64)
    required = [
        p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and p["required"]
    ]
    if required:  # valid values, so that the request gets as far as the database
        concrete += "?" + "&".join(f"{name}=1" for name in required)
    headers = {}
    if operation["security"]:
        headers = service.auth("auditor" if operation["x-role"] == "reader" else "worker-1")
    if method == "post":
        return service.http.post(concrete, json=body.get(path, {}), headers=headers)
    return service.http.get(concrete, headers=headers)


def test_every_endpoint_that_needs_the_database_answers_503_while_it_is_away(
    service, db_url, databases
) -> None:
    evidence = service.document(nonce=service.challenge())
    submission = {
        "attestation_document": base64.b64encode(evidence).decode(),
        "result_hash": str(ResultHash.of(b"the answer")),
        "job": {"id": "during-the-outage"},
    }
    bodies = {"/api/v1/attestations": submission, "/api/v1/challenges": {"count": 1}}
    doc = document()
    with database_away(databases.admin_url, db_url):
        for path, item in doc["paths"].items():
            for method, operation in item.items():
                response = _call(service, path, method, operation, bodies)
                documented = operation["responses"].get("503")
                if documented is None:  # the log key and this document need no database
                    assert response.status_code == 200, (path, response.json)
                    continue
                assert response.status_code == 503, (path, response.status_code, response.data)
                assert response.json["code"] == "database_unavailable", path
                assert int(response.headers["Retry-After"]) >= 1
                codes = documented["content"]["application/problem+json"]["schema"]["allOf"][1]
                assert "database_unavailable" in codes["properties"]["code"]["enum"], path
        ready = service.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json["checks"]["database"].startswith("unavailable: "), ready.json
    assert service.http.get("/readyz").status_code == 200
    again = service.http.post(
        "/api/v1/attestations", json=submission, headers=service.auth("worker-1")
    )
    assert again.status_code == 201, again.json  # nothing was recorded while it was away
    assert again.json["verdict"]["status"] == "affirming"


def test_a_retry_after_a_lost_commit_answer_returns_the_receipt_not_a_second_entry(
    service, monkeypatch
) -> None:
    """The connection breaks during COMMIT: the batch may be committed, yet its callers get
    503. The worker's retry, same request under the same key, must find the entry, not make
    a second one (and without a key, the same evidence is found as a duplicate)."""
    batcher = service.runtime.batcher
    append = batcher.append

    def commit_then_lose_the_answer(*args, **kwargs):
        append(*args, **kwargs)
        raise DatabaseUnavailable("the connection was lost during COMMIT")

    document = service.document(nonce=service.challenge())
    monkeypatch.setattr(batcher, "append", commit_then_lose_the_answer)
    lost = service.submit(document, key="job-7")
    assert lost.status_code == 503
    assert lost.json["code"] == "database_unavailable"
    monkeypatch.setattr(batcher, "append", append)

    retry = service.submit(document, key="job-7")
    assert retry.status_code == 200, retry.json
    assert retry.json["replayed"] is True
    again = service.submit(document)  # no key: the same evidence from the same worker
    assert again.status_code == 200
    assert again.json["duplicate"] is True
    assert retry.json["entry"] == again.json["entry"]
    assert service.http.get("/api/v1/tree").json["tree_size"] == retry.json["entry"]["index"] + 1
