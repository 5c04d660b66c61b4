"""A separate appending (or checkpointing) process for the concurrency and crash tests.

    python -m tests.ledger.appender URL --worker NAME [--batches N] [--batch-size K]
    python -m tests.ledger.appender URL --publish SKEY_FILE [--rounds N]

Appending, it prints ``ack <index> <evidence>`` for every entry, only after the transaction
holding it has committed: those lines are the acknowledgements a crash must not lose.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ledger.append import append
from ledger.checkpoints import publish_checkpoint
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.entry import NewEntry
from ledger.errors import CheckpointConflict
from ledger.note import NoteSigner


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--worker", default="w")
    parser.add_argument("--batches", type=int, default=0, help="0: until killed")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--publish", type=Path, help="publish checkpoints with this key file")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    factory = make_session_factory(make_engine(args.url, pool_size=1))

    if args.publish:
        signer = NoteSigner.parse(args.publish.read_text())
        conflicts = 0
        for _ in range(args.rounds):
            try:
                with session_scope(factory) as session:
                    checkpoint = publish_checkpoint(session, signer)
                print(f"checkpoint {checkpoint.tree_size}", flush=True)
            except CheckpointConflict:
                conflicts += 1
            time.sleep(0.01)
        print(f"conflicts {conflicts}", flush=True)
        return

    n = 0
    batch = 0
    while args.batches == 0 or batch < args.batches:
        evidence = [f"{args.worker}-{n + i}".encode() for i in range(args.batch_size)]
        entries = [
            NewEntry.from_record({"kind": "test", "worker": args.worker, "n": n + i}, evidence=e)
            for i, e in enumerate(evidence)
        ]
        with session_scope(factory) as session:
            results = append(session, entries)
        for result, value in zip(results, evidence, strict=True):
            print(f"ack {result.index} {value.decode()}", flush=True)
        n += args.batch_size
        batch += 1


if __name__ == "__main__":
    main()
