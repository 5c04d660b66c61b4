"""A run of ``attest-ledger`` in the test's process, as the CLI tests make it."""

from __future__ import annotations

import pytest

from attest_ledger.cli import main
from attest_ledger.settings import Settings


def run(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> tuple[int, str, str]:
    """Run ``attest-ledger argv`` with ``settings``: (exit code, stdout, stderr)."""
    code = main(list(argv), settings=settings)
    out, err = capsys.readouterr()
    return code, out, err
