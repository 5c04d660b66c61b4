"""Portal accounts: Argon2id hashes, sessions that really end, sign-in limits."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from attest_ledger import users as users_module
from attest_ledger.models import LoginFailure, PortalSession, PortalUser
from attest_ledger.users import (
    FAILURE_WINDOW,
    MAX_CONCURRENT_HASHES,
    MAX_FAILURES_PER_ADDRESS,
    MAX_FAILURES_PER_DEVICE,
    MAX_FAILURES_PER_PAIR,
    UserError,
    add_user,
    end_session,
    resume_session,
    set_disabled,
    set_password,
    sign_in,
)
from ledger.db import session_scope

pytestmark = pytest.mark.db

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account


def attempt(factory, name="ada", password=PASSWORD, *, address="10.0.0.1", now=NOW, device=None):
    return sign_in(
        factory,
        name,
        password,
        address=address,
        now=now,
        lifetime=timedelta(hours=8),
        device_token=device,
    )


@pytest.fixture
def users(session_factory):
    with session_scope(session_factory) as session:
        add_user(session, "ada", "auditor", PASSWORD)
        add_user(session, "grace", "admin", PASSWORD + "!")
    return session_factory


def test_passwords_are_stored_as_argon2id_and_additions_are_ledger_entries(users) -> None:
    with users() as session:
        stored = session.execute(select(PortalUser.password_hash)).scalars().all()
        assert all(h.startswith("$argon2id$v=19$m=65536,t=3,p=4$") for h in stored)
        assert all(PASSWORD not in h for h in stored)
        actions = (
            session.execute(
                text("SELECT data FROM ledger_entries WHERE kind = 'access' ORDER BY idx")
            )
            .scalars()
            .all()
        )
        assert [b'"action":"user_added"' in a for a in actions] == [True, True]


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("ada", "auditor", PASSWORD, "already exists"),
        ("<b>x</b>", "auditor", PASSWORD, "user name"),
        ("bob", "root", PASSWORD, "role"),
        ("bob", "auditor", "short", "12 to 1024"),
    ],
)
def test_bad_users_are_refused(users, name, role, password, message) -> None:
    with session_scope(users) as session, pytest.raises(UserError, match=message):
        add_user(session, name, role, password)


def test_a_session_from_sign_in_to_sign_out(users) -> None:
    result = attempt(users)
    assert result.refused is None
    assert result.token is not None
    with users() as session:
        live = resume_session(session, result.token, now=NOW + timedelta(hours=1))
        assert live is not None
        assert (live.name, live.role) == ("ada", "auditor")
        assert live.csrf_token == result.session.csrf_token
        assert (
            resume_session(session, result.token, now=NOW + timedelta(hours=9)) is None
        )  # expired
        assert resume_session(session, result.token + "x", now=NOW) is None
        stored = session.execute(select(PortalSession.token_sha256)).scalars().all()
        assert result.token.encode() not in stored  # only the digest
    with session_scope(users) as session:
        end_session(session, result.token)
    with users() as session:
        assert resume_session(session, result.token, now=NOW) is None


def test_wrong_passwords_unknown_names_and_disabled_users_look_the_same(users) -> None:
    assert attempt(users, password="wrong password!").refused == "invalid"
    assert attempt(users, name="nobody").refused == "invalid"
    live = attempt(users, name="grace", password=PASSWORD + "!")
    with session_scope(users) as session:
        set_disabled(session, "grace", disabled=True)
    with users() as session:
        assert resume_session(session, live.token, now=NOW) is None  # disabling ends sessions
    assert attempt(users, name="grace", password=PASSWORD + "!").refused == "invalid"
    with session_scope(users) as session:
        set_disabled(session, "grace", disabled=False)
        with pytest.raises(UserError, match="already enabled"):
            set_disabled(session, "grace", disabled=False)
    assert attempt(users, name="grace", password=PASSWORD + "!").refused is None


def test_a_new_password_ends_the_old_sessions(users) -> None:
    live = attempt(users)
    with session_scope(users) as session:
        set_password(session, "ada", "a brand new passphrase")
    with users() as session:
        assert resume_session(session, live.token, now=NOW) is None
    assert attempt(users).refused == "invalid"
    assert attempt(users, password="a brand new passphrase").refused is None


def test_one_address_cannot_lock_a_name_out_for_everybody(users) -> None:
    """Regression (issue #10): five failures from anywhere locked any account, an
    administrator's included, for fifteen minutes."""
    for n in range(MAX_FAILURES_PER_PAIR):
        assert attempt(users, password=f"wrong {n}", address="10.6.6.6").refused == "invalid"
    assert attempt(users, address="10.6.6.6").refused == "limited"  # that address, that name
    assert attempt(users, address="10.0.0.1").refused is None  # everybody else signs in
    later = NOW + FAILURE_WINDOW + timedelta(seconds=1)
    assert attempt(users, address="10.6.6.6", now=later).refused is None  # the window passed


def test_too_many_failures_from_one_address_lock_that_address(users) -> None:
    for n in range(MAX_FAILURES_PER_ADDRESS):
        assert attempt(users, name=f"guess{n}", password="wrong password").refused == "invalid"
    assert attempt(users, address="10.0.0.1").refused == "limited"
    assert attempt(users, address="10.0.0.2").refused is None


def test_many_addresses_shut_out_new_devices_of_a_name_but_never_its_known_ones(
    users, monkeypatch
) -> None:
    monkeypatch.setattr(users_module, "MAX_FAILURES_PER_NAME", 7)  # 50 hashes take a while
    known = attempt(users, address="10.0.0.1")
    assert known.device_token is not None  # a first sign-in makes this browser a known device
    assert attempt(users, address="10.0.0.1", device=known.device_token).device_token is None
    for n in range(users_module.MAX_FAILURES_PER_NAME):
        address = f"10.7.{n}.1"
        assert attempt(users, password="wrong", address=address).refused == "invalid"
    assert attempt(users, address="10.0.0.9").refused == "limited"  # a new device, elsewhere
    again = attempt(users, address="10.8.8.8", device=known.device_token)
    assert again.refused is None  # the known device, from anywhere
    other = attempt(users, name="grace", password=PASSWORD + "!", device=known.device_token)
    assert other.refused is None  # ada's cookie means nothing for grace (and is not refused)
    assert other.device_token is not None


def test_a_known_device_is_limited_on_its_own(users) -> None:
    device = attempt(users).device_token
    for n in range(MAX_FAILURES_PER_DEVICE):
        assert attempt(users, password=f"wrong {n}", device=device).refused == "invalid"
    assert attempt(users, device=device).refused == "limited"
    assert attempt(users, address="10.0.0.2").refused is None  # a new device, another address


def test_concurrent_guesses_cannot_pass_the_limit_together(users) -> None:
    """Regression (issue #10): the count was read before the slow hash and the failure
    written after it, so concurrent guesses all passed (19 for one name instead of 5)."""
    answers: list[str | None] = []
    start = threading.Barrier(16)

    def guess(n: int) -> None:
        start.wait()
        answers.append(attempt(users, password=f"guess {n}", address="10.5.5.5").refused)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count("invalid") == MAX_FAILURES_PER_PAIR
    assert answers.count("limited") == 16 - MAX_FAILURES_PER_PAIR


def test_password_hashing_is_bounded_per_process(users, monkeypatch) -> None:
    """Regression (issue #10): 27 Argon2 hashes (64 MiB each) ran at once from one address."""
    running = peak = 0
    lock = threading.Lock()
    real = users_module._verify

    def counted(stored: str, password: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return real(stored, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(users_module, "_verify", counted)
    start = threading.Barrier(8)
    answers: list[str | None] = []

    def one(n: int) -> None:
        start.wait()
        answers.append(attempt(users, password=f"wrong {n}", address=f"10.4.0.{n}").refused)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["invalid"] * 8
    assert peak == MAX_CONCURRENT_HASHES


def test_no_free_hasher_is_busy_and_not_counted(users, monkeypatch) -> None:
    monkeypatch.setattr(users_module, "HASH_WAIT", 0.05)
    for _ in range(MAX_CONCURRENT_HASHES):
        assert users_module._HASHING.acquire(timeout=1)
    try:
        assert attempt(users, password="wrong").refused == "busy"
    finally:
        for _ in range(MAX_CONCURRENT_HASHES):
            users_module._HASHING.release()
    with users() as session:
        assert session.execute(select(LoginFailure)).first() is None
    assert attempt(users).refused is None
