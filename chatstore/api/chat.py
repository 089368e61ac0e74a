"""Replies as Server-Sent Events: chat, regenerate, re-attach to a reply, and stop one."""

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, HeaderParameter, JSONBody, QueryParameter

from chatstore.api.access_log import note_session_id
from chatstore.api.dependencies import RequestContext
from chatstore.api.event_stream import EventStream, sse_event
from chatstore.api.limits import INTEGER, check_chat_request
from chatstore.api.openapi import OptionalBodyOperation, error_response
from chatstore.schemas import ChatRequest, ErrorEventName, MessageRead, RegenerateRequest, ReplyEvent
from chatstore.services.errors import InvalidInput
from chatstore.services.replies import Generation, Replies, StreamEvent, start_regeneration, start_turn

__all__ = ["ChatController"]

STREAM_DESCRIPTION = """A `text/event-stream` of Server-Sent Events. Each event has an `id:`, an `event:`
name and one line of JSON `data:`.

| event | schema | data |
| --- | --- | --- |
| `start` | `StreamStart` | `{"session_id", "message_ids", "assistant_message_id"}`: all committed |
| `delta` | `StreamDelta` | `{"content"}`: the next piece of the reply (pieces a slow client missed: joined) |
| `done` | `StreamDone` | the stored reply (`MessageRead`), its content all deltas joined |
| `error` | `StreamError` | `{"detail"}`: the reply failed; what was generated is stored, status `error` |
| `failure` | `StreamFailure` | the same as `error`, when `error_event` is `failure` |

The component `ReplyEvent` is one event with its `data` line decoded from JSON, discriminated by its
`event` name: a client parses each event and gets its type by its name. The body's schema gives each
event as sent (its `data` a string of JSON, with that schema as `contentSchema`), or the body as text.

**`error` is also the name of EventSource's own event for a lost connection**, so its listeners get
both. With `error_event` set to `failure` (in the body of a POST, the query of a GET) the event for a
failed reply is named `failure` instead; its data and id are the same.

An event's `id` is the reply's length in characters once the event is taken into account (`start`
is 0; `done` and `error` are one past the final length): a position to re-attach from with
`GET /api/messages/{id}/stream`. If the client disconnects, the reply stops and what was generated
is stored with status `incomplete`, unless the request set `keep_generating`. If the database fails
the reply's final write, the stream ends with `error` saying so: the reply is kept by the server and
stored when the database is back."""

NOTHING_MORE = ResponseSpec(
    data_container=None,
    description="Nothing more to send: the reply has ended and `Last-Event-ID` is its last event's id. "
    "Per the SSE specification, EventSource stops reconnecting on a 204.",
    generate_examples=False,
)

SSE_RESPONSE = ResponseSpec(
    # One event of the stream, decoded; chatstore.api.openapi adds the events as sent.
    data_container=ReplyEvent,
    media_type="text/event-stream",
    description=STREAM_DESCRIPTION,
    generate_examples=False,
)
TOO_LARGE = error_response("The body is larger than the configured limit.")


async def _to_server_sent_events(
    events: AsyncIterator[StreamEvent], error_event: ErrorEventName
) -> AsyncIterator[bytes]:
    names = {"start": b"start", "delta": b"delta", "done": b"done", "error": error_event.encode()}
    encode = msgspec.json.encode
    async for event in events:
        yield sse_event(event.id, names[event.event], encode(event.data))


def _stream(events: AsyncIterator[StreamEvent] | None, error_event: ErrorEventName) -> Response[Any]:
    if events is None:
        return Response(None, status_code=204)
    return EventStream(_to_server_sent_events(events, error_event))


def _stream_new_reply(replies: Replies, generation: Generation, error_event: ErrorEventName) -> EventStream:
    # The background task runs after the body, also when the client went away: a reply that is not
    # kept going is stopped and stored before the request is over.
    return EventStream(
        _to_server_sent_events(replies.stream_to_requester(generation), error_event),
        background=BackgroundTask(replies.wait_until_stored, generation),
    )


LAST_EVENT_ID = HeaderParameter(name="Last-Event-ID", description="The `id` of the last event received.")


class ChatController(Controller):
    path = "/"
    tags = ["chat"]

    @post(
        "/chat",
        status_code=200,  # @post means 201 unless told otherwise
        operation_id="chat",
        summary="Add messages to a session and stream the reply",
        description="The messages chain below `parent_id` (absent: the end of the current branch; null: "
        "a new first message; 400 if it is not a message of the session), the reply below the last of "
        "them, and the reply becomes the session's `current_message_id` when the turn starts. The "
        "responder sees the reply's branch only. "
        "Messages may carry a client-chosen `id`, unique within the session: a request sent "
        "again with the same ids stores nothing twice and streams the reply of its first attempt (it may "
        "still be streaming): from the start, or, if the retry carries `Last-Event-ID` (as "
        "fetch-event-source's retries do), the events after that one, and 204 if that was the last. "
        "A request with `Last-Event-ID` whose earlier attempt is not stored (its messages lack their "
        "client ids, or no message with them is stored) gets 400 and stores nothing.",
        raises=[NotFoundException],
        responses={200: SSE_RESPONSE, 204: NOTHING_MORE, 413: TOO_LARGE},
    )
    async def chat(
        self,
        request: Request[Any, Any, Any],
        ctx: NamedDependency[RequestContext],
        data: JSONBody[ChatRequest],
        last_event_id: Annotated[str | None, LAST_EVENT_ID] = None,
    ) -> Response[Any]:
        note_session_id(request, data.session_id)  # for the access log: the body is read once, here
        check_chat_request(data, ctx.settings)
        position = _position(last_event_id, None)
        turn = await start_turn(
            ctx.db,
            data.session_id,
            data.messages,
            ctx.replies.worker_id,
            scope=ctx.scope,
            parent_id=data.parent_id,
            resuming=position is not None,
        )
        if turn.is_retry:
            return _stream(
                await ctx.replies.follow(turn.reply_id, position, turn.started, scope=ctx.scope),
                data.error_event,
            )
        generation = ctx.replies.begin(turn, keep_generating=data.keep_generating)
        return _stream_new_reply(ctx.replies, generation, data.error_event)

    @post(
        "/sessions/{session_id:uuid}/regenerate",
        status_code=200,
        operation_id="regenerateReply",
        summary="Stream a new reply beside an earlier one",
        description="The new reply is a sibling of `message_id` (a reply of the session; by default the "
        "reply to the last user message of the current branch) and answers the same history: the branch "
        "down to its parent. It becomes the session's `current_message_id`; the earlier replies stay "
        "stored, reachable by switching branches. The stream is the same as `POST /api/chat`'s, with an "
        "empty `message_ids` in `start`. 400 if `message_id` is not a reply of the session; 409 if the "
        "current branch has no user message.",
        operation_class=OptionalBodyOperation,
        raises=[NotFoundException],
        responses={
            200: SSE_RESPONSE,
            409: error_response("The current branch has no user message to reply to."),
            413: TOO_LARGE,
        },
    )
    async def regenerate(
        self,
        ctx: NamedDependency[RequestContext],
        session_id: FromPath[UUID],
        data: Annotated[
            RegenerateRequest | None,
            Body(description="Optional: `message_id`, `keep_generating`, `error_event`."),
        ] = None,
    ) -> EventStream:
        options = data if data is not None else RegenerateRequest()
        turn = await start_regeneration(
            ctx.db, str(session_id), ctx.replies.worker_id, scope=ctx.scope, message_id=options.message_id
        )
        generation = ctx.replies.begin(turn, keep_generating=options.keep_generating)
        return _stream_new_reply(ctx.replies, generation, options.error_event)

    @get(
        "/messages/{message_id:uuid}/stream",
        operation_id="followReply",
        summary="Re-attach to a reply's stream",
        description="The events of the reply after the position given by the standard `Last-Event-ID` "
        "header (or the `last_event_id` query parameter): the rest of the deltas, then `done` or `error`, "
        "nothing missing and nothing twice. Without a position the stream starts with `start`. Works "
        "whichever process generates the reply, and for a finished reply too; 204 if the reply has "
        "ended and the position is its last event, so that EventSource stops reconnecting.",
        raises=[NotFoundException],
        responses={200: SSE_RESPONSE, 204: NOTHING_MORE},
    )
    async def follow(
        self,
        ctx: NamedDependency[RequestContext],
        message_id: FromPath[UUID],
        last_event_id_header: Annotated[str | None, LAST_EVENT_ID] = None,
        last_event_id: Annotated[
            int | None,
            QueryParameter(
                name="last_event_id", description="The same, for clients that cannot set headers."
            ),
        ] = None,
        error_event: Annotated[
            ErrorEventName,
            QueryParameter(
                name="error_event",
                description="The name of the event for a failed reply: `error`, or `failure`, which "
                "EventSource's listeners cannot mistake for its own `error` event.",
            ),
        ] = "error",
    ) -> Response[Any]:
        position = _position(last_event_id_header, last_event_id)
        # An unknown reply is a plain 404; None means there is nothing more to send.
        return _stream(await ctx.replies.follow(str(message_id), position, scope=ctx.scope), error_event)

    @post(
        "/messages/{message_id:uuid}/stop",
        status_code=200,
        operation_id="stopReply",
        summary="Stop a streaming reply",
        description="Ends the reply wherever it is being generated, within about a second, and returns it "
        "as stored: status `incomplete`, `finish_reason` `stopped`. A reply that has already ended is "
        "returned as it is.",
        raises=[NotFoundException],
    )
    async def stop(
        self,
        ctx: NamedDependency[RequestContext],
        message_id: FromPath[UUID],
    ) -> MessageRead:
        wait_s = max(2.0, 4 * ctx.settings.progress_interval_ms / 1000)
        return await ctx.replies.stop(str(message_id), wait_s=wait_s, scope=ctx.scope)


def _position(header: str | None, query: int | None) -> int | None:
    if header is not None:
        not_an_id = InvalidInput("Last-Event-ID", "must be the id of an event", source="header")
        # Digits as the stream's ids are written: int() would also take "+5", " 5" and "5_0".
        if not INTEGER.fullmatch(header):
            raise not_an_id
        try:
            position = int(header)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise not_an_id from None
        if position < 0:
            raise InvalidInput("Last-Event-ID", "must not be negative", source="header")
        return position
    if query is not None and query < 0:
        raise InvalidInput("last_event_id", "must not be negative", source="query")
    return query
