"""Health, readiness and metrics, for load balancers and Prometheus."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from ledger.db import unavailable_reason

__all__ = ["bp"]

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive (no dependencies checked)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready to take submissions: database reachable and migrated, signing key loaded.

    While the database cannot be used, 503 with ``checks.database`` saying why
    (``unavailable: <reason>``); ready again as soon as it answers.
    """
    from attest_ledger.cli.db import head_revision  # noqa: PLC0415 - alembic only here

    runtime: Any = current_app.extensions["attest_ledger.runtime"]
    checks: dict[str, Any] = {}
    ready = True
    try:
        with runtime.engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        checks["database"] = "ok"
        checks["schema"] = revision
        if revision != head_revision():
            ready = False
            checks["schema"] = (
                f"{revision} (expected {head_revision()}: run attest-ledger db upgrade)"
            )
    except Exception as exc:
        ready = False
        reason = unavailable_reason(exc) or f"failed ({type(exc).__name__})"
        checks["database"] = f"unavailable: {reason}"
    checks["log_key"] = str(runtime.log_key)
    checks["trust_anchor"] = {
        "name": runtime.trust_anchor.name,
        "sha256": runtime.trust_anchor.fingerprint,
    }
    checks["checkpoint_publisher"] = (
        "elected" if runtime.publisher and runtime.publisher.leader else "standby"
    )
    return jsonify(
        {"status": "ready" if ready else "not_ready", "checks": checks}
    ), 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    exposition = current_app.extensions["attest_ledger.metrics"].exposition()
    return Response(
        exposition,
        mimetype=CONTENT_TYPE_LATEST.split(";")[0],
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )
