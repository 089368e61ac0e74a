"""chatstore's replies in the AI SDK's UI message stream protocol (``ai`` 7, ``UIMessageChunk``).

A reply's events (``services.replies.events``) become chunks, each one SSE ``data:`` line of JSON,
then ``data: [DONE]``:

| event | chunks |
| --- | --- |
| `start` | `start` (`messageId`: the reply's id; `messageMetadata`), `start-step` |
| `delta` | `text-start` before the first, then `text-delta` |
| `done` | `text-end`, `finish-step`, `finish` (`finishReason`; `messageMetadata` as stored) |
| `error` | `text-end`, `finish-step`, `error` (`errorText`) |

Stored messages become ``UIMessage``s of the same shape as the ones the AI SDK builds from the
stream: a reply's parts are a ``step-start`` and its text.
"""

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Response
from litestar.background_tasks import BackgroundTask

from chatstore.api.event_stream import EventStream, data_only_event
from chatstore.schemas import (
    ErrorEvent,
    MessageRead,
    ReplyDelta,
    ReplyStarted,
    UIMessage,
    UIMessageMetadata,
    UIStepStartPart,
    UITextPart,
)
from chatstore.services.replies import StreamEvent
from chatstore.vocabulary import FinishReason

__all__ = ["UI_MESSAGE_STREAM_HEADERS", "ReplyFacts", "to_ui_message_stream", "to_ui_messages"]

# What the AI SDK's own servers send (``UI_MESSAGE_STREAM_HEADERS``); the transport reads the body
# whatever the headers, the version header names the protocol for proxies and tools.
UI_MESSAGE_STREAM_HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}

# chatstore's finish reasons in the AI SDK's words: a reply that ended early keeps its text and is
# ``interrupted`` (no error); ``metadata.finish_reason`` keeps chatstore's own reason.
UI_FINISH_REASONS: dict[FinishReason, str] = {
    "completed": "stop",
    "stopped": "interrupted",
    "client_disconnected": "interrupted",
    "server_stopped": "interrupted",
    "error": "error",
}


class ReplyFacts(msgspec.Struct, frozen=True):
    """What the metadata of a streamed reply says before its end: known when the reply is stored."""

    session_id: str
    seq: int
    created_at: datetime


def _metadata(reply: MessageRead) -> UIMessageMetadata:
    return UIMessageMetadata(
        session_id=reply.session_id,
        seq=reply.seq,
        status=reply.status,
        finish_reason=reply.finish_reason,
        created_at=reply.created_at,
        error=reply.error,
    )


async def _chunks(events: AsyncIterator[StreamEvent], facts: ReplyFacts) -> AsyncIterator[dict[str, Any]]:
    text_id: str | None = None  # the text part, once the first delta opened it
    async for event in events:
        data = event.data
        if isinstance(data, ReplyStarted):
            metadata = UIMessageMetadata(
                session_id=facts.session_id,
                seq=facts.seq,
                status="in_progress",
                finish_reason=None,
                created_at=facts.created_at,
            )
            yield {"type": "start", "messageId": data.assistant_message_id, "messageMetadata": metadata}
            yield {"type": "start-step"}
        elif isinstance(data, ReplyDelta):
            if text_id is None:
                text_id = f"text-{facts.seq}"
                yield {"type": "text-start", "id": text_id}
            yield {"type": "text-delta", "id": text_id, "delta": data.content}
        else:
            if text_id is not None:
                yield {"type": "text-end", "id": text_id}
            yield {"type": "finish-step"}
            if isinstance(data, MessageRead):
                finish_reason = UI_FINISH_REASONS[data.finish_reason or "completed"]
                yield {"type": "finish", "finishReason": finish_reason, "messageMetadata": _metadata(data)}
            elif isinstance(data, ErrorEvent):
                yield {"type": "error", "errorText": data.detail}
            return


async def _server_sent_events(events: AsyncIterator[StreamEvent], facts: ReplyFacts) -> AsyncIterator[bytes]:
    async for chunk in _chunks(events, facts):
        yield data_only_event(msgspec.json.encode(chunk))
    yield data_only_event(b"[DONE]")


def to_ui_message_stream(
    events: AsyncIterator[StreamEvent], facts: ReplyFacts, *, background: BackgroundTask | None = None
) -> Response[Any]:
    """The response streaming ``events`` as UI message chunks; ``background`` runs after its body."""
    return EventStream(
        _server_sent_events(events, facts), headers=UI_MESSAGE_STREAM_HEADERS, background=background
    )


def _text_state(message: MessageRead) -> Literal["streaming", "done"]:
    return "streaming" if message.status == "in_progress" else "done"


def to_ui_messages(messages: Sequence[MessageRead]) -> list[UIMessage]:
    """A branch of stored messages as the AI SDK's ``UIMessage``s, root first."""
    result = []
    for message in messages:
        parts: list[UITextPart | UIStepStartPart]
        if message.role == "assistant":
            parts = [UIStepStartPart()]
            if message.content:
                parts.append(UITextPart(text=message.content, state=_text_state(message)))
        else:
            parts = [UITextPart(text=message.content)]
        ui_id = message.client_id if message.role == "user" and message.client_id else message.id
        result.append(UIMessage(id=ui_id, role=message.role, parts=parts, metadata=_metadata(message)))
    return result
