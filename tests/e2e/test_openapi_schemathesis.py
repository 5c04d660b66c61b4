"""Schemathesis against the live service: real gunicorn on loopback, its own OpenAPI document.

The ledger is seeded first with real submissions (good and bad, with evidence) and a signed
checkpoint, so that answers have content. Then, for every GET operation of /api/v1 (with a
reader token; the public ones ignore it) and the two POST operations (with a worker token),
schemathesis generates requests from the document, valid ones and invalid ones, and checks
each answer: never a server error; a documented status code, content type and headers; a body
that conforms to the documented schema; and an invalid request refused with a 4xx. Finally, a
few hand-picked requests whose answers are known to succeed (an existing entry, result hash,
proof) go through the same checks, since random values rarely hit them.

Deterministic (derandomized, no example database), so a failure here reproduces; set
SCHEMATHESIS_EXAMPLES to explore further (and SCHEMATHESIS_RANDOM=1 for fresh examples).
"""

from __future__ import annotations

import base64
import os
import time
import warnings
from datetime import UTC, datetime

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from enclave_worker import SimulatedNitroPki, SimulatedNitroWarning, SimulatedNsm
from enclave_worker.binding import bind_result, result_hash_text
from enclave_worker.simulated_pki import load_or_create_root

pytestmark = [pytest.mark.db, pytest.mark.e2e]

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
RANDOM = os.environ.get("SCHEMATHESIS_RANDOM") == "1"
#: an invalid request may also be refused by gunicorn itself, for a request line over 4094
#: bytes (414, documented); 5xx is never an acceptable refusal
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 414, 415, 422, 428, 429]
            }
        }
    }
)
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def live_env() -> dict[str, str]:
    return {"ATTEST_LEDGER_RATE_LIMIT": "0"}  # thousands of requests from one reader


def seed(live) -> dict[str, object]:
    """Six submissions (one with the wrong image), then wait for a checkpoint covering them."""
    base, data = live["base"], live["data"]
    now = datetime.now(UTC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        pki = SimulatedNitroPki.generate(
            at=now, root=load_or_create_root(data / "simulated-pki", at=now)
        )
        good, bad = SimulatedNsm(pki, image="e2e-image"), SimulatedNsm(pki, image="unapproved")
    results, indices = [], []
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {live['tokens']['alpha']}"}
    ) as http:
        nonces = http.post("/api/v1/challenges", json={"count": 6}).json()["challenges"]
        for n, challenge in enumerate(nonces):
            result = b"result %d" % n
            document = (bad if n == 5 else good).attest(
                user_data=bind_result(result), nonce=bytes.fromhex(challenge["nonce"])
            )
            receipt = http.post(
                "/api/v1/attestations",
                json={
                    "attestation_document": base64.b64encode(document).decode(),
                    "result_hash": result_hash_text(result),
                },
            )
            assert receipt.status_code == 201, receipt.text
            results.append(result_hash_text(result))
            indices.append(receipt.json()["entry"]["index"])
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{base}/api/v1/checkpoint")
        if response.status_code == 200 and int(response.text.split("\n")[1]) > indices[-1]:
            break
        assert time.monotonic() < deadline, "no checkpoint covered the seeded entries"
        time.sleep(0.2)
    return {"results": results, "indices": indices, "size": int(response.text.split("\n")[1])}


def run(operation, mode: GenerationMode, headers: dict[str, str], checks: list) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=not RANDOM,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    # The token is fixed, never generated: negative cases are then invalid in what they say
    # they are (a request without it is refused with 401, and test_compliance checks that).
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def check(case) -> None:
        case.call_and_validate(checks=checks)

    check()


def test_every_endpoint_conforms_to_the_openapi_document(live) -> None:
    seeded = seed(live)
    base = live["base"]
    reader = {"Authorization": f"Bearer {live['tokens']['auditor']}"}
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", config=CONFIG)
    schema.validate()
    operations = [result.ok() for result in schema.include(method="GET").get_all_operations()]
    assert len(operations) == 17  # 13, the collateral list, document and impact, the EAR keys
    for operation in operations:
        run(operation, GenerationMode.POSITIVE, reader, CONFORMANCE)
        if operation.path_parameters or operation.query:
            run(
                operation,
                GenerationMode.NEGATIVE,
                reader,
                [*CONFORMANCE, negative_data_rejection],
            )

    # The worker endpoints, with a worker token: challenges, and submissions, which random
    # documents make contraindicated entries (malformed evidence) with receipts to check.
    worker = {"Authorization": f"Bearer {live['tokens']['beta']}"}
    posts = [result.ok() for result in schema.include(method="POST").get_all_operations()]
    assert len(posts) == 2
    for operation in posts:
        run(operation, GenerationMode.POSITIVE, worker, CONFORMANCE)
        run(operation, GenerationMode.NEGATIVE, worker, [*CONFORMANCE, negative_data_rejection])

    # Known-good requests: the answers random values rarely reach.
    index, size = seeded["indices"][0], seeded["size"]
    known = {
        "/api/v1/entries": [
            {"query": {"worker": "alpha", "count": "exact", "limit": 2}},
            {"query": {"verdict": "contraindicated", "sort": "time-asc"}},
            {"query": {"result_hash": seeded["results"][1]}},
        ],
        "/api/v1/entries/{index}": [{"path_parameters": {"index": index}}],
        "/api/v1/entries/{index}/proof": [
            {"path_parameters": {"index": index}},
            {"path_parameters": {"index": index}, "query": {"format": "tlog-proof"}},
            {"path_parameters": {"index": index}, "query": {"tree_size": size}},
        ],
        "/api/v1/entries/{index}/evidence": [{"path_parameters": {"index": index}}],
        "/api/v1/results/{result_hash}": [
            {"path_parameters": {"result_hash": result}} for result in seeded["results"]
        ],
        "/api/v1/stats": [{"query": {"bucket": "hour", "group_by": "verdict,image,worker"}}],
        "/api/v1/checkpoint": [{"query": {"tree_size": size}}],
        "/api/v1/consistency": [{"query": {"first": 1, "second": size}}],
    }
    for path, cases in known.items():
        operation = schema[path]["GET"]
        for parts in cases:
            response = operation.Case(**parts).call_and_validate(headers=reader, checks=CONFORMANCE)
            assert response.status_code == 200, (path, parts, response.text[:300])
