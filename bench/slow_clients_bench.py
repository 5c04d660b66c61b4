"""The service with and without 200 slow clients holding connections (issue #10, item 6).

Set-up as the service benchmark's (``attest-ledger serve``, one worker process per CPU with 8
threads, the embedded PostgreSQL, eight simulated enclave workers submitting pre-signed
documents through wrk). Two runs on the same service, one after the other: first without,
then with 200 connections that each send one more byte of a request head every two seconds
and never finish it (a connection the service closes is replaced at once, as an attacker
would). During each run a probe asks ``GET /healthz`` on a fresh connection every 20 ms. The
table gives submission throughput and latency, and probe latency, for both runs side by side,
with the ratio of the second to the first.
"""

from __future__ import annotations

import atexit
import select
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.service_bench import (
    _cpu_seconds,
    _load_with_threads,
    _load_with_wrk,
    _prepare,
    _set_up,
    _wait_ready,
    start_service,
)

#: A head that is never finished: the padding header is longer than any run sends.
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100_000


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _status(reply: bytes) -> int | None:
    if not reply.startswith(b"HTTP/1."):
        return None
    return int(reply.split(b" ", 2)[1])


def is_open(connection: socket.socket) -> bool:
    """Whether the server has neither answered nor closed this connection yet."""
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    return not poller.poll(0)


class SlowClients:
    """``count`` connections that each send one more byte of a request head every
    ``interval`` seconds and never finish it. A connection the server closes is replaced at
    once; the status of what the server sent on it before closing is counted (None: it
    closed without a response)."""

    def __init__(self, base: str, count: int, *, interval: float = 2.0) -> None:
        self.address = _address(base)
        self.interval = interval
        self.sockets: list[socket.socket] = []
        self.sent: list[int] = []
        self.statuses: Counter[int | None] = Counter()
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        for _ in range(count):
            connection, sent = self._open()
            self.sockets.append(connection)
            self.sent.append(sent)

    def _open(self) -> tuple[socket.socket, int]:
        connection = socket.create_connection(self.address, timeout=5)
        connection.sendall(SLOW_HEAD[:1])
        self.opened += 1
        return connection, 1

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for i, connection in enumerate(self.sockets):
                if self._stop.is_set():
                    return
                if is_open(connection):
                    try:
                        connection.sendall(SLOW_HEAD[self.sent[i] : self.sent[i] + 1])
                        self.sent[i] += 1
                        continue
                    except OSError:
                        reply = b""
                else:
                    try:
                        reply = connection.recv(65536)
                    except OSError:
                        reply = b""
                self.statuses[_status(reply)] += 1
                connection.close()
                try:
                    self.sockets[i], self.sent[i] = self._open()
                except OSError:  # the service is not accepting: try again next round
                    self.sockets[i], self.sent[i] = socket.socket(), len(SLOW_HEAD)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for connection in self.sockets:
            connection.close()


class Probe:
    """``GET /healthz`` on a fresh connection every ``interval`` seconds, until stopped."""

    def __init__(self, base: str, *, interval: float = 0.02, timeout: float = 5.0) -> None:
        self.base, self.interval, self.timeout = base, interval, timeout
        self.latencies: list[float] = []
        self.failures: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.perf_counter()
            try:
                status = httpx.get(f"{self.base}/healthz", timeout=self.timeout).status_code
            except httpx.HTTPError as error:
                self.failures[type(error).__name__] += 1
                continue
            if status != 200:
                self.failures[str(status)] += 1
            else:
                self.latencies.append(time.perf_counter() - started)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=30)
        latencies = sorted(self.latencies) or [float("nan")]
        return {
            "probes": len(self.latencies) + sum(self.failures.values()),
            "failures": dict(self.failures),
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        }


def main(
    seconds: float = 3.0,
    *,
    slow: int = 200,
    workers: int = 8,
    per_worker: int | None = None,
    load: str = "auto",
) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="attest-ledger-slow-bench-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    url, data, nsm, tokens, _reader = _set_up(directory, workers)
    server, base = start_service(url, data)
    runs: dict[str, dict[str, Any]] = {}
    try:
        _wait_ready(base)
        wrk = shutil.which("wrk") if load in ("auto", "wrk") else None
        if load == "wrk" and wrk is None:
            raise RuntimeError("wrk is not installed (make wrk)")
        duration = max(10.0, 3 * seconds)
        for label, count in (("without", 0), ("with", slow)):
            prepared = _prepare(base, tokens, nsm, per_worker or (1000 if wrk else 250))
            flood = SlowClients(base, count) if count else None
            if flood is not None:
                flood.start()
                time.sleep(2.5)  # every slow connection has sent a byte or two
            probe = Probe(base)
            probe.start()
            cpu_before = _cpu_seconds([server.pid])
            if wrk:
                measured = _load_with_wrk(wrk, base, prepared, directory, duration)
            else:
                measured = _load_with_threads(base, prepared)
            cpu = _cpu_seconds([server.pid]) - cpu_before
            measured["healthz"] = probe.stop()
            # gunicorn's CPU per submission (the probes and slow connections included)
            measured["cpu_ms_per_document"] = cpu * 1000 / max(measured["documents"], 1)
            if flood is not None:
                flood.stop()
                measured["slow"] = {"held": count, "opened": flood.opened}
                measured["slow"]["statuses"] = dict(flood.statuses)
            runs[label] = measured
    finally:
        server.terminate()
        server.wait(60)
    results = {"runs": runs, "slow": slow, "workers": workers}
    print_table(results)
    return results


def print_table(r: dict[str, Any]) -> None:
    without, with_ = r["runs"]["without"], r["runs"]["with"]

    def row(label: str, a: float, b: float, unit: str = "") -> None:
        print(f"  {label:40} {a:9.1f}{unit} {b:9.1f}{unit} {b / a:9.2f}")

    print()
    print(
        f"Slow clients: the service without and with {r['slow']} connections each sending one "
        f"header byte every 2 s; {r['workers']} simulated workers, load from "
        f"{without['load_generator']}; same service, same run"
    )
    print(f"  {'':40} {'without':>9} {'with':>9} {'with/without':>12}")
    row("submissions/s", without["throughput"], with_["throughput"])
    row("submission p50 ms", without["p50_ms"], with_["p50_ms"])
    row("submission p99 ms", without["p99_ms"], with_["p99_ms"])
    row("GET /healthz p50 ms (fresh connection)", without["healthz"]["p50_ms"],
        with_["healthz"]["p50_ms"])  # fmt: skip
    row("GET /healthz p99 ms", without["healthz"]["p99_ms"], with_["healthz"]["p99_ms"])
    row("gunicorn CPU ms per submission", without["cpu_ms_per_document"],
        with_["cpu_ms_per_document"])  # fmt: skip
    for label, run in (("without", without), ("with", with_)):
        print(
            f"  {label}: {run['documents']} submissions, {run['errors']} failed; "
            f"{run['healthz']['probes']} probes, failed: {run['healthz']['failures'] or 0}"
        )
    slow = with_["slow"]
    statuses = ", ".join(
        f"{count} {'closed without a response' if status is None else f'answered {status}'}"
        for status, count in sorted(slow["statuses"].items(), key=lambda item: str(item[0]))
    )
    print(
        f"  slow connections: {slow['held']} held, {slow['opened']} opened in all; "
        f"the service closed {statuses or 'none'}"
    )
