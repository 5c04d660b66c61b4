"""``attest-ledger db upgrade|downgrade|current``: the schema, through alembic only.

Nothing migrates implicitly: the service refuses to start on an outdated schema and says to
run ``attest-ledger db upgrade``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from attest_ledger import database
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.settings import Settings
from ledger.db import make_engine

__all__ = ["register", "schema_is_current"]


def register(commands: Any) -> None:
    parser = commands.add_parser("db", help="migrate the database schema")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="migrate to the newest schema (or REVISION)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=run_upgrade)
    downgrade = actions.add_parser("downgrade", help="migrate back to REVISION")
    downgrade.add_argument("revision")
    downgrade.set_defaults(handler=run_downgrade)
    current = actions.add_parser("current", help="print the current and the newest revision")
    current.set_defaults(handler=run_current)


def run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = database.database_url(settings)
    try:
        database.upgrade(url, args.revision)
    except OperationalError as exc:
        print(f"attest-ledger db upgrade: cannot reach the database: {exc.orig}", file=sys.stderr)
        return EXIT_USAGE
    print(f"schema at {current_revision(url)}", file=sys.stderr)
    return EXIT_OK


def run_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = database.database_url(settings)
    database.downgrade(url, args.revision)
    print(f"schema at {current_revision(url)}", file=sys.stderr)
    return EXIT_OK


def run_current(args: argparse.Namespace, settings: Settings) -> int:
    url = database.database_url(settings)
    print(f"current {current_revision(url)}, newest {head_revision()}")
    return EXIT_OK


def head_revision() -> str:
    head = ScriptDirectory.from_config(database.alembic_config("")).get_current_head()
    return head or "none"


def current_revision(url: str) -> str:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() or "none"
    finally:
        engine.dispose()


def schema_is_current(url: str) -> bool:
    return current_revision(url) == head_revision()
