"""A body without a length (chunked: the server de-chunks it and sets wsgi.input_terminated,
as gunicorn does) is refused past the size limit, never cut at it and acted on (issue #10).

The app is called as a WSGI server calls it, so that no test client adds a Content-Length.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder

from attest_ledger.settings import Settings
from tests.web.test_api import entry_count
from verifier import ResultHash

pytestmark = pytest.mark.db

LIMIT = Settings.__dataclass_fields__["max_request_bytes"].default  # 512 KiB


class Dechunked:
    """What gunicorn gives as wsgi.input for a chunked body: at most ``piece`` bytes per
    read, then b"" at the end; or an error part-way, as when the client goes away."""

    def __init__(self, data: bytes, *, piece: int = 4096, fail_after: int | None = None) -> None:
        self.data, self.piece, self.fail_after, self.at = data, piece, fail_after, 0

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.at >= self.fail_after:
            raise OSError("the client went away")
        size = self.piece if size < 0 else min(size, self.piece)
        out = self.data[self.at : self.at + size]
        self.at += len(out)
        return out


def call(service, body: Any, *, path: str = "/api/v1/attestations") -> tuple[int, dict]:
    environ = EnvironBuilder(
        path=path,
        method="POST",
        headers={**service.auth("worker-1"), "Transfer-Encoding": "chunked"},
        content_type="application/json",
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = body
    environ["wsgi.input_terminated"] = True
    status: list[str] = []
    chunks = service.app(environ, lambda s, headers, exc_info=None: status.append(s))
    reply = b"".join(chunks)
    return int(status[0].split()[0]), json.loads(reply)


def submission(service) -> bytes:
    document = service.document(nonce=service.challenge())
    return json.dumps(
        {
            "attestation_document": base64.b64encode(document).decode(),
            "result_hash": str(ResultHash.of(b"the answer")),
            "job": {"id": "job-1"},
        }
    ).encode()


def test_a_body_past_the_limit_is_refused_although_what_came_before_is_valid(service) -> None:
    valid = submission(service)
    padded = valid + b" " * (LIMIT - len(valid))  # exactly at the limit: a valid body
    before = entry_count(service)
    status, problem = call(service, Dechunked(padded + b"and one more chunk"))
    assert status == 413, problem
    assert problem["code"] == "payload_too_large"
    assert entry_count(service) == before


def test_a_body_at_the_limit_and_one_under_it_are_served(service) -> None:
    valid = submission(service)
    status, receipt = call(service, Dechunked(valid + b" " * (LIMIT - len(valid))))
    assert status == 201, receipt
    status, receipt = call(service, Dechunked(submission(service), piece=7))
    assert status == 201, receipt
    assert receipt["verdict"]["status"] == "affirming"


def test_a_body_cut_short_by_the_client_is_refused(service) -> None:
    valid = submission(service)
    before = entry_count(service)
    status, problem = call(service, Dechunked(valid, fail_after=len(valid) // 2))
    assert status == 400, problem
    assert problem["code"] == "malformed_request"
    assert entry_count(service) == before
