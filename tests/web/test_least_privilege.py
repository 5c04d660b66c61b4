"""The README's least-privilege deployment: the service runs under a role that may append and
keep its books but can change nothing in the ledger; administration runs as the owner."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, make_url, pool, text

from attest_ledger.runtime import Runtime
from attest_ledger.users import add_user
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from tests.web.conftest import NOW, build_service
from tests.web.test_portal import PASSWORD, csrf_of, sign_in
from web import create_app

pytestmark = pytest.mark.db

GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT ON ledger_entries, ledger_evidence, ledger_nodes, ledger_checkpoints "
    "TO {role}",
    "GRANT SELECT, UPDATE ON ledger_sequencer, ledger_latest_checkpoint TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON challenges TO {role}",
    "GRANT SELECT, INSERT ON idempotency_keys TO {role}",
    "GRANT SELECT ON api_clients, policy_images, policy_settings, worker_images, alembic_version "
    "TO {role}",
    # the portal: sign-in keeps sessions and failures, may rehash a password, keeps the counts
    "GRANT SELECT, UPDATE (password_hash, disabled_at) ON portal_users TO {role}",
    "GRANT SELECT, INSERT, DELETE ON portal_sessions, portal_login_failures, portal_devices "
    "TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON ledger_hourly_counts TO {role}",
    "GRANT SELECT, UPDATE ON ledger_stats_state TO {role}",
    "GRANT USAGE ON SEQUENCE portal_login_failures_id_seq TO {role}",
)


def test_the_service_runs_under_the_documented_grants(
    db_url, databases, tmp_path, sim_pki, sim_nsm
) -> None:
    owner = build_service(db_url, tmp_path, sim_pki, sim_nsm)  # tokens and policy, as the owner
    with session_scope(owner.runtime.sessions) as session:
        add_user(session, "ada", "auditor", PASSWORD)  # accounts are made by an administrator
        add_user(session, "root-admin", "admin", PASSWORD)
    owner.runtime.close()
    role = f"service_app_{databases.run}"
    admin = create_engine(db_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'app'"))
        for grant in GRANTS:
            connection.execute(text(grant.format(role=role)))
    app_url = (
        make_url(db_url).set(username=role, password="app").render_as_string(hide_password=False)
    )
    from dataclasses import replace

    runtime = Runtime.build(replace(owner.runtime.settings, database_url=app_url), publish=False)
    runtime.clock = lambda: NOW
    service = owner
    service.runtime = runtime
    service.app = create_app(runtime)
    service.http = service.app.test_client()
    try:
        first = service.fresh()
        assert first.status_code == 201, first.json
        key = service.submit(
            service.document(nonce=service.challenge(), result=b"k"), result=b"k", key="k-1"
        )
        assert key.status_code == 201, key.json
        replay = service.submit(
            service.document(nonce=service.challenge(), result=b"k"), result=b"k", key="k-1"
        )
        assert replay.status_code == 409  # same key, another request: the books were kept
        with runtime.sessions() as session:
            publish_checkpoint(session, runtime.signer)
            session.commit()
        index = first.json["entry"]["index"]
        proof = service.http.get(f"/api/v1/entries/{index}/proof", headers=service.auth("auditor"))
        assert proof.status_code == 200, proof.json
        assert service.http.get("/readyz").status_code == 200
        assert "ledger_tree_size" in service.http.get("/metrics").get_data(as_text=True)
        # the portal: a failed and a good sign-in, the overview (refreshes the counts), a page
        browser = service.app.test_client()
        browser.environ_base["wsgi.url_scheme"] = "https"
        assert sign_in(browser, password="wrong").status_code == 401
        assert sign_in(browser).status_code == 302
        overview = browser.get("/portal/")
        assert overview.status_code == 200, overview.get_data(as_text=True)[:500]
        assert browser.get(f"/portal/entries/{index}").status_code == 200
        csrf = csrf_of(overview.get_data(as_text=True))
        assert browser.post("/portal/logout", data={"csrf": csrf}).status_code == 302
        chief = service.app.test_client()
        chief.environ_base["wsgi.url_scheme"] = "https"
        assert sign_in(chief, name="root-admin").status_code == 302
        csrf = csrf_of(chief.get("/portal/accounts").get_data(as_text=True))
        for action in ("disable", "enable", "sign-out"):
            done = chief.post(f"/portal/accounts/ada/{action}", data={"csrf": csrf})
            assert done.status_code == 303, done.get_data(as_text=True)[:300]
        with runtime.engine.connect() as connection:
            for statement in (
                "UPDATE ledger_entries SET data = data",
                "DELETE FROM idempotency_keys",
                "UPDATE api_clients SET revoked_at = NULL",
                "INSERT INTO policy_images (name) VALUES ('sneaky')",
                "UPDATE portal_users SET role = 'admin'",  # only a password hash or disabling
                "INSERT INTO portal_users (name, role, password_hash) VALUES ('x', 'admin', 'x')",
            ):
                with pytest.raises(Exception, match="permission denied"):
                    connection.execute(text(statement))
                connection.rollback()
    finally:
        runtime.close()
        with admin.connect() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()
