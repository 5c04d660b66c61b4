"""Audit: recompute everything from the rows and report the first divergence.

Streaming every entry in index order (memory stays flat), the audit recomputes and compares:

1. the index sequence (dense from 0: a gap is a missing entry);
2. each leaf hash from the entry bytes, and that the bytes honour the entry contract;
3. the index columns, re-derived from the entry bytes;
4. the evidence: its SHA-256 against the digest the entry bytes commit to;
5. the hash chain;
6. every stored subtree hash, against the nodes a compact range builds from the leaves, and
   that no stored node lies beyond the tree;
7. the sequencer row: tree size, chain head and compact range;
8. every checkpoint: its signature under the ledger key, its root and chain head against the
   recomputed ones at its size, and a consistency proof from the previous checkpoint built
   from the stored nodes; and that the latest-checkpoint pointer names the newest.

It stops at the first divergence and says where: the entry index (or the checkpoint's size)
and what did not match. Tampering done with the triggers disabled is exactly what it is for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ledger.chain import GENESIS, next_chain_hash
from ledger.checkpoint import CheckpointBody
from ledger.entry import endorsement_digests, index_columns, parse_entry
from ledger.errors import InvalidEntry, InvalidNote, InvalidProof, LedgerCorrupt
from ledger.merkle import CompactRange, NodeID, leaf_hash, verify_consistency
from ledger.models import Checkpoint, Entry, Evidence, LatestCheckpoint, Node
from ledger.note import NoteVerifier, open_note
from ledger.reads import consistency_proof, tree_state

__all__ = ["AuditReport", "Divergence", "audit"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Divergence:
    #: The first entry index affected, or None when the problem is not tied to one entry.
    index: int | None
    #: Stable code: missing_entry, leaf_hash, entry_format, index_columns, evidence,
    #: endorsement, chain, node, extra_node, sequencer, checkpoint_signature,
    #: checkpoint_root, checkpoint_chain, checkpoint_consistency, checkpoint_beyond_tree,
    #: latest_checkpoint.
    what: str
    message: str
    #: For checkpoint problems, the checkpoint's tree size.
    checkpoint: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "what": self.what,
            "message": self.message,
            "checkpoint": self.checkpoint,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    entries: int
    nodes: int
    checkpoints: int
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        return self.divergence is None


class _Found(Exception):
    def __init__(self, divergence: Divergence) -> None:
        self.divergence = divergence


def audit(
    session: Session,
    verifier: NoteVerifier,
    *,
    progress: Progress | None = None,
    chunk: int = 10_000,
) -> AuditReport:
    """Audit the whole ledger in ``session``'s snapshot. Never raises for what it finds:
    the first divergence is in the report. Run it in a REPEATABLE READ transaction for a
    consistent snapshot while appends continue (the CLI does)."""
    run = _Audit(session, verifier, progress, chunk)
    divergence = None
    try:
        run.start()
        run.entries()
        run.finish()
    except _Found as found:
        divergence = found.divergence
    return AuditReport(run.position, run.nodes_checked, run.checkpoints_checked, divergence)


class _Audit:
    def __init__(
        self, session: Session, verifier: NoteVerifier, progress: Progress | None, chunk: int
    ) -> None:
        self.session = session
        self.verifier = verifier
        self.progress = progress
        self.chunk = chunk
        self.total = 0
        self.position = 0
        self.chain = GENESIS
        self.compact = CompactRange()
        self.pending_nodes: list[tuple[NodeID, bytes]] = []
        #: endorsements named by the entries of the current chunk: digest -> first index
        self.pending_endorsements: dict[str, int] = {}
        self.nodes_checked = 0
        self.checkpoints_checked = 0
        self.checkpoints = self._checkpoints()
        self.next_checkpoint: Checkpoint | None = None
        self.previous_checkpoint: tuple[int, bytes] | None = None
        self.reporting = False

    def start(self) -> None:
        try:
            self.state = tree_state(self.session)
        except LedgerCorrupt as exc:
            self._report(None, "sequencer", exc.message)
        self.total = self.state.size
        self.next_checkpoint = next(self.checkpoints, None)

    # -- entries ----------------------------------------------------------------------------

    def entries(self) -> None:
        rows = self.session.execute(
            select(
                Entry.idx,
                Entry.data,
                Entry.leaf_hash,
                Entry.chain_hash,
                Entry.kind,
                Entry.verdict,
                Entry.worker,
                Entry.image,
                Entry.pcr0,
                Entry.module_id,
                Entry.result_hash,
                Entry.evidence_kind,
                Entry.evidence_sha256,
                Entry.document_time,
                Evidence.data.label("evidence"),
                Evidence.idx.label("evidence_idx"),
            )
            .outerjoin(Evidence, Evidence.idx == Entry.idx)
            .order_by(Entry.idx)
            .execution_options(yield_per=self.chunk)
        )
        try:
            for row in rows:
                self._checkpoints_due()
                self._entry(row)
                if self.position % self.chunk == 0:
                    self._flush_nodes()
                    self._flush_endorsements()
                    if self.progress is not None:
                        self.progress(self.position, self.total)
        finally:
            rows.close()  # the server-side cursor, also when a divergence stops the walk
        self._flush_nodes()
        self._flush_endorsements()
        self._checkpoints_due()
        if self.progress is not None:
            self.progress(self.position, self.total)

    def _entry(self, row: object) -> None:
        index = row.idx  # type: ignore[attr-defined]
        if index != self.position:
            self._report(
                self.position,
                "missing_entry",
                f"entry {self.position} is missing (the next stored index is {index})",
            )
        data: bytes = row.data  # type: ignore[attr-defined]
        leaf = leaf_hash(data)
        if leaf != row.leaf_hash:  # type: ignore[attr-defined]
            self._report(
                index,
                "leaf_hash",
                f"entry {index}: the stored leaf hash is not SHA-256(0x00 || entry bytes)",
            )
        try:
            record = parse_entry(data)
            columns = index_columns(record)
            for digest in endorsement_digests(record):
                self.pending_endorsements.setdefault(digest, index)
        except InvalidEntry as exc:
            self._report(index, "entry_format", f"entry {index}: {exc.message}")
        for name, value in columns.items():
            if getattr(row, name) != value:
                self._report(
                    index,
                    "index_columns",
                    f"entry {index}: column {name} does not match the entry bytes",
                )
        evidence: bytes | None = row.evidence  # type: ignore[attr-defined]
        committed = record.get("evidence_sha256")
        if evidence is None and committed is not None:
            self._report(index, "evidence", f"entry {index}: its evidence is missing")
        if evidence is not None and committed is None:
            self._report(
                index,
                "evidence",
                f"entry {index}: evidence is stored but the entry commits to none",
            )
        if evidence is not None and hashlib.sha256(evidence).hexdigest() != committed:
            self._report(
                index,
                "evidence",
                f"entry {index}: the evidence's SHA-256 is not the one the entry commits to",
            )
        self.chain = next_chain_hash(self.chain, leaf)
        if self.chain != row.chain_hash:  # type: ignore[attr-defined]
            self._report(
                index,
                "chain",
                f"entry {index}: the chain hash does not follow from entry {index - 1}",
            )
        self.pending_nodes.extend(self.compact.append(leaf))
        self.position += 1

    # -- endorsements ---------------------------------------------------------------------

    def _flush_endorsements(self) -> None:
        """Every endorsement the chunk's entries name is stored, with that SHA-256."""
        if not self.pending_endorsements:
            return
        pending, self.pending_endorsements = self.pending_endorsements, {}
        rows = self.session.execute(
            text("SELECT sha256, data FROM ledger_endorsements WHERE sha256 = ANY(:digests)"),
            {"digests": [bytes.fromhex(d) for d in pending]},
        )
        stored = {bytes(sha256): bytes(data) for sha256, data in rows}
        for digest, index in sorted(pending.items(), key=lambda item: item[1]):
            data = stored.get(bytes.fromhex(digest))
            if data is None:
                self._report(
                    index, "endorsement", f"entry {index}: endorsement {digest} is missing"
                )
            elif hashlib.sha256(data).hexdigest() != digest:
                self._report(
                    index,
                    "endorsement",
                    f"entry {index}: the stored endorsement {digest} has another SHA-256",
                )

    # -- stored subtree hashes ----------------------------------------------------------------

    def _flush_nodes(self) -> None:
        if not self.pending_nodes:
            return
        pending, self.pending_nodes = self.pending_nodes, []
        stored: dict[NodeID, bytes] = {}
        rows = self.session.execute(
            text(
                "SELECT n.level, n.idx, n.hash FROM ledger_nodes n "
                "JOIN unnest(CAST(:levels AS smallint[]), CAST(:idxs AS bigint[])) "
                "AS wanted(level, idx) ON n.level = wanted.level AND n.idx = wanted.idx"
            ),
            {"levels": [node[0] for node, _ in pending], "idxs": [node[1] for node, _ in pending]},
        )
        for level, index, value in rows:
            stored[(level, index)] = value
        for (level, index), value in sorted(pending, key=lambda item: item[0][1] << item[0][0]):
            first_leaf = index << level
            span = f"stored subtree ({level}, {index}) over entries {first_leaf}.."
            span += str(first_leaf + (1 << level) - 1)
            if (level, index) not in stored:
                self._report(first_leaf, "node", f"{span} is missing")
            if stored[(level, index)] != value:
                self._report(first_leaf, "node", f"{span} does not match the entries")
            self.nodes_checked += 1

    # -- checkpoints -------------------------------------------------------------------------

    def _checkpoints(self) -> Iterator[Checkpoint]:
        last = -1
        while True:
            page = list(
                self.session.execute(
                    select(Checkpoint)
                    .where(Checkpoint.tree_size > last)
                    .order_by(Checkpoint.tree_size)
                    .limit(1000)
                ).scalars()
            )
            if not page:
                return
            yield from page
            last = page[-1].tree_size

    def _checkpoints_due(self) -> None:
        while self.next_checkpoint is not None and self.next_checkpoint.tree_size == self.position:
            self._flush_nodes()
            self._checkpoint(self.next_checkpoint)
            self.next_checkpoint = next(self.checkpoints, None)

    def _checkpoint(self, row: Checkpoint) -> None:
        size = row.tree_size
        where = f"checkpoint at size {size}"
        try:
            opened = open_note(row.note, [self.verifier])
            body = CheckpointBody.parse(opened.text)
        except InvalidNote as exc:
            self._report(None, "checkpoint_signature", f"{where}: {exc.message}", checkpoint=size)
        root = self.compact.root()
        if body.tree_size != size or body.root_hash != root or row.root_hash != root:
            self._report(
                size - 1 if size else None,
                "checkpoint_root",
                f"{where}: its root is not the root of the first {size} entries",
                checkpoint=size,
            )
        if body.chain_head != self.chain or row.chain_head != self.chain:
            self._report(
                size - 1 if size else None,
                "checkpoint_chain",
                f"{where}: its chain head is not the chain after {size} entries",
                checkpoint=size,
            )
        if self.previous_checkpoint is not None and self.previous_checkpoint[0] > 0:
            old_size, old_root = self.previous_checkpoint
            try:
                proof = consistency_proof(self.session, old_size, size)
                verify_consistency(old_size, size, proof, old_root, root)
            except (InvalidProof, LedgerCorrupt) as exc:
                self._report(
                    old_size,
                    "checkpoint_consistency",
                    f"{where}: no valid consistency proof from size {old_size}: {exc.message}",
                    checkpoint=size,
                )
        self.previous_checkpoint = (size, root)
        self.checkpoints_checked += 1

    # -- the end ------------------------------------------------------------------------------

    def finish(self) -> None:
        if self.position < self.total:
            self._report(
                self.position,
                "missing_entry",
                f"the sequencer counts {self.total} entries; "
                f"entries from {self.position} on are missing",
            )
        if self.position > self.total:
            self._report(
                self.total,
                "sequencer",
                f"the sequencer counts {self.total} entries but {self.position} are stored",
            )
        if self.state.chain_head != self.chain or self.state.compact.hashes != self.compact.hashes:
            self._report(
                None,
                "sequencer",
                "the sequencer's chain head or compact range does not match the entries",
            )
        expected_nodes = sum(self.position >> level for level in range(1, 64))
        stored_nodes = self.session.execute(select(func.count()).select_from(Node)).scalar_one()
        if stored_nodes != expected_nodes:
            extra = self.session.execute(
                select(Node.level, Node.idx)
                .where(((Node.idx + 1) * func.power(2, Node.level)) > self.position)
                .limit(1)
            ).first()
            where = f" (e.g. ({extra.level}, {extra.idx}))" if extra else ""
            self._report(
                None,
                "extra_node",
                f"{stored_nodes} stored subtree hashes where {expected_nodes} were expected{where}",
            )
        if self.next_checkpoint is not None:
            size = self.next_checkpoint.tree_size
            self._report(
                None,
                "checkpoint_beyond_tree",
                f"checkpoint at size {size} is beyond the {self.position} stored entries",
                checkpoint=size,
            )
        latest = self.session.execute(
            select(LatestCheckpoint.tree_size).where(LatestCheckpoint.id == 1)
        ).scalar()
        newest = self.previous_checkpoint[0] if self.previous_checkpoint else None
        if latest != newest:
            self._report(
                None,
                "latest_checkpoint",
                f"the latest-checkpoint pointer names size {latest}, "
                f"the newest checkpoint is {newest}",
            )

    def _report(
        self, index: int | None, what: str, message: str, *, checkpoint: int | None = None
    ) -> NoReturn:
        """Stop at this divergence, unless a stored subtree over earlier entries diverged
        first: that one has the lower index, so it is the one reported."""
        if not self.reporting and index is not None:
            self.reporting = True
            self._flush_nodes()
        raise _Found(Divergence(index, what, message, checkpoint))
