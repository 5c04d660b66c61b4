"""``workers``, ``readers``, ``policy`` and ``worker pki`` on a real database."""

from __future__ import annotations

import json
import stat

import pytest

from attest_ledger.cli import main
from attest_ledger.settings import Settings
from tests.support import NITRO

pytestmark = pytest.mark.db


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db_url, ledger_key_path=tmp_path / "ledger.key")


def run(capsys, settings, *argv):
    code = main(list(argv), settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def test_workers_and_readers(capsys, settings, tmp_path) -> None:
    code, token, err = run(
        capsys, settings, "workers", "add", "w1", "--token-file", str(tmp_path / "w1.token")
    )
    assert code == 0
    assert token.startswith("alw_")
    assert "shown once" in err
    assert (tmp_path / "w1.token").read_text().strip() == token.strip()
    assert stat.S_IMODE((tmp_path / "w1.token").stat().st_mode) == 0o600
    assert run(capsys, settings, "readers", "add", "r1")[1].startswith("alr_")
    assert run(capsys, settings, "workers", "add", "w1")[0] == 2  # taken
    assert run(capsys, settings, "workers", "add", "bad name")[0] == 2
    listed = run(capsys, settings, "workers", "list")[1]
    assert listed.startswith("w1\tactive")
    assert "r1" not in listed
    assert run(capsys, settings, "workers", "revoke", "w1")[0] == 0
    assert "revoked" in run(capsys, settings, "workers", "list")[1]
    assert run(capsys, settings, "workers", "revoke", "w1")[0] == 2


def test_policy_commands(capsys, settings) -> None:
    run(capsys, settings, "workers", "add", "w1")
    code, _, err = run(
        capsys,
        settings,
        "policy",
        "image",
        "add",
        "real",
        "--from-document",
        str(NITRO / "yawn_nitro_attest.cbor"),
    )
    assert code == 0
    assert "recorded as ledger entry" in err
    assert (
        run(capsys, settings, "policy", "image", "add", "manual", "--pcr", "0=" + "00" * 48)[0] == 0
    )
    assert run(capsys, settings, "policy", "allow", "w1", "real")[0] == 0
    assert (
        run(capsys, settings, "policy", "set", "--allow-debug", "--max-age", "600", "--skew", "30")[
            0
        ]
        == 0
    )
    code, out, _ = run(capsys, settings, "policy", "show")
    shown = json.loads(out)
    assert [image["name"] for image in shown["images"]] == ["manual", "real"]
    assert shown["images"][1]["pcrs"]["0"].startswith("8bb159f2")
    assert shown["workers"] == {"w1": ["real"]}
    assert (shown["allow_debug"], shown["max_age_seconds"], shown["clock_skew_seconds"]) == (
        True,
        600,
        30,
    )
    assert run(capsys, settings, "policy", "set", "--max-age", "none")[0] == 0
    assert json.loads(run(capsys, settings, "policy", "show")[1])["max_age_seconds"] is None
    assert run(capsys, settings, "policy", "deny", "w1", "real")[0] == 0
    assert run(capsys, settings, "policy", "image", "remove", "manual")[0] == 0
    for argv in (
        ("policy", "allow", "nobody", "real"),
        ("policy", "allow", "w1", "missing"),
        ("policy", "deny", "w1", "real"),
        ("policy", "image", "remove", "missing"),
        ("policy", "image", "add", "x"),
        ("policy", "image", "add", "x", "--pcr", "0=zz"),
        ("policy", "image", "add", "x", "--pcr", "40=" + "00" * 48),
        ("policy", "image", "add", "real", "--pcr", "0=" + "00" * 48),
        ("policy", "set"),
        ("policy", "set", "--max-age", "soon"),
        ("policy", "set", "--skew", "-1"),
    ):
        assert run(capsys, settings, *argv)[0] == 2, argv


def test_worker_pki_creates_a_persisted_root(capsys, settings, tmp_path) -> None:
    code, out, _ = run(capsys, settings, "worker", "pki")
    assert code == 0
    assert out.strip() == str(tmp_path / "simulated-pki" / "root.pem")
    assert stat.S_IMODE((tmp_path / "simulated-pki" / "root.key").stat().st_mode) == 0o600
    first = (tmp_path / "simulated-pki" / "root.pem").read_bytes()
    run(capsys, settings, "worker", "pki")
    assert (tmp_path / "simulated-pki" / "root.pem").read_bytes() == first  # kept


def test_worker_run_needs_a_token(capsys, settings) -> None:
    code, _, err = run(capsys, settings, "worker", "run")
    assert code == 2
    assert "ATTEST_LEDGER_WORKER_TOKEN" in err


def test_users_commands(capsys, settings, monkeypatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough passphrase\n"))
    code, _, err = run(capsys, settings, "users", "add", "ada", "--password-stdin")
    assert code == 0, err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = run(
        capsys, settings, "users", "add", "bob", "--role", "admin", "--password-stdin"
    )
    assert code == 2
    assert "12 to 1024" in err
    answers = iter(["one passphrase here", "another passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    code, _, err = run(capsys, settings, "users", "add", "bob")
    assert code == 2
    assert "differ" in err
    assert run(capsys, settings, "users", "list")[1] == "ada\tauditor\tactive\n"
    assert run(capsys, settings, "users", "disable", "ada")[0] == 0
    assert "disabled" in run(capsys, settings, "users", "list")[1]
    assert run(capsys, settings, "users", "disable", "ada")[0] == 2
    assert run(capsys, settings, "users", "enable", "ada")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a different passphrase\n"))
    assert run(capsys, settings, "users", "passwd", "ada", "--password-stdin")[0] == 0
    assert run(capsys, settings, "users", "passwd", "nobody", "--password-stdin")[0] == 2
