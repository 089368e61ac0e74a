"""Server-Sent Events written as bytes: each event's JSON encoded once, straight into its frame.

Litestar's ``ServerSentEvent`` takes ``data`` as text, so a payload went JSON → bytes → str → bytes,
each field of each event went through a regular expression, and every response first took a trip
through a worker thread for a preamble chatstore never sends. Here an event is one ``bytes``
formatting of what msgspec encoded. msgspec writes JSON on one line (a line break inside a string is
escaped as ``\\n``), so ``data:`` is always a single line, as the SSE format needs.

``EventStream`` is still Litestar's ``ServerSentEvent`` (its headers, its media type, how handlers
and the OpenAPI schema see it); only the framing of each event is done here, once.
"""

from collections.abc import AsyncIterable

from litestar.background_tasks import BackgroundTask
from litestar.response import ServerSentEvent

__all__ = ["EventStream", "data_only_event", "sse_event"]


def sse_event(event_id: int, event: bytes, data: bytes) -> bytes:
    """One event: ``id:``, ``event:`` and one line of ``data:`` (a JSON document, never a line break)."""
    return b"id: %d\r\nevent: %b\r\ndata: %b\r\n\r\n" % (event_id, event, data)


def data_only_event(data: bytes) -> bytes:
    """An event of ``data:`` alone (one line), for protocols that name no events."""
    return b"data: %b\r\n\r\n" % data


class EventStream(ServerSentEvent):
    """Litestar's ``ServerSentEvent`` (``text/event-stream``, with the headers that keep proxies from
    buffering it) over events that are framed already: they are sent as they are."""

    def __init__(
        self,
        events: AsyncIterable[bytes],
        *,
        background: BackgroundTask | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(events, background=background, headers=headers)
        # In place of ServerSentEvent's own iterator, which would frame each item again, through a
        # worker thread for its (empty) preamble.
        self.iterator = events
