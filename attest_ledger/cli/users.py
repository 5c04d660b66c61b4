"""``attest-ledger users add|passwd|disable|enable|list``: auditor portal accounts.

Passwords are read from the terminal (asked twice), or from standard input with
``--password-stdin`` (one line), never from the command line where ``ps`` would show them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from attest_ledger import database
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.settings import Settings
from attest_ledger.users import ROLES, UserError, add_user, list_users, set_disabled, set_password
from ledger.db import make_session_factory, session_scope

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser("users", help="manage auditor portal accounts")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user (asks for a password)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="auditor")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(handler=run_add)
    passwd = actions.add_parser("passwd", help="set a user's password (signs them out)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(handler=run_passwd)
    for action, disabled in (("disable", True), ("enable", False)):
        toggle = actions.add_parser(
            action, help="stop a user signing in (and end their sessions)" if disabled else
            "let a disabled user sign in again",
        )  # fmt: skip
        toggle.add_argument("name")
        toggle.set_defaults(handler=run_toggle, disabled=disabled)
    listing = actions.add_parser("list", help="list users")
    listing.set_defaults(handler=run_list)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def _run(args: argparse.Namespace, settings: Settings, what: str, change: Any) -> int:
    try:
        engine = database.engine_for(settings, pool_size=1)
        try:
            with session_scope(make_session_factory(engine)) as session:
                change(session)
        finally:
            engine.dispose()
    except UserError as exc:
        print(f"attest-ledger users {args.action}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(what, file=sys.stderr)
    return EXIT_OK


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        password = _password(args)
    except UserError as exc:
        print(f"attest-ledger users add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(
        args,
        settings,
        f"{args.role} {args.name!r} added",
        lambda session: add_user(session, args.name, args.role, password),
    )


def run_passwd(args: argparse.Namespace, settings: Settings) -> int:
    try:
        password = _password(args)
    except UserError as exc:
        print(f"attest-ledger users passwd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(
        args,
        settings,
        f"password of {args.name!r} changed; their sessions are ended",
        lambda session: set_password(session, args.name, password),
    )


def run_toggle(args: argparse.Namespace, settings: Settings) -> int:
    return _run(
        args,
        settings,
        f"{args.name!r} {'disabled' if args.disabled else 'enabled'}",
        lambda session: set_disabled(session, args.name, disabled=args.disabled),
    )


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            for user in list_users(session):
                state = (
                    f"disabled {user.disabled_at:%Y-%m-%d %H:%M}" if user.disabled_at else "active"
                )
                print(f"{user.name}\t{user.role}\t{state}")
    finally:
        engine.dispose()
    return EXIT_OK
