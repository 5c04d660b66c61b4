"""The worker's HTTP client for the service's API. HTTP only: nothing of the service is
imported.

Retries: 429, 500, 502, 503 and 504 (honouring Retry-After) and network errors are retried
with exponential backoff (0.1 s doubling to 5 s) and jitter, for up to two minutes and at
most 40 times, resending the same request with the same idempotency key, so a retry after a
lost answer returns the original receipt instead of a second entry. That carries a worker
through a database outage of a minute or more (the service answers 503 while its database is
unavailable). A 409 ``idempotency_conflict`` answering a *retry* is retried too: the same
request under the same key can only conflict with its own first attempt, still being
recorded (its answer was lost, say, to a timeout); once recorded, the retry gets its receipt.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from enclave_worker.attester import AWS_NITRO_ENCLAVE, Evidence

__all__ = ["LedgerClient", "ServiceError"]

_RETRY_STATUSES = {429, 500, 502, 503, 504}


class ServiceError(Exception):
    """The service refused the request (a 4xx problem, or retries exhausted)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class LedgerClient:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 40,
        retry_for: float = 120.0,
        backoff: float = 0.1,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        nitro_evidence_body: bool = False,
    ) -> None:
        self._http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "attest-ledger-worker/1"},
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries
        self.retry_for = retry_for
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self.retried = 0
        self.nitro_evidence_body = nitro_evidence_body

    def close(self) -> None:
        self._http.close()

    def challenges(self, count: int = 1) -> list[bytes]:
        body = self._request("POST", "/api/v1/challenges", {"count": count})
        return [bytes.fromhex(item["nonce"]) for item in body["challenges"]]

    def submit(
        self,
        document: bytes,
        result_hash: str,
        *,
        job: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "attestation_document": base64.b64encode(document).decode(),
            "result_hash": result_hash,
            "job": job or {},
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/api/v1/attestations", body, headers)

    def submit_evidence(
        self,
        evidence: Evidence,
        result_hash: str,
        *,
        job: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        devices: Sequence[Evidence] | None = None,
    ) -> dict[str, Any]:
        """Submit evidence of any kind, with the evidence of the devices beside it.

        The body is ``{"evidence": {"kind", "data", "endorsements": [{"kind", "data"}]},
        "result_hash", "job", "idempotency_key"}`` (data base64 with padding); the key goes in
        the ``Idempotency-Key`` header too, as :meth:`submit` sends it. Nitro documents without
        endorsements go in today's body (:meth:`submit`) unless ``nitro_evidence_body`` is set,
        so a worker feeds a service of either generation.

        ``devices`` (GPUs and NVSwitches, ``nvidia-gpu`` evidence in the order of their
        gpu_nonce index) go in the body as ``"devices": [{"kind", "data", "endorsements"}]``;
        a submission with devices always takes the ``evidence`` form, a Nitro document's too.
        """
        if (
            devices is None
            and evidence.kind == AWS_NITRO_ENCLAVE
            and not evidence.endorsements
            and not self.nitro_evidence_body
        ):
            return self.submit(evidence.data, result_hash, job=job, idempotency_key=idempotency_key)
        body: dict[str, Any] = {
            "evidence": evidence.to_json(),
            "result_hash": result_hash,
            "job": job or {},
        }
        if devices is not None:
            body["devices"] = [device.to_json() for device in devices]
        headers: dict[str, str] = {}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
            headers["Idempotency-Key"] = idempotency_key
        return self._request("POST", "/api/v1/attestations", body, headers)

    def _request(
        self, method: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        delay = self.backoff
        give_up_at = self._clock() + self.retry_for
        keyed = bool(headers and headers.get("Idempotency-Key"))
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, json=body, headers=headers)
            except httpx.TransportError as exc:
                wait = self._next_wait(delay, attempt, give_up_at)
                if wait is None:
                    raise ServiceError(0, "network_error", str(exc)) from exc
            else:
                if response.status_code < 400:
                    result: dict[str, Any] = response.json()
                    return result
                problem = _problem(response)
                wait = (
                    self._next_wait(
                        max(delay, _seconds(response.headers.get("Retry-After"))),
                        attempt,
                        give_up_at,
                    )
                    if response.status_code in _RETRY_STATUSES
                    or (keyed and attempt > 0 and problem.get("code") == "idempotency_conflict")
                    else None
                )
                if wait is None:
                    raise ServiceError(
                        response.status_code,
                        problem.get("code", "error"),
                        problem.get("detail", ""),
                    )
            self._sleep(wait)
            self.retried += 1
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _next_wait(self, seconds: float, attempt: int, give_up_at: float) -> float | None:
        """The jittered wait before the next attempt, or None if the attempts or the time for
        retrying are used up."""
        wait = seconds * (0.5 + random.random())  # noqa: S311 - jitter, not secrecy
        if attempt >= self.retries or self._clock() + wait > give_up_at:
            return None
        return wait


def _seconds(retry_after: str | None) -> float:
    """Retry-After in seconds (an HTTP date, or anything else, counts as 0)."""
    try:
        return max(0.0, float(int(retry_after or "0", 10)))
    except ValueError:
        return 0.0


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"code": "http_error", "detail": response.text[:200]}
    return body if isinstance(body, dict) else {"code": "http_error", "detail": str(body)[:200]}
