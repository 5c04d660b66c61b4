"""The ``attest-ledger`` command line: one entry point, one module per command here.

Exit codes (attest_ledger.exit_codes) are shared by every subcommand: 0 success, 1 the
evidence or ledger was checked and rejected, 2 usage, configuration or I/O error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from attest_ledger.cli import (
    audit,
    bundle,
    checkpoint,
    clients,
    collateral,
    db,
    demo,
    keys,
    policy,
    serve,
    tpm,
    users,
    verify,
    worker,
)
from attest_ledger.exit_codes import EXIT_OK
from attest_ledger.settings import Settings

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attest-ledger",
        description="Verify attestation evidence and keep an auditable ledger of verdicts.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        verify,
        serve,
        worker,
        demo,
        db,
        keys,
        clients,
        users,
        policy,
        checkpoint,
        audit,
        bundle,
        collateral,
        tpm,
    ):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args, settings or Settings.from_env())
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours. Point stdout at devnull so
        # the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code
