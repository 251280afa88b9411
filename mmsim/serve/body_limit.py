"""``max_body_bytes``: a request body is refused with 413 as soon as it is over the limit.

A declared ``Content-Length`` over the limit is refused before any byte is read. A body
without one (chunked transfer encoding) is counted as it arrives: the read that passes
the limit raises a 413 to the route reading it, so no route ever holds more than the
limit plus one chunk.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    def _message(self, size: str) -> str:
        return f"request body of {size} bytes is over the limit of {self.limit} (max_body_bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            message = self._message(length.decode("latin-1"))
            await JSONResponse({"error": message, "status": 413}, 413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # answered by the app's HTTPException handler
                    raise HTTPException(413, self._message(f"more than {self.limit}"))
            return message

        await self.app(scope, counted, send)
