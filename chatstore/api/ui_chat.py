"""The AI SDK's chat routes: what ``DefaultChatTransport({api: "/api/ui/chat"})`` calls.

The chat's ``id`` is a session id. The routes call the services ``POST /api/chat``, the regenerate
and the stream endpoints call, so a reply has one life whichever protocol streams it; only the
framing differs (``ui_message_stream``).
"""

import hashlib
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter
from msgspec import UNSET, UnsetType

from chatstore.api.access_log import note_session_id
from chatstore.api.dependencies import RequestContext
from chatstore.api.limits import check_text
from chatstore.api.openapi import error_response
from chatstore.api.ui_message_stream import ReplyFacts, to_ui_message_stream, to_ui_messages
from chatstore.core.db import Database
from chatstore.core.settings import Settings
from chatstore.schemas import MAX_CLIENT_ID_LENGTH, MessageIn, UIChatRequest, UIMessage
from chatstore.services.errors import InvalidInput, SessionNotFound
from chatstore.services.owners import OwnerScope
from chatstore.services.replies import Generation, Replies, Turn, start_regeneration, start_turn
from chatstore.services.sessions import create_session_if_missing, get_session_detail

__all__ = ["UIChatController"]

UI_STREAM_DESCRIPTION = """The AI SDK's UI message stream (`ai` 7, with the header
`x-vercel-ai-ui-message-stream: v1`): Server-Sent Events whose `data:` lines are `UIMessageChunk`s
as JSON, then `data: [DONE]`.

| chatstore event | chunks |
| --- | --- |
| `start` | `start` (`messageId`: the reply's id, `messageMetadata`), `start-step` |
| `delta` | `text-start` (before the first), `text-delta` |
| `done` | `text-end`, `finish-step`, `finish` (`finishReason`, `messageMetadata` as stored) |
| `error` | `text-end`, `finish-step`, `error` (`errorText`) |

`finishReason` is `stop`, or `interrupted` for a reply that ended early (stopped, its client gone,
its server stopped). `messageMetadata` is `{session_id, seq, status, finish_reason, created_at,
error}`. If the client goes away (the AI SDK's `stop()` aborts the request), the reply stops and is
stored `incomplete`, unless the request set `keep_generating`."""

UI_STREAM = ResponseSpec(
    data_container=str,
    media_type="text/event-stream",
    description=UI_STREAM_DESCRIPTION,
    generate_examples=False,
)
# As for every id in a path: one that is not a UUID names nothing.
NOT_A_CHAT_ID = error_response("The chat id in the path is not a UUID.")
CHAT_ID = PathParameter(description="The chat: a session id (a UUID).")

NOT_THE_LAST = "an edit names the last message of the body, the edited one"


def _session_id(chat_id: str) -> str:
    """The session a chat id (a UUID, by the body's schema) names, in the form chatstore writes ids."""
    return str(UUID(chat_id))


def _new_user_message(data: UIChatRequest, settings: Settings) -> MessageIn:
    """The newest message of a submit, which the request adds; the earlier ones are stored."""
    index = len(data.messages) - 1
    message = data.messages[index]
    if message.role != "user":
        raise InvalidInput(f"messages[{index}].role", "the last message must be the user's new message")
    texts = []
    for number, part in enumerate(message.parts):
        field = f"messages[{index}].parts[{number}]"
        if part.get("type") != "text":
            raise InvalidInput(f"{field}.type", "only text parts are stored")
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidInput(f"{field}.text", "must be a string")
        texts.append(text)
    content = "".join(texts)
    if not content:
        raise InvalidInput(f"messages[{index}].parts", "must hold some text")
    check_text(f"messages[{index}].parts", content, settings.max_content_length)
    if not 1 <= len(message.id) <= MAX_CLIENT_ID_LENGTH:
        raise InvalidInput(f"messages[{index}].id", f"must be 1 to {MAX_CLIENT_ID_LENGTH} characters long")
    check_text(f"messages[{index}].id", message.id)
    return MessageIn(role="user", content=content, id=message.id)


def _edit_client_id(edited_id: str, content: str) -> str:
    """The client id of an edit: the same for the same edit, so that a retried one stores nothing twice
    (the edited message's own id is taken by the message it replaces)."""
    digest = hashlib.sha256(f"{edited_id}\n{content}".encode()).hexdigest()
    return f"edit:{digest[:32]}"


async def _start_turn(
    db: Database,
    replies: Replies,
    session_id: str,
    message: MessageIn,
    parent_id: str | UnsetType | None,
    count: int,
    scope: OwnerScope,
) -> Turn:
    try:
        return await start_turn(
            db, session_id, [message], replies.worker_id, parent_id=parent_id, scope=scope
        )
    except InvalidInput as invalid:
        if invalid.field != "parent_id":
            raise
        # The parent of an edit is the message before it in the body.
        raise InvalidInput(f"messages[{count - 2}].id", invalid.message) from None


def _facts(turn: Turn) -> ReplyFacts:
    return ReplyFacts(turn.session_id, turn.reply_seq, turn.reply_created_at)


def _stream_new_reply(replies: Replies, generation: Generation) -> Response[Any]:
    # As for POST /api/chat: after the body, also when the client went away, a reply that is not
    # kept going is stopped and stored before the request is over.
    return to_ui_message_stream(
        replies.stream_to_requester(generation),
        _facts(generation.turn),
        background=BackgroundTask(replies.wait_until_stored, generation),
    )


class UIChatController(Controller):
    path = "/ui/chat"
    tags = ["ai-sdk"]

    @post(
        "",
        status_code=200,  # @post means 201 unless told otherwise
        operation_id="uiChat",
        summary="The AI SDK's chat request: store the new message and stream the reply",
        description="The body `DefaultChatTransport` sends. `submit-message`: the last message is the new "
        "user message (its text parts; its `id` is kept as the client id, so a request sent again stores "
        "nothing twice and streams the first attempt's reply from its start), following the end of the "
        "chat's current branch; a chat id that names no session creates it. `regenerate-message`: a new "
        "reply beside `messageId` (by default, to the last user message of the current branch); 404 for an "
        "unknown chat. A submit with `messageId` (the SDK's edit; it names the last message) stores the new "
        "text as a new branch beside the edited message, below the message before it in the body. 400 "
        "naming `id` if it is not a UUID, and `messageId` if it is not a reply of the chat (regenerate) or "
        "not the last message (edit).",
        responses={
            200: UI_STREAM,
            404: error_response(
                "`regenerate-message`: no session of the caller has the chat's `id`; `submit-message`: "
                "the `id` is another user's session, which this caller cannot see."
            ),
            409: error_response("`regenerate-message`: the chat's current branch has no user message."),
            413: error_response("The body is larger than the configured limit."),
        },
    )
    async def chat(
        self,
        request: Request[Any, Any, Any],
        ctx: NamedDependency[RequestContext],
        data: JSONBody[UIChatRequest],
    ) -> Response[Any]:
        session_id = _session_id(data.id)
        note_session_id(request, session_id)  # for the access log: the body is read once, here
        if data.trigger == "regenerate-message":
            turn = await self._regenerate(ctx.db, ctx.replies, session_id, data, ctx.scope)
        else:
            message = _new_user_message(data, ctx.settings)
            turn = await self._submit(ctx.db, ctx.replies, session_id, data, message, ctx.scope)
            if turn.is_retry:
                events = await ctx.replies.follow(turn.reply_id, None, turn.started, scope=ctx.scope)
                assert events is not None  # without a position there is always a stream
                return to_ui_message_stream(events, _facts(turn))
        generation = ctx.replies.begin(turn, keep_generating=data.keep_generating)
        return _stream_new_reply(ctx.replies, generation)

    @staticmethod
    async def _submit(
        db: Database,
        replies: Replies,
        session_id: str,
        data: UIChatRequest,
        message: MessageIn,
        scope: OwnerScope,
    ) -> Turn:
        parent_id: str | UnsetType | None = UNSET  # the end of the current branch
        if data.message_id is not UNSET:
            # The AI SDK's edit, sendMessage({text, messageId}): a new branch beside the edited message,
            # below the message before it as the client shows the chat.
            if data.message_id != message.id:
                raise InvalidInput("messageId", NOT_THE_LAST)
            parent_id = data.messages[-2].id if len(data.messages) > 1 else None
            message = MessageIn(
                role="user", content=message.content, id=_edit_client_id(message.id, message.content)
            )
        count = len(data.messages)
        try:
            return await _start_turn(db, replies, session_id, message, parent_id, count, scope)
        except SessionNotFound:
            # A chat's first message: the AI SDK's clients make the chat's id themselves. The new
            # session is the caller's; an id already taken by another user's session stays unknown
            # to this one (404).
            await create_session_if_missing(db, session_id, owner=scope.owner)
            return await _start_turn(db, replies, session_id, message, parent_id, count, scope)

    @staticmethod
    async def _regenerate(
        db: Database, replies: Replies, session_id: str, data: UIChatRequest, scope: OwnerScope
    ) -> Turn:
        try:
            return await start_regeneration(
                db, session_id, replies.worker_id, scope=scope, message_id=data.message_id
            )
        except InvalidInput as invalid:
            if invalid.field != "message_id":
                raise
            raise InvalidInput("messageId", invalid.message) from None

    @get(
        "/{chat_id:uuid}/stream",
        operation_id="uiChatStream",
        summary="Resume the chat's streaming reply (the AI SDK's `resume: true`)",
        description="The reply the chat is streaming (the end of its current branch, `in_progress`), from "
        "its `start`, whichever process generates it: the AI SDK's transport replays it. 204 when nothing "
        "is streaming, also for a chat id that names no session yet.",
        responses={
            200: UI_STREAM,
            204: ResponseSpec(None, description="Nothing is streaming."),
            404: NOT_A_CHAT_ID,
        },
    )
    async def resume(
        self,
        ctx: NamedDependency[RequestContext],
        chat_id: Annotated[UUID, CHAT_ID],
    ) -> Response[Any]:
        session_id = str(chat_id)
        try:
            branch = (await get_session_detail(ctx.db, session_id, scope=ctx.scope)).messages
        except SessionNotFound:
            return Response(None, status_code=204)
        reply = branch[-1] if branch else None
        if reply is None or reply.role != "assistant" or reply.status != "in_progress":
            return Response(None, status_code=204)
        events = await ctx.replies.follow(reply.id, None, scope=ctx.scope)
        assert events is not None  # without a position there is always a stream
        return to_ui_message_stream(events, ReplyFacts(reply.session_id, reply.seq, reply.created_at))

    @get(
        "/{chat_id:uuid}/messages",
        operation_id="uiChatMessages",
        summary="The chat as the AI SDK's `UIMessage`s, for `useChat`'s initial `messages`",
        description="The chat's current branch, root first: text parts, and `metadata` with `seq`, "
        "`status`, `finish_reason`, `created_at` and `session_id`. A user message's `id` is the client id "
        "it was sent with. `[]` for a chat id that names no session yet.",
        responses={404: NOT_A_CHAT_ID},
    )
    async def messages(
        self,
        ctx: NamedDependency[RequestContext],
        chat_id: Annotated[UUID, CHAT_ID],
    ) -> list[UIMessage]:
        session_id = str(chat_id)
        try:
            branch = (await get_session_detail(ctx.db, session_id, scope=ctx.scope)).messages
        except SessionNotFound:
            return []
        return to_ui_messages(branch)
