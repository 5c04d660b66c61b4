"""Group commit: many concurrent single-entry appends, one transaction per batch.

Callers in any number of threads call :meth:`AppendBatcher.append`; a single worker thread
collects what is waiting (up to ``max_batch``, waiting at most ``max_wait`` for more), appends
it in one transaction and commits. Each caller is acknowledged only after the commit that
made its entry durable; if the batch fails, it is retried entry by entry so that one bad
entry cannot sink the others, and each caller gets its own outcome.

While one batch commits the next one fills, so throughput follows the commit rate times the
batch size instead of collapsing to one commit per entry.

When the database is unavailable (see :func:`ledger.db.unavailable_reason`) a batch is not
retried entry by entry, which would only fail once per entry: every caller of the batch gets
:class:`~ledger.errors.DatabaseUnavailable` at once, and so does a caller whose batch has not
committed within its timeout. Either way nothing was acknowledged; if the connection broke
during the COMMIT itself the batch may still have been committed, which an idempotent retry
(same evidence, same idempotency key) finds instead of recording twice.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ledger.append import DEFAULT_LOCK_TIMEOUT, Appended, append
from ledger.db import unavailable_reason
from ledger.entry import NewEntry, PreparedEntry, prepare
from ledger.errors import DatabaseUnavailable, LedgerError

__all__ = ["AppendBatcher", "BatcherClosed", "FollowUp"]

#: Work to do in the same transaction, after the entry is appended (e.g. record a receipt).
AfterAppend = Callable[[Session, Appended], None]


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Work for the batch's transaction after its entries are appended, done once for all the
    entries of the batch that share the same ``run``: ``run(session, [(appended, payload),
    ...])``, in the batch's order. One statement for the batch instead of one per entry, while
    the sequencer lock is held. ``run`` raises to fail the batch; the batch is then retried
    entry by entry, so the error reaches only the entry that caused it."""

    run: Callable[[Session, list[tuple[Appended, Any]]], None]
    payload: Any


class BatcherClosed(LedgerError):
    code = "ledger_busy"


#: endorsement digests a batcher remembers as committed
_STORED_MEMORY = 8192


@dataclass
class _Job:
    entry: PreparedEntry
    after: AfterAppend | FollowUp | None
    future: Future[Appended]


class AppendBatcher:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        max_batch: int = 1000,
        max_wait: float = 0.002,
        lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._factory = session_factory
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._lock_timeout = lock_timeout
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._gate = threading.Lock()  # makes "closed?" and "enqueue" one step
        #: SHA-256 of endorsements committed by this batcher (bounded; only its thread reads
        #: and writes it): not sent to the database again
        self._stored: dict[bytes, None] = {}
        self.batches = 0  # committed transactions
        self.split_batches = 0  # batches that failed and were retried entry by entry
        self._thread = threading.Thread(target=self._run, name="ledger-append-batcher", daemon=True)
        self._thread.start()

    def submit(
        self, entry: NewEntry, *, after: AfterAppend | FollowUp | None = None
    ) -> Future[Appended]:
        """Queue ``entry``; the future resolves once its batch has committed.

        The entry is validated here, in the caller's thread: :class:`InvalidEntry` is raised at
        once instead of failing a batch.
        """
        job = _Job(prepare(entry), after, Future())
        with self._gate:
            if self._closed.is_set():
                raise BatcherClosed("the append batcher is closed")
            self._queue.put(job)
        return job.future

    def append(
        self,
        entry: NewEntry,
        *,
        after: AfterAppend | FollowUp | None = None,
        timeout: float | None = None,
    ) -> Appended:
        """Append ``entry`` and return once it is durable (committed).

        Raises :class:`DatabaseUnavailable` if the database cannot take it now, or if its
        batch has not committed within ``timeout`` seconds (it may commit later: retry
        idempotently).
        """
        future = self.submit(entry, after=after)
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise DatabaseUnavailable(
                f"the entry was not committed within {timeout:g} seconds"
            ) from None

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting entries, finish what is queued, and stop the worker."""
        with self._gate:
            if not self._closed.is_set():
                self._closed.set()
                self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self._max_wait
            while len(batch) < self._max_batch:
                remaining = deadline - time.monotonic()
                try:
                    job = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        try:
            results = self._transaction(batch)
        except Exception as exc:
            reason = unavailable_reason(exc)
            if reason is not None:  # every entry would fail alike: fail them all, now
                for job in batch:
                    failure = DatabaseUnavailable(reason)
                    failure.__cause__ = exc
                    job.future.set_exception(failure)
                return
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            self.split_batches += 1
            for job in batch:  # isolate the failure: each entry in its own transaction
                self._commit([job])
            return
        self.batches += 1
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)

    def _remember_stored(self, batch: list[_Job], results: list[Appended]) -> None:
        """The endorsements of the entries this batch appended (a duplicate appended none)."""
        for job, result in zip(batch, results, strict=True):
            if result.duplicate:
                continue
            for digest, _ in job.entry.endorsements:
                self._stored[digest] = None
        while len(self._stored) > _STORED_MEMORY:
            del self._stored[next(iter(self._stored))]

    def _transaction(self, batch: list[_Job]) -> list[Appended]:
        session = self._factory()
        try:
            results = append(
                session,
                [job.entry for job in batch],
                lock_timeout=self._lock_timeout,
                stored=self._stored,
            )
            grouped: dict[Any, list[tuple[Appended, Any]]] = {}
            for job, result in zip(batch, results, strict=True):
                if isinstance(job.after, FollowUp):
                    grouped.setdefault(job.after.run, []).append((result, job.after.payload))
                elif job.after is not None:
                    job.after(session, result)
            for run, items in grouped.items():
                run(session, items)
            session.commit()
            self._remember_stored(batch, results)
            return results
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
