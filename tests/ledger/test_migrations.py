"""The migrations are the schema: they match the models, and every revision goes both ways."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool, text

from attest_ledger.database import alembic_config, downgrade, upgrade
from attest_ledger.models import ServiceBase
from ledger.append import append
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.models import Base
from tests.ledger.test_append import entry

pytestmark = pytest.mark.db


@pytest.fixture
def empty_url(databases):
    url = databases.empty()
    yield url
    databases.drop(url)


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(""))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_models_match_the_migrations(empty_url) -> None:
    upgrade(empty_url)
    engine = create_engine(empty_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_server_default": True})
        differences = compare_metadata(context, [Base.metadata, ServiceBase.metadata])
    engine.dispose()
    assert differences == []


def test_every_revision_upgrades_and_downgrades(empty_url) -> None:
    chain = revisions()
    assert chain[0] == "0001"
    for index, revision in enumerate(chain):
        upgrade(empty_url, revision)
        previous = chain[index - 1] if index else "base"
        downgrade(empty_url, previous)
        upgrade(empty_url, revision)
    engine = create_engine(empty_url, poolclass=pool.NullPool)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) | set(ServiceBase.metadata.tables) <= tables
    downgrade(empty_url, "base")
    engine = create_engine(empty_url, poolclass=pool.NullPool)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()


def test_upgrading_twice_is_harmless_and_keeps_data(empty_url) -> None:
    upgrade(empty_url)
    engine = make_engine(empty_url)
    with session_scope(make_session_factory(engine)) as session:
        append(session, [entry(1)])
    upgrade(empty_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM ledger_entries")).scalar() == 1
    engine.dispose()


def test_a_role_without_update_or_delete_privileges_can_run_the_ledger(db_url, databases) -> None:
    """The README's least-privilege role: appends and checkpoints work, changes are refused
    by PostgreSQL's privileges even before the triggers."""
    from sqlalchemy import make_url

    from ledger.checkpoints import publish_checkpoint
    from ledger.note import NoteSigner

    role = f"ledger_app_{databases.run}"
    admin = create_engine(db_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'app'"))
        connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        connection.execute(
            text(
                "GRANT SELECT, INSERT ON ledger_entries, ledger_evidence, ledger_nodes, "
                f"ledger_checkpoints TO {role}"
            )
        )
        connection.execute(
            text(f"GRANT SELECT, UPDATE ON ledger_sequencer, ledger_latest_checkpoint TO {role}")
        )
    app_url = (
        make_url(db_url).set(username=role, password="app").render_as_string(hide_password=False)
    )
    app = make_engine(app_url)
    try:
        with session_scope(make_session_factory(app)) as session:
            append(session, [entry(i) for i in range(3)])
            publish_checkpoint(session, NoteSigner.generate("example.com/least-privilege"))
        for statement in ("UPDATE ledger_entries SET data = data", "DELETE FROM ledger_nodes"):
            with app.connect() as connection, pytest.raises(Exception, match="permission denied"):
                connection.execute(text(statement))
    finally:
        app.dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()
