"""``attest-ledger policy ...``: the reference values, each change recorded in the ledger."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from attest_ledger import database
from attest_ledger.evidence_input import read_evidence
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.policy_store import SNP, SNP_IMAGE_FIELDS, PolicyError, PolicyStore
from attest_ledger.settings import Settings
from ledger.db import make_session_factory, session_scope
from verifier import VerifierError, parse_evidence, parse_report

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
        help="add or remove a named reference image (Nitro: PCRs; SEV-SNP: a launch measurement)",
    )
    image_actions = image.add_subparsers(dest="image_action", required=True, metavar="ACTION")
    add = image_actions.add_parser("add", help="add an image")
    add.add_argument("name")
    add.add_argument(
        "--type",
        default="aws-nitro-enclave",
        choices=("aws-nitro-enclave", "amd-sev-snp"),
        help="the evidence kind the image is for (default aws-nitro-enclave)",
    )
    nitro = add.add_argument_group("aws-nitro-enclave")
    nitro.add_argument(
        "--pcr", action="append", default=[], metavar="INDEX=HEX", help="a PCR value (repeat)"
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
    add.set_defaults(handler=run_image_add)
    remove = image_actions.add_parser(
        "remove", help="remove an image (and every permission for it)"
    )
    remove.add_argument("name")
    remove.set_defaults(handler=run_image_remove)

    options = actions.add_parser(
        "set", help="set debug allowance, maximum age, clock skew (and SEV-SNP's settings)"
    )
    options.add_argument(
        "--type",
        default="aws-nitro-enclave",
        choices=("aws-nitro-enclave", "amd-sev-snp"),
        help="whose settings: Nitro's (default, with the shared age and skew) or SEV-SNP's",
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
    options.set_defaults(handler=run_set)

    for verb, text in (
        ("allow", "let a worker attest an image"),
        ("deny", "stop a worker attesting an image"),
    ):
        permission = actions.add_parser(verb, help=text)
        permission.add_argument("worker")
        permission.add_argument("image")
        permission.set_defaults(handler=run_permission, verb=verb)


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


def run_image_add(args: argparse.Namespace, settings: Settings) -> int:
    if args.type == "amd-sev-snp":
        return _snp_image_add(args, settings)
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


def run_permission(args: argparse.Namespace, settings: Settings) -> int:
    if args.verb == "allow":
        return _change(
            settings, lambda store, session: store.allow(session, args.worker, args.image)
        )
    return _change(settings, lambda store, session: store.deny(session, args.worker, args.image))
