"""``attest-ledger workers|readers add|revoke|list``: API clients and their tokens."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from attest_ledger import database
from attest_ledger.clients import ClientError, create_client, list_clients, revoke_client
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.settings import Settings
from ledger.db import make_session_factory, session_scope

__all__ = ["register"]


def register(commands: Any) -> None:
    for group, role in (("workers", "worker"), ("readers", "reader")):
        parser = commands.add_parser(group, help=f"manage {role} clients and their API tokens")
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help=f"add a {role}; its token is printed once")
        add.add_argument("name")
        add.add_argument("--token-file", help="also write the token to this file (mode 0600)")
        add.set_defaults(handler=run_add, role=role)
        revoke = actions.add_parser("revoke", help=f"revoke a {role}'s token for good")
        revoke.add_argument("name")
        revoke.set_defaults(handler=run_revoke, role=role)
        listing = actions.add_parser("list", help=f"list {group}")
        listing.set_defaults(handler=run_list, role=role)


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            token = create_client(session, args.name, args.role)
    except ClientError as exc:
        print(f"attest-ledger {args.role}s add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    if args.token_file:
        import os  # noqa: PLC0415

        descriptor = os.open(args.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token + "\n")
    print(
        f"{args.role} {args.name!r} added; its token (shown once, only a hash is kept):",
        file=sys.stderr,
    )
    print(token)
    return EXIT_OK


def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            revoke_client(session, args.name)
    except ClientError as exc:
        print(f"attest-ledger {args.role}s revoke: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    print(f"{args.role} {args.name!r} revoked", file=sys.stderr)
    return EXIT_OK


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            for client in list_clients(session):
                if client.role == args.role:
                    state = (
                        f"revoked {client.revoked_at:%Y-%m-%d %H:%M}"
                        if client.revoked_at
                        else "active"
                    )
                    print(f"{client.name}\t{state}\tadded {client.created_at:%Y-%m-%d %H:%M}")
    finally:
        engine.dispose()
    return EXIT_OK
