"""``attest-ledger checkpoint``: sign and publish a checkpoint of the current tree now."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from attest_ledger import database
from attest_ledger.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from attest_ledger.settings import Settings
from ledger.checkpoints import publish_checkpoint
from ledger.db import make_session_factory, session_scope
from ledger.errors import LedgerError
from ledger.keys import KeyFileError, load_signing_key

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "checkpoint", help="sign and publish a checkpoint of the current tree; print it"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        signer = load_signing_key(settings.ledger_key_path)
    except KeyFileError as exc:
        print(f"attest-ledger checkpoint: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = database.engine_for(settings, pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            checkpoint = publish_checkpoint(session, signer)
    except LedgerError as exc:
        print(f"attest-ledger checkpoint: [{exc.code}] {exc.message}", file=sys.stderr)
        return EXIT_REJECTED
    finally:
        engine.dispose()
    sys.stdout.write(checkpoint.note)
    return EXIT_OK
