"""``attest-ledger collateral``: the collateral the service keeps: Intel DCAP documents and
NVIDIA RIMs (import, list, fetch from a configured PCCS or RIM service)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from attest_ledger import database
from attest_ledger.collateral import CollateralError, PcsClient, documents_in_file, keep
from attest_ledger.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from attest_ledger.models import CollateralDocument
from attest_ledger.rim_collateral import RIM, RimDocument, RimFetcher, keep_rims, looks_like_rim
from attest_ledger.rim_collateral import documents_in_file as rims_in_file
from attest_ledger.settings import Settings
from ledger.db import make_session_factory, session_scope

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "collateral",
        help="collateral kept to judge TDX and SGX quotes and NVIDIA devices: import, list, fetch",
        description="Intel DCAP TCB info, QE identity, CRLs and the TCB Signing certificate, "
        "and NVIDIA driver and VBIOS RIMs, kept once by SHA-256. Nothing kept is trusted for "
        "being kept: the verifier checks each against the Intel or NVIDIA RIM root when it "
        "judges a quote or a device report.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imported = actions.add_parser(
        "import",
        help="keep the collateral in FILE (dcap-qvl JSON, a PCS response body, CRL, PEM; an "
        "NVIDIA RIM's XML or RIM service JSON)",
    )
    imported.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imported.set_defaults(handler=run_import)
    listed = actions.add_parser("list", help="what is kept, newest first")
    listed.add_argument("--fmspc", help="only this platform's TCB info")
    listed.add_argument("--kind", help="only documents of this kind (tcb-info, crl, rim, ...)")
    listed.set_defaults(handler=run_list)
    fetched = actions.add_parser(
        "fetch", help="fetch fresh collateral for a platform from ATTEST_LEDGER_PCCS_URL"
    )
    fetched.add_argument("--tee", choices=("tdx", "sgx"), required=True)
    fetched.add_argument("--fmspc", required=True, help="the platform's FMSPC (12 hex digits)")
    fetched.add_argument("--ca", choices=("platform", "processor"), default="platform",
                         help="the PCK CA whose CRL to fetch (TDX: platform)")  # fmt: skip
    fetched.set_defaults(handler=run_fetch)
    rim = actions.add_parser(
        "fetch-rim", help="fetch an NVIDIA RIM by its id from ATTEST_LEDGER_RIM_URL"
    )
    rim.add_argument("rim_id", metavar="ID", help="e.g. NV_GPU_DRIVER_GH100_550.144.03")
    rim.set_defaults(handler=run_fetch_rim)


def _keep(
    settings: Settings,
    documents: list[tuple[str, bytes]],
    source: str,
    rims: list[RimDocument] | None = None,
) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            new = keep(session, documents, source=source)
            return new + keep_rims(session, rims or [], source=source)
    finally:
        engine.dispose()


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    documents: list[tuple[str, bytes]] = []
    rims: list[RimDocument] = []
    try:
        for path in args.files:
            data = path.read_bytes()
            if looks_like_rim(data):
                rims.extend(rims_in_file(data, name=path.name))
            else:
                documents.extend(documents_in_file(data))
    except (OSError, CollateralError) as exc:
        print(f"attest-ledger collateral import: {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        new = _keep(settings, documents, "import", rims)
    except CollateralError as exc:
        print(f"attest-ledger collateral import: {exc}", file=sys.stderr)
        return EXIT_USAGE
    read = len(documents) + len(rims)
    print(f"collateral: {read} documents read, {new} new, {read - new} kept already")
    return EXIT_OK


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    engine = database.engine_for(settings, pool_size=1)
    try:
        with session_scope(make_session_factory(engine)) as session:
            query = select(CollateralDocument).order_by(
                CollateralDocument.issued_at.desc().nulls_last(), CollateralDocument.sha256
            )
            if args.fmspc:
                query = query.where(CollateralDocument.fmspc == args.fmspc.lower())
            if args.kind:
                query = query.where(CollateralDocument.kind == args.kind)
            rows = session.execute(query).scalars().all()
            for row in rows:
                window = (
                    f"{row.issued_at:%Y-%m-%dT%H:%M:%SZ} .. {row.next_update:%Y-%m-%dT%H:%M:%SZ}"
                    if row.issued_at and row.next_update
                    else "-"
                )
                if row.kind == RIM:  # the RIM kind and version, then its id
                    print(f"{row.sha256.hex()[:16]}  {row.kind:<12} {row.tee or '-':<6} "
                          f"{row.version or '-':<21} {window}  {row.name or '(no id)'}  "
                          f"({row.source})")  # fmt: skip
                    continue
                what = row.tee or row.name or "-"
                print(f"{row.sha256.hex()[:16]}  {row.kind:<12} {what:<28} "
                      f"{row.fmspc or '':<12} {window}  ({row.source})")  # fmt: skip
    finally:
        engine.dispose()
    return EXIT_OK


def run_fetch(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.pccs_url:
        print(
            "attest-ledger collateral fetch: no ATTEST_LEDGER_PCCS_URL is configured "
            "(nothing is ever fetched without one)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    client = PcsClient(settings.pccs_url)
    try:
        documents = client.fetch(tdx=args.tee == "tdx", fmspc=args.fmspc, pck_ca=args.ca)
        new = _keep(settings, documents, "pccs")
    except CollateralError as exc:
        print(f"attest-ledger collateral fetch: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    finally:
        client.close()
    print(f"collateral: {len(documents)} documents fetched from {settings.pccs_url}, {new} new")
    return EXIT_OK


def run_fetch_rim(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.rim_url:
        print(
            "attest-ledger collateral fetch-rim: no ATTEST_LEDGER_RIM_URL is configured "
            "(nothing is ever fetched without one; NVIDIA's: https://rim.attestation.nvidia.com)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        fetcher = RimFetcher(settings.rim_url)
    except CollateralError as exc:
        print(f"attest-ledger collateral fetch-rim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        document = fetcher.fetch(args.rim_id)
        new = _keep(settings, [], "rim-service", [document])
    except CollateralError as exc:
        print(f"attest-ledger collateral fetch-rim: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    finally:
        fetcher.close()
    print(f"collateral: the RIM {args.rim_id} fetched from {settings.rim_url}, {new} new")
    return EXIT_OK
