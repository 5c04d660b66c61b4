"""NVIDIA RIMs kept by the service: the driver and VBIOS reference integrity manifests that
judge a GPU's or NVSwitch's SPDM report beside it.

A device report is judged against two RIMs (an NVSwitch: the VBIOS's only), TCG SWID XML
documents NVIDIA signs and serves by id. RIMs reach the service three ways, and all three end
in ``collateral_documents``, stored once by SHA-256 (kind ``rim``):

* attached by the worker to a device (``rim`` endorsements; kept as they came);
* imported by an operator: ``attest-ledger collateral import FILE`` (the RIM's XML, e.g. a
  ``.swidtag``, or NVIDIA RIM service's JSON answer);
* fetched from NVIDIA's RIM service (or a mirror) at ``ATTEST_LEDGER_RIM_URL`` when a device's
  RIM is missing and none is kept, or by ``attest-ledger collateral fetch-rim ID``. With no URL
  nothing is fetched.

How a RIM is kept (columns of ``collateral_documents``; the RIM is read with
:func:`verifier.nvidia.parse_rim`, which does not verify it)::

    kind         "rim"
    tee          the RIM kind: "driver" or "vbios" (told from its colloquialVersion)
    version      its colloquialVersion, lowercased as the report prints it (migration 0010)
    name         its RIM id, as NVIDIA's RIM service names it (see below): the id it was
                 fetched by or the service's JSON gave, a file named by it, or else derived
                 from the RIM where the RIM says enough (drivers, NVSwitch BIOS); NULL for a
                 GPU VBIOS RIM of unknown id (its board's project and SKUs are not in it)
    fmspc        NULL
    issued_at    the signer certificate's notBefore (the first X509Certificate)
    next_update  the signer certificate's notAfter

RIM ids, as NVIDIA's verifiers build them from a report (nvtrust local_gpu_verifier
``cc_admin_utils.get_*_rim_file_id`` and attestation-sdk ``gpu/evidence.cpp``,
``switch/evidence.cpp``)::

    Hopper driver     NV_GPU_DRIVER_GH100_<driver version>
    Blackwell driver  NV_GPU_CC_DRIVER_<chip info, else GB100>_<driver version>
    GPU VBIOS         NV_GPU_VBIOS_<project>_<project SKU>_<chip SKU>_<VBIOS, no dots, upper>
    NVSwitch BIOS     NV_SWITCH_BIOS_5612_0002_890_<BIOS, no dots, upper>   (LS10's fixed values)

(project, project SKU and chip SKU: the report's opaque fields 17, 18 and 15). The RIM's own
``tagId`` is a hash, not this id.

Nothing here is trusted because it is kept: the verifier checks each RIM's signature and
signer chain against the pinned (or configured) NVIDIA RIM root as of the instant it judges.
What is read here only chooses which RIM to hand it; a RIM of the wrong device fails there
(``measurement_mismatch``), a missing one is said by the verdict (``rim_missing``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from attest_ledger.collateral import CollateralError, http_get
from attest_ledger.models import CollateralDocument
from verifier import Endorsement, EndorsementKind, Evidence, EvidenceKind, VerifierError
from verifier.nvidia import (
    MAX_NVIDIA_ENDORSEMENTS,
    MAX_RIM_BYTES,
    RimKind,
    SpdmReport,
    parse_report,
    parse_rim,
)

__all__ = [
    "RIM",
    "RimDocument",
    "RimFetcher",
    "RimInfo",
    "RimSource",
    "describe_rim",
    "device_chip",
    "documents_in_file",
    "driver_rim_id",
    "keep_rims",
    "looks_like_rim",
    "rim_ids",
    "select_rim",
    "vbios_rim_id",
]

log = logging.getLogger(__name__)

RIM = "rim"
#: NVIDIA's RIM service answers with the RIM base64 in JSON: room for a 64 KiB RIM.
_MAX_ANSWER = 2 * MAX_RIM_BYTES
#: NVIDIA's fixed project values of LS10 NVSwitches (attestation-sdk SwitchArchitectureData,
#: nvtrust nv_switch_verifier config: PROJECT, PROJECT_SKU, CHIP_SKU).
_LS10_PROJECT = ("5612", "0002", "890")
_ID = re.compile(r"NV_[A-Z0-9_]{1,60}_[0-9A-Za-z.]{1,40}")
_ID_PREFIXES = {
    "NV_GPU_DRIVER_": RimKind.DRIVER,
    "NV_GPU_CC_DRIVER_": RimKind.DRIVER,
    "NV_GPU_VBIOS_": RimKind.VBIOS,
    "NV_SWITCH_BIOS_": RimKind.VBIOS,
}


def _chip(name: str | None) -> str | None:
    """A chip name compared across spellings: GH100, GB100, LS10 (the leaf says LS_10)."""
    return name.replace("_", "").upper() if name else None


# --- RIM ids ----------------------------------------------------------------------------------


def driver_rim_id(chip: str, version: str) -> str:
    """The id of the driver RIM of ``version`` for ``chip`` (GH100, GB100, ...)."""
    name = _chip(chip)
    if name == "GH100":
        return f"NV_GPU_DRIVER_GH100_{version}"
    return f"NV_GPU_CC_DRIVER_{name}_{version}"


def _version_for_id(version: str) -> str:
    return version.replace(".", "").upper()


def vbios_rim_id(report: SpdmReport, chip: str | None) -> str | None:
    """The id of the VBIOS (NVSwitch: BIOS) RIM of ``report``; None when the report does not
    say enough (a GPU report without its project fields, or without a VBIOS version)."""
    if not report.vbios_version:
        return None
    version = _version_for_id(report.vbios_version)
    if _chip(chip) == "LS10":
        return "NV_SWITCH_BIOS_" + "_".join((*_LS10_PROJECT, version))
    fields = (report.project, report.project_sku, report.chip_sku)
    if not all(fields):
        return None
    return "NV_GPU_VBIOS_" + "_".join(f.upper() for f in fields if f) + "_" + version


def rim_ids(report: SpdmReport, chip: str | None) -> dict[RimKind, str | None]:
    """The RIMs a report needs, by kind, with their ids (None: not derivable, e.g. a driver
    RIM's when the chip is unknown): the VBIOS's always, the driver's when the report has a
    driver version (GPUs)."""
    out: dict[RimKind, str | None] = {RimKind.VBIOS: vbios_rim_id(report, chip)}
    if report.driver_version:
        out[RimKind.DRIVER] = driver_rim_id(chip, report.driver_version) if chip else None
    return out


def _id_kind(rim_id: str) -> RimKind | None:
    for prefix, kind in _ID_PREFIXES.items():
        if rim_id.startswith(prefix):
            return kind
    return None


def _id_chip(rim_id: str) -> str | None:
    """The chip an id names: driver ids do (NV_GPU_DRIVER_GH100_...), switch BIOS ids mean
    LS10; GPU VBIOS ids name a board, not a chip."""
    if rim_id.startswith("NV_SWITCH_BIOS_"):
        return "LS10"
    for prefix in ("NV_GPU_DRIVER_", "NV_GPU_CC_DRIVER_"):
        if rim_id.startswith(prefix):
            return _chip(rim_id[len(prefix) :].split("_", 1)[0])
    return None


def _id_agrees(rim_id: str, kind: str, version: str) -> bool:
    """Whether an NVIDIA id names a RIM of this kind and version."""
    if _id_kind(rim_id) != kind:
        return False
    if kind == RimKind.DRIVER:
        return rim_id.endswith("_" + version)
    return rim_id.upper().endswith("_" + _version_for_id(version))


# --- describing and keeping -------------------------------------------------------------------


@dataclass(frozen=True)
class RimInfo:
    """What a RIM says about itself, read without verifying it: for choosing, never for
    trusting."""

    kind: str
    #: colloquialVersion, lowercased
    version: str
    tag_id: str
    #: the RIM id (see the module docstring); None when unknown
    rim_id: str | None
    #: Meta product (the chip: GH100, GB100, LS10)
    product: str
    not_before: datetime | None
    not_after: datetime | None


def _derived_id(kind: str, version: str, product: str) -> str | None:
    chip = _chip(product)
    if not chip:
        return None
    if kind == RimKind.DRIVER:
        return driver_rim_id(chip, version)
    if chip == "LS10":
        return "NV_SWITCH_BIOS_" + "_".join((*_LS10_PROJECT, _version_for_id(version)))
    return None


def describe_rim(data: bytes, rim_id: str | None = None) -> RimInfo:
    """The metadata of one RIM (``rim_id``: the id it is known by, checked against the RIM's
    kind and version); raises :class:`CollateralError`."""
    if not isinstance(data, bytes):
        raise CollateralError("rim: expected bytes")
    try:
        rim = parse_rim(data)
    except VerifierError as exc:
        raise CollateralError(f"not a readable NVIDIA RIM: {exc.message[:160]}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # lxml's odd corners
        raise CollateralError(f"not a readable NVIDIA RIM ({str(exc)[:120]})") from None
    if rim_id is not None and not (
        _ID.fullmatch(rim_id) and _id_agrees(rim_id, rim.kind, rim.version)
    ):
        raise CollateralError(
            f"rim: the id {rim_id[:80]!r} does not name a {rim.kind} RIM of version "
            f"{rim.version} (expected NV_GPU_DRIVER_..., NV_GPU_CC_DRIVER_..., "
            "NV_GPU_VBIOS_... or NV_SWITCH_BIOS_... ending in its version)"
        )
    not_before = not_after = None
    try:
        signer = x509.load_der_x509_certificate(rim.certificates[0])
        not_before, not_after = signer.not_valid_before_utc, signer.not_valid_after_utc
    except (ValueError, IndexError):
        pass  # the verifier will say why; the RIM is still chosen by its version
    return RimInfo(
        kind=str(rim.kind),
        version=rim.version,
        tag_id=rim.tag_id,
        rim_id=rim_id or _derived_id(rim.kind, rim.version, rim.product),
        product=rim.product,
        not_before=not_before,
        not_after=not_after,
    )


@dataclass(frozen=True)
class RimDocument:
    """A RIM to keep: its XML bytes and the id it is known by (None: unknown)."""

    data: bytes
    rim_id: str | None = None


def keep_rims(session: Session, documents: Sequence[RimDocument], *, source: str) -> int:
    """Keep each RIM once; returns how many were new. Raises :class:`CollateralError` before
    keeping anything if one is unreadable. A RIM kept already without an id gets the id it
    now comes with."""
    rows = []
    for document in documents:
        info = describe_rim(document.data, document.rim_id)
        rows.append(
            {
                "sha256": hashlib.sha256(document.data).digest(),
                "kind": RIM,
                "data": document.data,
                "tee": info.kind,
                "fmspc": None,
                "name": info.rim_id,
                "version": info.version,
                "issued_at": info.not_before,
                "next_update": info.not_after,
                "source": source,
            }
        )
    if not rows:
        return 0
    new = 0
    for row in {r["sha256"]: r for r in rows}.values():
        statement = insert(CollateralDocument).values(row).on_conflict_do_nothing()
        new += len(session.execute(statement.returning(CollateralDocument.sha256)).all())
        if row["name"] is not None:
            kept = session.get(CollateralDocument, row["sha256"])
            if kept is not None and kept.name is None:
                kept.name = str(row["name"])
    session.flush()
    return new


def select_rim(
    session: Session,
    *,
    kind: str,
    version: str,
    chip: str | None,
    at: datetime,
    rim_id: str | None = None,
) -> CollateralDocument | None:
    """The kept RIM of ``kind`` and ``version`` for ``chip`` at ``at``: among those signed at
    or before ``at`` (and those whose signer does not read), the one kept under ``rim_id``
    first, then the most recently signed. A RIM whose id names another chip is never chosen;
    one whose id names none (GPU VBIOS ids name a board) or of unknown id is, if its product
    is not another chip."""
    query = (
        select(CollateralDocument)
        .where(
            CollateralDocument.kind == RIM,
            CollateralDocument.tee == kind,
            CollateralDocument.version == version.lower(),
            (CollateralDocument.issued_at <= at) | CollateralDocument.issued_at.is_(None),
        )
        .order_by(CollateralDocument.issued_at.desc().nulls_last(), CollateralDocument.sha256)
        .limit(64)
    )
    wanted = _chip(chip)
    candidates = []
    for document in session.execute(query).scalars():
        named = _id_chip(document.name) if document.name else None
        if wanted and named and named != wanted:
            continue
        if wanted and named is None and not _product_fits(document, wanted):
            continue
        candidates.append(document)
    for document in candidates:
        if rim_id is not None and document.name == rim_id:
            return document
    return candidates[0] if candidates else None


def _product_fits(document: CollateralDocument, chip: str) -> bool:
    try:
        product = _chip(parse_rim(bytes(document.data)).product)
    except VerifierError:
        return False
    return not product or product == chip


# --- files an operator imports ----------------------------------------------------------------


def looks_like_rim(data: bytes) -> bool:
    """Whether a file is meant as a RIM (XML, or NVIDIA RIM service JSON with ``rim``), as
    opposed to Intel collateral; what it is then is for :func:`documents_in_file` to say."""
    stripped = data.lstrip()
    if stripped.startswith(b"<"):
        return True
    if stripped.startswith(b"{"):
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            return False
        return isinstance(body, dict) and "rim" in body
    return False


def _id_from_name(name: str | None) -> str | None:
    if not name:
        return None
    stem = Path(name).name
    for suffix in (".xml", ".swidtag", ".json"):
        stem = stem.removesuffix(suffix)
    return stem if _ID.fullmatch(stem) and _id_kind(stem) is not None else None


def documents_in_file(data: bytes, *, name: str | None = None) -> list[RimDocument]:
    """The RIM in one file: its XML (a file named by its RIM id, e.g.
    ``NV_GPU_DRIVER_GH100_550.144.03.xml``, gives the id) or NVIDIA RIM service's JSON answer
    (``{"id", "rim": base64, "sha256", ...}``). Raises :class:`CollateralError`."""
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        document = _from_service_json(data, None)
    elif stripped.startswith(b"<"):
        named = _id_from_name(name)
        try:
            describe_rim(data, named)
        except CollateralError:
            if named is None:
                raise
            named = None  # a file name is a hint, not a claim
        document = RimDocument(data, named)
    else:
        raise CollateralError("not a RIM: expected the RIM's XML or NVIDIA RIM service JSON")
    describe_rim(document.data, document.rim_id)
    return [document]


def _from_service_json(body_bytes: bytes, asked: str | None) -> RimDocument:
    """NVIDIA RIM service's answer, ``{"id", "rim" (base64 of the XML), "request_id",
    "sha256", "rim_format"}`` (attestation-sdk ``RimResponse``)."""
    try:
        body = json.loads(body_bytes)
    except (ValueError, RecursionError) as exc:
        raise CollateralError(f"not JSON ({str(exc)[:80]})") from None
    if not isinstance(body, dict) or not isinstance(body.get("rim"), str):
        raise CollateralError("not NVIDIA RIM service JSON: no 'rim' string (base64 of the RIM)")
    rim_id = body.get("id")
    if rim_id is not None and not isinstance(rim_id, str):
        raise CollateralError("NVIDIA RIM service JSON: 'id' is not a string")
    if asked is not None and rim_id is not None and rim_id != asked:
        raise CollateralError(f"asked for the RIM {asked}, answered with {str(rim_id)[:80]!r}")
    try:
        data = base64.b64decode(body["rim"], validate=True)
    except (binascii.Error, ValueError):
        raise CollateralError("NVIDIA RIM service JSON: 'rim' is not base64") from None
    return RimDocument(data, rim_id or asked)


# --- NVIDIA's RIM service, or a mirror of it ---------------------------------------------------


class RimFetcher:
    """NVIDIA's RIM service (``https://rim.attestation.nvidia.com``: ``GET /v1/rim/<id>``,
    answering JSON with the RIM base64 in ``rim``), or a mirror: any static HTTP server
    serving ``<base>/v1/rim/<id>`` as the RIM's XML itself, or a local directory (a path or
    ``file://`` URL) holding ``<id>.xml``, as NVIDIA's SDK reads one. Used only to fill the
    RIM collateral, never while a report is being verified. Errors: :class:`CollateralError`."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        base = base_url.rstrip("/")
        parsed = urllib.parse.urlsplit(base)
        self.directory: Path | None = None
        if parsed.scheme in ("http", "https"):
            self.base = base.removesuffix("/v1/rim")
        elif parsed.scheme in ("", "file"):
            self.directory = Path(urllib.parse.unquote(parsed.path) if parsed.scheme else base)
            self.base = str(self.directory)
        else:
            raise CollateralError(f"RIM URL {base[:80]!r}: expected http(s)://, file:// or a path")
        self.client = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def fetch(self, rim_id: str) -> RimDocument:
        """The RIM ``rim_id``, checked to be a readable RIM of the kind and version the id
        names."""
        if not _ID.fullmatch(rim_id) or _id_kind(rim_id) is None:
            raise CollateralError(f"{rim_id[:80]!r} is not an NVIDIA RIM id")
        if self.directory is not None:
            path = self.directory / f"{rim_id}.xml"
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise CollateralError(f"{path}: {exc.strerror or exc}") from None
            document = RimDocument(content, rim_id)
        else:
            url = f"{self.base}/v1/rim/{urllib.parse.quote(rim_id)}"
            content = http_get(self.client, url, limit=_MAX_ANSWER).content
            if content.lstrip().startswith(b"{"):
                document = _from_service_json(content, rim_id)
            else:
                document = RimDocument(content, rim_id)
        describe_rim(document.data, rim_id)
        return document


# --- completing a device's RIMs at intake ------------------------------------------------------

_KEPT_MEMORY = 4096
_CHOICE_MEMORY = 1024
#: RIM ids whose fetch failed lately (ids are derived from unverified reports: bounded)
_FAILED_MEMORY = 1024
#: a RIM choice's question: kind, version, chip, RIM id
_Choice = tuple[RimKind, str, str | None, str | None]


def device_chip(evidence: Evidence, report: SpdmReport) -> str | None:
    """The device's chip: the first word of its leaf certificate's common name (GH100, GB100,
    LS_10) when a chain is given, else the report's chip info; unverified (for choosing)."""
    chain = evidence.of_kind(EndorsementKind.DEVICE_CERTIFICATE)
    if chain:
        try:
            leaf = x509.load_der_x509_certificate(chain[0].data)
            names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            value = names[0].value if names else ""
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            word = text.split(" ", 1)[0]
            if word:
                return word
        except ValueError:
            pass
    return report.chip_info


@dataclass
class RimSource:
    """Completes a device's RIMs before it is judged: the RIMs a worker attached are used as
    they came, and kept for other devices only when ``verify`` accepts them (a RIM signed
    under the RIM roots the service trusts, at the instant judged: one worker's forged RIM
    must not become every tenant's reference); each missing driver or VBIOS RIM is taken from the
    kept ones by kind, the report's version and the device's chip, fetched first from the
    configured RIM service (``fetcher``) when none is kept. A failed fetch is not retried for
    the same id within ``retry_seconds``. Never raises for bad evidence: the verifier's
    verdict says what is missing or wrong."""

    sessions: sessionmaker[Session]
    fetcher: RimFetcher | None = None
    retry_seconds: float = 60.0
    #: whether an attached RIM may be kept for other devices (RIM bytes, the instant); None
    #: keeps every readable one (tools and tests that verify elsewhere)
    verify: Callable[[bytes, datetime], bool] | None = None
    _failed: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: how long a RIM choice is remembered (see :meth:`_choose`)
    choice_seconds: float = 10.0
    _kept: dict[bytes, RimKind] = field(default_factory=dict)
    #: attached RIMs ``verify`` refused (used for their own device only): not read again
    _refused: dict[bytes, RimKind] = field(default_factory=dict)
    _chosen: dict[_Choice, tuple[float, bytes | None]] = field(default_factory=dict)
    #: bumped (under ``_lock``) whenever a RIM is kept: a choice read from the database
    #: before then is not remembered (it may miss that RIM)
    _generation: int = 0

    def complete(self, evidence: Evidence, at: datetime) -> Evidence:
        if str(evidence.kind) != str(EvidenceKind.NVIDIA_GPU):
            return evidence
        given = evidence.endorsements
        attached = [e for e in given if str(e.kind) == str(EndorsementKind.RIM)]
        present = self._keep_attached(attached, at)
        try:
            report = parse_report(evidence.data)
        except VerifierError:
            return evidence
        chip = device_chip(evidence, report)
        added: list[Endorsement] = []
        for kind, rim_id in rim_ids(report, chip).items():
            if kind in present:
                continue
            version = report.driver_version if kind is RimKind.DRIVER else report.vbios_version
            if not version:
                continue
            chosen = self._choose(kind, version, chip, at, rim_id)
            fetchable = chosen is None and self.fetcher is not None and rim_id is not None
            if fetchable and rim_id is not None and self._fetch(rim_id):
                chosen = self._choose(kind, version, chip, at, rim_id)
            if chosen is not None and len(given) + len(added) < MAX_NVIDIA_ENDORSEMENTS:
                added.append(Endorsement(EndorsementKind.RIM, chosen))  # (else: rim_missing)
        if not added:
            return evidence
        return Evidence(evidence.kind, evidence.data, (*given, *added))

    def _keep_attached(self, attached: Sequence[Endorsement], at: datetime) -> set[RimKind]:
        """Keep the attached RIMs that read and that ``verify`` accepts (the rest are left to
        the verifier, for this device only); returns the kinds they cover. A RIM seen already
        is known by its digest: not read again."""
        kinds: set[RimKind] = set()
        readable = []
        for endorsement in attached:
            digest = hashlib.sha256(endorsement.data).digest()
            with self._lock:
                known = self._kept.get(digest) or self._refused.get(digest)
            if known is not None:
                kinds.add(known)
                continue
            try:
                info = describe_rim(endorsement.data)
            except CollateralError:
                continue
            kind = RimKind(info.kind)
            kinds.add(kind)
            if self.verify is not None and not self.verify(endorsement.data, at):
                with self._lock:
                    self._refused[digest] = kind
                    while len(self._refused) > _KEPT_MEMORY:
                        del self._refused[next(iter(self._refused))]
                continue
            readable.append((digest, kind, RimDocument(endorsement.data)))
        if readable:
            with self.sessions() as session, session.begin():
                keep_rims(session, [document for _, _, document in readable], source="worker")
            with self._lock:
                for digest, kind, _ in readable:
                    self._kept[digest] = kind
                while len(self._kept) > _KEPT_MEMORY:
                    del self._kept[next(iter(self._kept))]
                self._forget_choices()  # a newer RIM may now be the one to choose
        return kinds

    def _choose(
        self, kind: RimKind, version: str, chip: str | None, at: datetime, rim_id: str | None
    ) -> bytes | None:
        """The kept RIM for this kind, version and chip. The choice is remembered for
        ``choice_seconds`` (every GPU of a fleet asks the same question per report, and the
        answer changes only when a RIM is kept: then it is forgotten at once here, and
        within ``choice_seconds`` in the service's other processes)."""
        key = (kind, version, chip, rim_id)
        now = time.monotonic()
        with self._lock:
            remembered = self._chosen.get(key)
            generation = self._generation
        if remembered is not None and now - remembered[0] < self.choice_seconds:
            return remembered[1]
        with self.sessions() as session:
            document = select_rim(
                session, kind=str(kind), version=version, chip=chip, at=at, rim_id=rim_id
            )
            chosen = None if document is None else bytes(document.data)
        with self._lock:
            # a RIM kept by another thread while this one read is not in this answer: it
            # is used, not remembered (remembering it would hide that RIM for
            # choice_seconds, although the choices were just forgotten)
            if generation == self._generation:
                self._chosen[key] = (now, chosen)
                while len(self._chosen) > _CHOICE_MEMORY:
                    del self._chosen[next(iter(self._chosen))]
        return chosen

    def _forget_choices(self) -> None:
        """A RIM was kept: every remembered choice may be stale (caller holds ``_lock``)."""
        self._generation += 1
        self._chosen.clear()

    def _fetch(self, rim_id: str) -> bool:
        assert self.fetcher is not None  # noqa: S101 - the caller checked
        now = time.monotonic()
        with self._lock:
            if now - self._failed.get(rim_id, -self.retry_seconds) < self.retry_seconds:
                return False
        try:
            document = self.fetcher.fetch(rim_id)
            with self.sessions() as session, session.begin():
                keep_rims(session, [document], source="rim-service")
        except CollateralError as exc:
            log.warning("the RIM %s could not be fetched: %s", rim_id, exc)
            with self._lock:  # the ids come from reports: keep a bounded memory of them
                self._failed.pop(rim_id, None)
                self._failed[rim_id] = now
                while len(self._failed) > _FAILED_MEMORY:
                    del self._failed[next(iter(self._failed))]
            return False
        log.info("the RIM %s fetched from %s", rim_id, self.fetcher.base)
        with self._lock:
            self._forget_choices()
        return True
