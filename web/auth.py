"""Bearer-token authentication, roles, and per-client rate limits.

``Authorization: Bearer <token>``; workers submit, readers read, and neither can do the
other's job. Each client has a token bucket per service process (``rate_limit`` requests per
second, bursts of twice that); beyond it the answer is 429 with Retry-After.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from attest_ledger.clients import Principal, authenticate
from web.problems import Problem
from web.sessions import db

__all__ = ["RateLimiter", "current_client", "require"]

F = TypeVar("F", bound=Callable[..., Any])


class RateLimiter:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate * 2)
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client_id: int) -> float:
        """0 if allowed, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[client_id] = (tokens - 1, now)
                return 0.0
            self._buckets[client_id] = (tokens, now)
            return (1 - tokens) / self.rate


def current_client() -> Principal:
    client: Principal = g.client
    return client


def require(role: str) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            challenge = {"WWW-Authenticate": 'Bearer realm="attestation-ledger"'}
            if scheme.lower() != "bearer" or not token.strip():
                raise Problem(
                    401, "unauthenticated", "a bearer token is required", headers=challenge
                )
            client = authenticate(db(), token.strip())
            if client is None:
                raise Problem(
                    401, "unauthenticated", "the token is unknown or revoked", headers=challenge
                )
            if client.role != role:
                raise Problem(
                    403,
                    "forbidden",
                    f"this endpoint needs a {role} token, not a {client.role} token",
                )
            wait = current_app.extensions["attest_ledger.limiter"].take(client.id)
            if wait > 0:
                raise Problem(
                    429,
                    "rate_limited",
                    "too many requests from this client",
                    retry_after=math.ceil(wait),
                )
            g.client = client
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate
