"""``attest-ledger export`` (write a proof bundle) and ``verify-bundle`` (check one offline)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from attest_ledger import database
from attest_ledger.bundles.export import (
    BundleError,
    BundleSelection,
    export_bundle,
    known_trust_anchors,
)
from attest_ledger.bundles.verify import verify_bundle
from attest_ledger.ear import EarKeyError, EarSigner, load_public_keys
from attest_ledger.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from attest_ledger.runtime import (
    intel_anchors_for,
    nvidia_anchors_for,
    snp_anchors_for,
    trust_anchor_for,
)
from attest_ledger.settings import Settings
from ledger.errors import InvalidNote
from ledger.keys import KeyFileError, load_signing_key
from ledger.note import NoteVerifier
from ledger.search import EntryFilter, SearchError
from verifier import TrustAnchor, VerifierError

__all__ = ["register"]


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write a proof bundle of selected entries for offline checking",
        description="Select entries and write one archive with their bytes, evidence and "
        "inclusion proofs to one signed checkpoint, the key, the trust anchors and a report. "
        "The same selection at the same checkpoint gives the same bytes.",
    )
    export.add_argument("output", help="the archive to write (.tar.gz); - for stdout")
    for name in ("since", "until", "verdict", "worker", "image", "kind", "pcr0", "module"):
        export.add_argument(f"--{name}")
    export.add_argument(
        "--result-hash", action="append", default=[], help="repeatable: entries for this result"
    )
    export.add_argument(
        "--index", action="append", type=int, default=[], help="repeatable: this entry"
    )
    export.add_argument(
        "--tree-size", type=int, help="the checkpoint to prove against (default: the latest)"
    )
    export.add_argument(
        "--known-checkpoint",
        type=Path,
        help="a signed checkpoint the recipient holds: add a consistency proof from it",
    )
    export.add_argument(
        "--trust-root",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="repeatable: a root certificate (or a PEM file of several) the entries were "
        "judged against, besides AWS's and AMD's pinned roots, ATTEST_LEDGER_TRUST_ROOT's and "
        "ATTEST_LEDGER_SNP_TRUST_ROOT's and ATTEST_LEDGER_INTEL_TRUST_ROOT's (the bundle carries "
        "those the entries name)",
    )
    export.add_argument("--quiet", action="store_true", help="no progress on stderr")
    export.set_defaults(handler=run_export)

    check = commands.add_parser(
        "verify-bundle",
        help="check a proof bundle offline (no database, no network)",
        description="Check the checkpoint signature and the signed manifest, every leaf and "
        "inclusion proof, the consistency proof, every evidence digest, and re-verify every "
        "attestation at the instant the service judged it. Exit 0 if everything holds, 1 if "
        "anything fails.",
    )
    check.add_argument("archive", type=Path)
    check.add_argument(
        "--log-key", required=True, help="the ledger's verifier key, or a file holding it"
    )
    check.add_argument("--known-checkpoint", type=Path, help="a signed checkpoint you hold")
    check.add_argument(
        "--trust-root",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="repeatable: require the evidence to chain to these roots (a Nitro root, an AMD "
        "ARK...) instead of trusting those the bundle carries on their names",
    )
    check.add_argument(
        "--ear-key",
        type=Path,
        metavar="JWKS|PEM",
        help="require every entry's EAR to be signed by this key (GET /api/v1/ear-keys), "
        "and the bundle's ear-key.jwk to be it",
    )
    check.set_defaults(handler=run_verify)


def _selection(args: argparse.Namespace) -> BundleSelection:
    params = {
        name: getattr(args, name)
        for name in ("since", "until", "verdict", "worker", "image", "kind", "pcr0", "module")
        if getattr(args, name)
    }
    hashes = []
    for text in args.result_hash:
        hashes.append(EntryFilter.from_params({"result_hash": text}).result_hash or "")
    if any(i < 0 for i in args.index):
        raise SearchError("index", "an entry index is 0 or more")
    return BundleSelection(EntryFilter.from_params(params), tuple(hashes), tuple(args.index))


def _anchors_in(path: Path) -> list[TrustAnchor]:
    """Every certificate in a PEM file (one root, or several such as AMD's ARKs)."""
    text = path.read_bytes()
    blocks = [b"-----BEGIN" + b for b in text.split(b"-----BEGIN")[1:]]
    if not blocks:
        raise ValueError(f"{path}: no PEM certificate in it")
    return [
        TrustAnchor.from_pem(block, name=path.name if len(blocks) == 1 else f"{path.name} #{n}")
        for n, block in enumerate(blocks)
    ]


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    try:
        selection = _selection(args)
        signer = load_signing_key(settings.ledger_key_path)
        ear_key = (  # a ledger from before EARs may have none
            EarSigner.load(settings.ear_key_path).public_jwk()
            if settings.ear_key_path.exists()
            else None
        )
        configured = (
            trust_anchor_for(settings.trust_root_path) if settings.trust_root_path else None
        )
        amd = snp_anchors_for(settings.snp_trust_root_path) or []
        intel = intel_anchors_for(settings.intel_trust_root_path) or []
        nvidia = [  # the simulated GPUs' device and RIM roots, when configured
            *(nvidia_anchors_for(settings.nvidia_trust_root_path, "device root") or []),
            *(nvidia_anchors_for(settings.nvidia_rim_root_path, "RIM root") or []),
        ]
        given = [a for p in args.trust_root for a in _anchors_in(p)]
        anchors = known_trust_anchors(configured, *amd, *intel, *nvidia, *given)
        known = args.known_checkpoint.read_text() if args.known_checkpoint else None
    except SearchError as exc:
        print(f"attest-ledger export: --{exc.parameter.replace('_', '-')}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyFileError, EarKeyError, OSError, ValueError) as exc:  # ValueError: not a root
        print(f"attest-ledger export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if not args.quiet and (now - last[0] >= 0.5 or done == total):
            last[0] = now
            print(f"\rexport: {done:,} / {total:,} entries", end="", file=sys.stderr, flush=True)

    engine = database.engine_for(settings, pool_size=1)
    target = None if args.output == "-" else Path(args.output)
    # write beside the target and rename at the end: never a half-written bundle in its place
    temporary = (
        tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place or removed below
            dir=target.parent, prefix=".export-", delete=False
        )
        if target is not None
        else None
    )
    try:
        out = temporary if temporary is not None else sys.stdout.buffer
        with engine.connect() as plain:
            snapshot = plain.execution_options(isolation_level="REPEATABLE READ")
            with Session(bind=snapshot) as session, session.begin():
                summary = export_bundle(
                    session, out, signer=signer, trust_anchors=anchors, selection=selection,
                    tree_size=args.tree_size, known_checkpoint=known, progress=progress,
                    ear_key=ear_key,
                )  # fmt: skip
        if temporary is not None and target is not None:
            temporary.close()
            os.replace(temporary.name, target)
    except BundleError as exc:  # UnknownTrustAnchor says which --trust-root to pass
        print(f"\nattest-ledger export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
        if temporary is not None:
            temporary.close()
            Path(temporary.name).unlink(missing_ok=True)
    if not args.quiet:
        verdicts = ", ".join(f"{v} {n:,}" for v, n in sorted(summary.verdicts.items()))
        print(
            f"\nexport: {summary.entries:,} entries ({verdicts}) proven to the checkpoint of "
            f"size {summary.tree_size:,}; {summary.bytes_written:,} bytes"
            + (f" in {target}" if target else ""),
            file=sys.stderr,
        )
    return EXIT_OK


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    del settings  # offline: no database, no configuration
    try:
        text = args.log_key
        if Path(text).is_file():
            text = Path(text).read_text().strip()
        key = NoteVerifier.parse(text)
        known = args.known_checkpoint.read_text() if args.known_checkpoint else None
        roots = [a for p in args.trust_root for a in _anchors_in(p)]
        ear_keys = load_public_keys(args.ear_key.read_bytes()) if args.ear_key else []
        handle = args.archive.open("rb")
    except (InvalidNote, OSError, ValueError, VerifierError, EarKeyError) as exc:
        print(f"attest-ledger verify-bundle: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with handle:
        report = verify_bundle(
            handle, key, known_checkpoint=known, trust_roots=roots, ear_keys=ear_keys
        )
    print(f"bundle      {args.archive}")
    print(f"ledger      {report.origin} at tree size {report.tree_size}")
    print(f"entries     {report.entries:,} proven; {report.rejudged:,} attestations re-verified")
    for verdict, count in sorted(report.verdicts.items()):
        print(f"  {verdict:<16}{count:,}")
    if report.consistency_from is not None:
        print(f"consistent  with the checkpoint of size {report.consistency_from}")
    for anchor in report.anchors:
        print(f"trust       {anchor}")
    for item, message in report.notes[:20]:
        print(f"  note {item}: {message}")
    if report.ok:
        print("result      every check passed")
        return EXIT_OK
    print(f"result      {len(report.failures)} FAILED")
    for item, message in report.failures[:50]:
        print(f"  FAIL {item}: {message}")
    if len(report.failures) > 50:
        print(f"  ... and {len(report.failures) - 50} more")
    return EXIT_REJECTED
