"""The request class of the app: a body without a length is refused beyond the limit, not cut.

Werkzeug enforces ``max_content_length`` on a body without ``Content-Length`` (chunked, which
gunicorn de-chunks and marks ``wsgi.input_terminated``) by wrapping it in a stream that stops
at the limit: ``request.get_data()`` then returns the first ``max_content_length`` bytes as if
they were the whole body, and only a further read would raise (``LimitedStream.readall`` skips
that read on purpose). A submission padded past 64 KiB was thus judged on its first 64 KiB
and recorded (201). Here such a body is read up to one byte past the limit, refused with 413
if that byte exists, and otherwise served from memory like any other body.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.utils import cached_property

__all__ = ["BoundedRequest"]


class BoundedRequest(Request):
    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if (
            limit is None
            or self.content_length is not None
            or not self.environ.get("wsgi.input_terminated")
            or self.shallow
        ):
            return super().stream  # Werkzeug's own checks hold for these
        source = self.environ["wsgi.input"]
        pieces: list[bytes] = []
        size = 0
        while size <= limit:
            try:
                piece = source.read(limit + 1 - size)
            except (OSError, ValueError):  # the client went away mid-body, or bad chunking
                raise ClientDisconnected() from None
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
        if size > limit:
            raise RequestEntityTooLarge()
        return io.BytesIO(b"".join(pieces))
