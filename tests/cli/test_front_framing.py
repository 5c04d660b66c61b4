"""The front's framing scan (attest_ledger.front.framing): when a request has fully arrived.

Checked against gunicorn's own parser: whenever the scan says a request is complete, the
parser reads that request, body and all, from exactly those bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http.errors import LimitRequestLine
from gunicorn.http.parser import RequestParser
from hypothesis import given, settings
from hypothesis import strategies as st

from attest_ledger.front.framing import Progress, RequestScan

LIMIT = 1024


def scan_growing(request: bytes, *, step: int = 1) -> list[tuple[int, Progress]]:
    """Feed ``request`` ``step`` bytes at a time; the progress after each feed."""
    scan = RequestScan(max_head=LIMIT, max_body=LIMIT)
    seen = []
    for end in range(step, len(request) + step, step):
        seen.append((min(end, len(request)), scan.scan(request[:end])))
    return seen


def arrival(request: bytes, progress: Progress) -> int | None:
    """How many bytes had arrived when the scan first reported ``progress``."""
    return next((n for n, p in scan_growing(request) if p is progress), None)


def test_a_request_without_a_body_is_complete_with_its_head() -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    assert arrival(request, Progress.COMPLETE) == len(request)
    assert all(p is Progress.HEAD for n, p in scan_growing(request) if n < len(request))


def test_a_body_with_a_length_is_complete_with_its_last_byte() -> None:
    head = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
    request = head + b"hello"
    assert arrival(request, Progress.BODY) == len(head)
    assert arrival(request, Progress.COMPLETE) == len(request)
    scan = RequestScan(max_head=LIMIT, max_body=LIMIT)
    assert scan.scan(request + b"GET / HTTP/1.1\r\n") is Progress.COMPLETE  # pipelined
    assert scan.head_end == len(head)
    assert scan.target == b"/a"


def test_a_chunked_body_is_complete_after_its_last_chunk_and_trailers() -> None:
    head = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for tail in (b"0\r\n\r\n", b"0\r\nX-Trailer: 1\r\n\r\n", b"0;ext=1\r\n\r\n"):
        request = head + b"5\r\nhello\r\n3;name=value\r\nabc\r\n" + tail
        assert arrival(request, Progress.COMPLETE) == len(request), tail


def test_a_body_over_the_limit_is_refused_as_soon_as_it_is_announced() -> None:
    head = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n"
    assert arrival(head, Progress.BODY_TOO_LARGE) == len(head)
    chunked = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    request = chunked + b"200\r\n" + b"a" * 512 + b"\r\n201\r\n"  # 512 + 513 bytes announced
    assert arrival(request, Progress.BODY_TOO_LARGE) == len(request)
    assert arrival(request, Progress.BODY) == len(chunked)


def test_a_body_mostly_framing_is_refused_when_it_passes_twice_the_limit() -> None:
    head = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"1;ext=" + b"e" * 1000 + b"\r\na\r\n"  # one byte of data, 1 KB of extension
    request = head + chunk * 20 + b"0\r\n\r\n"
    progress = dict(scan_growing(request, step=100))
    assert Progress.BODY_TOO_LARGE in progress.values()
    assert Progress.COMPLETE not in progress.values()


def test_a_head_over_the_limit_is_refused() -> None:
    request = b"GET / HTTP/1.1\r\nX-Padding: " + b"a" * LIMIT
    assert arrival(request, Progress.HEAD_TOO_LARGE) == LIMIT + 1


def test_a_request_line_over_gunicorns_limit_is_left_to_it_as_soon_as_it_is_known() -> None:
    """gunicorn answers 414 for a request line over ``limit_request_line`` (the OpenAPI
    document says so); the scan hands it over as soon as the parser would refuse it."""
    line = b"GET /?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    scan = RequestScan(max_head=LIMIT * 64, max_body=LIMIT, max_line=4094)
    assert scan.scan(line[:4096]) is Progress.HEAD
    assert scan.scan(line[:4097]) is Progress.UNJUDGED
    parser = RequestParser(Config(), iter([line[:4097]]), ("127.0.0.1", 1))
    with pytest.raises(LimitRequestLine):
        next(parser)  # from these bytes alone, without waiting for more
    short = RequestScan(max_head=LIMIT * 64, max_body=LIMIT, max_line=4094)
    assert short.scan(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 4500) is Progress.HEAD


def test_expect_100_continue_is_noted_for_a_body() -> None:
    scan = RequestScan(max_head=LIMIT, max_body=LIMIT)
    head = b"POST /a HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"
    assert scan.scan(head) is Progress.BODY
    assert scan.expects_continue


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF: judged at the first one
        b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
        b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nX : a\r\n\r\n",
        b"GET /\r\n\r\n",
        b"POST / HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\n",
    ],
)
def test_framing_it_does_not_judge_is_left_to_the_parser(request_bytes: bytes) -> None:
    assert RequestScan(max_head=LIMIT, max_body=LIMIT).scan(request_bytes) is Progress.UNJUDGED


# --- against gunicorn's parser -----------------------------------------------------------

_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda t: t.lower() not in ("content-length", "transfer-encoding", "expect", "connection")
)


@st.composite
def requests(draw: Any) -> tuple[bytes, bytes]:
    """A valid request and its body: no body, a Content-Length body or a chunked one."""
    headers = [
        f"X-{name}: {value}".encode()
        for name, value in draw(st.lists(st.tuples(_TOKEN, _TOKEN), max_size=4))
    ]
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    if framing == "none":
        body = b""
        encoded = b""
    elif framing == "length":
        headers.append(f"Content-Length: {len(body)}".encode())
        encoded = body
    else:
        headers.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
        encoded += b"0\r\n" + (b"X-Trailer: 1\r\n" if draw(st.booleans()) else b"") + b"\r\n"
    method = b"POST" if framing != "none" else draw(st.sampled_from([b"GET", b"POST"]))
    head = b"\r\n".join([method + b" /path?q=1 HTTP/1.1", b"Host: example", *headers])
    return head + b"\r\n\r\n" + encoded, body


@settings(max_examples=300, deadline=None)
@given(requests(), st.integers(1, 64))
def test_complete_exactly_when_gunicorn_can_read_the_whole_request(
    case: tuple[bytes, bytes], step: int
) -> None:
    request, body = case
    pipelined = b"GET /next HTTP/1.1\r\nHost: example\r\n\r\n"
    completes = arrival(request, Progress.COMPLETE)
    assert completes == len(request)
    progress = scan_growing(request, step=step)
    assert progress[-1] == (len(request), Progress.COMPLETE)
    assert all(p in (Progress.HEAD, Progress.BODY) for _, p in progress[:-1])
    # gunicorn, given exactly these bytes (and a pipelined request behind them), reads the
    # request and its whole body, and then the next request intact.
    parser = RequestParser(Config(), iter([request + pipelined]), ("127.0.0.1", 1))
    first = next(parser)
    assert first.body.read() == body
    second = next(parser)
    assert second.path == "/next"
