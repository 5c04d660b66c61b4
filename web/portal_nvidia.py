"""A composite entry (issue #14: a CPU TEE's evidence with its GPUs' and NVSwitches' reports,
one verdict) laid out for the portal: the "Composite verdict" panel of the entry page
(``templates/portal/_composite.html``) and one page per device
(``templates/portal/device.html``, ``/portal/entries/<n>/devices/<submod>``).

What is shown comes from the entry's own record (``devices``, ``cpu_verdict``, the reasons
with their ``submod``), and from the bytes the ledger stores content-addressed under the
digests a device names (``ledger_endorsements``): its SPDM report (``evidence_sha256``),
re-read with :func:`verifier.nvidia.parse_report`; its certificate chain; its RIMs, re-read
with :func:`verifier.nvidia.parse_rim` (their measurements, not their signatures: the
verdict judged those). Nothing is judged again here. A proven entry may still hold anything,
so every recorded value is read defensively, and stored bytes that do not parse are shown as
such, with the parser's code, never as an error page. Text is neutralised by the portal's
Jinja ``finalize`` (:func:`attest_ledger.display.visible`), as everywhere.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from attest_ledger.ear import recorded_devices
from attest_ledger.explain import recorded_instant
from attest_ledger.explain_snp import StoredEndorsement
from ledger.reads import get_endorsement
from verifier import ResultHash, VerifierError
from verifier.binding import GPU_NONCE_PREFIX, gpu_nonce
from verifier.nvidia import Rim, SpdmReport, parse_report, parse_rim
from verifier.nvidia.fwid import fwid_of
from verifier.nvidia.report import NvdecStatus
from verifier.x509 import (
    CERTIFICATE_PARSE_ERRORS,
    CertificateInfo,
    certificate_info,
    first_line,
    load_der_certificate,
)

__all__ = [
    "DERIVATION",
    "SUBMOD",
    "ChainRow",
    "CompositeView",
    "DeviceRow",
    "DeviceView",
    "MeasurementRow",
    "RimView",
    "composite_of",
    "device_blob",
    "device_download",
    "explain_device",
    "measurement_rows",
]

#: a device's submod as the record names it: ``gpu<i>`` or ``switch<i>`` (MAX_DEVICES = 16)
SUBMOD = re.compile(r"(gpu|switch)[0-9]{1,2}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
#: the RIM index NVIDIA's verifier does not compare when the report says NVDEC0 is disabled
_NVDEC_INDEX = 35
#: what a device's endorsements are served as: (suffix, content type)
_DOWNLOADS = {
    "device-certificate": ("der", "application/pkix-cert"),
    "rim": ("xml", "application/xml"),
    "ocsp": ("der", "application/ocsp-response"),
}
_OTHER = ("bin", "application/octet-stream")
#: the nonce's derivation, as the contract states it
DERIVATION = (
    f'SHA-256("{GPU_NONCE_PREFIX.decode()}" || challenge || SHA-256(result binding) || index)'
)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _digest(value: Any) -> str | None:
    return value if isinstance(value, str) and _SHA256_HEX.fullmatch(value) else None


def _hex_bytes(value: Any, size: int | None = None) -> bytes | None:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        return None
    data = bytes.fromhex(value)
    return data if size is None or len(data) == size else None


def _reasons(record: Mapping[str, Any], submod: str) -> tuple[tuple[str, str], ...]:
    reasons = record.get("reasons")
    return tuple(
        (str(r.get("code")), str(r.get("message", "")))
        for r in (reasons if isinstance(reasons, list) else [])
        if isinstance(r, dict) and r.get("submod") == submod
    )


# --- the composite panel ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRow:
    """One device as the composite panel lists it, from the record alone."""

    submod: str
    #: whether the submod is one a device page can be addressed by
    linkable: bool
    index: int | None
    kind: str | None
    arch: str | None
    verdict: str | None
    error: str | None
    driver_version: str | None
    vbios_version: str | None
    #: the confidential-computing mode: the claims' feature flag (SPT, MPT, PPCIE)
    cc_mode: str | None
    image: str | None
    policy: str | None
    reasons: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CompositeView:
    verdict: str | None
    cpu_verdict: str | None
    composition: tuple[tuple[str, str], ...]
    devices: tuple[DeviceRow, ...]
    #: the CPU evidence's own reasons (those without a submod)
    cpu_reasons: tuple[tuple[str, str], ...]


def _row(record: Mapping[str, Any], device: Mapping[str, Any]) -> DeviceRow:
    claims = _mapping(device.get("claims"))
    submod = _text(device.get("submod")) or "?"
    index = device.get("index")
    return DeviceRow(
        submod=submod,
        linkable=SUBMOD.fullmatch(submod) is not None,
        index=index if isinstance(index, int) and not isinstance(index, bool) else None,
        kind=_text(device.get("evidence_kind")),
        arch=_text(claims.get("arch")),
        verdict=_text(device.get("verdict")),
        error=_text(device.get("error")),
        driver_version=_text(claims.get("driver_version")),
        vbios_version=_text(claims.get("vbios_version")),
        cc_mode=_text(claims.get("feature_flag")),
        image=_text(device.get("image")),
        policy=_text(device.get("policy")),
        reasons=_reasons(record, submod),
    )


def composite_of(record: Mapping[str, Any]) -> CompositeView | None:
    """The composite panel of an attestation record with ``devices``; None for any other."""
    if record.get("kind") != "attestation" or not isinstance(record.get("devices"), list):
        return None
    reasons = record.get("reasons")
    cpu_reasons = tuple(
        (str(r.get("code")), str(r.get("message", "")))
        for r in (reasons if isinstance(reasons, list) else [])
        if isinstance(r, dict) and "submod" not in r
    )
    return CompositeView(
        verdict=_text(record.get("verdict")),
        cpu_verdict=_text(record.get("cpu_verdict")),
        composition=_reasons(record, "composite"),
        devices=tuple(_row(record, d) for d in recorded_devices(record)),
        cpu_reasons=cpu_reasons,
    )


# --- one device -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainRow:
    """One certificate of the device's chain as stored (leaf first, as submitted)."""

    position: int
    sha256: str
    info: CertificateInfo | None
    problem: str | None
    #: where the instant the device was judged at falls: "before", "within", "after"
    at_verified: str | None
    #: the entry names this certificate's SHA-256 as a trust anchor it was judged against
    anchor: bool


@dataclass(frozen=True)
class RimView:
    """One RIM the device names, as stored, and what the verdict recorded of it."""

    sha256: str
    holds: bool
    rim: Rim | None
    problem: str | None
    #: the claims' comparison of this RIM (matched count, mismatched indexes), if recorded
    matched: int | None
    mismatched: tuple[int, ...]

    @property
    def label(self) -> str:
        if self.rim is None:
            return f"RIM {self.sha256[:16]}…"
        return f"{self.rim.kind} RIM {self.rim.version}"


@dataclass(frozen=True)
class MeasurementRow:
    """One measurement block of the report against the RIMs that list its index."""

    block: int  # the report's block number (1-based)
    value: str | None  # hex; None: the report has no such block (a RIM lists it)
    #: matched, mismatched, unreferenced (not in any RIM), missing (a RIM lists it, the
    #: report has no block), skipped (index 35 with NVDEC0 disabled, not compared)
    status: str
    #: (RIM label, RIM SHA-256, measurement name, alternatives hex, this value is one)
    references: tuple[tuple[str, str, str, tuple[str, ...], bool], ...]

    @property
    def index(self) -> int:
        """The RIM index of this block (block = index + 1)."""
        return self.block - 1


@dataclass
class DeviceView:
    record: Mapping[str, Any]
    row: DeviceRow
    device: Mapping[str, Any]
    claims: Mapping[str, Any]
    evidence_sha256: str | None
    #: the report's stored bytes (None: not stored, or not the bytes the digest names)
    evidence: bytes | None
    report: SpdmReport | None = None
    report_problem: str | None = None
    endorsements: list[StoredEndorsement] = field(default_factory=list)
    chain: list[ChainRow] = field(default_factory=list)
    rims: list[RimView] = field(default_factory=list)
    measurements: list[MeasurementRow] = field(default_factory=list)
    #: the SHA-256 of the roots the device was judged against, as the record names them
    anchors: list[str] = field(default_factory=list)
    #: the instant the device was judged at (the record's verified_at)
    moment: datetime | None = None
    # the nonce: as the record expected it, recomputed from the entry, as the report says
    nonce_expected: str | None = None
    nonce_recomputed: str | None = None
    nonce_reported: str | None = None
    challenge: str | None = None
    # the FWID: the report's (opaque field 20) against the leaf's certified one
    fwid_reported: str | None = None
    fwid_certified: str | None = None
    fwid_extension: str | None = None
    fwid_problem: str | None = None

    @property
    def nonce_state(self) -> str:
        """holds, differs, unbound (no expected nonce: no challenge to bind to), unknown."""
        if self.nonce_expected is None:
            return "unbound"
        if self.nonce_reported is None:
            return "unknown"
        return "holds" if self.nonce_reported == self.nonce_expected else "differs"

    @property
    def fwid_state(self) -> str:
        """equal, differs, absent (the report has no FWID field), uncertified (the leaf
        certifies none), unknown (the report or the leaf could not be read)."""
        if self.report is None:
            return "unknown"
        if self.fwid_reported is None:
            return "absent"
        if self.fwid_problem is not None:
            return "unknown"
        if self.fwid_certified is None:
            return "uncertified"
        return "equal" if self.fwid_certified == self.fwid_reported else "differs"

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.measurements:
            out[row.status] = out.get(row.status, 0) + 1
        return out


def _stored(session: Session, kind: str, digest: str) -> StoredEndorsement:
    return StoredEndorsement(kind, digest, get_endorsement(session, bytes.fromhex(digest)))


def _chain(
    endorsements: list[StoredEndorsement], anchors: set[str], moment: datetime | None
) -> list[ChainRow]:
    rows = []
    certificates = [e for e in endorsements if e.kind == "device-certificate"]
    for position, stored in enumerate(certificates):
        anchor = stored.sha256 in anchors
        if not stored.holds:
            rows.append(
                ChainRow(position, stored.sha256, None, "not held by the ledger", None, anchor)
            )
            continue
        assert stored.data is not None  # noqa: S101 - holds: the bytes are there
        try:
            certificate = load_der_certificate(stored.data)
            role = "leaf" if position == 0 else "intermediate"
            if certificate.issuer == certificate.subject:
                role = "root"
            info = certificate_info(
                certificate, stored.data, position=f"[{position}]", role=role, issuer=None
            )
        except CERTIFICATE_PARSE_ERRORS as exc:
            rows.append(
                ChainRow(
                    position,
                    stored.sha256,
                    None,
                    f"not a DER certificate ({first_line(exc)})",
                    None,
                    anchor,
                )
            )
            continue
        where = None
        if moment is not None:
            where = (
                "before"
                if moment < info.not_before
                else "after"
                if moment > info.not_after
                else "within"
            )
        rows.append(ChainRow(position, stored.sha256, info, None, where, anchor))
    return rows


def _rims(endorsements: list[StoredEndorsement], claims: Mapping[str, Any]) -> list[RimView]:
    compared = {}
    listed = claims.get("rims")
    for given in listed if isinstance(listed, list) else []:
        item = _mapping(given)
        digest = _digest(item.get("sha256"))
        if digest is not None:
            compared[digest] = item
    out = []
    for stored in (e for e in endorsements if e.kind == "rim"):
        recorded = compared.get(stored.sha256, {})
        matched = recorded.get("matched")
        mismatched = recorded.get("mismatched")
        kept = (
            matched if isinstance(matched, int) and not isinstance(matched, bool) else None,
            tuple(
                i for i in (mismatched if isinstance(mismatched, list) else [])
                if isinstance(i, int) and not isinstance(i, bool)
            ),
        )  # fmt: skip
        if not stored.holds:
            out.append(RimView(stored.sha256, False, None, "not held by the ledger", *kept))
            continue
        assert stored.data is not None  # noqa: S101 - holds: the bytes are there
        try:
            rim = parse_rim(stored.data)
        except VerifierError as exc:
            out.append(RimView(stored.sha256, True, None, f"{exc.code}: {exc.message}", *kept))
            continue
        out.append(RimView(stored.sha256, True, rim, None, *kept))
    return out


def measurement_rows(report: SpdmReport, rims: list[RimView]) -> list[MeasurementRow]:
    """Every block of ``report`` and every index a parsed RIM lists, in block order: block
    ``n`` against each RIM measurement of index ``n - 1`` (as :mod:`verifier.nvidia.appraisal`
    compares them, index 35 not compared when NVDEC0 is disabled)."""
    parsed = [view for view in rims if view.rim is not None]
    nvdec_disabled = report.nvdec0_status is NvdecStatus.DISABLED
    listed: dict[int, list[tuple[RimView, Any]]] = {}
    for view in parsed:
        assert view.rim is not None  # noqa: S101 - filtered above
        for measurement in view.rim.measurements:
            listed.setdefault(measurement.index + 1, []).append((view, measurement))
    rows = []
    blocks = {block.index: block for block in report.blocks}
    for number in sorted(set(blocks) | set(listed)):
        block = blocks.get(number)
        value = block.value if block is not None else None
        references = []
        for view, measurement in listed.get(number, []):
            equal = value is not None and any(
                len(value) == len(alternative) and hmac.compare_digest(value, alternative)
                for alternative in measurement.alternatives
            )
            references.append(
                (
                    view.label,
                    view.sha256,
                    measurement.name,
                    tuple(a.hex() for a in measurement.alternatives),
                    equal,
                )
            )
        if not references:
            status = "unreferenced"
        elif value is None:
            status = "missing"
        elif number - 1 == _NVDEC_INDEX and nvdec_disabled:
            status = "skipped"
        else:
            status = "matched" if all(r[4] for r in references) else "mismatched"
        rows.append(
            MeasurementRow(number, value.hex() if value is not None else None, status,
                           tuple(references))
        )  # fmt: skip
    return rows


def _nonce(view: DeviceView) -> None:
    view.nonce_expected = _text(view.device.get("nonce"))
    if view.report is not None:
        view.nonce_reported = view.report.requester_nonce.hex()
    else:
        view.nonce_reported = _text(view.claims.get("nonce"))
    challenge = _hex_bytes(view.record.get("nonce"), 32)
    text = view.record.get("result_hash")
    index = view.row.index
    if challenge is None or not isinstance(text, str) or index is None:
        return
    view.challenge = challenge.hex()
    try:
        view.nonce_recomputed = gpu_nonce(challenge, ResultHash.parse(text), index).hex()
    except ValueError:  # a recorded hash that is not one, an index outside 0..255
        view.nonce_recomputed = None


def _fwid(view: DeviceView) -> None:
    if view.report is None or view.report.fwid is None:
        return
    view.fwid_reported = view.report.fwid.hex()
    leaf = next((e for e in view.endorsements if e.kind == "device-certificate"), None)
    if leaf is None or not leaf.holds:
        view.fwid_problem = "no leaf certificate is held to compare with"
        return
    assert leaf.data is not None  # noqa: S101 - holds: the bytes are there
    try:
        certified, extension = fwid_of(load_der_certificate(leaf.data))
    except VerifierError as exc:
        view.fwid_problem = f"{exc.code}: {exc.message}"
        return
    except CERTIFICATE_PARSE_ERRORS as exc:
        view.fwid_problem = f"the leaf is not a DER certificate ({first_line(exc)})"
        return
    view.fwid_certified = certified.hex() if certified is not None else None
    view.fwid_extension = extension


def explain_device(session: Session, record: Mapping[str, Any], submod: str) -> DeviceView | None:
    """The device ``submod`` of a composite ``record``, laid out; None if it names none."""
    if record.get("kind") != "attestation":
        return None
    device = next((d for d in recorded_devices(record) if d.get("submod") == submod), None)
    if device is None:
        return None
    view = DeviceView(
        record=record,
        row=_row(record, device),
        device=device,
        claims=_mapping(device.get("claims")),
        evidence_sha256=_digest(device.get("evidence_sha256")),
        evidence=None,
    )
    try:
        view.moment = recorded_instant(dict(record))
    except ValueError:
        view.moment = None
    if view.evidence_sha256 is not None:
        stored = _stored(session, "nvidia-gpu", view.evidence_sha256)
        view.evidence = stored.data if stored.holds else None
    if view.evidence is None:
        view.report_problem = "the ledger does not hold this device's report"
    else:
        try:
            view.report = parse_report(view.evidence)
        except VerifierError as exc:
            view.report_problem = f"{exc.code}: {exc.message}"
    named = device.get("endorsements")
    for given in named if isinstance(named, list) else []:
        item = _mapping(given)
        kind, digest = _text(item.get("kind")), _digest(item.get("sha256"))
        if kind is not None and digest is not None:
            view.endorsements.append(_stored(session, kind, digest))
    anchors = device.get("trust_anchors")
    anchor_set = {a for a in anchors if isinstance(a, str)} if isinstance(anchors, list) else set()
    view.anchors = sorted(anchor_set)
    view.chain = _chain(view.endorsements, anchor_set, view.moment)
    view.rims = _rims(view.endorsements, view.claims)
    if view.report is not None:
        view.measurements = measurement_rows(view.report, view.rims)
    _nonce(view)
    _fwid(view)
    return view


def device_blob(session: Session, view: DeviceView, sha256: str) -> StoredEndorsement | None:
    """The device's report or one of its endorsements, by SHA-256, when the device names it
    (None otherwise)."""
    if sha256 == view.evidence_sha256:
        return _stored(session, "nvidia-gpu", sha256)
    return next((e for e in view.endorsements if e.sha256 == sha256), None)


def device_download(kind: str) -> tuple[str, str]:
    """(suffix, content type) a device's endorsement of ``kind`` is served as: DER for a
    certificate or an OCSP response, XML for a RIM."""
    return _DOWNLOADS.get(kind, _OTHER)
