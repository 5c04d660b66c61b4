"""Ledger throughput, proof latency, audit speed and storage, on the embedded PostgreSQL.

Measured in one run, beside the bound:

* appends per second in transactions of 1, 100 and 1000 entries, for realistic entries
  (about 500 bytes of canonical JSON) with and without 4.5 KB of evidence each, and from 32
  concurrent single-entry clients through the in-process batcher;
* the bound: the same bytes COPYed into a bare table (primary key only, no hashing, no tree,
  no secondary indexes) in the same transactions, on the same server;
* inclusion and consistency proof latency p50/p99 at 10 thousand, 100 thousand and 1 million
  entries (read from the database, as the API serves them);
* audit speed over the whole ledger, and storage bytes per entry.

Peers cannot be run here (Tessera, Trillian and Rekor need their own infrastructure); their
published figures are printed as references, labelled as such.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, pool, text
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger.database import start_embedded, upgrade
from ledger.append import append, prepare_all
from ledger.audit import audit
from ledger.batcher import AppendBatcher
from ledger.checkpoints import publish_checkpoint
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.entry import NewEntry, PreparedEntry
from ledger.note import NoteSigner
from ledger.reads import consistency_proof, inclusion_proof

PUBLISHED = [
    ("Tessera POSIX on NVMe (published)", "~10,000/s"),
    ("Tessera on Aurora MySQL (published)", "1,500/s"),
    ("Trillian on MySQL (published)", "400-500/s"),
]
SIZES = (10_000, 100_000, 1_000_000)


def record(i: int) -> dict[str, Any]:
    """About 500 bytes: what an attestation verdict entry carries."""
    return {
        "kind": "attestation",
        "verdict": "affirming" if i % 7 else "contraindicated",
        "reasons": [] if i % 7 else ["pcr_mismatch"],
        "worker": f"worker-{i % 8}",
        "image": "inference-v1.4",
        "pcr0": hashlib.sha384(b"image %d" % (i % 5)).hexdigest(),
        "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
        "result_hash": "sha256:" + hashlib.sha256(b"result %d" % i).hexdigest(),
        "document_time": "2026-11-24T12:00:00.000+00:00",
        "policy": "inference-prod@sha256:" + "ab" * 32,
        "job": {"id": f"job-{i}", "attempt": 1},
        "n": i,
    }


def batches(start: int, count: int, size: int, *, evidence: bool) -> list[list[PreparedEntry]]:
    """Entries prepared before timing, so that only the ledger's own work is measured."""
    out = []
    for first in range(start, start + count, size):
        entries = [
            NewEntry.from_record(record(i), evidence=os.urandom(4500) if evidence else None)
            for i in range(first, min(first + size, start + count))
        ]
        out.append(prepare_all(entries))
    return out


class Server:
    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="attest-ledger-bench-"))
        self.admin_url = start_embedded(self.directory / "pg", cleanup="delete")
        self._admin = create_engine(
            self.admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        self._count = 0

    @contextmanager
    def database(self) -> Iterator[tuple[str, sessionmaker[Session]]]:
        self._count += 1
        name = f"bench_{self._count}"
        with self._admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        url = make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        engine = make_engine(url, pool_size=4)
        try:
            yield url, make_session_factory(engine)
        finally:
            engine.dispose()

    def close(self) -> None:
        self._admin.dispose()


def throughput(factory: sessionmaker[Session], work: list[list[PreparedEntry]]) -> float:
    count = sum(len(batch) for batch in work)
    start = time.perf_counter()
    for batch in work:
        with session_scope(factory) as session:
            append(session, batch)
    return count / (time.perf_counter() - start)


def bound(factory: sessionmaker[Session], work: list[list[PreparedEntry]], offset: int) -> float:
    """The same bytes, COPYed into a bare table in the same transactions."""
    with session_scope(factory) as session:
        session.execute(
            text(
                "CREATE TABLE IF NOT EXISTS bench_bound "
                "(idx bigint PRIMARY KEY, data bytea, evidence bytea)"
            )
        )
    count = sum(len(batch) for batch in work)
    index = offset
    start = time.perf_counter()
    for batch in work:
        with session_scope(factory) as session:
            raw = session.connection().connection.driver_connection
            with (
                raw.cursor() as cursor,
                cursor.copy(
                    "COPY bench_bound (idx, data, evidence) FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["int8", "bytea", "bytea"])
                for entry in batch:
                    copy.write_row((index, entry.data, entry.evidence))
                    index += 1
    return count / (time.perf_counter() - start)


def batcher_throughput(
    factory: sessionmaker[Session], clients: int, per_client: int, offset: int
) -> tuple[float, int]:
    work = [
        [NewEntry.from_record(record(offset + c * per_client + i)) for i in range(per_client)]
        for c in range(clients)
    ]
    batcher = AppendBatcher(factory, max_batch=1000, max_wait=0.002)

    def client(entries: list[NewEntry]) -> None:
        for entry in entries:
            batcher.append(entry, timeout=120)

    threads = [threading.Thread(target=client, args=(entries,)) for entries in work]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    batcher.close()
    return clients * per_client / elapsed, batcher.batches


def latencies(
    factory: sessionmaker[Session], size: int, samples: int, rng: random.Random
) -> dict[str, float]:
    out: dict[str, float] = {}
    with factory() as session:
        for name, make in (
            ("inclusion", lambda: inclusion_proof(session, rng.randrange(size), size)),
            ("consistency", lambda: consistency_proof(session, rng.randrange(1, size), size)),
        ):
            make()  # warm
            times = []
            for _ in range(samples):
                start = time.perf_counter()
                make()
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            out[f"{name}_p50_ms"] = statistics.median(times)
            out[f"{name}_p99_ms"] = times[int(len(times) * 0.99) - 1]
    return out


def storage(factory: sessionmaker[Session]) -> dict[str, dict[str, int]]:
    with factory() as session:
        rows = session.execute(
            text(
                "SELECT relname, pg_table_size(oid), pg_indexes_size(oid) FROM pg_class "
                "WHERE relname LIKE 'ledger_%' AND relkind = 'r'"
            )
        ).all()
    return {name: {"table": table, "indexes": indexes} for name, table, indexes in rows}


def main(
    seconds: float = 3.0, *, sizes: tuple[int, ...] = SIZES, quick: bool = False
) -> dict[str, Any]:
    rng = random.Random(1)
    server = Server()
    signer = NoteSigner.generate("bench.example/log")
    results: dict[str, Any] = {"appends": {}, "bound": {}, "proofs": {}, "published": PUBLISHED}
    scale = 10 if quick else 1
    try:
        with server.database() as (_, factory):
            offset = 0
            for label, size, count, evidence in (
                ("batch 1", 1, 2000 // scale, False),
                ("batch 100", 100, 20_000 // scale, False),
                ("batch 1000", 1000, 50_000 // scale, False),
                ("batch 1 + 4.5 KB evidence", 1, 2000 // scale, True),
                ("batch 100 + 4.5 KB evidence", 100, 10_000 // scale, True),
                ("batch 1000 + 4.5 KB evidence", 1000, 20_000 // scale, True),
            ):
                work = batches(offset, count, size, evidence=evidence)
                results["appends"][label] = throughput(factory, work)
                results["bound"][label] = bound(factory, work, offset)
                offset += count
            rate, commits = batcher_throughput(factory, 32, 1000 // scale, offset)
            results["appends"]["32 clients, batcher"] = rate
            results["batcher_commits"] = commits
            results["evidence_storage"] = storage(factory)

        with server.database() as (_, factory):
            filled = 0
            for size in sizes:
                for batch in batches(filled, size - filled, 1000, evidence=False):
                    with session_scope(factory) as session:
                        append(session, batch)
                filled = size
                with session_scope(factory) as session:
                    publish_checkpoint(session, signer)
                results["proofs"][size] = latencies(factory, size, 200 if quick else 2000, rng)
            start = time.perf_counter()
            with factory() as session:
                report = audit(session, signer.verifier())
            results["audit"] = {
                "entries": report.entries,
                "ok": report.ok,
                "per_second": report.entries / (time.perf_counter() - start),
            }
            results["storage"] = storage(factory)
            results["storage_entries"] = filled
    finally:
        server.close()
    print_table(results)
    return results


def print_table(r: dict[str, Any]) -> None:
    print()
    print("Ledger appends (embedded PostgreSQL 18, one session, ~500-byte entries)")
    print(f"  {'':36} {'ledger/s':>10} {'bound/s':>10} {'ratio':>6}")
    for label, rate in r["appends"].items():
        bound_rate = r["bound"].get(label)
        ratio = f"{rate / bound_rate:6.2f}" if bound_rate else ""
        shown_bound = f"{bound_rate:10,.0f}" if bound_rate else " " * 10
        print(f"  {label:36} {rate:10,.0f} {shown_bound} {ratio}")
    print(f"  (the batcher committed {r['batcher_commits']} transactions)")
    for name, figure in r["published"]:
        print(f"  {name:36} {figure:>10}")
    print("Proof latency, read from the database (ms)")
    print(f"  {'entries':>10} {'incl p50':>9} {'incl p99':>9} {'cons p50':>9} {'cons p99':>9}")
    for size, values in r["proofs"].items():
        print(
            f"  {size:>10,} {values['inclusion_p50_ms']:9.2f} {values['inclusion_p99_ms']:9.2f} "
            f"{values['consistency_p50_ms']:9.2f} {values['consistency_p99_ms']:9.2f}"
        )
    audit_result = r["audit"]
    print(
        f"Audit: {audit_result['entries']:,} entries at {audit_result['per_second']:,.0f} "
        f"entries/s (ok: {audit_result['ok']})"
    )
    entries = r["storage_entries"]
    print(f"Storage at {entries:,} entries without evidence (bytes per entry)")
    total = 0
    for name, sizes in sorted(r["storage"].items()):
        per = (sizes["table"] + sizes["indexes"]) / entries
        total += sizes["table"] + sizes["indexes"]
        table, indexes = sizes["table"] / entries, sizes["indexes"] / entries
        print(f"  {name:28} table {table:7.1f}  indexes {indexes:7.1f}  total {per:7.1f}")
    print(f"  {'all ledger tables':28} {total / entries:40.1f}")
    evidence = r["evidence_storage"].get("ledger_evidence")
    if evidence:
        print(f"  evidence table (throughput run): {evidence['table']:,} bytes of 4.5 KB documents")
