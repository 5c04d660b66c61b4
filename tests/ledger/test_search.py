"""Entry search (filters, keyset pagination) and the hourly counts, on a real PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from ledger.append import append
from ledger.db import session_scope
from ledger.entry import NewEntry
from ledger.search import SORTS, EntryFilter, SearchError, search_entries
from ledger.stats import aggregate, rebuild, refresh

pytestmark = pytest.mark.db

WORKERS = ("alpha", "beta", "gamma")
IMAGES = ("inference-v1", "inference-v2")
VERDICTS = ("affirming", "affirming", "contraindicated", "warning")


def record(n: int) -> NewEntry:
    return NewEntry.from_record(
        {
            "kind": "attestation",
            "n": n,
            "verdict": VERDICTS[n % 4],
            "worker": WORKERS[n % 3],
            "image": IMAGES[n % 2] if n % 4 != 2 else None,
            "pcr0": f"{n % 5:02x}" * 48,
            "module_id": f"i-{n % 7:017x}-enc{n:016x}",
            "result_hash": f"sha256:{n:064x}",
        },
        evidence=b"evidence %d" % n,
    )


@pytest.fixture
def filled(session_factory):
    """97 attestations in 13 transactions (distinct appended_at), plus two policy entries."""
    n = 0
    for size in (1, 9, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8):
        with session_scope(session_factory) as session:
            append(session, [record(n + i) for i in range(size)])
        n += size
    with session_scope(session_factory) as session:
        append(session, [NewEntry.from_record({"kind": "policy", "n": i}) for i in range(2)])
    return session_factory


def all_pages(session, selection, sort, limit):
    """Walk forward to the end, then back to the start; return both walks' indices."""
    forward, page = [], search_entries(session, selection, sort=sort, limit=limit)
    assert page.before is None
    pages = [page]
    while True:
        forward.extend(r.index for r in page.rows)
        if page.after is None:
            break
        page = search_entries(session, selection, sort=sort, after=page.after, limit=limit)
        pages.append(page)
    backward, page = [], pages[-1]
    while True:
        backward[:0] = [r.index for r in page.rows]
        if page.before is None:
            break
        page = search_entries(session, selection, sort=sort, before=page.before, limit=limit)
    return forward, backward


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("limit", [1, 7, 50, 200])
def test_keyset_pages_cover_everything_once_in_order(filled, sort, limit) -> None:
    with filled() as session:
        forward, backward = all_pages(session, EntryFilter(), sort, limit)
    expected = list(range(99))
    if sort.endswith("desc"):
        expected.reverse()
    assert forward == expected
    assert backward == expected


def matches(n: int, **want) -> bool:
    entry = {
        "verdict": VERDICTS[n % 4],
        "worker": WORKERS[n % 3],
        "image": IMAGES[n % 2] if n % 4 != 2 else None,
        "pcr0": f"{n % 5:02x}" * 48,
        "module": f"i-{n % 7:017x}",
    }
    return all(entry[k] == v for k, v in want.items())


@pytest.mark.parametrize(
    "want",
    [
        {"verdict": "contraindicated"},
        {"worker": "beta"},
        {"image": "inference-v2"},
        {"pcr0": "03" * 48},
        {"module": f"i-{4:017x}"},
        {"worker": "alpha", "verdict": "affirming"},
        {"worker": "gamma", "image": "inference-v2", "verdict": "warning"},
    ],
)
def test_filters_select_exactly_the_matching_entries(filled, want) -> None:
    with filled() as session:
        forward, _ = all_pages(session, EntryFilter(**want), "index-desc", 5)
    assert forward == [n for n in reversed(range(97)) if matches(n, **want)]
    assert forward  # every case selects something


def test_exact_lookups(filled) -> None:
    with filled() as session:
        by_module = search_entries(session, EntryFilter(module=f"i-{3:017x}-enc{10:016x}"))
        assert [r.index for r in by_module.rows] == [10]
        by_result = search_entries(session, EntryFilter(result_hash=f"sha256:{42:064x}"))
        assert [r.index for r in by_result.rows] == [42]
        import hashlib

        digest = hashlib.sha256(b"evidence 17").hexdigest()
        assert [
            r.index for r in search_entries(session, EntryFilter(evidence_sha256=digest)).rows
        ] == [17]
        policies = search_entries(session, EntryFilter(kind="policy"))
        assert [r.index for r in policies.rows] == [98, 97]
        nothing = search_entries(session, EntryFilter(worker="nobody"))
        assert nothing.rows == []
        assert nothing.after is None
        assert nothing.before is None


def test_time_range(filled) -> None:
    with filled() as session:
        times = dict(session.execute(text("SELECT idx, appended_at FROM ledger_entries")).all())
        since, until = times[10], times[41]  # the transactions that began at 10 and at 41
        page = search_entries(session, EntryFilter(since=since, until=until), limit=200)
        assert sorted(r.index for r in page.rows) == [
            i for i in range(99) if since <= times[i] < until
        ]
        assert {r.index for r in page.rows} == set(range(10, 41))


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"kind": "<script>"}, "kind"),
        ({"pcr0": "00" * 47}, "pcr0"),
        ({"pcr0": "zz" * 48}, "pcr0"),
        ({"evidence_sha256": "abc"}, "evidence_sha256"),
        ({"result_hash": "sha256"}, "result_hash"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "until"),
        ({"worker": "x" * 300}, "worker"),
    ],
)
def test_bad_filter_values_name_their_parameter(params, parameter) -> None:
    with pytest.raises(SearchError) as caught:
        EntryFilter.from_params(params)
    assert caught.value.parameter == parameter


def test_filters_round_trip_through_query_parameters() -> None:
    params = {
        "since": "2026-11-01",
        "until": "2026-11-02T10:30:00Z",
        "verdict": "warning",
        "worker": "alpha",
        "pcr0": "AB" * 48,
        "module": "i-0abc",
        "unrelated": "ignored",
        "image": "",
    }
    selection = EntryFilter.from_params(params)
    assert selection.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert selection.pcr0 == "ab" * 48
    assert selection.image is None
    assert EntryFilter.from_params(selection.to_params()) == selection
    assert EntryFilter.from_params({}).empty


@pytest.mark.parametrize(
    ("cursor", "sort"),
    [
        ("x", "index-desc"),
        ("-4", "index-asc"),
        ("12", "time-desc"),
        ("9" * 40 + ".1", "time-asc"),
        ("9" * 30, "index-asc"),  # beyond PostgreSQL's bigint (found by schemathesis: a 500)
        ("0." + "9" * 30, "time-desc"),
    ],
)
def test_bad_cursors_are_refused(session_factory, cursor, sort) -> None:
    with session_factory() as session, pytest.raises(SearchError, match="cursor"):
        search_entries(session, EntryFilter(), sort=sort, after=cursor)


def test_bad_sort_and_limit(session_factory) -> None:
    with session_factory() as session:
        with pytest.raises(SearchError, match="sort"):
            search_entries(session, EntryFilter(), sort="random")
        with pytest.raises(SearchError, match="limit"):
            search_entries(session, EntryFilter(), limit=0)


def direct_counts(session, bucket, group_by):
    columns = ", ".join(f"coalesce({g}, '')" for g in group_by)
    rows = session.execute(
        text(
            f"SELECT date_trunc('{bucket}', appended_at, 'UTC'), {columns}, count(*) "
            f"FROM ledger_entries GROUP BY 1, {columns}"
        )
    ).all()
    return {(r[0], *r[1:-1]): r[-1] for r in rows}


def as_dict(counts, group_by):
    return {(c.bucket, *(c.group[g] or "" for g in group_by)): c.entries for c in counts}


def test_hourly_counts_match_a_direct_count_and_refresh_incrementally(filled) -> None:
    with session_scope(filled) as session:
        # spread the entries over three days and several hours (triggers off: tests only)
        session.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER USER"))
        session.execute(
            text("UPDATE ledger_entries SET appended_at = :t + idx * interval '47 minutes'"),
            {"t": datetime(2026, 11, 20, 5, tzinfo=UTC)},
        )
        session.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER USER"))
    with session_scope(filled) as session:
        assert refresh(session, step=30) == 30  # bounded
        assert refresh(session, step=30, max_steps=10) == 69
        assert refresh(session) == 0
    with filled() as session:
        for bucket, group_by in itertools.product(
            ("hour", "day", "month"), [("verdict",), ("worker", "image"), ("kind", "verdict")]
        ):
            counted = aggregate(session, bucket=bucket, group_by=group_by)
            assert as_dict(counted, group_by) == direct_counts(session, bucket, group_by)
        only_beta = aggregate(session, bucket="day", group_by=(), where={"worker": "beta"})
        assert sum(c.entries for c in only_beta) == sum(1 for n in range(97) if n % 3 == 1)
        since = datetime(2026, 11, 21, tzinfo=UTC)
        later = aggregate(session, bucket="day", since=since, group_by=())
        assert all(c.bucket >= since for c in later)
    with session_scope(filled) as session:  # more entries: counted once, on the next refresh
        append(session, [record(n) for n in range(200, 205)])
    with session_scope(filled) as session:
        assert refresh(session) == 5
        total = sum(c.entries for c in aggregate(session, bucket="month", group_by=()))
        assert total == 104
        rebuild(session)
        assert sum(c.entries for c in aggregate(session, bucket="month", group_by=())) == 104


def test_a_refresh_in_progress_is_not_waited_for(filled) -> None:
    holder = filled()
    holder.execute(text("SELECT 1 FROM ledger_stats_state FOR UPDATE"))
    try:
        with session_scope(filled) as session:
            assert refresh(session) == 0
    finally:
        holder.rollback()
        holder.close()
    with session_scope(filled) as session:
        assert refresh(session) == 99


def test_aggregate_refuses_unknown_names(session_factory) -> None:
    with session_factory() as session:
        with pytest.raises(ValueError, match="bucket"):
            aggregate(session, bucket="week")
        with pytest.raises(ValueError, match="group by"):
            aggregate(session, group_by=("data",))
        with pytest.raises(ValueError, match="group by"):
            aggregate(session, where={"1=1; --": "x"})
