"""Rows to wire structs: the columns a session and a message are read with, and the one mapping of
each to ``SessionRead`` and ``MessageRead``."""

from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import Row

from chatstore.models import messages_table, sessions_table
from chatstore.schemas import BranchMessage, MessageRead, SessionRead

__all__ = [
    "MESSAGE_COLUMNS",
    "SESSION_COLUMNS",
    "to_branch_messages",
    "to_message",
    "to_messages",
    "to_session",
    "to_sessions",
]

SESSION_COLUMNS = (
    sessions_table.c.id,
    sessions_table.c.name,
    sessions_table.c.metadata.label("meta"),
    sessions_table.c.created_at,
    sessions_table.c.updated_at,
    # Seqs run 1 … last_seq without gaps: the newest seq is the number of messages (see ChatSession).
    sessions_table.c.last_seq.label("message_count"),
    sessions_table.c.last_message_at,
    sessions_table.c.current_message_id,
)
MESSAGE_COLUMNS = (
    messages_table.c.id,
    messages_table.c.session_id,
    messages_table.c.seq,
    messages_table.c.role,
    messages_table.c.content,
    messages_table.c.status,
    messages_table.c.created_at,
    messages_table.c.finish_reason,
    messages_table.c.error,
    messages_table.c.client_id,
    messages_table.c.parent_id,
)


def to_session(row: Any) -> SessionRead:
    return msgspec.convert(row, SessionRead, from_attributes=True)


def to_sessions(rows: Any) -> list[SessionRead]:
    return msgspec.convert(rows, list[SessionRead], from_attributes=True)


def to_message(row: Row[Any]) -> MessageRead:
    return to_messages([row])[0]


def to_messages(rows: Iterable[Row[Any]]) -> list[MessageRead]:
    # Built directly: rows of MESSAGE_COLUMNS come from the database's checked columns, and this
    # is the hot path of reading a long session (several times faster than msgspec.convert on rows).
    return [
        MessageRead(
            id=id_,
            session_id=session_id,
            seq=seq,
            role=role,
            content=content,
            status=status,
            created_at=created_at,
            finish_reason=finish_reason,
            error=error,
            client_id=client_id,
            parent_id=parent_id,
        )
        for (
            id_,
            session_id,
            seq,
            role,
            content,
            status,
            created_at,
            finish_reason,
            error,
            client_id,
            parent_id,
        ) in rows
    ]


def to_branch_messages(
    rows: Iterable[Row[Any]], siblings: dict[str | None, list[str]]
) -> list[BranchMessage]:
    return [
        BranchMessage(**msgspec.structs.asdict(message), sibling_ids=siblings[message.parent_id])
        for message in to_messages(rows)
    ]
