"""Rows to wire structs: the columns a session and a message are read with, and the one mapping of
each to ``SessionRead`` and ``MessageRead``.

A long read (a branch of thousands of messages) fetches the driver's own rows (``driver_rows``) and
maps them with ``driver_times``, which reads their ``created_at`` as SQLAlchemy would have.
"""

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Executable, Row, Text, case, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from chatstore.models import messages_table, reply_chunks_table, sessions_table
from chatstore.schemas import BranchMessage, ForkedFrom, MessageRead, SessionRead

__all__ = [
    "MESSAGE_COLUMNS",
    "SESSION_COLUMNS",
    "ChunksInOrder",
    "driver_rows",
    "driver_times",
    "to_branch_messages",
    "to_message",
    "to_messages",
    "to_session",
    "to_sessions",
]

# How a mapping reads a row's ``created_at``: as it is (a SQLAlchemy row's, already a datetime), or
# from what the driver gave (``driver_times``).
TimeReader = Callable[[Any], datetime]

# How much of a session's first user message its ``preview`` holds (a line's worth, or more).
PREVIEW_LENGTH = 200
_FIRST_USER_MESSAGE = (
    select(func.substr(messages_table.c.content, 1, PREVIEW_LENGTH))
    .where(messages_table.c.session_id == sessions_table.c.id, messages_table.c.role == "user")
    .order_by(messages_table.c.seq)
    .limit(1)
    .correlate(sessions_table)
    .scalar_subquery()
)
SESSION_COLUMNS = (
    sessions_table.c.id,
    sessions_table.c.name,
    sessions_table.c.metadata.label("meta"),
    sessions_table.c.created_at,
    sessions_table.c.updated_at,
    sessions_table.c.message_count,
    sessions_table.c.last_message_at,
    _FIRST_USER_MESSAGE.label("preview"),
    sessions_table.c.current_message_id,
    sessions_table.c.forked_from_session_id,
    sessions_table.c.forked_from_message_id,
    sessions_table.c.owner,
)


class ChunksInOrder(FunctionElement[str]):
    """``ChunksInOrder(reply_id)``: the text of the reply's chunks (``reply_chunks``), joined in
    ``position`` order; NULL when it has none."""

    type = Text()
    inherit_cache = True


@compiles(ChunksInOrder, "postgresql")
def _chunks_in_order_on_postgres(element: ChunksInOrder, compiler: SQLCompiler, **kw: Any) -> str:
    [reply_id] = element.clauses
    c = reply_chunks_table.c
    joined = func.string_agg(c.content, aggregate_order_by(literal_column("''"), c.position))
    return compiler.process(select(joined).where(c.reply_id == reply_id).scalar_subquery(), **kw)


@compiles(ChunksInOrder, "sqlite")
def _chunks_in_order_on_sqlite(element: ChunksInOrder, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite 3.40 has no ORDER BY inside an aggregate; it keeps the ORDER BY of a FROM subquery
    # whose outer query aggregates with group_concat (select.c, "the ORDER BY clause may not be
    # safely omitted" when the outer query uses an aggregate other than count, min or max).
    [reply_id] = element.clauses
    c = reply_chunks_table.c
    ordered = (
        select(c.content)
        .where(c.reply_id == reply_id)
        .order_by(c.position)
        .correlate(messages_table)
        .subquery("chunk")
    )
    return compiler.process(select(func.group_concat(ordered.c.content, "")).scalar_subquery(), **kw)


# A reply's text so far: the row's content, then the chunks its progress writes added. Only rows
# still in_progress have chunks, so every other row is read as it is, without the look-up.
_CONTENT: ColumnElement[str] = case(
    (
        messages_table.c.status == "in_progress",
        messages_table.c.content + func.coalesce(ChunksInOrder(messages_table.c.id), ""),
    ),
    else_=messages_table.c.content,
).label("content")
MESSAGE_COLUMNS = (
    messages_table.c.id,
    messages_table.c.session_id,
    messages_table.c.seq,
    messages_table.c.role,
    _CONTENT,
    messages_table.c.status,
    messages_table.c.created_at,
    messages_table.c.finish_reason,
    messages_table.c.error,
    messages_table.c.client_id,
    messages_table.c.parent_id,
)


def to_session(row: Any) -> SessionRead:
    origin = None
    if row.forked_from_session_id is not None:
        origin = ForkedFrom(session_id=row.forked_from_session_id, message_id=row.forked_from_message_id)
    return SessionRead(
        id=row.id,
        name=row.name,
        meta=row.meta,
        created_at=row.created_at,
        updated_at=row.updated_at,
        message_count=row.message_count,
        last_message_at=row.last_message_at,
        preview=row.preview,
        current_message_id=row.current_message_id,
        forked_from=origin,
        owner=row.owner,
    )


def to_sessions(rows: Any) -> list[SessionRead]:
    return [to_session(row) for row in rows]


def driver_rows(connection: Connection, statement: Executable) -> list[Sequence[Any]]:
    """The rows of ``statement`` as the driver returns them: tuples, without SQLAlchemy's ``Row``
    objects and result processing (``created_at`` is SQLite's text, or asyncpg's datetime: map them
    with ``driver_times``). SQLAlchemy runs the statement and raises its errors, as ever.

    For long reads only: on a 10,000-message branch the ``Row`` objects and their processing cost
    about a fifth of the whole read, on either engine.
    """
    result = connection.execute(statement)
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        return list(result.cursor.fetchall())
    except driver_error as error:  # SQLite reads rows as they are fetched: its errors too are wrapped
        raise DBAPIError.instance(None, None, error, driver_error) from error
    finally:
        result.close()


def driver_times(connection: Connection) -> TimeReader:
    """What SQLAlchemy would make of a driver's ``created_at`` on this connection's database."""
    reader: TimeReader = messages_table.c.created_at.type.result_processor(connection.dialect, None)
    return reader


def _as_read(value: datetime) -> datetime:
    return value


def to_message(row: Row[Any]) -> MessageRead:
    return to_messages([row])[0]


def to_messages(rows: Iterable[Sequence[Any]], read_time: TimeReader = _as_read) -> list[MessageRead]:
    """Rows of ``MESSAGE_COLUMNS`` (by position) as structs; ``read_time`` reads ``created_at``."""
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
            created_at=read_time(created_at),
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
    rows: Iterable[Sequence[Any]], siblings: dict[str | None, list[str]], read_time: TimeReader = _as_read
) -> list[BranchMessage]:
    """As ``to_messages``, each message with the children of its parent in ``siblings``."""
    # Built directly, as in to_messages: a long branch is read this way.
    return [
        BranchMessage(
            id=id_,
            session_id=session_id,
            seq=seq,
            role=role,
            content=content,
            status=status,
            created_at=read_time(created_at),
            finish_reason=finish_reason,
            error=error,
            client_id=client_id,
            parent_id=parent_id,
            sibling_ids=siblings[parent_id],
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
