"""The README's least-privilege deployment: the service runs under a role that may append and
keep its books but can change nothing in the ledger; administration runs as the owner."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, make_url, pool, text

from attest_ledger.runtime import Runtime
from ledger.checkpoints import publish_checkpoint
from tests.web.conftest import NOW, build_service
from web import create_app

pytestmark = pytest.mark.db

GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT ON ledger_entries, ledger_evidence, ledger_nodes, ledger_checkpoints "
    "TO {role}",
    "GRANT SELECT, UPDATE ON ledger_sequencer, ledger_latest_checkpoint TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON challenges TO {role}",
    "GRANT SELECT, INSERT ON idempotency_keys TO {role}",
    "GRANT SELECT ON api_clients, policy_images, policy_settings, worker_images, alembic_version "
    "TO {role}",
)


def test_the_service_runs_under_the_documented_grants(
    db_url, databases, tmp_path, sim_pki, sim_nsm
) -> None:
    owner = build_service(db_url, tmp_path, sim_pki, sim_nsm)  # tokens and policy, as the owner
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
        with runtime.engine.connect() as connection:
            for statement in (
                "UPDATE ledger_entries SET data = data",
                "DELETE FROM idempotency_keys",
                "UPDATE api_clients SET revoked_at = NULL",
                "INSERT INTO policy_images (name) VALUES ('sneaky')",
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
