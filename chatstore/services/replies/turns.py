"""Turns: a chat request's messages and the reply that answers them, added to a session's tree.

One transaction stores the request's messages and the reply's ``in_progress`` row, numbered by
``assign_seqs``, and commits before the first event is sent. The messages chain below their parent
(the request's ``parent_id``; by default the end of the session's current branch), the reply below
the last of them, and the reply becomes the session's current message. Messages that carry a
client id already stored in the session are not stored again: a retried request finds its turn
(``_earlier_attempt``), on whichever branch it was made, and streams its reply. A regeneration
stores a reply only, as a sibling of the one it regenerates. A responder sees the reply's branch:
root to the reply's parent, never a message of another branch.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from msgspec import UNSET, UnsetType
from sqlalchemy import Connection, Text, bindparam, cast, insert, select, update

from chatstore.core.db import Database
from chatstore.core.driver import DriverStatement
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import is_id, new_message_row, utc_now
from chatstore.schemas import MessageIn, MessageRead, ReplyStarted
from chatstore.services.branches import NOT_A_MESSAGE, ancestors, branch_messages, message_of_session
from chatstore.services.errors import InvalidInput, NothingToRegenerate, SessionNotFound
from chatstore.services.owners import OwnerScope
from chatstore.services.replies.reply_store import new_reply_row

__all__ = ["CANNOT_RESUME", "Seqs", "Turn", "assign_seqs", "load_history", "start_regeneration", "start_turn"]

CANNOT_RESUME = (
    "continues an earlier attempt of this request, but none is stored: a retry resumes a stream "
    "only when every message carries the client id it had in the first attempt"
)
NOT_A_REPLY = "is not a reply of this session"


@dataclass(frozen=True, slots=True)
class Turn:
    """What a chat request stored: its messages, and the reply that answers them."""

    session_id: str
    message_ids: list[str]
    reply_id: str
    # The message the reply follows: the responder sees the branch down to it.
    reply_parent_id: str | None
    reply_seq: int
    reply_created_at: datetime
    new_messages: Sequence[MessageIn] = ()
    # Every message of the request was stored by an earlier attempt: its reply already exists.
    is_retry: bool = False
    # The session's ``metadata`` (JSON text) as the turn's write found it; None: not read.
    session_metadata_json: str | None = None

    def session_metadata(self) -> dict[str, Any] | None:
        """The session's ``metadata`` as the turn's write found it; None if it was not read."""
        return None if self.session_metadata_json is None else json.loads(self.session_metadata_json)

    @property
    def started(self) -> ReplyStarted:
        return ReplyStarted(
            session_id=self.session_id, message_ids=self.message_ids, assistant_message_id=self.reply_id
        )


class Seqs(NamedTuple):
    """The seq numbers taken, and the session's current message (with its depth) under the lock."""

    last: int
    current_message_id: str | None
    current_depth: int | None
    # The session's ``metadata`` as JSON text, decoded only by a responder that asks for it.
    metadata_json: str


# Run on the driver: these run in every turn (see ``chatstore.core.driver``).
_TAKE_SEQS = DriverStatement(
    update(sessions_table)
    .where(sessions_table.c.id == bindparam("session_id"))
    .values(
        last_seq=sessions_table.c.last_seq + bindparam("count"),
        message_count=sessions_table.c.message_count + bindparam("count"),
        last_message_at=bindparam("newest_at", type_=sessions_table.c.last_message_at.type),
        activity_at=bindparam("newest_at", type_=sessions_table.c.activity_at.type),
    )
    .returning(
        sessions_table.c.last_seq,
        sessions_table.c.current_message_id,
        # The current message is not changed here: its depth is read in the same statement.
        select(messages_table.c.depth)
        .where(messages_table.c.id == sessions_table.c.current_message_id)
        .scalar_subquery()
        .label("current_depth"),
        cast(sessions_table.c.metadata, Text).label("metadata_json"),
    )
)
_MAKE_CURRENT = DriverStatement(
    update(sessions_table)
    .where(sessions_table.c.id == bindparam("session_id"))
    .values(current_message_id=bindparam("message_id"))
)
# Rows of ``new_message_row``, which gives every column.
_INSERT_MESSAGES = DriverStatement(insert(messages_table), column_keys=messages_table.c.keys())


def assign_seqs(connection: Connection, session_id: str, count: int, newest_at: datetime) -> Seqs:
    """Take the session's next ``count`` seq numbers for messages whose newest is from ``newest_at``;
    returns the last of them and the session's current message and its depth, as they are under
    the lock. Raises ``SessionNotFound``.

    The only place a seq is given out (a turn, a regeneration, an import). Bumping
    ``sessions.last_seq`` takes the session row's write lock, so two processes appending to one
    session never get the same numbers; the messages get ``last - count + 1`` … ``last``.
    """
    row = _TAKE_SEQS.run(connection, {"session_id": session_id, "count": count, "newest_at": newest_at})
    if row is None:
        raise SessionNotFound(session_id)
    return Seqs(*row)


def _make_current(connection: Connection, session_id: str, message_id: str) -> None:
    _MAKE_CURRENT.run(connection, {"session_id": session_id, "message_id": message_id})


async def start_turn(
    db: Database,
    session_id: str,
    messages: Sequence[MessageIn],
    worker_id: str,
    *,
    scope: OwnerScope,
    parent_id: str | UnsetType | None = UNSET,
    resuming: bool = False,
) -> Turn:
    """Store the request's messages and the reply's ``in_progress`` row, in one committed transaction.

    ``parent_id``: the message the request's messages follow (UNSET: the end of the current
    branch; None: they start a new first message). ``resuming``: the client continues the stream
    of an earlier attempt (it sent ``Last-Event-ID``), so the earlier attempt must be found;
    storing the messages as new would store them twice. A session outside ``scope`` is unknown.
    """
    if not is_id(session_id):  # it comes in the body; an id in a path is checked by its type
        raise SessionNotFound(session_id)
    client_ids = [m.id for m in messages if m.id is not None]
    if len(set(client_ids)) != len(client_ids):
        index = next(i for i, m in enumerate(messages) if m.id is not None and client_ids.count(m.id) > 1)
        raise InvalidInput(f"messages[{index}].id", "the same id is given to two messages")
    if resuming and len(client_ids) != len(messages):
        raise InvalidInput("Last-Event-ID", CANNOT_RESUME, source="header")

    def append(connection: Connection) -> Turn:
        scope.require_session(connection, session_id)
        stored: dict[str, tuple[str, int]] = {}
        if client_ids:
            # Lock the session row first, so that two attempts of one request cannot both store it.
            locked = connection.execute(
                select(sessions_table.c.id).where(sessions_table.c.id == session_id).with_for_update()
            ).first()
            if locked is None:
                raise SessionNotFound(session_id)
            rows = connection.execute(
                select(messages_table.c.client_id, messages_table.c.id, messages_table.c.seq).where(
                    messages_table.c.session_id == session_id, messages_table.c.client_id.in_(client_ids)
                )
            ).all()
            stored = {row.client_id: (row.id, row.seq) for row in rows}
            if len(stored) == len(messages):
                earlier = _earlier_attempt(connection, session_id, [stored[str(m.id)] for m in messages])
                if earlier is not None:
                    return earlier
            if resuming:
                raise InvalidInput("Last-Event-ID", CANNOT_RESUME, source="header")
        now = utc_now()
        new = [message for message in messages if message.id not in stored]
        reply_seq, current, current_depth, metadata_json = assign_seqs(
            connection, session_id, len(new) + 1, now
        )
        if parent_id is UNSET:
            parent = current
            depth = 0 if current_depth is None else current_depth + 1
        elif parent_id is None:
            parent, depth = None, 0
        else:
            found = message_of_session(connection, session_id, parent_id) if is_id(parent_id) else None
            if found is None:
                raise InvalidInput("parent_id", NOT_A_MESSAGE)
            parent, depth = parent_id, found.depth + 1
        seq = reply_seq - len(new)
        rows, message_ids = [], []
        for message in messages:
            if message.id in stored:
                message_ids.append(stored[message.id][0])
                continue
            row = new_message_row(
                session_id=session_id,
                parent_id=parent,
                depth=depth,
                seq=seq,
                role=message.role,
                content=message.content,
                client_id=message.id,
                created_at=now,
            )
            rows.append(row)
            message_ids.append(str(row["id"]))
            parent = str(row["id"])
            depth += 1
            seq += 1
        reply = new_reply_row(session_id, parent, depth, reply_seq, worker_id, now)
        _INSERT_MESSAGES.run_many(connection, [*rows, reply])
        _make_current(connection, session_id, str(reply["id"]))
        return Turn(
            session_id,
            message_ids,
            str(reply["id"]),
            parent,
            reply_seq,
            now,
            new_messages=new,
            session_metadata_json=metadata_json,
        )

    return await db.write(append)


def _earlier_attempt(connection: Connection, session_id: str, stored: list[tuple[str, int]]) -> Turn | None:
    """The turn an earlier attempt of this request stored: its messages and the first reply below
    the last of them (later ones are its regenerations), wherever in the tree it was made."""
    last_id = stored[-1][0]
    reply = connection.execute(
        select(messages_table.c.id, messages_table.c.seq, messages_table.c.created_at)
        .where(messages_table.c.parent_id == last_id, messages_table.c.role == "assistant")
        .order_by(messages_table.c.seq)
        .limit(1)
    ).first()
    if reply is None:
        return None
    message_ids = [message_id for message_id, _ in stored]
    return Turn(session_id, message_ids, reply.id, last_id, reply.seq, reply.created_at, is_retry=True)


async def start_regeneration(
    db: Database, session_id: str, worker_id: str, *, scope: OwnerScope, message_id: str | UnsetType = UNSET
) -> Turn:
    """A new reply beside ``message_id`` (a reply: the new one answers the same history), or by
    default to the last user message of the current branch; it becomes the current message. The
    earlier replies stay stored."""

    def store_reply(connection: Connection) -> Turn:
        scope.require_session(connection, session_id)
        now = utc_now()
        reply_seq, current, _, metadata_json = assign_seqs(connection, session_id, 1, now)
        if message_id is UNSET:
            question_id = _last_user_message(connection, current)
            if question_id is None:
                raise NothingToRegenerate(session_id)
            depth = _depth_of_child(connection, question_id)
        else:
            replaced = message_of_session(connection, session_id, message_id) if is_id(message_id) else None
            if replaced is None or replaced.role != "assistant":
                raise InvalidInput("message_id", NOT_A_REPLY)
            question_id, depth = replaced.parent_id, replaced.depth
        reply = new_reply_row(session_id, question_id, depth, reply_seq, worker_id, now)
        _INSERT_MESSAGES.run(connection, reply)
        _make_current(connection, session_id, str(reply["id"]))
        return Turn(
            session_id, [], str(reply["id"]), question_id, reply_seq, now, session_metadata_json=metadata_json
        )

    return await db.write(store_reply)


def _depth_of_child(connection: Connection, parent_id: str) -> int:
    """The depth of a new child of the stored message ``parent_id``."""
    depth = connection.execute(
        select(messages_table.c.depth).where(messages_table.c.id == parent_id)
    ).scalar_one()
    return int(depth) + 1


def _last_user_message(connection: Connection, leaf_id: str | None) -> str | None:
    if leaf_id is None:
        return None
    branch = ancestors(leaf_id)
    return connection.execute(
        select(branch.c.id).where(branch.c.role == "user").order_by(branch.c.distance).limit(1)
    ).scalar()


async def load_history(db: Database, reply_parent_id: str | None) -> list[MessageRead]:
    """The branch down to ``reply_parent_id``, root first: what a responder answers."""
    return await db.read(lambda connection: branch_messages(connection, reply_parent_id))
