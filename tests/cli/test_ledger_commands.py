"""``attest-ledger db``, ``keys``, ``checkpoint`` and ``audit`` on a real database."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from attest_ledger.settings import Settings
from ledger.append import append
from ledger.db import session_scope
from ledger.note import NoteVerifier, open_note
from tests.cli.support import run
from tests.ledger.test_append import entry

pytestmark = pytest.mark.db


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        ledger_key_path=tmp_path / "keys" / "ledger.key",
        ledger_origin="example.com/cli-test",
    )


def test_keys_init_creates_a_private_file_and_prints_the_verifier_key(capsys, settings) -> None:
    code, out, err = run(capsys, settings, "keys", "init")
    assert code == 0
    verifier = NoteVerifier.parse(out.strip())
    assert verifier.name == "example.com/cli-test"
    mode = settings.ledger_key_path.stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert "mode 0600" in err
    # never replaced
    code, _, err = run(capsys, settings, "keys", "init")
    assert code == 2
    assert "already exists" in err
    code, again, _ = run(capsys, settings, "keys", "init", "--if-missing")
    assert (code, again) == (0, out)
    assert run(capsys, settings, "keys", "show")[1] == out


def test_keys_init_creates_the_ear_key_once_and_show_names_its_thumbprint(capsys, settings) -> None:
    from attest_ledger.ear import EarSigner

    code, _, err = run(capsys, settings, "keys", "init")
    assert code == 0
    path = settings.ear_key_path
    assert path == settings.data_dir / "ear-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kid = EarSigner.load(path).kid
    assert kid in err
    pem = path.read_bytes()
    run(capsys, settings, "keys", "init", "--if-missing")
    assert path.read_bytes() == pem  # kept: never replaced
    code, out, err = run(capsys, settings, "keys", "show")
    assert code == 0
    assert f"EAR key id {kid}" in err
    assert kid not in out  # stdout stays the verifier key alone
    path.chmod(0o640)
    code, _, err = run(capsys, settings, "keys", "show")
    assert code == 2
    assert "readable by others" in err


def test_keys_refuse_an_open_key_file(capsys, settings) -> None:
    run(capsys, settings, "keys", "init")
    settings.ledger_key_path.chmod(0o644)
    code, _, err = run(capsys, settings, "keys", "show")
    assert code == 2
    assert "readable by others" in err


def test_checkpoint_and_audit(capsys, settings, session_factory) -> None:
    _, vkey, _ = run(capsys, settings, "keys", "init")
    with session_scope(session_factory) as session:
        append(session, [entry(i) for i in range(12)])
    code, note, _ = run(capsys, settings, "checkpoint")
    assert code == 0
    opened = open_note(note, [NoteVerifier.parse(vkey.strip())])
    assert opened.text.splitlines()[:2] == ["example.com/cli-test", "12"]

    code, out, err = run(capsys, settings, "audit")
    assert code == 0
    assert "audit passed: 12 entries" in out
    assert "12/12 entries (100.0%)" in err  # progress

    code, out, _ = run(capsys, settings, "audit", "--json", "--log-key", vkey.strip(), "--quiet")
    report = json.loads(out)
    assert report["ok"] is True
    assert report["checkpoints"] == 1

    with session_scope(session_factory) as session:
        session.execute(text("SET session_replication_role = replica"))
        session.execute(
            text("UPDATE ledger_entries SET leaf_hash = sha256(leaf_hash) WHERE idx = 7")
        )
    code, out, _ = run(capsys, settings, "audit", "--quiet")
    assert code == 1
    assert "audit FAILED at entry 7 [leaf_hash]" in out


def test_audit_and_checkpoint_need_a_key(capsys, settings) -> None:
    assert run(capsys, settings, "audit")[0] == 2
    assert run(capsys, settings, "checkpoint")[0] == 2
    code, _, err = run(capsys, settings, "audit", "--log-key", "not-a-key")
    assert code == 2
    assert "verifier key" in err


def test_db_commands(capsys, databases, tmp_path) -> None:
    url = databases.empty()
    try:
        from attest_ledger.cli.db import head_revision

        head = head_revision()
        settings = Settings(tmp_path, url, tmp_path / "k", "example.com/x")
        code, out, _ = run(capsys, settings, "db", "current")
        assert code == 0
        assert out.strip() == f"current none, newest {head}"
        assert run(capsys, settings, "db", "upgrade")[0] == 0
        assert run(capsys, settings, "db", "current")[1].strip() == f"current {head}, newest {head}"
        assert run(capsys, settings, "db", "downgrade", "base")[0] == 0
        assert run(capsys, settings, "db", "current")[1].strip() == f"current none, newest {head}"
    finally:
        databases.drop(url)


def test_the_console_script_with_the_environment(db_url, tmp_path) -> None:
    """As a user runs it: settings come from the environment, read once."""
    script = Path(sys.executable).parent / "attest-ledger"
    env = {
        "DATABASE_URL": db_url.replace("postgresql+psycopg://", "postgresql://"),
        "ATTEST_LEDGER_DATA_DIR": str(tmp_path),
        "ATTEST_LEDGER_ORIGIN": "example.com/from-env",
        "PATH": "/usr/bin:/bin",
    }
    init = subprocess.run(
        [script, "keys", "init"], env=env, capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    assert init.stdout.startswith("example.com/from-env+")
    assert (tmp_path / "ledger.key").exists()
    audit = subprocess.run(
        [script, "audit", "--quiet"], env=env, capture_output=True, text=True, check=False
    )
    assert audit.returncode == 0, audit.stderr
    assert "audit passed: 0 entries" in audit.stdout
