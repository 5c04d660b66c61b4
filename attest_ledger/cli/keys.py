"""``attest-ledger keys init|show``: the ledger's checkpoint-signing key and the verifier's
EAR-signing key."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from attest_ledger.ear import EarKeyError, EarSigner
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
        help="create the signing keys (mode 0600) and print the verifier key",
        description="Create the Ed25519 key that signs checkpoints, at ATTEST_LEDGER_KEY "
        "(default var/ledger.key), and print its public verifier key in C2SP signed-note "
        "form; and the P-256 key that signs every verdict's EAR, at ATTEST_LEDGER_EAR_KEY "
        "(default var/ear-key.pem), if missing. An existing key is never replaced.",
    )
    init.add_argument(
        "--origin", help="the log's origin, which names the key (default ATTEST_LEDGER_ORIGIN)"
    )
    init.add_argument(
        "--if-missing", action="store_true", help="succeed quietly if the key already exists"
    )
    init.set_defaults(handler=run_init)
    show = actions.add_parser(
        "show",
        help="print the verifier key of the existing signing key, and the EAR key's thumbprint",
    )
    show.set_defaults(handler=run_show)


def run_init(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.ledger_key_path
    try:
        ear, created = EarSigner.load_or_create(settings.ear_key_path)
    except EarKeyError as exc:
        print(f"attest-ledger keys init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if created:
        print(f"created {settings.ear_key_path} (mode 0600), EAR key id {ear.kid}", file=sys.stderr)
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
        ear = EarSigner.load(settings.ear_key_path)
    except (KeyFileError, EarKeyError) as exc:
        print(f"attest-ledger keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(signer.verifier())
    # on stderr: stdout stays the verifier key alone, for --log-key "$(keys show)"
    print(f"EAR key id {ear.kid} ({settings.ear_key_path}), the RFC 7638 thumbprint that "
          "GET /api/v1/ear-keys publishes", file=sys.stderr)  # fmt: skip
    return EXIT_OK
