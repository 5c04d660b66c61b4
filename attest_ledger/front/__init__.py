"""The buffering front of ``attest-ledger serve``: gunicorn's threads get complete requests only.

gunicorn's threaded worker hands a connection to a thread as soon as its first byte arrives;
the thread then blocks reading the rest of the request, so a client that sends one byte every
few seconds holds a thread for as long as it likes (sixteen such clients took every thread of
the service). gunicorn's documentation prescribes a buffering proxy in front (nginx). Here the
worker's own event loop plays that part (:mod:`attest_ledger.front.worker`): it reads every
request, head and body, without blocking, up to the limits below, and only then gives it to a
thread. :mod:`attest_ledger.front.framing` decides, from the bytes received so far, whether a
request has fully arrived; gunicorn's parser still parses every request itself.

This module holds only the limits, so that ``serve`` can pass them without importing gunicorn.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FrontLimits"]


@dataclass(frozen=True)
class FrontLimits:
    #: Seconds a client has to send a request's head (request line and headers), counted
    #: from the connection, or from the first byte of a later request on a kept-alive one.
    head_timeout: float = 10.0
    #: Seconds a client has to send a request's body, counted from the end of its head.
    body_timeout: float = 20.0
    #: Connections from one address (in each worker process) that may wait on an unfinished
    #: or idle request; a new one closes the oldest. 0: no cap.
    per_address: int = 100
    #: The largest request body; a larger one is refused (413) as soon as it is announced.
    max_body: int = 64 * 1024
    #: The largest request head (request line and headers); larger is refused (431).
    max_head: int = 64 * 1024
