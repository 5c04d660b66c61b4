"""RFC 9457 problem details: the one place that maps domain errors to HTTP.

Every error response is ``application/problem+json``::

    {"type": "urn:attestation-ledger:problem:<code>", "title": ..., "status": ...,
     "detail": ..., "code": "<code>", "instance": "<path>"}

``code`` is stable and machine-readable; clients never parse ``detail``. Stack traces never
reach a response.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from attest_ledger.intake import IntakeError
from ledger.db import unavailable_reason
from ledger.errors import (
    DatabaseUnavailable,
    EntryNotFound,
    LedgerBusy,
    LedgerError,
    TreeSizeUnavailable,
)

__all__ = ["DATABASE_RETRY_AFTER", "Problem", "problem_response", "register_problem_handlers"]

#: Seconds a client is asked to wait while the database is unavailable (the embedded server is
#: back within a few seconds of a crash; an external one when its operators bring it back).
DATABASE_RETRY_AFTER = 2

log = logging.getLogger(__name__)

_STATUS_FOR_INTAKE = {
    "idempotency_conflict": 409,
    "nonce_already_used": 409,
    "record_too_large": 413,
}
_HTTP_CODES = {
    400: "malformed_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)
        self.extra = extra or {}


#: Paths that always answer in problem+json; everything else is for people (the portal) and,
#: when the portal is mounted, gets an HTML error page instead.
_MACHINE_PATHS = ("/api/", "/healthz", "/readyz", "/metrics")


def problem_response(problem: Problem) -> Response:
    render_html = current_app.extensions.get("attest_ledger.html_errors")
    if render_html is not None and not request.path.startswith(_MACHINE_PATHS):
        response: Response = render_html(problem)
        response.headers.update(problem.headers)
        return response
    body = {
        "type": f"urn:attestation-ledger:problem:{problem.code}",
        "title": problem.code.replace("_", " ").capitalize(),
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
        "instance": request.path,
        **problem.extra,
    }
    response = jsonify(body)
    response.status_code = problem.status
    response.mimetype = "application/problem+json"
    response.headers.update(problem.headers)
    return response


def register_problem_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, problem_response)

    @app.errorhandler(LedgerBusy)
    def _busy(exc: LedgerBusy) -> Response:
        return problem_response(Problem(503, "ledger_busy", exc.message, retry_after=1))

    @app.errorhandler(DatabaseUnavailable)
    def _database(exc: DatabaseUnavailable) -> Response:
        return _database_unavailable(exc.message)

    @app.errorhandler(EntryNotFound)
    def _not_found(exc: EntryNotFound) -> Response:
        return problem_response(Problem(404, "not_found", exc.message))

    @app.errorhandler(TreeSizeUnavailable)
    def _size(exc: TreeSizeUnavailable) -> Response:
        return problem_response(Problem(400, exc.code, exc.message))

    @app.errorhandler(LedgerError)
    def _ledger(exc: LedgerError) -> Response:
        log.error("ledger error: [%s] %s", exc.code, exc.message)
        return problem_response(Problem(500, exc.code, "the ledger reported an internal error"))

    @app.errorhandler(IntakeError)
    def _intake(exc: IntakeError) -> Response:
        return problem_response(
            Problem(_STATUS_FOR_INTAKE.get(exc.code, 400), exc.code, exc.message)
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        detail = exc.description or code
        if status == 413:
            detail = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        return problem_response(Problem(status, code, detail))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        reason = unavailable_reason(exc)  # a read, a lookup or a connection that failed
        if reason is not None:
            return _database_unavailable(reason)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(Problem(500, "internal_error", "an internal error occurred"))


def _database_unavailable(reason: str) -> Response:
    log.warning("database unavailable on %s %s: %s", request.method, request.path, reason)
    return problem_response(
        Problem(
            503,
            "database_unavailable",
            f"{reason}; try again later (a submission: with the same idempotency key)",
            retry_after=DATABASE_RETRY_AFTER,
        )
    )
