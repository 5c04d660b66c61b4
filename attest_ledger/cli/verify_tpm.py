"""The TPM 2.0 part of ``attest-ledger verify``: reading a quote (the ``tpm2-quote/v1``
container, or one of the JSON samples other verifiers publish), the AKs given as enrolled
for an offline check, and the quote's part of the human report (AK, quote, PCRs, event log).

The certificate chain and the verdict are written by :mod:`attest_ledger.cli.verify`, as for
every kind.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from attest_ledger.evidence_input import decode_evidence_text
from attest_ledger.tpm_enrolments import EnrolmentError, ak_public_der
from verifier import (
    AttestationResult,
    Endorsement,
    EndorsementKind,
    Evidence,
    EvidenceKind,
    PolicyViolation,
    SchemePolicy,
    VerifierError,
)
from verifier.tpm import (
    Enrolment,
    StaticEnrolments,
    TpmClaims,
    TpmPolicy,
    TpmVerifier,
    from_json,
    parse_container,
)
from verifier.tpm.eventlog import Event, parse_event_log, parse_ima_log
from verifier.tpm.evidence import MAX_CONTAINER_BYTES

__all__ = [
    "JSON_FORM",
    "MAX_INPUT_BYTES",
    "OFFLINE_PREFIX",
    "TpmInput",
    "TpmReport",
    "assign_ak_certificate",
    "is_json",
    "offline_enrolments",
    "read_input",
    "report_of",
    "tpm_input",
    "write_tpm_claims",
]

#: The largest evidence is a TPM container (64 KiB): twice that in hex, with room for line
#: breaks or the JSON sample's field names.
MAX_INPUT_BYTES = 2 * MAX_CONTAINER_BYTES + 16 * 1024
JSON_FORM = "a JSON sample (vaportpm or trustee), converted to a tpm2-quote/v1 container"
#: The name of an enrolment given with --enrolled-ak: never one of the ledger's (whose names
#: are letters, digits, '.', '_' and '-').
OFFLINE_PREFIX = "--enrolled-ak "
_BEGINNING_OF_TIME = datetime.min.replace(tzinfo=UTC)
_MAX_KEY_FILE = 64 * 1024
#: The bank whose digest an event line shows, in order of preference.
_SHOWN_BANKS = ("sha256", "sha384", "sha512", "sha1")

Write = Callable[[str], None]


def read_input(path: str) -> bytes:
    """Read evidence from ``path`` ("-": stdin) as raw bytes, hex or base64 (anything else,
    a JSON sample say, is returned as it is). Raises OSError. Input over the limit comes back
    one byte over it, for the verifier to report as oversize."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    else:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    return decode_evidence_text(data)


def is_json(data: bytes) -> bool:
    """Whether the input is a JSON sample rather than a container (a leading ``{``)."""
    return data.lstrip()[:1] == b"{"


@dataclass(frozen=True, slots=True)
class TpmInput:
    """The quote as it will be judged: the container (the input itself if it is not JSON, or
    if the JSON did not convert), the endorsements a JSON sample carried, and the conversion's
    failure, if any (a verdict: the evidence is malformed)."""

    container: bytes
    carried: tuple[Endorsement, ...] = ()
    from_json: bool = False
    error: VerifierError | None = None


def tpm_input(data: bytes) -> TpmInput:
    if not is_json(data):
        return TpmInput(data)
    try:
        container, carried = from_json(data)
    except VerifierError as exc:
        return TpmInput(data, from_json=True, error=exc)
    return TpmInput(container, carried, from_json=True)


def assign_ak_certificate(
    certificates: Iterable[Endorsement], carried: Sequence[Endorsement]
) -> tuple[Endorsement, ...]:
    """The AK certificate and its intermediates: the first certificate given is the AK's
    (``ak-certificate``) unless one is named so or came with the JSON sample; the others are
    ``certificate``."""
    out = list(carried)
    given = list(certificates)
    have_ak = any(e.kind is EndorsementKind.AK_CERTIFICATE for e in (*carried, *given))
    for endorsement in given:
        if not have_ak and endorsement.kind is EndorsementKind.CERTIFICATE:
            out.append(Endorsement(EndorsementKind.AK_CERTIFICATE, endorsement.data))
            have_ak = True
        else:
            out.append(endorsement)
    return tuple(out)


def offline_enrolments(paths: Sequence[str]) -> StaticEnrolments | None:
    """The AKs of ``--enrolled-ak`` as enrolled since the beginning of time, never revoked.
    Raises ValueError (an unreadable or unusable key, or one AK given twice)."""
    if not paths:
        return None
    enrolments = []
    for path in paths:
        try:
            with Path(path).open("rb") as handle:
                data = handle.read(_MAX_KEY_FILE + 1)
        except OSError as exc:
            raise ValueError(f"--enrolled-ak: cannot read {path}: {exc.strerror or exc}") from None
        try:
            spki = ak_public_der(data)
        except EnrolmentError as exc:
            raise ValueError(f"--enrolled-ak {path}: {str(exc).removeprefix('--ak: ')}") from None
        enrolments.append(
            Enrolment(
                name=OFFLINE_PREFIX + Path(path).name,
                ak_sha256=hashlib.sha256(spki).hexdigest(),
                enrolled_at=_BEGINNING_OF_TIME,
                revoked_at=None,
                entry_index=None,
                ek_certificate_sha256=None,
            )
        )
    try:
        return StaticEnrolments(enrolments)
    except ValueError as exc:
        raise ValueError(f"--enrolled-ak: {str(exc).removeprefix('enrolment: ')}") from None


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TpmReport:
    """What the report shows of a quote: its claims (verified when ``verified``: the quote and
    its AK path passed, whatever the policy said), the policy it was appraised against, and
    the events of its logs (``replayed``: the PCRs they were checked to account for, or None
    when verification stopped before the replay)."""

    claims: TpmClaims
    verified: bool
    policy: TpmPolicy | None
    events: tuple[Event, ...] | None
    log_summary: Mapping[str, object] | None
    replayed: tuple[int, ...] | None


def report_of(
    scheme: TpmVerifier,
    evidence: Evidence,
    result: AttestationResult | None,
    error: VerifierError | None,
) -> TpmReport | None:
    """The report's view of a quote, from the result when there is one, else parsed again
    without verifying (None when it does not parse)."""
    if isinstance(error, PolicyViolation):
        result = error.result
    if result is not None and isinstance(result.claims, TpmClaims):
        claims = result.claims
        log = claims.event_log
        return TpmReport(
            claims,
            verified=True,
            policy=_tpm_policy(result.policy),
            events=tuple(log.events) if log else None,
            log_summary=log.to_dict() if log else None,
            replayed=log.replayed if log else None,
        )
    try:
        claims = scheme.describe(evidence)
        container = parse_container(evidence.data)
    except VerifierError:
        return None
    events: tuple[Event, ...] | None = None
    summary: dict[str, object] | None = None
    raw = container.event_log if container.event_log is not None else container.ima_log
    if raw is not None:
        summary = {"sha256": hashlib.sha256(raw).hexdigest()}
        try:
            parsed = []
            if container.event_log is not None:
                parsed.append(parse_event_log(container.event_log))
            if container.ima_log is not None:
                parsed.append(parse_ima_log(container.ima_log))
        except VerifierError as exc:
            summary["error"] = exc.message
        else:
            events = tuple(e for log in parsed for e in log.events)
            summary.update(format=parsed[0].format, events=len(events))
    return TpmReport(claims, False, None, events, summary, None)


def _tpm_policy(policy: SchemePolicy) -> TpmPolicy | None:
    return policy if isinstance(policy, TpmPolicy) else None


def write_tpm_claims(report: TpmReport, write: Write) -> None:
    """The AK and who vouches for it, the quote's fields, the PCRs per bank and the events."""
    _write_ak(report, write)
    _write_quote(report.claims, write)
    _write_pcrs(report, write)
    _write_events(report, write)


def _field(write: Write, label: str, value: object) -> None:
    write(f"  {label:<18} {value}".rstrip() + "\n")


def _write_ak(report: TpmReport, write: Write) -> None:
    claims = report.claims
    endorsement = claims.endorsement
    write("\nAttestation key  (AK) and who vouches for it\n")
    path = endorsement.path if report.verified else f"{endorsement.path} (NOT VERIFIED)"
    _field(write, "path", path)
    _field(write, "key", f"{claims.ak.key}, SHA-256 {claims.ak.sha256}")
    _field(write, "name_alg", claims.attest.name_alg)
    document = endorsement.nitro_document
    if document is not None:
        _field(write, "nitro document", f"module_id {document.get('module_id')!r}")
        _field(write, "", f"timestamp {document.get('timestamp')}")
        _field(write, "", f"SHA-256 {document.get('sha256')}")
    if endorsement.certificate_subject is not None:
        _field(write, "ak certificate", endorsement.certificate_subject)
    gce = endorsement.gcp
    if gce:
        _field(
            write,
            "gce instance",
            f"{gce.get('instance_name')} (id {gce.get('instance_id')}), project "
            f"{gce.get('project_id')} ({gce.get('project_number')}), zone {gce.get('zone')}",
        )
    if endorsement.enrolment is not None:
        name = endorsement.enrolment
        if name.startswith(OFFLINE_PREFIX):
            _field(write, "enrolment", f"{name.removeprefix(OFFLINE_PREFIX)} (--enrolled-ak)")
            write(
                "  note: this AK was given with --enrolled-ak and treated as enrolled from the "
                "beginning of time, for an offline check; the ledger's enrolments and "
                "revocations were not consulted\n"
            )
        else:
            _field(write, "enrolment", name)


def _write_quote(claims: TpmClaims, write: Write) -> None:
    attest = claims.attest
    write("\nQuote  (TPMS_ATTEST)\n")
    _field(write, "extra_data", f"{len(attest.extra_data)} bytes  {attest.extra_data.hex()}")
    _field(write, "clock", f"{attest.clock} ms since the TPM's last reset")
    _field(write, "reset_count", attest.reset_count)
    _field(write, "restart_count", attest.restart_count)
    _field(write, "safe", "yes" if attest.safe else "no")
    _field(write, "firmware", f"{attest.firmware_version:016x}")
    _field(write, "pcr_digest", attest.pcr_digest.hex())
    _field(write, "signature", claims.signature.name)
    _field(write, "qualified_signer", attest.qualified_signer.hex())


def _write_pcrs(report: TpmReport, write: Write) -> None:
    policy = report.policy
    replayed = set(report.replayed or ())
    for bank, values in report.claims.pcrs.items():
        write(f"\nPCRs  {bank}\n")
        for index, value in values.items():
            notes = []
            if policy is not None:
                notes.append(_appraisal(policy, bank, index, value))
            if index in replayed:
                notes.append("replayed from the event log")
            if not value.strip(b"\x00") or not value.strip(b"\xff"):
                notes.append("reset value")
            shown = "; ".join(n for n in notes if n)
            write(f"  {index:>2}  {value.hex()}  {shown}".rstrip() + "\n")


def _appraisal(policy: TpmPolicy, bank: str, index: int, value: bytes) -> str:
    if policy.accepts_any_measurement:
        return "not appraised"
    pinned = [image for image in policy.images if index in image.pcrs.get(bank, {})]
    if not pinned:
        return ""
    matching = [image.name for image in pinned if image.pcrs[bank][index] == value]
    return "matches " + ", ".join(matching) if matching else "MISMATCH"


def _write_events(report: TpmReport, write: Write) -> None:
    summary = report.log_summary
    if summary is None:
        return
    write(f"\nEvent log  SHA-256 {summary['sha256']}\n")
    if "error" in summary:
        write(f"  does not parse: {summary['error']}\n")
        return
    replayed = (
        "not replayed (verification stopped before)"
        if report.replayed is None
        else "replays PCRs " + ", ".join(map(str, report.replayed))
        if report.replayed
        else "accounts for no quoted PCR"
    )
    _field(write, "format", summary["format"])
    _field(write, "events", f"{summary['events']}, {replayed}")
    events = report.events or ()
    if not events:
        return
    bank = next((b for b in _SHOWN_BANKS if any(b in e.digests for e in events)), "sha256")
    write(f"  {'#':>4}  {'PCR':>3}  {'type':<32} {bank + ' digest':<{_width(bank)}}  description\n")
    for number, event in enumerate(events):
        digest = event.digests.get(bank)
        shown = digest.hex() if digest is not None else "-"
        description = event.description() or ""
        write(
            f"  {number:>4}  {event.pcr:>3}  {event.type_name:<32} {shown:<{_width(bank)}}  "
            f"{description}".rstrip()
            + "\n"
        )


def _width(bank: str) -> int:
    return {"sha1": 40, "sha256": 64, "sha384": 96, "sha512": 128}.get(bank, 64)


def kind_of_input(data: bytes) -> EvidenceKind | None:
    """TPM when the input is a JSON sample (the only JSON evidence there is), else None."""
    return EvidenceKind.TPM2_QUOTE if is_json(data) else None
