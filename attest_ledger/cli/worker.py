"""``attest-ledger worker run|pki``: a simulated enclave worker, for demos and load.

``worker run`` computes jobs, binds each result hash into user_data, asks the service for a
challenge, obtains an attestation document from the NSM (simulated by default, or the real
``/dev/nsm`` with ``--device``), submits it and prints one JSON line per receipt. Bad modes
produce wrong evidence on purpose: ``--bad MODE`` for every job, ``--mix`` for every fourth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest_ledger.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from attest_ledger.settings import Settings
from enclave_worker import NitroAttester, SimulatedNitroPki, SimulatedNitroWarning, SimulatedNsm
from enclave_worker.client import LedgerClient, ServiceError
from enclave_worker.job import BadMode, Job, JobRunner
from enclave_worker.nsm import DeviceNsm, Nsm, NsmUnavailable
from enclave_worker.simulated_pki import load_or_create_root

__all__ = ["register"]

MIX = (
    BadMode.WRONG_IMAGE,
    BadMode.STALE,
    BadMode.WRONG_NONCE,
    BadMode.TAMPERED,
    BadMode.UNBOUND,
    BadMode.DEBUG,
    BadMode.REPLAY,
)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "worker", help="run a (simulated) enclave worker against the service"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    pki = actions.add_parser("pki", help="create the persisted simulated Nitro root (not AWS)")
    pki.add_argument("--dir", type=Path, help="default: <data dir>/simulated-pki")
    pki.set_defaults(handler=run_pki)

    run = actions.add_parser("run", help="compute jobs and submit attested results")
    run.add_argument("--server", default="http://127.0.0.1:8000")
    run.add_argument("--token", help="worker token (default ATTEST_LEDGER_WORKER_TOKEN)")
    run.add_argument("--token-file", type=Path)
    run.add_argument("--count", type=int, default=10)
    run.add_argument(
        "--rate", type=float, default=0.0, help="jobs per second (0: as fast as possible)"
    )
    run.add_argument("--image", default="demo-inference", help="the enclave image to simulate")
    run.add_argument("--name", default="worker", help="prefix of the job ids")
    bad = run.add_mutually_exclusive_group()
    bad.add_argument(
        "--bad", choices=[m.value for m in BadMode], help="make every job's evidence bad this way"
    )
    bad.add_argument(
        "--mix", action="store_true", help="make every fourth job bad, cycling through the modes"
    )
    run.add_argument("--simulated-pki", type=Path, help="default: <data dir>/simulated-pki")
    run.add_argument("--device", action="store_true", help="use the real /dev/nsm")
    run.set_defaults(handler=run_worker)


def run_pki(args: argparse.Namespace, settings: Settings) -> int:
    directory = args.dir or settings.data_dir / "simulated-pki"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        load_or_create_root(directory, at=datetime.now(UTC))
    print(directory / "root.pem")
    return EXIT_OK


def _simulated(directory: Path, image: str) -> tuple[Nsm, Nsm, Nsm]:
    now = datetime.now(UTC)
    if not (directory / "root.pem").exists():
        # Not silently: a service trusts only the simulated root it was started with, so a
        # worker that makes its own gets every submission judged untrusted_root.
        print(
            f"attest-ledger worker: no simulated root in {directory}: creating a NEW one. A "
            "service judges these documents untrusted_root unless it trusts this root "
            f"(ATTEST_LEDGER_TRUST_ROOT={directory / 'root.pem'}); to feed `make run`'s "
            "service, pass --simulated-pki <its data dir>/simulated-pki",
            file=sys.stderr,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        pki = SimulatedNitroPki.generate(at=now, root=load_or_create_root(directory, at=now))
        return (
            SimulatedNsm(pki, image=image),
            SimulatedNsm(pki, image=image + "-unapproved"),
            SimulatedNsm(pki, image=image, debug=True),
        )


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    token = args.token or (
        args.token_file.read_text().strip() if args.token_file else settings.worker_token
    )
    if not token:
        print(
            "attest-ledger worker run: give --token, --token-file or ATTEST_LEDGER_WORKER_TOKEN",
            file=sys.stderr,
        )
        return EXIT_USAGE
    nsm: Nsm
    other: Nsm | None
    debug: Nsm | None
    try:
        if args.device:
            nsm, other, debug = DeviceNsm(), None, None
        else:
            print("attest-ledger worker: SIMULATED NSM (not AWS hardware)", file=sys.stderr)
            nsm, other, debug = _simulated(
                args.simulated_pki or settings.data_dir / "simulated-pki", args.image
            )
    except NsmUnavailable as exc:
        print(f"attest-ledger worker run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = LedgerClient(args.server, token)
    runner = JobRunner(
        client,
        NitroAttester(nsm),
        other_image=NitroAttester(other) if other else None,
        debug=NitroAttester(debug) if debug else None,
    )
    verdicts: Counter[str] = Counter()
    failures = untrusted = 0
    started = time.monotonic()
    try:
        for n in range(args.count):
            if args.rate > 0:
                time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            bad = (
                BadMode(args.bad)
                if args.bad
                else MIX[(n // 4) % len(MIX)]
                if args.mix and n % 4 == 3
                else None
            )
            job = Job(id=f"{args.name}-{started:.0f}-{n}", input=f"{args.name} input {n}".encode())
            try:
                receipt = runner.run(job, bad)
            except ServiceError as exc:
                failures += 1
                print(
                    json.dumps({"job": job.id, "error": exc.code, "detail": exc.detail}), flush=True
                )
                continue
            verdict = receipt["verdict"]
            verdicts[verdict["status"]] += 1
            untrusted += verdict.get("error") == "untrusted_root"
            print(
                json.dumps(
                    {
                        "job": job.id,
                        "bad": bad.value if bad else None,
                        "index": receipt["entry"]["index"],
                        "leaf_hash": receipt["entry"]["leaf_hash"],
                        "verdict": verdict["status"],
                        "reasons": [r["code"] for r in verdict["reasons"]],
                    }
                ),
                flush=True,
            )
    finally:
        client.close()
    elapsed = time.monotonic() - started
    summary = (
        ", ".join(f"{count} {status}" for status, count in sorted(verdicts.items())) or "nothing"
    )
    print(
        f"worker: {args.count} jobs in {elapsed:.1f} s: {summary}; "
        f"{failures} refused; {client.retried} retries",
        file=sys.stderr,
    )
    if untrusted and not args.device:
        print(
            f"worker: {untrusted} documents were judged untrusted_root: the service does not "
            "trust this worker's simulated root; pass --simulated-pki with the directory whose "
            "root.pem the service trusts (ATTEST_LEDGER_TRUST_ROOT)",
            file=sys.stderr,
        )
    return EXIT_OK if failures == 0 else EXIT_REJECTED
