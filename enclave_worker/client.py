"""The worker's HTTP client for the service's API. HTTP only: nothing of the service is
imported.

Retries: 429 and 503 (honouring Retry-After) and network errors are retried with
exponential backoff and jitter, resending the same request with the same idempotency key,
so a retry after a lost answer returns the original receipt instead of a second entry.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["LedgerClient", "ServiceError"]

_RETRY_STATUSES = {429, 502, 503, 504}


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
        retries: int = 8,
        backoff: float = 0.1,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "attest-ledger-worker/1"},
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self.retried = 0

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

    def _request(
        self, method: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, json=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise ServiceError(0, "network_error", str(exc)) from exc
                self._wait(delay)
            else:
                if response.status_code < 400:
                    result: dict[str, Any] = response.json()
                    return result
                if response.status_code not in _RETRY_STATUSES or attempt == self.retries:
                    problem = _problem(response)
                    raise ServiceError(
                        response.status_code,
                        problem.get("code", "error"),
                        problem.get("detail", ""),
                    )
                retry_after = response.headers.get("Retry-After", "")
                self._wait(max(delay, float(retry_after)) if retry_after.isdigit() else delay)
            self.retried += 1
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, seconds: float) -> None:
        self._sleep(seconds * (0.5 + random.random()))  # noqa: S311 - jitter, not secrecy


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"code": "http_error", "detail": response.text[:200]}
    return body if isinstance(body, dict) else {"code": "http_error", "detail": str(body)[:200]}
