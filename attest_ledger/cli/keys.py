"""``attest-ledger keys init|show``: the ledger's checkpoint-signing key."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.settings import Settings
from ledger.errors import InvalidNote
from ledger.keys import KeyFileError, create_signing_key, load_signing_key

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser("keys", help="create or show the ledger's signing key")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = actions.add_parser(
        "init",
        help="create the signing key (mode 0600) and print the verifier key",
        description="Create the Ed25519 key that signs checkpoints, at ATTEST_LEDGER_KEY "
        "(default var/ledger.key), and print its public verifier key in C2SP signed-note "
        "form. An existing key is never replaced.",
    )
    init.add_argument(
        "--origin", help="the log's origin, which names the key (default ATTEST_LEDGER_ORIGIN)"
    )
    init.add_argument(
        "--if-missing", action="store_true", help="succeed quietly if the key already exists"
    )
    init.set_defaults(handler=run_init)
    show = actions.add_parser("show", help="print the verifier key of the existing signing key")
    show.set_defaults(handler=run_show)


def run_init(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.ledger_key_path
    if args.if_missing and path.exists():
        return run_show(args, settings)
    try:
        signer = create_signing_key(path, args.origin or settings.ledger_origin)
    except (KeyFileError, InvalidNote) as exc:
        print(f"attest-ledger keys init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"created {path} (mode 0600); the verifier key, for auditors:", file=sys.stderr)
    print(signer.verifier())
    return EXIT_OK


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    try:
        signer = load_signing_key(settings.ledger_key_path)
    except KeyFileError as exc:
        print(f"attest-ledger keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(signer.verifier())
    return EXIT_OK
