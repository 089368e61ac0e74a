"""Responders write the assistant's reply: an async iterator of text pieces for a conversation.

A real model plugs in by subclassing ``Responder``; the controllers and the storage of the reply
do not change. Raise ``ResponderError`` for a failure whose text the client may see; any other
exception is logged and reported as a generic failure.
"""

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from chatstore.core.db import Database
from chatstore.models import sessions_table
from chatstore.schemas import MessageIn, MessageRead

__all__ = ["Conversation", "MockResponder", "Responder", "read_session_metadata"]


async def read_session_metadata(db: Database, session_id: str) -> dict[str, Any]:
    """The session's ``metadata`` object; empty if the session is gone."""

    def select_metadata(connection: Connection) -> dict[str, Any] | None:
        return connection.execute(
            select(sessions_table.c.metadata).where(sessions_table.c.id == session_id)
        ).scalar()

    return await db.read(select_metadata) or {}


async def _no_metadata() -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class Conversation:
    """What a responder answers: the messages of this request, and the session's stored history."""

    session_id: str
    new_messages: Sequence[MessageIn]
    load_history: Callable[[], Awaitable[list[MessageRead]]]
    load_session_metadata: Callable[[], Awaitable[dict[str, Any]]] = _no_metadata

    async def history(self) -> list[MessageRead]:
        """The reply's branch: its stored messages from the first down to the reply's parent, this
        request's included, never a message of another branch.

        Loaded on demand, so that a responder that needs only the new messages costs nothing more
        as the session grows.
        """
        return await self.load_history()

    async def session_metadata(self) -> dict[str, Any]:
        """The session's ``metadata``, read on demand: a responder may take its settings from it."""
        return await self.load_session_metadata()


class Responder(ABC):
    @abstractmethod
    def reply(self, conversation: Conversation) -> AsyncIterator[str]:
        """Yield the reply in pieces, as they are produced."""

    async def aclose(self) -> None:  # noqa: B027  (a no-op unless the responder holds something)
        """Release what the responder holds, such as connections; called once, at shutdown."""


class MockResponder(Responder):
    """A deterministic reply derived from the last message, streamed word by word with a pause between."""

    quote_limit = 200

    def __init__(self, delay_ms: int) -> None:
        self._delay_s = delay_ms / 1000

    async def text_for(self, conversation: Conversation) -> str:
        if conversation.new_messages:
            last = conversation.new_messages[-1].content
        else:  # a regenerated reply answers the last stored user message
            last = next((m.content for m in reversed(await conversation.history()) if m.role == "user"), "")
        last = last.strip() or "(blank)"
        quote = last if len(last) <= self.quote_limit else last[: self.quote_limit] + "…"
        return (
            f"You said: {quote}\n\n"
            "This is chatstore's built-in mock responder. It streams this reply a word at a time, "
            "the way a language model would, and chatstore stores it with the session when it ends."
        )

    async def reply(self, conversation: Conversation) -> AsyncIterator[str]:
        for index, piece in enumerate(re.findall(r"\s*\S+", await self.text_for(conversation))):
            if index:
                # sleep(0) still yields to the loop, so a disconnect is noticed between pieces.
                await asyncio.sleep(self._delay_s)
            yield piece
