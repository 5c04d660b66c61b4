"""The Flask service: ingestion API, read and compliance APIs, operations endpoints and the
auditor portal.

``create_app(runtime)`` builds an app around a :class:`~attest_ledger.runtime.Runtime`
(database, verifier, batcher, publisher); nothing happens at import time, and migrations are
never run from here (``attest-ledger db upgrade`` does that).
"""

from __future__ import annotations

from flask import Flask

from attest_ledger.runtime import Runtime
from web import api, collateral_api, compliance, ops, portal
from web.auth import RateLimiter
from web.metrics import Metrics
from web.problems import register_problem_handlers
from web.request_body import BoundedRequest
from web.sessions import init_sessions

__all__ = ["CONTENT_SECURITY_POLICY", "create_app"]

#: Nothing inline, nothing from elsewhere: scripts and styles only from our own static files,
#: no framing, forms only to ourselves. Evidence fields are attacker-controlled; even if one
#: escaped the templates' autoescaping it could not run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def create_app(runtime: Runtime) -> Flask:
    app = Flask(__name__)
    app.request_class = BoundedRequest  # chunked bodies over the limit: 413, not cut
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
    app.register_blueprint(compliance.bp)
    app.register_blueprint(collateral_api.bp)
    app.register_blueprint(ops.bp)
    portal.init_portal(app)

    @app.after_request
    def _headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
