"""``attest-ledger verify FILE``: verify one attestation document and report the verdict."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509

from attest_ledger.display import visible
from attest_ledger.evidence_input import read_evidence
from attest_ledger.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from attest_ledger.settings import Settings
from verifier import (
    DOCUMENT_TIME,
    AttestationDocument,
    AttestationResult,
    NitroVerifier,
    Policy,
    PolicyInvalid,
    PolicyViolation,
    ResultHash,
    TrustAnchor,
    UnsafeAcceptAnyPolicy,
    UnsafePolicyWarning,
    VerifierError,
)
from verifier.timefmt import iso_utc

__all__ = ["register", "run"]


class UsageError(Exception):
    pass


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "verify",
        help="verify an attestation document",
        description=(
            "Verify an AWS Nitro attestation document (raw CBOR, hex or base64; '-' reads "
            "stdin): COSE signature, certificate chain to the pinned AWS root, policy. "
            "Exit 0 verified, 1 rejected, 2 usage or I/O error."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the document, or - for stdin")
    parser.add_argument(
        "--at",
        default="now",
        metavar="now|doc|ISO-8601",
        help="verification time: now (default), doc (the document's own timestamp), or an "
        "ISO-8601 instant (UTC if no offset is given)",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="policy JSON (reference images, debug, max age, skew); without it PCRs are "
        "not appraised and the verdict is at best 'warning'",
    )
    parser.add_argument("--nonce", metavar="HEX", help="require this nonce")
    parser.add_argument(
        "--result-hash", metavar="ALG:HEX", help="require user_data to bind this result hash"
    )
    parser.add_argument(
        "--trust-root",
        metavar="PEM",
        help="trust this root instead of AWS's (for the simulated PKI only)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    err: TextIO = sys.stderr
    try:
        policy = _load_policy(args.policy, err)
        verifier = NitroVerifier(trust_anchor=_load_anchor(args.trust_root, err))
        at = _parse_at(args.at)
        nonce = _parse_hex(args.nonce, "--nonce")
        result_hash = _parse_result_hash(args.result_hash)
        evidence = read_evidence(args.file)
    except UsageError as exc:
        print(f"attest-ledger verify: {exc}", file=err)
        return EXIT_USAGE
    except OSError as exc:
        print(f"attest-ledger verify: cannot read {args.file}: {exc.strerror or exc}", file=err)
        return EXIT_USAGE

    result: AttestationResult | None = None
    error: VerifierError | None = None
    try:
        result = verifier.verify(
            evidence, at=at, policy=policy, nonce=nonce, result_hash=result_hash
        )
    except PolicyViolation as exc:
        error, result = exc, exc.result
    except VerifierError as exc:
        error = exc

    if args.json:
        _print_json(evidence, result, error)
    else:
        _print_report(args.file, evidence, at, result, error)
    return EXIT_REJECTED if error is not None else EXIT_OK


def _load_policy(path: str | None, err: TextIO) -> Policy:
    if path is None:
        print(
            "attest-ledger verify: no --policy given: PCRs are not checked against reference "
            "values (unsafe accept-any policy); the verdict is at best 'warning'",
            file=err,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            return UnsafeAcceptAnyPolicy()
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read policy {path}: {exc.strerror or exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnsafePolicyWarning)
            policy = Policy.from_json(text)
    except PolicyInvalid as exc:
        raise UsageError(f"invalid policy {path}: {exc.message}") from None
    if policy.accepts_any_measurement:
        print(f"attest-ledger verify: policy {path} accepts any measurement (unsafe)", file=err)
    return policy


def _load_anchor(path: str | None, err: TextIO) -> TrustAnchor | None:
    if path is None:
        return None
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read trust root {path}: {exc.strerror or exc}") from None
    try:
        anchor = TrustAnchor.from_pem(pem, name=f"explicit trust root {Path(path).name}")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"attest-ledger verify: trusting {path} (SHA-256 {anchor.fingerprint}) "
        "instead of the AWS Nitro root",
        file=err,
    )
    return anchor


def _parse_at(text: str) -> Any:
    if text == "now":
        return datetime.now(UTC)
    if text == "doc":
        return DOCUMENT_TIME
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--at: expected now, doc or an ISO-8601 instant, found {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_hex(text: str | None, option: str) -> bytes | None:
    if text is None:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{option}: expected hexadecimal") from None


def _parse_result_hash(text: str | None) -> ResultHash | None:
    if text is None:
        return None
    try:
        return ResultHash.parse(text)
    except ValueError as exc:
        raise UsageError(f"--result-hash: {exc}") from None


def _print_json(
    evidence: bytes, result: AttestationResult | None, error: VerifierError | None
) -> None:
    out: dict[str, object] = {
        "verified": error is None,
        "status": str(result.status) if result is not None else "contraindicated",
        "evidence_sha256": hashlib.sha256(evidence).hexdigest(),
        "error": error.to_dict() if error is not None else None,
        "result": result.to_ear() if result is not None else None,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _print_report(
    name: str,
    evidence: bytes,
    at: Any,
    result: AttestationResult | None,
    error: VerifierError | None,
) -> None:
    def write(line: str) -> None:  # evidence text cannot hide characters or act on a terminal
        sys.stdout.write(visible(line))

    document = result.document if result is not None else error.document if error else None
    write(f"Attestation evidence  {name}\n")
    write(f"  size         {len(evidence)} bytes, SHA-256 {hashlib.sha256(evidence).hexdigest()}\n")
    if document is not None:
        _write_document(document, result, write)
        _write_chain(document, result, at, write)
    write("\n")
    if error is None:
        status = result.status if result is not None else "unknown"
        write(f"Verdict  VERIFIED ({status})\n")
    else:
        write(f"Verdict  REJECTED [{error.code}]\n")
        if isinstance(error, PolicyViolation):
            for violation in error.violations:
                write(f"  - [{violation.code}] {violation.message}\n")
        else:
            write(f"  {error.message}\n")
    if result is not None:
        write(f"  policy       {result.policy.policy_id}\n")
        if result.matched_image:
            write(f"  image        {result.matched_image}\n")
        write(f"  trust anchor {result.trust_anchor_name} (SHA-256 {result.trust_anchor_sha256})\n")
        for note in result.notes:
            write(f"  note: {note}\n")


def _write_document(
    document: AttestationDocument, result: AttestationResult | None, write: Any
) -> None:
    write(f"  kind         {document.kind}\n")
    write(f"  module_id    {document.module_id!r}\n")
    write(f"  timestamp    {iso_utc(document.timestamp)}\n")
    write(f"  digest       {document.digest}\n")
    for field in ("public_key", "user_data", "nonce"):
        value: bytes | None = getattr(document, field)
        shown = (
            "(absent)"
            if value is None
            else "0 bytes (present, empty)"
            if not value
            else f"{len(value)} bytes  {_clip(value.hex())}"
        )
        write(f"  {field:<12} {shown}\n")
    write("\nPCRs\n")
    appraisals = {p.index: p for p in result.pcr_appraisals} if result is not None else {}
    for index, value in document.pcrs.items():
        appraisal = appraisals.get(index)
        if result is not None and result.policy.accepts_any_measurement:
            verdict = "not appraised"
        elif appraisal is None or not appraisal.referenced:
            verdict = "" if appraisal is None else "not referenced"
        elif appraisal.matched_images:
            verdict = "matches " + ", ".join(appraisal.matched_images)
        else:
            verdict = "MISMATCH"
        write(f"  {index:>2}  {value.hex()}  {verdict}\n".rstrip() + "\n")


def _write_chain(
    document: AttestationDocument, result: AttestationResult | None, at: Any, write: Any
) -> None:
    moment = document.timestamp if at is DOCUMENT_TIME else at
    basis = "the document's own timestamp" if at is DOCUMENT_TIME else "the given time"
    verified = result is not None
    write(f"\nCertificate chain  (judged at {iso_utc(moment)}, {basis})")
    write("\n" if verified else "  UNVERIFIED\n")
    rows = (
        [(c.position, c.subject, c.not_before, c.not_after) for c in result.certificates]
        if result is not None
        else _unverified_chain(document)
    )
    for position, subject, not_before, not_after in rows:
        state = "valid" if not_before <= moment <= not_after else "OUTSIDE"
        write(
            f"  {position:<13} {iso_utc(not_before, 'seconds')} .. {iso_utc(not_after, 'seconds')}"
            f"  {state:<7}  {subject}\n"
        )


def _unverified_chain(document: AttestationDocument) -> list[tuple[str, str, datetime, datetime]]:
    rows = []
    named = [(f"cabundle[{i}]", der) for i, der in enumerate(document.cabundle)]
    for position, der in [*named, ("certificate", document.certificate)]:
        try:
            cert = x509.load_der_x509_certificate(der)
            rows.append(
                (
                    position,
                    cert.subject.rfc4514_string(),
                    cert.not_valid_before_utc,
                    cert.not_valid_after_utc,
                )
            )
        except ValueError:
            continue
    return rows


def _clip(text: str, width: int = 64) -> str:
    return text if len(text) <= width else text[:width] + "..."
