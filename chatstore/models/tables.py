"""The tables. No ``from __future__ import annotations`` here: SQLModel relationships need real types."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy import inspect as inspect_model
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import AutoString, Field, Relationship, SQLModel

from chatstore.vocabulary import FINISH_REASONS, ROLES, STATUSES

__all__ = [
    "ChatSession",
    "Message",
    "ReplyChunk",
    "UTCTimestamp",
    "Worker",
    "is_id",
    "new_id",
    "new_message_row",
    "new_session_row",
    "utc_now",
]


def new_id() -> str:
    return str(uuid4())


def is_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id chatstore makes; anything else names nothing stored."""
    if len(value) != 36:
        return False
    try:
        return str(UUID(value)) == value
    except ValueError:
        return False


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCTimestamp(TypeDecorator[datetime]):
    """An aware UTC timestamp: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, ISO text on SQLite.

    Reading is the hot path of a long session, so values are parsed in one C call each rather than
    through SQLAlchemy's generic date parsing plus a time zone fix-up.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name == "sqlite":
            return _from_sqlite_text
        return _as_utc


def _from_sqlite_text(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        # SQLAlchemy writes SQLite timestamps as UTC text without an offset. Parsing the text with
        # the offset appended costs a fifth of parsing it and then setting the zone with ``replace``:
        # a long read pays this once per message.
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # text written with an offset of its own, by hand: read as before
        return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:  # asyncpg's, always: nothing to convert
        return value
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ChatSession(SQLModel, table=True):
    __tablename__ = "sessions"
    __table_args__ = (
        # Keyset pagination of the two orders the list offers.
        Index("ix_sessions_created", "created_at", "id"),
        Index("ix_sessions_activity", "activity_at", "id"),
        # The same per owner: one user's page is read from that user's entries alone.
        Index("ix_sessions_owner_created", "owner", "created_at", "id"),
        Index("ix_sessions_owner_activity", "owner", "activity_at", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str | None = None
    # The attribute is ``meta``: ``metadata`` is reserved by SQLAlchemy's declarative base.
    meta: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column("metadata", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    )
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCTimestamp)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCTimestamp)
    # The seq of the session's newest message (``assign_seqs`` bumps it, under the row's write lock,
    # so it stays right across processes). Seqs are never reused: a deleted message leaves a gap.
    last_seq: int = 0
    # The number of the session's messages: ``last_seq`` less the ones deleted (with what followed them).
    message_count: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    last_message_at: datetime | None = Field(default=None, sa_type=UTCTimestamp)
    # The sidebar's sort key: the last message's time, or the creation time before any message.
    activity_at: datetime = Field(default_factory=utc_now, sa_type=UTCTimestamp)
    # The last message of the branch the session shows (None before any message). No foreign key:
    # it would make the two tables refer to each other (see migration 0002).
    current_message_id: str | None = None
    # A fork's origin: the session and the message its copied branch ended at. No foreign keys: the
    # original may be deleted, and the fork stays as it is.
    forked_from_session_id: str | None = None
    forked_from_message_id: str | None = None
    # The user the session belongs to (see ``services/owners.py``); None in open mode, for an
    # operator's sessions and for those stored before owners existed. A user never changes it.
    owner: str | None = None

    messages: list["Message"] = Relationship(
        back_populates="session",
        cascade_delete=True,
        sa_relationship_kwargs={"passive_deletes": True, "order_by": "Message.seq"},
    )


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("session_id", "seq"),
        # A client-chosen id names one message of its session: a retried request finds it.
        UniqueConstraint("session_id", "client_id"),
        CheckConstraint(_in("role", ROLES), name="message_role"),
        CheckConstraint(_in("status", STATUSES), name="message_status"),
        CheckConstraint(_in("finish_reason", FINISH_REASONS), name="message_finish_reason"),
        # The sweep for replies orphaned by a dead process reads only this small index.
        Index(
            "ix_messages_in_progress",
            "worker_id",
            sqlite_where=text("status = 'in_progress'"),
            postgresql_where=text("status = 'in_progress'"),
        ),
        # A message's children in seq order (and the look-up of the cascade from a deleted parent).
        Index("ix_messages_parent", "parent_id", "seq"),
        # The same for first messages, whose parent is null: by session.
        Index("ix_messages_session_parent", "session_id", "parent_id", "seq"),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="sessions.id", ondelete="CASCADE")
    # The message this one follows (None for a first message); deleting it deletes this one.
    parent_id: str | None = Field(default=None, foreign_key="messages.id", ondelete="CASCADE")
    # How many messages are above this one on its branch (0 for a first message): a branch's length
    # is known from its last message, before it is read.
    depth: int = Field(sa_column_kwargs={"server_default": text("0")})
    seq: int
    role: str
    content: str = Field(sa_type=Text)
    status: str = "complete"
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCTimestamp)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCTimestamp)
    # The process streaming this reply while its status is ``in_progress``.
    worker_id: str | None = None
    client_id: str | None = None
    finish_reason: str | None = None
    # What went wrong, for a reply with status ``error``.
    error: str | None = Field(default=None, sa_type=Text)
    # Set by a stop request; the process streaming the reply sees it on its next progress write.
    stop_requested: bool = Field(default=False, sa_column_kwargs={"server_default": false()})

    session: ChatSession | None = Relationship(back_populates="messages")


class ReplyChunk(SQLModel, table=True):
    """Text a streaming reply added since its previous progress write; only what is new is written.

    A reply's text so far is its row's ``content`` followed by its chunks in ``position`` order.
    Every write that ends the reply folds them into ``content`` and deletes them in the same
    transaction, so only replies still ``in_progress`` have chunks.
    """

    __tablename__ = "reply_chunks"
    # SQLite: the rows live in the primary key's b-tree, one page written per insert rather than two.
    __table_args__ = {"sqlite_with_rowid": False}

    reply_id: str = Field(foreign_key="messages.id", ondelete="CASCADE", primary_key=True)
    # Where the chunk starts in the reply's text, in characters: a write retried after a commit that
    # was not acknowledged replaces its chunk rather than adding it twice.
    position: int = Field(primary_key=True)
    content: str = Field(sa_type=Text)


class Worker(SQLModel, table=True):
    """A running chatstore process and its lease, renewed by a heartbeat."""

    __tablename__ = "workers"

    id: str = Field(default_factory=new_id, primary_key=True)
    # Where ``pid`` means something: the host name and the PID namespace (``process_namespace()``).
    # The column keeps its 0.1.0 name, ``hostname``: renaming it would take a migration.
    process_namespace: str = Field(sa_column=Column("hostname", AutoString, nullable=False))
    pid: int
    started_at: datetime = Field(default_factory=utc_now, sa_type=UTCTimestamp)
    lease_expires_at: datetime = Field(sa_type=UTCTimestamp)


# The tables as SQLAlchemy Core sees them, for the services' statements.
sessions_table = ChatSession.__table__  # type: ignore[attr-defined]
messages_table = Message.__table__  # type: ignore[attr-defined]
reply_chunks_table = ReplyChunk.__table__  # type: ignore[attr-defined]
workers_table = Worker.__table__  # type: ignore[attr-defined]


_TIMESTAMPS = ("created_at", "updated_at", "activity_at")
_UNSET = object()  # a field that is required: no default to fill in


def _columns_of(model: type[SQLModel]) -> list[tuple[str, str, Any, Any]]:
    """Each column of ``model``'s table: its attribute name, its column key, and its default
    factory or default (``_UNSET`` if it has none)."""
    columns = []
    for attribute in inspect_model(model).column_attrs:
        name, column = attribute.key, attribute.columns[0].key
        field = model.model_fields[name]
        default = _UNSET if field.default_factory is not None or field.is_required() else field.default
        columns.append((name, column, field.default_factory, default))
    return columns


def _new_row(model: type[SQLModel], values: dict[str, Any]) -> dict[str, Any]:
    """A new row of ``model``'s table for a Core insert: ``values`` (by attribute name) over the
    defaults the model declares, keyed by column; its timestamps all default to one time.

    The services write with Core statements (many rows in one ``INSERT``, ``RETURNING``, no ORM
    session to carry across threads); the defaults stay declared once, on the model.
    """
    now = values.get("created_at") or utc_now()
    row: dict[str, Any] = {}
    for name, column, factory, default in _COLUMNS[model]:
        if name in values:
            row[column] = values[name]
        elif name in _TIMESTAMPS:
            row[column] = now
        elif factory is not None:
            row[column] = factory()
        elif default is not _UNSET:
            row[column] = default
    return row


# Read from the models once: inspecting them for every row cost more than the row's INSERT.
_COLUMNS = {model: _columns_of(model) for model in (ChatSession, Message)}


def new_message_row(**values: Any) -> dict[str, Any]:
    return _new_row(Message, values)


def new_session_row(**values: Any) -> dict[str, Any]:
    return _new_row(ChatSession, values)
