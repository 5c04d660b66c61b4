"""Slow clients against the real service (issue #10, item 6): connections that trickle a
request's head or body must not take the service's threads, one address must not lock others
(or itself) out, and a chunked body over the size limit is refused, not cut and acted on.

Every test starts ``attest-ledger serve`` as the ``live`` fixture does. No assertion is about
time: a probe has a generous timeout only so that a stalled service fails the test instead of
hanging it.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from attest_ledger.settings import Settings
from bench.slow_clients_bench import SLOW_HEAD, SlowClients, is_open
from enclave_worker import SimulatedNitroPki, SimulatedNitroWarning, SimulatedNsm
from enclave_worker.binding import bind_result, result_hash_text
from enclave_worker.simulated_pki import load_or_create_root

pytestmark = [pytest.mark.db, pytest.mark.e2e, pytest.mark.slow]

#: What a probe waits for at most; only so that a stalled service fails instead of hanging.
PROBE_TIMEOUT = 10.0


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _status(reply: bytes) -> int | None:
    """The status code of the first response in ``reply``, or None if there is none."""
    if not reply.startswith(b"HTTP/1."):
        return None
    return int(reply.split(b" ", 2)[1])


def _read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    connection.settimeout(60)  # a hang guard: the deadlines under test are seconds
    reply = b""
    try:
        while chunk := connection.recv(65536):
            reply += chunk
    except ConnectionResetError:
        pass
    return reply


class Submitter:
    """Real submissions through the live service: a challenge, a document from the simulated
    NSM over it, the submission; each on fresh connections, as an enclave worker would."""

    def __init__(self, live: dict[str, Any]) -> None:
        self.base = live["base"]
        self.auth = {"Authorization": f"Bearer {live['tokens']['alpha']}"}
        now = datetime.now(UTC)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulatedNitroWarning)
            root = load_or_create_root(live["data"] / "simulated-pki", at=now)
            self.nsm = SimulatedNsm(
                SimulatedNitroPki.generate(at=now, root=root), image="e2e-image"
            )
        self.count = 0

    def body(self) -> dict[str, str]:
        reply = httpx.post(
            f"{self.base}/api/v1/challenges", headers=self.auth, timeout=PROBE_TIMEOUT
        )
        assert reply.status_code == 201, reply.text
        nonce = bytes.fromhex(reply.json()["challenges"][0]["nonce"])
        self.count += 1
        result = f"slow clients test, job {self.count}".encode()
        document = self.nsm.attest(user_data=bind_result(result), nonce=nonce)
        return {
            "attestation_document": base64.b64encode(document).decode(),
            "result_hash": result_hash_text(result),
        }

    def submit(self) -> int:
        reply = httpx.post(
            f"{self.base}/api/v1/attestations",
            headers=self.auth,
            json=self.body(),
            timeout=PROBE_TIMEOUT,
        )
        return reply.status_code


def _tree_size(base: str) -> int:
    return int(httpx.get(f"{base}/api/v1/tree", timeout=PROBE_TIMEOUT).json()["tree_size"])


def _probe(base: str) -> int | str:
    try:
        return httpx.get(f"{base}/healthz", timeout=PROBE_TIMEOUT).status_code
    except httpx.HTTPError as error:
        return type(error).__name__


def test_the_service_keeps_answering_while_200_slow_clients_hold_connections(live) -> None:
    """The issue's attack: 200 connections, one header byte every two seconds, held for 30 s
    (the old configuration failed every probe after sixteen such connections). Every probe
    and every submission meanwhile succeeds; the slow connections are answered 408 and closed
    when their head deadline (10 s by default) passes."""
    base = live["base"]
    submitter = Submitter(live)
    size = _tree_size(base)
    slow = SlowClients(base, 200)
    slow.start()
    probes: list[int | str] = []
    submissions: list[int] = []
    try:
        hold_until = time.monotonic() + 30
        while time.monotonic() < hold_until:
            probes.append(_probe(base))
            if len(probes) % 6 == 0:
                submissions.append(submitter.submit())
            time.sleep(0.5)
    finally:
        slow.stop()
    assert len(probes) >= 20
    assert set(probes) == {200}, Counter(probes)
    assert len(submissions) >= 5
    assert set(submissions) == {201}, submissions
    assert _tree_size(base) == size + len(submissions)
    # The slow connections were cut by the head deadline (or evicted as the oldest of their
    # address), each with a 408; none was ever answered anything else.
    assert slow.statuses[408] >= 1, slow.statuses
    assert set(slow.statuses) <= {408, None}, slow.statuses
    assert "Traceback" not in live["log"].read_text()


@pytest.mark.parametrize(
    "live_env", [{"ATTEST_LEDGER_HEAD_TIMEOUT": "2", "ATTEST_LEDGER_BODY_TIMEOUT": "3"}]
)
def test_a_slow_head_and_a_slow_body_are_cut_at_their_deadlines(live) -> None:
    """A head that stops halfway, and a submission whose body trickles in, are each answered
    408 and closed once their deadline passes; nothing is recorded."""
    base, token = live["base"], live["tokens"]["alpha"]
    size = _tree_size(base)

    with socket.create_connection(_address(base), timeout=10) as stalled:
        stalled.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ")
        reply = _read_until_closed(stalled)
    assert _status(reply) == 408, reply[:300]
    assert b'"code":"request_timeout"' in reply.replace(b" ", b"")

    body = json.dumps(Submitter(live).body()).encode()
    head = (
        "POST /api/v1/attestations HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(_address(base), timeout=10) as trickle:
        trickle.sendall(head)
        sent = 0
        # One byte every 0.2 s: the whole body would take minutes; the deadline is 3 s.
        while sent < len(body) - 1 and is_open(trickle):
            try:
                trickle.sendall(body[sent : sent + 1])
            except OSError:
                break
            sent += 1
            time.sleep(0.2)
        reply = _read_until_closed(trickle)
    assert sent < len(body) - 1
    assert _status(reply) == 408, reply[:300]
    assert _probe(base) == 200
    assert _tree_size(base) == size


@pytest.mark.parametrize(
    "live_env",
    [{"ATTEST_LEDGER_CONNECTIONS_PER_IP": "4", "ATTEST_LEDGER_HEAD_TIMEOUT": "120"}],
)
def test_a_flood_from_one_address_evicts_its_oldest_connections_not_newcomers(live) -> None:
    """With four unfinished connections allowed per address (in each of the two processes),
    thirty slow connections from 127.0.0.1 close the oldest ones (408), and well-behaved
    requests from the same address are still served. The head deadline is set far away, so
    every connection closed here was evicted."""
    base = live["base"]
    flood = []
    for _ in range(30):
        connection = socket.create_connection(_address(base), timeout=10)
        connection.sendall(SLOW_HEAD[:40])
        flood.append(connection)
    try:
        assert [_probe(base) for _ in range(10)] == [200] * 10
        assert Submitter(live).submit() == 201
        # Each process keeps at most four; wait (a hang guard, not a measurement) until the
        # evictions of the connections both processes accepted have reached the client.
        deadline = time.monotonic() + 60
        while sum(map(is_open, flood)) > 2 * 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        still_open = [c for c in flood if is_open(c)]
        assert len(still_open) <= 2 * 4
        assert flood[-1] in still_open  # the newest is kept, the oldest go
        closed = [c for c in flood if c not in still_open]
        assert all(_status(_read_until_closed(c)) == 408 for c in closed)
    finally:
        for connection in flood:
            connection.close()


def _chunked(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_chunked_body_over_the_limit_is_refused_not_cut(live) -> None:
    """A chunked submission whose first bytes up to the limit (512 KiB) are a complete, valid
    submission (the JSON padded with spaces) followed by more bytes: answered 413
    ``payload_too_large``, and nothing is recorded. The same submission under the limit,
    chunked too, is accepted."""
    base, submitter = live["base"], Submitter(live)
    headers = {**submitter.auth, "Content-Type": "application/json"}
    size = _tree_size(base)

    valid = json.dumps(submitter.body()).encode()
    limit = Settings.__dataclass_fields__["max_request_bytes"].default
    over = valid + b" " * (limit - len(valid)) + b"and more than the limit allows"
    reply = httpx.post(
        f"{base}/api/v1/attestations", headers=headers, content=_chunked(over), timeout=30
    )
    assert reply.status_code == 413, reply.text
    assert reply.json()["code"] == "payload_too_large"
    assert _tree_size(base) == size

    reply = httpx.post(
        f"{base}/api/v1/attestations", headers=headers, content=_chunked(valid), timeout=30
    )
    assert reply.status_code == 201, reply.text
    assert _tree_size(base) == size + 1


def test_pipelined_and_continued_requests_are_served(live) -> None:
    """What a buffering front must not break: two requests sent in one write are both
    answered, in order, on the same connection; a body sent only after ``100 Continue``
    arrives; a request split across writes is served; a request line over gunicorn's limit
    is still its 414 (the OpenAPI document says so), however long it is."""
    base, token = live["base"], live["tokens"]["alpha"]
    with socket.create_connection(_address(base), timeout=10) as connection:
        connection.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /api/v1/tree HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        reply = _read_until_closed(connection)
    assert reply.count(b"HTTP/1.1 200 OK") == 2, reply
    assert b'"tree_size"' in reply

    body = b'{"count": 2}'
    with socket.create_connection(_address(base), timeout=10) as connection:
        connection.sendall(
            b"POST /api/v1/challenges HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        interim = connection.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        connection.sendall(body)
        reply = _read_until_closed(connection)
    assert _status(reply) == 201, reply
    assert b"100 Continue" not in reply
    assert reply.count(b'"nonce"') == 2

    with socket.create_connection(_address(base), timeout=10) as connection:
        for piece in (b"GET /hea", b"lthz HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            connection.sendall(piece)
            time.sleep(0.05)
        connection.settimeout(10)
        assert _status(connection.recv(65536)) == 200

    with socket.create_connection(_address(base), timeout=10) as connection:
        connection.sendall(b"GET /api/v1/tree?q=" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
        assert _status(_read_until_closed(connection)) == 414


def test_stopping_with_slow_clients_held_answers_them_and_exits_cleanly(live) -> None:
    """SIGTERM while unfinished requests are held: each gets its 408 (a stopping worker gives
    them two seconds, not their whole deadline) and the service exits with 0."""
    base, server = live["base"], live["server"]
    held = []
    for _ in range(20):
        connection = socket.create_connection(_address(base), timeout=10)
        connection.sendall(SLOW_HEAD[:30])
        held.append(connection)
    assert _probe(base) == 200
    server.send_signal(signal.SIGTERM)
    try:
        replies = [_read_until_closed(connection) for connection in held]
    finally:
        for connection in held:
            connection.close()
    assert server.wait(timeout=60) == 0
    assert {_status(reply) for reply in replies} == {408}, replies
    assert "Traceback" not in live["log"].read_text()
