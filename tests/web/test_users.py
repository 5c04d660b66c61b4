"""Portal accounts: Argon2id hashes, sessions that really end, sign-in limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from attest_ledger.models import PortalSession, PortalUser
from attest_ledger.users import (
    FAILURE_WINDOW,
    MAX_FAILURES_PER_ADDRESS,
    MAX_FAILURES_PER_NAME,
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


def attempt(factory, name="ada", password=PASSWORD, *, address="10.0.0.1", now=NOW):
    with session_scope(factory) as session:
        return sign_in(
            session, name, password, address=address, now=now, lifetime=timedelta(hours=8)
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


def test_too_many_failures_lock_the_name_even_with_the_right_password(users) -> None:
    for n in range(MAX_FAILURES_PER_NAME):
        assert attempt(users, password=f"wrong {n}", address=f"10.1.0.{n}").refused == "invalid"
    assert attempt(users, address="10.9.9.9").refused == "limited"
    later = NOW + FAILURE_WINDOW + timedelta(seconds=1)
    assert attempt(users, now=later).refused is None  # the window passed


def test_too_many_failures_from_one_address_lock_that_address(users) -> None:
    for n in range(MAX_FAILURES_PER_ADDRESS):
        assert attempt(users, name=f"guess{n}", password="wrong password").refused == "invalid"
    assert attempt(users, address="10.0.0.1").refused == "limited"
    assert attempt(users, address="10.0.0.2").refused is None
