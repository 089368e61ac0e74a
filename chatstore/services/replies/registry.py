"""The registry of replies: the ones this process generates, and the one way to follow any reply.

``Replies.begin`` starts a ``Generation``; ``Replies.follow`` gives a reply's events after a
position, whichever process generates it: live from memory when it is generated here, else by
tailing its row in the database (every ``poll_interval_s``) until it ends, or until this process
takes over its generation. Every ``progress_interval_s`` the registry writes the text each reply
added since the last time (a chunk beside its row), in one transaction for all, learns which replies
were asked to stop from another process, and retries the final write of the replies kept since the
database failed it.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from sqlalchemy import Connection

from chatstore.core.db import Database
from chatstore.schemas import MessageRead, ReplyDelta, ReplyStarted
from chatstore.services.errors import ReplyNotFound
from chatstore.services.owners import OwnerScope, require_reply_in_scope
from chatstore.services.replies.events import StreamEvent, ends_after, final_event
from chatstore.services.replies.generation import Generation
from chatstore.services.replies.reply_store import flag_stop, is_session_stored, read_reply, write_progress
from chatstore.services.replies.turns import Turn
from chatstore.services.responders import Responder

__all__ = ["Replies"]

logger = logging.getLogger("chatstore.replies")

StoredReply = tuple[MessageRead, list[str]]


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

    async def close(self) -> None:
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

    def _generated_here(self, reply_id: str) -> Generation | None:
        return self._active.get(reply_id)

    async def stream_to_requester(self, generation: Generation) -> AsyncIterator[StreamEvent]:
        """The stream of the request that started ``generation``; if the client goes away, the
        reply stops there, unless the request asked to keep generating."""
        try:
            async for event in generation.follow(None, None):
                yield event
        finally:
            if not generation.keep_generating:
                generation.stop("client_disconnected")

    async def wait_until_stored(self, generation: Generation) -> None:
        """Run after the response, however it ended: a reply that is not kept going is stopped and
        stored before the request is over."""
        if not generation.keep_generating:
            generation.stop("client_disconnected")
            await generation.finished.wait()

    async def follow(
        self,
        reply_id: str,
        position: int | None,
        started: ReplyStarted | None = None,
        *,
        scope: OwnerScope,
    ) -> AsyncIterator[StreamEvent] | None:
        """A reply's events after ``position`` (all, ``start`` included, if None), wherever it is
        generated. The reply is looked up first: an unknown one (or one outside ``scope``) raises
        ``ReplyNotFound`` here, before any stream, and the row read for that is the one the stream
        starts from.

        None if the reply has ended and ``position`` is the id of its final event: nothing more will
        come, which the client is told before any stream (SSE clients stop on a 204)."""
        await require_reply_in_scope(self.db, reply_id, scope)
        local = self._generated_here(reply_id)
        # The messages it answers are read only for the ``start`` event, if it is sent and not given.
        asked = position is None and started is None
        stored = None if local is not None else await read_reply(self.db, reply_id, asked=asked)
        if position is not None:
            if local is not None:
                ended, length = local.finished.is_set(), local.length
            else:
                assert stored is not None
                ended, length = stored[0].status != "in_progress", len(stored[0].content)
            if ended and not ends_after(position, length):
                return None
        return self._events(reply_id, position, started, local, stored)

    async def _events(
        self,
        reply_id: str,
        position: int | None,
        started: ReplyStarted | None,
        local: Generation | None,
        stored: StoredReply | None,
    ) -> AsyncIterator[StreamEvent]:
        session_id = None if stored is None else stored[0].session_id
        while True:
            if local is not None:  # generated here: live, from memory
                async for event in local.follow(position, started):
                    yield event
                return
            if stored is None:
                try:
                    stored = await read_reply(self.db, reply_id, asked=position is None and started is None)
                except ReplyNotFound:
                    # Deleted with its session, or with a message above it.
                    session_gone = session_id is None or not await is_session_stored(self.db, session_id)
                    yield final_event((position or 0) + 1, None, session_gone=session_gone)
                    return
            reply, asked = stored
            session_id = reply.session_id
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
            if len(reply.content) > position:
                yield StreamEvent("delta", len(reply.content), ReplyDelta(content=reply.content[position:]))
                position = len(reply.content)
            if reply.status != "in_progress":
                if ends_after(position, len(reply.content)):
                    yield final_event(len(reply.content) + 1, reply)
                return
            await asyncio.sleep(self.poll_interval_s)
            # The process generating it may have ended meanwhile; it may be this one now.
            local, stored = self._generated_here(reply_id), None

    async def stop(self, reply_id: str, wait_s: float, *, scope: OwnerScope) -> MessageRead:
        """The user asks to stop a reply, wherever it is generated; returns it as stored once it has
        ended (or after ``wait_s``, if another process generates it). A reply outside ``scope`` is
        unknown."""
        await require_reply_in_scope(self.db, reply_id, scope)
        local = self._generated_here(reply_id)
        if local is not None:
            local.stop("stopped")
            await local.finished.wait()
            if local.outcome is not None:
                return local.outcome
            if local.kept:
                return local.as_it_will_be_stored()
            raise ReplyNotFound(reply_id)
        await flag_stop(self.db, reply_id)
        deadline = anyio.current_time() + wait_s
        while True:
            reply, _ = await read_reply(self.db, reply_id, asked=False)
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
        """Write the text each streaming reply added since its last progress write, and stop those
        asked to stop elsewhere; False if no reply is streaming, so there was nothing to write."""
        active = [g for g in self._active.values() if not g.finished.is_set()]
        if not active:
            return False
        flushed_to = {g.turn.reply_id: g.length for g in active if g.length != g.flushed_length}
        chunks = {
            g.turn.reply_id: (g.flushed_length, g.text_from(g.flushed_length))
            for g in active
            if g.turn.reply_id in flushed_to
        }
        ids = [g.turn.reply_id for g in active]
        for generation in active:
            # Before the write is queued: a final write that follows it must drop what it stores.
            generation.chunks_asked = generation.chunks_asked or generation.turn.reply_id in chunks

        def write(connection: Connection) -> dict[str, bool]:
            return write_progress(connection, chunks, ids)

        # One transaction for all, ahead of the requests' writes (see ``Database.write``).
        stop_requested = await self.db.write(write, priority=True)
        for generation in active:
            reply_id = generation.turn.reply_id
            if reply_id in flushed_to:
                generation.flushed_length = flushed_to[reply_id]
            if stop_requested.get(reply_id, True):  # asked to stop, or its session is gone
                generation.stop("stopped")
        return True
