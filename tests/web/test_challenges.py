"""Challenges are bounded (issue #10, item 7): a cap on what one worker may hold open,
deletion an hour after expiry, and the table's size in the metrics."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from attest_ledger import challenges
from attest_ledger.models import Challenge
from attest_ledger.publisher import CheckpointPublisher
from ledger.db import make_engine, session_scope
from ledger.note import NoteSigner
from tests.web.conftest import NOW, build_service
from tests.web.test_publisher import wait_for

pytestmark = pytest.mark.db

TTL = timedelta(seconds=300)


@pytest.fixture
def capped(db_url, tmp_path, sim_pki, sim_nsm):
    built = build_service(db_url, tmp_path, sim_pki, sim_nsm, max_open_challenges=5)
    yield built
    built.runtime.close()


def ask(service, count: int, who: str = "worker-1"):
    return service.http.post("/api/v1/challenges", json={"count": count}, headers=service.auth(who))


def stored(service) -> int:
    with service.runtime.sessions() as session:
        return challenges.stored(session)


def test_a_worker_may_hold_only_so_many_open_challenges(capped) -> None:
    assert ask(capped, 3).status_code == 201
    refused = ask(capped, 3)
    assert refused.status_code == 429
    assert refused.json["code"] == "too_many_challenges"
    assert "holds 3 open challenges" in refused.json["detail"]
    assert int(refused.headers["Retry-After"]) == int(TTL.total_seconds())  # the soonest expiry
    assert stored(capped) == 3  # nothing of the refused request was written
    assert ask(capped, 1, who="worker-2").status_code == 201  # the cap is per worker
    assert ask(capped, 2).status_code == 201  # up to the cap exactly
    assert ask(capped, 1).status_code == 429


def test_using_a_challenge_frees_its_place(capped) -> None:
    response = ask(capped, 5)
    assert response.status_code == 201
    nonce = bytes.fromhex(response.json["challenges"][0]["nonce"])
    assert ask(capped, 1).status_code == 429
    assert capped.submit(capped.document(nonce=nonce)).status_code == 201
    assert ask(capped, 1).status_code == 201


def test_concurrent_requests_cannot_pass_the_cap_together(capped) -> None:
    answers: list[int] = []
    start = threading.Barrier(8)

    def one() -> None:
        http = capped.app.test_client()
        start.wait()
        reply = http.post("/api/v1/challenges", json={"count": 2}, headers=capped.auth("worker-1"))
        answers.append(reply.status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 201] + [429] * 6  # 2 + 2 = 4 <= 5; a third would be 6
    assert stored(capped) == 4


def test_challenges_are_deleted_an_hour_after_they_expire(service) -> None:
    old = ask(service, 2).json["challenges"]
    used = bytes.fromhex(old[0]["nonce"])
    assert service.submit(service.document(nonce=used)).status_code == 201
    later = NOW + TTL + challenges.RETENTION
    service.runtime.clock = lambda: later  # the next ones expire an hour and five minutes on
    assert ask(service, 3).status_code == 201
    # a replay just before the sweep is named precisely
    replay = service.submit(service.document(nonce=used, result=b"again"), result=b"again")
    assert [r["code"] for r in replay.json["verdict"]["reasons"]][-1] == "nonce_replayed"
    with session_scope(service.runtime.sessions) as session:
        assert challenges.sweep(session, later) == 0  # expired exactly an hour ago: kept
    with session_scope(service.runtime.sessions) as session:
        assert challenges.sweep(session, later + timedelta(seconds=1)) == 2
    assert stored(service) == 3  # the fresh ones stay
    replay = service.submit(service.document(nonce=used, result=b"late"), result=b"late")
    assert replay.status_code == 201  # still recorded, now as a nonce nobody issued
    assert "nonce_unknown" in [r["code"] for r in replay.json["verdict"]["reasons"]]


def test_the_publisher_sweeps_and_the_metrics_show_the_table(service, db_url) -> None:
    assert ask(service, 4).status_code == 201
    body = service.http.get("/metrics").get_data(as_text=True)
    assert "attest_challenges_stored 4.0" in body
    engine = make_engine(db_url, pool_size=2)
    publisher = CheckpointPublisher(
        engine,
        NoteSigner.generate("example.com/sweep"),
        poll=0.05,
        sweep_interval=0.1,
        clock=lambda: NOW + TTL + challenges.RETENTION + timedelta(minutes=1),
    ).start()
    try:
        wait_for(lambda: stored(service) == 0)
    finally:
        publisher.stop()
        engine.dispose()
    with service.runtime.sessions() as session:
        assert session.execute(select(func.count()).select_from(Challenge)).scalar_one() == 0
    assert "attest_challenges_stored 0.0" in service.http.get("/metrics").get_data(as_text=True)
