"""Whether a request has fully arrived, judged from its framing alone.

:class:`RequestScan` follows one HTTP/1.1 request over a buffer that grows as bytes arrive:
first the head (up to its blank line), then the body as its framing says (``Content-Length``,
or ``Transfer-Encoding: chunked`` walked chunk by chunk). It is not a parser: gunicorn's
parser reads every request again from the same bytes and decides what it means. Whatever this
scan cannot judge (two lengths, an unknown coding, a malformed chunk, a bare LF) it leaves to
that parser, which refuses it; so the two can differ only on *when* a thread gets a request,
never on what the request says.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Progress", "RequestScan"]

#: gunicorn's own limit on a chunk-size line (its ``limit_request_field_size``).
MAX_CHUNK_LINE = 8190
#: gunicorn's own limit on a trailer section.
MAX_TRAILERS = 8190 * 32
_HEX = frozenset(b"0123456789abcdefABCDEF")
_CR = 13


class Progress(Enum):
    HEAD = "head"  # the head is still arriving
    BODY = "body"  # the head is complete; the body is still arriving
    COMPLETE = "complete"  # head and body are buffered (more bytes may follow: pipelining)
    UNJUDGED = "unjudged"  # framing this scan does not judge: the parser will (and refuse it)
    BODY_TOO_LARGE = "body_too_large"  # announced (or sent) beyond the body limit
    HEAD_TOO_LARGE = "head_too_large"  # no end of head within the head limit


class RequestScan:
    """One request's progress over its buffer, which starts at the request's first byte.

    Call :meth:`scan` with the whole buffer each time bytes are added; it resumes where it
    stopped. After the head, :attr:`head_end` is the offset of the body, :attr:`target` the
    request target and :attr:`expects_continue` whether the client waits for ``100 Continue``
    before sending its body.
    """

    def __init__(self, *, max_head: int, max_body: int, max_line: int = 0) -> None:
        self.max_head = max_head
        self.max_body = max_body
        #: gunicorn's ``limit_request_line`` (0: none): a longer request line is left to the
        #: parser as soon as it is known, which answers 414 as it always has.
        self.max_line = max_line
        self._line_ended = False
        self.progress = Progress.HEAD
        self.head_end = 0
        self.target = b""
        self.expects_continue = False
        self._searched = 0  # where the search for the end of the head resumes
        self._content_end: int | None = None  # Content-Length framing: where the body ends
        self._chunk_at = 0  # chunked framing: the offset of the next chunk-size line
        self._declared = 0  # chunked framing: body bytes announced by the chunks so far

    def scan(self, buffer: bytes | bytearray) -> Progress:
        if self.progress is Progress.HEAD:
            self.progress = self._scan_head(buffer)
        if self.progress is Progress.BODY:
            self.progress = self._scan_body(buffer)
        return self.progress

    # --- the head ------------------------------------------------------------------------

    def _scan_head(self, buffer: bytes | bytearray) -> Progress:
        end = buffer.find(b"\r\n\r\n", max(0, self._searched - 3))
        if end < 0:
            if _has_bare_lf(buffer, max(0, self._searched - 1)):
                return Progress.UNJUDGED  # the parser refuses a bare LF at once
            if self.max_line > 0 and not self._line_ended and self._line_too_long(buffer):
                return Progress.UNJUDGED  # the parser refuses it at once (414)
            self._searched = len(buffer)
            return Progress.HEAD_TOO_LARGE if len(buffer) > self.max_head else Progress.HEAD
        if end + 4 > self.max_head:
            return Progress.HEAD_TOO_LARGE
        self.head_end = end + 4
        return self._framing(bytes(buffer[:end]))

    def _line_too_long(self, buffer: bytes | bytearray) -> bool:
        """Whether the request line has gone past ``max_line`` without ending (measured as
        gunicorn's parser does, after one optional empty line)."""
        start = 2 if buffer[:2] == b"\r\n" else 0
        if buffer.find(b"\r\n", start) >= 0:
            self._line_ended = True
            return False
        return len(buffer) - start - 2 > self.max_line

    def _framing(self, head: bytes) -> Progress:
        lines = head.split(b"\r\n")
        if lines[0] == b"":  # RFC 9112 section 2.2: one empty line may precede the request
            lines = lines[1:]
        request_line = lines[0].split(b" ") if lines else []
        if len(request_line) != 3:
            return Progress.UNJUDGED
        self.target = request_line[1]
        http11 = request_line[2] == b"HTTP/1.1"
        lengths: list[bytes] = []
        codings: list[bytes] = []
        expect: list[bytes] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip(b" \t"):
                return Progress.UNJUDGED  # no colon, whitespace around a name, folding
            name, value = name.lower(), value.strip(b" \t")
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings.extend(c.strip(b" \t").lower() for c in value.split(b","))
            elif name == b"expect":
                expect.append(value.lower())
        if codings:
            # RFC 9112 section 6.1 and 6.3: chunked, once and last, on HTTP/1.1, with no
            # Content-Length beside it; anything else is the parser's to refuse.
            if lengths or not http11 or codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                return Progress.UNJUDGED
            self._chunk_at = self.head_end
        elif lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                return Progress.UNJUDGED
            length = int(lengths[0])
            if length > self.max_body:
                return Progress.BODY_TOO_LARGE
            if length == 0:
                return Progress.COMPLETE
            self._content_end = self.head_end + length
        else:
            return Progress.COMPLETE  # a request without either has no body
        if expect:
            if expect != [b"100-continue"]:
                return Progress.UNJUDGED
            self.expects_continue = http11
        return Progress.BODY

    # --- the body ------------------------------------------------------------------------

    def _scan_body(self, buffer: bytes | bytearray) -> Progress:
        if self._content_end is not None:
            return Progress.COMPLETE if len(buffer) >= self._content_end else Progress.BODY
        while True:
            at = self._chunk_at
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                if len(buffer) - at > MAX_CHUNK_LINE:
                    return Progress.UNJUDGED
                return self._more(buffer)
            size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].rstrip(b" \t")
            if not size_text or not _HEX.issuperset(size_text):
                return Progress.UNJUDGED
            size = int(size_text, 16)
            if size == 0:  # the last chunk, then trailers (usually none) and a blank line
                trailers = line_end + 2
                if buffer[trailers : trailers + 2] == b"\r\n":
                    return Progress.COMPLETE
                if buffer.find(b"\r\n\r\n", trailers) >= 0:
                    return Progress.COMPLETE
                if len(buffer) - trailers > MAX_TRAILERS:
                    return Progress.UNJUDGED
                return self._more(buffer)
            if self._declared + size > self.max_body:
                return Progress.BODY_TOO_LARGE
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                return self._more(buffer)
            if buffer[data_end : data_end + 2] != b"\r\n":
                return Progress.UNJUDGED
            self._declared += size
            self._chunk_at = data_end + 2

    def _more(self, buffer: bytes | bytearray) -> Progress:
        # Chunk framing costs a few bytes per chunk; a body sent in tiny chunks that needs
        # more than twice the limit in framing is refused as too large.
        if len(buffer) - self.head_end > 2 * self.max_body + MAX_CHUNK_LINE:
            return Progress.BODY_TOO_LARGE
        return Progress.BODY


def _has_bare_lf(buffer: bytes | bytearray, start: int) -> bool:
    """Whether an LF without a CR before it occurs at or after ``start``."""
    at = buffer.find(b"\n", start)
    while at >= 0:
        if at == 0 or buffer[at - 1] != _CR:
            return True
        at = buffer.find(b"\n", at + 1)
    return False
