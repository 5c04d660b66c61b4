"""``attest-ledger worker run|pki``: a simulated (or real) attester, for demos and load.

``worker run`` computes jobs, asks the service for a challenge, binds each result hash into
the evidence with the nonce, submits it and prints one JSON line per receipt. ``--tee`` picks
the kind of evidence: ``aws-nitro-enclave`` (default; an NSM document, simulated or the real
``/dev/nsm`` with ``--device``), ``amd-sev-snp`` (an SEV-SNP report, simulated on a
persisted simulated AMD root or from the real configfs-tsm with ``--device``), ``intel-tdx``
(a TDX quote with its collateral, simulated on a persisted simulated Intel root, or the quote
alone from the real configfs-tsm with ``--device``) or ``intel-sgx`` (an SGX quote with its
collateral, simulated only) or ``tpm2-quote`` (a TPM 2.0 quote with the job measured into a
PCR and logged, from swtpm, started over ``--tpm-state``, or from the TPM at ``--tpm-tcti``;
with ``--tpm-nitro`` a simulated NitroTPM document, signed under the ``--simulated-pki`` root,
vouches for swtpm's ECC AK: the ``aws-nitrotpm`` path without EC2).
Bad modes produce wrong evidence on purpose: ``--bad MODE`` for
every job, ``--mix`` for every fourth; ``stale`` does not apply to SEV-SNP, TDX or SGX (a
report or quote has no timestamp), nor ``debug`` to a TPM quote.

``--gpus N`` (with ``--switches M``, ``--gpu-arch``) attaches the evidence of N SIMULATED
NVIDIA GPUs and M NVSwitches to every job's CPU evidence, each report bound to the CPU
evidence's challenge and the result (``gpu_nonce``), under the simulated NVIDIA PKI in
``--simulated-nvidia DIR``. There is no real GPU path here. ``worker nvidia-pki DIR`` creates
that directory (its roots, and the RIMs of the simulated devices' firmware in ``DIR/rims/``)
and prints the settings a service needs to trust it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shlex
import ssl
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from attest_ledger.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from attest_ledger.settings import Settings
from enclave_worker import (
    AMD_SEV_SNP,
    AWS_NITRO_ENCLAVE,
    INTEL_SGX,
    INTEL_TDX,
    Attester,
    NitroAttester,
    SimulatedAmdPki,
    SimulatedAmdWarning,
    SimulatedIntelPki,
    SimulatedIntelWarning,
    SimulatedNitroPki,
    SimulatedNitroTpm,
    SimulatedNitroWarning,
    SimulatedNsm,
    SimulatedNvidiaPki,
    SimulatedNvidiaWarning,
    SimulatedSgxEnclave,
    SimulatedSnpChip,
    SimulatedSnpPlatform,
    SimulatedTdxPlatform,
)
from enclave_worker.client import LedgerClient, ServiceError
from enclave_worker.gpu import (
    GPU_ARCHS,
    MAX_DEVICES,
    RIMS_DIR,
    GpuAttester,
    GpuBadMode,
    simulated_devices,
    write_simulated_rims,
)
from enclave_worker.job import BadMode, Job, JobRunner, bad_modes, not_applicable
from enclave_worker.nsm import DeviceNsm, NsmUnavailable
from enclave_worker.simulated_amd import ARK_FILE
from enclave_worker.simulated_intel import ROOT_FILE as INTEL_ROOT_FILE
from enclave_worker.simulated_nvidia import DEVICE_ROOT_FILE, RIM_ROOT_FILE
from enclave_worker.simulated_pki import load_or_create_root
from enclave_worker.swtpm import Swtpm, SwtpmError
from enclave_worker.tpm import AK_TYPES, JOB_PCR, TPM2_QUOTE, TpmAttester, TpmError
from enclave_worker.tsm import ConfigfsTsmAttester, TsmError

__all__ = ["MIX", "register"]

TEES = (AWS_NITRO_ENCLAVE, AMD_SEV_SNP, INTEL_TDX, INTEL_SGX, TPM2_QUOTE)
#: The option that names each TEE's simulated root directory, and its default under the data
#: directory.
_ROOT_OPTIONS = {
    AWS_NITRO_ENCLAVE: ("simulated_pki", "simulated-pki"),
    AMD_SEV_SNP: ("simulated_amd", "simulated-amd"),
    INTEL_TDX: ("simulated_intel", "simulated-intel"),
    INTEL_SGX: ("simulated_intel", "simulated-intel"),
}
#: The simulated collateral is issued this long before the worker starts, so that a service
#: whose clock is a little behind does not find it issued in the future.
_COLLATERAL_LEEWAY = timedelta(minutes=5)
#: The order --mix cycles through (each kind skips what does not apply to it).
MIX = (
    BadMode.WRONG_IMAGE,
    BadMode.STALE,
    BadMode.WRONG_NONCE,
    BadMode.TAMPERED,
    BadMode.UNBOUND,
    BadMode.DEBUG,
    BadMode.REPLAY,
)
#: Real hardware cannot produce another image, a debug guest or an old document on demand.
_NEEDS_SIMULATION = (BadMode.WRONG_IMAGE, BadMode.DEBUG, BadMode.STALE)
#: Errors of the attesters' devices and tools: they end the run as usage errors.
_DEVICE_ERRORS = (NsmUnavailable, TsmError, TpmError, SwtpmError)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "worker", help="run a (simulated) enclave worker against the service"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    pki = actions.add_parser(
        "pki",
        help="create the persisted simulated root (Nitro: not AWS; SNP: not AMD; TDX/SGX: not "
        "Intel)",
    )
    pki.add_argument("--tee", choices=TEES, default=AWS_NITRO_ENCLAVE)
    pki.add_argument(
        "--dir",
        type=Path,
        help="default: <data dir>/simulated-pki (Nitro), simulated-amd (SNP), simulated-intel "
        "(TDX, SGX)",
    )
    pki.set_defaults(handler=run_pki)

    nvidia = actions.add_parser(
        "nvidia-pki",
        help="create the persisted SIMULATED NVIDIA device and RIM roots (not NVIDIA) and the "
        "RIMs of the simulated devices, and print the settings a service needs to trust them",
    )
    nvidia.add_argument("dir", type=Path, metavar="DIR", help="what --simulated-nvidia takes")
    nvidia.set_defaults(handler=run_nvidia_pki)

    ak = actions.add_parser(
        "tpm-ak",
        help="make (or find) the TPM attestation key and write what `attest-ledger tpm enroll` "
        "takes: the AK's public key, the EK certificate and its CA when the TPM has them",
    )
    ak.add_argument("--tpm-tcti", help="the TPM's TCTI; default: the swtpm under --tpm-state")
    ak.add_argument("--tpm-state", type=Path, help="default <data dir>/tpm (as worker run)")
    ak.add_argument("--tpm-ak-type", choices=sorted(AK_TYPES), default="ecc")
    ak.add_argument("--out", type=Path, required=True, help="a folder: ak.pem, ek.der, ek-ca-N.pem")
    ak.set_defaults(handler=run_tpm_ak)

    run = actions.add_parser("run", help="compute jobs and submit attested results")
    run.add_argument("--server", default="http://127.0.0.1:8000")
    run.add_argument("--token", help="worker token (default ATTEST_LEDGER_WORKER_TOKEN)")
    run.add_argument("--token-file", type=Path)
    run.add_argument("--count", type=int, default=10)
    run.add_argument(
        "--rate", type=float, default=0.0, help="jobs per second (0: as fast as possible)"
    )
    run.add_argument(
        "--tee", choices=TEES, default=AWS_NITRO_ENCLAVE, help="the kind of evidence to produce"
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
    run.add_argument("--simulated-pki", type=Path, help="Nitro: default <data dir>/simulated-pki")
    run.add_argument("--simulated-amd", type=Path, help="SEV-SNP: default <data dir>/simulated-amd")
    run.add_argument(
        "--simulated-intel", type=Path, help="TDX, SGX: default <data dir>/simulated-intel"
    )
    run.add_argument(
        "--device",
        action="store_true",
        help="real hardware: /dev/nsm (Nitro) or configfs-tsm (SEV-SNP, TDX)",
    )
    tpm = run.add_argument_group("TPM (--tee tpm2-quote)")
    tpm.add_argument(
        "--tpm-tcti",
        help="the TPM's TCTI (device:/dev/tpmrm0, swtpm:host=H,port=P); default: start a swtpm",
    )
    tpm.add_argument(
        "--tpm-state",
        type=Path,
        help="the AK record and last event log, and the swtpm's state when it is started here "
        "(default <data dir>/tpm)",
    )
    tpm.add_argument(
        "--tpm-pcr", type=int, default=JOB_PCR, help=f"the PCR jobs are measured into ({JOB_PCR})"
    )
    tpm.add_argument("--tpm-ak-type", choices=sorted(AK_TYPES), default="ecc")
    tpm.add_argument(
        "--tpm-sha384", action="store_true", help="quote the sha384 bank too (default sha256)"
    )
    tpm.add_argument(
        "--tpm-nitro",
        action="store_true",
        help="SIMULATED NitroTPM: a NitroTPM document (signed under --simulated-pki's root, not "
        "AWS) vouches for the AK of swtpm's quotes (ECC AK; the sha384 bank is quoted)",
    )
    gpu = run.add_argument_group(
        "NVIDIA GPUs beside the CPU TEE (SIMULATED only: there is no real GPU path here)"
    )
    gpu.add_argument(
        "--gpus",
        type=int,
        metavar="N",
        help="attach N simulated GPU reports to every job, each bound to the CPU evidence's "
        "challenge and the result; needs --simulated-nvidia",
    )
    gpu.add_argument(
        "--switches",
        type=int,
        metavar="M",
        help="and M simulated NVSwitch (LS10) reports after the GPUs (default 0)",
    )
    gpu.add_argument("--gpu-arch", choices=GPU_ARCHS, help="the GPUs' architecture (HOPPER)")
    gpu.add_argument(
        "--simulated-nvidia",
        type=Path,
        metavar="DIR",
        help="the simulated NVIDIA PKI (created if missing, with its RIMs in DIR/rims/; see "
        "`worker nvidia-pki`)",
    )
    gpu.add_argument(
        "--gpu-bad",
        choices=[m.value for m in GpuBadMode],
        help="make every job's first device report bad this way",
    )
    run.set_defaults(handler=run_worker)


def run_pki(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC)
    if args.tee in (INTEL_TDX, INTEL_SGX):
        directory = args.dir or settings.data_dir / "simulated-intel"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedIntelWarning)
            SimulatedIntelPki.load_or_create(directory, at=now)
        print(directory / INTEL_ROOT_FILE)
        return EXIT_OK
    if args.tee == AMD_SEV_SNP:
        directory = args.dir or settings.data_dir / "simulated-amd"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedAmdWarning)
            SimulatedAmdPki.load_or_create(directory, at=now)
        print(directory / ARK_FILE)
        return EXIT_OK
    directory = args.dir or settings.data_dir / "simulated-pki"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        load_or_create_root(directory, at=now)
    print(directory / "root.pem")
    return EXIT_OK


def run_nvidia_pki(args: argparse.Namespace, settings: Settings) -> int:
    """Create (or keep) the simulated NVIDIA PKI in DIR and its RIMs; print the settings."""
    try:
        _nvidia_pki(args.dir)
    except (OSError, ValueError) as exc:
        print(f"attest-ledger worker nvidia-pki: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(_nvidia_settings(args.dir))
    print(
        "attest-ledger worker nvidia-pki: a SIMULATED NVIDIA PKI (not NVIDIA): set the lines "
        "above in the service's environment and import its RIMs with `attest-ledger "
        f"collateral import {shlex.quote(str(args.dir / RIMS_DIR))}/*.xml`",
        file=sys.stderr,
    )
    return EXIT_OK


def _nvidia_pki(directory: Path) -> SimulatedNvidiaPki:
    """The PKI in ``directory`` (created if missing) with the RIMs of its devices written."""
    now = datetime.now(UTC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        pki = SimulatedNvidiaPki.load_or_create(directory, at=now)
    write_simulated_rims(pki, directory)
    return pki


def _nvidia_settings(directory: Path) -> str:
    """The environment lines that make a service trust ``directory``'s roots."""
    directory = directory.absolute()
    return "\n".join(
        [
            f"ATTEST_LEDGER_NVIDIA_TRUST_ROOT={shlex.quote(str(directory / DEVICE_ROOT_FILE))}",
            f"ATTEST_LEDGER_NVIDIA_RIM_ROOT={shlex.quote(str(directory / RIM_ROOT_FILE))}",
        ]
    )


def run_tpm_ak(args: argparse.Namespace, settings: Settings) -> int:
    """The AK's public key (PEM) and, if the TPM has one, its EK certificate (DER) and the
    CA certificates of a manufactured swtpm, written under ``--out``; the AK's SHA-256 printed."""
    state = args.tpm_state or settings.data_dir / "tpm"
    try:
        with contextlib.ExitStack() as resources:
            cas: tuple[bytes, ...] = ()
            tcti = args.tpm_tcti
            if tcti is None:
                swtpm = resources.enter_context(Swtpm(state / "swtpm", manufacture=True))
                tcti, cas = swtpm.tcti, swtpm.ca_certificates
            attester = TpmAttester(tcti, state / "attester", ak_type=args.tpm_ak_type)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "ak.pem").write_bytes(attester.ak_public_pem())
            ek = attester.ek_certificate()
            if ek is not None:
                (args.out / "ek.der").write_bytes(ek)
                for n, der in enumerate(cas):
                    (args.out / f"ek-ca-{n}.pem").write_text(ssl.DER_cert_to_PEM_cert(der))
    except (*_DEVICE_ERRORS, OSError) as exc:
        print(f"attest-ledger worker tpm-ak: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({
        "ak": str(args.out / "ak.pem"),
        "ak_sha256": hashlib.sha256(attester.ak_public_der()).hexdigest(),
        "ek_certificate": str(args.out / "ek.der") if ek is not None else None,
        "ek_ca": [str(args.out / f"ek-ca-{n}.pem") for n in range(len(cas))] if ek else [],
    }))  # fmt: skip
    return EXIT_OK


@dataclass(frozen=True)
class _Attesters:
    main: Attester
    other_image: Attester | None
    debug: Attester | None
    #: The root file a service must trust for these (None: real hardware).
    root: Path | None
    #: The option that points the worker at another simulated root.
    option: str
    #: What must be stopped when the run ends (a swtpm started for it).
    resources: contextlib.ExitStack | None = None
    #: The simulated devices beside the CPU TEE.
    gpus: GpuAttester | None = None


def _simulated_nitro(directory: Path, image: str) -> _Attesters:
    pki = _simulated_nitro_pki(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        return _Attesters(
            NitroAttester(SimulatedNsm(pki, image=image)),
            NitroAttester(SimulatedNsm(pki, image=image + "-unapproved")),
            NitroAttester(SimulatedNsm(pki, image=image, debug=True)),
            directory / "root.pem",
            "--simulated-pki",
        )


def _simulated_snp(directory: Path, image: str) -> _Attesters:
    now = datetime.now(UTC)
    if not (directory / ARK_FILE).exists():
        _creating(directory / ARK_FILE, "--simulated-amd <its data dir>/simulated-amd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedAmdWarning)
        pki = SimulatedAmdPki.load_or_create(directory, at=now)
        platform = SimulatedSnpPlatform(SimulatedSnpChip.generate(pki, at=now), image=image)
        return _Attesters(
            platform,
            platform.variant(image=image + "-unapproved"),
            platform.variant(debug=True),
            directory / ARK_FILE,
            "--simulated-amd",
        )


def _simulated_intel(directory: Path, image: str, kind: str) -> _Attesters:
    now = datetime.now(UTC)
    if not (directory / INTEL_ROOT_FILE).exists():
        _creating(directory / INTEL_ROOT_FILE, "--simulated-intel <its data dir>/simulated-intel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedIntelWarning)
        pki = SimulatedIntelPki.load_or_create(directory, at=now)
        at = now - _COLLATERAL_LEEWAY
        platform: SimulatedTdxPlatform | SimulatedSgxEnclave = (
            SimulatedTdxPlatform(pki, image=image, at=at)
            if kind == INTEL_TDX
            else SimulatedSgxEnclave(pki, image=image, at=at)
        )
        return _Attesters(
            platform,
            platform.variant(image=image + "-unapproved"),
            platform.variant(debug=True),
            directory / INTEL_ROOT_FILE,
            "--simulated-intel",
        )


def _creating(root: Path, option: str) -> None:
    # Not silently: a service trusts only the simulated root it was started with, so a
    # worker that makes its own gets every submission judged untrusted_root.
    print(
        f"attest-ledger worker: no simulated root at {root}: creating a NEW one. A service "
        f"judges this evidence untrusted_root unless it trusts this root ({root}); to feed "
        f"`make run`'s service, pass {option}",
        file=sys.stderr,
    )


def _tpm(args: argparse.Namespace, settings: Settings) -> _Attesters:
    state = args.tpm_state or settings.data_dir / "tpm"
    directory = args.simulated_pki or settings.data_dir / "simulated-pki"
    pki = _simulated_nitro_pki(directory) if args.tpm_nitro else None
    if pki is not None:
        print(
            "attest-ledger worker: SIMULATED NitroTPM (not AWS hardware): swtpm's quotes with "
            f"NitroTPM documents signed under the simulated Nitro root {directory / 'root.pem'}",
            file=sys.stderr,
        )
    resources = contextlib.ExitStack()
    try:
        tcti = args.tpm_tcti
        if tcti is None:
            if pki is None:
                print(
                    "attest-ledger worker: SWTPM, a software TPM (not hardware): its AK is "
                    "unendorsed until enrolled",
                    file=sys.stderr,
                )
            tcti = resources.enter_context(Swtpm(state / "swtpm", manufacture=True)).tcti
        options: dict[str, Any] = {
            "ak_type": args.tpm_ak_type,
            "pcr": args.tpm_pcr,
            "banks": ("sha256", "sha384") if args.tpm_sha384 or pki is not None else ("sha256",),
        }
        main = TpmAttester(tcti, state / "attester", model=args.image, **options)
        other = TpmAttester(tcti, state / "attester", model=args.image + "-unapproved", **options)
        if pki is None:
            return _Attesters(main, other, None, None, "--tpm-state", resources)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedNitroWarning)
            return _Attesters(
                SimulatedNitroTpm(main, pki),
                SimulatedNitroTpm(other, pki),
                None,
                directory / "root.pem",
                "--simulated-pki",
                resources,
            )
    except BaseException:
        resources.close()
        raise


def _simulated_nitro_pki(directory: Path) -> SimulatedNitroPki:
    now = datetime.now(UTC)
    if not (directory / "root.pem").exists():
        _creating(directory / "root.pem", "--simulated-pki <its data dir>/simulated-pki")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNitroWarning)
        return SimulatedNitroPki.generate(at=now, root=load_or_create_root(directory, at=now))


def _attesters(args: argparse.Namespace, settings: Settings) -> _Attesters:
    if args.tee == TPM2_QUOTE:
        return _tpm(args, settings)
    if args.tee in (INTEL_TDX, INTEL_SGX):
        if args.device:  # only TDX: _usage_problem refuses a real SGX device
            return _Attesters(ConfigfsTsmAttester(kind=INTEL_TDX), None, None, None, "--device")
        print(
            f"attest-ledger worker: SIMULATED {'TDX' if args.tee == INTEL_TDX else 'SGX'} "
            "(not Intel hardware)",
            file=sys.stderr,
        )
        directory = args.simulated_intel or settings.data_dir / "simulated-intel"
        return _simulated_intel(directory, args.image, args.tee)
    if args.tee == AMD_SEV_SNP:
        if args.device:
            return _Attesters(ConfigfsTsmAttester(), None, None, None, "--device")
        print("attest-ledger worker: SIMULATED SEV-SNP (not AMD hardware)", file=sys.stderr)
        return _simulated_snp(args.simulated_amd or settings.data_dir / "simulated-amd", args.image)
    if args.device:
        return _Attesters(NitroAttester(DeviceNsm()), None, None, None, "--device")
    print("attest-ledger worker: SIMULATED NSM (not AWS hardware)", file=sys.stderr)
    return _simulated_nitro(args.simulated_pki or settings.data_dir / "simulated-pki", args.image)


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with this combination of options, if anything."""
    if args.count < 0:
        return "--count must not be negative"
    problem = _gpu_usage_problem(args)
    if problem:
        return problem
    if args.tee != TPM2_QUOTE:
        tpm_options = [option for option in ("tpm_tcti", "tpm_state") if getattr(args, option)]
        if (
            tpm_options
            or args.tpm_sha384
            or args.tpm_nitro
            or args.tpm_pcr != JOB_PCR
            or args.tpm_ak_type != "ecc"
        ):
            return "the --tpm-* options are for --tee tpm2-quote"
    else:
        return _tpm_usage_problem(args)
    wanted = _ROOT_OPTIONS[args.tee][0]
    for attribute, owner in (
        ("simulated_pki", "the Nitro root"),
        ("simulated_amd", "the AMD root"),
        ("simulated_intel", "the Intel root"),
    ):
        if attribute != wanted and getattr(args, attribute) is not None:
            return (
                f"--{attribute.replace('_', '-')} is {owner}; for --tee {args.tee} give "
                f"--{wanted.replace('_', '-')}"
            )
    if args.device and args.tee == INTEL_SGX:
        return (
            f"--device: no real {INTEL_SGX} backend (an SGX quote comes from an enclave "
            "runtime's quoting library, not configfs-tsm); use --tee intel-tdx in a TD"
        )
    if args.device and (args.simulated_pki or args.simulated_amd or args.simulated_intel):
        return "--device uses real hardware: it takes no simulated root"
    bad = BadMode(args.bad) if args.bad else None
    if bad is not None and bad in not_applicable(args.tee):
        return f"--bad {bad} does not apply to {args.tee}: {not_applicable(args.tee)[bad]}"
    if args.device and bad in _NEEDS_SIMULATION:
        return f"--bad {bad} needs simulated hardware: a real device cannot be told to lie"
    return None


def _gpu_usage_problem(args: argparse.Namespace) -> str | None:
    if args.gpus is None:
        given = [
            option
            for option, value in (
                ("--switches", args.switches),
                ("--gpu-arch", args.gpu_arch),
                ("--simulated-nvidia", args.simulated_nvidia),
                ("--gpu-bad", args.gpu_bad),
            )
            if value is not None
        ]
        return f"{', '.join(given)}: only with --gpus N" if given else None
    if args.simulated_nvidia is None:
        return (
            "--gpus needs --simulated-nvidia DIR: the GPUs are simulated (there is no real GPU "
            "path here)"
        )
    if args.gpus < 1:
        return f"--gpus is at least 1, not {args.gpus}"
    switches = args.switches or 0
    if switches < 0:
        return f"--switches must not be negative, not {switches}"
    if args.gpus + switches > MAX_DEVICES:
        return (
            f"at most {MAX_DEVICES} devices per submission: --gpus + --switches is "
            f"{args.gpus + switches}"
        )
    return None


def _tpm_usage_problem(args: argparse.Namespace) -> str | None:
    if args.device:
        return "--device is not for a TPM: give its TCTI with --tpm-tcti device:/dev/tpmrm0"
    if args.simulated_amd or args.simulated_intel or (args.simulated_pki and not args.tpm_nitro):
        return (
            "--tee tpm2-quote takes no simulated root, but with --tpm-nitro the Nitro one "
            "(--simulated-pki)"
        )
    if args.tpm_nitro and args.tpm_ak_type != "ecc":
        return (
            "--tpm-nitro: a NitroTPM document binds an ECC AK (its public_key is the AK's "
            f"point 04||X||Y); an {args.tpm_ak_type.upper()} AK cannot be bound"
        )
    if args.tpm_nitro and args.tpm_tcti and args.tpm_tcti.startswith("device:"):
        return (
            "--tpm-nitro simulates the NitroTPM document: a real one comes from /dev/nsm on an "
            "EC2 instance with NitroTPM, not from this worker; give no device TCTI with it"
        )
    if not 0 <= args.tpm_pcr <= 23:
        return f"--tpm-pcr is a PCR index, 0..23, not {args.tpm_pcr}"
    bad = BadMode(args.bad) if args.bad else None
    if bad is not None and bad in not_applicable(TPM2_QUOTE):
        return f"--bad {bad} does not apply to {TPM2_QUOTE}: {not_applicable(TPM2_QUOTE)[bad]}"
    return None


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
    problem = _usage_problem(args)
    if problem:
        print(f"attest-ledger worker run: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        gpus = _gpus(args) if args.gpus is not None else None
    except (OSError, ValueError) as exc:
        print(f"attest-ledger worker run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        attesters = _attesters(args, settings)
    except _DEVICE_ERRORS as exc:
        print(f"attest-ledger worker run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with attesters.resources or contextlib.nullcontext():
        return _run(args, token, replace(attesters, gpus=gpus))


def _gpus(args: argparse.Namespace) -> GpuAttester:
    directory: Path = args.simulated_nvidia
    if not (directory / DEVICE_ROOT_FILE).exists():
        print(
            f"attest-ledger worker: no simulated NVIDIA PKI in {directory}: creating a NEW one. "
            "A service judges these GPUs untrusted_root unless it trusts it:\n"
            f"{_nvidia_settings(directory)}\nand completes their RIMs once they are imported: "
            f"`attest-ledger collateral import {shlex.quote(str(directory / RIMS_DIR))}/*.xml`",
            file=sys.stderr,
        )
    pki = _nvidia_pki(directory)
    arch = args.gpu_arch or "HOPPER"
    switches = args.switches or 0
    print(
        f"attest-ledger worker: SIMULATED NVIDIA {arch} GPUs x{args.gpus}"
        + (f" and LS10 NVSwitches x{switches}" if switches else "")
        + " (not NVIDIA hardware)",
        file=sys.stderr,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulatedNvidiaWarning)
        return GpuAttester(simulated_devices(pki, gpus=args.gpus, switches=switches, arch=arch))


def _run(args: argparse.Namespace, token: str, attesters: _Attesters) -> int:
    applicable = bad_modes(args.tee)
    mix = [mode for mode in MIX if mode in applicable]
    if args.device:
        mix = [mode for mode in mix if mode not in _NEEDS_SIMULATION]
    client = LedgerClient(args.server, token)
    runner = JobRunner(
        client,
        attesters.main,
        other_image=attesters.other_image,
        debug=attesters.debug,
        gpus=attesters.gpus,
    )
    gpu_bad = GpuBadMode(args.gpu_bad) if args.gpu_bad else None
    verdicts: Counter[str] = Counter()
    failures = untrusted = untrusted_devices = 0
    started = time.monotonic()
    try:
        for n in range(args.count):
            if args.rate > 0:
                time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            bad = (
                BadMode(args.bad)
                if args.bad
                else mix[(n // 4) % len(mix)]
                if args.mix and n % 4 == 3
                else None
            )
            job = Job(id=f"{args.name}-{started:.0f}-{n}", input=f"{args.name} input {n}".encode())
            try:
                receipt = runner.run(job, bad, gpu_bad=gpu_bad)
            except ServiceError as exc:
                failures += 1
                print(
                    json.dumps({"job": job.id, "error": exc.code, "detail": exc.detail}), flush=True
                )
                continue
            except _DEVICE_ERRORS as exc:
                print(f"attest-ledger worker run: {exc}", file=sys.stderr)
                return EXIT_USAGE
            verdict = receipt["verdict"]
            verdicts[verdict["status"]] += 1
            untrusted += verdict.get("error") == "untrusted_root"
            untrusted_devices += any(
                reason.get("code") == "untrusted_root"
                and str(reason.get("submod", "")).startswith(("gpu", "switch"))
                for reason in verdict["reasons"]
            )
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
    if untrusted and attesters.root is not None:
        print(
            f"worker: {untrusted} submissions were judged untrusted_root: the service does not "
            f"trust this worker's simulated root; pass {attesters.option} with the directory "
            f"whose root the service trusts (this worker's: {attesters.root})",
            file=sys.stderr,
        )
    if untrusted_devices and args.simulated_nvidia is not None:
        print(
            f"worker: {untrusted_devices} submissions had devices judged untrusted_root: the "
            "service does not trust this worker's simulated NVIDIA roots; set in its "
            f"environment:\n{_nvidia_settings(args.simulated_nvidia)}",
            file=sys.stderr,
        )
    return EXIT_OK if failures == 0 else EXIT_REJECTED
