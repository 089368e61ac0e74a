"""Limits on every request, before the app sees it: the size of its headers, and how many requests one
process has in progress.

They are ASGI middleware, not server options, because uvicorn's own counterparts do something else:
its header limit (h11's) holds only for headers that arrive in pieces, and its ``limit_concurrency``
counts open sockets, so idle or slow connections made everyone else's requests 503.
"""

from typing import Any

import msgspec
from litestar.exceptions import ClientException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_HEADER_BYTES", "RETRY_AFTER_S", "RequestLimits"]

# The largest request line plus headers, as sent (uvicorn's h11 parser is also told, for headers that
# are still arriving when they pass it; its httptools parser has no such limit).
MAX_HEADER_BYTES = 16 * 1024
# What a 503 asks the client to wait: requests in progress end within seconds, streams aside.
RETRY_AFTER_S = 1


class RequestLimits:
    """431 for a request whose line and headers pass ``MAX_HEADER_BYTES``; 503 (``Retry-After``) for
    one that would take the process past ``max_requests`` requests in progress. A request is in
    progress from its headers until its response ends (a chat stream, until the stream ends); a
    connection waiting for its next request, or for its headers, is not one.

    A body the client stops sending (it went away, or the server closed a connection too slow to
    send it) ends its request with a 400 instead of Litestar's 500 "client disconnected prematurely"
    and its traceback."""

    def __init__(self, app: ASGIApp, *, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = header_bytes(scope)
        if size > MAX_HEADER_BYTES:
            detail = f"the request line and headers are {size} bytes, more than {MAX_HEADER_BYTES}"
            await _refuse(send, 431, detail)
            return
        if self.in_progress >= self.max_requests:
            detail = f"this process has {self.in_progress} requests in progress, its limit; try again"
            await _refuse(send, 503, detail, [(b"retry-after", str(RETRY_AFTER_S).encode())])
            return
        self.in_progress += 1
        try:
            await self.app(scope, _body_end_noted(receive), send)
        finally:
            self.in_progress -= 1


def header_bytes(scope: Scope) -> int:
    """The request line and headers as they were sent, give or take the HTTP version."""
    query = scope["query_string"]
    # Some servers (and test clients) leave the query in raw_path; a path never holds a raw "?".
    path = (scope.get("raw_path") or scope["path"].encode()).partition(b"?")[0]
    target = len(path) + (len(query) + 1 if query else 0)
    line = len(scope["method"]) + 1 + target + len(" HTTP/1.1\r\n")
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"]) + 2


class _BodyCutOff(ClientException):
    def __init__(self) -> None:
        super().__init__(detail="the connection closed before the whole body arrived")


def _body_end_noted(receive: Receive) -> Receive:
    body_ended = False

    async def receive_body() -> Any:
        nonlocal body_ended
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body_ended = True
        elif message["type"] == "http.disconnect" and not body_ended:
            raise _BodyCutOff
        return message

    return receive_body


async def _refuse(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = msgspec.json.encode({"status_code": status, "detail": detail})
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # A refused client should not keep its socket either.
            (b"connection", b"close"),
            *(headers or []),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
