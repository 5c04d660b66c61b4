"""Several processes appending at once, and kill -9 in the middle of a batch."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledger.append import append
from ledger.audit import audit
from ledger.checkpoints import latest_checkpoint, publish_checkpoint
from ledger.db import session_scope
from ledger.models import Entry, Evidence
from ledger.note import NoteSigner
from ledger.reads import tree_state
from tests.ledger.test_append import entry

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[2]
SIGNER = NoteSigner.generate("example.com/attestation-ledger-concurrency")


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.appender", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def acknowledged(lines: list[str]) -> dict[int, str]:
    out = {}
    for line in lines:
        if line.startswith("ack "):
            _, index, evidence = line.split()
            out[int(index)] = evidence
    return out


def check_everything_acknowledged_is_there(factory, acks: dict[int, str]) -> int:
    with factory() as session:
        stored = dict(session.execute(select(Evidence.idx, Evidence.data)).all())
        count = session.execute(select(func.count()).select_from(Entry)).scalar_one()
        size = tree_state(session).size
        top = session.execute(select(func.max(Entry.idx))).scalar()
    assert size == count, "the sequencer and the entries disagree: a partial batch?"
    assert top is None or top == count - 1, "a gap in the indices"
    for index, evidence in acks.items():
        assert stored[index] == evidence.encode(), f"acknowledged entry {index} lost or altered"
    return count


def test_processes_appending_at_once_never_fork_or_leave_a_gap(
    db_url, session_factory, tmp_path
) -> None:
    key = tmp_path / "key"
    key.write_text(SIGNER.to_skey())
    workers = [
        spawn(db_url, "--worker", f"w{i}", "--batches", "25", "--batch-size", "10")
        for i in range(4)
    ]
    publishers = [spawn(db_url, "--publish", str(key), "--rounds", "30") for _ in range(2)]
    outputs = []
    for process in workers + publishers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs.append(out)
    acks = acknowledged([line for out in outputs for line in out.splitlines()])
    assert len(acks) == 1000
    assert sorted(acks) == list(range(1000))  # dense and unique across processes
    assert check_everything_acknowledged_is_there(session_factory, acks) == 1000
    with session_scope(session_factory) as session:
        publish_checkpoint(session, SIGNER)
    with session_factory() as session:
        assert latest_checkpoint(session).tree_size == 1000
        report = audit(session, SIGNER.verifier())  # also proves consecutive checkpoints consistent
    assert report.ok, report.divergence
    assert report.checkpoints >= 2


@pytest.mark.parametrize("round_", range(3))
def test_kill_9_mid_batch_loses_nothing_acknowledged_and_leaves_no_partial_batch(
    db_url, session_factory, round_
) -> None:
    rng = random.Random(round_)
    process = spawn(db_url, "--worker", f"crash{round_}", "--batch-size", "200")
    lines: list[str] = []
    assert process.stdout is not None
    while len(lines) < 200 * (2 + round_):  # let some batches commit first
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "appender died"
        lines.append(line)
    time.sleep(rng.uniform(0.0, 0.05))  # somewhere inside a later batch
    os.kill(process.pid, signal.SIGKILL)
    rest, _ = process.communicate(timeout=60)
    lines.extend(rest.splitlines())
    assert process.returncode == -signal.SIGKILL
    acks = acknowledged(lines)
    count = check_everything_acknowledged_is_there(session_factory, acks)
    assert count >= len(acks)
    assert count % 200 == 0, "a batch was partly stored"

    with session_scope(session_factory) as session:  # the sequencer lock died with the process
        assert append(session, [entry(10**6)])[0].index == count
    with session_scope(session_factory) as session:
        publish_checkpoint(session, SIGNER)
    with session_factory() as session:
        assert audit(session, SIGNER.verifier()).ok
