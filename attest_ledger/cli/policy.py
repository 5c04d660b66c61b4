"""``attest-ledger policy ...``: the reference values, each change recorded in the ledger."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from attest_ledger import database
from attest_ledger.cli.verify import UsageError, read_endorsements
from attest_ledger.cli.verify_nvidia import NVIDIA as NVIDIA_KIND
from attest_ledger.cli.verify_nvidia import nvidia_devices
from attest_ledger.cli.verify_tpm import read_input, tpm_input
from attest_ledger.evidence_input import read_evidence
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.policy_store import (
    NVIDIA,
    SGX,
    SNP,
    SNP_IMAGE_FIELDS,
    TDX,
    TPM,
    PolicyError,
    PolicyStore,
)
from attest_ledger.settings import Settings
from ledger.db import make_session_factory, session_scope
from verifier import Endorsement, Evidence, VerifierError, parse_evidence, parse_report
from verifier.nvidia import NvidiaVerifier
from verifier.tdx import EnclaveReport, TdReport, parse_quote
from verifier.tdx.policy import TD_IMAGE_FIELDS
from verifier.tpm import parse_quote as parse_tpm_quote
from verifier.tpm.replay import replay_logs

#: The evidence kinds a reference image or settings can be given for.
KINDS = ("aws-nitro-enclave", "amd-sev-snp", "intel-tdx", "intel-sgx", "tpm2-quote", NVIDIA)
#: TDX image values that, like the RTMRs, are taken from a quote only when they are not zero.
_TD_OPTIONAL_FROM_QUOTE = ("mr_config_id", "mr_owner", "mr_owner_config")
_SGX_IMAGE_FLAGS = ("mr_enclave", "mr_signer", "isv_prod_id", "min_isv_svn")
_DCAP_SET_FLAGS = ("tcb_status", "allowed_advisories")
_TDX_SET_FLAGS = ("xfam_allowed", "min_tee_tcb_svn")
_SNP_SET_FLAGS = ("allow_smt", "allow_migration_agent", "max_vmpl", "min_tcb")
_TPM_SET_FLAGS = ("ak_paths", "require_event_log", "reject_all_reset")
_NVIDIA_SET_FLAGS = ("require_rims", "feature_flags", "min_gpus", "min_switches")

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "policy",
        help="manage reference values (enclave images, debug, age, skew, who may attest what)",
        description="Every change is appended to the ledger with the complete resulting policy.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the policy in force as JSON")
    show.set_defaults(handler=run_show)

    image = actions.add_parser(
        "image",
        help="add or remove a named reference image (Nitro: PCRs; SEV-SNP: a launch "
        "measurement; TDX: MRTD and RTMRs; SGX: MRENCLAVE and/or MRSIGNER; TPM: PCRs by bank "
        "and expected events; NVIDIA: an arch, driver and VBIOS versions)",
    )
    image_actions = image.add_subparsers(dest="image_action", required=True, metavar="ACTION")
    _register_image_add(image_actions)
    remove = image_actions.add_parser(
        "remove", help="remove an image (and every permission for it)"
    )
    remove.add_argument("name")
    remove.set_defaults(handler=run_image_remove)

    _register_set(actions)

    for verb, text in (
        ("allow", "let a worker attest an image"),
        ("deny", "stop a worker attesting an image"),
    ):
        permission = actions.add_parser(verb, help=text)
        permission.add_argument("worker")
        permission.add_argument("image")
        permission.set_defaults(handler=run_permission, verb=verb)


def _register_image_add(image_actions: Any) -> None:
    add = image_actions.add_parser("add", help="add an image")
    add.add_argument("name")
    add.add_argument(
        "--type",
        default="aws-nitro-enclave",
        choices=KINDS,
        help="the evidence kind the image is for (default aws-nitro-enclave)",
    )
    nitro = add.add_argument_group("aws-nitro-enclave and tpm2-quote")
    nitro.add_argument(
        "--pcr",
        action="append",
        default=[],
        metavar="[BANK:]INDEX=HEX",
        help="a PCR value (repeat); Nitro: INDEX=HEX; TPM: BANK:INDEX=HEX, the bank (sha1, "
        "sha256, sha384, sha512) required",
    )
    nitro.add_argument(
        "--from-document",
        metavar="FILE",
        help="take PCR0, PCR1 and PCR2 from an attestation document (CBOR, hex or base64)",
    )
    snp = add.add_argument_group("amd-sev-snp")
    snp.add_argument("--measurement", metavar="HEX", help="the launch measurement (96 hex)")
    for field in SNP_IMAGE_FIELDS[1:]:
        snp.add_argument(f"--{field.replace('_', '-')}", metavar="HEX", help=f"expected {field}")
    snp.add_argument(
        "--from-report",
        metavar="FILE",
        help="take the measurement (and host_data, ids and key digests) from an SEV-SNP report",
    )
    snp.add_argument(
        "--from-ovmf",
        metavar="FILE",
        help="compute the expected launch measurement from the guest's OVMF (sev-snp-measure)",
    )
    snp.add_argument("--vcpus", type=int, default=1, help="--from-ovmf: vCPUs (1)")
    snp.add_argument("--vcpu-type", default="EPYC-v4", help="--from-ovmf: vCPU type (EPYC-v4)")
    snp.add_argument(
        "--vmm-type", default="QEMU", choices=("QEMU", "ec2", "gce"), help="--from-ovmf: VMM"
    )
    snp.add_argument(
        "--guest-features",
        type=lambda text: int(text, 0),
        default=0x21,
        help="--from-ovmf: SEV features of the guest (0x21, sev-snp-measure's default)",
    )
    snp.add_argument("--kernel", metavar="FILE", help="--from-ovmf: measured direct boot")
    snp.add_argument("--initrd", metavar="FILE", help="--from-ovmf: measured direct boot")
    snp.add_argument("--append", metavar="CMDLINE", help="--from-ovmf: kernel command line")
    tdx = add.add_argument_group("intel-tdx")
    tdx.add_argument("--mr-td", metavar="HEX", help="the TD's MRTD (96 hex)")
    for field in TD_IMAGE_FIELDS:
        tdx.add_argument(
            f"--{field.replace('_', '-')}", metavar="HEX", help=f"expected {field} (96 hex)"
        )
    sgx = add.add_argument_group("intel-sgx")
    sgx.add_argument("--mr-enclave", metavar="HEX", help="the enclave's MRENCLAVE (64 hex)")
    sgx.add_argument("--mr-signer", metavar="HEX", help="the enclave signer's MRSIGNER (64 hex)")
    sgx.add_argument("--isv-prod-id", type=int, metavar="N", help="the ISV product ID")
    sgx.add_argument("--min-isv-svn", type=int, metavar="N", help="the lowest ISV SVN accepted")
    tpm = add.add_argument_group("tpm2-quote")
    tpm.add_argument(
        "--event",
        action="append",
        default=[],
        metavar="PCR:BANK=HEX[:LABEL]",
        help="an event the quote's event log must hold: its PCR, and its digest in that bank "
        "(repeat)",
    )
    nvidia = add.add_argument_group("nvidia-gpu")
    nvidia.add_argument(
        "--arch",
        metavar="HOPPER|BLACKWELL|LS10",
        help="the devices' architecture (GPUs: HOPPER, BLACKWELL; NVSwitch: LS10)",
    )
    nvidia.add_argument(
        "--driver-version",
        action="append",
        default=[],
        metavar="V",
        help="a driver version accepted (repeat; GPUs only: an NVSwitch reports none)",
    )
    nvidia.add_argument(
        "--vbios-version",
        action="append",
        default=[],
        metavar="V",
        help="a VBIOS version accepted (repeat)",
    )
    nvidia.add_argument(
        "--from-evidence",
        metavar="FILE",
        help="take the arch (from each device's leaf certificate), driver and VBIOS versions "
        "from NVIDIA evidence: NVIDIA's evidence JSON (every device in it; with --arch, those "
        "of that arch), or one SPDM report (hex or binary) with its --chain; read, not "
        "verified; versions given as options are accepted too",
    )
    nvidia.add_argument(
        "--chain",
        metavar="FILE",
        help="--from-evidence with one SPDM report: the device's certificate chain, leaf first "
        "(PEM or DER), whose leaf names the arch",
    )
    add.add_argument_group("intel-tdx, intel-sgx and tpm2-quote").add_argument(
        "--from-quote",
        metavar="FILE",
        help="take the values from a quote (TDX: MRTD, and RTMR0-3 and the owner values "
        "that are not zero; SGX: MRENCLAVE, MRSIGNER, ISV product ID and its ISV SVN as the "
        "minimum; TPM, a tpm2-quote/v1 container or a JSON sample: every quoted PCR not at a "
        "reset value (all zero or all ff), except those the quote's event log replays, which "
        "change from job to job: pin their events with --event); values given as options win",
    )
    add.set_defaults(handler=run_image_add)


def _register_set(actions: Any) -> None:
    options = actions.add_parser(
        "set",
        help="set debug allowance, maximum age, clock skew (and SEV-SNP's, TDX's, SGX's, "
        "TPM's or NVIDIA devices' settings with --type)",
    )
    options.add_argument(
        "--type",
        default="aws-nitro-enclave",
        choices=KINDS,
        help="whose settings: Nitro's (default, with the shared age and skew), or those of "
        "SEV-SNP, TDX, SGX or TPM quotes, or of NVIDIA GPUs and NVSwitches",
    )
    for flag, text in (
        ("debug", "debug-mode guests"),
        ("smt", "SEV-SNP: guests with SMT allowed"),
        ("migration-agent", "SEV-SNP: guests with a migration agent"),
    ):
        pair = options.add_mutually_exclusive_group()
        dest = "allow_" + flag.replace("-", "_")
        pair.add_argument(
            f"--allow-{flag}", dest=dest, action="store_true", default=None, help=text
        )
        pair.add_argument(f"--no-allow-{flag}", dest=dest, action="store_false")
    options.add_argument("--max-age", metavar="SECONDS|none", help="maximum document age")
    options.add_argument("--skew", type=int, metavar="SECONDS", help="clock skew tolerated")
    options.add_argument("--max-vmpl", type=int, help="SEV-SNP: the highest VMPL accepted")
    options.add_argument(
        "--min-tcb",
        action="append",
        default=[],
        metavar="COMPONENT=SVN",
        help="SEV-SNP: a minimum TCB component (bootloader, tee, snp, microcode, fmc; repeat)",
    )
    options.add_argument(
        "--tcb-status",
        action="append",
        default=None,
        metavar="STATUS=TIER|default",
        help="TDX/SGX: map an Intel TCB status to affirming, warning or contraindicated "
        "(repeat; the list replaces the previous overrides; 'default' removes them all)",
    )
    options.add_argument(
        "--allowed-advisories",
        metavar="ID,ID...|none|any",
        help="TDX/SGX: the advisories tolerated as warning (others contraindicate); 'none': "
        "every advisory contraindicates; 'any' (the default): any advisory only warns",
    )
    options.add_argument(
        "--xfam-allowed",
        metavar="HEX,HEX...|any",
        help="TDX: the XFAM values accepted (16 hex each); 'any' (the default) accepts any",
    )
    options.add_argument(
        "--min-tee-tcb-svn",
        metavar="HEX|none",
        help="TDX: the minimum TEE_TCB_SVN, byte by byte (32 hex); 'none' (the default)",
    )
    options.add_argument(
        "--ak-paths",
        metavar="PATH,PATH...",
        help="TPM: who may vouch for a quote's attestation key, among enrolled, gcp and "
        "aws-nitrotpm (the default: all three; an unendorsed AK is never accepted)",
    )
    for flag, text in (
        ("require-event-log", "TPM: a quote must come with an event log (default: no)"),
        ("reject-all-reset", "TPM: refuse a quote whose PCRs are all at reset values (default)"),
    ):
        pair = options.add_mutually_exclusive_group()
        dest = flag.replace("-", "_")
        pair.add_argument(f"--{flag}", dest=dest, action="store_true", default=None, help=text)
        pair.add_argument(f"--no-{flag}", dest=dest, action="store_false")
    options.add_argument(
        "--require-rims",
        metavar="driver,vbios|none",
        help="NVIDIA: the RIMs that must judge each device's measurements (default: both; an "
        "NVSwitch has no driver RIM)",
    )
    options.add_argument(
        "--feature-flags",
        metavar="SPT,MPT,PPCIE|any",
        help="NVIDIA: the CC modes accepted, as a report states them (a report stating none "
        "fails); 'any' (the default) does not look at the mode",
    )
    options.add_argument(
        "--min-gpus",
        type=int,
        metavar="N",
        help="NVIDIA: the GPUs (Hopper, Blackwell) that must be beside the CPU evidence of one "
        "inference (default 1, for a worker that may attest an NVIDIA image)",
    )
    options.add_argument(
        "--min-switches",
        type=int,
        metavar="M",
        help="NVIDIA: the NVSwitches (LS10) that must be beside it (default 0)",
    )
    options.set_defaults(handler=run_set)


def _change(settings: Settings, change: Any) -> int:
    engine = database.engine_for(settings, pool_size=1)
    store = PolicyStore()
    try:
        with session_scope(make_session_factory(engine)) as session:
            index = change(store, session)
    except PolicyError as exc:
        print(f"attest-ledger policy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    print(f"policy changed; recorded as ledger entry {index}", file=sys.stderr)
    return EXIT_OK


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            config = PolicyStore().current(session)
    finally:
        engine.dispose()
    print(
        json.dumps(
            {
                "revision_entry": config.revision_entry,
                "sha256": config.digest(),
                **config.snapshot(),
            },
            indent=2,
        )
    )
    return EXIT_OK


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """The options among ``names`` given on the command line, as written there."""
    return [
        "--" + name.replace("_", "-")
        for name in names
        if getattr(args, name, None) not in (None, [])
    ]


def _refuse_foreign(args: argparse.Namespace, command: str, names: tuple[str, ...]) -> bool:
    """Print why and return True if options of another evidence kind than ``--type`` were
    given (they would otherwise be ignored silently)."""
    foreign = _given(args, names)
    if foreign:
        print(
            f"attest-ledger policy {command}: {', '.join(foreign)} not for --type {args.type}",
            file=sys.stderr,
        )
    return bool(foreign)


_TDX_IMAGE_FLAGS = ("mr_td", *TD_IMAGE_FIELDS)
_IMAGE_FLAGS = {
    "aws-nitro-enclave": ("pcr", "from_document"),
    "amd-sev-snp": (*SNP_IMAGE_FIELDS, "from_report", "from_ovmf"),
    TDX: (*_TDX_IMAGE_FLAGS, "from_quote"),
    SGX: (*_SGX_IMAGE_FLAGS, "from_quote"),
    TPM: ("pcr", "event", "from_quote"),
    NVIDIA: ("arch", "driver_version", "vbios_version", "from_evidence", "chain"),
}


def run_image_add(args: argparse.Namespace, settings: Settings) -> int:
    others = tuple(
        name
        for kind, names in _IMAGE_FLAGS.items()
        if kind != args.type
        for name in names
        if name not in _IMAGE_FLAGS[args.type]
    )
    if _refuse_foreign(args, "image add", others):
        return EXIT_USAGE
    if args.type in (TDX, SGX):
        return _dcap_image_add(args, settings)
    if args.type == TPM:
        return _tpm_image_add(args, settings)
    if args.type == "amd-sev-snp":
        return _snp_image_add(args, settings)
    if args.type == NVIDIA:
        return _nvidia_image_add(args, settings)
    pcrs: dict[int, bytes] = {}
    try:
        if args.from_document:
            _, document = parse_evidence(read_evidence(args.from_document))
            pcrs.update({i: document.pcrs[i] for i in (0, 1, 2) if i in document.pcrs})
        for item in args.pcr:
            index, _, value = item.partition("=")
            pcrs[int(index)] = bytes.fromhex(value)
    except (ValueError, OSError, VerifierError) as exc:
        print(f"attest-ledger policy image add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not pcrs:
        print(
            "attest-ledger policy image add: give --pcr INDEX=HEX or --from-document FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return _change(settings, lambda store, session: store.add_image(session, args.name, pcrs))


def _snp_image_add(args: argparse.Namespace, settings: Settings) -> int:
    reference: dict[str, str] = {}
    try:
        if args.from_report:
            report = parse_report(read_evidence(args.from_report))
            reference = {"measurement": report.measurement.hex()}
            for field in SNP_IMAGE_FIELDS[1:]:
                value = bytes(getattr(report, field))
                if any(value):  # unset launch values are zero: not part of the reference
                    reference[field] = value.hex()
        if args.from_ovmf:
            reference["measurement"] = ovmf_measurement(args).hex()
        for field in SNP_IMAGE_FIELDS:
            value = getattr(args, field)
            if value is not None:
                reference[field] = value
    except (ValueError, OSError, RuntimeError, VerifierError) as exc:
        print(f"attest-ledger policy image add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if "measurement" not in reference:
        print(
            "attest-ledger policy image add: an SEV-SNP image needs --measurement HEX, "
            "--from-report FILE or --from-ovmf FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return _change(
        settings,
        lambda store, session: store.add_reference(session, args.name, SNP, reference),
    )


def _dcap_image_add(args: argparse.Namespace, settings: Settings) -> int:
    """A TDX or SGX reference image, from a quote and/or given values."""
    tdx = args.type == TDX
    reference: dict[str, Any] = {}
    try:
        if args.from_quote:
            reference = dcap_reference(parse_quote(read_evidence(args.from_quote)).body, tdx)
        for field in _TDX_IMAGE_FLAGS if tdx else _SGX_IMAGE_FLAGS:
            value = getattr(args, field)
            if value is not None:
                reference[field] = value
    except (ValueError, OSError, VerifierError) as exc:
        print(f"attest-ledger policy image add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if tdx and "mr_td" not in reference:
        print(
            "attest-ledger policy image add: a TDX image needs --mr-td HEX or --from-quote FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not tdx and not {"mr_enclave", "mr_signer"} & set(reference):
        print(
            "attest-ledger policy image add: an SGX image needs --mr-enclave HEX, "
            "--mr-signer HEX or --from-quote FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return _change(
        settings,
        lambda store, session: store.add_reference(session, args.name, args.type, reference),
    )


def _tpm_image_add(args: argparse.Namespace, settings: Settings) -> int:
    """A TPM reference image: PCR values by bank and expected events, from a quote and/or
    given values."""
    pcrs: dict[str, dict[int, str]] = {}
    events: list[dict[str, Any]] = []
    try:
        if args.from_quote:
            pcrs = tpm_pcrs_from_quote(read_input(args.from_quote))
        for item in args.pcr:
            bank, index, value = _tpm_pcr(item)
            pcrs.setdefault(bank, {})[index] = value
        events = [_tpm_event(item) for item in args.event]
    except (ValueError, OSError, VerifierError) as exc:
        print(f"attest-ledger policy image add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not any(pcrs.values()) and not events:
        print(
            "attest-ledger policy image add: a TPM image needs --pcr BANK:INDEX=HEX, "
            "--event PCR:BANK=HEX[:LABEL] or --from-quote FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    reference: dict[str, Any] = {}
    if any(pcrs.values()):
        reference["pcrs"] = {
            bank: {str(i): v for i, v in sorted(values.items())}
            for bank, values in sorted(pcrs.items())
            if values
        }
    if events:
        reference["events"] = events
    return _change(
        settings,
        lambda store, session: store.add_reference(session, args.name, TPM, reference),
    )


def _nvidia_image_add(args: argparse.Namespace, settings: Settings) -> int:
    """An NVIDIA GPU or NVSwitch reference image: an arch, driver and VBIOS versions, from
    NVIDIA evidence and/or given values (the verifier's own rules decide what is valid)."""
    arch: str | None = None if args.arch is None else args.arch.upper()
    drivers: list[str] = []
    vbioses: list[str] = []
    try:
        if args.chain is not None and args.from_evidence is None:
            raise ValueError("--chain is for --from-evidence with one SPDM report")
        if args.from_evidence is not None:
            arch, drivers, vbioses = nvidia_reference(
                read_input(args.from_evidence),
                chain=()
                if args.chain is None
                else tuple(read_endorsements(args.chain, kind=NVIDIA_KIND)),
                arch=arch,
            )
    except (ValueError, UsageError, VerifierError) as exc:
        print(f"attest-ledger policy image add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(
            f"attest-ledger policy image add: cannot read {args.from_evidence}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if arch is None:
        print(
            "attest-ledger policy image add: an NVIDIA image needs --arch HOPPER|BLACKWELL|LS10 "
            "(with --driver-version V and --vbios-version V) or --from-evidence FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    reference: dict[str, Any] = {"arch": arch}
    for field, values in (
        ("driver_versions", [*drivers, *args.driver_version]),
        ("vbios_versions", [*vbioses, *args.vbios_version]),
    ):
        if values:  # lowercased and deduplicated: the verifier compares versions lowercased
            reference[field] = sorted({v.lower() for v in values})
    return _change(
        settings,
        lambda store, session: store.add_reference(session, args.name, NVIDIA, reference),
    )


def nvidia_reference(
    data: bytes, *, chain: tuple[Endorsement, ...], arch: str | None
) -> tuple[str, list[str], list[str]]:
    """(arch, driver versions, VBIOS versions) of NVIDIA evidence: every device of an
    evidence JSON (only those of ``arch`` if it is given), or the one SPDM report ``data``
    is, its arch from the leaf of ``chain`` (or ``arch``). The arch is the one the leaf
    certificate's common name names, never the JSON's word; nothing is verified. Raises
    ValueError or VerifierError."""
    devices, unreadable = nvidia_devices(data, endorsements=chain, nonce=None)
    if unreadable is not None:
        raise unreadable
    scheme = NvidiaVerifier()
    found: list[tuple[str, str | None, str | None]] = []
    for device in devices:
        claims = scheme.describe(Evidence(NVIDIA_KIND, device.report, device.endorsements))
        if claims.arch is None and arch is None:
            where = f"device {device.index}" if len(devices) > 1 else "the report"
            raise ValueError(
                f"--from-evidence: {where}: no leaf certificate naming a known chip (GH100, "
                "GB100, LS_10), so its arch is unknown; give the device's --chain or --arch"
            )
        found.append(
            (claims.arch or str(arch), claims.report.driver_version, claims.report.vbios_version)
        )
    archs = sorted({device_arch for device_arch, _, _ in found})
    if arch is not None:
        found = [item for item in found if item[0] == arch]
        if not found:
            raise ValueError(f"--from-evidence: no {arch} device in it (found {', '.join(archs)})")
    elif len(archs) > 1:
        raise ValueError(
            f"--from-evidence: devices of several architectures ({', '.join(archs)}): an image "
            "is of one; give --arch to take those of one"
        )
    taken = found[0][0]
    drivers = sorted({d for _, d, _ in found if d is not None})
    vbioses = sorted({v for _, _, v in found if v is not None})
    print(
        f"attest-ledger policy image add: --from-evidence: {len(found)} {taken} device(s) "
        f"(read, not verified): driver {', '.join(drivers) or 'none stated'}; VBIOS "
        f"{', '.join(vbioses) or 'none stated'}",
        file=sys.stderr,
    )
    return taken, drivers, vbioses


def _tpm_pcr(item: str) -> tuple[str, int, str]:
    """``BANK:INDEX=HEX`` (sizes and ranges are the verifier's policy rules to check)."""
    where, sep, value = item.partition("=")
    bank, colon, index = where.partition(":")
    if not sep or not colon:
        raise ValueError(
            f"--pcr {item!r}: a TPM PCR is BANK:INDEX=HEX (for example sha256:7=...); the bank "
            "is required"
        )
    if not index.isdecimal():
        raise ValueError(f"--pcr {item!r}: the PCR index must be a number")
    return bank, int(index), _hex(value, f"--pcr {item!r}")


def _tpm_event(item: str) -> dict[str, Any]:
    """``PCR:BANK=HEX[:LABEL]`` as the policy's event object."""
    where, sep, rest = item.partition("=")
    pcr, colon, bank = where.partition(":")
    if not sep or not colon or not pcr.isdecimal():
        raise ValueError(f"--event {item!r}: an event is PCR:BANK=HEX[:LABEL]")
    value, _, label = rest.partition(":")
    event: dict[str, Any] = {"pcr": int(pcr), "digest": {bank: _hex(value, f"--event {item!r}")}}
    if label:
        event["label"] = label
    return event


def _hex(value: str, what: str) -> str:
    try:
        bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{what}: the value must be hexadecimal") from None
    return value.lower()


def tpm_pcrs_from_quote(data: bytes) -> dict[str, dict[int, str]]:
    """The PCR values of a quote worth pinning: every quoted PCR not at a reset value (all
    zero or all ff), except those the quote's event log replays (they change from job to job).
    The quote is parsed, and its log replayed against it, but not verified. Raises
    VerifierError or ValueError."""
    quote = tpm_input(data)
    if quote.error is not None:
        raise quote.error
    parsed = parse_tpm_quote(quote.container)
    container = parsed.container
    log = replay_logs(container.event_log, container.ima_log, parsed.pcrs)
    replayed = set(log.replayed) if log is not None else set()
    taken: dict[str, dict[int, str]] = {}
    reset: set[int] = set()
    for bank, values in parsed.pcrs.items():
        for index, value in values.items():
            if not value.strip(b"\x00") or not value.strip(b"\xff"):
                reset.add(index)
            elif index not in replayed:
                taken.setdefault(bank, {})[index] = value.hex()
    shown = "; ".join(f"{bank} PCRs {_indexes(values)}" for bank, values in taken.items())
    print(
        f"attest-ledger policy image add: --from-quote: {shown or 'no PCR'} taken; left out: "
        f"at a reset value {_indexes(reset) or 'none'}, replayed by the quote's event log "
        f"{_indexes(replayed) or 'none'}",
        file=sys.stderr,
    )
    return taken


def _indexes(indexes: Any) -> str:
    return ", ".join(str(i) for i in sorted(indexes))


def dcap_reference(body: EnclaveReport | TdReport, tdx: bool) -> dict[str, Any]:
    """The reference values a quote's body gives (policy JSON form). Raises ValueError if the
    quote is of the other TEE."""
    if tdx:
        if not isinstance(body, TdReport):
            raise ValueError("--from-quote: an SGX quote, not a TDX one (--type intel-sgx)")
        reference: dict[str, Any] = {"mr_td": body.mr_td.hex()}
        values = {
            **{f"rtmr{i}": value for i, value in enumerate(body.rtmrs)},
            **{field: getattr(body, field) for field in _TD_OPTIONAL_FROM_QUOTE},
        }
        # a register never extended, an owner value never set, is zero: not part of the image
        reference.update((field, value.hex()) for field, value in values.items() if any(value))
        return reference
    if not isinstance(body, EnclaveReport):
        raise ValueError("--from-quote: a TDX quote, not an SGX one (--type intel-tdx)")
    return {
        "mr_enclave": body.mr_enclave.hex(),
        "mr_signer": body.mr_signer.hex(),
        "isv_prod_id": body.isv_prod_id,
        "min_isv_svn": body.isv_svn,
    }


def ovmf_measurement(args: argparse.Namespace) -> bytes:
    """The SEV-SNP launch measurement of a guest booting this OVMF (sev-snp-measure)."""
    from sevsnpmeasure import guest, vcpu_types, vmm_types  # noqa: PLC0415 - only here
    from sevsnpmeasure.sev_mode import SevMode  # noqa: PLC0415

    signature = vcpu_types.CPU_SIGS.get(args.vcpu_type)
    if signature is None:
        raise ValueError(f"--vcpu-type: one of {', '.join(vcpu_types.CPU_SIGS)}")
    if not 1 <= args.vcpus <= 512:
        raise ValueError("--vcpus: 1 to 512")
    digest: bytes = guest.calc_launch_digest(
        SevMode.SEV_SNP,
        args.vcpus,
        signature,
        args.from_ovmf,
        args.kernel,
        args.initrd,
        args.append,
        args.guest_features,
        vmm_type=vmm_types.VMMType[args.vmm_type],
    )
    return digest


def run_image_remove(args: argparse.Namespace, settings: Settings) -> int:
    return _change(settings, lambda store, session: store.remove_image(session, args.name))


def run_set(args: argparse.Namespace, settings: Settings) -> int:
    if args.type == NVIDIA:
        return _nvidia_set(args, settings)
    if _refuse_foreign(args, "set", _NVIDIA_SET_FLAGS):
        return EXIT_USAGE
    if args.type == TPM:
        return _tpm_set(args, settings)
    if _refuse_foreign(args, "set", _TPM_SET_FLAGS):
        return EXIT_USAGE
    if args.type in (TDX, SGX):
        return _dcap_set(args, settings)
    if _refuse_foreign(args, "set", _DCAP_SET_FLAGS + _TDX_SET_FLAGS):
        return EXIT_USAGE
    if args.type == "amd-sev-snp":
        return _snp_set(args, settings)
    if (
        args.allow_smt is not None
        or args.allow_migration_agent is not None
        or args.min_tcb
        or (args.max_vmpl is not None)
    ):
        print(
            "attest-ledger policy set: --allow-smt, --allow-migration-agent, --max-vmpl and "
            "--min-tcb are SEV-SNP settings: add --type amd-sev-snp",
            file=sys.stderr,
        )
        return EXIT_USAGE
    max_age: int | str | None = "keep"
    if args.max_age is not None:
        if args.max_age == "none":
            max_age = None
        elif args.max_age.isdigit():
            max_age = int(args.max_age)
        else:
            print("attest-ledger policy set: --max-age takes seconds or 'none'", file=sys.stderr)
            return EXIT_USAGE
    return _change(
        settings,
        lambda store, session: store.set_options(
            session,
            allow_debug=args.allow_debug,
            max_age_seconds=max_age,
            clock_skew_seconds=args.skew,
        ),
    )


def _snp_set(args: argparse.Namespace, settings: Settings) -> int:
    if args.max_age is not None or args.skew is not None:
        print(
            "attest-ledger policy set: --max-age and --skew are shared: set them without --type",
            file=sys.stderr,
        )
        return EXIT_USAGE
    min_tcb: dict[str, int] | None = None
    if args.min_tcb:
        min_tcb = {}
        for item in args.min_tcb:
            name, _, value = item.partition("=")
            if not value.isdecimal():
                print(
                    f"attest-ledger policy set: --min-tcb {item!r}: COMPONENT=SVN", file=sys.stderr
                )
                return EXIT_USAGE
            min_tcb[name] = int(value)
    return _change(
        settings,
        lambda store, session: store.set_scheme_options(
            session,
            SNP,
            allow_debug=args.allow_debug,
            allow_smt=args.allow_smt,
            allow_migration_agent=args.allow_migration_agent,
            max_vmpl=args.max_vmpl,
            min_tcb=min_tcb,
        ),
    )


def _dcap_set(args: argparse.Namespace, settings: Settings) -> int:
    foreign = _SNP_SET_FLAGS + ("max_age", "skew") + (() if args.type == TDX else _TDX_SET_FLAGS)
    if _refuse_foreign(args, "set", foreign):
        return EXIT_USAGE
    values: dict[str, Any] = {"allow_debug": args.allow_debug}
    reset: list[str] = []
    try:
        if args.tcb_status is not None:
            values["tcb_status"] = _tcb_status(args.tcb_status)
        if args.allowed_advisories is not None:
            if args.allowed_advisories == "any":
                reset.append("allowed_advisories")
            else:
                values["allowed_advisories"] = sorted(set(_listed(args.allowed_advisories)))
        if args.xfam_allowed is not None:
            if args.xfam_allowed == "any":
                reset.append("xfam_allowed")
            else:
                values["xfam_allowed"] = [v.lower() for v in _listed(args.xfam_allowed)]
        if args.min_tee_tcb_svn is not None:
            if args.min_tee_tcb_svn == "none":
                reset.append("min_tee_tcb_svn")
            else:
                values["min_tee_tcb_svn"] = args.min_tee_tcb_svn.lower()
    except ValueError as exc:
        print(f"attest-ledger policy set: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _change(
        settings,
        lambda store, session: store.set_scheme_options(session, args.type, reset=reset, **values),
    )


def _tpm_set(args: argparse.Namespace, settings: Settings) -> int:
    foreign = ("allow_debug", "max_age", "skew", *_SNP_SET_FLAGS, *_DCAP_SET_FLAGS)
    if _refuse_foreign(args, "set", (*foreign, *_TDX_SET_FLAGS)):
        return EXIT_USAGE
    # sorted, not deduplicated: the verifier's rules refuse a path named twice
    paths = None if args.ak_paths is None else sorted(_listed(args.ak_paths))
    return _change(
        settings,
        lambda store, session: store.set_scheme_options(
            session,
            TPM,
            ak_paths=paths,
            require_event_log=args.require_event_log,
            reject_all_reset=args.reject_all_reset,
        ),
    )


def _nvidia_set(args: argparse.Namespace, settings: Settings) -> int:
    foreign = ("allow_debug", "max_age", "skew", *_SNP_SET_FLAGS, *_DCAP_SET_FLAGS)
    if _refuse_foreign(args, "set", (*foreign, *_TDX_SET_FLAGS, *_TPM_SET_FLAGS)):
        return EXIT_USAGE
    values: dict[str, Any] = {"min_gpus": args.min_gpus, "min_switches": args.min_switches}
    reset: list[str] = []
    # sorted and deduplicated, as the verifier's policy holds them
    if args.require_rims is not None:
        values["require_rims"] = sorted(set(_listed(args.require_rims)))
    if args.feature_flags == "any":
        reset.append("feature_flags")
    elif args.feature_flags is not None:
        flags = sorted(set(_listed(args.feature_flags)))
        if not flags:  # no mode accepted: every report would fail
            print(
                "attest-ledger policy set: --feature-flags: name SPT, MPT and/or PPCIE, or 'any'",
                file=sys.stderr,
            )
            return EXIT_USAGE
        values["feature_flags"] = flags
    return _change(
        settings,
        lambda store, session: store.set_scheme_options(session, NVIDIA, reset=reset, **values),
    )


def _tcb_status(items: list[str]) -> dict[str, str]:
    """``--tcb-status`` items as the policy's override map ('default' alone: no overrides)."""
    if items == ["default"]:
        return {}
    mapping: dict[str, str] = {}
    for item in items:
        status, _, tier = item.partition("=")
        if not tier:
            raise ValueError(f"--tcb-status {item!r}: STATUS=TIER (or 'default' alone)")
        mapping[status] = tier
    return mapping


def _listed(text: str) -> list[str]:
    """A comma-separated list; 'none' or '' is the empty list."""
    if text in ("none", ""):
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def run_permission(args: argparse.Namespace, settings: Settings) -> int:
    if args.verb == "allow":
        return _change(
            settings, lambda store, session: store.allow(session, args.worker, args.image)
        )
    return _change(settings, lambda store, session: store.deny(session, args.worker, args.image))
