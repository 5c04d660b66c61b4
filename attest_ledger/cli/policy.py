"""``attest-ledger policy ...``: the reference values, each change recorded in the ledger."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from attest_ledger import database
from attest_ledger.evidence_input import read_evidence
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.policy_store import PolicyError, PolicyStore
from attest_ledger.settings import Settings
from ledger.db import make_session_factory, session_scope
from verifier import VerifierError, parse_evidence

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

    image = actions.add_parser("image", help="add or remove a named enclave image (a PCR set)")
    image_actions = image.add_subparsers(dest="image_action", required=True, metavar="ACTION")
    add = image_actions.add_parser("add", help="add an image")
    add.add_argument("name")
    add.add_argument(
        "--pcr", action="append", default=[], metavar="INDEX=HEX", help="a PCR value (repeat)"
    )
    add.add_argument(
        "--from-document",
        metavar="FILE",
        help="take PCR0, PCR1 and PCR2 from an attestation document (CBOR, hex or base64)",
    )
    add.set_defaults(handler=run_image_add)
    remove = image_actions.add_parser(
        "remove", help="remove an image (and every permission for it)"
    )
    remove.add_argument("name")
    remove.set_defaults(handler=run_image_remove)

    options = actions.add_parser("set", help="set debug allowance, maximum age, clock skew")
    debug = options.add_mutually_exclusive_group()
    debug.add_argument("--allow-debug", dest="allow_debug", action="store_true", default=None)
    debug.add_argument("--no-allow-debug", dest="allow_debug", action="store_false")
    options.add_argument("--max-age", metavar="SECONDS|none", help="maximum document age")
    options.add_argument("--skew", type=int, metavar="SECONDS", help="clock skew tolerated")
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


def run_image_remove(args: argparse.Namespace, settings: Settings) -> int:
    return _change(settings, lambda store, session: store.remove_image(session, args.name))


def run_set(args: argparse.Namespace, settings: Settings) -> int:
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


def run_permission(args: argparse.Namespace, settings: Settings) -> int:
    if args.verb == "allow":
        return _change(
            settings, lambda store, session: store.allow(session, args.worker, args.image)
        )
    return _change(settings, lambda store, session: store.deny(session, args.worker, args.image))
