"""The NVIDIA GPU part of ``attest-ledger verify``: reading the evidence (NVIDIA's evidence
JSON, one object per device, or one SPDM report with its chain given apart), the RIMs, and
each device's part of the human report (the report's fields, its RIMs and how every
measurement compared).

The device chain and the verdict are written by :mod:`attest_ledger.cli.verify`, as for
every kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from verifier import (
    AttestationResult,
    Endorsement,
    EndorsementKind,
    EvidenceKind,
    VerifierError,
)
from verifier.nvidia import (
    MAX_RIM_BYTES,
    NvidiaClaims,
    Rim,
    RimComparison,
    from_json,
    parse_rim,
)
from verifier.timefmt import iso_utc
from verifier.x509 import CERTIFICATE_PARSE_ERRORS, load_der_certificate

__all__ = [
    "NVIDIA",
    "NvidiaDevice",
    "is_json_list",
    "nvidia_devices",
    "read_rims",
    "write_nvidia_claims",
    "write_rims",
]

NVIDIA = EvidenceKind.NVIDIA_GPU
#: What an NVIDIA report's ``--endorsement`` may name: the device chain and OCSP responses.
ENDORSEMENT_KINDS = (EndorsementKind.DEVICE_CERTIFICATE, EndorsementKind.OCSP)

Write = Callable[[str], None]


def is_json_list(data: bytes) -> bool:
    """Whether the input is NVIDIA's evidence JSON (a list: a leading ``[``)."""
    return data.lstrip()[:1] == b"["


@dataclass(frozen=True, slots=True)
class NvidiaDevice:
    """One device's report as it will be judged, with its chain and the nonce expected of it
    (``nonce_source`` says where that came from; None: not checked)."""

    index: int
    report: bytes
    endorsements: tuple[Endorsement, ...]
    nonce: bytes | None
    nonce_source: str
    #: The architecture the JSON names (the host's word; the verdict reads the leaf's).
    claimed_arch: str | None = None


def nvidia_devices(
    data: bytes,
    *,
    endorsements: Sequence[Endorsement],
    nonce: bytes | None,
) -> tuple[list[NvidiaDevice], VerifierError | None]:
    """The devices to verify: every device of an evidence JSON (its nonce the JSON's unless
    ``nonce`` is given), or the one report ``data`` is. A JSON that does not read is a
    verdict (its error, and no device). Raises ValueError for options that do not fit."""
    if nonce is not None and len(nonce) != 32:
        raise ValueError(
            f"--nonce: an NVIDIA report's requester nonce is 32 bytes, found {len(nonce)}"
        )
    if not is_json_list(data):
        source = "--nonce" if nonce is not None else "none given: not checked"
        return [NvidiaDevice(0, data, tuple(endorsements), nonce, source)], None
    if any(e.kind is EndorsementKind.DEVICE_CERTIFICATE for e in endorsements):
        raise ValueError(
            "--endorsement: NVIDIA's evidence JSON carries each device's certificate chain"
        )
    try:
        parsed = from_json(data)
    except VerifierError as exc:
        return [], exc
    devices = []
    for index, (report, chain, arch, carried) in enumerate(parsed):
        devices.append(
            NvidiaDevice(
                index,
                report,
                (*chain, *endorsements),
                nonce if nonce is not None else carried,
                "--nonce" if nonce is not None else "the evidence JSON",
                arch,
            )
        )
    return devices, None


def read_rims(paths: Sequence[str]) -> tuple[Endorsement, ...]:
    """The RIMs of ``--rim``, their exact bytes (one byte over the bound at most, for the
    verifier to report as oversize). Raises ValueError for an unreadable file."""
    out = []
    for path in paths:
        try:
            with Path(path).open("rb") as handle:
                data = handle.read(MAX_RIM_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"cannot read RIM {path}: {exc.strerror or exc}") from None
        out.append(Endorsement(EndorsementKind.RIM, data))
    return tuple(out)


# --- the report --------------------------------------------------------------------------------


def _field(write: Write, label: str, value: object) -> None:
    write(f"  {label:<18} {value}".rstrip() + "\n")


def write_nvidia_claims(
    claims: NvidiaClaims,
    device: NvidiaDevice,
    *,
    result: AttestationResult | None,
    error: VerifierError | None,
    write: Write,
) -> None:
    """The report's fields: arch, versions, CC mode, nonce, FWID, measurements."""
    report = claims.report
    arch = (
        f"{claims.arch} (from the device's leaf certificate)"
        if claims.arch is not None
        else "unknown (no leaf certificate read)"
    )
    _field(write, "arch", arch)
    _field(write, "driver version", report.driver_version or "(not stated: an NVSwitch?)")
    _field(write, "vbios version", report.vbios_version or "(not stated)")
    flag = (
        f"{report.feature_flag} (the CC mode, as the report states it)"
        if report.feature_flag is not None
        else "not stated: the report has no feature flag (opaque field 36), so it says "
        "nothing of the CC mode"
    )
    _field(write, "feature flag", flag)
    _field(write, "chip info", report.chip_info or "(not stated)")
    _field(write, "nonce", report.requester_nonce.hex())
    expected = (
        "not checked (no nonce expected)"
        if device.nonce is None
        else f"expected from {device.nonce_source}: "
        + ("matches" if device.nonce == report.requester_nonce else "MISMATCH")
    )
    _field(write, "", expected)
    _field(write, "fwid", "(absent)" if report.fwid is None else report.fwid.hex())
    _field(write, "", _fwid_state(claims, result, error))
    _field(
        write,
        "measurements",
        f"{len(report.blocks)} blocks, SHA-256 of the record {report.sha256_of_blocks}",
    )
    if report.trailing:
        _field(write, "trailing", f"{len(report.trailing)} bytes after the signature (not signed)")


def _fwid_state(
    claims: NvidiaClaims, result: AttestationResult | None, error: VerifierError | None
) -> str:
    if claims.report.fwid is None:
        return "not checked: the report has no FWID (opaque field 20)"
    if result is not None and claims.fwid_checked:
        return "checked: the leaf certificate certifies it"
    if error is not None and error.code == "fwid_mismatch":
        return "MISMATCH: the leaf certificate certifies another FWID"
    return "not checked (verification stopped before)"


def write_rims(
    rims: Sequence[Endorsement],
    claims: NvidiaClaims | None,
    at: datetime,
    write: Write,
) -> None:
    """Each RIM: id, version, signer chain against ``at``, and how its measurements
    compared with the report (from the verdict: not compared when it stopped before)."""
    if not rims:
        return
    comparisons = {c.sha256: c for c in claims.rims} if claims is not None else {}
    for endorsement in rims:
        digest = hashlib.sha256(endorsement.data).hexdigest()
        write(f"\nRIM  SHA-256 {digest}\n")
        try:
            rim = parse_rim(endorsement.data)
        except VerifierError as exc:
            _field(write, "does not parse", f"[{exc.code}] {exc.message}")
            continue
        _field(write, "kind", str(rim.kind))
        _field(write, "id", rim.tag_id)
        _field(write, "version", rim.version)
        _field(write, "product", rim.product)
        _write_signers(rim, at, write)
        comparison = comparisons.get(digest)
        if comparison is None or claims is None:
            _field(
                write,
                "measurements",
                f"{len(rim.measurements)} active, not compared (verification stopped before)",
            )
            continue
        _write_comparison(comparison, rim, claims, write)


def _write_signers(rim: Rim, at: datetime, write: Write) -> None:
    write(f"  signer chain  (judged at {iso_utc(at)}, the given time)\n")
    for position, der in enumerate(rim.certificates):
        try:
            certificate = load_der_certificate(der, allow_zero_serial=True)
        except CERTIFICATE_PARSE_ERRORS:
            write(f"    [{position}] does not parse\n")
            continue
        before, after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        state = "valid" if before <= at <= after else "OUTSIDE"
        write(
            f"    [{position}] {iso_utc(before, 'seconds')} .. {iso_utc(after, 'seconds')}  "
            f"{state:<7}  {certificate.subject.rfc4514_string()}\n"
        )


def _write_comparison(
    comparison: RimComparison, rim: Rim, claims: NvidiaClaims, write: Write
) -> None:
    compared = comparison.matched + len(comparison.mismatched)
    _field(write, "measurements", f"{comparison.matched} of {compared} matched")
    if comparison.skipped:
        skipped = ", ".join(map(str, comparison.skipped))
        _field(write, "", f"not compared: index {skipped} (NVDEC0 disabled)")
    expected = {m.index: m for m in rim.measurements}
    for index in comparison.mismatched:
        block = claims.report.block(index + 1)
        measurement = expected.get(index)
        write(f"    MISMATCH index {index} (measurement block {index + 1})\n")
        if measurement is not None:
            for value in measurement.alternatives:
                write(f"      expected {value.hex()}\n")
        write(f"      found    {'no such block' if block is None else block.value.hex()}\n")
