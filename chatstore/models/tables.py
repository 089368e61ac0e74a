"""The tables. No ``from __future__ import annotations`` here: SQLModel relationships need real types."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import JSON, CheckConstraint, Column, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, Relationship, SQLModel

__all__ = ["ROLES", "STATUSES", "ChatSession", "Message", "Worker", "is_id", "new_id", "utc_now"]

ROLES = ("system", "user", "assistant")
STATUSES = ("in_progress", "complete", "incomplete", "error")


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


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ChatSession(SQLModel, table=True):
    __tablename__ = "sessions"

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str | None = None
    # The attribute is ``meta``: ``metadata`` is reserved by SQLAlchemy's declarative base.
    meta: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column("metadata", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    )
    created_at: datetime = Field(default_factory=utc_now, index=True)
    updated_at: datetime = Field(default_factory=utc_now)
    # The seq of the session's newest message. Bumping it is what assigns a new message
    # its seq, under the row's write lock, so it stays right across processes.
    last_seq: int = 0
    last_message_at: datetime | None = None

    messages: list["Message"] = Relationship(
        back_populates="session",
        cascade_delete=True,
        sa_relationship_kwargs={"passive_deletes": True, "order_by": "Message.seq"},
    )


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("session_id", "seq"),
        CheckConstraint(_in("role", ROLES), name="message_role"),
        CheckConstraint(_in("status", STATUSES), name="message_status"),
        # The sweep for replies orphaned by a dead process reads only this small index.
        Index(
            "ix_messages_in_progress",
            "worker_id",
            sqlite_where=text("status = 'in_progress'"),
            postgresql_where=text("status = 'in_progress'"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True)
    session_id: str = Field(foreign_key="sessions.id", ondelete="CASCADE")
    seq: int
    role: str
    content: str = Field(sa_type=Text)
    status: str = "complete"
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    # The process streaming this reply while its status is ``in_progress``.
    worker_id: str | None = None

    session: ChatSession | None = Relationship(back_populates="messages")


class Worker(SQLModel, table=True):
    """A running chatstore process and its lease, renewed by a heartbeat."""

    __tablename__ = "workers"

    id: str = Field(default_factory=new_id, primary_key=True)
    hostname: str
    pid: int
    started_at: datetime = Field(default_factory=utc_now)
    lease_expires_at: datetime
