"""Text is total (issue #10, item 2): whatever characters a submission's fields hold, the
verdict is recorded, kept exactly in the entry bytes, and the entry exports, audits and
displays; characters that could hide or reorder text are shown as visible markers."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from ledger.audit import audit
from tests.web.conftest import page, publish
from tests.web.test_bundle import attestations, check, export
from tests.web.test_portal import hostile_document

pytestmark = pytest.mark.db

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
ZWSP = "\u200b"  # ZERO WIDTH SPACE


def stored(service, index: int) -> tuple[bytes, str | None]:
    with service.runtime.sessions() as session:
        row = session.execute(
            text("SELECT data, module_id FROM ledger_entries WHERE idx = :i"), {"i": index}
        ).one()
    return bytes(row.data), row.module_id


def audited(service) -> None:
    with service.runtime.sessions() as session:
        report = audit(session, service.runtime.log_key)
    assert report.ok, report.divergence


def test_a_nul_in_the_job_is_kept_exactly_and_the_entry_shows_everywhere(portal) -> None:
    job = {"id": "a\u0000b", "note": f"{RLO}evil"}
    receipt = portal.submit(portal.document(nonce=portal.challenge()), job=job)
    assert receipt.status_code == 201, receipt.json
    index = receipt.json["entry"]["index"]
    data, _ = stored(portal, index)
    assert b'"id":"a\\u0000b"' in data
    assert json.loads(data)["job"] == job
    reader = portal.auth("auditor")
    assert portal.http.get(f"/api/v1/entries/{index}", headers=reader).json["entry"]["job"] == job
    publish(portal)
    body = page(portal, f"/portal/entries/{index}")
    assert "\u0000" not in body
    assert RLO not in body
    report = check(portal, export(portal, attestations(portal)))
    assert report.ok, report.failures
    audited(portal)


def test_a_lone_surrogate_in_the_job_is_recorded_not_a_server_error(portal) -> None:
    document = portal.document(nonce=portal.challenge())
    body = json.dumps(
        {
            "attestation_document": __import__("base64").b64encode(document).decode(),
            "result_hash": "sha256:" + __import__("hashlib").sha256(b"the answer").hexdigest(),
            "job": {"id": "\ud800x"},
        }
    )  # ensure_ascii: the surrogate travels as its escape, as any JSON client would send it
    assert "\\ud800" in body
    receipt = portal.http.post(
        "/api/v1/attestations",
        data=body,
        content_type="application/json",
        headers=portal.auth("worker-1"),
    )
    assert receipt.status_code == 201, receipt.get_data(as_text=True)
    assert receipt.json["verdict"]["status"] == "affirming"
    index = receipt.json["entry"]["index"]
    data, _ = stored(portal, index)
    data.decode("utf-8")  # the entry bytes stay valid UTF-8
    assert b'"id":"\\ud800x"' in data
    assert json.loads(data)["job"]["id"] == "\ud800x"
    publish(portal)
    shown = page(portal, f"/portal/entries/{index}")
    assert "\\ud800x" in shown  # the job is shown as JSON, escaped
    report = check(portal, export(portal, attestations(portal)))
    assert report.ok, report.failures
    audited(portal)


def test_a_nul_in_a_signed_module_id_is_judged_and_recorded(portal) -> None:
    module_id = "i-0123456789abcdef0-enc\u00000123456789abcdef"
    document = hostile_document(
        portal, module_id=module_id, user_data=b"", nonce=portal.challenge()
    )
    receipt = portal.submit(document)
    assert receipt.status_code == 201, receipt.get_data(as_text=True)
    index = receipt.json["entry"]["index"]
    data, column = stored(portal, index)
    assert json.loads(data)["module_id"] == module_id  # the bytes keep it exactly
    assert column == module_id.replace("\u0000", "\ufffd")  # the query column holds what it can
    publish(portal)
    shown = page(portal, f"/portal/entries/{index}")
    assert "enc\u27e8U+0000\u27e90123" in shown
    assert "\u0000" not in page(portal, "/portal/entries")
    audited(portal)
    report = check(portal, export(portal, attestations(portal)))
    assert report.ok or all("binding" in m for _, m in report.failures), report.failures


def test_bidirectional_and_invisible_controls_are_shown_neutralised(portal) -> None:
    module_id = f"i-0123456789abcdef0-enc{RLO}fedcba9876543210{ZWSP}"
    document = hostile_document(
        portal, module_id=module_id, user_data=b"", nonce=portal.challenge()
    )
    receipt = portal.submit(document)
    assert receipt.status_code == 201, receipt.get_data(as_text=True)
    index = receipt.json["entry"]["index"]
    publish(portal)
    for path in (f"/portal/entries/{index}", "/portal/entries", "/portal/"):
        body = page(portal, path)
        assert RLO not in body, path
        assert ZWSP not in body, path
    detail = page(portal, f"/portal/entries/{index}")
    assert "enc\u27e8U+202E\u27e9fedcba9876543210\u27e8U+200B\u27e9" in detail
