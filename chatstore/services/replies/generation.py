"""The generation of one reply in this process: the responder's task, and the reply in memory.

A ``Generation`` runs the responder and keeps what it produced; clients follow it (``follow``),
each from its own position (see ``events``). When the responder ends, is stopped, or fails, the
reply gets its final write (``reply_store.finish_reply``), shielded: it cannot be cancelled. If
the database fails that write, the reply is *kept*: this process holds its whole text and final
state until a retry lands (the ``Replies`` registry retries it beside the progress writes, with
backoff, and once more at shutdown). Its row stays ``in_progress`` meanwhile, under this
process's lease. Followers are told so (``REPLY_KEPT``), which is not the same as the final
write finding no row: that means the reply was deleted, with its session (``SESSION_DELETED``) or
with a message above it (``MESSAGE_DELETED``).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from chatstore.core.db import Database, DatabaseUnavailable
from chatstore.schemas import ErrorEvent, MessageRead, ReplyDelta, ReplyStarted
from chatstore.services.errors import ResponderError
from chatstore.services.replies.events import UNEXPECTED_FAILURE, StreamEvent, ends_after, final_event
from chatstore.services.replies.reply_store import finish_reply, session_exists
from chatstore.services.replies.turns import Turn, load_history
from chatstore.services.responders import Conversation, Responder, read_session_metadata
from chatstore.vocabulary import FinishReason, Status

__all__ = ["Generation"]

logger = logging.getLogger("chatstore.replies")

# A kept reply's final write is retried after the progress interval, then less and less often.
MAX_STORE_RETRY_S = 2.0


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
            load_history=lambda: load_history(db, turn.reply_parent_id),
            load_session_metadata=self._session_metadata,
        )
        self._pieces = responder.reply(conversation)
        self._parts: list[str] = []
        self.length = 0
        # How much of the text its progress writes have stored: the next chunk starts there.
        self.flushed_length = 0
        # Whether a progress write was ever asked to store a chunk: else the final write drops none.
        self.chunks_asked = False
        # Followers waiting for the next piece (or the end): woken once each, then forgotten.
        self._waiters: list[asyncio.Future[None]] = []
        self._stop_reason: FinishReason = "server_stopped"
        self._stopping = False
        self._started = False
        self._finalizing = False
        # Once it has ended: what the final write stores (status, finish reason, error).
        self._final: tuple[Status, FinishReason, str | None] | None = None
        # The reply as stored; None before, and after a final write that found no row.
        self.outcome: MessageRead | None = None
        # Whether a reply found deleted went with its session (else with a message above it).
        self.session_gone = True
        # Ended, but the database failed the final write: the reply lives here until it lands.
        self.kept = False
        # Its final write failed other than by the database being away: stored as failed, no text.
        self._unstorable = False
        self.failed_writes = 0
        self.retry_at = 0.0
        self._retry_delay_s = first_retry_s
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _session_metadata(self) -> dict[str, Any]:
        # The turn's own write read it with the session row; a retry's turn did not.
        metadata = self.turn.session_metadata()
        return (
            metadata if metadata is not None else await read_session_metadata(self._db, self.turn.session_id)
        )

    @property
    def content(self) -> str:
        return "".join(self._parts)

    def text_from(self, position: int) -> str:
        """The reply's text from ``position`` on, joined from the pieces past it only."""
        start, count = self.length, 0
        while start > position:
            count += 1
            start -= len(self._parts[-count])
        return "".join(self._parts[len(self._parts) - count :])[position - start :]

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
                finish_reply(
                    self._db,
                    self.turn.reply_id,
                    self._stored_content(),
                    *self._final,
                    chunks_asked=lambda: self.chunks_asked,
                )
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
        # No row: it was deleted (with its session or a message above it), which is no failure to retry.
        if stored is None:
            self.session_gone = not await session_exists(self._db, self.turn.session_id)
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
            parent_id=self.turn.reply_parent_id,
        )

    def _notify(self) -> None:
        # A piece nobody waits for costs nothing here; an Event made anew for every piece did.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a follower cancelled while it waited
                waiter.set_result(None)

    async def _changed(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def follow(self, position: int | None, started: ReplyStarted | None) -> AsyncIterator[StreamEvent]:
        """The reply's events after ``position`` (everything, ``start`` included, if None), live."""
        if position is None:
            yield StreamEvent("start", 0, started or self.turn.started)
            position = 0
        # The parts before ``index`` end at ``offset``; the client has the reply up to ``position``.
        index = offset = 0
        while True:
            if index < len(self._parts):
                # Every piece the client has not had yet, as one delta: a client that fell behind
                # (a slow connection, a busy loop) catches up in one event, whose id is still the
                # position after it.
                start, text = offset, "".join(self._parts[index:])
                index, offset = len(self._parts), start + len(text)
                if offset > position:
                    yield StreamEvent("delta", offset, ReplyDelta(content=text[max(position - start, 0) :]))
                    position = offset
                continue
            if self.finished.is_set():
                if ends_after(position, self.length):
                    end = self.length + 1
                    if self.kept:
                        yield final_event(end, self.as_it_will_be_stored(), kept=True)
                    elif self.outcome is None and self._unstorable:
                        yield StreamEvent("error", end, ErrorEvent(detail=UNEXPECTED_FAILURE))
                    else:
                        yield final_event(end, self.outcome, session_gone=self.session_gone)
                return
            # Nothing runs between the checks above and this: no piece can slip by unseen.
            await self._changed()
