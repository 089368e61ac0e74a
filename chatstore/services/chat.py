"""Chat turns and the life of a reply: stored before the first event, kept whatever happens to the stream.

1. One transaction appends the request's messages and the reply's row (``in_progress``, owned by
   this process) to the session, taking the next ``seq`` numbers under the session row's lock. It
   commits before the first event is sent. Messages that carry a client id already stored in the
   session are not stored again: a retried request finds its turn and streams its reply.
2. A ``Generation`` task runs the responder and keeps the reply in memory. Clients follow it: the
   request that started it, and any number that re-attach (``follow``), each from its own position.
   Every ``progress_interval`` the ``Replies`` registry writes what each reply has so far to its row,
   in one transaction for all, and learns which replies were asked to stop from another process.
3. The reply's row gets its content and final status when the generation ends: ``complete``,
   ``error`` (the responder failed), or ``incomplete`` with the reason (stopped by the user, the
   client went away, the server stopped). That write cannot be cancelled.
4. If that write fails (the database is down, the disk is full), the reply is kept: this process
   holds its whole text and final state, retries the write with backoff beside the progress writes
   until it lands, and tries once more at shutdown. Its row stays ``in_progress`` meanwhile, under
   this process's lease. Clients are told so (``REPLY_KEPT``), which is not the same as the
   final write finding no row: that means the session was deleted (``SESSION_DELETED``).

A client following a reply that another process generates tails its row in the database.

Event ids are positions: a ``delta``'s id is the reply's length in characters once that delta is
added (``start`` is 0; ``done`` and ``error`` are one past the final length). A client that lost its
connection re-attaches with the last id it saw and receives exactly what follows it; one that has
the final event already is told there is nothing more (``attach`` returns None), so that it stops.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import anyio
import msgspec
from sqlalchemy import Connection, insert, select, update

from chatstore.core.db import Database, DatabaseUnavailable
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import is_id, new_id, utc_now
from chatstore.schemas import (
    ErrorEvent,
    FinishReason,
    MessageIn,
    MessageRead,
    ReplyDelta,
    ReplyStarted,
    Status,
)
from chatstore.services.errors import (
    InvalidInput,
    NothingToRegenerate,
    ReplyNotFound,
    ResponderError,
    SessionNotFound,
)
from chatstore.services.responders import Conversation, Responder, read_session_metadata
from chatstore.services.sessions import MESSAGE_COLUMNS, to_messages

__all__ = ["Generation", "Replies", "StreamEvent", "Turn", "start_regeneration", "start_turn"]

logger = logging.getLogger("chatstore.chat")


UNEXPECTED_FAILURE = "the reply failed because of an internal error"
SESSION_DELETED = "the session was deleted while the reply was streaming"
REPLY_KEPT = (
    "the reply could not be stored yet because the database failed; "
    "it is kept and will be stored when the database is back"
)
CANNOT_RESUME = (
    "continues an earlier attempt of this request, but none is stored: a retry resumes a stream "
    "only when every message carries the client id it had in the first attempt"
)
# A kept reply's final write is retried after the progress interval, then less and less often.
MAX_STORE_RETRY_S = 2.0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event: str
    id: int
    data: msgspec.Struct


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


def _message_row(
    session_id: str, seq: int, role: str, content: str, now: object, **extra: object
) -> dict[str, object]:
    row = {
        "id": new_id(),
        "session_id": session_id,
        "seq": seq,
        "role": role,
        "content": content,
        "status": "complete",
        "worker_id": None,
        "client_id": None,
        "created_at": now,
        "updated_at": now,
    }
    row.update(extra)
    return row


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
    if not is_id(session_id):
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
        new_count = sum(1 for m in messages if m.id not in stored)
        last_seq = connection.execute(
            update(sessions_table)
            .where(sessions_table.c.id == session_id)
            .values(last_seq=sessions_table.c.last_seq + new_count + 1, last_message_at=now, activity_at=now)
            .returning(sessions_table.c.last_seq)
        ).scalar()
        if last_seq is None:
            raise SessionNotFound(session_id)
        seq = last_seq - new_count
        rows, message_ids = [], []
        for message in messages:
            if message.id in stored:
                message_ids.append(stored[message.id][0])
                continue
            row = _message_row(session_id, seq, message.role, message.content, now, client_id=message.id)
            rows.append(row)
            message_ids.append(str(row["id"]))
            seq += 1
        reply = _message_row(
            session_id, last_seq, "assistant", "", now, status="in_progress", worker_id=worker_id
        )
        connection.execute(insert(messages_table), [*rows, reply])
        new = [message for message in messages if message.id not in stored]
        return Turn(session_id, message_ids, str(reply["id"]), last_seq, last_seq, now, new_messages=new)

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
    if not is_id(session_id):
        raise SessionNotFound(session_id)

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
        last_seq = connection.execute(
            update(sessions_table)
            .where(sessions_table.c.id == session_id)
            .values(last_seq=sessions_table.c.last_seq + 1, last_message_at=now, activity_at=now)
            .returning(sessions_table.c.last_seq)
        ).scalar()
        if last_seq is None:  # deleted since the question was read (PostgreSQL reads are not locked)
            raise SessionNotFound(session_id)
        reply = _message_row(
            session_id, last_seq, "assistant", "", now, status="in_progress", worker_id=worker_id
        )
        connection.execute(insert(messages_table).values(**reply))
        return Turn(session_id, [], str(reply["id"]), question_seq + 1, last_seq, now)

    return await db.write(append_reply)


async def load_history(db: Database, session_id: str, before_seq: int) -> list[MessageRead]:
    def select_history(connection: Connection) -> list[MessageRead]:
        rows = connection.execute(
            select(*MESSAGE_COLUMNS)
            .where(messages_table.c.session_id == session_id, messages_table.c.seq < before_seq)
            .order_by(messages_table.c.seq)
        ).all()
        return to_messages(rows)

    return await db.read(select_history)


async def read_reply(db: Database, reply_id: str) -> tuple[MessageRead, list[str]]:
    """A stored reply, and the ids of the messages it answers (those right before it)."""
    if not is_id(reply_id):
        raise ReplyNotFound(reply_id)

    def select_reply(connection: Connection) -> tuple[MessageRead, list[str]] | None:
        row = connection.execute(select(*MESSAGE_COLUMNS).where(messages_table.c.id == reply_id)).first()
        if row is None or row.role != "assistant":
            return None
        before = connection.execute(
            select(messages_table.c.id, messages_table.c.role)
            .where(messages_table.c.session_id == row.session_id, messages_table.c.seq < row.seq)
            .order_by(messages_table.c.seq.desc())
            .limit(100)
        ).all()
        asked: list[str] = []
        for message_id, role in before:
            if role == "assistant":
                break
            asked.append(message_id)
        return to_messages([row])[0], asked[::-1]

    found = await db.read(select_reply)
    if found is None:
        raise ReplyNotFound(reply_id)
    return found


async def finish_reply(
    db: Database, reply_id: str, content: str, status: Status, reason: FinishReason, error: str | None
) -> MessageRead | None:
    """Store the reply's content and final state; None if it is gone (its session was deleted)."""

    def store(connection: Connection) -> MessageRead | None:
        row = connection.execute(
            update(messages_table)
            .where(messages_table.c.id == reply_id)
            .values(
                content=content,
                status=status,
                finish_reason=reason,
                error=error,
                worker_id=None,
                stop_requested=False,
                updated_at=utc_now(),
            )
            .returning(*MESSAGE_COLUMNS)
        ).first()
        return None if row is None else to_messages([row])[0]

    return await db.write(store)


def _ends_after(position: int, length: int) -> bool:
    """Whether a client at ``position`` still needs the final event of a reply ``length`` long.

    Its id is ``length + 1``. A client past that saw more than was stored: the process generating
    the reply died before its last progress write. It gets the end too, with that same id, the end
    of the reply as stored: a client that reconnects with it (as EventSource does) is then told
    there is nothing more, instead of getting the end again and again.
    """
    return position != length + 1


def _final_event(position: int, message: MessageRead | None, *, kept: bool = False) -> StreamEvent:
    """``done`` with the stored reply; ``error`` if it failed, its session is gone, or (``kept``) it
    could not be stored yet: then ``message`` is the reply as it will be stored."""
    if kept:
        assert message is not None
        detail = REPLY_KEPT if message.status != "error" else f"{message.error}; {REPLY_KEPT}"
        return StreamEvent("error", position, ErrorEvent(detail=detail))
    if message is None:
        return StreamEvent("error", position, ErrorEvent(detail=SESSION_DELETED))
    if message.status == "error":
        return StreamEvent("error", position, ErrorEvent(detail=message.error or UNEXPECTED_FAILURE))
    return StreamEvent("done", position, message)


class Generation:
    """One reply generated in this process, and what it has produced so far; held until stored."""

    def __init__(
        self,
        db: Database,
        responder: Responder,
        turn: Turn,
        *,
        keep_generating: bool,
        first_retry_s: float = 0.25,
    ) -> None:
        self.turn = turn
        self.keep_generating = keep_generating
        self._db = db
        conversation = Conversation(
            session_id=turn.session_id,
            new_messages=turn.new_messages,
            load_history=lambda: load_history(db, turn.session_id, turn.history_before_seq),
            load_session_metadata=lambda: read_session_metadata(db, turn.session_id),
        )
        self._pieces = responder.reply(conversation)
        self._parts: list[str] = []
        self.length = 0
        self.flushed_length = 0
        self._changed = asyncio.Event()
        self._stop_reason: FinishReason = "server_stopped"
        self._stopping = False
        self._started = False
        self._finalizing = False
        # Once it has ended: what the final write stores (status, finish reason, error).
        self._final: tuple[Status, FinishReason, str | None] | None = None
        # The reply as stored; None before, and after a final write that found no row.
        self.outcome: MessageRead | None = None
        # Ended, but the database failed the final write: the reply lives here until it lands.
        self.kept = False
        # Its final write failed other than by the database being away: stored as failed, no text.
        self._unstorable = False
        self.failed_writes = 0
        self.retry_at = 0.0
        self._retry_delay_s = first_retry_s
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def content(self) -> str:
        return "".join(self._parts)

    def start(self, on_finished: Callable[["Generation"], None]) -> None:
        self._task = asyncio.create_task(self._run(on_finished), name=f"reply-{self.turn.reply_id}")

    def stop(self, reason: FinishReason) -> None:
        """End the reply now; it is stored ``incomplete`` with ``reason``."""
        if self._stopping or self._finalizing or self._task is None:
            return
        self._stopping = True
        self._stop_reason = reason
        # A task cancelled before it first runs never runs at all: it then sees _stopping instead.
        if self._started:
            self._task.cancel()

    async def _run(self, on_finished: Callable[["Generation"], None]) -> None:
        self._started = True
        status: Status = "incomplete"
        reason: FinishReason = self._stop_reason
        error: str | None = None
        try:
            if self._stopping:
                raise asyncio.CancelledError
            async for piece in self._pieces:
                if piece:
                    if "\0" in piece:  # PostgreSQL's text cannot hold NUL; both engines store the same
                        piece = piece.replace("\0", "\ufffd")
                    self._parts.append(piece)
                    self.length += len(piece)
                    self._notify()
            status, reason = "complete", "completed"
        except ResponderError as exc:
            status, reason, error = "error", "error", exc.detail
        except asyncio.CancelledError:
            reason = self._stop_reason
        except Exception:
            logger.exception("responder failed for session %s", self.turn.session_id)
            status, reason, error = "error", "error", UNEXPECTED_FAILURE
        # From here on a stop is too late (stop() sees _finalizing), and the write that keeps the
        # reply runs shielded from any other cancellation.
        self._finalizing = True
        with anyio.CancelScope(shield=True):
            aclose = getattr(self._pieces, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    logger.exception("responder failed to close for session %s", self.turn.session_id)
            self._final = (status, reason, error)
            self.kept = True  # until the final write lands
            try:
                await self.store()
            finally:
                self.finished.set()
                self._notify()
                on_finished(self)

    async def store(self) -> bool:
        """Make the final write; False if the database failed it, and the reply is kept to retry."""
        assert self._final is not None
        try:
            # Shielded: a write in flight when its caller is cancelled (at shutdown) still ends.
            stored = await asyncio.shield(
                finish_reply(self._db, self.turn.reply_id, self._stored_content(), *self._final)
            )
        except DatabaseUnavailable:
            self.failed_writes += 1
            self.retry_at = anyio.current_time() + self._retry_delay_s
            self._retry_delay_s = min(2 * self._retry_delay_s, MAX_STORE_RETRY_S)
            if self.failed_writes == 1:
                logger.warning(
                    "could not store the reply %s (%d characters); it is kept and the write retried",
                    self.turn.reply_id,
                    self.length,
                    exc_info=True,
                )
            return False
        except Exception:
            # Not the database being away but this write failing by itself (a bug): a retry would
            # fail forever, so the reply is stored as failed, without the text that would not go in.
            logger.exception("could not store the reply %s", self.turn.reply_id)
            if self._unstorable:  # not even that: the row keeps its last progress
                self.kept = False
                return True
            self._unstorable = True
            self._final = ("error", "error", UNEXPECTED_FAILURE)
            return await self.store()
        if self.failed_writes:
            logger.warning(
                "stored the reply %s, kept since the database failed (%d attempts)",
                self.turn.reply_id,
                self.failed_writes + 1,
            )
        # No row: its session was deleted, which is no failure to retry.
        self.outcome, self.kept = stored, False
        return True

    def _stored_content(self) -> str:
        return "" if self._unstorable else self.content

    def as_it_will_be_stored(self) -> MessageRead:
        """A kept reply as its final write will store it."""
        assert self._final is not None
        status, reason, error = self._final
        return MessageRead(
            id=self.turn.reply_id,
            session_id=self.turn.session_id,
            seq=self.turn.reply_seq,
            role="assistant",
            content=self._stored_content(),
            status=status,
            created_at=self.turn.reply_created_at,
            finish_reason=reason,
            error=error,
        )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, position: int | None, started: ReplyStarted | None) -> AsyncIterator[StreamEvent]:
        """The reply's events after ``position`` (everything, ``start`` included, if None), live."""
        if position is None:
            yield StreamEvent("start", 0, started or self.turn.started)
            position = 0
        index = offset = 0
        while True:
            changed = self._changed
            while index < len(self._parts):
                piece = self._parts[index]
                end = offset + len(piece)
                if end > position:
                    yield StreamEvent("delta", end, ReplyDelta(content=piece[max(position - offset, 0) :]))
                    position = end
                index, offset = index + 1, end
            if self.finished.is_set():
                if _ends_after(position, self.length):
                    end = self.length + 1
                    if self.kept:
                        yield _final_event(end, self.as_it_will_be_stored(), kept=True)
                    elif self.outcome is None and self._unstorable:
                        yield StreamEvent("error", end, ErrorEvent(detail=UNEXPECTED_FAILURE))
                    else:
                        yield _final_event(end, self.outcome)
                return
            await changed.wait()


@dataclass
class Replies:
    """The replies this process is generating, and the periodic write of their progress."""

    db: Database
    responder: Responder
    worker_id: str
    progress_interval_s: float
    poll_interval_s: float
    # Replies being generated, and those ended but kept (their final write failed) until stored.
    _active: dict[str, Generation] = field(default_factory=dict)
    _flusher: asyncio.Task[None] | None = None
    _flush_failing: bool = False

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_periodically(), name="chatstore-reply-progress")

    async def stop(self) -> None:
        """At shutdown: stop every reply (stored ``incomplete``, ``server_stopped``) and wait for them;
        then one last attempt to store the kept ones, with everything they generated."""
        for generation in list(self._active.values()):
            generation.stop("server_stopped")
        for generation in list(self._active.values()):
            await generation.finished.wait()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        database_away = False
        for generation in [g for g in self._active.values() if g.kept]:
            # Once one attempt fails the database is still away: the others would each wait as long.
            if not database_away and await generation.store():
                self._active.pop(generation.turn.reply_id, None)
                logger.warning("stored the reply %s at shutdown", generation.turn.reply_id)
                continue
            database_away = True
            logger.error(
                "could not store the reply %s before stopping: the database failed; its %d characters"
                " are lost, the row keeps what its last progress write stored",
                generation.turn.reply_id,
                generation.length,
            )

    def begin(self, turn: Turn, *, keep_generating: bool) -> Generation:
        generation = Generation(
            self.db,
            self.responder,
            turn,
            keep_generating=keep_generating,
            first_retry_s=self.progress_interval_s,
        )
        self._active[turn.reply_id] = generation
        generation.start(self._ended)
        return generation

    def _ended(self, generation: Generation) -> None:
        if not generation.kept:  # a kept one stays until its final write lands
            self._active.pop(generation.turn.reply_id, None)

    async def stream_new(self, generation: Generation) -> AsyncIterator[StreamEvent]:
        """The stream of the request that started ``generation``; if the client goes away, the
        reply stops there, unless the request asked to keep generating."""
        try:
            async for event in generation.follow(None, None):
                yield event
        finally:
            if not generation.keep_generating:
                generation.stop("client_disconnected")

    async def settle(self, generation: Generation) -> None:
        """Run after the response, however it ended: a reply that is not kept going is stored first."""
        if not generation.keep_generating:
            generation.stop("client_disconnected")
            await generation.finished.wait()

    async def attach(
        self, reply_id: str, position: int | None, started: ReplyStarted | None = None
    ) -> AsyncIterator[StreamEvent] | None:
        """A reply's events after ``position`` (all, ``start`` included, if None): live if this process
        generates it, else from its row. The reply is looked up first: an unknown one raises
        ``ReplyNotFound`` here, before any stream, and the row read for that is the one the stream
        starts from.

        None if the reply has ended and ``position`` is the id of its final event: nothing more will
        come, which the client is told before any stream (SSE clients stop on a 204)."""
        local = self._active.get(reply_id)
        if local is not None:
            if position is not None and local.finished.is_set() and not _ends_after(position, local.length):
                return None
            return local.follow(position, started)
        stored = await read_reply(self.db, reply_id)
        reply = stored[0]
        if (
            position is not None
            and reply.status != "in_progress"
            and not _ends_after(position, len(reply.content))
        ):
            return None
        return self._follow_stored(reply_id, position, started, stored)

    async def _follow_stored(
        self,
        reply_id: str,
        position: int | None,
        started: ReplyStarted | None,
        stored: tuple[MessageRead, list[str]] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        reply, asked = stored or await read_reply(self.db, reply_id)
        if position is None:
            yield StreamEvent(
                "start",
                0,
                started
                or ReplyStarted(
                    session_id=reply.session_id, message_ids=asked, assistant_message_id=reply.id
                ),
            )
            position = 0
        while True:
            if len(reply.content) > position:
                yield StreamEvent("delta", len(reply.content), ReplyDelta(content=reply.content[position:]))
                position = len(reply.content)
            if reply.status != "in_progress":
                if _ends_after(position, len(reply.content)):
                    yield _final_event(len(reply.content) + 1, reply)
                return
            await asyncio.sleep(self.poll_interval_s)
            # The process generating it may have ended meanwhile; it may be this one now.
            local = self._active.get(reply_id)
            if local is not None:
                async for event in local.follow(position, started):
                    yield event
                return
            try:
                reply, _ = await read_reply(self.db, reply_id)
            except ReplyNotFound:
                yield _final_event(position + 1, None)
                return

    async def request_stop(self, reply_id: str, wait_s: float) -> MessageRead:
        """Stop a reply wherever it streams; returns it as stored once it has ended (or after ``wait_s``)."""
        local = self._active.get(reply_id)
        if local is not None:
            local.stop("stopped")
            await local.finished.wait()
            if local.outcome is not None:
                return local.outcome
            if local.kept:
                return local.as_it_will_be_stored()
            raise ReplyNotFound(reply_id)
        if not is_id(reply_id):
            raise ReplyNotFound(reply_id)

        def flag(connection: Connection) -> None:
            connection.execute(
                update(messages_table)
                .where(messages_table.c.id == reply_id, messages_table.c.status == "in_progress")
                .values(stop_requested=True)
            )

        await self.db.write(flag)
        deadline = anyio.current_time() + wait_s
        while True:
            reply, _ = await read_reply(self.db, reply_id)
            if reply.status != "in_progress" or anyio.current_time() >= deadline:
                return reply
            await asyncio.sleep(self.poll_interval_s)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.progress_interval_s)
            try:
                wrote = await self.flush()
            except Exception:
                # Once per outage, not every interval; the replies go on streaming meanwhile.
                if not self._flush_failing:
                    logger.exception("could not write the progress of streaming replies; retrying")
                self._flush_failing = True
            else:
                if wrote and self._flush_failing:
                    logger.warning("writing the progress of streaming replies works again")
                    self._flush_failing = False
            await self.store_kept()

    async def store_kept(self) -> None:
        """Retry the final write of the kept replies whose next attempt is due."""
        now = anyio.current_time()
        due = [g for g in self._active.values() if g.kept and g.finished.is_set() and g.retry_at <= now]
        for generation in due:
            if not await generation.store():
                break  # the database still fails: the others wait for the next round
            self._active.pop(generation.turn.reply_id, None)

    async def flush(self) -> bool:
        """Write each streaming reply's new text to its row, and stop those asked to stop elsewhere;
        False if no reply is streaming, so there was nothing to write."""
        active = [g for g in self._active.values() if not g.finished.is_set()]
        if not active:
            return False
        progress = {g.turn.reply_id: (g.content, g.length) for g in active if g.length != g.flushed_length}
        ids = [g.turn.reply_id for g in active]

        def write(connection: Connection) -> dict[str, bool]:
            now = utc_now()
            for reply_id, (content, _) in progress.items():
                connection.execute(
                    update(messages_table)
                    .where(messages_table.c.id == reply_id, messages_table.c.status == "in_progress")
                    .values(content=content, updated_at=now)
                )
            rows = connection.execute(
                select(messages_table.c.id, messages_table.c.stop_requested).where(
                    messages_table.c.id.in_(ids)
                )
            ).all()
            return {row.id: row.stop_requested for row in rows}

        stop_requested = await self.db.write(write, priority=True)
        for generation in active:
            reply_id = generation.turn.reply_id
            if reply_id in progress:
                generation.flushed_length = progress[reply_id][1]
            if stop_requested.get(reply_id, True):  # asked to stop, or its session is gone
                generation.stop("stopped")
        return True
