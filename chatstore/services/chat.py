"""A chat turn: store the request's messages, stream the reply, store the reply however the stream ends.

The life of a reply, as the database sees it:

1. One transaction appends the request's messages and the reply's row (``in_progress``, owned by
   this process) to the session, taking the next ``seq`` numbers from the session row under its
   write lock. It commits before the first event is sent.
2. The responder's pieces are sent as they come, and kept in memory.
3. When the stream ends, the reply's row gets its content and final status: ``complete``, ``error``
   (the responder failed) or ``incomplete`` (the client went away). That write runs shielded from
   the request's cancellation, and again from a background task in case the stream never ran.
"""

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import anyio
import msgspec
from sqlalchemy import Connection, insert, select, update

from chatstore.core.db import Database
from chatstore.models import ChatSession, Message
from chatstore.models.tables import is_id, new_id, utc_now
from chatstore.schemas import ErrorEvent, MessageIn, MessageRead, ReplyDelta, ReplyStarted, Status
from chatstore.services.errors import ResponderError, SessionNotFound
from chatstore.services.responders import Conversation, Responder, read_session_metadata
from chatstore.services.sessions import MESSAGE_COLUMNS, to_messages

__all__ = ["ReplyStream", "StreamEvent", "start_turn"]

logger = logging.getLogger("chatstore.chat")

sessions_table = ChatSession.__table__  # type: ignore[attr-defined]
messages_table = Message.__table__  # type: ignore[attr-defined]

UNEXPECTED_FAILURE = "the reply failed because of an internal error"
SESSION_DELETED = "the session was deleted while the reply was streaming"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of the reply stream. ``id`` is the reply's length in characters when it was sent
    (``start`` is 0; ``done`` and ``error`` are one past the final length), so it always increases."""

    event: str
    id: int
    data: msgspec.Struct


@dataclass(frozen=True, slots=True)
class Turn:
    session_id: str
    message_ids: list[str]
    reply_id: str
    reply_seq: int


async def start_turn(db: Database, session_id: str, messages: Sequence[MessageIn], worker_id: str) -> Turn:
    """Append the request's messages and the reply's ``in_progress`` row, in one committed transaction."""
    if not is_id(session_id):
        raise SessionNotFound(session_id)

    def append(connection: Connection) -> Turn | None:
        now = utc_now()
        count = len(messages) + 1
        last_seq = connection.execute(
            update(sessions_table)
            .where(sessions_table.c.id == session_id)
            .values(last_seq=sessions_table.c.last_seq + count, last_message_at=now, activity_at=now)
            .returning(sessions_table.c.last_seq)
        ).scalar()
        if last_seq is None:
            return None
        first_seq = last_seq - count + 1
        rows = [
            {
                "id": new_id(),
                "session_id": session_id,
                "seq": first_seq + offset,
                "role": message.role,
                "content": message.content,
                "status": "complete",
                "worker_id": None,
                "created_at": now,
                "updated_at": now,
            }
            for offset, message in enumerate(messages)
        ]
        rows.append(
            {
                "id": new_id(),
                "session_id": session_id,
                "seq": last_seq,
                "role": "assistant",
                "content": "",
                "status": "in_progress",
                "worker_id": worker_id,
                "created_at": now,
                "updated_at": now,
            }
        )
        connection.execute(insert(messages_table), rows)
        return Turn(session_id, [row["id"] for row in rows[:-1]], rows[-1]["id"], last_seq)

    turn = await db.write(append)
    if turn is None:
        raise SessionNotFound(session_id)
    return turn


async def load_history(db: Database, session_id: str, before_seq: int) -> list[MessageRead]:
    def select_history(connection: Connection) -> list[MessageRead]:
        rows = connection.execute(
            select(*MESSAGE_COLUMNS)
            .where(messages_table.c.session_id == session_id, messages_table.c.seq < before_seq)
            .order_by(messages_table.c.seq)
        ).all()
        return to_messages(rows)

    return await db.read(select_history)


async def finish_reply(db: Database, reply_id: str, content: str, status: Status) -> MessageRead | None:
    """Store the reply's content and final status; None if it is gone (its session was deleted)."""

    def store(connection: Connection) -> MessageRead | None:
        row = connection.execute(
            update(messages_table)
            .where(messages_table.c.id == reply_id)
            .values(content=content, status=status, worker_id=None, updated_at=utc_now())
            .returning(*MESSAGE_COLUMNS)
        ).first()
        return None if row is None else msgspec.convert(row, MessageRead, from_attributes=True)

    return await db.write(store)


class ReplyStream:
    """Streams one reply and guarantees that what was generated is stored, once, however it ends."""

    def __init__(
        self, db: Database, responder: Responder, turn: Turn, messages: Sequence[MessageIn]
    ) -> None:
        self._db = db
        self._turn = turn
        conversation = Conversation(
            session_id=turn.session_id,
            new_messages=messages,
            load_history=lambda: load_history(db, turn.session_id, turn.reply_seq),
            load_session_metadata=lambda: read_session_metadata(db, turn.session_id),
        )
        self._pieces = responder.reply(conversation)
        self._parts: list[str] = []
        self._finished = False
        self._events = self._run()

    @property
    def turn(self) -> Turn:
        return self._turn

    def events(self) -> AsyncIterator[StreamEvent]:
        return self._events

    async def _run(self) -> AsyncIterator[StreamEvent]:
        yield StreamEvent(
            "start",
            0,
            ReplyStarted(
                session_id=self._turn.session_id,
                message_ids=self._turn.message_ids,
                assistant_message_id=self._turn.reply_id,
            ),
        )
        length = 0
        status: Status = "incomplete"  # unless the loop below ends one way or the other
        failure = ""
        try:
            async for piece in self._pieces:
                if not piece:
                    continue
                self._parts.append(piece)
                length += len(piece)
                yield StreamEvent("delta", length, ReplyDelta(content=piece))
            status = "complete"
        except ResponderError as exc:
            status, failure = "error", exc.detail
        except Exception:
            logger.exception("responder failed for session %s", self._turn.session_id)
            status, failure = "error", UNEXPECTED_FAILURE
        finally:
            # Runs for every ending, the client going away included (CancelledError/GeneratorExit).
            stored = await self._finish(status)
        if stored is None:
            yield StreamEvent("error", length + 1, ErrorEvent(detail=SESSION_DELETED))
        elif status == "error":
            yield StreamEvent("error", length + 1, ErrorEvent(detail=failure))
        else:
            yield StreamEvent("done", length + 1, stored)

    async def close(self) -> None:
        """Stop the stream and store what there is: the backstop for a stream cut short or never run."""
        await self._events.aclose()  # type: ignore[attr-defined]
        if not self._finished:  # the stream never started
            await self._finish("incomplete")

    async def _finish(self, status: Status) -> MessageRead | None:
        self._finished = True
        # The request's cancel scope is cancelled when the client disconnects; without the shield
        # the awaits below would be cancelled too and the reply would never be stored.
        with anyio.CancelScope(shield=True):
            aclose = getattr(self._pieces, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    logger.exception("responder failed to close for session %s", self._turn.session_id)
            return await finish_reply(self._db, self._turn.reply_id, "".join(self._parts), status)
