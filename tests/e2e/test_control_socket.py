"""`serve` opens no gunicorn control socket: gunicorn 27 makes one per user by default
($HOME/.gunicorn/gunicorn.ctl), so a second service on the machine (or a test's) would take
over the first one's, and nothing of ours uses it."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.db, pytest.mark.e2e]


@pytest.fixture
def live_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "XDG_RUNTIME_DIR": ""}


def test_serve_opens_no_control_socket(live, tmp_path) -> None:
    import httpx

    assert httpx.get(f"{live['base']}/healthz").status_code == 200
    assert not (tmp_path / "home" / ".gunicorn").exists()
