"""One structured line per request on the ``chatstore.access`` logger, at INFO.

The line is JSON: ``{"method", "path", "status", "duration_ms", "session_id"?, "client"?}``; the same
fields are on the record as ``record.access``. It never holds a body, a query string (search words are
message text) or a header (the API key is one).
"""

import logging
import time
from typing import Any
from uuid import UUID

import msgspec
from litestar.connection import ASGIConnection
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog", "note_session_id"]

logger = logging.getLogger("chatstore.access")

_SESSION_ID = "chatstore.session_id"
# A session id is a UUID; anything longer came from a client and is cut before it reaches the log.
_MAX_SESSION_ID_LENGTH = 64


def note_session_id(connection: ASGIConnection[Any, Any, Any, Any], session_id: str) -> None:
    """Name the session a request is about when it is not in the path (the chat body's ``session_id``)."""
    connection.scope["state"][_SESSION_ID] = session_id


class AccessLog:
    """ASGI middleware around the whole app, so requests that match no route (404, 405) and CORS
    preflights are logged too; Litestar's own ``middleware=`` runs only once a route has matched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before it responds

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # For a stream this is when it ended, however it ended.
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            fields = _fields(scope, status, duration_ms)
            logger.info("%s", msgspec.json.encode(fields).decode(), extra={"access": fields})


def _fields(scope: Scope, status: int, duration_ms: float) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": duration_ms,
    }
    session_id = scope.get("path_params", {}).get("session_id") or scope.get("state", {}).get(_SESSION_ID)
    if isinstance(session_id, UUID):  # a typed path parameter
        session_id = str(session_id)
    if isinstance(session_id, str):
        fields["session_id"] = session_id[:_MAX_SESSION_ID_LENGTH]
    client = scope.get("client")
    if client:
        fields["client"] = client[0]
    return fields
