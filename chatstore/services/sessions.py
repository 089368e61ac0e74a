"""Sessions: create, list, read with their messages, delete."""

from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import Connection, Row, delete, insert, select

from chatstore.core.db import Database
from chatstore.models import ChatSession, Message
from chatstore.models.tables import is_id, new_id, utc_now
from chatstore.schemas import MessageRead, SessionCreate, SessionDetail, SessionRead
from chatstore.services.errors import SessionNotFound

__all__ = ["create_session", "delete_session", "get_session_detail", "list_sessions"]

sessions_table = ChatSession.__table__  # type: ignore[attr-defined]
messages_table = Message.__table__  # type: ignore[attr-defined]

SESSION_COLUMNS = (
    sessions_table.c.id,
    sessions_table.c.name,
    sessions_table.c.metadata.label("meta"),
    sessions_table.c.created_at,
    sessions_table.c.updated_at,
    sessions_table.c.last_seq.label("message_count"),
    sessions_table.c.last_message_at,
)
MESSAGE_COLUMNS = (
    messages_table.c.id,
    messages_table.c.session_id,
    messages_table.c.seq,
    messages_table.c.role,
    messages_table.c.content,
    messages_table.c.status,
    messages_table.c.created_at,
)


def to_session(row: Any) -> SessionRead:
    return msgspec.convert(row, SessionRead, from_attributes=True)


def to_sessions(rows: Any) -> list[SessionRead]:
    return msgspec.convert(rows, list[SessionRead], from_attributes=True)


def to_messages(rows: Iterable[Row[Any]]) -> list[MessageRead]:
    # Built directly: rows of MESSAGE_COLUMNS come from the database's checked columns, and this
    # is the hot path of reading a long session (several times faster than msgspec.convert on rows).
    return [
        MessageRead(
            id=id_, session_id=session_id, seq=seq, role=role, content=content, status=status, created_at=created_at
        )
        for id_, session_id, seq, role, content, status, created_at in rows
    ]


async def create_session(db: Database, data: SessionCreate) -> SessionRead:
    now = utc_now()
    session = SessionRead(id=new_id(), name=data.name, meta=data.meta, created_at=now, updated_at=now)

    def insert_session(connection: Connection) -> None:
        connection.execute(
            insert(sessions_table).values(
                id=session.id, name=session.name, metadata=session.meta, created_at=now, updated_at=now
            )
        )

    await db.write(insert_session)
    return session


async def list_sessions(db: Database) -> list[SessionRead]:
    def select_sessions(connection: Connection) -> list[SessionRead]:
        query = select(*SESSION_COLUMNS).order_by(
            sessions_table.c.created_at.desc(), sessions_table.c.id.desc()
        )
        return to_sessions(connection.execute(query).all())

    return await db.read(select_sessions)


async def get_session_detail(db: Database, session_id: str) -> SessionDetail:
    if not is_id(session_id):
        raise SessionNotFound(session_id)

    def select_session_and_messages(connection: Connection) -> SessionDetail | None:
        row = connection.execute(select(*SESSION_COLUMNS).where(sessions_table.c.id == session_id)).first()
        if row is None:
            return None
        rows = connection.execute(
            select(*MESSAGE_COLUMNS)
            .where(messages_table.c.session_id == session_id)
            .order_by(messages_table.c.seq)
        ).all()
        return SessionDetail(session=to_session(row), messages=to_messages(rows))

    detail = await db.read(select_session_and_messages)
    if detail is None:
        raise SessionNotFound(session_id)
    return detail


async def delete_session(db: Database, session_id: str) -> None:
    if not is_id(session_id):
        raise SessionNotFound(session_id)

    def delete_row(connection: Connection) -> int:
        # Its messages go with it: ON DELETE CASCADE, in the database.
        return connection.execute(delete(sessions_table).where(sessions_table.c.id == session_id)).rowcount

    if await db.write(delete_row) == 0:
        raise SessionNotFound(session_id)
