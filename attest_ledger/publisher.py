"""Publishing checkpoints from the running service: one publisher at a time, elected by
PostgreSQL.

Every service process runs a :class:`CheckpointPublisher` thread. Each tries to take a
session-level advisory lock on a connection of its own; the one that holds it is the
publisher, the others keep trying. A checkpoint is published whenever ``max_entries`` new
entries wait, or ``interval`` seconds after the first one arrived, whichever comes first. If
the publishing process dies its connection closes, the lock is released, and another
process takes over within a second. After each checkpoint the publisher also brings the
hourly entry counts up to date (:mod:`ledger.stats`), and every ``sweep_interval`` seconds it
deletes challenges long expired (:func:`attest_ledger.challenges.sweep`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from attest_ledger import challenges
from ledger.checkpoints import publish_checkpoint
from ledger.db import unavailable_reason
from ledger.errors import LedgerError
from ledger.models import LatestCheckpoint, Sequencer
from ledger.note import NoteSigner
from ledger.stats import refresh

__all__ = ["PUBLISHER_LOCK", "CheckpointPublisher"]

#: pg_advisory_lock key of the checkpoint publisher ("ckpt-pub").
PUBLISHER_LOCK = 0x636B70742D707562

log = logging.getLogger(__name__)


class CheckpointPublisher:
    def __init__(
        self,
        engine: Engine,
        signer: NoteSigner,
        *,
        interval: float = 5.0,
        max_entries: int = 1000,
        poll: float = 0.25,
        on_publish: Callable[[int], None] | None = None,
        sweep_interval: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.interval = interval
        self.max_entries = max_entries
        self.poll = poll
        self.on_publish = on_publish
        self.sweep_interval = sweep_interval
        self.clock = clock
        self.leader = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint-publisher", daemon=True)

    def start(self) -> CheckpointPublisher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.engine.connect() as lock_connection:
                    self._lead_while_elected(lock_connection)
            except SQLAlchemyError as exc:
                log.warning(
                    "checkpoint publisher: database unavailable (%s); retrying",
                    unavailable_reason(exc) or exc,  # one line, not the SQL and its parameters
                )
            self.leader = False
            self._stop.wait(1.0)

    def _lead_while_elected(self, lock_connection: Connection) -> None:
        while not self._stop.is_set():
            elected = lock_connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": PUBLISHER_LOCK}
            ).scalar()
            lock_connection.commit()
            if elected:
                break
            self._stop.wait(1.0)
        else:
            return
        self.leader = True
        log.info("checkpoint publisher: elected")
        waiting_since: float | None = None
        swept_at = float("-inf")
        try:
            while not self._stop.is_set():
                if time.monotonic() - swept_at >= self.sweep_interval:
                    self._sweep()
                    swept_at = time.monotonic()
                pending = self._pending()
                now = time.monotonic()
                if pending == 0:
                    waiting_since = None
                else:
                    waiting_since = waiting_since or now
                    if pending >= self.max_entries or now - waiting_since >= self.interval:
                        self._publish()
                        waiting_since = None
                        continue
                self._stop.wait(self.poll)
        finally:
            lock_connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": PUBLISHER_LOCK}
            )
            lock_connection.commit()

    def _pending(self) -> int:
        with Session(self.engine) as session:
            size = session.execute(
                select(Sequencer.tree_size).where(Sequencer.id == 1)
            ).scalar_one()
            latest = session.execute(
                select(LatestCheckpoint.tree_size).where(LatestCheckpoint.id == 1)
            ).scalar()
        return size - (latest if latest is not None else -1)

    def _publish(self) -> None:
        try:
            with Session(self.engine) as session, session.begin():
                checkpoint = publish_checkpoint(session, self.signer)
        except LedgerError as exc:
            log.error("checkpoint publisher: [%s] %s", exc.code, exc.message)
            self._stop.wait(1.0)
            return
        if self.on_publish is not None:
            self.on_publish(checkpoint.tree_size)
        self._count()

    def _sweep(self) -> None:
        """Delete long-expired challenges, a bounded batch at a time."""
        try:
            for _ in range(10):
                with Session(self.engine) as session, session.begin():
                    deleted = challenges.sweep(session, self.clock())
                if deleted < challenges.SWEEP_BATCH:
                    return
        except SQLAlchemyError as exc:
            log.warning("checkpoint publisher: sweeping challenges failed (%s)", exc)

    def _count(self) -> None:
        """Keep the hourly counts (the portal's overview) up with the checkpoints."""
        try:
            with Session(self.engine) as session, session.begin():
                refresh(session)
        except SQLAlchemyError as exc:
            log.warning("checkpoint publisher: counting entries failed (%s)", exc)
