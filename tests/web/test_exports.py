"""Exports over HTTP are bounded (issue #10, item 8): one running export per reader, a few in
the whole service, a size and a time limit; beyond each, a clear refusal at once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from attest_ledger.clients import create_client
from ledger.db import session_scope
from tests.web.conftest import build_service, publish
from tests.web.test_publisher import wait_for

pytestmark = pytest.mark.db


def filled(service, entries: int = 4):
    for n in range(entries):
        result = b"answer %d" % n
        reply = service.submit(
            service.document(nonce=service.challenge(), result=result), result=result
        )
        assert reply.status_code == 201, reply.json
    with session_scope(service.runtime.sessions) as session:
        for name in ("auditor-2", "auditor-3"):
            service.tokens[name] = create_client(session, name, "reader")
    publish(service)
    return service


@pytest.fixture
def exporting(db_url, tmp_path, sim_pki, sim_nsm, request):
    settings = getattr(request, "param", {})
    built = build_service(db_url, tmp_path, sim_pki, sim_nsm, **settings)
    yield filled(built)
    built.runtime.close()


def export(service, who: str = "auditor", query: str = "kind=attestation"):
    return service.http.get(f"/api/v1/export?{query}", headers=service.auth(who))


def advisory_locks(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


class HeldExport:
    """Exports kept busy, deterministically: the evidence table is locked by another
    transaction, so each export waits (holding its slots) until the lock is released."""

    def __init__(self, service, db_url: str, *readers: str) -> None:
        self.engine = create_engine(db_url)
        self.blocker = self.engine.connect()
        self.blocker.begin()
        self.blocker.execute(text("LOCK TABLE ledger_evidence IN ACCESS EXCLUSIVE MODE"))
        self.answers: dict[str, object] = {}
        self.threads = [
            threading.Thread(target=self._run, args=(service, who))
            for who in readers or ("auditor",)
        ]
        self.db_url = db_url

    def _run(self, service, who) -> None:
        self.answers[who] = export(service, who)

    def __enter__(self) -> HeldExport:
        for thread in self.threads:
            thread.start()
        # each holds its reader lock and a slot
        wait_for(lambda: advisory_locks(self.db_url) >= 2 * len(self.threads))
        return self

    def __exit__(self, *exc) -> None:
        self.blocker.rollback()
        self.blocker.close()
        for thread in self.threads:
            thread.join()
        self.engine.dispose()


def test_one_running_export_per_reader(exporting, db_url) -> None:
    with HeldExport(exporting, db_url, "auditor", "auditor-2") as held:  # two slots: both run
        again = export(exporting)
        assert again.status_code == 429
        assert again.json["code"] == "export_in_progress"
        assert again.headers["Retry-After"]
        third = export(exporting, who="auditor-3")
        assert third.status_code == 429  # no slot left for a third reader
        assert third.json["code"] == "exports_busy"
    assert {who: a.status_code for who, a in held.answers.items()} == {
        "auditor": 200,
        "auditor-2": 200,
    }  # both finish once unblocked
    assert advisory_locks(db_url) == 0  # and give their slots back
    assert export(exporting).status_code == 200


@pytest.mark.parametrize("exporting", [{"export_concurrency": 1}], indirect=True)
def test_the_service_builds_only_so_many_exports_at_once(exporting, db_url) -> None:
    with HeldExport(exporting, db_url) as held:
        busy = export(exporting, who="auditor-2")
        assert busy.status_code == 429
        assert busy.json["code"] == "exports_busy"
    assert held.answers["auditor"].status_code == 200
    assert export(exporting, who="auditor-2").status_code == 200


@pytest.mark.parametrize("exporting", [{"export_max_entries": 3}], indirect=True)
def test_an_export_larger_than_the_limit_is_refused(exporting) -> None:
    refused = export(exporting)
    assert refused.status_code == 400
    assert refused.json["code"] == "export_too_large"
    assert "holds 4 entries, more than the 3" in refused.json["detail"]
    assert export(exporting, query="indices=1,2").status_code == 200


@pytest.mark.parametrize("exporting", [{"export_seconds": 0}], indirect=True)
def test_an_export_that_takes_too_long_is_stopped(exporting, db_url) -> None:
    stopped = export(exporting)
    assert stopped.status_code == 503
    assert stopped.json["code"] == "export_timeout"
    assert advisory_locks(db_url) == 0


@pytest.mark.parametrize("exporting", [{"export_concurrency": 1}], indirect=True)
def test_the_portal_export_takes_the_same_slots(exporting, db_url) -> None:
    from attest_ledger.users import add_user
    from tests.web.conftest import PASSWORD, sign_in

    with session_scope(exporting.runtime.sessions) as session:
        add_user(session, "ada", "auditor", PASSWORD)
    browser = exporting.app.test_client()
    browser.environ_base["wsgi.url_scheme"] = "https"
    assert sign_in(browser).status_code == 302
    with HeldExport(exporting, db_url):
        refused = browser.get("/portal/export?kind=attestation")
        assert refused.status_code == 429  # the API export holds the service's one slot
        assert "exports_busy" in refused.get_data(as_text=True)
    assert browser.get("/portal/export?kind=attestation").status_code == 200
