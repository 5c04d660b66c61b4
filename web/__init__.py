"""The Flask service: ingestion API, read API and operations endpoints.

``create_app(runtime)`` builds an app around a :class:`~attest_ledger.runtime.Runtime`
(database, verifier, batcher, publisher); nothing happens at import time, and migrations are
never run from here (``attest-ledger db upgrade`` does that).
"""

from __future__ import annotations

from flask import Flask

from attest_ledger.runtime import Runtime
from web import api, ops
from web.auth import RateLimiter
from web.metrics import Metrics
from web.problems import register_problem_handlers
from web.sessions import init_sessions

__all__ = ["create_app"]


def create_app(runtime: Runtime) -> Flask:
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=runtime.settings.max_request_bytes,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["attest_ledger.runtime"] = runtime
    app.extensions["attest_ledger.metrics"] = Metrics(runtime)
    app.extensions["attest_ledger.limiter"] = RateLimiter(runtime.settings.rate_limit)
    init_sessions(app)
    register_problem_handlers(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)

    @app.after_request
    def _headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
