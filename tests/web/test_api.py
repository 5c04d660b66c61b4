"""The ingestion and read API, through Flask's test client, on a real PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from attest_ledger.cli.db import head_revision
from ledger.checkpoint import CheckpointBody
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.models import Entry
from ledger.note import NoteVerifier, open_note
from tests.support import SIM_AT, simulated_nsm
from tests.web.conftest import NOW

pytestmark = pytest.mark.db


def publish(service) -> None:
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)


def entry_count(service) -> int:
    with service.runtime.sessions() as session:
        return session.execute(select(func.count()).select_from(Entry)).scalar_one()


def test_a_good_submission_end_to_end(service) -> None:
    response = service.fresh()
    assert response.status_code == 201, response.json
    receipt = response.json
    assert receipt["verdict"]["status"] == "affirming"
    assert receipt["verdict"]["reasons"] == []
    assert receipt["verdict"]["image"] == "inference-v1"
    assert receipt["checkpoint"]["status"] == "pending"
    index = receipt["entry"]["index"]

    publish(service)
    reader = service.auth("auditor")
    entry = service.http.get(f"/api/v1/entries/{index}", headers=reader).json
    assert entry["entry"]["worker"] == "worker-1"
    assert entry["entry"]["result_hash"].startswith("sha256:")
    data = base64.b64decode(entry["entry_bytes_b64"])
    assert leaf_hash(data).hex() == receipt["entry"]["leaf_hash"] == entry["leaf_hash"]

    # The proof verifies offline, against a checkpoint verified with the public key alone.
    key = NoteVerifier.parse(service.http.get("/api/v1/log-key").json["verifier_key"])
    note = service.http.get("/api/v1/checkpoint").get_data(as_text=True)
    body = CheckpointBody.parse(open_note(note, [key]).text)
    proof = service.http.get(f"/api/v1/entries/{index}/proof", headers=reader).json
    assert proof["tree_size"] == body.tree_size
    verify_inclusion(
        leaf_hash(data),
        index,
        body.tree_size,
        [bytes.fromhex(h) for h in proof["hashes"]],
        body.root_hash,
    )

    evidence = service.http.get(f"/api/v1/entries/{index}/evidence", headers=reader)
    assert evidence.mimetype == "application/cbor"
    assert json.loads(data)["evidence_sha256"] == hashlib.sha256(evidence.data).hexdigest()


def test_a_receipt_names_the_checkpoint_that_covers_it_once_published(service) -> None:
    document = service.document(nonce=service.challenge())
    first = service.submit(document, key="k1").json
    assert first["checkpoint"]["status"] == "pending"
    publish(service)
    again = service.submit(document, key="k1").json
    assert again["replayed"] is True
    assert again["checkpoint"]["status"] == "published"
    assert again["checkpoint"]["tree_size"] > first["entry"]["index"]
    assert again["checkpoint"]["note"].startswith("example.com/api-test\n")


def test_tlog_proof_format(service) -> None:
    index = service.fresh().json["entry"]["index"]
    service.fresh()
    publish(service)
    text_proof = service.http.get(
        f"/api/v1/entries/{index}/proof?format=tlog-proof", headers=service.auth("auditor")
    )
    lines = text_proof.get_data(as_text=True).split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == f"index {index}"
    blank = lines.index("")
    hashes = [base64.b64decode(line) for line in lines[2:blank]]
    note = "\n".join(lines[blank + 1 :])
    body = CheckpointBody.parse(open_note(note, [service.runtime.log_key]).text)
    data = base64.b64decode(
        service.http.get(f"/api/v1/entries/{index}", headers=service.auth("auditor")).json[
            "entry_bytes_b64"
        ]
    )
    verify_inclusion(leaf_hash(data), index, body.tree_size, hashes, body.root_hash)


@pytest.mark.parametrize(
    ("make", "codes"),
    [
        ("wrong_image", ["pcr_mismatch", "pcr_mismatch", "pcr_mismatch"]),
        ("stale", ["document_too_old"]),
        ("future", ["document_from_future"]),
        ("unknown_nonce", ["nonce_unknown"]),
        ("no_nonce", ["nonce_missing"]),
        ("unbound", ["result_binding_mismatch"]),
        ("tampered", ["signature_invalid"]),
        ("garbage", ["malformed"]),
        ("debug", ["debug_mode", "pcr_mismatch", "pcr_mismatch", "pcr_mismatch"]),
        ("untrusted", ["untrusted_root"]),
    ],
)
def test_bad_evidence_is_recorded_as_contraindicated_with_its_reasons(
    service, sim_pki, make, codes
) -> None:
    nonce = service.challenge()
    if make == "wrong_image":
        document = service.document(nonce=nonce, nsm=simulated_nsm(sim_pki, image="something-else"))
    elif make == "stale":
        document = service.document(nonce=nonce, timestamp=SIM_AT - timedelta(minutes=10))
    elif make == "future":
        document = service.document(nonce=nonce, timestamp=NOW + timedelta(minutes=10))
    elif make == "unknown_nonce":
        document = service.document(nonce=b"\x01" * 32)
    elif make == "no_nonce":
        document = service.document()
    elif make == "unbound":
        document = service.document(nonce=nonce, result=b"a different answer")
    elif make == "tampered":
        document = bytearray(service.document(nonce=nonce))
        document[-5] ^= 0x40
        document = bytes(document)
    elif make == "garbage":
        document = b"\x84not a COSE document"
    elif make == "debug":
        document = service.document(nonce=nonce, nsm=simulated_nsm(sim_pki, debug=True))
    else:
        from tests.support import simulated_pki

        document = service.document(nonce=nonce, nsm=simulated_nsm(simulated_pki()))
    response = service.submit(document)
    assert response.status_code == 201, response.json
    verdict = response.json["verdict"]
    assert verdict["status"] == "contraindicated"
    assert [r["code"] for r in verdict["reasons"]] == codes
    stored = service.http.get(
        f"/api/v1/entries/{response.json['entry']['index']}", headers=service.auth("auditor")
    ).json
    assert stored["entry"]["verdict"] == "contraindicated"
    assert stored["evidence_url"] is not None  # the evidence is kept, even when rejected


def test_a_challenge_is_single_use(service) -> None:
    nonce = service.challenge()
    first = service.submit(service.document(nonce=nonce, result=b"one"), result=b"one")
    second = service.submit(service.document(nonce=nonce, result=b"two"), result=b"two")
    assert first.json["verdict"]["status"] == "affirming"
    assert [r["code"] for r in second.json["verdict"]["reasons"]] == ["nonce_replayed"]


def test_a_challenge_expires(service) -> None:
    nonce = service.challenge()
    service.runtime.clock = lambda: NOW + timedelta(seconds=301)
    response = service.submit(service.document(nonce=nonce, timestamp=NOW + timedelta(seconds=300)))
    assert [r["code"] for r in response.json["verdict"]["reasons"]] == ["nonce_expired"]


def test_another_workers_challenge_is_unknown(service) -> None:
    nonce = service.challenge("worker-2")
    response = service.submit(service.document(nonce=nonce), who="worker-1")
    assert [r["code"] for r in response.json["verdict"]["reasons"]] == ["nonce_unknown"]


def test_a_worker_without_reference_values_is_refused(service) -> None:
    response = service.fresh("idle-worker")
    assert response.json["verdict"]["status"] == "contraindicated"
    assert [r["code"] for r in response.json["verdict"]["reasons"]] == ["no_reference_values"]


def test_idempotency(service) -> None:
    document = service.document(nonce=service.challenge())
    first = service.submit(document, key="job-42")
    again = service.submit(document, key="job-42")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json["replayed"] is True
    assert again.json["entry"] == first.json["entry"]
    changed = service.submit(document, key="job-42", job={"id": "another"})
    assert changed.status_code == 409
    assert changed.json["code"] == "idempotency_conflict"
    assert entry_count(service) == 8  # 7 setup entries (clients, policy) + 1


def test_an_empty_idempotency_key_header_is_refused_not_ignored(service) -> None:
    """Regression (schemathesis, issue #13's CI run): an empty Idempotency-Key header was
    read as no key at all and the submission recorded; the OpenAPI says 1-200 characters."""
    before = entry_count(service)
    reply = service.submit(service.document(nonce=service.challenge()), key="")
    assert reply.status_code == 400
    assert reply.json["code"] == "malformed_request"
    assert "idempotency key" in reply.json["detail"]
    assert entry_count(service) == before


def test_another_workers_idempotency_key_is_theirs_alone(service) -> None:
    mine = service.submit(
        service.document(nonce=service.challenge("worker-1"), result=b"a"),
        who="worker-1",
        result=b"a",
        key="shared-key",
    )
    theirs = service.submit(
        service.document(nonce=service.challenge("worker-2"), result=b"b"),
        who="worker-2",
        result=b"b",
        key="shared-key",
    )
    assert theirs.status_code == 201
    assert theirs.json["entry"]["index"] != mine.json["entry"]["index"]
    assert theirs.json["verdict"]["status"] == "affirming"


def test_the_same_evidence_again(service) -> None:
    document = service.document(nonce=service.challenge())
    first = service.submit(document)
    again = service.submit(document)
    assert again.status_code == 200
    assert again.json["duplicate"] is True
    assert again.json["entry"]["index"] == first.json["entry"]["index"]


def test_a_stolen_document_does_not_block_its_rightful_owner(service) -> None:
    """Regression (issue #10): worker-2, holding worker-1's fresh document, recorded it
    first, and worker-1 then got a permanent 409 evidence_conflict for its own evidence."""
    document = service.document(nonce=service.challenge("worker-1"))
    stolen = service.submit(document, who="worker-2")
    assert stolen.status_code == 201, stolen.json
    assert stolen.json["verdict"]["status"] == "contraindicated"
    assert [r["code"] for r in stolen.json["verdict"]["reasons"]] == ["nonce_unknown"]
    own = service.submit(document, who="worker-1")
    assert own.status_code == 201, own.json
    assert own.json["verdict"]["status"] == "affirming"
    assert own.json["duplicate"] is False
    assert own.json["entry"]["index"] != stolen.json["entry"]["index"]
    again = service.submit(document, who="worker-2")  # each worker's repeat is still idempotent
    assert again.status_code == 200
    assert again.json["entry"]["index"] == stolen.json["entry"]["index"]


def _same_batch(service):
    """Swap in a batcher that waits long enough to put concurrent submissions in one batch."""
    from ledger.batcher import AppendBatcher

    service.runtime.batcher.close()
    service.runtime.batcher = AppendBatcher(service.runtime.sessions, max_wait=0.5)
    service.runtime.intake.batcher = service.runtime.batcher


def _at_once(*calls):
    import threading

    results: list = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(n: int) -> None:
        barrier.wait()
        results[n] = calls[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_two_documents_racing_for_one_challenge_in_one_batch(service) -> None:
    """Both pass the pre-check (the challenge is open) and meet in one append batch; the
    batch's single consuming statement takes the challenge once, and exactly one wins."""
    _same_batch(service)
    nonce = service.challenge()
    before = entry_count(service)
    one = service.document(nonce=nonce, result=b"one")
    two = service.document(nonce=nonce, result=b"two")
    results = _at_once(
        lambda: service.submit(one, result=b"one"), lambda: service.submit(two, result=b"two")
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 409], [r.json for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.json["code"] == "nonce_already_used"
    winner = next(r for r in results if r.status_code == 201)
    assert winner.json["verdict"]["status"] == "affirming"
    assert entry_count(service) == before + 1
    assert service.runtime.batcher.split_batches == 1  # they met in one batch, which failed


def test_one_idempotency_key_racing_with_two_requests(service) -> None:
    _same_batch(service)
    before = entry_count(service)
    one = service.document(nonce=service.challenge(), result=b"one")
    two = service.document(nonce=service.challenge(), result=b"two")
    results = _at_once(
        lambda: service.submit(one, result=b"one", key="racing"),
        lambda: service.submit(two, result=b"two", key="racing"),
    )
    assert sorted(r.status_code for r in results) == [201, 409], [r.json for r in results]
    assert next(r for r in results if r.status_code == 409).json["code"] == ("idempotency_conflict")
    assert entry_count(service) == before + 1
    assert service.runtime.batcher.split_batches == 1
    w = 0 if results[0].status_code == 201 else 1
    document, result = ((one, b"one"), (two, b"two"))[w]
    again = service.submit(document, result=result, key="racing")  # the winner's retry
    assert again.status_code == 200
    assert again.json["entry"] == results[w].json["entry"]


def test_a_batch_of_submissions_keeps_its_books_in_one_go(service) -> None:
    """Eight submissions in one batch: every challenge consumed, every key remembered."""
    _same_batch(service)
    jobs = []
    for n in range(8):
        result = b"job %d" % n
        jobs.append((service.document(nonce=service.challenge(), result=result), result))
    batches = service.runtime.batcher.batches
    results = _at_once(
        *[
            (lambda d=d, r=r, n=n: service.submit(d, result=r, key=f"key-{n}"))
            for n, (d, r) in enumerate(jobs)
        ]
    )
    assert [r.status_code for r in results] == [201] * 8
    assert service.runtime.batcher.batches - batches < 8  # they shared transactions
    assert service.runtime.batcher.split_batches == 0
    with service.runtime.sessions() as session:
        open_ = session.execute(
            text("SELECT count(*) FROM challenges WHERE used_at IS NULL")
        ).scalar()
        keys = session.execute(text("SELECT count(*) FROM idempotency_keys")).scalar()
    assert open_ == 0
    assert keys == 8
    for n, (document, result) in enumerate(jobs):
        again = service.submit(document, result=result, key=f"key-{n}")
        assert again.json["replayed"] is True
        assert again.json["entry"] == results[n].json["entry"]


class TestAuthentication:
    def test_no_token(self, service) -> None:
        response = service.http.post("/api/v1/challenges")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.mimetype == "application/problem+json"
        assert response.json["code"] == "unauthenticated"

    def test_unknown_token(self, service) -> None:
        response = service.http.post(
            "/api/v1/challenges", headers={"Authorization": "Bearer alw_nope"}
        )
        assert response.status_code == 401

    def test_revoked_token(self, service) -> None:
        from attest_ledger.clients import revoke_client

        assert (
            service.http.post("/api/v1/challenges", headers=service.auth("worker-1")).status_code
            == 201
        )
        with session_scope(service.runtime.sessions) as session:
            revoke_client(session, "worker-1")
        response = service.http.post("/api/v1/challenges", headers=service.auth("worker-1"))
        assert response.status_code == 401
        assert "revoked" in response.json["detail"]

    def test_roles_are_separate(self, service) -> None:
        reader_writes = service.http.post("/api/v1/challenges", headers=service.auth("auditor"))
        assert reader_writes.status_code == 403
        assert reader_writes.json["code"] == "forbidden"
        service.fresh()
        worker_reads = service.http.get("/api/v1/entries/0", headers=service.auth("worker-1"))
        assert worker_reads.status_code == 403
        assert service.http.get("/api/v1/entries/0").status_code == 401

    def test_only_a_hash_of_the_token_is_stored(self, service) -> None:
        with service.runtime.sessions() as session:
            stored = session.execute(text("SELECT token_sha256 FROM api_clients")).scalars().all()
        for token in service.tokens.values():
            assert token.encode() not in stored
            assert all(token.encode() not in value for value in stored)


class TestBadRequests:
    def post(self, service, body, *, content_type="application/json"):
        return service.http.post(
            "/api/v1/attestations",
            data=body,
            content_type=content_type,
            headers=service.auth("worker-1"),
        )

    @pytest.mark.parametrize(
        ("body", "detail"),
        [
            (b"", "a JSON body is required"),
            (b"garbage", "not valid JSON"),
            (b'{"attestation_document": "aGVsbG8=", "result_hash": ', "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b"{}", "attestation_document must be a base64 string"),
            (b'{"attestation_document": "!!!", "result_hash": "sha256:00"}', "not valid base64"),
            (
                b'{"attestation_document": "aGVsbG8=", "result_hash": 5}',
                "result_hash must be a string",
            ),
            (b'{"attestation_document": "aGVsbG8=", "result_hash": "md5:00"}', "expected one of"),
            (
                b'{"attestation_document": "aGVsbG8=", "result_hash": "sha256:'
                + b"00" * 32
                + b'", "job": [1]}',
                "job must be a JSON object",
            ),
            (
                b'{"attestation_document": "aGVsbG8=", "result_hash": "sha256:'
                + b"00" * 32
                + b'", "job": {"x": 1.5}}',
                "floating-point",
            ),
            (
                b'{"attestation_document": "aGVsbG8=", "result_hash": "sha256:'
                + b"00" * 32
                + b'", "extra": 1}',
                "unknown field",
            ),
            (
                b'{"attestation_document": "aGVsbG8=", "result_hash": "sha256:'
                + b"00" * 32
                + b'", "job": {"x": "'
                + b"y" * 5000
                + b'"}}',
                "job is larger",
            ),
            (
                b'{"attestation_document": "aGVsbG8=", "result_hash": "sha256:'
                + b"00" * 32
                + b'", "idempotency_key": ""}',
                "idempotency key",
            ),
        ],
    )
    def test_malformed_requests_are_400_and_write_nothing(self, service, body, detail) -> None:
        before = entry_count(service)
        response = self.post(service, body)
        assert response.status_code == 400, response.json
        assert response.json["code"] == "malformed_request"
        assert detail in response.json["detail"]
        assert entry_count(service) == before

    def test_wrong_content_type(self, service) -> None:
        response = self.post(
            service, b"attestation_document=x", content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 415
        assert response.json["code"] == "unsupported_media_type"

    def test_oversize_body(self, service) -> None:
        response = self.post(service, b'{"attestation_document": "' + b"A" * 70000 + b'"}')
        assert response.status_code == 413
        assert response.json["code"] == "payload_too_large"

    def test_oversize_document_within_the_body_limit(self, service) -> None:
        document = base64.b64encode(b"\x84" + b"\x00" * 20000).decode()
        response = service.http.post(
            "/api/v1/attestations",
            json={"attestation_document": document, "result_hash": "sha256:" + "00" * 32},
            headers=service.auth("worker-1"),
        )
        assert response.status_code == 413

    @pytest.mark.parametrize("count", [0, 101, "3", True, 1.5])
    def test_bad_challenge_counts(self, service, count) -> None:
        response = service.http.post(
            "/api/v1/challenges", json={"count": count}, headers=service.auth("worker-1")
        )
        assert response.status_code == 400

    @pytest.mark.parametrize(
        ("body", "content_type", "status", "code"),
        [
            (b"garbage", "application/json", 400, "malformed_request"),
            (b'{"count": ', "application/json", 400, "malformed_request"),
            (b"[3]", "application/json", 400, "malformed_request"),
            (b"count=3", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
            (b'{"count": 1, "pad": "' + b"x" * 600_000 + b'"}', "application/json", 413,
             "payload_too_large"),
        ],
    )  # fmt: skip
    def test_bad_challenge_requests_issue_nothing(
        self, service, body, content_type, status, code
    ) -> None:
        response = service.http.post(
            "/api/v1/challenges",
            data=body,
            content_type=content_type,
            headers=service.auth("worker-1"),
        )
        assert response.status_code == status
        assert response.mimetype == "application/problem+json"
        assert response.json["code"] == code
        with service.runtime.sessions() as session:
            assert session.execute(text("SELECT count(*) FROM challenges")).scalar() == 0

    def test_challenges_need_a_worker_token(self, service) -> None:
        reader = service.http.post("/api/v1/challenges", headers=service.auth("auditor"))
        assert reader.status_code == 403
        assert reader.json["code"] == "forbidden"

    def test_several_challenges_at_once(self, service) -> None:
        response = service.http.post(
            "/api/v1/challenges", json={"count": 5}, headers=service.auth("worker-1")
        )
        assert len({c["nonce"] for c in response.json["challenges"]}) == 5

    def test_unknown_routes_and_methods(self, service) -> None:
        assert service.http.get("/api/v1/nothing").json["code"] == "not_found"
        assert service.http.get("/api/v1/attestations").status_code == 405


class TestReadApi:
    def test_empty_ledger_reads(self, service) -> None:
        assert service.http.get("/api/v1/checkpoint").status_code == 404
        assert service.http.get("/api/v1/checkpoints").json == {"checkpoints": []}
        assert (
            service.http.get("/api/v1/entries/999", headers=service.auth("auditor")).status_code
            == 404
        )

    def test_consistency_between_checkpoints(self, service) -> None:
        for _ in range(3):
            service.fresh()
        publish(service)
        first = CheckpointBody.parse(
            open_note(
                service.http.get("/api/v1/checkpoint").get_data(as_text=True),
                [service.runtime.log_key],
            ).text
        )
        for _ in range(4):
            service.fresh()
        publish(service)
        second = CheckpointBody.parse(
            open_note(
                service.http.get("/api/v1/checkpoint").get_data(as_text=True),
                [service.runtime.log_key],
            ).text
        )
        proof = service.http.get(
            f"/api/v1/consistency?first={first.tree_size}&second={second.tree_size}"
        ).json
        verify_consistency(
            first.tree_size,
            second.tree_size,
            [bytes.fromhex(h) for h in proof["hashes"]],
            first.root_hash,
            second.root_hash,
        )
        listed = service.http.get("/api/v1/checkpoints").json["checkpoints"]
        assert [c["tree_size"] for c in listed] == [second.tree_size, first.tree_size]
        old = service.http.get(f"/api/v1/checkpoint?tree_size={first.tree_size}").get_data(
            as_text=True
        )
        assert f"\n{first.tree_size}\n" in old

    @pytest.mark.parametrize(
        ("path", "status"),
        [
            ("/api/v1/consistency?first=2", 400),
            ("/api/v1/consistency?first=x&second=2", 400),
            ("/api/v1/consistency?first=5&second=2", 400),
            ("/api/v1/consistency?first=1&second=99999", 400),
            ("/api/v1/checkpoint?tree_size=-1", 400),
            ("/api/v1/checkpoint?tree_size=12345", 404),
        ],
    )
    def test_bad_read_parameters(self, service, path, status) -> None:
        service.fresh()
        publish(service)
        response = service.http.get(path)
        assert response.status_code == status, response.json
        assert response.mimetype == "application/problem+json"

    def test_proof_requests_out_of_range(self, service) -> None:
        service.fresh()
        reader = service.auth("auditor")
        assert (
            service.http.get("/api/v1/entries/7/proof", headers=reader).json["code"]
            == "not_yet_checkpointed"
        )
        publish(service)
        assert (
            service.http.get("/api/v1/entries/7/proof?tree_size=99", headers=reader).status_code
            == 400
        )
        assert (
            service.http.get("/api/v1/entries/99/proof?tree_size=8", headers=reader).status_code
            == 404
        )

    def test_a_proof_at_a_size_no_checkpoint_signs_is_refused(self, service) -> None:
        """Regression (issue #10): such a proof answered 200 with "checkpoint": null, an
        unverifiable proof; the README promised 400 tree_size_unavailable."""
        for _ in range(3):
            service.fresh()
        publish(service)  # signs the whole tree, and no smaller size
        size = int(service.http.get("/api/v1/checkpoint").get_data(as_text=True).split("\n")[1])
        reader = service.auth("auditor")
        for proof_format in ("json", "tlog-proof"):
            answer = service.http.get(
                f"/api/v1/entries/0/proof?tree_size={size - 1}&format={proof_format}",
                headers=reader,
            )
            assert answer.status_code == 400, answer.get_data(as_text=True)
            assert answer.json["code"] == "tree_size_unavailable"
        signed = service.http.get(f"/api/v1/entries/0/proof?tree_size={size}", headers=reader)
        assert signed.status_code == 200
        assert signed.json["checkpoint"].startswith(f"example.com/api-test\n{size}\n")


class TestOperations:
    def test_health_and_readiness(self, service) -> None:
        assert service.http.get("/healthz").json == {"status": "ok"}
        ready = service.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json["checks"]["schema"] == head_revision()
        assert ready.json["checks"]["trust_anchor"]["name"].startswith("configured root")

    def test_metrics(self, service) -> None:
        service.fresh()
        service.submit(b"\x84junk")
        publish(service)
        body = service.http.get("/metrics").get_data(as_text=True)
        assert 'attest_submissions_total{verdict="affirming"} 1.0' in body
        assert 'attest_submissions_total{verdict="contraindicated"} 1.0' in body
        assert "attest_verification_seconds_bucket" in body
        assert "attest_append_seconds_bucket" in body
        assert "ledger_tree_size 9.0" in body
        assert "ledger_checkpoint_age_seconds" in body


def test_every_policy_change_is_in_the_ledger_and_verdicts_point_at_it(service) -> None:
    receipt = service.fresh().json
    revision = receipt["verdict"]["policy_revision"]
    entry = service.http.get(f"/api/v1/entries/{revision}", headers=service.auth("auditor")).json[
        "entry"
    ]
    assert entry["kind"] == "policy"
    assert entry["change"] == {
        "action": "worker_allowed",
        "worker": "worker-2",
        "image": "inference-v1",
    }
    assert [image["name"] for image in entry["policy"]["images"]] == ["inference-v1"]
    assert entry["policy"]["workers"]["worker-1"] == ["inference-v1"]


def test_rate_limit(db_url, tmp_path, sim_pki, sim_nsm) -> None:
    from tests.web.conftest import build_service

    service = build_service(db_url, tmp_path, sim_pki, sim_nsm, rate_limit=1.0)
    try:
        statuses = [
            service.http.post("/api/v1/challenges", headers=service.auth("worker-1")).status_code
            for _ in range(4)
        ]
        assert statuses[:2] == [201, 201]
        assert 429 in statuses
        limited = service.http.post("/api/v1/challenges", headers=service.auth("worker-1"))
        assert limited.json["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        # other clients have their own budget
        assert (
            service.http.post("/api/v1/challenges", headers=service.auth("worker-2")).status_code
            == 201
        )
    finally:
        service.runtime.close()


def test_ledger_busy_is_503_with_retry_after_and_nothing_is_written(
    db_url, tmp_path, sim_pki, sim_nsm
) -> None:
    from ledger.batcher import AppendBatcher
    from tests.web.conftest import build_service

    service = build_service(db_url, tmp_path, sim_pki, sim_nsm)
    service.runtime.batcher.close()
    service.runtime.batcher = AppendBatcher(service.runtime.sessions, lock_timeout=0.2)
    service.runtime.intake.batcher = service.runtime.batcher
    try:
        before = entry_count(service)
        nonce = service.challenge()
        holder = service.runtime.sessions()
        holder.execute(text("SELECT * FROM ledger_sequencer FOR UPDATE"))
        response = service.submit(service.document(nonce=nonce))
        holder.rollback()
        holder.close()
        assert response.status_code == 503
        assert response.json["code"] == "ledger_busy"
        assert response.headers["Retry-After"] == "1"
        assert entry_count(service) == before
        # the challenge was not consumed: the worker's retry succeeds
        retry = service.submit(service.document(nonce=nonce))
        assert retry.status_code == 201
        assert retry.json["verdict"]["status"] == "affirming"
    finally:
        service.runtime.close()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        # found by schemathesis (tests/e2e/test_openapi_schemathesis.py): each was a 500, or
        # an answer to a question nobody asked
        ("/api/v1/checkpoint?tree_size=%C2%B2", 400),  # "²": str.isdigit() yes, int() no
        ("/api/v1/checkpoint?tree_size=9223372036854775808", 400),  # above PostgreSQL's bigint
        ("/api/v1/checkpoint?tree_size=&tree_size=x", 400),  # was: the latest checkpoint
        ("/api/v1/checkpoints?limit=5&limit=6", 400),
        ("/api/v1/consistency?first=1&second=%C2%B9", 400),
        ("/api/v1/entries/9223372036854775808", 404),
        ("/api/v1/entries/9223372036854775808/proof", 404),
        ("/api/v1/entries/0/proof?tree_size=99999999999999999999", 400),
        ("/api/v1/entries/0/proof?format=xml", 400),  # was: JSON, silently
    ],
)
def test_bad_numbers_and_repeated_parameters_are_refused(service, path, status) -> None:
    service.fresh()
    publish(service)
    response = service.http.get(path, headers=service.auth("auditor"))
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == ("malformed_request" if status == 400 else "not_found")


@pytest.mark.parametrize("path", ["/api/v1/attestations", "/api/v1/challenges"])
@pytest.mark.parametrize("depth", [970, 5000])
def test_deeply_nested_json_is_refused_not_500(service, path, depth) -> None:
    """Found while fuzzing the worker endpoints: json.loads raises RecursionError (not a
    ValueError) on a few KB of brackets, and so, a little shallower, did the walk over job."""
    job = "[" * depth + "]" * depth
    body = (
        '{"attestation_document": "eA==", "result_hash": "sha256:'
        + "0" * 64
        + '", "job": '
        + ('{"a":' * depth + "1" + "}" * depth)
        + "}"
        if path.endswith("attestations")
        else '{"count": ' + job + "}"
    )
    response = service.http.post(
        path, data=body, content_type="application/json", headers=service.auth("worker-1")
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["code"] == "malformed_request"
    assert "not valid JSON" not in response.json["detail"]
    if depth > 1000:
        assert response.json["detail"].endswith("nested too deeply")
    assert entry_count(service) == 7  # nothing recorded
