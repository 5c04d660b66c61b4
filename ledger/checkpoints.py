"""Signed checkpoints: publishing the latest one, only forward, never a split view.

``publish_checkpoint(session, signer)`` signs a C2SP checkpoint for the current tree and makes
it the latest, within the caller's transaction (it flushes, never commits):

1. The latest-checkpoint pointer is moved by compare-and-swap: ``UPDATE ... SET tree_size =
   new WHERE tree_size IS NOT DISTINCT FROM old``. The update locks the row, so a concurrent
   publisher blocks, then finds the pointer moved and gets :class:`CheckpointConflict`. Two
   writers can therefore never both advance from the same checkpoint.
2. Before signing, the new root computed from the stored subtree hashes must equal the
   sequencer's compact-range root, and the consistency proof from the previous checkpoint
   (whose signature is checked first) must verify against both roots. A failure raises
   :class:`LedgerCorrupt` and nothing is signed.
3. The checkpoint names the chain head at its size in an extension line.

The key's name is the checkpoint's origin, as C2SP recommends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ledger.checkpoint import CheckpointBody
from ledger.errors import CheckpointConflict, InvalidNote, InvalidProof, LedgerCorrupt
from ledger.merkle import verify_consistency
from ledger.models import Checkpoint, LatestCheckpoint
from ledger.note import NoteSigner, NoteVerifier, open_note, sign_note
from ledger.reads import consistency_proof, root_at, tree_state

__all__ = [
    "SignedCheckpoint",
    "checkpoint_at",
    "latest_checkpoint",
    "list_checkpoints",
    "publish_checkpoint",
]


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    body: CheckpointBody
    note: str
    created_at: datetime

    @property
    def tree_size(self) -> int:
        return self.body.tree_size


def _from_row(row: Checkpoint) -> SignedCheckpoint:
    text_end = row.note.rfind("\n\n")
    body = CheckpointBody.parse(row.note[: text_end + 1])
    return SignedCheckpoint(body=body, note=row.note, created_at=row.created_at)


def latest_checkpoint(session: Session) -> SignedCheckpoint | None:
    row = session.execute(
        select(Checkpoint)
        .join(LatestCheckpoint, LatestCheckpoint.tree_size == Checkpoint.tree_size)
        .where(LatestCheckpoint.id == 1)
    ).scalar_one_or_none()
    return None if row is None else _from_row(row)


def checkpoint_at(session: Session, size: int) -> SignedCheckpoint | None:
    row = session.get(Checkpoint, size)
    return None if row is None else _from_row(row)


def list_checkpoints(
    session: Session, *, before: int | None = None, limit: int = 100
) -> list[SignedCheckpoint]:
    """Checkpoints from the newest down, ``limit`` at a time, below ``before`` if given."""
    query = select(Checkpoint).order_by(Checkpoint.tree_size.desc()).limit(limit)
    if before is not None:
        query = query.where(Checkpoint.tree_size < before)
    return [_from_row(row) for row in session.execute(query).scalars()]


def publish_checkpoint(session: Session, signer: NoteSigner) -> SignedCheckpoint:
    """Sign and publish a checkpoint of the current tree (or return the latest, if current).

    Raises :class:`CheckpointConflict` if another transaction moved the latest checkpoint
    first (roll back and try again), :class:`LedgerCorrupt` if the stored tree contradicts
    itself or the previous checkpoint.
    """
    session.flush()
    previous_size = session.execute(
        select(LatestCheckpoint.tree_size).where(LatestCheckpoint.id == 1)
    ).scalar()
    state = tree_state(session)
    previous = checkpoint_at(session, previous_size) if previous_size is not None else None
    if previous is not None and previous.tree_size == state.size:
        return previous
    if previous_size is not None and previous_size > state.size:
        raise LedgerCorrupt(
            f"the latest checkpoint has size {previous_size} but the tree only {state.size}"
        )

    # 1. compare-and-swap the pointer (this locks the row until the caller commits)
    moved = session.execute(
        update(LatestCheckpoint)
        .where(LatestCheckpoint.id == 1)
        .where(LatestCheckpoint.tree_size.is_not_distinct_from(previous_size))
        .values(tree_size=state.size, updated_at=func.now())
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        raise CheckpointConflict(
            f"another writer moved the latest checkpoint from size {previous_size} first"
        )

    # 2. the new root, from stored subtrees and from the compact range, must agree
    root = state.root
    if root_at(session, state.size) != root:
        raise LedgerCorrupt(
            f"the stored subtree hashes and the sequencer disagree on the root at size {state.size}"
        )
    if previous is not None:
        verifier = signer.verifier()
        _check_signature(previous, verifier)
        if previous.tree_size > 0:
            proof = consistency_proof(session, previous.tree_size, state.size)
            try:
                verify_consistency(
                    previous.tree_size, state.size, proof, previous.body.root_hash, root
                )
            except InvalidProof as exc:
                raise LedgerCorrupt(
                    f"the tree at size {state.size} is not consistent with the checkpoint at "
                    f"size {previous.tree_size}: {exc.message}"
                ) from None

    # 3. sign and store
    body = CheckpointBody(signer.name, state.size, root, chain_head=state.chain_head)
    note = sign_note(body.to_text(), [signer])
    session.execute(
        insert(Checkpoint).values(
            tree_size=state.size, root_hash=root, chain_head=state.chain_head, note=note
        )
    )
    created = session.execute(
        select(Checkpoint.created_at).where(Checkpoint.tree_size == state.size)
    ).scalar_one()
    return SignedCheckpoint(body=body, note=note, created_at=created)


def _check_signature(checkpoint: SignedCheckpoint, verifier: NoteVerifier) -> None:
    try:
        open_note(checkpoint.note, [verifier])
    except InvalidNote as exc:
        raise LedgerCorrupt(
            f"the stored checkpoint at size {checkpoint.tree_size} does not verify with the "
            f"ledger key: {exc.message}"
        ) from None
