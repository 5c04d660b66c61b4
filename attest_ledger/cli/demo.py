"""``attest-ledger demo``: what ``make run`` does on a fresh machine (and again, keeping data).

1. migrate the database (the embedded PostgreSQL unless DATABASE_URL is set);
2. create the ledger's signing key, a simulated Nitro root, a simulated AMD root (ARK) and a
   simulated Intel root (with its PCK CAs and TCB Signing key), unless they exist;
3. add a demo Nitro worker, a demo SEV-SNP worker, a demo TDX worker, two demo TPM workers
   (one on the enrolled path, one on the aws-nitrotpm path), a demo GPU worker (an SEV-SNP
   guest with two simulated Hopper GPUs and an NVSwitch) and a demo auditor (tokens in var/,
   mode 0600), a demo policy (a Nitro image, an SEV-SNP image, a TDX image, a TPM image: the
   model event of the TPM workers' logs, and the GPUs' and NVSwitch's firmware), the
   simulated devices' RIMs as collateral, and a portal account (password in var/,
   mode 0600); start a software TPM (swtpm, Debian's) once to make its attestation key and
   enrol it, with its EK certificate chained to swtpm's local CA;
4. start the service under gunicorn on http://127.0.0.1:8000, trusting the simulated roots;
5. run a simulated Nitro worker and, beside it, a simulated SEV-SNP worker, a simulated TDX
   worker, two TPM workers quoting from their swtpms (the second's quotes carry a simulated
   NitroTPM document that binds its AK, as on EC2) and the GPU worker (one verdict per
   inference: CPU, GPUs, NVSwitch and result), which submit a few dozen attestations between
   them, some bad on purpose;
6. print where to look, and keep the service running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from attest_ledger import database
from attest_ledger.clients import authenticate, create_client
from attest_ledger.ear import EarSigner
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.models import ApiClient, PolicyImage, PortalUser, WorkerImage
from attest_ledger.policy_store import NVIDIA, SNP, TDX, TPM, PolicyStore
from attest_ledger.rim_collateral import RimDocument, keep_rims
from attest_ledger.settings import Settings
from attest_ledger.tpm_enrolments import enroll, enrolment_of
from attest_ledger.users import add_user, set_password
from enclave_worker import (
    AMD_SEV_SNP,
    INTEL_TDX,
    SimulatedAmdPki,
    SimulatedAmdWarning,
    SimulatedIntelPki,
    SimulatedIntelWarning,
    SimulatedNitroWarning,
    simulated_image_pcrs,
    simulated_snp_measurement,
    simulated_tdx_measurement,
)
from enclave_worker.binding import ResultDigest
from enclave_worker.gpu import simulated_devices, write_simulated_rims
from enclave_worker.simulated_amd import ARK_FILE
from enclave_worker.simulated_intel import ROOT_FILE as INTEL_ROOT_FILE
from enclave_worker.simulated_nvidia import (
    DEVICE_ROOT_FILE,
    RIM_ROOT_FILE,
    SimulatedNvidiaPki,
    SimulatedNvidiaWarning,
)
from enclave_worker.simulated_pki import load_or_create_root
from enclave_worker.swtpm import Swtpm
from enclave_worker.tpm import JOB_PCR, TPM2_QUOTE, TpmAttester, job_events
from ledger.db import make_session_factory, session_scope
from ledger.keys import create_signing_key, load_signing_key
from verifier.tpm import google_roots

__all__ = ["register"]

IMAGE = "demo-inference"
WORKER = "demo-worker"
#: The SEV-SNP guest's image: the SNP worker runs it, the policy holds its measurement.
SNP_IMAGE = "demo-inference-snp"
SNP_WORKER = "demo-snp-worker"
#: The TDX trust domain's image: the TDX worker runs it, the policy holds its MRTD.
TDX_IMAGE = "demo-inference-tdx"
TDX_WORKER = "demo-tdx-worker"
#: The TPM worker's model: the first event its log records, which the TPM image expects.
TPM_IMAGE = "demo-inference-tpm"
TPM_WORKER = "demo-tpm-worker"
#: A second swtpm, on the aws-nitrotpm path: a simulated NitroTPM document binds its AK.
NITROTPM_WORKER = "demo-nitrotpm-worker"
#: One inference, one verdict: an SEV-SNP guest (SNP_IMAGE) with simulated GPUs and an
#: NVSwitch, whose firmware the policy's GPU and NVSwitch images hold.
GPU_WORKER = "demo-gpu-worker"
GPU_IMAGE = "demo-h100"
SWITCH_IMAGE = "demo-nvswitch"
DEMO_GPUS, DEMO_SWITCHES = 2, 1
#: The name the swtpm's attestation key is enrolled under.
TPM_MACHINE = "demo-swtpm"
AUDITOR = "demo-auditor"
PORTAL_USER = "demo-auditor"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="set up a demo ledger, start the service, feed it (make run)"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--jobs", type=int, default=36, help="attestations the demo Nitro worker submits"
    )
    parser.add_argument(
        "--snp-jobs", type=int, default=12, help="attestations the demo SEV-SNP worker submits"
    )
    parser.add_argument(
        "--tdx-jobs", type=int, default=12, help="attestations the demo Intel TDX worker submits"
    )
    parser.add_argument(
        "--tpm-jobs",
        type=int,
        default=12,
        help="attestations the demo TPM worker submits (quotes from swtpm; 0: no TPM)",
    )
    parser.add_argument(
        "--gpu-jobs",
        type=int,
        default=8,
        help=f"inferences the demo GPU worker submits (SEV-SNP with {DEMO_GPUS} simulated "
        f"Hopper GPUs and {DEMO_SWITCHES} NVSwitch; 0: none)",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="stop the service once the demo has run (it says so; `make run` starts it again)",
    )
    parser.set_defaults(handler=run)


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM too: stop the service and the database cleanly


def run(args: argparse.Namespace, settings: Settings) -> int:
    signal.signal(signal.SIGTERM, _stop)
    if min(args.jobs, args.snp_jobs, args.tdx_jobs, args.tpm_jobs, args.gpu_jobs) < 0:
        print(
            "attest-ledger demo: --jobs, --snp-jobs, --tdx-jobs, --tpm-jobs and --gpu-jobs "
            "must not be negative",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.tpm_jobs and not _tpm_tools():
        say("no swtpm or tpm2-tools here (`make tpm` installs them): the demo runs without TPM")
        args.tpm_jobs = 0
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    root_dir = data / "simulated-pki"
    amd_dir = data / "simulated-amd"
    intel_dir = data / "simulated-intel"
    nvidia_dir = data / "simulated-nvidia"
    settings = dataclasses.replace(
        settings,
        trust_root_path=settings.trust_root_path or root_dir / "root.pem",
        snp_trust_root_path=settings.snp_trust_root_path or amd_dir / ARK_FILE,
        intel_trust_root_path=settings.intel_trust_root_path or intel_dir / INTEL_ROOT_FILE,
        nvidia_trust_root_path=settings.nvidia_trust_root_path or nvidia_dir / DEVICE_ROOT_FILE,
        nvidia_rim_root_path=settings.nvidia_rim_root_path or nvidia_dir / RIM_ROOT_FILE,
    )

    url, signer, tokens = _set_up(
        settings, data, root_dir, amd_dir, intel_dir, tpm=args.tpm_jobs > 0
    )

    env = dict(os.environ)
    env.update(
        {
            "ATTEST_LEDGER_DATA_DIR": str(data),
            "ATTEST_LEDGER_TRUST_ROOT": str(settings.trust_root_path),
            "ATTEST_LEDGER_SNP_TRUST_ROOT": str(settings.snp_trust_root_path),
            "ATTEST_LEDGER_INTEL_TRUST_ROOT": str(settings.intel_trust_root_path),
            "ATTEST_LEDGER_NVIDIA_TRUST_ROOT": str(settings.nvidia_trust_root_path),
            "ATTEST_LEDGER_NVIDIA_RIM_ROOT": str(settings.nvidia_rim_root_path),
            "ATTEST_LEDGER_KEY": str(settings.ledger_key_path),
            "ATTEST_LEDGER_EAR_KEY": str(settings.ear_key_path),
            "ATTEST_LEDGER_CHECKPOINT_INTERVAL": str(min(settings.checkpoint_interval, 2.0)),
        }
    )
    if settings.database_url:
        env["DATABASE_URL"] = url
    else:  # serve joins the embedded server itself, and so restarts it if it dies
        env.pop("DATABASE_URL", None)
    server = f"http://127.0.0.1:{args.port}"
    command = [sys.executable, "-m", "attest_ledger.cli"]
    log_path = data / "service.log"
    say(f"starting the service on {server} (log: {log_path})")
    with log_path.open("ab") as log:
        service = subprocess.Popen(  # noqa: S603 - our own CLI
            [*command, "serve", "--bind", f"127.0.0.1:{args.port}"], env=env, stdout=log, stderr=log
        )
    try:
        if not _wait_ready(server, service):
            print(f"the service did not become ready; see {log_path}", file=sys.stderr)
            return EXIT_USAGE
        worker = [*command, "worker", "run", "--server", server, "--mix"]
        fed = _feed(args, worker, env, tokens, (root_dir, amd_dir, intel_dir))
        for name, done in fed.items():
            if done.returncode != 0:
                print(f"the demo {name} worker failed; see {log_path}", file=sys.stderr)
                return EXIT_USAGE  # the service or the demo set-up is not working
        time.sleep(2.5)  # let the publisher sign a checkpoint covering the demo
        shown = {name: _an_attestation(done.stdout) for name, done in fed.items()}
        _where_to_look(server, data, signer.verifier(), shown, running=not args.no_wait)
        if args.no_wait:
            return EXIT_OK
        say("the service keeps running; Ctrl-C stops it")
        service.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(30)
            except subprocess.TimeoutExpired:
                service.kill()
    return EXIT_OK


def _feed(
    args: argparse.Namespace,
    worker: list[str],
    env: dict[str, str],
    tokens: dict[str, str],
    roots: tuple[Path, Path, Path],
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Step 5: the Nitro, SEV-SNP and TDX workers side by side, then each one's verdicts;
    by the name the demo shows them under."""
    say(
        f"a simulated Nitro worker submits {args.jobs} attestations and, beside it, a "
        f"simulated SEV-SNP worker {args.snp_jobs}, a simulated Intel TDX worker "
        f"{args.tdx_jobs}, two TPM workers on swtpm (enrolled AK, NitroTPM) "
        f"{args.tpm_jobs} each and a GPU worker (SEV-SNP, {DEMO_GPUS} Hopper GPUs, "
        f"{DEMO_SWITCHES} NVSwitch) {args.gpu_jobs}; every fourth of each is bad on purpose"
    )
    root_dir, amd_dir, intel_dir = roots
    runs = {
        "Nitro": (
            f"AWS Nitro Enclaves: {args.jobs} attestations fed",
            [*worker, "--count", str(args.jobs), "--image", IMAGE, "--name", "demo",
             "--simulated-pki", str(root_dir)],
            tokens[WORKER],
        ),
        "SEV-SNP": (
            f"AMD SEV-SNP: {args.snp_jobs} attestations fed",
            [*worker, "--count", str(args.snp_jobs), "--tee", AMD_SEV_SNP,
             "--image", SNP_IMAGE, "--name", "demo-snp", "--simulated-amd", str(amd_dir)],
            tokens[SNP_WORKER],
        ),
        "TDX": (
            f"Intel TDX: {args.tdx_jobs} attestations fed",
            [*worker, "--count", str(args.tdx_jobs), "--tee", INTEL_TDX,
             "--image", TDX_IMAGE, "--name", "demo-tdx", "--simulated-intel", str(intel_dir)],
            tokens[TDX_WORKER],
        ),
    }  # fmt: skip
    if args.gpu_jobs:
        runs["GPU"] = (
            f"One verdict per inference (SEV-SNP + {DEMO_GPUS} GPUs + {DEMO_SWITCHES} "
            f"NVSwitch + result): {args.gpu_jobs} inferences fed",
            [*worker, "--count", str(args.gpu_jobs), "--tee", AMD_SEV_SNP,
             "--image", SNP_IMAGE, "--name", "demo-gpu", "--simulated-amd", str(amd_dir),
             "--gpus", str(DEMO_GPUS), "--switches", str(DEMO_SWITCHES),
             "--simulated-nvidia", str(root_dir.parent / "simulated-nvidia")],
            tokens[GPU_WORKER],
        )  # fmt: skip
    if args.tpm_jobs:
        runs["TPM"] = (
            f"TPM 2.0 (swtpm, enrolled AK): {args.tpm_jobs} quotes fed",
            [*worker, "--count", str(args.tpm_jobs), "--tee", TPM2_QUOTE, "--image", TPM_IMAGE,
             "--name", "demo-tpm", "--tpm-state", str(root_dir.parent / "tpm")],
            tokens[TPM_WORKER],
        )  # fmt: skip
        runs["NitroTPM"] = (
            f"TPM 2.0 as on EC2 (swtpm, simulated NitroTPM document binds the AK): "
            f"{args.tpm_jobs} quotes fed",
            [*worker, "--count", str(args.tpm_jobs), "--tee", TPM2_QUOTE, "--tpm-nitro",
             "--simulated-pki", str(root_dir), "--image", TPM_IMAGE, "--name", "demo-nitrotpm",
             "--tpm-state", str(root_dir.parent / "nitrotpm")],
            tokens[NITROTPM_WORKER],
        )  # fmt: skip
    done = _run_side_by_side(
        *(
            (arguments, {**env, "ATTEST_LEDGER_WORKER_TOKEN": token})
            for _, arguments, token in runs.values()
        )
    )
    for (name, (title, _, _)), finished in zip(runs.items(), done, strict=True):
        say(title)
        _show_worker(finished.stdout, finished.stderr, name)
    return dict(zip(runs, done, strict=True))


def _run_side_by_side(
    *runs: tuple[list[str], dict[str, str]],
) -> list[subprocess.CompletedProcess[str]]:
    """Run the workers at once (as Nitro, SEV-SNP and TDX fleets feed one service) and
    wait for all of them; their output is shown afterwards, one worker at a time."""
    started = [
        (
            arguments,
            subprocess.Popen(  # noqa: S603 - our own CLI
                arguments, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ),
        )
        for arguments, env in runs
    ]
    done = []
    try:
        for arguments, process in started:
            out, err = process.communicate()
            done.append(subprocess.CompletedProcess(arguments, process.returncode, out, err))
    finally:
        for _, process in started:
            if process.poll() is None:  # interrupted: do not leave a worker behind
                process.kill()
                process.wait()
    return done


def _set_up(
    settings: Settings, data: Path, root_dir: Path, amd_dir: Path, intel_dir: Path, *, tpm: bool
) -> tuple[str, Any, dict[str, str]]:
    """Steps 1-3, each skipped when already done."""
    where = (
        "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL 18 in {data}/postgres"
    )
    say(f"database: {where}")
    url = database.database_url(settings)
    database.upgrade(url)
    if settings.ledger_key_path.exists():
        signer = load_signing_key(settings.ledger_key_path)
        say(f"signing key: {settings.ledger_key_path} (kept)")
    else:
        signer = create_signing_key(settings.ledger_key_path, settings.ledger_origin)
        say(f"signing key: {settings.ledger_key_path} (created, mode 0600)")
    ear, created = EarSigner.load_or_create(settings.ear_key_path)
    say(f"EAR key: {settings.ear_key_path} ({'created, mode 0600' if created else 'kept'}; "
        f"kid {ear.kid})")  # fmt: skip
    now = datetime.now(UTC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        load_or_create_root(root_dir, at=now)
    say(f"simulated Nitro root (NOT AWS): {settings.trust_root_path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        SimulatedAmdPki.load_or_create(amd_dir, at=now)  # RSA-4096 keys: seconds, the first time
    say(f"simulated AMD root, ARK (NOT AMD): {settings.snp_trust_root_path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        SimulatedIntelPki.load_or_create(intel_dir, at=now)
    say(f"simulated Intel SGX root (NOT Intel): {settings.intel_trust_root_path}")
    nvidia, rims = _simulated_nvidia(data / "simulated-nvidia", now)
    engine = database.engine_for(dataclasses.replace(settings, database_url=url), pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            nitro = _client(session, WORKER, "worker", data / "demo-worker.token")
            snp = _client(session, SNP_WORKER, "worker", data / "demo-snp-worker.token")
            tdx = _client(session, TDX_WORKER, "worker", data / "demo-tdx-worker.token")
            tpm_worker = _client(session, TPM_WORKER, "worker", data / "demo-tpm-worker.token")
            nitrotpm = _client(
                session, NITROTPM_WORKER, "worker", data / "demo-nitrotpm-worker.token"
            )
            gpu = _client(session, GPU_WORKER, "worker", data / "demo-gpu-worker.token")
            tokens = {WORKER: nitro[1], SNP_WORKER: snp[1], TDX_WORKER: tdx[1],
                      TPM_WORKER: tpm_worker[1], NITROTPM_WORKER: nitrotpm[1],
                      GPU_WORKER: gpu[1]}  # fmt: skip
            _client(session, AUDITOR, "reader", data / "demo-auditor.token")
            _policy(
                session,
                workers=[(IMAGE, nitro[0]), (SNP_IMAGE, snp[0]), (TDX_IMAGE, tdx[0]),
                         (TPM_IMAGE, tpm_worker[0]), (TPM_IMAGE, nitrotpm[0]),
                         (SNP_IMAGE, gpu[0]), (GPU_IMAGE, gpu[0]), (SWITCH_IMAGE, gpu[0])],
                nvidia=nvidia,
            )  # fmt: skip
            kept = keep_rims(session, [RimDocument(p.read_bytes()) for p in rims], source="import")
            if kept:
                say(f"collateral: the simulated GPUs' and NVSwitch's {kept} RIMs imported")
            if tpm:
                _enrol_swtpm(session, data / "tpm")
            _portal_user(session, data / "demo-portal.password")
    finally:
        engine.dispose()
    return url, signer, tokens


def _simulated_nvidia(directory: Path, now: datetime) -> tuple[SimulatedNvidiaPki, list[Path]]:
    """The simulated NVIDIA device and RIM PKI, and the RIMs of its devices' firmware."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        nvidia = SimulatedNvidiaPki.load_or_create(directory, at=now)
    rims = write_simulated_rims(nvidia, directory)
    say(f"simulated NVIDIA device and RIM roots (NOT NVIDIA): {directory}")
    return nvidia, rims


def _client(session: Any, name: str, role: str, token_file: Path) -> tuple[str, str]:
    """(the name of the client the token file's token belongs to, the token)."""
    exists = session.execute(select(ApiClient).where(ApiClient.name == name)).scalar_one_or_none()
    if exists is not None and token_file.exists():
        token = token_file.read_text().strip()
        principal = authenticate(session, token)
        return (principal.name if principal is not None else name), token
    if exists is not None:  # the token is lost: a new client name keeps the history honest
        name = f"{name}-{int(time.time())}"
    token = create_client(session, name, role)
    descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    say(f"{role} {name!r}: token in {token_file} (mode 0600)")
    return name, token


def _portal_user(session: Any, password_file: Path) -> None:
    """A portal account for the demo; its password is random, kept in a 0600 file."""
    exists = session.execute(
        select(PortalUser.id).where(PortalUser.name == PORTAL_USER)
    ).scalar_one_or_none()
    if exists is not None and password_file.exists():
        return
    password = secrets.token_urlsafe(18)
    if exists is None:
        add_user(session, PORTAL_USER, "auditor", password)
    else:  # the password file is lost: a new password
        set_password(session, PORTAL_USER, password)
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
    say(f"portal user {PORTAL_USER!r}: password in {password_file} (mode 0600)")


def _google_roots(data: Path) -> list[Path]:
    """The pinned Google AK roots, written out as PEM for the hints' --trust-root."""
    folder = data / "google-roots"
    folder.mkdir(exist_ok=True)
    paths = []
    for anchor in google_roots():
        path = folder / f"{anchor.fingerprint[:16]}.pem"
        path.write_text(ssl.DER_cert_to_PEM_cert(anchor.der))
        paths.append(path)
    return paths


def _tpm_tools() -> bool:
    return all(shutil.which(tool) for tool in ("swtpm", "swtpm_setup", "tpm2_quote"))


def _enrol_swtpm(session: Any, state: Path) -> None:
    """Start the demo's swtpm once (manufactured: an EK certificate from swtpm's own local
    CA), make or find its attestation key, and enrol it unless it is enrolled: the TPM
    worker's quotes are then judged on the ``enrolled`` path."""
    with Swtpm(state / "swtpm", manufacture=True) as swtpm:
        attester = TpmAttester(swtpm.tcti, state / "attester")
        digest = hashlib.sha256(attester.ak_public_der()).hexdigest()
        if enrolment_of(session, digest) is not None:
            say(f"TPM: the swtpm's AK is enrolled already (SHA-256 {digest[:16]}...)")
            return
        ek = attester.ek_certificate()
        cas = swtpm.ca_certificates if ek is not None else ()
        done = enroll(
            session, TPM_MACHINE, attester.ak_public_pem(), now=datetime.now(UTC),
            ek_certificate=ek, ek_cas=cas,
        )  # fmt: skip
    say(
        f"TPM: the swtpm's AK enrolled as {TPM_MACHINE!r} (entry {done.index}; EK certificate "
        f"{done.ek_chain} against swtpm's local CA: a simulator, not a TPM vendor)"
    )


def _policy(session: Any, *, workers: list[tuple[str, str]], nvidia: SimulatedNvidiaPki) -> None:
    """The demo images, and the demo workers (by the names their tokens belong to: a client
    made again after its token was lost has another) allowed to attest them."""
    store = PolicyStore()
    if session.get(PolicyImage, IMAGE) is None:
        pcrs = simulated_image_pcrs(IMAGE)
        store.add_image(session, IMAGE, {i: pcrs[i] for i in (0, 1, 2)})
        say(f"policy: image {IMAGE!r} (PCR0-2 of the simulated enclave) added")
    if session.get(PolicyImage, SNP_IMAGE) is None:
        measurement = simulated_snp_measurement(SNP_IMAGE).hex()
        store.add_reference(session, SNP_IMAGE, SNP, {"measurement": measurement})
        say(f"policy: SEV-SNP image {SNP_IMAGE!r} (the simulated guest's measurement) added")
    if session.get(PolicyImage, TDX_IMAGE) is None:
        mr_td = simulated_tdx_measurement(TDX_IMAGE).hex()
        store.add_reference(session, TDX_IMAGE, TDX, {"mr_td": mr_td})
        say(f"policy: TDX image {TDX_IMAGE!r} (the simulated trust domain's MRTD) added")
    if session.get(PolicyImage, TPM_IMAGE) is None:
        model = hashlib.sha256(job_events(TPM_IMAGE, ResultDigest.of(b""))[0]).hexdigest()
        event = {"pcr": JOB_PCR, "digest": {"sha256": model}, "label": "model"}
        store.add_reference(session, TPM_IMAGE, TPM, {"events": [event]})
        say(f"policy: TPM image {TPM_IMAGE!r} (the model event of PCR {JOB_PCR}'s log) added")
    if session.get(PolicyImage, GPU_IMAGE) is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedNvidiaWarning)
            hopper, switch = simulated_devices(nvidia, gpus=1, switches=1)
        store.add_reference(
            session, GPU_IMAGE, NVIDIA,
            {"arch": "HOPPER", "driver_versions": [hopper.driver],
             "vbios_versions": [hopper.vbios]},
        )  # fmt: skip
        store.add_reference(
            session, SWITCH_IMAGE, NVIDIA, {"arch": "LS10", "vbios_versions": [switch.vbios]}
        )
        say(
            f"policy: GPU image {GPU_IMAGE!r} (Hopper, driver {hopper.driver}, VBIOS "
            f"{hopper.vbios}) and NVSwitch image {SWITCH_IMAGE!r} added"
        )
    for image, worker in workers:
        worker_id = session.execute(select(ApiClient.id).where(ApiClient.name == worker)).scalar()
        if worker_id is not None and session.get(WorkerImage, (worker_id, image)) is None:
            store.allow(session, worker, image)
            say(f"policy: {worker} may attest {image}")


def _wait_ready(server: str, service: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{server}/readyz", timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    return False


def _show_worker(stdout: str, stderr: str, tee: str) -> None:
    for line in stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        reasons = ", ".join(item.get("reasons") or []) or item.get("error", "")
        bad = f" (bad on purpose: {item['bad']})" if item.get("bad") else ""
        index, verdict = item.get("index", "-"), item.get("verdict", "refused")
        print(f"    entry {index:>4}  {tee:<8} {verdict:<16} {reasons}{bad}")
    for line in stderr.splitlines():
        if line.startswith("worker:"):
            say(f"{tee} {line}")


def _an_attestation(worker_stdout: str) -> int | None:
    """The index of a good attestation a demo worker just recorded (the hints show it)."""
    for line in worker_stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item.get("index"), int) and not item.get("bad"):
            return int(item["index"])
    return None


def _where_to_look(
    server: str, data: Path, key: Any, shown: dict[str, int | None], *, running: bool
) -> None:
    """The hints; ``shown``: a good attestation of each kind, by the name the demo shows
    the kind under (Nitro, SEV-SNP, TDX)."""
    cli = (Path(sys.prefix) / "bin" / "attest-ledger").resolve()
    reader = f'-H "Authorization: Bearer $(cat {data}/demo-auditor.token)"'
    worker = f"ATTEST_LEDGER_WORKER_TOKEN=$(cat {data}/demo-worker.token)"
    snp_worker = f"ATTEST_LEDGER_WORKER_TOKEN=$(cat {data}/demo-snp-worker.token)"
    tdx_worker = f"ATTEST_LEDGER_WORKER_TOKEN=$(cat {data}/demo-tdx-worker.token)"
    tpm_worker = f"ATTEST_LEDGER_WORKER_TOKEN=$(cat {data}/demo-tpm-worker.token)"
    gpu_worker = f"ATTEST_LEDGER_WORKER_TOKEN=$(cat {data}/demo-gpu-worker.token)"
    roots = (
        f"--trust-root {data}/simulated-pki/root.pem --trust-root {data}/simulated-amd/{ARK_FILE}"
        f" --trust-root {data}/simulated-intel/{INTEL_ROOT_FILE}"
    )
    if shown.get("GPU") is not None:  # a composite verdict names the device and RIM roots
        roots += (
            f" --trust-root {data}/simulated-nvidia/{DEVICE_ROOT_FILE}"
            f" --trust-root {data}/simulated-nvidia/{RIM_ROOT_FILE}"
        )
    if shown.get("TPM") is not None:  # a TPM verdict names the pinned Google AK roots too
        roots += "".join(f" --trust-root {path}" for path in _google_roots(data))
    head = (
        [f"The service is running on {server}"]
        if running
        else [
            "The demo has run and, as --no-wait asks, the service is now STOPPED.",
            "Start it again with `make run` (the data is kept); while it runs:",
        ]
    )
    examples = []
    entry = shown.get("Nitro")
    for label, index in (
        ("an attestation", entry),
        ("an SEV-SNP one", shown.get("SEV-SNP")),
        ("a TDX one", shown.get("TDX")),
        ("a TPM quote", shown.get("TPM")),
        ("an inference", shown.get("GPU")),
    ):
        if index is not None:
            examples.append(f"  {label:<16} curl {reader} {server}/api/v1/entries/{index}")
    if entry is not None:
        proof = f"{server}/api/v1/entries/{entry}/proof?format=tlog-proof"
        examples.append(f"  its proof        curl {reader} '{proof}'")
    lines = [
        *head,
        f"  auditor portal   {server}/portal/  (sign in as {PORTAL_USER}, password in"
        f" {data}/demo-portal.password)",
        f"  SEV-SNP entries  {server}/portal/entries?evidence_kind={AMD_SEV_SNP}",
        f"  TDX entries      {server}/portal/entries?evidence_kind={INTEL_TDX}",
        f"  TPM entries      {server}/portal/entries?evidence_kind={TPM2_QUOTE}",
        f"  NitroTPM quotes  {server}/portal/entries?evidence_kind={TPM2_QUOTE}"
        "&ak_path=aws-nitrotpm",
        f"  CPU + GPUs       {server}/portal/entries?worker={GPU_WORKER}",
        f"  readiness        {server}/readyz",
        f"  metrics          {server}/metrics",
        f"  checkpoint       {server}/api/v1/checkpoint",
        f"  ledger key       {key}",
        *examples,
        f"  counts by kind   curl {reader} '{server}/api/v1/stats?group_by=evidence_kind'",
        f"  audit the ledger ATTEST_LEDGER_DATA_DIR={data} {cli} audit",
        f"  export it        ATTEST_LEDGER_DATA_DIR={data} {cli} export {data}/ledger.tar.gz"
        f" {roots}",
        f"  check the bundle {cli} verify-bundle {data}/ledger.tar.gz --log-key '{key}' {roots}",
        f"  more jobs        {worker} {cli} worker run --server {server} --count 20 --mix"
        f" --simulated-pki {data}/simulated-pki",
        f"  more SEV-SNP     {snp_worker} {cli} worker run --server {server} --count 20 --mix"
        f" --tee {AMD_SEV_SNP} --image {SNP_IMAGE} --simulated-amd {data}/simulated-amd",
        f"  more TDX         {tdx_worker} {cli} worker run --server {server} --count 20 --mix"
        f" --tee {INTEL_TDX} --image {TDX_IMAGE} --simulated-intel {data}/simulated-intel",
        f"  more TPM         {tpm_worker} {cli} worker run --server {server} --count 20 --mix"
        f" --tee {TPM2_QUOTE} --image {TPM_IMAGE} --tpm-state {data}/tpm",
        f"  more inferences  {gpu_worker} {cli} worker run --server {server} --count 8 --mix"
        f" --tee {AMD_SEV_SNP} --image {SNP_IMAGE} --simulated-amd {data}/simulated-amd"
        f" --gpus {DEMO_GPUS} --switches {DEMO_SWITCHES}"
        f" --simulated-nvidia {data}/simulated-nvidia",
        f"  enrolled AKs     ATTEST_LEDGER_DATA_DIR={data} {cli} tpm list",
        f"Data lives in {data}; running `make run` again keeps it.",
    ]
    print("\n" + "\n".join(lines) + "\n", flush=True)
