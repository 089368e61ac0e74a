"""Turns: a chat request's messages and the reply that answers them, appended to a session.

One transaction appends the request's messages and the reply's ``in_progress`` row, numbered by
``assign_seqs``, and commits before the first event is sent. Messages that carry a client id
already stored in the session are not stored again: a retried request finds its turn
(``_earlier_attempt``) and streams its reply. A regeneration appends a reply only.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from chatstore.core.db import Database
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import is_id, new_message_row, utc_now
from chatstore.schemas import MessageIn, MessageRead, ReplyStarted
from chatstore.services.errors import InvalidInput, NothingToRegenerate, SessionNotFound
from chatstore.services.replies.reply_store import new_reply_row
from chatstore.services.rows import MESSAGE_COLUMNS, to_messages

__all__ = ["CANNOT_RESUME", "Turn", "assign_seqs", "load_history", "start_regeneration", "start_turn"]

CANNOT_RESUME = (
    "continues an earlier attempt of this request, but none is stored: a retry resumes a stream "
    "only when every message carries the client id it had in the first attempt"
)


@dataclass(frozen=True, slots=True)
class Turn:
    """What a chat request stored: its messages, and the reply that answers them."""

    session_id: str
    message_ids: list[str]
    reply_id: str
    # The responder sees the stored messages before this seq (a regeneration hides the old replies).
    history_before_seq: int
    reply_seq: int
    reply_created_at: datetime
    new_messages: Sequence[MessageIn] = ()
    # Every message of the request was stored by an earlier attempt: its reply already exists.
    is_retry: bool = False

    @property
    def started(self) -> ReplyStarted:
        return ReplyStarted(
            session_id=self.session_id, message_ids=self.message_ids, assistant_message_id=self.reply_id
        )


def assign_seqs(connection: Connection, session_id: str, count: int, newest_at: datetime) -> int | None:
    """Take the session's next ``count`` seq numbers for messages whose newest is from ``newest_at``;
    returns the last of them (None: no such session).

    The only place a seq is given out (a turn, a regeneration, an import). Bumping
    ``sessions.last_seq`` takes the session row's write lock, so two processes appending to one
    session never get the same numbers; the messages get ``last - count + 1`` … ``last``.
    """
    return connection.execute(
        update(sessions_table)
        .where(sessions_table.c.id == session_id)
        .values(last_seq=sessions_table.c.last_seq + count, last_message_at=newest_at, activity_at=newest_at)
        .returning(sessions_table.c.last_seq)
    ).scalar()


async def start_turn(
    db: Database,
    session_id: str,
    messages: Sequence[MessageIn],
    worker_id: str,
    *,
    resuming: bool = False,
) -> Turn:
    """Append the request's messages and the reply's ``in_progress`` row, in one committed transaction.

    ``resuming``: the client continues the stream of an earlier attempt (it sent ``Last-Event-ID``),
    so the earlier attempt must be found; storing the messages as new would store them twice.
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
        reply_seq = assign_seqs(connection, session_id, len(new) + 1, now)
        if reply_seq is None:
            raise SessionNotFound(session_id)
        seq = reply_seq - len(new)
        rows, message_ids = [], []
        for message in messages:
            if message.id in stored:
                message_ids.append(stored[message.id][0])
                continue
            row = new_message_row(
                session_id=session_id,
                seq=seq,
                role=message.role,
                content=message.content,
                client_id=message.id,
                created_at=now,
            )
            rows.append(row)
            message_ids.append(str(row["id"]))
            seq += 1
        reply = new_reply_row(session_id, reply_seq, worker_id, now)
        connection.execute(insert(messages_table), [*rows, reply])
        return Turn(session_id, message_ids, str(reply["id"]), reply_seq, reply_seq, now, new_messages=new)

    return await db.write(append)


def _earlier_attempt(connection: Connection, session_id: str, stored: list[tuple[str, int]]) -> Turn | None:
    """The turn an earlier attempt of this request stored: its messages and the reply after them."""
    last_seq = max(seq for _, seq in stored)
    reply = connection.execute(
        select(messages_table.c.id, messages_table.c.seq, messages_table.c.created_at)
        .where(
            messages_table.c.session_id == session_id,
            messages_table.c.seq > last_seq,
            messages_table.c.role == "assistant",
        )
        .order_by(messages_table.c.seq)
        .limit(1)
    ).first()
    if reply is None:
        return None
    message_ids = [message_id for message_id, _ in stored]
    return Turn(session_id, message_ids, reply.id, last_seq + 1, reply.seq, reply.created_at, is_retry=True)


async def start_regeneration(db: Database, session_id: str, worker_id: str) -> Turn:
    """A new reply to the session's last user message; the earlier replies stay stored."""

    def append_reply(connection: Connection) -> Turn:
        question_seq = connection.execute(
            select(messages_table.c.seq)
            .where(messages_table.c.session_id == session_id, messages_table.c.role == "user")
            .order_by(messages_table.c.seq.desc())
            .limit(1)
        ).scalar()
        if question_seq is None:
            exists = connection.execute(
                select(sessions_table.c.id).where(sessions_table.c.id == session_id)
            ).first()
            raise NothingToRegenerate(session_id) if exists else SessionNotFound(session_id)
        now = utc_now()
        reply_seq = assign_seqs(connection, session_id, 1, now)
        if reply_seq is None:  # deleted since the question was read (PostgreSQL reads are not locked)
            raise SessionNotFound(session_id)
        reply = new_reply_row(session_id, reply_seq, worker_id, now)
        connection.execute(insert(messages_table).values(**reply))
        return Turn(session_id, [], str(reply["id"]), question_seq + 1, reply_seq, now)

    return await db.write(append_reply)


async def load_history(db: Database, session_id: str, before_seq: int) -> list[MessageRead]:
    """The session's stored messages before ``before_seq``, in order: what a responder answers."""

    def select_history(connection: Connection) -> list[MessageRead]:
        rows = connection.execute(
            select(*MESSAGE_COLUMNS)
            .where(messages_table.c.session_id == session_id, messages_table.c.seq < before_seq)
            .order_by(messages_table.c.seq)
        ).all()
        return to_messages(rows)

    return await db.read(select_history)
