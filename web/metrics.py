"""Prometheus metrics.

Counters and histograms are kept per process; under gunicorn, ``attest-ledger serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` so that any worker can report all of them. Ledger size and
checkpoint age are read from the database when scraped, so they are right whoever answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import select

from attest_ledger import challenges
from ledger.checkpoints import latest_checkpoint
from ledger.models import Sequencer

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _LedgerCollector(Collector):
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily("ledger_tree_size", "Entries in the ledger")
        checkpoint_size = GaugeMetricFamily(
            "ledger_checkpoint_tree_size", "Tree size of the latest signed checkpoint"
        )
        age = GaugeMetricFamily(
            "ledger_checkpoint_age_seconds", "Seconds since the latest checkpoint was signed"
        )
        stored_challenges = GaugeMetricFamily(
            "attest_challenges_stored",
            "Challenges in the database (open, used, or expired less than an hour ago)",
        )
        try:
            with self.runtime.sessions() as session:
                size.add_metric([], session.execute(select(Sequencer.tree_size)).scalar_one())
                latest = latest_checkpoint(session)
                stored_challenges.add_metric([], challenges.stored(session))
        except Exception:
            return
        if latest is not None:
            checkpoint_size.add_metric([], latest.tree_size)
            age.add_metric([], (datetime.now(UTC) - latest.created_at).total_seconds())
        yield size
        yield checkpoint_size
        yield age
        yield stored_challenges


class Metrics:
    def __init__(self, runtime: Any) -> None:
        self.registry = CollectorRegistry()
        self.submissions = Counter(
            "attest_submissions_total",
            "Attestation submissions recorded, by verdict",
            ["verdict"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "attest_submission_seconds",
            "Time to answer a submission (verify, append, commit)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.verification_seconds = Histogram(
            "attest_verification_seconds",
            "Time to verify a document",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "attest_append_seconds",
            "Time from handing an entry to the batcher to its commit",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ledger = _LedgerCollector(runtime)
        self.registry.register(self.ledger)

    def submission(
        self, verdict: str, seconds: float, *, verify: float, append: float, new: bool
    ) -> None:
        if new:
            self.submissions.labels(verdict=verdict).inc()
            self.verification_seconds.observe(verify)
            self.append_seconds.observe(append)
        self.request_seconds.observe(seconds)

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
            registry.register(self.ledger)
            return generate_latest(registry)
        return generate_latest(self.registry)
