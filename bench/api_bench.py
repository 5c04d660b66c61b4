"""Compliance API latency with a million entries in the ledger, under gunicorn.

Set-up: the portal benchmark's (:mod:`bench.portal_bench`): the embedded PostgreSQL, one
million synthetic verdict entries shaped like the service's own, their hourly counts, then a
few hundred real submissions through the running service (with evidence), and a signed
checkpoint covering all of it.

Timed, from one client with keep-alive and a reader token, each request a few hundred times
with varied parameters: ``GET /api/v1/entries`` under each filter (and a second page through
its cursor, a full page of 1000, exact counts), ``GET /api/v1/results/{result_hash}`` (every
entry with the hash, each with its inclusion proof against the latest checkpoint), and
``GET /api/v1/stats``. Beside them, in the same run, the floors: ``/healthz`` and the
smallest reader request (one entry by index), which cost what any request costs before the
query's own work. Target: p99 under 100 ms for every request.

No peer is run: Rekor's search API (the nearest feature among the transparency logs compared
elsewhere) needs its own deployment with Redis, which this machine does not have.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.portal_bench import IMAGES, TARGET_MS, catch_up_counts, fill, measure, synthetic_record
from bench.service_bench import _prepare, _set_up, _wait_ready, print_latencies, start_service


def _wait_for_checkpoint(base: str, timeout: float = 120.0) -> int:
    size = httpx.get(f"{base}/api/v1/tree").json()["tree_size"]
    deadline = time.monotonic() + timeout
    while httpx.get(f"{base}/api/v1/checkpoint").text.split("\n")[1] != str(size):
        if time.monotonic() > deadline:
            raise RuntimeError("no checkpoint covered the ledger")
        time.sleep(0.5)
    return int(size)


def main(
    seconds: float = 3.0, *, entries: int = 1_000_000, samples: int = 300, real: int = 150
) -> dict[str, Any]:
    """``real`` documents per worker (two workers) go through the service with evidence."""
    directory = Path(tempfile.mkdtemp(prefix="attest-ledger-api-bench-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    url, data, nsm, tokens, reader = _set_up(directory, workers=2)
    fill_rate = fill(url, entries)
    counts_seconds = catch_up_counts(url)
    server, base = start_service(url, data, ATTEST_LEDGER_CHECKPOINT_INTERVAL="1")
    rng = random.Random(11)
    try:
        _wait_ready(base)
        real_results = []
        for token, jobs in _prepare(base, tokens, nsm, real):
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
                for job in jobs:
                    reply = api.post("/api/v1/attestations", json=job)
                    if reply.status_code != 201:
                        raise RuntimeError(f"submission: {reply.status_code} {reply.text[:300]}")
                    real_results.append(job["result_hash"])
        size = _wait_for_checkpoint(base)
        catch_up_counts(url)  # the publisher keeps them current; make sure
        http = httpx.Client(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {reader}"}
        )
        now = datetime.now(UTC)
        sample = [synthetic_record(rng.randrange(entries), now) for _ in range(50)]
        instance = f"i-{rng.randrange(800):017x}"
        second_page = http.get("/api/v1/entries").json()["links"]["next"]
        since = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        searches = {
            "no filter, newest first": ["/api/v1/entries"],
            "verdict=contraindicated": ["/api/v1/entries?verdict=contraindicated"],
            "worker + verdict": [
                f"/api/v1/entries?worker=worker-{n:02d}&verdict=contraindicated" for n in range(40)
            ],
            "image": [f"/api/v1/entries?image={image}" for image in IMAGES],
            "PCR0": [f"/api/v1/entries?pcr0={s['pcr0']}" for s in sample],
            "instance (module ID prefix)": [f"/api/v1/entries?module={instance}"],
            "result hash": [f"/api/v1/entries?result_hash={s['result_hash']}" for s in sample],
            "time range, oldest first by time": [f"/api/v1/entries?since={since}&sort=time-asc"],
            "second page (keyset cursor)": [second_page] if second_page else [],
            "a full page (limit=1000)": ["/api/v1/entries?limit=1000"],
            "count=exact, worker": [
                f"/api/v1/entries?worker=worker-{n:02d}&count=exact&limit=1" for n in range(40)
            ],
            "count=exact, verdict=affirming (90%)": [
                "/api/v1/entries?verdict=affirming&count=exact&limit=1"
            ],
            "count=exact, no filter": ["/api/v1/entries?count=exact&limit=1"],
        }
        lookups = {
            "result: synthetic entry, with proof": [
                f"/api/v1/results/{s['result_hash']}" for s in sample
            ],
            "result: real submission, with proof": [f"/api/v1/results/{r}" for r in real_results],
        }
        stats = {
            "stats: day by verdict (all time)": ["/api/v1/stats?group_by=verdict"],
            "stats: hour by verdict, image, worker (48 h)": [
                f"/api/v1/stats?bucket=hour&group_by=verdict,image,worker&since={since}"
            ],
            "stats: month, one worker": [
                f"/api/v1/stats?bucket=month&worker=worker-{n:02d}" for n in range(40)
            ],
        }
        floors = {
            "GET /healthz": measure(http, ["/healthz"] * samples),
            "GET /api/v1/entries/{i} (reader)": measure(
                http, [f"/api/v1/entries/{rng.randrange(entries)}" for _ in range(samples)]
            ),
        }
        timings: dict[str, dict[str, float]] = {}
        for label, paths in {**searches, **lookups, **stats}.items():
            if paths:
                timings[label] = measure(http, [paths[n % len(paths)] for n in range(samples)])
        http.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    results = {
        "entries": size,
        "fill_per_second": fill_rate,
        "counts_catch_up_seconds": counts_seconds,
        "requests": timings,
        "floors": floors,
        "cpus": len(os.sched_getaffinity(0)),
    }
    print_table(results)
    return results


def print_table(r: dict[str, Any]) -> None:
    print_latencies(
        f"Compliance API under gunicorn, {r['entries']:,} entries "
        f"(filled at {r['fill_per_second']:,.0f}/s; hourly counts of all of them computed in "
        f"{r['counts_catch_up_seconds']:.1f} s), one client, {r['cpus']} CPUs",
        r["floors"], r["requests"], what="request", width=46, target_ms=TARGET_MS,
    )  # fmt: skip
