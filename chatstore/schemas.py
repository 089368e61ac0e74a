"""Wire shapes: the msgspec structs that requests are decoded into and responses are encoded from."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from chatstore.vocabulary import FinishReason, Role, Status

__all__ = [
    "BranchMessage",
    "ChatRequest",
    "ErrorEvent",
    "ErrorEventName",
    "FinishReason",
    "ForkRequest",
    "ForkedFrom",
    "MessageIn",
    "MessageRead",
    "RegenerateRequest",
    "ReplyDelta",
    "ReplyEvent",
    "ReplyStarted",
    "Role",
    "SearchHit",
    "SearchPage",
    "SessionCreate",
    "SessionDetail",
    "SessionExport",
    "SessionRead",
    "SessionUpdate",
    "Status",
    "StreamDelta",
    "StreamDone",
    "StreamError",
    "StreamFailure",
    "StreamStart",
    "UIChatRequest",
    "UIMessage",
    "UIMessageIn",
    "UIMessageMetadata",
    "UIStepStartPart",
    "UITextPart",
]

NonEmptyText = Annotated[str, msgspec.Meta(min_length=1)]


class SessionCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str | None = None
    meta: dict[str, Any] = msgspec.field(default_factory=dict, name="metadata")


class SessionUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A partial update: fields left out stay as they are; ``metadata`` is a JSON Merge Patch."""

    name: str | UnsetType | None = UNSET
    meta: dict[str, Any] | UnsetType = msgspec.field(default=UNSET, name="metadata")
    current_message_id: Annotated[
        str | UnsetType,
        msgspec.Meta(
            description="Switch branches: a message of the session. When it has messages below it, the "
            "branch goes on down to the newest of them."
        ),
    ] = UNSET


class ForkedFrom(msgspec.Struct, kw_only=True):
    """Where a forked session's messages were copied from."""

    session_id: str
    message_id: str


class SessionRead(msgspec.Struct, kw_only=True):
    id: str
    name: str | None
    meta: dict[str, Any] = msgspec.field(name="metadata")
    created_at: datetime
    updated_at: datetime
    message_count: int = 0
    last_message_at: datetime | None = None
    # The start of the session's first user message (what to show for a session without a name).
    preview: str | None = None
    current_message_id: Annotated[
        str | None,
        msgspec.Meta(
            description="The last message of the branch the session shows (null before any message)."
        ),
    ] = None
    forked_from: Annotated[
        ForkedFrom | None,
        msgspec.Meta(description="For a fork: the session and the message its branch was copied from."),
    ] = None
    owner: Annotated[
        str | None,
        msgspec.Meta(
            description="The user the session belongs to: set from the caller when it is created, "
            "imported or forked, and never changed by a user (null in open mode and for an operator's "
            "sessions)."
        ),
    ] = None


MAX_CLIENT_ID_LENGTH = 200


class MessageIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    role: Role
    content: NonEmptyText
    # Client-chosen, unique within the session: a request retried with the same ids stores nothing twice.
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CLIENT_ID_LENGTH)] | None = None


class MessageRead(msgspec.Struct, kw_only=True, gc=False):
    id: str
    session_id: str
    seq: int
    role: Role
    content: str
    status: Status
    created_at: datetime
    finish_reason: FinishReason | None = None
    error: str | None = None
    client_id: str | None = None
    parent_id: Annotated[
        str | None, msgspec.Meta(description="The message this one follows; null for a first message.")
    ] = None


class BranchMessage(MessageRead, kw_only=True, gc=False):
    """A message of a branch, with its siblings, so that a page can offer to switch between them."""

    sibling_ids: Annotated[
        list[str],
        msgspec.Meta(
            description="The ids of every message with the same parent in the session (the session's first "
            "messages, for a first message), this one included, in `seq` order."
        ),
    ]


class ForkRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    message_id: Annotated[
        str, msgspec.Meta(description="The message of the session that the copied branch ends at.")
    ]
    name: Annotated[
        str | UnsetType | None, msgspec.Meta(description="The fork's name; absent: the original's.")
    ] = UNSET


class SessionDetail(msgspec.Struct, kw_only=True):
    session: SessionRead
    messages: Annotated[
        list[BranchMessage],
        msgspec.Meta(description="The current branch (or the one `message_id` asked for), root first."),
    ]


# The name of the stream's event for a failed reply. "error" is also the name of EventSource's own
# event for a lost connection, so a client can ask for "failure" instead.
ErrorEventName = Literal["error", "failure"]


class ChatRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    session_id: str
    messages: Annotated[list[MessageIn], msgspec.Meta(min_length=1)]
    # Go on generating (and store the whole reply) if the client goes away, instead of stopping.
    keep_generating: bool = False
    error_event: ErrorEventName = "error"
    parent_id: Annotated[
        str | UnsetType | None,
        msgspec.Meta(
            description="The message the request's messages follow: absent, the end of the session's "
            "current branch; null, a new first message. Editing a message is a request with the edited "
            "message's parent and the new content."
        ),
    ] = UNSET


class RegenerateRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    keep_generating: bool = False
    error_event: ErrorEventName = "error"
    message_id: Annotated[
        str | UnsetType,
        msgspec.Meta(
            description="The reply to regenerate: the new one is its sibling, answering the same history. "
            "Absent: a new reply to the last user message of the current branch."
        ),
    ] = UNSET


class ReplyStarted(msgspec.Struct, kw_only=True):
    """Data of the ``start`` event."""

    session_id: str
    message_ids: list[str]
    assistant_message_id: str


class ReplyDelta(msgspec.Struct, kw_only=True):
    """Data of a ``delta`` event."""

    content: str


class ErrorEvent(msgspec.Struct, kw_only=True):
    """Data of the ``error`` event (named ``failure`` when the request asks for that name)."""

    detail: str


# The stream's events as the OpenAPI schema describes them: each is one Server-Sent Event, its `event:`
# name as the tag, its `id:` and its `data:` line decoded from JSON. The server writes them through
# ``ServerSentEventMessage``; these structs exist so that generated clients get the events' types.
EventId = Annotated[
    str,
    msgspec.Meta(
        pattern="^[0-9]+$",
        description="The reply's length in characters once this event is taken into account: the "
        "position to re-attach from (`Last-Event-ID`).",
    ),
]


class StreamStart(msgspec.Struct, kw_only=True, tag_field="event", tag="start"):
    """``event: start``: the request's messages and the reply's row are committed."""

    id: EventId
    data: ReplyStarted


class StreamDelta(msgspec.Struct, kw_only=True, tag_field="event", tag="delta"):
    """``event: delta``: the next piece of the reply."""

    id: EventId
    data: ReplyDelta


class StreamDone(msgspec.Struct, kw_only=True, tag_field="event", tag="done"):
    """``event: done``: the reply as stored; its content is all the deltas joined."""

    id: EventId
    data: MessageRead


class StreamError(msgspec.Struct, kw_only=True, tag_field="event", tag="error"):
    """``event: error``: the reply failed; what was generated is stored with status ``error``."""

    id: EventId
    data: ErrorEvent


class StreamFailure(msgspec.Struct, kw_only=True, tag_field="event", tag="failure"):
    """``event: failure``: the same as ``error``, under the name ``error_event: "failure"`` asks for."""

    id: EventId
    data: ErrorEvent


ReplyEvent = StreamStart | StreamDelta | StreamDone | StreamError | StreamFailure


AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class ExportedSession(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str | None = None
    meta: dict[str, Any] = msgspec.field(default_factory=dict, name="metadata")
    created_at: AwareDatetime
    updated_at: AwareDatetime
    current_message_id: Annotated[
        str | None,
        msgspec.Meta(description="The `id` of the message the session shows last; absent: the last one."),
    ] = None


class ExportedMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    role: Role
    content: str
    status: Status = "complete"
    created_at: AwareDatetime
    finish_reason: FinishReason | None = None
    error: str | None = None
    id: Annotated[
        str | None, msgspec.Meta(description="The message's id in the exported session, for `parent_id`.")
    ] = None
    parent_id: Annotated[
        str | UnsetType | None,
        msgspec.Meta(
            description="The `id` of an earlier message of the export that this one follows; null for a "
            "first message; absent: the message before it (an export without ids is one branch)."
        ),
    ] = UNSET


class SessionExport(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A session with all its messages, as ``GET …/export?format=json`` writes it and import reads it."""

    format: Literal["chatstore.session"] = "chatstore.session"
    version: Literal[1] = 1
    exported_at: AwareDatetime
    session: ExportedSession
    messages: list[ExportedMessage]


class SearchHit(msgspec.Struct, kw_only=True):
    """A message that matches a search, with a snippet of its text around the matching words."""

    session_id: str
    session_name: str | None
    message_id: str
    seq: int
    role: Role
    created_at: datetime
    # HTML: the text is escaped and the matching words are wrapped in <mark>…</mark>.
    snippet: str


class SearchPage(msgspec.Struct, kw_only=True):
    results: list[SearchHit]
    next_cursor: str | None


# The AI SDK's UI message stream protocol (the npm package ``ai``, major 7): the body its
# ``DefaultChatTransport`` sends and the ``UIMessage``s its ``useChat`` starts from.
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UITrigger = Literal["submit-message", "regenerate-message"]


class UIMessageIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A ``UIMessage`` as the AI SDK sends it. Only the newest one of a request is read: its ``text``
    parts are the message, its ``id`` the client id (earlier ones are stored already; an edit reads the
    ``id`` of the one before it)."""

    id: str
    role: Role
    parts: list[dict[str, Any]]
    metadata: Any = None


class UIChatRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What ``DefaultChatTransport`` posts: the chat's id, its messages, and what to do."""

    id: Annotated[
        str,
        msgspec.Meta(
            pattern=UUID_PATTERN,
            description="The chat: a chatstore session id, a UUID (the AI SDK makes other ids by default: "
            "give the `Chat` `id: crypto.randomUUID()`). One that names no session yet starts a chat.",
        ),
    ]
    messages: Annotated[
        list[UIMessageIn],
        msgspec.Meta(
            min_length=1,
            description="The chat as the client has it. With `submit-message` the last one is the new user "
            "message; the earlier ones are already stored and are not read, but for the one before an edit, "
            "which the edit follows.",
        ),
    ]
    trigger: Annotated[
        UITrigger,
        msgspec.Meta(
            description="`submit-message` stores the last message and streams its reply; "
            "`regenerate-message` streams a new reply beside `messageId`."
        ),
    ] = "submit-message"
    message_id: Annotated[
        str | UnsetType,
        msgspec.Meta(
            description="With `regenerate-message`: the reply to regenerate (absent: a new reply to the last "
            "user message of the chat's current branch). With `submit-message`, the AI SDK's edit: the id of "
            "the last message, whose new text is stored as a new branch beside the edited one."
        ),
    ] = msgspec.field(default=UNSET, name="messageId")
    keep_generating: Annotated[
        bool,
        msgspec.Meta(
            description="Go on generating when the client goes away (the AI SDK's `stop()` included): set it "
            "with the transport's `body` option, and stop a reply with `POST /api/messages/{id}/stop`."
        ),
    ] = False


class UIMessageMetadata(msgspec.Struct, kw_only=True):
    """``metadata`` of a ``UIMessage``: the message as chatstore stores it."""

    session_id: str
    seq: int
    status: Status
    finish_reason: FinishReason | None
    created_at: datetime
    error: str | None = None


class UITextPart(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="text"):
    text: str
    state: Literal["streaming", "done"] | None = None


class UIStepStartPart(msgspec.Struct, kw_only=True, tag_field="type", tag="step-start"):
    """Where a reply's step starts, as the stream's ``start-step`` chunk puts it."""


class UIMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A stored message as a ``UIMessage`` of the AI SDK (text parts only)."""

    id: Annotated[
        str,
        msgspec.Meta(
            description="A user message's client id (the `UIMessage` id it was sent with), else its "
            "chatstore id."
        ),
    ]
    role: Role
    parts: list[UITextPart | UIStepStartPart]
    metadata: UIMessageMetadata
