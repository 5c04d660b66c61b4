"""Auditor portal page latency with a million entries in the ledger, under gunicorn.

Set-up: the embedded PostgreSQL; one million verdict entries shaped like the service's own
(eight hundred instances' module IDs, forty workers, six images, a realistic verdict mix),
appended in batches; the hourly counts behind the overview are computed for all of them
(timed: what a restore or a first upgrade costs; afterwards the publisher counts each new
checkpoint's entries); then a few hundred real submissions through the running service,
with their evidence, so that entry pages decode real COSE documents and certificate chains.

Timed, from one client with keep-alive, each page fetched a few hundred times with varied
parameters: the overview (48 hours and 12 months), the entry list under each filter the
portal offers and a second page through its keyset cursor, and entry pages with and without
evidence. Beside them, in the same run, the floors: ``/healthz`` and the smallest signed-in
page (the ledger's key as text), which cost what any request costs before the page's own
work. Target: p99 under 100 ms for every page.

No peer is run: the transparency logs we compare with elsewhere (Rekor, Trillian, Tessera)
ship no auditor portal, and Rekor's search (its nearest feature) needs its own deployment.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import random
import re
import shutil
import signal
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from attest_ledger.users import add_user
from bench.service_bench import _prepare, _set_up, _wait_ready, print_latencies, start_service
from ledger import stats
from ledger.append import append, prepare_all
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.entry import NewEntry

PASSWORD = "bench portal passphrase"  # noqa: S105 - a throwaway account on a throwaway server
IMAGES = ("inference-v1", "inference-v2", "scoring-v7", "batch-etl-3", "kyc-ocr-2", "fx-risk-1")
TARGET_MS = 100.0


def synthetic_record(i: int, start: datetime) -> dict[str, Any]:
    """A verdict entry shaped as ``attest_ledger.intake.build_record`` writes it."""
    rng = random.Random(i)
    image = IMAGES[i % len(IMAGES)]
    roll = rng.random()
    verdict = "affirming" if roll < 0.9 else "warning" if roll < 0.92 else "contraindicated"
    reasons = {
        "affirming": [],
        "warning": [{"code": "debug_mode", "message": "the enclave runs in debug mode"}],
        "contraindicated": [
            {"code": "pcr_mismatch", "message": f"PCR0: expected ..., found ... (image {image!r})"}
        ],
    }[verdict]
    instance = rng.randrange(800)
    moment = start + timedelta(seconds=i * 30)
    return {
        "v": 1,
        "kind": "attestation",
        "worker": f"worker-{instance % 40:02d}",
        "verdict": verdict,
        "error": "policy_violation" if verdict == "contraindicated" else None,
        "reasons": reasons,
        "result_hash": "sha256:" + hashlib.sha256(b"result %d" % i).hexdigest(),
        "job": {"id": f"job-{i}", "input_sha256": hashlib.sha256(b"in %d" % i).hexdigest()},
        "verified_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "policy_revision": 0,
        "policy": f"worker-{instance % 40:02d}:alpha@sha256:" + "ab" * 32,
        "image": image if verdict != "contraindicated" else None,
        "evidence_kind": "aws-nitro-enclave",
        "module_id": f"i-{instance:017x}-enc{rng.getrandbits(64):017x}",
        "pcr0": hashlib.sha384(image.encode()).hexdigest(),
        "document_time": moment.isoformat(timespec="milliseconds"),
        "nonce": rng.getrandbits(256).to_bytes(32, "big").hex(),
        "trust_anchor_sha256": "64" * 32,
    }


def fill(url: str, count: int) -> float:
    """Append ``count`` synthetic entries in batches of 1000; entries per second."""
    engine = make_engine(url, pool_size=1)
    factory = make_session_factory(engine)
    start_time = datetime.now(UTC) - timedelta(seconds=count * 30)
    started = time.perf_counter()
    try:
        for first in range(0, count, 1000):
            batch = [
                NewEntry.from_record(synthetic_record(i, start_time))
                for i in range(first, min(first + 1000, count))
            ]
            with session_scope(factory) as session:
                append(session, prepare_all(batch))
    finally:
        engine.dispose()
    return count / (time.perf_counter() - started)


def catch_up_counts(url: str) -> float:
    """Until the hourly counts cover the whole ledger (the service's publisher counts too)."""
    engine = make_engine(url, pool_size=1)
    factory = make_session_factory(engine)
    started = time.perf_counter()
    try:
        with factory() as session:
            size = session.execute(text("SELECT tree_size FROM ledger_sequencer")).scalar_one()
        while True:
            with session_scope(factory) as session:
                counted = stats.refresh(session, max_steps=5)
                done = session.execute(text("SELECT next_idx FROM ledger_stats_state")).scalar()
            if int(done or 0) >= size:
                break
            if not counted:
                time.sleep(0.2)  # the publisher holds the state row
    finally:
        engine.dispose()
    return time.perf_counter() - started


def measure(http: httpx.Client, paths: list[str]) -> dict[str, float]:
    for path in paths[:5]:  # warm: templates compiled, plans cached, pages in PostgreSQL's cache
        http.get(path)
    times = []
    for path in paths:
        started = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    times.sort()
    return {
        "n": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
        "max_ms": times[-1],
    }


def sign_in(base: str) -> httpx.Client:
    http = httpx.Client(base_url=base, timeout=60)
    form = http.get("/portal/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if csrf is None:
        raise RuntimeError("no sign-in form")
    login = http.post(
        "/portal/login", data={"csrf": csrf.group(1), "name": "bench", "password": PASSWORD}
    )
    if login.status_code != 302:
        raise RuntimeError(f"sign-in failed: {login.status_code}")
    return http


def main(
    seconds: float = 3.0, *, entries: int = 1_000_000, samples: int = 300, real: int = 150
) -> dict[str, Any]:
    """``real`` documents per worker (two workers) go through the service with evidence."""
    directory = Path(tempfile.mkdtemp(prefix="attest-ledger-portal-bench-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    url, data, nsm, tokens, _ = _set_up(directory, workers=2)
    engine = make_engine(url, pool_size=1)
    with session_scope(make_session_factory(engine)) as session:
        add_user(session, "bench", "auditor", PASSWORD)
    engine.dispose()
    fill_rate = fill(url, entries)
    counts_seconds = catch_up_counts(url)  # from nothing, as after a restore
    server, base = start_service(
        url, data,
        ATTEST_LEDGER_COOKIE_SECURE="0",  # plain http on loopback, for httpx's cookie jar
        ATTEST_LEDGER_CHECKPOINT_INTERVAL="1",
    )  # fmt: skip
    rng = random.Random(7)
    try:
        _wait_ready(base)
        indices = []
        for token, jobs in _prepare(base, tokens, nsm, real):
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
                for job in jobs:
                    reply = api.post("/api/v1/attestations", json=job)
                    indices.append(reply.json()["entry"]["index"])
        size = httpx.get(f"{base}/api/v1/tree").json()["tree_size"]
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/api/v1/checkpoint").text.split("\n")[1] != str(size):
            if time.monotonic() > deadline:
                raise RuntimeError("no checkpoint covered the ledger")
            time.sleep(0.5)
        catch_up_counts(url)  # the publisher keeps them current; make sure
        http = sign_in(base)
        instance = f"i-{rng.randrange(800):017x}"
        today = datetime.now(UTC).date()
        sample = [synthetic_record(rng.randrange(entries), datetime.now(UTC)) for _ in range(50)]
        older = re.search(r'href="([^"]+)" rel="next"', http.get("/portal/entries").text)
        filters = {
            "no filter, newest first": ["/portal/entries"],
            "verdict=contraindicated": ["/portal/entries?verdict=contraindicated"],
            "worker + verdict": [
                f"/portal/entries?worker=worker-{n:02d}&verdict=contraindicated" for n in range(40)
            ],
            "image": [f"/portal/entries?image={image}" for image in IMAGES],
            "PCR0": [f"/portal/entries?pcr0={s['pcr0']}" for s in sample],
            "instance (module ID prefix)": [f"/portal/entries?module={instance}"],
            "result hash": [f"/portal/entries?result_hash={s['result_hash']}" for s in sample],
            "time range, oldest first by time": [
                f"/portal/entries?since={(today - timedelta(days=2)).isoformat()}"
                f"&until={(today + timedelta(days=1)).isoformat()}&sort=time-asc"
            ],
            "second page (keyset)": [older.group(1).replace("&amp;", "&")] if older else [],
        }
        pages: dict[str, dict[str, float]] = {}
        floors = {
            "GET /healthz": measure(http, ["/healthz"] * samples),
            "GET /portal/log-key.txt (signed in)": measure(http, ["/portal/log-key.txt"] * samples),
        }
        pages["overview (48 hours)"] = measure(http, ["/portal/"] * samples)
        pages["overview (12 months)"] = measure(http, ["/portal/?range=12m"] * samples)
        for label, paths in filters.items():
            if paths:
                pages[f"entries: {label}"] = measure(
                    http, [paths[n % len(paths)] for n in range(samples)]
                )
        synthetic = [rng.randrange(entries) for _ in range(samples)]
        pages["entry page (no evidence)"] = measure(
            http, [f"/portal/entries/{i}" for i in synthetic]
        )
        pages["entry page (real evidence, chain)"] = measure(
            http, [f"/portal/entries/{indices[n % len(indices)]}" for n in range(samples)]
        )
        http.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    results = {
        "entries": size,
        "fill_per_second": fill_rate,
        "counts_catch_up_seconds": counts_seconds,
        "pages": pages,
        "floors": floors,
        "cpus": len(os.sched_getaffinity(0)),
    }
    print_table(results)
    return results


def print_table(r: dict[str, Any]) -> None:
    print_latencies(
        f"Portal pages under gunicorn, {r['entries']:,} entries "
        f"(filled at {r['fill_per_second']:,.0f}/s; hourly counts of all of them computed in "
        f"{r['counts_catch_up_seconds']:.1f} s), one client, {r['cpus']} CPUs",
        r["floors"], r["pages"], what="page", width=44, target_ms=TARGET_MS,
    )  # fmt: skip
