"""``attest-ledger audit``: recompute the whole ledger from its rows; exit 1 on divergence."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from sqlalchemy.orm import Session

from attest_ledger import database
from attest_ledger.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from attest_ledger.settings import Settings
from ledger.audit import audit
from ledger.errors import InvalidNote
from ledger.keys import KeyFileError, load_signing_key
from ledger.note import NoteVerifier

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "audit",
        help="recompute every hash, the chain and every checkpoint from the stored rows",
        description="Recompute leaf hashes, evidence digests, the hash chain, every stored "
        "subtree hash and every checkpoint (signature, root, chain head, consistency) from "
        "the rows. Reports the first divergence by index; exit 0 if none, 1 if one.",
    )
    parser.add_argument(
        "--log-key",
        metavar="VKEY",
        help="the ledger's verifier key (default: the public half of the local signing key)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        verifier = (
            NoteVerifier.parse(args.log_key)
            if args.log_key
            else load_signing_key(settings.ledger_key_path).verifier()
        )
    except (InvalidNote, KeyFileError) as exc:
        print(f"attest-ledger audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = database.engine_for(settings, pool_size=1)
    started = time.monotonic()
    last_print = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if args.quiet or (now - last_print[0] < 1.0 and done != total):
            return
        last_print[0] = now
        rate = done / max(now - started, 1e-9)
        share = 100.0 * done / total if total else 100.0
        print(
            f"\raudit: {done}/{total} entries ({share:5.1f}%), {rate:,.0f} entries/s",
            end="\n" if done == total else "",
            file=sys.stderr,
            flush=True,
        )

    try:
        with engine.connect() as plain:
            snapshot = plain.execution_options(isolation_level="REPEATABLE READ")
            with Session(bind=snapshot) as session, session.begin():
                report = audit(session, verifier, progress=progress)
    finally:
        engine.dispose()
    elapsed = time.monotonic() - started

    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "nodes": report.nodes,
                    "checkpoints": report.checkpoints,
                    "seconds": round(elapsed, 3),
                    "divergence": report.divergence.to_dict() if report.divergence else None,
                },
                indent=2,
            )
        )
    elif report.ok:
        print(
            f"audit passed: {report.entries} entries, {report.nodes} subtree hashes, "
            f"{report.checkpoints} checkpoints, in {elapsed:.1f} s"
        )
    elif (found := report.divergence) is not None:
        where = (
            f"entry {found.index}"
            if found.index is not None
            else f"checkpoint {found.checkpoint}"
            if found.checkpoint is not None
            else "ledger state"
        )
        print(f"audit FAILED at {where} [{found.what}]: {found.message}")
    return EXIT_OK if report.ok else EXIT_REJECTED
