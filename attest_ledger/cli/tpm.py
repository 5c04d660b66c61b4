"""``attest-ledger tpm enroll|revoke|list``: TPM attestation keys an operator vouches for.

An on-premises machine's TPM quote is judged on the ``enrolled`` path: its attestation key
(AK) must have been enrolled here, before the quote was judged and not revoked since. Each
enrolment and revocation is a ledger entry (:mod:`attest_ledger.tpm_enrolments`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest_ledger import database
from attest_ledger.exit_codes import EXIT_OK, EXIT_USAGE
from attest_ledger.settings import Settings
from attest_ledger.tpm_enrolments import EnrolmentError, enroll, list_enrolments, revoke
from ledger.db import make_session_factory, session_scope
from verifier.timefmt import iso_utc

__all__ = ["register"]

_MAX_FILE = 64 * 1024


def register(commands: Any) -> None:
    parser = commands.add_parser("tpm", help="enrol and revoke TPM attestation keys (AKs)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "enroll",
        help="enrol an AK (its quotes are then judged on the 'enrolled' path); a ledger entry",
    )
    add.add_argument("name", help="the machine's name, 1-64 letters, digits, '.', '_' or '-'")
    add.add_argument("--ak", required=True, help="the AK's public key, PEM or DER (SPKI)")
    add.add_argument("--ek-cert", help="the TPM's EK certificate, PEM or DER (needs --ek-ca)")
    add.add_argument(
        "--ek-ca",
        action="append",
        default=[],
        help="a TPM vendor CA certificate the EK certificate must chain to (repeatable)",
    )
    add.set_defaults(handler=run_enroll)
    remove = actions.add_parser("revoke", help="revoke an enrolled AK for good; a ledger entry")
    remove.add_argument("name")
    remove.set_defaults(handler=run_revoke)
    listing = actions.add_parser("list", help="list enrolled AKs (one JSON object per line)")
    listing.set_defaults(handler=run_list)


def _read(path: str) -> bytes:
    with Path(path).open("rb") as handle:
        data = handle.read(_MAX_FILE + 1)
    if len(data) > _MAX_FILE:
        raise EnrolmentError(f"{path}: larger than {_MAX_FILE} bytes")
    return data


def run_enroll(args: argparse.Namespace, settings: Settings) -> int:
    try:
        ak = _read(args.ak)
        ek = _read(args.ek_cert) if args.ek_cert else None
        cas = [_read(path) for path in args.ek_ca]
    except (OSError, EnrolmentError) as exc:
        print(f"attest-ledger tpm enroll: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = database.engine_for(settings, pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            done = enroll(
                session, args.name, ak, now=datetime.now(UTC), ek_certificate=ek, ek_cas=cas
            )
    except EnrolmentError as exc:
        print(f"attest-ledger tpm enroll: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    print(
        json.dumps(
            {
                "name": done.name,
                "ak_sha256": done.ak_sha256,
                "entry": done.index,
                "ek_chain": done.ek_chain,
            }
        )
    )
    return EXIT_OK


def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            index = revoke(session, args.name, now=datetime.now(UTC))
    except EnrolmentError as exc:
        print(f"attest-ledger tpm revoke: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    print(json.dumps({"name": args.name, "revoked": True, "entry": index}))
    return EXIT_OK


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            for row in list_enrolments(session):
                print(
                    json.dumps(
                        {
                            "name": row.name,
                            "ak_sha256": row.ak_sha256.hex(),
                            "enrolled_at": iso_utc(row.enrolled_at),
                            "entry": row.enrolled_index,
                            "revoked_at": iso_utc(row.revoked_at) if row.revoked_at else None,
                        }
                    )
                )
    finally:
        engine.dispose()
    return EXIT_OK
