"""What the CLI tests share: the settings of a CLI run against a fresh test database (a
module may override ``settings`` with its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attest_ledger.settings import Settings


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db_url, ledger_key_path=tmp_path / "ledger.key")
