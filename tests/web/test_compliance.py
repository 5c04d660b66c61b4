"""The compliance query API (search, result lookup, statistics) through Flask's test client, on
a real PostgreSQL: what each endpoint answers, and a refusal for every rule."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from ledger.checkpoint import CheckpointBody
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.entry import canonical_json
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.note import open_note
from tests.support import simulated_nsm
from tests.web.conftest import build_service
from verifier import ResultHash
from web import compliance

pytestmark = pytest.mark.db

SETUP_ENTRIES = 7  # four clients, one image, two allowances (tests/web/conftest.py)


def publish(service) -> None:
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)


def get(service, path: str, who: str | None = "auditor", **params):
    headers = service.auth(who) if who else {}
    return service.http.get(path, query_string=params, headers=headers)


def refused(response, status: int, code: str, parameter: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["code"] == code
    if parameter is not None:
        assert body["parameter"] == parameter
    return body


def seed(service, sim_pki) -> dict:
    """After the seven setup entries: two good submissions of worker-1 (results "one", "two"),
    one of worker-2 (result "one" again), and one with the wrong image (result "bad")."""
    submitted = {}
    for name, who, result, nsm in (
        ("one-a", "worker-1", b"one", None),
        ("two", "worker-1", b"two", None),
        ("one-b", "worker-2", b"one", None),
        ("bad", "worker-1", b"bad", simulated_nsm(sim_pki, image="something-else")),
    ):
        document = service.document(nonce=service.challenge(who), result=result, nsm=nsm)
        response = service.submit(document, who=who, result=result)
        assert response.status_code == 201, response.json
        submitted[name] = response.json
    return submitted


@pytest.fixture
def ledger(service, sim_pki):
    """A seeded service of the test's own, for tests that change it (publish, submit, revoke)."""
    return seed(service, sim_pki)


@pytest.fixture(scope="module")
def shared(databases, tmp_path_factory, sim_pki, sim_nsm):
    """One seeded service for the tests that only read (most of them): never changed, except
    for the hourly counts beside the ledger, which any statistics request brings up to date."""
    with databases.fresh() as url:
        built = build_service(url, tmp_path_factory.mktemp("compliance"), sim_pki, sim_nsm)
        built.submitted = seed(built, sim_pki)
        yield built
        built.runtime.close()


def indices(body) -> list[int]:
    return [entry["index"] for entry in body["entries"]]


# --- GET /api/v1/entries ------------------------------------------------------------------


def test_search_lists_entries_newest_first_with_their_records(shared) -> None:
    service, ledger = shared, shared.submitted
    body = get(service, "/api/v1/entries").json
    assert indices(body) == list(range(SETUP_ENTRIES + 3, -1, -1))
    assert body["next"] is None
    assert body["prev"] is None
    assert body["sort"] == "index-desc"
    assert body["limit"] == 100
    assert "count" not in body
    newest = body["entries"][0]
    assert newest["index"] == ledger["bad"]["entry"]["index"]
    assert newest["leaf_hash"] == ledger["bad"]["entry"]["leaf_hash"]
    assert newest["entry"]["verdict"] == "contraindicated"
    assert newest["has_evidence"] is True
    assert newest["evidence_url"] == f"/api/v1/entries/{newest['index']}/evidence"
    assert newest["appended_at"].endswith("Z")
    stored = get(service, newest["url"]).json  # the record is spliced in exactly as stored
    assert newest["entry"] == stored["entry"]
    assert canonical_json(newest["entry"]) == base64.b64decode(stored["entry_bytes_b64"])
    oldest = body["entries"][-1]
    assert oldest["entry"]["kind"] == "access"
    assert oldest["has_evidence"] is False
    assert oldest["evidence_url"] is None


@pytest.mark.parametrize("sort", ["index-desc", "index-asc", "time-desc", "time-asc"])
def test_keyset_pages_walk_forward_and_back_in_a_stable_order(shared, sort) -> None:
    service = shared
    everything = indices(get(service, "/api/v1/entries", sort=sort, limit=1000).json)
    assert sorted(everything) == list(range(SETUP_ENTRIES + 4))
    if sort.endswith("asc"):
        assert everything == sorted(everything)
    else:
        assert everything == sorted(everything, reverse=True)
    pages, body = [], get(service, "/api/v1/entries", sort=sort, limit=3).json
    assert body["prev"] is None
    while True:
        pages.append(body)
        if body["next"] is None:
            break
        assert body["links"]["next"].startswith("/api/v1/entries?")
        assert f"sort={sort}" in body["links"]["next"]
        body = get(service, "/api/v1/entries", sort=sort, limit=3, after=body["next"]).json
    assert [i for page in pages for i in indices(page)] == everything
    backwards = []
    while body["prev"] is not None:
        body = get(service, "/api/v1/entries", sort=sort, limit=3, before=body["prev"]).json
        backwards = indices(body) + backwards
    assert backwards == everything[: len(backwards)]
    assert backwards == [i for page in pages[:-1] for i in indices(page)]


def test_every_portal_filter(shared) -> None:
    service, ledger = shared, shared.submitted
    one_a = get(service, f"/api/v1/entries/{ledger['one-a']['entry']['index']}").json["entry"]
    cases = {
        "verdict": ("contraindicated", {"bad"}),
        "worker": ("worker-2", {"one-b"}),
        "image": ("inference-v1", {"one-a", "two", "one-b"}),
        "result_hash": (str(ResultHash.of(b"one")), {"one-a", "one-b"}),
        "evidence_sha256": (ledger["two"]["evidence_sha256"], {"two"}),
        "pcr0": (one_a["pcr0"].upper(), {"one-a", "two", "one-b"}),
        "module": (one_a["module_id"].split("-enc")[0], {"one-a", "two", "one-b", "bad"}),
        "evidence_kind": ("aws-nitro-enclave", {"one-a", "two", "one-b", "bad"}),
    }
    for name, (value, expected) in cases.items():
        body = get(service, "/api/v1/entries", **{name: value}).json
        assert set(indices(body)) == {ledger[n]["entry"]["index"] for n in expected}, name
    by_module = get(service, "/api/v1/entries", module=one_a["module_id"]).json
    assert ledger["one-a"]["entry"]["index"] in indices(by_module)
    policies = get(service, "/api/v1/entries", kind="policy").json
    assert [e["entry"]["kind"] for e in policies["entries"]] == ["policy"] * 3
    combined = get(service, "/api/v1/entries", worker="worker-1", verdict="affirming").json
    assert set(indices(combined)) == {ledger[n]["entry"]["index"] for n in ("one-a", "two")}
    today = datetime.now(UTC).date()
    window = get(
        service,
        "/api/v1/entries",
        since=(today - timedelta(days=1)).isoformat(),
        until=(today + timedelta(days=1)).isoformat(),
    ).json
    assert len(window["entries"]) == SETUP_ENTRIES + 4
    assert get(service, "/api/v1/entries", until="2000-01-01T00:00:00Z").json["entries"] == []
    assert get(service, "/api/v1/entries", worker="nobody").json["entries"] == []


def test_an_exact_count_on_request(shared) -> None:
    service = shared
    assert get(service, "/api/v1/entries", count="exact", limit=2).json["count"] == 11
    assert get(service, "/api/v1/entries", count="exact", worker="worker-1").json["count"] == 3
    assert get(service, "/api/v1/entries", count="exact", worker="nobody").json["count"] == 0


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"kind": "secret"}, "kind"),
        ({"pcr0": "ab" * 10}, "pcr0"),
        ({"evidence_sha256": "not hex"}, "evidence_sha256"),
        ({"evidence_kind": "Not A Kind"}, "evidence_kind"),
        ({"result_hash": "sha256"}, "result_hash"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "until"),
        ({"until": "9999-12-31T23:59:59-23:00"}, "until"),  # past year 9999 in UTC
        ({"worker": "a\x00b"}, "worker"),  # PostgreSQL text cannot hold NUL
        ({"image": "x" * 257}, "image"),
        ({"module": "\r" + "0" * 256}, "module"),  # 257 as sent, even if 256 once trimmed
        ({"verdict": "\x0c"}, "verdict"),  # not trimmed to "not given", as the portal does
        ({"result_hash": "\u00a0"}, "result_hash"),
        ({"verdict": " affirming"}, "verdict"),
        ({"sort": "random"}, "sort"),
        ({"count": "approximate"}, "count"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"after": "x"}, "after"),
        ({"before": "-4", "sort": "index-asc"}, "before"),
        ({"after": "12", "sort": "time-desc"}, "after"),  # an index cursor, in time order
        ({"after": "9" * 40 + ".1", "sort": "time-asc"}, "after"),
        ({"after": "5", "before": "3"}, "before"),
        ({"verdit": "affirming"}, "verdit"),  # misspelt: must not widen the query to everything
    ],
)
def test_search_refuses_bad_parameters_and_names_them(shared, params, parameter) -> None:
    service = shared
    body = refused(get(service, "/api/v1/entries", **params), 400, "invalid_parameter", parameter)
    assert body["detail"].startswith(f"{parameter}: ")


def test_search_refuses_a_parameter_given_twice(shared) -> None:
    service = shared
    response = service.http.get(
        "/api/v1/entries?verdict=affirming&verdict=warning", headers=service.auth("auditor")
    )
    refused(response, 400, "invalid_parameter", "verdict")


# --- GET /api/v1/results/<result_hash> ----------------------------------------------------


def test_a_result_lookup_gives_every_entry_its_verdict_and_a_proof(service, ledger) -> None:
    publish(service)
    one = str(ResultHash.of(b"one"))
    body = get(service, f"/api/v1/results/{one}").json
    assert body["result_hash"] == one
    assert body["entries_total"] == 2
    assert body["verdicts"] == {"affirming": 2, "warning": 0, "contraindicated": 0}
    assert indices(body) == [ledger["one-a"]["entry"]["index"], ledger["one-b"]["entry"]["index"]]
    assert [e["worker"] for e in body["entries"]] == ["worker-1", "worker-2"]
    note = body["checkpoint"]["note"]
    checkpoint = CheckpointBody.parse(open_note(note, [service.runtime.log_key]).text)
    assert body["checkpoint"]["tree_size"] == checkpoint.tree_size == SETUP_ENTRIES + 4
    for entry in body["entries"]:
        assert entry["verdict"]["status"] == "affirming"
        assert entry["verdict"]["reasons"] == []
        assert entry["verdict"]["image"] == "inference-v1"
        proof = entry["inclusion_proof"]
        assert proof["status"] == "included"
        assert proof["checkpoint"] == note
        data = base64.b64decode(entry["entry_bytes_b64"])
        assert leaf_hash(data).hex() == entry["leaf_hash"] == proof["leaf_hash"]
        verify_inclusion(
            leaf_hash(data),
            entry["index"],
            proof["tree_size"],
            [bytes.fromhex(h) for h in proof["hashes"]],
            checkpoint.root_hash,
        )


def test_a_rejected_result_is_reported_with_its_reasons(shared) -> None:
    service = shared
    body = get(service, f"/api/v1/results/{ResultHash.of(b'bad')}").json
    assert body["verdicts"]["contraindicated"] == 1
    verdict = body["entries"][0]["verdict"]
    assert verdict["status"] == "contraindicated"
    assert verdict["error"] == "policy_violation"
    assert [r["code"] for r in verdict["reasons"]] == ["pcr_mismatch"] * 3


def test_a_result_not_covered_by_a_checkpoint_says_so(service, ledger) -> None:
    two = str(ResultHash.of(b"two"))
    body = get(service, f"/api/v1/results/{two}").json
    assert body["checkpoint"] is None
    proof = body["entries"][0]["inclusion_proof"]
    assert proof == {
        "status": "not_yet_checkpointed",
        "detail": f"no signed checkpoint covers entry {body['entries'][0]['index']} yet; "
        "retry shortly",
        "proof_url": f"/api/v1/entries/{body['entries'][0]['index']}/proof",
    }
    publish(service)
    again = service.submit(
        service.document(nonce=service.challenge(), result=b"two"), result=b"two"
    )
    assert again.json["verdict"]["status"] == "affirming"
    body = get(service, f"/api/v1/results/{two.upper().replace('SHA256', 'sha256')}").json
    assert body["result_hash"] == two  # uppercase hex: the same hash
    assert [e["inclusion_proof"]["status"] for e in body["entries"]] == [
        "included",
        "not_yet_checkpointed",
    ]


def test_a_result_lookup_pages_with_a_cursor(shared) -> None:
    service, ledger = shared, shared.submitted
    one = str(ResultHash.of(b"one"))
    first = get(service, f"/api/v1/results/{one}", limit=1).json
    assert indices(first) == [ledger["one-a"]["entry"]["index"]]
    assert first["entries_total"] == 2
    assert first["links"]["next"] == f"/api/v1/results/{one}?limit=1&after={first['next']}"
    second = get(service, f"/api/v1/results/{one}", limit=1, after=first["next"]).json
    assert indices(second) == [ledger["one-b"]["entry"]["index"]]
    assert second["next"] is None


def test_an_unknown_result_hash_is_404(shared) -> None:
    service = shared
    unknown = str(ResultHash.of(b"never computed"))
    refused(get(service, f"/api/v1/results/{unknown}"), 404, "result_not_found")


@pytest.mark.parametrize(
    "text",
    [
        "sha256",
        "sha256:",
        "sha256:" + "ab" * 31,  # too short for sha256
        "sha256:" + "zz" * 32,
        "md5:" + "ab" * 16,
        "sha256:" + "ab" * 32 + "0",  # odd number of digits
        "sha256: " + "ab" * 32,
    ],
)
def test_a_malformed_result_hash_is_400(shared, text) -> None:
    service = shared
    refused(get(service, f"/api/v1/results/{text}"), 400, "invalid_parameter", "result_hash")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": "101"}, "limit"),
        ({"after": "x"}, "after"),
        ({"after": "9" * 30}, "after"),  # beyond PostgreSQL's bigint: was a 500
        ({"sort": "index-desc"}, "sort"),
    ],
)
def test_a_result_lookup_refuses_bad_parameters(shared, params, parameter) -> None:
    service = shared
    one = str(ResultHash.of(b"one"))
    refused(get(service, f"/api/v1/results/{one}", **params), 400, "invalid_parameter", parameter)


# --- GET /api/v1/stats --------------------------------------------------------------------


def test_stats_count_submissions_per_bucket_grouped_and_filtered(shared) -> None:
    service = shared
    body = get(service, "/api/v1/stats", bucket="hour", group_by="verdict").json
    assert body["bucket"] == "hour"
    assert body["group_by"] == ["verdict"]
    assert body["counted_entries"] == body["tree_size"] == SETUP_ENTRIES + 4  # refreshed
    by_verdict: dict[str, int] = {}
    for count in body["counts"]:
        by_verdict[count["group"]["verdict"]] = (
            by_verdict.get(count["group"]["verdict"], 0) + count["submissions"]
        )
    assert by_verdict == {"affirming": 3, "contraindicated": 1}  # attestations only
    total = get(service, "/api/v1/stats", bucket="month").json
    assert total["group_by"] == []
    assert sum(c["submissions"] for c in total["counts"]) == 4
    assert all(c["group"] == {} for c in total["counts"])
    detail = get(service, "/api/v1/stats", group_by="worker,image,verdict").json
    rows = {
        (c["group"]["worker"], c["group"]["image"], c["group"]["verdict"]): c["submissions"]
        for c in detail["counts"]
    }
    assert rows == {
        ("worker-1", "inference-v1", "affirming"): 2,
        ("worker-2", "inference-v1", "affirming"): 1,
        ("worker-1", None, "contraindicated"): 1,
    }
    kinds = get(service, "/api/v1/stats", group_by="evidence_kind").json
    assert {c["group"]["evidence_kind"]: c["submissions"] for c in kinds["counts"]} == {
        "aws-nitro-enclave": 4
    }
    nitro = get(service, "/api/v1/stats", evidence_kind="amd-sev-snp").json
    assert nitro["counts"] == []
    only = get(service, "/api/v1/stats", worker="worker-1", verdict="affirming").json
    assert only["filters"] == {"verdict": "affirming", "worker": "worker-1"}
    assert sum(c["submissions"] for c in only["counts"]) == 2
    image = get(service, "/api/v1/stats", image="inference-v1", group_by="worker").json
    assert {c["group"]["worker"]: c["submissions"] for c in image["counts"]} == {
        "worker-1": 2,
        "worker-2": 1,
    }
    now = datetime.now(UTC)
    later = get(service, "/api/v1/stats", since=(now + timedelta(hours=2)).isoformat()).json
    assert later["counts"] == []
    earlier = get(service, "/api/v1/stats", until="2000-01-01").json
    assert earlier["counts"] == []
    assert earlier["until"] == "2000-01-01T00:00:00.000Z"
    around = get(
        service,
        "/api/v1/stats",
        since=(now - timedelta(hours=2)).isoformat(),
        until=(now + timedelta(hours=2)).isoformat(),
    ).json
    assert sum(c["submissions"] for c in around["counts"]) == 4


def test_stats_count_what_was_appended_since_the_last_request(service, ledger) -> None:
    first = get(service, "/api/v1/stats").json
    service.fresh(result=b"later")
    second = get(service, "/api/v1/stats").json
    assert second["counted_entries"] == first["counted_entries"] + 1
    assert sum(c["submissions"] for c in second["counts"]) == 5


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"bucket": "week"}, "bucket"),
        ({"group_by": "kind"}, "group_by"),
        ({"group_by": "verdict,verdict"}, "group_by"),
        ({"group_by": "verdict;image"}, "group_by"),
        ({"verdict": "maybe"}, "verdict"),
        ({"worker": "\x07"}, "worker"),
        ({"verdict": "\x0c"}, "verdict"),
        ({"since": "soon"}, "since"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "until"),
        ({"kind": "attestation"}, "kind"),  # submissions only: not a parameter here
    ],
)
def test_stats_refuse_bad_parameters(shared, params, parameter) -> None:
    service = shared
    refused(get(service, "/api/v1/stats", **params), 400, "invalid_parameter", parameter)


def test_stats_refuse_an_answer_too_large(shared, monkeypatch) -> None:
    service = shared
    monkeypatch.setattr(compliance, "MAX_COUNTS", 1)  # two verdicts, so two counts
    refused(get(service, "/api/v1/stats", group_by="verdict"), 400, "too_many_counts")
    assert get(service, "/api/v1/stats").status_code == 200


# --- tokens -------------------------------------------------------------------------------


PATHS = ["/api/v1/entries", f"/api/v1/results/{ResultHash.of(b'one')}", "/api/v1/stats"]


@pytest.mark.parametrize("path", PATHS)
def test_the_compliance_api_needs_a_reader_token(shared, path) -> None:
    service = shared
    anonymous = refused(get(service, path, who=None), 401, "unauthenticated")
    assert anonymous["instance"] == path
    assert get(service, path, who=None).headers["WWW-Authenticate"].startswith("Bearer")
    wrong = service.http.get(path, headers={"Authorization": "Bearer alr_" + "0" * 43})
    refused(wrong, 401, "unauthenticated")
    refused(get(service, path, who="worker-1"), 403, "forbidden")
    assert get(service, path).status_code == 200


def test_a_revoked_reader_token_is_refused(service, ledger) -> None:
    from attest_ledger.clients import revoke_client

    with session_scope(service.runtime.sessions) as session:
        revoke_client(session, "auditor")
    refused(get(service, "/api/v1/entries"), 401, "unauthenticated")


def test_a_search_is_read_only(shared) -> None:
    """No endpoint of the compliance API writes to the ledger (the statistics only refresh the
    derived counts beside it)."""
    service = shared
    size = get(service, "/api/v1/tree").json["tree_size"]
    for path in PATHS:
        assert get(service, path).status_code == 200
        assert service.http.post(path, headers=service.auth("auditor")).status_code == 405
    assert get(service, "/api/v1/tree").json["tree_size"] == size
    digest = hashlib.sha256(b"unused").hexdigest()
    assert get(service, "/api/v1/entries", evidence_sha256=digest).json["entries"] == []
