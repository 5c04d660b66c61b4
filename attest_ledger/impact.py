"""The revocation impact: which TDX and SGX entries were judged under a TCB level that a later
TCB info marks OutOfDate or Revoked (issue #12, "Collateral is evidence too").

Each TDX or SGX entry names the TCB info that judged it (``claims.collateral.tcb_info``, its
issue date in ``claims.tcb.tcb_info``). For every TCB info kept in ``collateral_documents``
for the same TEE and FMSPC and issued after that one, the entry's platform is judged again
with the verifier's own TCB evaluation (:func:`verifier.tdx.tcb.evaluate_tcb`, pure): its
stored quote re-parsed, its PCK certificate's SGX extension, and the QE identity that judged
it (so that only the platform's standing changes). An entry is listed when a later TCB info
puts it in a worse tier that is ``OutOfDate``, ``OutOfDateConfigurationNeeded`` or
``Revoked``, or lists no level it reaches at all (``no_matching_tcb_level``: Intel no longer
names that platform TCB).

What is kept is not trusted for being kept: a later TCB info counts only once its signature
verifies with a kept TCB Signing certificate that the service's Intel root (pinned, or
configured) issued (:meth:`verifier.tdx.DcapVerifier.signed_tcb_info`); one that does not is
left out and logged. Each listed entry names the digest of the document that marked it, which
``/api/v1/collateral`` and the portal serve for anyone to check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from attest_ledger.collateral import CERTIFICATE, TCB_INFO
from attest_ledger.models import CollateralDocument
from ledger.models import Endorsement as StoredEndorsement
from ledger.models import Entry
from ledger.models import Evidence as StoredEvidence
from verifier import EvidenceKind, VerifierError
from verifier.tdx import DcapVerifier, parse_quote, unverified_pck
from verifier.tdx.collateral import TcbInfo, parse_qe_identity, split_signed_body
from verifier.tdx.tcb import evaluate_tcb
from verifier.timefmt import iso_utc

__all__ = [
    "DCAP_KINDS",
    "ImpactPage",
    "ImpactedEntry",
    "LaterTcbInfo",
    "Marking",
    "later_tcb_infos",
    "revocation_impact",
]

log = logging.getLogger(__name__)

DCAP_KINDS = (str(EvidenceKind.INTEL_TDX), str(EvidenceKind.INTEL_SGX))
#: How bad a TCB status is: a later status is "worse" when its rank is higher.
_RANK = {
    "UpToDate": 0,
    "SWHardeningNeeded": 1,
    "ConfigurationNeeded": 1,
    "ConfigurationAndSWHardeningNeeded": 1,
    "OutOfDate": 2,
    "OutOfDateConfigurationNeeded": 2,
    "Revoked": 3,
}
#: The statuses this list is about.
LISTED = ("OutOfDate", "OutOfDateConfigurationNeeded", "Revoked")
NO_MATCHING_LEVEL = "no_matching_tcb_level"
_BATCH = 500


@dataclass(frozen=True)
class LaterTcbInfo:
    """A kept TCB info document, parsed (not verified)."""

    sha256: str
    info: TcbInfo

    @property
    def key(self) -> tuple[str, str]:
        return self.info.id, self.info.fmspc.hex()

    def to_dict(self) -> dict[str, object]:
        return {
            "sha256": self.sha256,
            "tee": self.info.id,
            "fmspc": self.info.fmspc.hex().upper(),
            "issue_date": iso_utc(self.info.issue_date, "seconds"),
            "tcb_evaluation_data_number": self.info.tcb_evaluation_data_number,
            "url": f"/api/v1/collateral/{self.sha256}",
        }


@dataclass(frozen=True)
class Marking:
    """What one later TCB info says of an entry's platform."""

    document: LaterTcbInfo
    #: the TCB status it gives, None when it lists no level the platform reaches
    status: str | None
    advisory_ids: tuple[str, ...]
    tcb_date: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "tcb_info": self.document.to_dict(),
            "status": self.status,
            "error": NO_MATCHING_LEVEL if self.status is None else None,
            "advisory_ids": list(self.advisory_ids),
            "tcb_date": self.tcb_date,
        }


@dataclass(frozen=True)
class ImpactedEntry:
    """An entry a later TCB info marks worse: what judged it and what marks it now."""

    index: int
    appended_at: datetime
    evidence_kind: str
    image: str | None
    worker: str | None
    verdict: str | None
    fmspc: str
    old_status: str
    old_tcb_date: str | None
    old_tcb_info_sha256: str | None
    old_tcb_evaluation_data_number: int | None
    #: every later TCB info that marks it worse, oldest first (the last is the newest word)
    marked_by: tuple[Marking, ...]

    @property
    def new_status(self) -> str | None:
        return self.marked_by[-1].status

    def to_dict(self) -> dict[str, object]:
        newest = self.marked_by[-1]
        return {
            "index": self.index,
            "appended_at": iso_utc(self.appended_at),
            "url": f"/api/v1/entries/{self.index}",
            "evidence_kind": self.evidence_kind,
            "image": self.image,
            "worker": self.worker,
            "verdict": self.verdict,
            "fmspc": self.fmspc,
            "old": {
                "status": self.old_status,
                "tcb_date": self.old_tcb_date,
                "tcb_info_sha256": self.old_tcb_info_sha256,
                "tcb_evaluation_data_number": self.old_tcb_evaluation_data_number,
            },
            "new": newest.to_dict(),
            "marked_by": [m.to_dict() for m in self.marked_by],
        }


@dataclass(frozen=True)
class ImpactPage:
    entries: tuple[ImpactedEntry, ...]
    #: the cursor of the next page (an entry index), None when this is the last
    after: str | None


def later_tcb_infos(
    session: Session,
    verifier: DcapVerifier,
    *,
    fmspc: str | None = None,
    since: datetime | None = None,
) -> dict[tuple[str, str], list[LaterTcbInfo]]:
    """The kept TCB info documents by (TEE, lowercase FMSPC), oldest first, each signed by a
    kept TCB Signing certificate one of ``verifier``'s roots issued; those that do not parse
    or verify are left out (and logged)."""
    signing = [
        bytes(data)
        for data in session.execute(
            select(CollateralDocument.data).where(CollateralDocument.kind == CERTIFICATE)
        ).scalars()
    ]
    query = select(CollateralDocument.sha256, CollateralDocument.data).where(
        CollateralDocument.kind == TCB_INFO
    )
    if fmspc is not None:
        query = query.where(CollateralDocument.fmspc == fmspc.lower())
    if since is not None:
        query = query.where(CollateralDocument.issued_at >= since)
    found: dict[tuple[str, str], list[LaterTcbInfo]] = {}
    for digest, data in session.execute(query):
        try:
            info = verifier.signed_tcb_info(bytes(data), signing)
        except VerifierError as exc:
            log.warning("kept tcb-info %s is left out: %s", bytes(digest).hex(), exc.message)
            continue
        document = LaterTcbInfo(bytes(digest).hex(), info)
        found.setdefault(document.key, []).append(document)
    for documents in found.values():
        documents.sort(key=lambda d: (d.info.issue_date, d.sha256))
    return found


def revocation_impact(
    session: Session,
    verifier: DcapVerifier,
    *,
    fmspc: str | None = None,
    since: datetime | None = None,
    after: int | None = None,
    limit: int = 100,
) -> ImpactPage:
    """The entries (newest first, below the index ``after`` if given) that a TCB info kept
    and issued after the one that judged them marks worse. ``fmspc``: only that platform;
    ``since``: only later TCB infos issued at or after this instant."""
    documents = later_tcb_infos(session, verifier, fmspc=fmspc, since=since)
    if not documents:
        return ImpactPage((), None)
    found: list[ImpactedEntry] = []
    cursor = after
    while True:
        query = (
            select(
                Entry.idx,
                Entry.data,
                Entry.appended_at,
                Entry.image,
                Entry.worker,
                Entry.verdict,
            )
            .where(Entry.evidence_kind.in_(DCAP_KINDS))
            .order_by(Entry.idx.desc())
            .limit(_BATCH)
        )
        if cursor is not None:
            query = query.where(Entry.idx < cursor)
        rows = session.execute(query).all()
        for row in rows:
            cursor = row.idx
            impacted = _judge_again(session, row, documents)
            if impacted is not None:
                found.append(impacted)
                if len(found) == limit:
                    return ImpactPage(tuple(found), str(row.idx))
        if len(rows) < _BATCH:
            return ImpactPage(tuple(found), None)


def _judge_again(
    session: Session, row: Any, documents: dict[tuple[str, str], list[LaterTcbInfo]]
) -> ImpactedEntry | None:
    try:
        record = json.loads(bytes(row.data))
        claims = record["claims"]
        tcb = claims["tcb"]
        if not isinstance(tcb, dict):
            return None  # judged before the TCB was evaluated: no TCB level judged it
        used = tcb["tcb_info"]
        old_issued = datetime.fromisoformat(str(used["issue_date"]).replace("Z", "+00:00"))
        fmspc = str(claims["fmspc"]).lower()
        tee = "TDX" if record["evidence_kind"] == DCAP_KINDS[0] else "SGX"
        old_status = str(tcb["status"])
        used_digest = claims.get("collateral", {}).get("tcb_info")
        qe_digest = claims.get("collateral", {}).get("qe_identity")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    later = [
        d
        for d in documents.get((tee, fmspc), ())
        if d.info.issue_date > old_issued and d.sha256 != used_digest
    ]
    if not later or not isinstance(qe_digest, str):
        return None
    markings = _markings(
        session, row.idx, record["evidence_kind"], qe_digest, later, old_status=old_status
    )
    if not markings:
        return None
    platform = tcb.get("platform") or {}
    return ImpactedEntry(
        index=row.idx,
        appended_at=row.appended_at,
        evidence_kind=str(record["evidence_kind"]),
        image=row.image,
        worker=row.worker,
        verdict=row.verdict,
        fmspc=fmspc.upper(),
        old_status=old_status,
        old_tcb_date=platform.get("tcb_date"),
        old_tcb_info_sha256=used_digest if isinstance(used_digest, str) else None,
        old_tcb_evaluation_data_number=used.get("tcb_evaluation_data_number"),
        marked_by=tuple(markings),
    )


def _markings(
    session: Session,
    index: int,
    kind: str,
    qe_digest: str,
    later: Sequence[LaterTcbInfo],
    *,
    old_status: str,
) -> list[Marking]:
    quote_bytes = session.get(StoredEvidence, index)
    qe_document = session.get(StoredEndorsement, bytes.fromhex(qe_digest))
    if quote_bytes is None or qe_document is None:
        return []
    try:
        quote = parse_quote(bytes(quote_bytes.data))
        pck = unverified_pck(quote)
        qe_identity = parse_qe_identity(
            split_signed_body(bytes(qe_document.data), "enclaveIdentity", "qe-identity").signed
        )
    except (VerifierError, ValueError):
        return []
    if pck is None:
        return []
    return list(_worse(_evaluations(quote, pck, qe_identity, later), old_status))


def _evaluations(
    quote: Any, pck: Any, qe_identity: Any, later: Sequence[LaterTcbInfo]
) -> Iterable[Marking]:
    for document in later:
        try:
            evaluation = evaluate_tcb(quote, pck, document.info, qe_identity)
        except VerifierError as exc:
            if exc.code == NO_MATCHING_LEVEL:
                yield Marking(document, None, (), None)
            continue  # of another PCE, or otherwise not this platform's: says nothing of it
        yield Marking(
            document,
            evaluation.status,
            evaluation.advisory_ids,
            evaluation.platform_level.tcb_date,
        )


def _worse(markings: Iterable[Marking], old_status: str) -> Iterable[Marking]:
    old = _RANK.get(old_status, 0)
    for marking in markings:
        if marking.status is None or (marking.status in LISTED and _RANK[marking.status] > old):
            yield marking
