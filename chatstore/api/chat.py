"""``/api/chat``: append the user's messages and stream the assistant's reply as Server-Sent Events."""

from collections.abc import AsyncIterator

import msgspec
from litestar import Controller, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from chatstore.api.limits import check_chat_request
from chatstore.api.openapi import error_response
from chatstore.core.db import Database
from chatstore.core.settings import Settings
from chatstore.schemas import ChatRequest
from chatstore.services.chat import ReplyStream, StreamEvent, start_turn
from chatstore.services.responders import Responder

__all__ = ["ChatController"]

STREAM_DESCRIPTION = """A `text/event-stream` of Server-Sent Events. Each event has an `id:` that increases
within the stream, an `event:` name and one line of JSON `data:`.

| event | data |
| --- | --- |
| `start` | `{"session_id", "message_ids", "assistant_message_id"}`: the request's messages and the reply's row (status `in_progress`) are committed |
| `delta` | `{"content"}`: the next piece of the reply |
| `done` | the stored assistant message (`MessageRead`); its content is all deltas joined |
| `error` | `{"detail"}`: the reply failed; what was generated is stored with status `error` |

If the client disconnects, the reply stops and what was generated is stored with status `incomplete`."""


async def _to_server_sent_events(events: AsyncIterator[StreamEvent]) -> AsyncIterator[ServerSentEventMessage]:
    async for event in events:
        yield ServerSentEventMessage(id=event.id, event=event.event, data=msgspec.json.encode(event.data).decode())


class ChatController(Controller):
    path = "/api/chat"
    tags = ["chat"]

    @post(
        status_code=200,  # @post means 201 unless told otherwise
        operation_id="chat",
        summary="Add messages to a session and stream the reply",
        raises=[NotFoundException],
        responses={
            200: ResponseSpec(
                data_container=str,
                media_type="text/event-stream",
                description=STREAM_DESCRIPTION,
                generate_examples=False,
            ),
            413: error_response("The body is larger than the configured limit."),
        },
    )
    async def chat(
        self,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        responder: NamedDependency[Responder],
        worker_id: NamedDependency[str],
        data: JSONBody[ChatRequest],
    ) -> ServerSentEvent:
        check_chat_request(data, settings)
        turn = await start_turn(db, data.session_id, data.messages, worker_id)
        stream = ReplyStream(db, responder, turn, data.messages)
        # The background task runs after the body, also when the client went away: it stores the
        # reply if the stream was cut short before it could.
        return ServerSentEvent(_to_server_sent_events(stream.events()), background=BackgroundTask(stream.close))
