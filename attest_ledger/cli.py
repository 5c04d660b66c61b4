"""The ``attest-ledger`` command line: one entry point, one subcommand per job.

Exit codes (attest_ledger.exit_codes) are shared by every subcommand: 0 success, 1 the
evidence or ledger was checked and rejected, 2 usage, configuration or I/O error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from attest_ledger import (
    audit_command,
    bundle_command,
    checkpoint_command,
    clients_command,
    db_command,
    demo_command,
    keys_command,
    policy_command,
    serve_command,
    users_command,
    verify_command,
    worker_command,
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
        verify_command,
        serve_command,
        worker_command,
        demo_command,
        db_command,
        keys_command,
        clients_command,
        users_command,
        policy_command,
        checkpoint_command,
        audit_command,
        bundle_command,
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
