"""The worker's own parts: binding, NSM backends, HTTP retries, job runner."""

from __future__ import annotations

import json

import httpx
import pytest

from enclave_worker.attester import NitroAttester
from enclave_worker.binding import bind_result, result_hash_text
from enclave_worker.client import LedgerClient, ServiceError
from enclave_worker.job import BadMode, Job, JobRunner, compute
from enclave_worker.nsm import DeviceNsm, NsmUnavailable
from verifier import ResultHash


@pytest.mark.parametrize("result", [b"", b"x", b"label=cat score=0.999" * 100])
def test_the_two_binding_implementations_agree(result: bytes) -> None:
    """enclave_worker writes the binding, verifier checks it: written apart, they must agree."""
    assert bind_result(result) == ResultHash.of(result).user_data()
    assert result_hash_text(result) == str(ResultHash.of(result))


def test_compute_is_deterministic() -> None:
    assert compute(b"input 1") == compute(b"input 1")
    assert compute(b"input 1") != compute(b"input 2")
    assert compute(b"input 1").startswith(b"label=")


def test_the_real_nsm_is_reported_missing_outside_an_enclave(tmp_path) -> None:
    with pytest.raises(NsmUnavailable, match="not a Nitro enclave"):
        DeviceNsm(tmp_path / "nsm")


def service(handler):
    return httpx.MockTransport(handler)


def test_retries_429_and_503_with_the_same_idempotency_key() -> None:
    seen = []
    answers = iter(
        [
            httpx.Response(
                503, json={"code": "ledger_busy", "detail": "busy"}, headers={"Retry-After": "1"}
            ),
            httpx.Response(429, json={"code": "rate_limited", "detail": "slow down"}),
            httpx.Response(201, json={"entry": {"index": 7}}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("Idempotency-Key"), json.loads(request.content)))
        return next(answers)

    sleeps = []
    client = LedgerClient("http://service", "tok", transport=service(handler), sleep=sleeps.append)
    receipt = client.submit(b"doc", "sha256:" + "00" * 32, idempotency_key="job-9")
    assert receipt == {"entry": {"index": 7}}
    assert [key for key, _ in seen] == ["job-9"] * 3
    assert len({json.dumps(body, sort_keys=True) for _, body in seen}) == 1  # the same request
    assert client.retried == 2
    assert sleeps[0] >= 0.5  # Retry-After honoured (with jitter)


def test_network_errors_are_retried_then_reported() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused")

    client = LedgerClient(
        "http://service", "tok", transport=service(handler), retries=3, sleep=lambda _s: None
    )
    with pytest.raises(ServiceError) as caught:
        client.challenges()
    assert caught.value.code == "network_error"
    assert len(calls) == 4


def test_client_errors_are_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(409, json={"code": "idempotency_conflict", "detail": "reused"})

    client = LedgerClient(
        "http://service", "tok", transport=service(handler), sleep=lambda _s: None
    )
    with pytest.raises(ServiceError) as caught:
        client.submit(b"doc", "sha256:" + "00" * 32, idempotency_key="k")
    assert (caught.value.status, caught.value.code) == (409, "idempotency_conflict")
    assert len(calls) == 1


def test_the_job_runner_binds_and_submits(sim_nsm) -> None:
    from verifier import parse_evidence

    submitted = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/challenges":
            return httpx.Response(201, json={"challenges": [{"nonce": "ab" * 32}]})
        submitted.update(json.loads(request.content))
        submitted["key"] = request.headers.get("Idempotency-Key")
        return httpx.Response(201, json={"entry": {"index": 0}, "verdict": {}})

    runner = JobRunner(
        LedgerClient("http://service", "tok", transport=service(handler)), NitroAttester(sim_nsm)
    )
    runner.run(Job("job-1", b"an input"))
    import base64

    _, document = parse_evidence(base64.b64decode(submitted["attestation_document"]))
    assert document.nonce == bytes.fromhex("ab" * 32)
    assert document.user_data == bind_result(compute(b"an input"))
    assert submitted["result_hash"] == result_hash_text(compute(b"an input"))
    assert submitted["key"] == "job-1"


def test_bad_modes_that_need_a_second_nsm_say_so(sim_nsm) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"challenges": [{"nonce": "ab" * 32}]})

    runner = JobRunner(
        LedgerClient("http://service", "tok", transport=service(handler)), NitroAttester(sim_nsm)
    )
    with pytest.raises(ValueError, match="needs a second"):
        runner.run(Job("j", b"i"), BadMode.WRONG_IMAGE)


def test_server_errors_are_retried_with_the_same_idempotency_key() -> None:
    """500, 502 and 504 too: a retry under the same key cannot record twice (the service
    answers it with the original receipt)."""
    seen = []
    answers = iter(
        [
            httpx.Response(500, json={"code": "internal_error", "detail": "oops"}),
            httpx.Response(502, text="bad gateway"),
            httpx.Response(504, text="gateway timeout"),
            httpx.Response(
                503,
                json={"code": "database_unavailable", "detail": "down"},
                headers={"Retry-After": "2"},
            ),
            httpx.Response(200, json={"entry": {"index": 3}, "replayed": True}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Idempotency-Key"))
        return next(answers)

    sleeps: list[float] = []
    client = LedgerClient("http://service", "tok", transport=service(handler), sleep=sleeps.append)
    receipt = client.submit(b"doc", "sha256:" + "00" * 32, idempotency_key="job-3")
    assert receipt["entry"] == {"index": 3}
    assert seen == ["job-3"] * 5
    assert client.retried == 4
    assert sleeps[3] >= 1.0  # Retry-After: 2, with jitter


def test_retrying_stops_when_its_time_is_up() -> None:
    """Bounded: by a number of attempts and by time (two minutes by default)."""
    now = [0.0]
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(now[0])
        return httpx.Response(503, json={"code": "database_unavailable", "detail": "down"})

    def sleep(seconds: float) -> None:
        now[0] += seconds

    client = LedgerClient(
        "http://service", "tok", transport=service(handler), sleep=sleep, clock=lambda: now[0]
    )
    with pytest.raises(ServiceError) as caught:
        client.submit(b"doc", "sha256:" + "00" * 32, idempotency_key="job-4")
    assert (caught.value.status, caught.value.code) == (503, "database_unavailable")
    assert 60 < now[0] <= 120  # kept trying through an outage of a minute, then gave up
    assert 10 < len(calls) <= 41


def test_a_conflict_answering_a_retry_is_the_first_attempt_still_in_flight() -> None:
    """409 idempotency_conflict to a retry: the same request's first attempt took the key
    and is being recorded; asked again, the service returns that receipt. To a first attempt
    it is a real conflict and is not retried (test above)."""
    answers = iter(
        [
            httpx.Response(503, json={"code": "database_unavailable", "detail": "down"}),
            httpx.Response(409, json={"code": "idempotency_conflict", "detail": "concurrent"}),
            httpx.Response(200, json={"entry": {"index": 5}, "replayed": True}),
        ]
    )
    client = LedgerClient(
        "http://service",
        "tok",
        transport=service(lambda request: next(answers)),
        sleep=lambda _s: None,
    )
    receipt = client.submit(b"doc", "sha256:" + "00" * 32, idempotency_key="job-5")
    assert receipt["entry"] == {"index": 5}
    assert client.retried == 2


def test_an_unusable_retry_after_is_ignored() -> None:
    answers = iter(
        [
            httpx.Response(
                503, json={"code": "ledger_busy"}, headers={"Retry-After": "²".encode()}
            ),
            httpx.Response(
                503,
                json={"code": "ledger_busy"},
                headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
            ),
            httpx.Response(201, json={"entry": {"index": 1}}),
        ]
    )
    client = LedgerClient(
        "http://service",
        "tok",
        transport=service(lambda request: next(answers)),
        sleep=lambda _s: None,
    )
    assert client.submit(b"doc", "sha256:" + "00" * 32)["entry"] == {"index": 1}
