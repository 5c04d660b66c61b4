"""``FrontWorker``: gunicorn's threaded worker, with its event loop as a buffering front.

gunicorn's ``ThreadWorker`` gives a connection to a thread once a byte has arrived, and the
thread then blocks until the whole request is in. Here no thread ever waits for a client:

* when a waiting connection becomes readable, a thread reads what has arrived, without
  blocking; if :class:`~attest_ledger.front.framing.RequestScan` says the request is complete
  (the usual case: a request arrives at once) the thread serves it right away, as gunicorn's
  own worker would, with the bytes handed back to gunicorn's parser (``unreader.unread``, as
  gunicorn's h2c path does);
* otherwise the connection goes back to the main loop, which already watches every idle
  connection without a thread, and which reads the rest itself, non-blocking, until the
  request is complete; then a thread gets it.

The same goes for every later request on a kept-alive connection and for pipelined bytes left
over from the previous one. (The first read is a thread's rather than the loop's so that, on
the usual path, the loop does no more than gunicorn's: every socket read releases and re-takes
the GIL, which can wait up to 5 ms while threads verify, and the loop serves every
connection.) While a request arrives:

* its head must be complete within ``head_timeout`` and its body within ``body_timeout``;
  past either the client gets ``408 request_timeout`` and the connection is closed;
* a body announced or sent beyond ``max_body`` is refused at once (``413 payload_too_large``)
  and a head beyond ``max_head`` too (``431 headers_too_large``), without waiting for them;
* each address may have ``per_address`` such connections waiting (kept-alive idle ones
  included), and the process ``worker_connections // 2``: a new connection beyond either
  closes the oldest waiting one (of its address, or of all), so a flood cannot lock out
  well-behaved clients, even those that share its address, and never stops the worker from
  accepting.

A stopping worker gives requests still arriving two seconds (gunicorn's linger for kept-alive
connections), not their whole deadline, so slow clients cannot hold up a restart.

Threads read and write with a socket timeout of gunicorn's ``timeout``, so a read the front did
not foresee, or a client that stops reading its response, holds a thread for that long at
most. Connections are closed by lingering in the event loop (half-close, drain for up to two
seconds), not by gunicorn's blocking ``close_graceful``, which stalled the whole loop for up to
two seconds per client that did not close its side.

Plain HTTP/1.1 only: no TLS and no HTTP/2 (``serve`` configures neither).
"""

from __future__ import annotations

import contextlib
import errno
import json
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from attest_ledger.front import FrontLimits
from attest_ledger.front.framing import Progress, RequestScan

__all__ = ["FrontWorker"]

RECV_SIZE = 65536
#: How long, and for how many bytes, a closing connection is drained (as gunicorn's own
#: ``close_graceful``), so that the kernel does not reset it before the client reads the
#: last response.
LINGER_SECONDS = 2.0
LINGER_BYTES = 65536
#: How often deadlines are checked (the loop wakes at least once a second anyway).
SWEEP_SECONDS = 0.25
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Conn(TConn):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's connection, and what the front learnt about its current request."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        #: The whole request was buffered before a thread got it (so after the response the
        #: connection may be kept alive); False for requests handed over for the parser to
        #: refuse, or cut short by the client.
        self.whole = True
        #: The front sent ``100 Continue`` for the current request; gunicorn must not again.
        self.continued = False
        self.drained = 0  # bytes read while lingering
        #: The request being read by a thread's first read (see FrontWorker._readable).
        self.waiting: _Waiting | None = None


class _Waiting:
    """A connection waiting, in the event loop, for its next request to arrive."""

    __slots__ = ("address", "buffer", "conn", "deadline", "registered", "scan", "since")

    def __init__(
        self, conn: _Conn, address: str, since: float, deadline: float, scan: RequestScan
    ) -> None:
        self.conn = conn
        self.address = address
        self.since = since  # when it started waiting: the oldest is closed first
        self.deadline = deadline
        self.scan = scan
        self.buffer = bytearray()
        self.registered = False


class FrontWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = getattr(self.app, "front_limits", None)
        self.limits: FrontLimits = limits if isinstance(limits, FrontLimits) else FrontLimits()
        self.max_waiting = max(1, self.worker_connections // 2)
        self.waiting: dict[_Waiting, None] = {}
        self.by_address: dict[str, dict[_Waiting, None]] = {}
        self.lingering: dict[_Conn, float] = {}  # the deadline of each
        self.next_sweep = 0.0
        self.stopping = False

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl or getattr(cfg, "http2_cleartext", "off") != "off":
            raise RuntimeError("the front worker serves plain HTTP/1.1 only (no TLS, no h2c)")

    # --- connections arriving and waiting ------------------------------------------------

    def accept(self, listener: Any) -> None:
        try:
            sock, client = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = _Conn(self.cfg, sock, client, listener.getsockname())  # non-blocking now
        self._wait(conn, b"", kept_alive=False)

    def _wait(self, conn: _Conn, leftover: bytes, *, kept_alive: bool) -> None:
        """Wait in the loop for the next request on ``conn``; ``leftover`` is its start,
        already read (pipelined behind the previous request)."""
        now = time.monotonic()
        address = _address(conn.client)
        self._make_room(address)
        idle = kept_alive and not leftover
        timeout = self.cfg.keepalive if idle else self.limits.head_timeout
        scan = RequestScan(
            max_head=self.limits.max_head,
            max_body=self.limits.max_body,
            max_line=max(self.cfg.limit_request_line, 0),
        )
        waiting = _Waiting(conn, address, now, self._deadline(now, timeout), scan)
        conn.continued = False
        self.waiting[waiting] = None
        self.by_address.setdefault(address, {})[waiting] = None
        if leftover and self._received(waiting, leftover, now):
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, waiting))
        waiting.registered = True

    def _deadline(self, now: float, seconds: float) -> float:
        """``now + seconds``; once the worker is stopping, no more than gunicorn gives its
        kept-alive connections then (a request not in by then gets 408, a slow client cannot
        hold up a restart)."""
        if not self.alive:
            seconds = min(seconds, STOP_KEEPALIVE_LINGER)
        return now + seconds

    def _make_room(self, address: str) -> None:
        """Close the oldest waiting connection of ``address``, then of anyone, while either
        is at its cap, so that the newcomer always gets in."""
        mine = self.by_address.get(address)
        per_address = self.limits.per_address
        while per_address and mine and len(mine) >= per_address:
            oldest = min(mine, key=_since)
            self._expire(oldest, "too many unfinished requests from this address")
        while len(self.waiting) >= self.max_waiting:
            self._expire(min(self.waiting, key=_since), "too many unfinished requests")

    def _forget(self, waiting: _Waiting) -> None:
        self.waiting.pop(waiting, None)
        mine = self.by_address.get(waiting.address)
        if mine is not None:
            mine.pop(waiting, None)
            if not mine:
                del self.by_address[waiting.address]
        if waiting.registered:
            waiting.registered = False
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(waiting.conn.sock)

    def _readable(self, waiting: _Waiting, _fileobj: Any) -> None:
        if waiting not in self.waiting:
            return  # an event selected before an earlier one in the same batch closed it
        if not waiting.buffer:
            # The first bytes of a request, which are usually all of it: a thread reads
            # them (without blocking) and serves the request at once if it is complete, so
            # that the loop does no socket read on this path, as in gunicorn's own worker
            # (each read there releases and re-takes the GIL, a wait of up to 5 ms when the
            # threads verify). Only a request that is still incomplete comes back here.
            self._forget(waiting)
            conn = waiting.conn
            conn.waiting = waiting
            future = self.tpool.submit(self._first_read, waiting)
            future.add_done_callback(
                lambda done: self.method_queue.defer(self.finish_request, conn, done)
            )
            return
        try:
            data = waiting.conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._received(waiting, data, time.monotonic())
        elif waiting.scan.progress is Progress.BODY:
            # The client ended its side mid-body: the parser and the application see a body
            # shorter than announced, and refuse it (400); then the connection closes.
            self._hand_off(waiting, whole=False)
        else:
            self._forget(waiting)
            self._close(waiting.conn)

    def _received(self, waiting: _Waiting, data: bytes, now: float) -> bool:
        """Add ``data`` to the request; True when the connection has left the loop's care
        (given to a thread, or answered and closed)."""
        progress = self._add(waiting, data, now)
        if progress is Progress.HEAD or progress is Progress.BODY:
            return False
        if progress is Progress.COMPLETE or progress is Progress.UNJUDGED:
            self._hand_off(waiting, whole=progress is Progress.COMPLETE)
        else:
            self._forget(waiting)
            self._close(waiting.conn, self._refusal(waiting))
        return True

    def _add(self, waiting: _Waiting, data: bytes, now: float) -> Progress:
        """Add ``data`` to the request and follow its progress (in the loop, or in the
        thread doing the first read)."""
        if not waiting.buffer:  # the first byte: a kept-alive connection's idle time ends
            waiting.deadline = self._deadline(now, self.limits.head_timeout)
        waiting.buffer += data
        before = waiting.scan.progress
        progress = waiting.scan.scan(waiting.buffer)
        if progress is Progress.BODY and before is Progress.HEAD:
            waiting.deadline = self._deadline(now, self.limits.body_timeout)
            if waiting.scan.expects_continue:
                self._send_continue(waiting)
        return progress

    def _refusal(self, waiting: _Waiting) -> bytes:
        if waiting.scan.progress is Progress.BODY_TOO_LARGE:
            code, what, limit = "payload_too_large", "body", self.limits.max_body
            status = 413
        else:
            code, what, limit = "headers_too_large", "head", self.limits.max_head
            status = 431
        detail = f"the request {what} is larger than {limit} bytes"
        return _problem(status, code, detail, waiting.scan.target)

    def _first_read(self, waiting: _Waiting) -> Any:
        """In a thread: read what has arrived of a request; serve it if it is complete,
        else give it back to the loop (_MORE) or have the loop refuse it."""
        conn = waiting.conn
        try:
            data = conn.sock.recv(RECV_SIZE)  # non-blocking: the loop saw it readable
        except (BlockingIOError, InterruptedError):
            return _MORE
        except OSError:
            return False
        if not data:
            return False
        progress = self._add(waiting, data, time.monotonic())
        if progress is Progress.HEAD or progress is Progress.BODY:
            return _MORE
        if progress is Progress.COMPLETE or progress is Progress.UNJUDGED:
            self._prepare(waiting, whole=progress is Progress.COMPLETE)
            return self.handle(conn)
        return _Refusal(self._refusal(waiting))

    def _send_continue(self, waiting: _Waiting) -> None:
        try:
            waiting.conn.sock.send(CONTINUE)  # a few bytes on an empty send buffer
        except OSError:
            return
        waiting.conn.continued = True

    def _hand_off(self, waiting: _Waiting, *, whole: bool) -> None:
        """Give the request to a thread."""
        self._forget(waiting)
        self._prepare(waiting, whole=whole)
        self.enqueue_req(waiting.conn)

    def _prepare(self, waiting: _Waiting, *, whole: bool) -> None:
        """Give the request's bytes back to gunicorn's parser."""
        conn = waiting.conn
        conn.whole = whole
        if not conn.initialized:
            conn.init()  # plain HTTP/1: makes the parser, no I/O
        conn.parser.unreader.unread(bytes(waiting.buffer))
        conn.data_ready = True

    def _resume(self, waiting: _Waiting) -> None:
        """Back in the loop after a thread's first read found the request incomplete."""
        self._make_room(waiting.address)
        if not self.alive:
            waiting.deadline = min(waiting.deadline, time.monotonic() + STOP_KEEPALIVE_LINGER)
        self.waiting[waiting] = None
        self.by_address.setdefault(waiting.address, {})[waiting] = None
        conn = waiting.conn
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, waiting))
        waiting.registered = True

    def _expire(self, waiting: _Waiting, detail: str) -> None:
        """Close a waiting connection: 408 if part of a request arrived; an idle one (nothing
        received since its last response, or since it opened) is closed without a word."""
        self._forget(waiting)
        if not waiting.buffer:
            with contextlib.suppress(OSError):  # bytes the loop has not looked at yet?
                waiting.buffer += waiting.conn.sock.recv(RECV_SIZE)
        if waiting.buffer:
            self._close(waiting.conn, _problem(408, "request_timeout", detail, waiting.scan.target))
        else:
            self._close(waiting.conn)

    # --- deadlines, run from the loop ----------------------------------------------------

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        if now < self.next_sweep:
            return
        self.next_sweep = now + SWEEP_SECONDS
        if not self.alive and not self.stopping:
            self.stopping = True
            for waiting in self.waiting:
                waiting.deadline = min(waiting.deadline, now + STOP_KEEPALIVE_LINGER)
        for waiting in [w for w in self.waiting if w.deadline <= now]:
            if waiting.scan.progress is Progress.HEAD:
                detail = f"the request head did not arrive within {self.limits.head_timeout:g} s"
            else:
                detail = f"the request body did not arrive within {self.limits.body_timeout:g} s"
            self._expire(waiting, detail)
        for conn in [c for c, deadline in self.lingering.items() if deadline <= now]:
            self._end_linger(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:  # the worker is exiting
            for waiting in list(self.waiting):
                self._forget(waiting)
                self._release(waiting.conn)
            for conn in list(self.lingering):
                self._end_linger(conn)

    # --- the thread's part ---------------------------------------------------------------

    def handle(self, conn: _Conn) -> Any:
        """Serve one buffered request; runs in a thread. gunicorn's ``handle`` without what
        the front does (waiting for data, TLS, HTTP/2) and with a socket timeout."""
        req = None
        try:
            conn.sock.settimeout(self.cfg.timeout)
            req = next(conn.parser)
            if not req:
                return False
            if conn.continued:
                req._expected_100_continue = False  # the front sent it already
            return self._keepalive_after(conn, self.handle_request(req, conn))
        except http.errors.NoMoreData as error:
            self.log.debug("Ignored premature client disconnection. %s", error)
        except StopIteration as error:
            self.log.debug("Closing connection. %s", error)
        except TimeoutError:
            self.log.debug("Closing connection: the client stopped sending or reading.")
        except OSError as error:
            if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
            else:
                self.log.debug("Ignoring socket error: %s", error)
        except Exception as error:
            self.handle_error(req, conn.sock, conn.client, error)
        return False

    def _keepalive_after(self, conn: _Conn, keepalive: Any) -> bool:
        if not keepalive or not conn.whole:
            return False
        return bool(super()._keepalive_after(conn, keepalive))  # drains the buffered body

    def finish_request(self, conn: _Conn, fs: Any) -> None:
        """Back in the loop after a thread served a request: wait for the next one, starting
        with any bytes pipelined behind it, or close."""
        try:
            result = fs.result() if not fs.cancelled() else False
        except Exception:
            result = False
        keep = bool(result)
        waiting, conn.waiting = conn.waiting, None
        try:
            if result is _MORE and waiting is not None:
                self._resume(waiting)
            elif isinstance(result, _Refusal):
                self._close(conn, result.response)
            elif keep:
                leftover = conn.parser.unreader.take_buffered()
                conn.sock.setblocking(False)
                self._wait(conn, leftover, kept_alive=True)
            else:
                self._close(conn)
        except Exception:
            self._release(conn)

    # --- closing -------------------------------------------------------------------------

    def _close(self, conn: _Conn, response: bytes = b"") -> None:
        """Send ``response`` (if any), half-close, and drain in the loop until the client
        closes too, for LINGER_SECONDS at most."""
        sock = conn.sock
        try:
            sock.setblocking(False)
            if response:
                sock.send(response)  # a few hundred bytes on an empty send buffer
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._linger, conn))
        except (OSError, ValueError, KeyError):
            self._release(conn)
            return
        self.lingering[conn] = time.monotonic() + LINGER_SECONDS

    def _linger(self, conn: _Conn, _fileobj: Any) -> None:
        if conn not in self.lingering:
            return
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained >= LINGER_BYTES:
            self._end_linger(conn)

    def _end_linger(self, conn: _Conn) -> None:
        del self.lingering[conn]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self._release(conn)

    def _release(self, conn: _Conn) -> None:
        self.nr_conns -= 1
        util.close(conn.sock)


#: A thread's first read found the request incomplete: the loop waits for the rest.
_MORE = object()


class _Refusal:
    """A thread's first read found a request to refuse: the loop sends this and closes."""

    def __init__(self, response: bytes) -> None:
        self.response = response


def _since(waiting: _Waiting) -> float:
    return waiting.since


def _address(client: Any) -> str:
    """The client's IP address; every client of a Unix socket counts as one."""
    if isinstance(client, tuple | list) and client:
        return str(client[0])
    return "unix"


def _problem(status: int, code: str, detail: str, target: bytes) -> bytes:
    """A complete ``Connection: close`` response carrying an RFC 9457 problem, shaped as the
    application's own (``web.problems``)."""
    reasons = {
        408: "Request Timeout",
        413: "Content Too Large",
        431: "Request Header Fields Too Large",
    }
    problem: dict[str, Any] = {
        "type": f"urn:attestation-ledger:problem:{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if target:
        problem["instance"] = target.split(b"?", 1)[0].decode("latin-1")
    body = json.dumps(problem, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {reasons[status]}\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body
