"""Sessions: create, list, read with their messages, update, delete."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from msgspec import UNSET
from sqlalchemy import Connection, delete, insert, select, tuple_, update

from chatstore.core.db import Database
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import new_id, new_session_row, utc_now
from chatstore.schemas import MessageRead, SessionCreate, SessionDetail, SessionRead, SessionUpdate
from chatstore.services.errors import SessionNotFound
from chatstore.services.pagination import Seq, Text, Timestamp, decode_cursor, encode_cursor
from chatstore.services.rows import MESSAGE_COLUMNS, SESSION_COLUMNS, to_messages, to_session, to_sessions

__all__ = [
    "Page",
    "create_session",
    "delete_session",
    "get_session_detail",
    "list_messages",
    "list_sessions",
    "merge_patch",
    "update_session",
]

T = TypeVar("T")
SessionOrder = Literal["created", "activity"]
Direction = Literal["forward", "backward"]


async def create_session(db: Database, data: SessionCreate) -> SessionRead:
    now = utc_now()
    session = SessionRead(id=new_id(), name=data.name, meta=data.meta, created_at=now, updated_at=now)

    def insert_session(connection: Connection) -> None:
        connection.execute(
            insert(sessions_table).values(
                new_session_row(id=session.id, name=session.name, meta=session.meta, created_at=now)
            )
        )

    await db.write(insert_session)
    return session


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


SESSION_ORDERS = {"created": sessions_table.c.created_at, "activity": sessions_table.c.activity_at}


async def list_sessions(
    db: Database, *, limit: int, cursor: str | None = None, order: SessionOrder = "created"
) -> Page[SessionRead]:
    """Sessions newest first, by creation or by last activity, ``limit`` at a time."""
    sort_column = SESSION_ORDERS[order]
    kind = f"sessions:{order}"
    after = decode_cursor(cursor, kind, tuple[Timestamp, Text]) if cursor else None

    def select_page(connection: Connection) -> Page[SessionRead]:
        query = select(*SESSION_COLUMNS, sort_column.label("sort_key"))
        if after is not None:
            query = query.where(tuple_(sort_column, sessions_table.c.id) < tuple_(*after))
        rows = connection.execute(
            query.order_by(sort_column.desc(), sessions_table.c.id.desc()).limit(limit + 1)
        ).all()
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = encode_cursor(kind, [rows[-1].sort_key, rows[-1].id]) if more else None
        return Page(to_sessions(rows), next_cursor)

    return await db.read(select_page)


async def list_messages(
    db: Database, session_id: str, *, limit: int, cursor: str | None = None, direction: Direction = "forward"
) -> Page[MessageRead]:
    """A page of a session's messages, always in seq order. ``forward`` starts at the first
    message; ``backward`` starts at the newest and each next page holds older messages."""
    kind = f"messages:{direction}:{session_id}"
    after_seq = decode_cursor(cursor, kind, tuple[Seq])[0] if cursor else None
    seq = messages_table.c.seq

    def select_page(connection: Connection) -> Page[MessageRead] | None:
        if (
            connection.execute(select(sessions_table.c.id).where(sessions_table.c.id == session_id)).first()
            is None
        ):
            return None
        query = select(*MESSAGE_COLUMNS).where(messages_table.c.session_id == session_id)
        if direction == "forward":
            if after_seq is not None:
                query = query.where(seq > after_seq)
            rows = connection.execute(query.order_by(seq).limit(limit + 1)).all()
        else:
            if after_seq is not None:
                query = query.where(seq < after_seq)
            rows = connection.execute(query.order_by(seq.desc()).limit(limit + 1)).all()
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = encode_cursor(kind, [rows[-1].seq]) if more else None
        if direction == "backward":
            rows.reverse()
        return Page(to_messages(rows), next_cursor)

    page = await db.read(select_page)
    if page is None:
        raise SessionNotFound(session_id)
    return page


async def update_session(
    db: Database, session_id: str, patch: SessionUpdate, check_metadata: Callable[[dict[str, Any]], None]
) -> SessionRead:
    """Rename and/or patch the metadata (JSON Merge Patch, RFC 7396); ``check_metadata`` vets the result."""

    def apply(connection: Connection) -> SessionRead:
        values: dict[str, Any] = {"updated_at": utc_now()}
        if patch.name is not UNSET:
            values["name"] = patch.name
        if patch.meta is not UNSET:
            # Read under the row's lock (SQLite's writer holds the database's) so concurrent
            # patches of different keys both land.
            current = connection.execute(
                select(sessions_table.c.metadata).where(sessions_table.c.id == session_id).with_for_update()
            ).scalar()
            if current is None:
                raise SessionNotFound(session_id)
            merged = merge_patch(current, patch.meta)
            check_metadata(merged)
            values["metadata"] = merged
        row = connection.execute(
            update(sessions_table)
            .where(sessions_table.c.id == session_id)
            .values(**values)
            .returning(*SESSION_COLUMNS)
        ).first()
        if row is None:
            raise SessionNotFound(session_id)
        return to_session(row)

    return await db.write(apply)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


async def get_session_detail(db: Database, session_id: str) -> SessionDetail:

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

    def delete_row(connection: Connection) -> None:
        # Its messages go with it: ON DELETE CASCADE, in the database.
        if connection.execute(delete(sessions_table).where(sessions_table.c.id == session_id)).rowcount == 0:
            raise SessionNotFound(session_id)

    await db.write(delete_row)
