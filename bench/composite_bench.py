"""Composite submissions (issue #14) end to end: one verdict per inference, an SEV-SNP report
with the reports of two Hopper GPUs, beside the same SEV-SNP submissions without devices and
the verifiers alone, all measured in the same run on the same machine.

Set-up, as :mod:`bench.service_bench` (whose helpers it uses): the embedded PostgreSQL,
``attest-ledger serve`` under gunicorn, eight simulated workers with one connection each,
challenges fetched and evidence made before the clock starts, wrk when installed. The service
trusts a simulated AMD ARK and the simulated NVIDIA device and RIM roots
(``ATTEST_LEDGER_SNP_TRUST_ROOT``, ``ATTEST_LEDGER_NVIDIA_TRUST_ROOT``,
``ATTEST_LEDGER_NVIDIA_RIM_ROOT``); the policy holds the guest's SEV-SNP image and the GPUs'
Hopper image; the GPUs' RIMs are imported as collateral as ``attest-ledger collateral import``
does, not sent. Two groups of workers, each judged against its own policy:

* composite: a simulated SEV-SNP report plus 2 Hopper GPU reports, GPU ``i``'s nonce
  ``gpu_nonce(challenge, result, i)``, each with its five-certificate chain; the service
  completes each GPU's driver and VBIOS RIM from the collateral (``RimSource.complete``),
  verifies three reports and two RIMs, composes the verdict and stores the devices' reports
  and endorsements content-addressed beside the entry;
* CPU-only (the peer): the same SEV-SNP submissions without devices, from workers whose
  policy holds no GPU image (so none is required).

The bound: the same composite evidence (with the RIMs the service chose) verified by
``SnpVerifier`` and 2 x ``NvidiaVerifier`` alone, warm caches, with the workers' own
policies, nonces and binding, in one process and in one process per CPU.

RIM selection: ``RimSource.complete`` timed alone, in this process, against the same database
after the run, per device; its parts (two ``select_rim`` queries, one per RIM kind, and the
``parse_rim`` that ``select_rim`` does of a kept RIM whose id names no chip, which a GPU
VBIOS RIM imported from a file is) are timed too.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from attest_ledger.intake import carried_nonce
from attest_ledger.policy_store import NVIDIA, SNP, PolicyConfig, PolicyStore
from attest_ledger.rim_collateral import (
    RimSource,
    device_chip,
    documents_in_file,
    keep_rims,
    select_rim,
)
from attest_ledger.runtime import LOCK_TIMEOUT, nvidia_anchors_for, snp_anchors_for
from bench.service_bench import (
    _cpu_seconds,
    _load_with_threads,
    _load_with_wrk,
    _set_up,
    _wait_ready,
    fetch_challenges,
    start_service,
)
from enclave_worker import (
    SimulatedAmdPki,
    SimulatedAmdWarning,
    SimulatedSnpChip,
    SimulatedSnpPlatform,
)
from enclave_worker.binding import ResultDigest
from enclave_worker.gpu import GpuAttester, simulated_devices, write_simulated_rims
from enclave_worker.simulated_amd import ARK_FILE
from enclave_worker.simulated_nvidia import (
    DEVICE_ROOT_FILE,
    RIM_ROOT_FILE,
    SimulatedNvidiaPki,
    SimulatedNvidiaWarning,
)
from ledger.db import make_engine, make_session_factory, session_scope
from verifier import Endorsement, EndorsementKind, Evidence, EvidenceKind, ResultHash
from verifier.binding import gpu_nonce
from verifier.nvidia import NvidiaVerifier, RimKind, parse_report, parse_rim
from verifier.snp import SnpVerifier

SNP_IMAGE, GPU_IMAGE = "bench-snp-guest", "bench-h100"
GPUS = 2
Bodies = list[tuple[str, list[dict[str, Any]]]]


def main(
    seconds: float = 3.0,
    *,
    workers: int = 8,
    per_worker: int | None = None,
    load: str = "auto",
) -> dict[str, Any]:
    """``workers`` composite workers and as many CPU-only ones; ``per_worker`` submissions
    each (default: enough for wrk's fixed duration); ``load`` as in :mod:`bench.service_bench`."""
    directory = Path(tempfile.mkdtemp(prefix="attest-ledger-composite-bench-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)  # after the server's own
    url, data, _, tokens, _ = _set_up(directory, 2 * workers)
    composite_tokens, cpu_tokens = tokens[:workers], tokens[workers:]
    platform, gpus, roots, rims = _simulated_hardware(data)
    _policy_and_collateral(url, platform, gpus, rims, workers)
    server, base = start_service(
        url,
        data,
        ATTEST_LEDGER_SNP_TRUST_ROOT=str(roots["ark"]),
        ATTEST_LEDGER_NVIDIA_TRUST_ROOT=str(roots["device"]),
        ATTEST_LEDGER_NVIDIA_RIM_ROOT=str(roots["rim"]),
    )
    wrk = shutil.which("wrk") if load in ("auto", "wrk") else None
    if load == "wrk" and wrk is None:
        raise RuntimeError("wrk is not installed (make wrk)")
    duration = max(10.0, 3 * seconds)
    runs: dict[str, dict[str, Any]] = {}
    try:
        _wait_ready(base)
        # wrk runs for a fixed time and needs more submissions than it can send
        composite = _prepare(
            base, composite_tokens, platform, gpus, per_worker or (150 if wrk else 60)
        )
        cpu_only = _prepare(base, cpu_tokens, platform, None, per_worker or (400 if wrk else 120))
        postmaster = int((directory / "pg" / "postmaster.pid").read_text().split()[0])
        for label, prepared in (("composite", composite), ("cpu-only", cpu_only)):
            runs[label] = _measure_load(
                wrk, base, prepared, directory=directory, duration=duration,
                server=server.pid, postmaster=postmaster,
            )  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)

    engine = make_engine(url, pre_ping=False, lock_timeout=LOCK_TIMEOUT)  # as the service's
    try:
        sessions = make_session_factory(engine)
        _check_verdicts(sessions, runs, workers)
        with sessions() as session:
            snapshot = PolicyStore().current(session).snapshot()
        at = datetime.now(UTC)
        samples = _completed(sessions, composite[0][1][:50], at)
        rim_selection = _time_rim_selection(sessions, samples, seconds, at, postmaster)
    finally:
        engine.dispose()

    worker = f"bench-{0}"
    job = (roots["ark"], roots["device"], roots["rim"], snapshot, worker, samples, seconds, at)
    cpus = len(os.sched_getaffinity(0))
    with multiprocessing.get_context("spawn").Pool(cpus) as pool:
        machine = sum(pool.map(_verify_composites, [job] * cpus))
    one_core = _verify_composites(job)
    results = {
        "runs": runs,
        "bound_machine": machine,
        "bound_one_core": one_core,
        "rim_selection": rim_selection,
        "cpus": cpus,
        "workers": workers,
        "gpus": GPUS,
    }
    print_table(results)
    return results


# --- set-up -----------------------------------------------------------------------------------


def _simulated_hardware(
    data: Path,
) -> tuple[SimulatedSnpPlatform, GpuAttester, dict[str, Path], list[Path]]:
    """A simulated SEV-SNP guest (its AMD PKI kept in ``data/simulated-amd``) and two simulated
    Hopper GPUs (their PKI and RIM files in ``data/simulated-nvidia``), as a GPU worker has
    them; the roots the service is to trust; the RIM files."""
    now = datetime.now(UTC)
    amd, nvidia = data / "simulated-amd", data / "simulated-nvidia"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        chip = SimulatedSnpChip.generate(SimulatedAmdPki.load_or_create(amd, at=now), at=now)
        platform = SimulatedSnpPlatform(chip, image=SNP_IMAGE)
        pki = SimulatedNvidiaPki.load_or_create(nvidia, at=now)
        gpus = GpuAttester(simulated_devices(pki, gpus=GPUS))
        rims = write_simulated_rims(pki, nvidia)
    roots = {
        "ark": amd / ARK_FILE,
        "device": nvidia / DEVICE_ROOT_FILE,
        "rim": nvidia / RIM_ROOT_FILE,
    }
    return platform, gpus, roots, rims


def _policy_and_collateral(
    url: str, platform: SimulatedSnpPlatform, gpus: GpuAttester, rims: list[Path], workers: int
) -> None:
    """The guest's SEV-SNP image for every worker, the GPUs' Hopper image for the composite
    ones (``bench-0`` ..), and the RIMs imported as ``attest-ledger collateral import`` does."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            store = PolicyStore()
            store.add_reference(
                session, SNP_IMAGE, SNP, {"measurement": platform.measurement.hex()}
            )
            probe = gpus.devices[0]
            store.add_reference(
                session, GPU_IMAGE, NVIDIA,
                {"arch": "HOPPER", "driver_versions": [probe.driver],
                 "vbios_versions": [probe.vbios]},
            )  # fmt: skip
            for n in range(2 * workers):
                store.allow(session, f"bench-{n}", SNP_IMAGE)
                if n < workers:
                    store.allow(session, f"bench-{n}", GPU_IMAGE)
            documents = [d for p in rims for d in documents_in_file(p.read_bytes(), name=p.name)]
            keep_rims(session, documents, source="import")
    finally:
        engine.dispose()


def _prepare(
    base: str,
    tokens: list[str],
    platform: SimulatedSnpPlatform,
    gpus: GpuAttester | None,
    per_worker: int,
) -> Bodies:
    """Each worker's challenges fetched and its bodies made (with devices when ``gpus``) before
    the clock starts, as ``LedgerClient.submit_evidence`` writes them."""
    prepared = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        for token in tokens:
            bodies = []
            for i, nonce in enumerate(fetch_challenges(base, token, per_worker)):
                result = ResultDigest.of(f"inference {token[-6:]} {i}".encode())
                body: dict[str, Any] = {
                    "evidence": platform.attest(nonce=nonce, result=result).to_json(),
                    "result_hash": result.text(),
                    "job": {},
                }
                if gpus is not None:
                    devices = gpus.attest(nonce=nonce, result=result)
                    body["devices"] = [device.to_json() for device in devices]
                bodies.append(body)
            prepared.append((token, bodies))
    return prepared


# --- the load ---------------------------------------------------------------------------------


def _measure_load(
    wrk: str | None,
    base: str,
    prepared: Bodies,
    *,
    directory: Path,
    duration: float,
    server: int,
    postmaster: int,
) -> dict[str, Any]:
    """One group's submissions under load: throughput, latency, the CPU the service and
    PostgreSQL spent per submission, and the service's own phase timings and verdicts for
    this run alone (the metrics' difference)."""
    metrics_before = httpx.get(f"{base}/metrics").text
    cpu_before = _cpu_seconds([server]), _cpu_seconds([postmaster])
    if wrk:
        measured = _load_with_wrk(wrk, base, prepared, directory, duration)  # type: ignore[arg-type]
    else:
        measured = _load_with_threads(base, prepared)  # type: ignore[arg-type]
    cpu_after = _cpu_seconds([server]), _cpu_seconds([postmaster])
    metrics_after = httpx.get(f"{base}/metrics").text
    documents = max(measured["documents"], 1)
    measured["cpu_ms"] = {
        "service": (cpu_after[0] - cpu_before[0]) * 1000 / documents,
        "postgres": (cpu_after[1] - cpu_before[1]) * 1000 / documents,
    }
    measured["phases_ms"] = {
        name: _mean_between(metrics_before, metrics_after, f"attest_{name}_seconds")
        for name in ("verification", "append", "submission")
    }
    verdicts_before, verdicts_after = _verdicts(metrics_before), _verdicts(metrics_after)
    measured["verdicts"] = {
        verdict: count - verdicts_before.get(verdict, 0)
        for verdict, count in verdicts_after.items()
        if count - verdicts_before.get(verdict, 0)
    }
    return measured


def _histogram(exposition: str, metric: str) -> tuple[float, float]:
    values = {"_sum": 0.0, "_count": 0.0}
    for line in exposition.splitlines():
        for suffix in values:
            if line.startswith(metric + suffix + " "):
                values[suffix] = float(line.split()[-1])
    return values["_sum"], values["_count"]


def _mean_between(before: str, after: str, metric: str) -> float:
    """Mean of a Prometheus histogram over what was observed between two scrapes, in ms."""
    (sum_0, count_0), (sum_1, count_1) = _histogram(before, metric), _histogram(after, metric)
    return 1000 * (sum_1 - sum_0) / max(count_1 - count_0, 1.0)


def _verdicts(exposition: str) -> dict[str, int]:
    out: Counter[str] = Counter()
    for line in exposition.splitlines():
        if line.startswith("attest_submissions_total{"):
            verdict = line.split('verdict="')[1].split('"')[0]
            out[verdict] += int(float(line.split()[-1]))
    return dict(out)


def _check_verdicts(sessions: Any, runs: dict[str, dict[str, Any]], workers: int) -> None:
    """What the ledger recorded for each group (composite: bench-0 .. bench-<workers - 1>):
    the composed verdict, the CPU's and every device's, read from the entries themselves."""
    composite = {f"bench-{n}" for n in range(workers)}
    tally: dict[str, Counter[str]] = {"composite": Counter(), "cpu-only": Counter()}
    with sessions() as session:
        for (data,) in session.execute(text("SELECT data FROM ledger_entries")):
            record = json.loads(bytes(data))
            if record.get("kind") != "attestation":
                continue
            if record["worker"] in composite:
                devices = "/".join(d["verdict"] for d in record.get("devices", [])) or "none"
                cpu = record.get("cpu_verdict", "-")
                tally["composite"][f"{record['verdict']} (cpu {cpu}, devices {devices})"] += 1
            else:
                tally["cpu-only"][record["verdict"]] += 1
    for label, counts in tally.items():
        runs[label]["recorded"] = dict(counts)
        expected = (
            f"affirming (cpu affirming, devices {'/'.join(['affirming'] * GPUS)})"
            if label == "composite"
            else "affirming"
        )
        runs[label]["all_affirming"] = set(counts) == {expected}


# --- the bound and the RIM selection ----------------------------------------------------------


def _completed(
    sessions: Any, bodies: list[dict[str, Any]], at: datetime
) -> list[tuple[Evidence, list[Evidence], str]]:
    """Composite bodies as the service judges them: the CPU evidence, each device's evidence
    completed with the RIMs the service chooses, and the result hash."""
    source = RimSource(sessions)
    out = []
    for body in bodies:
        out.append(
            (
                _evidence(body["evidence"]),
                [source.complete(_evidence(d), at) for d in body["devices"]],
                body["result_hash"],
            )
        )
    return out


def _evidence(item: dict[str, Any]) -> Evidence:
    return Evidence(
        EvidenceKind(item["kind"]),
        base64.b64decode(item["data"]),
        tuple(
            Endorsement(EndorsementKind(e["kind"]), base64.b64decode(e["data"]))
            for e in item["endorsements"]
        ),
    )


def _without_rims(evidence: Evidence) -> Evidence:
    kept = tuple(e for e in evidence.endorsements if str(e.kind) != str(EndorsementKind.RIM))
    return Evidence(evidence.kind, evidence.data, kept)


def _time_rim_selection(
    sessions: Any,
    samples: list[tuple[Evidence, list[Evidence], str]],
    seconds: float,
    at: datetime,
    postmaster: int,
) -> dict[str, dict[str, float]]:
    """``RimSource.complete`` per device, alone, against the database the service used (the
    service's engine options); and its parts: one ``select_rim`` per RIM kind, and the
    ``parse_rim`` of a kept VBIOS RIM. Each: wall ms, this process's CPU ms and PostgreSQL's
    CPU ms per call."""
    source = RimSource(sessions)
    devices = [_without_rims(d) for _, ds, _ in samples for d in ds]
    rims = {
        parse_rim(e.data).kind: e.data
        for e in samples[0][1][0].endorsements
        if str(e.kind) == str(EndorsementKind.RIM)
    }
    report = parse_report(devices[0].data)
    chip = device_chip(devices[0], report)
    counter = iter(range(1 << 62))

    def complete() -> None:
        source.complete(devices[next(counter) % len(devices)], at)

    def select(kind: RimKind, version: str | None) -> None:
        with sessions() as session:
            select_rim(session, kind=str(kind), version=version or "", chip=chip, at=at)

    def timed(operation: Any, budget: float) -> dict[str, float]:
        for _ in range(5):  # warm: connections, prepared statements
            operation()
        done, pg_before = 0, _cpu_seconds([postmaster])
        wall, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall < budget:
            operation()
            done += 1
        return {
            "wall_ms": (time.perf_counter() - wall) * 1000 / done,
            "cpu_ms": (time.process_time() - cpu) * 1000 / done,
            "postgres_cpu_ms": (_cpu_seconds([postmaster]) - pg_before) * 1000 / done,
        }

    out = {
        "complete": timed(complete, seconds),
        "select driver": timed(lambda: select(RimKind.DRIVER, report.driver_version), seconds / 2),
        "select vbios": timed(lambda: select(RimKind.VBIOS, report.vbios_version), seconds / 2),
        "parse vbios RIM": timed(lambda: parse_rim(rims[RimKind.VBIOS]), seconds / 2),
    }
    with sessions() as session:
        unnamed = session.execute(
            text(
                "SELECT count(*) FROM collateral_documents "
                "WHERE kind = 'rim' AND tee = 'vbios' AND name IS NULL"
            )
        ).scalar_one()
    out["kept"] = {"vbios_without_id": float(unnamed)}
    return out


def _verify_composites(args: tuple[Any, ...]) -> float:
    """The bound: composites per second verified by the verifiers alone in one process."""
    try:
        return _verify_composites_inner(*args)
    except Exception as error:  # exceptions holding policy objects do not pickle
        raise RuntimeError(f"verifier-only run failed: {error!r}") from None


def _verify_composites_inner(  # noqa: PLR0917 - one pickled tuple
    ark: Path,
    device_root: Path,
    rim_root: Path,
    snapshot: dict[str, Any],
    worker: str,
    samples: list[tuple[Evidence, list[Evidence], str]],
    seconds: float,
    at: datetime,
) -> float:
    logging.getLogger("attest_ledger.runtime").setLevel(logging.ERROR)  # "trusting ... INSTEAD"
    config = PolicyConfig.from_snapshot(snapshot, None)
    snp_policy, gpu_policy = config.for_worker(worker, SNP), config.for_worker(worker, NVIDIA)
    if snp_policy is None or gpu_policy is None:
        raise RuntimeError(f"{worker} may attest no SEV-SNP or no GPU image")
    snp = SnpVerifier(trust_anchors=snp_anchors_for(ark))
    nvidia = NvidiaVerifier(
        trust_anchors=nvidia_anchors_for(device_root, "device root"),
        rim_anchors=nvidia_anchors_for(rim_root, "RIM root"),
    )
    prepared = []
    for cpu, devices, result_hash in samples:
        digest = ResultHash.parse(result_hash)
        challenge = carried_nonce(cpu, snp)
        if challenge is None:
            raise RuntimeError("a simulated SEV-SNP report without a challenge")
        nonces = [gpu_nonce(challenge, digest, i) for i in range(len(devices))]
        prepared.append((cpu, digest, challenge, list(zip(devices, nonces, strict=True))))

    def one(item: Any) -> None:
        cpu, digest, challenge, devices = item
        snp.verify(cpu, at=at, policy=snp_policy, nonce=challenge, result_hash=digest)
        for device, nonce in devices:
            nvidia.verify(device, at=at, policy=gpu_policy, nonce=nonce)

    for item in prepared:  # warm: chains, RIMs
        one(item)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        one(prepared[done % len(prepared)])
        done += 1
    return done / (time.perf_counter() - start)


# --- the table --------------------------------------------------------------------------------


def print_table(r: dict[str, Any]) -> None:
    machine, one = r["bound_machine"], r["bound_one_core"]
    composite, cpu_only = r["runs"]["composite"], r["runs"]["cpu-only"]

    def row(label: str, value: float, extra: str = "") -> None:
        print(f"  {label:52} {value:8.0f} {value / machine:9.2f}{extra}")

    print()
    print(
        f"Composite submissions end to end (SEV-SNP + {r['gpus']} Hopper GPUs, RIMs from "
        f"collateral): gunicorn, {r['workers']} concurrent simulated workers per group, load "
        f"from {composite['load_generator']}"
    )
    print(f"  {'':52} {'subm/s':>8} {'/ bound':>9}")
    row("bound: verifiers alone, all CPUs (same evidence)", machine)
    row("bound: verifiers alone, one core", one)
    row(
        "composite, end to end",
        composite["throughput"],
        f"   (= {composite['throughput'] / one:.2f} of one core)",
    )
    row(
        "peer: the same SEV-SNP submissions without devices",
        cpu_only["throughput"],
        "   (CPU-only, end to end)",
    )
    print(
        f"  composite / CPU-only end to end: {composite['throughput'] / cpu_only['throughput']:.2f}"
        f"; composite / bound on all cores: {composite['throughput'] / machine:.2f}"
    )
    for label, run in (("composite", composite), ("CPU-only", cpu_only)):
        phases = ", ".join(f"{name} {value:.1f}" for name, value in run["phases_ms"].items())
        print(
            f"  {label}: {run['documents']} submissions, p50 {run['p50_ms']:.1f} ms, p99 "
            f"{run['p99_ms']:.1f} ms, {run['errors']} errors; CPU per submission: service "
            f"{run['cpu_ms']['service']:.2f} ms, PostgreSQL {run['cpu_ms']['postgres']:.2f} ms; "
            f"mean in the service (ms): {phases}"
        )
        verdict = "all affirming" if run["all_affirming"] else "NOT all affirming"
        print(f"    recorded: {run['recorded']} ({verdict}); metrics: {run['verdicts']}")
    extra = composite["cpu_ms"]["service"] - cpu_only["cpu_ms"]["service"]
    print(
        f"  service CPU the devices add per submission: {extra:.2f} ms "
        f"(verifiers alone, one composite: {1000 / one:.2f} ms)"
    )
    s, n = r["rim_selection"], r["gpus"]
    complete = s["complete"]
    print(
        f"  RIM selection, RimSource.complete alone in-process, per device: "
        f"{complete['wall_ms']:.2f} ms wall, {complete['cpu_ms']:.2f} ms CPU here, "
        f"{complete['postgres_cpu_ms']:.2f} ms PostgreSQL CPU; per submission (x{n}): CPU "
        f"{n * complete['cpu_ms'] / composite['cpu_ms']['service']:.2f} of the service's per "
        f"composite and {n * complete['cpu_ms'] / extra if extra > 0 else float('nan'):.2f} of "
        f"what the devices add; wall {n * complete['wall_ms']:.1f} ms = "
        f"{n * complete['wall_ms'] / composite['phases_ms']['submission']:.2f} of the mean "
        "submission time in the service"
    )
    parts = ", ".join(
        f"{name} {s[name]['wall_ms']:.2f} ms wall / {s[name]['cpu_ms']:.2f} ms CPU"
        for name in ("select driver", "select vbios", "parse vbios RIM")
    )
    print(
        f"    its parts: {parts} (select_rim parses each kept RIM whose id names no chip, "
        f"here the {s['kept']['vbios_without_id']:.0f} GPU VBIOS RIMs imported from files)"
    )
