"""End-to-end throughput and latency of the service under gunicorn, beside verifier-only
throughput measured in the same run on the same machine.

Set-up: the embedded PostgreSQL, ``attest-ledger serve`` (gunicorn, one worker process per
CPU, 8 threads each) and eight simulated enclave workers, one connection each. Every worker
first fetches its challenges in one request and has its simulated NSM sign one document per
challenge; then, timed, the documents are submitted. A submission is the whole product
path: HTTP, authentication, verification (chain and signature), policy, nonce, binding,
append through the batcher, commit, receipt. The load is driven by wrk when it is installed
(Debian package; a C program, so it takes little of the two cores from the service),
otherwise by Python threads.

The bound beside it: the same documents verified by ``NitroVerifier`` alone, warm cache, in
one process and in one process per CPU.
"""

from __future__ import annotations

import atexit
import base64
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from attest_ledger.clients import create_client
from attest_ledger.database import start_embedded, upgrade
from attest_ledger.policy_store import PolicyStore
from enclave_worker import (
    SimulatedNitroPki,
    SimulatedNitroWarning,
    SimulatedNsm,
    simulated_image_pcrs,
)
from enclave_worker.binding import bind_result, result_hash_text
from enclave_worker.simulated_pki import load_or_create_root
from ledger.db import make_engine, make_session_factory, session_scope
from ledger.keys import create_signing_key
from verifier import NitroVerifier, Policy, ReferenceImage, TrustAnchor

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "bench-image"
Jobs = list[tuple[str, list[dict[str, str]]]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _verify_many(args: tuple[bytes, list[bytes], float, Any]) -> float:
    """Verifier-only: documents per second in one process (warm cache)."""
    try:
        return _verify_many_inner(*args)
    except Exception as error:  # exceptions holding policy objects do not pickle
        raise RuntimeError(f"verifier-only run failed: {error!r}") from None


def _verify_many_inner(root_pem: bytes, documents: list[bytes], seconds: float, at: Any) -> float:
    pcrs = simulated_image_pcrs(IMAGE)
    image = ReferenceImage(IMAGE, {i: pcrs[i] for i in (0, 1, 2)})
    policy = Policy(name="bench", images=(image,))
    verifier = NitroVerifier(trust_anchor=TrustAnchor.from_pem(root_pem, name="bench root"))
    verifier.verify(documents[0], at=at, policy=policy)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        verifier.verify(documents[done % len(documents)], at=at, policy=policy)
        done += 1
    return done / (time.perf_counter() - start)


def _cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU of these processes and all their children, alive now."""
    total = 0.0
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            for process in [parent, *parent.children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def _set_up(directory: Path, workers: int) -> tuple[str, Path, SimulatedNsm, list[str], str]:
    data = directory / "var"
    data.mkdir()
    url = start_embedded(directory / "pg", cleanup="delete")
    upgrade(url)
    create_signing_key(data / "ledger.key", "bench.example/log")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        root = load_or_create_root(data / "simulated-pki", at=datetime.now(UTC))
        pki = SimulatedNitroPki.generate(at=datetime.now(UTC), root=root)
        nsm = SimulatedNsm(pki, image=IMAGE)
    engine = make_engine(url)
    tokens = []
    with session_scope(make_session_factory(engine)) as session:
        store = PolicyStore()
        pcrs = simulated_image_pcrs(IMAGE)
        store.add_image(session, IMAGE, {i: pcrs[i] for i in (0, 1, 2)})
        for n in range(workers):
            tokens.append(create_client(session, f"bench-{n}", "worker"))
            store.allow(session, f"bench-{n}", IMAGE)
        reader = create_client(session, "bench-reader", "reader")
    engine.dispose()
    return url, data, nsm, tokens, reader


def start_service(url: str, data: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """``attest-ledger serve`` on a free loopback port over the set-up's database, key and
    simulated root, rate limit and challenge cap off; ``settings`` add environment variables.
    Not yet ready: call :func:`_wait_ready`."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ATTEST_LEDGER_DATA_DIR": str(data),
        "ATTEST_LEDGER_KEY": str(data / "ledger.key"),
        "ATTEST_LEDGER_TRUST_ROOT": str(data / "simulated-pki" / "root.pem"),
        "ATTEST_LEDGER_RATE_LIMIT": "0",
        # the load is pre-signed: every worker holds all its challenges open at once
        "ATTEST_LEDGER_MAX_OPEN_CHALLENGES": "1000000",
        **settings,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "attest_ledger.cli", "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, f"http://127.0.0.1:{port}"


def print_latencies(
    title: str, floors: dict[str, Any], measured: dict[str, Any], *, what: str, width: int,
    target_ms: float,
) -> None:  # fmt: skip
    """The table the portal and API benchmarks print: floors, then each request's p50, p99,
    maximum and p99 as a share of the target, and whether the worst meets it."""
    print()
    print(title)
    print(f"  {'':{width}} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99/target':>11}")
    for label, m in {**floors, **measured}.items():
        ratio = f"{m['p99_ms'] / target_ms:.2f}" if label in measured else "(floor)"
        print(
            f"  {label:{width}} {m['p50_ms']:8.1f} {m['p99_ms']:8.1f} {m['max_ms']:8.1f} "
            f"{ratio:>11}"
        )
    worst = max(measured.items(), key=lambda item: item[1]["p99_ms"])
    verdict = "met" if worst[1]["p99_ms"] < target_ms else "NOT met"
    print(
        f"  target p99 < {target_ms:.0f} ms for every {what}: {verdict} "
        f"(worst: {worst[0]}, {worst[1]['p99_ms']:.1f} ms)"
    )


def fetch_challenges(base: str, token: str, count: int) -> list[bytes]:
    """``count`` challenges of the worker whose token this is, a hundred per request."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        nonces: list[bytes] = []
        while len(nonces) < count:
            asked = min(100, count - len(nonces))
            reply = http.post("/api/v1/challenges", json={"count": asked}).json()
            nonces.extend(bytes.fromhex(c["nonce"]) for c in reply["challenges"])
    return nonces


def _prepare(base: str, tokens: list[str], nsm: SimulatedNsm, per_worker: int) -> Jobs:
    """Challenges fetched and documents signed before the clock starts."""
    prepared = []
    for token in tokens:
        nonces = fetch_challenges(base, token, per_worker)
        jobs = []
        for i, nonce in enumerate(nonces):
            result = f"result {token[-6:]} {i}".encode()
            document = nsm.attest(user_data=bind_result(result), nonce=nonce)
            jobs.append(
                {
                    "attestation_document": base64.b64encode(document).decode(),
                    "result_hash": result_hash_text(result),
                }
            )
        prepared.append((token, jobs))
    return prepared


def main(
    seconds: float = 3.0,
    *,
    workers: int = 8,
    per_worker: int | None = None,
    load: str = "auto",
) -> dict[str, Any]:
    """``load``: "wrk" (fixed duration), "threads" (every prepared document once) or "auto"
    (wrk when installed)."""
    directory = Path(tempfile.mkdtemp(prefix="attest-ledger-service-bench-"))
    # Registered before the embedded server's own exit handler, so it runs after it: the
    # server stops and deletes its data, then the rest goes.
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    url, data, nsm, tokens, reader = _set_up(directory, workers)
    server, base = start_service(url, data)
    try:
        _wait_ready(base)
        wrk = shutil.which("wrk") if load in ("auto", "wrk") else None
        if load == "wrk" and wrk is None:
            raise RuntimeError("wrk is not installed (make wrk)")
        # wrk runs for a fixed time and needs more documents than it can use; the Python
        # load generator sends a fixed number.
        duration = max(10.0, 3 * seconds)
        signed_at = datetime.now(UTC)
        prepared = _prepare(base, tokens, nsm, per_worker or (1000 if wrk else 250))
        postmaster = int((directory / "pg" / "postmaster.pid").read_text().split()[0])
        before = _cpu_seconds([server.pid]), _cpu_seconds([postmaster])
        if wrk:
            measured = _load_with_wrk(wrk, base, prepared, directory, duration)
        else:
            measured = _load_with_threads(base, prepared)
        after = _cpu_seconds([server.pid]), _cpu_seconds([postmaster])
        measured["cpu_ms_per_document"] = {
            "service (gunicorn)": (after[0] - before[0]) * 1000 / measured["documents"],
            "PostgreSQL": (after[1] - before[1]) * 1000 / measured["documents"],
        }
        exposition = httpx.get(f"{base}/metrics").text
        floors = {}
        if wrk:  # what a request costs that does no verification and no append
            for label, path, headers in (
                ("GET /healthz", "/healthz", []),
                ("GET /api/v1/entries/0 (reader token)", "/api/v1/entries/0",
                 ["-H", f"Authorization: Bearer {reader}"]),
            ):  # fmt: skip
                floors[label] = _floor(
                    wrk, base, path, headers, server=server.pid, postmaster=postmaster
                )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)

    documents = [base64.b64decode(job["attestation_document"]) for job in prepared[0][1][:50]]
    root_pem = (data / "simulated-pki" / "root.pem").read_bytes()
    cpus = len(os.sched_getaffinity(0))
    with multiprocessing.get_context("spawn").Pool(cpus) as pool:
        machine = sum(pool.map(_verify_many, [(root_pem, documents, seconds, signed_at)] * cpus))
    one_core = _verify_many((root_pem, documents, seconds, signed_at))
    results = {
        **measured,
        "phases_ms": {
            name: _mean(exposition, f"attest_{name}_seconds")
            for name in ("verification", "append", "submission")
        },
        "verdicts": _verdicts(exposition),
        "floors": floors,
        "verifier_only_machine": machine,
        "verifier_only_one_core": one_core,
        "cpus": cpus,
        "workers": workers,
    }
    print_table(results)
    return results


def _load_with_wrk(
    wrk: str, base: str, prepared: Jobs, directory: Path, duration: float
) -> dict[str, Any]:
    """Two wrk threads, one connection per simulated worker, no document sent twice."""
    requests_dir = directory / "wrk"
    requests_dir.mkdir()
    threads = 2
    for thread in range(threads):
        mine = [pair for n, pair in enumerate(prepared) if n % threads == thread]
        with (requests_dir / f"{thread + 1}.requests").open("w") as handle:
            for round_ in range(max(len(jobs) for _, jobs in mine)):
                for token, jobs in mine:
                    if round_ < len(jobs):
                        body = json.dumps(jobs[round_], separators=(",", ":"))
                        handle.write(f"{token}\t{body}\n")
    completed = subprocess.run(
        [
            wrk, "-t", str(threads), "-c", str(len(prepared)), "-d", f"{int(duration)}s",
            "--timeout", "10s", "-s", str(ROOT / "bench" / "wrk_submit.lua"),
            base, "--", str(requests_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    shutil.rmtree(requests_dir)  # tens of MB of pre-signed documents
    line = next(x for x in completed.stdout.splitlines() if x.startswith("wrk: "))
    stats = {key: int(value) for key, value in (item.split("=") for item in line[5:].split())}
    if stats["exhausted"]:
        print("warning: wrk ran out of prepared documents; throughput is understated")
    seconds = stats["duration_us"] / 1e6
    return {
        "load_generator": "wrk",
        "documents": stats["created"],
        "throughput": stats["created"] / seconds,
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "errors": stats["errors"] + stats["other"],
    }


def _floor(
    wrk: str, base: str, path: str, headers: list[str], *, server: int, postmaster: int
) -> dict[str, float]:
    command = [wrk, "-t", "2", "-c", "8", "-d", "3s", *headers, base + path]
    subprocess.run([*command[:6], "1s", *command[7:]], capture_output=True, check=True)  # warm
    before = _cpu_seconds([server]), _cpu_seconds([postmaster])
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
    )
    after = _cpu_seconds([server]), _cpu_seconds([postmaster])
    rate = float(next(x for x in completed.stdout.splitlines() if "Requests/sec" in x).split()[1])
    count = rate * 3
    return {
        "requests_per_second": rate,
        "service_cpu_ms": (after[0] - before[0]) * 1000 / count,
        "postgres_cpu_ms": (after[1] - before[1]) * 1000 / count,
    }


def _load_with_threads(base: str, prepared: Jobs) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()

    def worker(token: str, jobs: list[dict[str, str]]) -> None:
        mine = []
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            for job in jobs:
                start = time.perf_counter()
                status = http.post("/api/v1/attestations", json=job).status_code
                mine.append(time.perf_counter() - start)
                if status != 201:
                    with lock:
                        failures.append(status)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=pair) for pair in prepared]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "load_generator": "python threads (httpx)",
        "documents": len(latencies),
        "throughput": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "errors": len(failures),
    }


def _mean(exposition: str, metric: str) -> float:
    """Mean of a Prometheus histogram, in milliseconds, from its _sum and _count lines."""
    values = {}
    for line in exposition.splitlines():
        for suffix in ("_sum", "_count"):
            if line.startswith(metric + suffix + " "):
                values[suffix] = float(line.split()[-1])
    return 1000 * values.get("_sum", 0.0) / max(values.get("_count", 1.0), 1.0)


def _verdicts(exposition: str) -> dict[str, int]:
    out = {}
    for line in exposition.splitlines():
        if line.startswith("attest_submissions_total{"):
            verdict = line.split('verdict="')[1].split('"')[0]
            out[verdict] = int(float(line.split()[-1]))
    return out


def _wait_ready(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the service did not become ready")


def print_table(r: dict[str, Any]) -> None:
    machine, one = r["verifier_only_machine"], r["verifier_only_one_core"]

    def row(label: str, value: float, extra: str = "") -> None:
        print(f"  {label:44} {value:8.0f} {value / machine:7.2f}{extra}")

    print()
    print(
        f"Service end to end: gunicorn ({r['cpus']} workers x 8 threads), "
        f"{r['workers']} concurrent simulated workers, load from {r['load_generator']}"
    )
    print(f"  {'':44} {'docs/s':>8} {'ratio':>7}")
    row("verifier only, all CPUs (same documents)", machine)
    row("verifier only, one core", one)
    row("service, end to end", r["throughput"], f"   (= {r['throughput'] / one:.2f} of one core)")
    print(f"  latency per submission: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
    print(f"  {r['documents']} submissions: {r['verdicts']}, {r['errors']} errors")
    phases = ", ".join(f"{name} {value:.1f} ms" for name, value in r["phases_ms"].items())
    print(f"  mean time in the service: {phases}")
    cpu = r["cpu_ms_per_document"]
    print(
        "  CPU per document: "
        + ", ".join(f"{name} {value:.2f} ms" for name, value in cpu.items())
        + f"; verifier alone {1000 / one:.2f} ms"
    )
    for label, floor in r["floors"].items():
        print(
            f"  floor, {label}: {floor['requests_per_second']:.0f}/s, CPU per request: service "
            f"{floor['service_cpu_ms']:.2f} ms, PostgreSQL {floor['postgres_cpu_ms']:.2f} ms"
        )
