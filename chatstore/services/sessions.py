"""Sessions: create, list, read with their messages, update, delete."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from msgspec import UNSET
from sqlalchemy import Connection, delete, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chatstore.core.db import Database
from chatstore.core.driver import DriverStatement
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import new_id, new_session_row, utc_now
from chatstore.schemas import (
    BranchMessage,
    MessageRead,
    SessionCreate,
    SessionDetail,
    SessionRead,
    SessionUpdate,
)
from chatstore.services.branches import (
    NOT_A_MESSAGE,
    ancestors,
    branch_with_siblings,
    is_message_of_session,
    newest_below,
    siblings_of,
)
from chatstore.services.errors import InvalidInput, SessionNotFound
from chatstore.services.owners import OwnerScope
from chatstore.services.pagination import Seq, Text, Timestamp, decode_cursor, encode_cursor
from chatstore.services.rows import (
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    to_branch_messages,
    to_messages,
    to_session,
    to_sessions,
)

__all__ = [
    "Page",
    "create_session",
    "create_session_if_missing",
    "delete_session",
    "get_session_detail",
    "list_branch_messages",
    "list_messages",
    "list_sessions",
    "merge_patch",
    "update_session",
]

T = TypeVar("T")
SessionOrder = Literal["created", "activity"]
Direction = Literal["forward", "backward"]


# Run on the driver, as the turns' writes are (see ``chatstore.core.driver``); rows of
# ``new_session_row``, which gives every column.
_INSERT_SESSION = DriverStatement(insert(sessions_table), column_keys=sessions_table.c.keys())


async def create_session(db: Database, data: SessionCreate, *, scope: OwnerScope) -> SessionRead:
    """A new session, owned by the scope's owner."""
    now = utc_now()
    session = SessionRead(
        id=new_id(), name=data.name, meta=data.meta, created_at=now, updated_at=now, owner=scope.owner
    )
    row = new_session_row(
        id=session.id, name=session.name, meta=session.meta, created_at=now, owner=scope.owner
    )

    def insert_session(connection: Connection) -> None:
        _INSERT_SESSION.run(connection, row)

    await db.write(insert_session)
    return session


async def create_session_if_missing(db: Database, session_id: str, *, owner: str | None) -> None:
    """Create the session ``session_id`` of ``owner``, unnamed and empty, unless a session has that
    id (anyone's): for clients that make their chats' ids themselves (the AI SDK). Two requests
    creating it at once make one session."""
    now = utc_now()
    row = new_session_row(id=session_id, name=None, meta={}, created_at=now, owner=owner)

    def insert_unless_there(connection: Connection) -> None:
        dialect_insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
        connection.execute(
            dialect_insert(sessions_table).values(row).on_conflict_do_nothing(index_elements=["id"])
        )

    await db.write(insert_unless_there)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


SESSION_ORDERS = {"created": sessions_table.c.created_at, "activity": sessions_table.c.activity_at}


async def list_sessions(
    db: Database,
    *,
    scope: OwnerScope,
    limit: int,
    cursor: str | None = None,
    order: SessionOrder = "created",
) -> Page[SessionRead]:
    """The scope's sessions newest first, by creation or by last activity, ``limit`` at a time (for one
    owner, from the indexes that start with the owner)."""
    sort_column = SESSION_ORDERS[order]
    kind = f"sessions:{order}"
    after = decode_cursor(cursor, kind, tuple[Timestamp, Text]) if cursor else None

    def select_page(connection: Connection) -> Page[SessionRead]:
        query = select(*SESSION_COLUMNS, sort_column.label("sort_key")).where(scope.sessions())
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
    db: Database,
    session_id: str,
    *,
    scope: OwnerScope,
    limit: int,
    cursor: str | None = None,
    direction: Direction = "forward",
) -> Page[MessageRead]:
    """A page of a session's messages, always in seq order. ``forward`` starts at the first
    message; ``backward`` starts at the newest and each next page holds older messages."""
    kind = f"messages:{direction}:{session_id}"
    after_seq = decode_cursor(cursor, kind, tuple[Seq])[0] if cursor else None
    seq = messages_table.c.seq

    def select_page(connection: Connection) -> Page[MessageRead] | None:
        if not scope.owns_session(connection, session_id):
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


async def list_branch_messages(
    db: Database,
    session_id: str,
    branch: str,
    *,
    scope: OwnerScope,
    limit: int,
    cursor: str | None = None,
    direction: Direction = "forward",
) -> Page[BranchMessage]:
    """A page of one branch, root first, each message with its siblings: ``branch`` is ``current``
    or a message id (the branch through it, down to the newest message below it). ``forward``
    starts at the root; ``backward`` at the branch's end, and each next page holds the messages
    above it. A backward page costs the same however large the rest of the tree is."""
    kind = f"messages:branch:{direction}:{session_id}"
    # Forward: the branch's last message and the seq reached. Backward: the next message to give.
    key = decode_cursor(cursor, kind, tuple[Text, Seq]) if cursor else None
    seq = messages_table.c.seq

    def select_page(connection: Connection) -> Page[BranchMessage]:
        current = connection.execute(
            select(sessions_table.c.current_message_id).where(scope.session(session_id))
        ).first()
        if current is None:
            raise SessionNotFound(session_id)
        if key is not None:
            start: str | None = key[0]
        elif branch == "current":
            start = current.current_message_id
        elif is_message_of_session(connection, session_id, branch):
            start = newest_below(connection, branch)
        else:
            raise InvalidInput("branch", "must be `current` or " + NOT_A_MESSAGE, source="query")
        if start is None:
            return Page([], None)
        # The walk starts at a message of the session (a cursor's may name any), and is the join's
        # driving side: a page costs what its messages cost, not what the session holds.
        if direction == "forward":
            path = ancestors(start, session_id=session_id)
            query = select(*MESSAGE_COLUMNS).join(path, messages_table.c.id == path.c.id)
            if key is not None:
                query = query.where(seq > key[1])
            rows = connection.execute(query.order_by(seq).limit(limit + 1)).all()
            more, rows = len(rows) > limit, rows[:limit]
            next_cursor = encode_cursor(kind, [start, rows[-1].seq]) if more else None
        else:
            path = ancestors(start, session_id=session_id, max_distance=limit)
            rows = connection.execute(
                select(*MESSAGE_COLUMNS).join(path, messages_table.c.id == path.c.id).order_by(seq.desc())
            ).all()
            more, rows, rest = len(rows) > limit, rows[:limit], rows[limit:]
            next_cursor = encode_cursor(kind, [rest[0].id, rest[0].seq]) if more else None
            rows.reverse()
        return Page(to_branch_messages(rows, siblings_of(connection, session_id, rows)), next_cursor)

    return await db.read(select_page)


async def update_session(
    db: Database,
    session_id: str,
    patch: SessionUpdate,
    check_metadata: Callable[[dict[str, Any]], None],
    *,
    scope: OwnerScope,
) -> SessionRead:
    """Rename and/or patch the metadata (JSON Merge Patch, RFC 7396); ``check_metadata`` vets the result."""

    def apply(connection: Connection) -> SessionRead:
        values: dict[str, Any] = {"updated_at": utc_now()}
        if patch.current_message_id is not UNSET and not scope.owns_session(connection, session_id):
            raise SessionNotFound(session_id)  # before the message is looked for in it
        if patch.name is not UNSET:
            values["name"] = patch.name
        if patch.current_message_id is not UNSET:
            if not is_message_of_session(connection, session_id, patch.current_message_id):
                raise InvalidInput("current_message_id", NOT_A_MESSAGE)
            values["current_message_id"] = newest_below(connection, patch.current_message_id)
        if patch.meta is not UNSET:
            # Read under the row's lock (SQLite's writer holds the database's) so concurrent
            # patches of different keys both land.
            current = connection.execute(
                select(sessions_table.c.metadata).where(scope.session(session_id)).with_for_update()
            ).scalar()
            if current is None:
                raise SessionNotFound(session_id)
            merged = merge_patch(current, patch.meta)
            check_metadata(merged)
            values["metadata"] = merged
        updated = connection.execute(
            update(sessions_table)
            .where(scope.session(session_id))
            .values(**values)
            .returning(sessions_table.c.id)
        ).first()
        if updated is None:
            raise SessionNotFound(session_id)
        # Read again rather than RETURNING the columns: a RETURNING clause names the table's columns
        # without the table, so the preview's subquery would compare messages.id with itself.
        return to_session(
            connection.execute(select(*SESSION_COLUMNS).where(sessions_table.c.id == session_id)).one()
        )

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


async def get_session_detail(
    db: Database, session_id: str, message_id: str | None = None, *, scope: OwnerScope
) -> SessionDetail:
    """The session and its current branch, or the branch through ``message_id`` down to the newest
    message below it; each message with its siblings."""

    def select_session_and_branch(connection: Connection) -> SessionDetail | None:
        row = connection.execute(select(*SESSION_COLUMNS).where(scope.session(session_id))).first()
        if row is None:
            return None
        leaf = row.current_message_id
        if message_id is not None:
            if not is_message_of_session(connection, session_id, message_id):
                raise InvalidInput("message_id", NOT_A_MESSAGE, source="query")
            leaf = newest_below(connection, message_id)
        branch = branch_with_siblings(connection, session_id, leaf)
        return SessionDetail(session=to_session(row), messages=branch)

    detail = await db.read(select_session_and_branch)
    if detail is None:
        raise SessionNotFound(session_id)
    return detail


async def delete_session(db: Database, session_id: str, *, scope: OwnerScope) -> None:
    def delete_row(connection: Connection) -> None:
        # Its messages go with it: ON DELETE CASCADE, in the database.
        if connection.execute(delete(sessions_table).where(scope.session(session_id))).rowcount == 0:
            raise SessionNotFound(session_id)

    await db.write(delete_row)
