"""The auditor portal's views, through Flask's test client on a real database."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from markupsafe import escape
from sqlalchemy import text

from attest_ledger.users import add_user
from enclave_worker.simulated_nsm import encode_payload
from ledger.db import session_scope
from tests.web.conftest import NOW, PASSWORD, csrf_of, page, publish, sign_in
from verifier import parse_evidence

pytestmark = pytest.mark.db


def test_pages_need_a_signed_in_user(service) -> None:
    http = service.app.test_client()
    for path in ("/portal/", "/portal/entries", "/portal/entries/0", "/portal/checkpoints"):
        response = http.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/portal/login?next=")
    assert http.get("/").headers["Location"] == "/portal/"


def test_signing_in_sets_a_hardened_cookie_and_signing_out_ends_the_session(service) -> None:
    with session_scope(service.runtime.sessions) as session:
        add_user(session, "ada", "auditor", PASSWORD)
    http = service.app.test_client()
    http.environ_base["wsgi.url_scheme"] = "https"
    response = sign_in(http, next_page="/portal/entries?verdict=warning")
    assert response.status_code == 302
    assert response.headers["Location"] == "/portal/entries?verdict=warning"
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-al_session=")
    )
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    overview = http.get("/portal/")
    assert overview.status_code == 200
    csrf = csrf_of(overview.get_data(as_text=True))
    assert http.post("/portal/logout", data={"csrf": "wrong"}).status_code == 400
    assert http.post("/portal/logout", data={"csrf": csrf}).status_code == 302
    assert http.get("/portal/").status_code == 302  # signed out
    # the old cookie is dead on the server too, not just deleted in this browser
    other = service.app.test_client()
    other.environ_base["wsgi.url_scheme"] = "https"
    other.set_cookie("__Host-al_session", token, domain="localhost")
    assert other.get("/portal/").status_code == 302


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "/api/v1/tree",
        "/portal/\r\nSet-Cookie: x=1",  # CR/LF in the Location header was a 500
        "/portal/entries\n",
    ],
)
def test_no_open_redirect_after_sign_in(service, target) -> None:
    with session_scope(service.runtime.sessions) as session:
        add_user(session, "ada", "auditor", PASSWORD)
    http = service.app.test_client()
    http.environ_base["wsgi.url_scheme"] = "https"
    assert sign_in(http, next_page=target).headers["Location"] == "/portal/"


def test_bad_sign_ins(service) -> None:
    with session_scope(service.runtime.sessions) as session:
        add_user(session, "ada", "auditor", PASSWORD)
    http = service.app.test_client()
    http.environ_base["wsgi.url_scheme"] = "https"
    wrong = sign_in(http, password="not the password")
    assert wrong.status_code == 401
    assert "Unknown name or wrong password." in wrong.get_data(as_text=True)
    forged = http.post("/portal/login", data={"csrf": "x", "name": "ada", "password": PASSWORD})
    assert forged.status_code == 400  # no matching login cookie
    for n in range(5):
        sign_in(http, password=f"wrong {n}")
    limited = sign_in(http)  # the right password, too late
    assert limited.status_code == 429
    assert "Too many failed sign-ins" in limited.get_data(as_text=True)


def test_a_browser_that_signed_in_before_is_not_locked_out_by_failures_elsewhere(service) -> None:
    """Regression (issue #10): five failed sign-ins from one address locked the account for
    everybody. Now a known browser (device cookie) signs in whatever others tried."""
    with session_scope(service.runtime.sessions) as session:
        add_user(session, "root-admin", "admin", PASSWORD)
    mine = service.app.test_client()
    mine.environ_base["wsgi.url_scheme"] = "https"
    first = sign_in(mine, name="root-admin")
    assert first.status_code == 302
    device = next(
        c for c in first.headers.getlist("Set-Cookie") if c.startswith("__Host-al_device=")
    )
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in device, device
    mine.post("/portal/logout", data={"csrf": csrf_of(mine.get("/portal/").get_data(as_text=True))})
    attacker = service.app.test_client()
    attacker.environ_base["wsgi.url_scheme"] = "https"
    for n in range(12):  # from the same address, even: the test client has one
        sign_in(attacker, name="root-admin", password=f"guess {n}")
    assert sign_in(attacker, name="root-admin").status_code == 429  # unknown browsers wait
    assert sign_in(mine, name="root-admin").status_code == 302  # the known one does not


def test_every_page_has_a_strict_content_security_policy(portal) -> None:
    portal.fresh()
    publish(portal)
    for path in (
        "/portal/",
        "/portal/entries",
        "/portal/entries/7",
        "/portal/checkpoints",
        "/portal/login",
    ):
        response = portal.browser.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in response.get_data(as_text=True)  # no inline script at all


def test_an_empty_ledger_reads_well(portal) -> None:
    overview = page(portal, "/portal/")
    assert "none yet" in overview
    assert "No rejections recorded." in overview
    with portal.runtime.sessions() as session:
        session.execute(text("SELECT 1"))
    entries = page(portal, "/portal/entries?kind=attestation")
    assert "No entry matches these filters." in entries
    assert "No signed checkpoint" in page(portal, "/portal/checkpoints") or "No checkpoint" in page(
        portal, "/portal/checkpoints"
    )


def test_overview_counts_and_rejections(portal) -> None:
    for _ in range(3):
        portal.fresh()
    bad = portal.submit(portal.document(nonce=portal.challenge(), result=b"other"))  # unbound
    assert bad.json["verdict"]["status"] == "contraindicated"
    publish(portal)
    overview = page(portal, "/portal/")
    assert "signature verifies" in overview
    assert "affirming: 3" in overview
    assert "contraindicated: 1" in overview
    assert "result_binding_mismatch" in overview
    assert f'href="/portal/entries/{bad.json["entry"]["index"]}"' in overview
    assert "inference-v1" in overview  # most active image
    assert page(portal, "/portal/?range=30d").count("<rect") > 1
    assert "range must be one of" in page(portal, "/portal/?range=forever", 400)


def test_entry_list_filters_pages_and_permalinks(portal) -> None:
    for _ in range(3):
        portal.fresh()
    portal.fresh("worker-2")
    listing = page(portal, "/portal/entries?worker=worker-2")
    assert listing.count("<tr>") == 2  # header + one row
    assert "Permalink to this view" in listing
    assert 'href="/portal/entries?worker=worker-2"' in listing
    ascending = page(portal, "/portal/entries?kind=attestation&sort=index-asc")
    shown = [int(i) for i in re.findall(r'href="/portal/entries/(\d+)"', ascending)]
    assert len(shown) == 4
    assert shown == sorted(shown)
    descending = page(portal, "/portal/entries?kind=attestation")
    assert [int(i) for i in re.findall(r'href="/portal/entries/(\d+)"', descending)] == shown[::-1]
    bad = page(portal, "/portal/entries?pcr0=nothex", 400)
    assert "The filter <strong>pcr0</strong> cannot be used" in bad
    assert "Traceback" not in bad
    assert "cursor" in page(portal, "/portal/entries?after=banana", 400)


def test_entry_detail_shows_the_document_chain_policy_and_binding(portal) -> None:
    receipt = portal.fresh()
    publish(portal)
    index = receipt.json["entry"]["index"]
    detail = page(portal, f"/portal/entries/{index}")
    nsm = portal.nsm
    evidence = portal.browser.get(f"/portal/entries/{index}/evidence.cbor").data
    _, document = parse_evidence(evidence)
    assert str(escape(document.module_id)) in detail
    assert nsm.pcrs[0].hex() in detail
    assert "matches</span> inference-v1" in detail
    assert "cabundle[0]" in detail
    assert detail.count('class="badge ok">valid</span>') >= 2
    assert "holds</span> the document" in detail
    assert 'revision <a href="/portal/entries/' in detail
    for download in ("entry.json", "evidence.cbor", "proof.tlog", "proof.json"):
        assert f"/portal/entries/{index}/{download}" in detail
    assert 'id="browser-check"' in detail
    assert "data-proof-url" in detail


def test_an_empty_public_key_is_shown_as_present_and_empty(portal) -> None:
    """Issue #10: a zero-length public_key (real AWS hardware wrote one) is accepted and is
    not shown as absent."""
    receipt = portal.submit(portal.document(nonce=portal.challenge(), public_key=b""))
    assert receipt.json["verdict"]["status"] == "affirming", receipt.json
    detail = page(portal, f"/portal/entries/{receipt.json['entry']['index']}")
    found = re.search(r"<dt>public_key</dt><dd>(.*?)</dd>", detail)
    assert found is not None
    assert "present, empty (0 bytes)" in found.group(1)


def test_a_pcr_mismatch_is_highlighted_with_the_expected_value(portal) -> None:
    reference = portal.nsm.pcrs[1]
    with session_scope(portal.runtime.sessions) as session:
        portal.runtime.policies.add_image(
            session, "inference-v2", {0: portal.nsm.pcrs[0], 1: bytes(48), 2: portal.nsm.pcrs[2]}
        )
        portal.runtime.policies.deny(session, "worker-1", "inference-v1")
        portal.runtime.policies.allow(session, "worker-1", "inference-v2")
    receipt = portal.fresh()
    assert receipt.json["verdict"]["status"] == "contraindicated"
    detail = page(portal, f"/portal/entries/{receipt.json['entry']['index']}")
    assert 'class="pcr-mismatch"' in detail
    assert f'inference-v2 expects <code class="hash">{bytes(48).hex()}</code>' in detail
    assert reference.hex() in detail


def test_reverify_runs_the_verifier_again_and_compares(portal) -> None:
    receipt = portal.fresh()
    index = receipt.json["entry"]["index"]
    detail = page(portal, f"/portal/entries/{index}")
    response = portal.browser.post(
        f"/portal/entries/{index}/reverify", data={"csrf": csrf_of(detail)}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body[:1000]
    assert "Re-verified now, as of " in body
    assert "The verdicts agree." in body
    forged = portal.browser.post(f"/portal/entries/{index}/reverify", data={"csrf": "forged"})
    assert forged.status_code == 400


def test_reverify_judges_at_the_instant_the_service_did(portal) -> None:
    """Issue #10: re-verify judged as of the document's own timestamp, so a document that was
    too old when submitted, or whose chain had expired, "passed" and the verdicts differed.
    It judges at the recorded verified_at now: the same verdict, for the same reasons."""
    from datetime import timedelta

    from tests.support import SIM_AT

    with session_scope(portal.runtime.sessions) as session:
        portal.runtime.policies.set_options(session, max_age_seconds=30)
    # valid certificates at the document's time, but 45 s old when submitted
    stale = portal.document(nonce=portal.challenge(), timestamp=SIM_AT - timedelta(seconds=45))
    receipts = [portal.submit(stale)]
    # a document from within its leaf's three hours, submitted after they ended
    portal.runtime.clock = lambda: SIM_AT + timedelta(hours=4)
    late = portal.document(nonce=portal.challenge(), timestamp=SIM_AT + timedelta(minutes=1))
    receipts.append(portal.submit(late))
    portal.runtime.clock = lambda: NOW  # the portal session is judged by the clock too
    for receipt, code in zip(receipts, ("document_too_old", "expired"), strict=True):
        assert [r["code"] for r in receipt.json["verdict"]["reasons"]] == [code]
        index = receipt.json["entry"]["index"]
        detail = page(portal, f"/portal/entries/{index}")
        response = portal.browser.post(
            f"/portal/entries/{index}/reverify", data={"csrf": csrf_of(detail)}
        )
        body = response.get_data(as_text=True)
        assert response.status_code == 200, body[:1000]
        assert "The verdicts agree." in body, code
        assert f"<li><code>{code}</code> " in body  # the re-verified reason, with its message


def test_downloads_are_what_they_claim(portal) -> None:
    from ledger.checkpoint import CheckpointBody
    from ledger.merkle import leaf_hash, verify_inclusion
    from ledger.note import open_note

    receipt = portal.fresh()
    index = receipt.json["entry"]["index"]
    assert (
        portal.browser.get(f"/portal/entries/{index}/proof.json").status_code == 404
    )  # no checkpoint yet
    publish(portal)
    entry_bytes = portal.browser.get(f"/portal/entries/{index}/entry.json").data
    assert leaf_hash(entry_bytes).hex() == receipt.json["entry"]["leaf_hash"]
    proof = json.loads(portal.browser.get(f"/portal/entries/{index}/proof.json").data)
    opened = open_note(proof["checkpoint"], [portal.runtime.log_key])
    body = CheckpointBody.parse(opened.text)
    verify_inclusion(
        leaf_hash(entry_bytes),
        index,
        body.tree_size,
        [bytes.fromhex(h) for h in proof["hashes"]],
        body.root_hash,
    )
    tlog = portal.browser.get(f"/portal/entries/{index}/proof.tlog").get_data(as_text=True)
    assert tlog.startswith(f"c2sp.org/tlog-proof@v1\nindex {index}\n")
    evidence = portal.browser.get(f"/portal/entries/{index}/evidence.cbor")
    assert evidence.mimetype == "application/cbor"
    assert "attachment" in evidence.headers["Content-Disposition"]
    assert portal.browser.get("/portal/log-key.txt").get_data(as_text=True).strip() == str(
        portal.runtime.log_key
    )
    note = portal.browser.get(f"/portal/checkpoints/{body.tree_size}.txt").get_data(as_text=True)
    assert note == proof["checkpoint"]


def test_checkpoints_and_consistency(portal) -> None:
    portal.fresh()
    publish(portal)
    with portal.runtime.sessions() as session:
        first = session.execute(text("SELECT max(tree_size) FROM ledger_checkpoints")).scalar()
    portal.fresh()
    portal.fresh()
    publish(portal)
    second = first + 2
    listing = page(portal, "/portal/checkpoints")
    assert listing.count('class="badge ok">verifies</span>') == 2
    proof_page = page(portal, f"/portal/consistency?first={first}&second={second}")
    assert "the proof verifies" in proof_page
    download = json.loads(
        portal.browser.get(f"/portal/consistency?first={first}&second={second}&format=json").data
    )
    assert download["first"] == first
    assert download["second"] == second
    assert "need 0 &lt; first &lt;= second" in page(
        portal, f"/portal/consistency?first={second}&second={first}", 400
    )
    assert "no signed checkpoint has tree size 3" in page(
        portal, "/portal/consistency?first=3&second=4", 404
    )


@pytest.mark.parametrize(
    "path", ["/portal/entries/99999", "/portal/entries/99999/proof.json", "/portal/nothing"]
)
def test_unknown_things_are_clear_404_pages(portal, path) -> None:
    body = page(portal, path, 404)
    assert "<h1>Not found</h1>" in body
    assert "Traceback" not in body


def test_numbers_a_database_cannot_hold_are_refused_not_500(portal) -> None:
    """Found by schemathesis on the API, the same in the portal: "²" passes str.isdigit() but
    not int(), and a size or index above 2**63 - 1 made the query itself fail (500)."""
    publish(portal)
    for path, status in (
        ("/portal/checkpoints?before=%C2%B2", 400),
        ("/portal/checkpoints?before=9999999999999999999", 400),
        ("/portal/consistency?first=%C2%B2&second=1", 400),
        ("/portal/consistency?first=1&second=9999999999999999999", 400),
        ("/portal/entries/0/proof.json?tree_size=%C2%B2", 400),
        ("/portal/entries/0/proof.json?tree_size=9999999999999999999", 400),
        ("/portal/entries/9223372036854775808", 404),
        ("/portal/checkpoints/99999999999999999999.txt", 404),  # was a 500
        ("/portal/entries?worker=a%00b", 400),  # PostgreSQL text cannot hold NUL
        ("/portal/entries?until=9999-12-31T23:59:59-23:00", 400),  # past year 9999 in UTC
    ):
        assert portal.browser.get(path).status_code == status, path


def hostile_document(portal, *, module_id: str, user_data: bytes, nonce: bytes) -> bytes:
    fields = portal.nsm.payload_fields(user_data=user_data, nonce=nonce, timestamp=NOW)
    fields["module_id"] = module_id
    return portal.nsm.sign(encode_payload(fields))


def test_hostile_evidence_fields_are_shown_escaped(portal) -> None:
    script = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
    document = hostile_document(
        portal, module_id=script, user_data=script.encode(), nonce=portal.challenge()
    )
    receipt = portal.submit(document)
    assert receipt.status_code == 201, receipt.json
    index = receipt.json["entry"]["index"]
    publish(portal)
    for path in (f"/portal/entries/{index}", "/portal/entries", "/portal/"):
        body = page(portal, path)
        assert "<script>alert" not in body
        assert "<img src=x" not in body
        assert "onerror=alert" not in body or "onerror=alert(1)&gt;" in body
    detail = page(portal, f"/portal/entries/{index}")
    assert str(escape(script)) in detail  # shown, as text
    listing = page(portal, "/portal/entries?" + urlencode({"module": script}))
    assert f'href="/portal/entries/{index}"' in listing  # found by its hostile module_id
    assert "<script>alert" not in listing


def test_administrators_manage_accounts_and_auditors_cannot(service) -> None:
    with session_scope(service.runtime.sessions) as session:
        add_user(session, "root-admin", "admin", PASSWORD)
        add_user(session, "ada", "auditor", PASSWORD)
    ada = service.app.test_client()
    ada.environ_base["wsgi.url_scheme"] = "https"
    assert sign_in(ada).status_code == 302
    assert ada.get("/portal/accounts").status_code == 403
    ada_csrf = csrf_of(ada.get("/portal/").get_data(as_text=True))
    assert "Accounts</a>" not in ada.get("/portal/").get_data(as_text=True)
    refused = ada.post("/portal/accounts/root-admin/disable", data={"csrf": ada_csrf})
    assert refused.status_code == 403

    admin = service.app.test_client()
    admin.environ_base["wsgi.url_scheme"] = "https"
    assert sign_in(admin, name="root-admin").status_code == 302
    listing = admin.get("/portal/accounts").get_data(as_text=True)
    assert "Accounts</a>" in listing
    assert re.search(r"<td>ada</td>\s*<td>auditor</td>", listing)
    csrf = csrf_of(listing)
    assert admin.post("/portal/accounts/ada/disable", data={"csrf": "nope"}).status_code == 400
    assert admin.post("/portal/accounts/root-admin/disable", data={"csrf": csrf}).status_code == 409
    assert admin.post("/portal/accounts/nobody/disable", data={"csrf": csrf}).status_code == 409
    assert admin.post("/portal/accounts/ada/promote", data={"csrf": csrf}).status_code == 404
    done = admin.post("/portal/accounts/ada/disable", data={"csrf": csrf})
    assert done.status_code == 303
    assert "ada is disabled" in admin.get(done.headers["Location"]).get_data(as_text=True)
    assert ada.get("/portal/").status_code == 302  # her session ended with the account
    assert sign_in(ada).status_code == 401
    assert admin.post("/portal/accounts/ada/enable", data={"csrf": csrf}).status_code == 303
    assert sign_in(ada).status_code == 302
    assert admin.post("/portal/accounts/ada/sign-out", data={"csrf": csrf}).status_code == 303
    assert ada.get("/portal/").status_code == 302
    with service.runtime.sessions() as session:
        rows = session.execute(
            text("SELECT data FROM ledger_entries WHERE kind = 'access' ORDER BY idx")
        ).all()
    records = [json.loads(row[0]) for row in rows]
    assert [(r["action"], r["user"], r.get("by")) for r in records[-3:]] == [
        ("user_disabled", "ada", "root-admin"),
        ("user_enabled", "ada", "root-admin"),
        ("sessions_ended", "ada", "root-admin"),
    ]
