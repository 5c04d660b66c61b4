"""A service on a fresh database, with a worker, a second worker, a reader and a policy."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from attest_ledger.clients import create_client
from attest_ledger.runtime import Runtime
from attest_ledger.settings import Settings
from attest_ledger.users import add_user
from enclave_worker import SimulatedNsm
from ledger.checkpoints import publish_checkpoint
from ledger.db import session_scope
from ledger.keys import create_signing_key
from tests.support import SIM_AT
from verifier import ResultHash
from web import create_app

NOW = SIM_AT + timedelta(seconds=1)


@dataclass
class Service:
    app: Flask
    http: FlaskClient
    runtime: Runtime
    nsm: SimulatedNsm
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def challenge(self, who: str = "worker-1") -> bytes:
        response = self.http.post("/api/v1/challenges", headers=self.auth(who))
        assert response.status_code == 201, response.json
        return bytes.fromhex(response.json["challenges"][0]["nonce"])

    def document(
        self,
        *,
        result: bytes = b"the answer",
        nonce: bytes | None = None,
        nsm: SimulatedNsm | None = None,
        **kwargs: Any,
    ) -> bytes:
        return (nsm or self.nsm).attest(
            user_data=ResultHash.of(result).user_data(),
            nonce=nonce,
            timestamp=kwargs.pop("timestamp", SIM_AT),
            **kwargs,
        )

    def submit(
        self,
        document: bytes,
        *,
        who: str = "worker-1",
        result: bytes = b"the answer",
        key: str | None = None,
        job: dict | None = None,
    ):
        body: dict[str, Any] = {
            "attestation_document": base64.b64encode(document).decode(),
            "result_hash": str(ResultHash.of(result)),
            "job": job or {"id": "job-1"},
        }
        headers = self.auth(who)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.http.post("/api/v1/attestations", json=body, headers=headers)

    def fresh(self, who: str = "worker-1", **kwargs: Any):
        """Challenge, attest, submit: the happy path."""
        return self.submit(self.document(nonce=self.challenge(who), **kwargs), who=who)


def build_service(db_url, tmp_path, sim_pki, sim_nsm, **overrides: Any) -> Service:
    key = tmp_path / "ledger.key"
    create_signing_key(key, "example.com/api-test")
    root = tmp_path / "simulated-root.pem"
    root.write_bytes(sim_pki.root_pem())
    settings = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        ledger_key_path=key,
        trust_root_path=root,
        rate_limit=overrides.pop("rate_limit", 0.0),
        receipt_checkpoint_ttl=0.0,
        **overrides,
    )
    runtime = Runtime.build(settings, publish=False)
    runtime.clock = lambda: NOW
    service = Service(app=create_app(runtime), http=None, runtime=runtime, nsm=sim_nsm)  # type: ignore[arg-type]
    service.http = service.app.test_client()
    with session_scope(runtime.sessions) as session:
        for name, role in (
            ("worker-1", "worker"),
            ("worker-2", "worker"),
            ("idle-worker", "worker"),
            ("auditor", "reader"),
        ):
            service.tokens[name] = create_client(session, name, role)
        runtime.policies.add_image(session, "inference-v1", {i: sim_nsm.pcrs[i] for i in (0, 1, 2)})
        runtime.policies.allow(session, "worker-1", "inference-v1")
        runtime.policies.allow(session, "worker-2", "inference-v1")
    return service


@pytest.fixture
def service(db_url, tmp_path, sim_pki, sim_nsm):
    built = build_service(db_url, tmp_path, sim_pki, sim_nsm)
    yield built
    built.runtime.close()


# --- the portal, signed in ------------------------------------------------------------------

PASSWORD = "an auditor's long passphrase"  # noqa: S105 - a test account


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def sign_in(http, name="ada", password=PASSWORD, next_page=None):
    form = http.get("/portal/login")
    data = {"csrf": csrf_of(form.get_data(as_text=True)), "name": name, "password": password}
    if next_page:
        data["next"] = next_page
    return http.post("/portal/login", data=data)


def signed_in(service):
    """``service`` with an auditor (ada) added and signed in to the portal as
    ``service.browser``."""
    with session_scope(service.runtime.sessions) as session:
        add_user(session, "ada", "auditor", PASSWORD)
    http = service.app.test_client()
    http.environ_base["wsgi.url_scheme"] = "https"
    assert sign_in(http).status_code == 302
    service.browser = http
    return service


@pytest.fixture
def portal(service):
    return signed_in(service)


def publish(service) -> None:
    with session_scope(service.runtime.sessions) as session:
        publish_checkpoint(session, service.runtime.signer)


def page(service, path: str, status: int = 200) -> str:
    response = service.browser.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)
