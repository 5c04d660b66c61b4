"""Settings are read once from the environment, with defaults for a fresh machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from attest_ledger.settings import DEFAULT_ORIGIN, Settings, SettingsError, normalise_database_url


def test_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.data_dir == tmp_path / "var"
    assert settings.database_url is None  # embedded PostgreSQL
    assert settings.ledger_key_path == tmp_path / "var" / "ledger.key"
    assert settings.ledger_origin == DEFAULT_ORIGIN


def test_environment(tmp_path) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@db.example/ledger",
            "ATTEST_LEDGER_DATA_DIR": str(tmp_path / "data"),
            "ATTEST_LEDGER_KEY": str(tmp_path / "secret.key"),
            "ATTEST_LEDGER_ORIGIN": "ledger.example.com/log",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@db.example/ledger"
    assert settings.data_dir == tmp_path / "data"
    assert settings.ledger_key_path == Path(tmp_path / "secret.key")
    assert settings.ledger_origin == "ledger.example.com/log"


def test_url_normalisation() -> None:
    assert normalise_database_url("postgres://x/y") == "postgresql+psycopg://x/y"
    assert normalise_database_url("postgresql+psycopg://x/y") == "postgresql+psycopg://x/y"


def test_front_settings() -> None:
    defaults = Settings.from_env({})
    assert (defaults.head_timeout, defaults.body_timeout, defaults.connections_per_ip) == (
        10.0,
        20.0,
        100,
    )
    settings = Settings.from_env(
        {
            "ATTEST_LEDGER_HEAD_TIMEOUT": "2.5",
            "ATTEST_LEDGER_BODY_TIMEOUT": "7",
            "ATTEST_LEDGER_CONNECTIONS_PER_IP": "0",
        }
    )
    assert (settings.head_timeout, settings.body_timeout, settings.connections_per_ip) == (
        2.5,
        7.0,
        0,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ATTEST_LEDGER_HEAD_TIMEOUT", "0"),
        ("ATTEST_LEDGER_HEAD_TIMEOUT", "nan"),
        ("ATTEST_LEDGER_BODY_TIMEOUT", "inf"),
        ("ATTEST_LEDGER_BODY_TIMEOUT", "-1"),
        ("ATTEST_LEDGER_CONNECTIONS_PER_IP", "-1"),
        ("ATTEST_LEDGER_CONNECTIONS_PER_IP", "1.5"),
    ],
)
def test_front_settings_are_validated(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
