"""Owners: which sessions a caller may see, and assigning sessions stored without an owner.

Every service that reads or writes a session by id, lists sessions or searches takes an
``OwnerScope`` as a required keyword argument: the API resolves it once per request from the
caller (``chatstore/api/callers.py``). A session outside the scope is treated exactly as one that
does not exist, so an id of another user's session or message reveals nothing.
"""

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Update, false, select, true, update

from chatstore.core.db import Database
from chatstore.models import messages_table, sessions_table
from chatstore.services.errors import ReplyNotFound, SessionNotFound

__all__ = [
    "EVERY_SESSION",
    "MAX_USER_ID_LENGTH",
    "USER_ID_PATTERN",
    "OwnerScope",
    "require_reply_in_scope",
    "set_owner",
    "user_id_problem",
]

MAX_USER_ID_LENGTH = 200
# A user id: some character that is not a space, and no control characters (C0, DEL, C1). The same
# in Python and in the schema's ECMA-262 dialect.
USER_ID_PATTERN = (
    r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
)
_USER_ID = re.compile(USER_ID_PATTERN)


def user_id_problem(value: str) -> str | None:
    """What makes ``value`` unusable as a user id (from a header, a token, a query or the command
    line), or None."""
    if len(value) > MAX_USER_ID_LENGTH:
        return f"at most {MAX_USER_ID_LENGTH} characters, got {len(value)}"
    if not _USER_ID.fullmatch(value):
        return "must name a user: not only spaces, and no control characters"
    return None


@dataclass(frozen=True, slots=True)
class OwnerScope:
    """The sessions a request may touch: those of ``owner``, or every session when ``owner`` is None
    (open mode, and an operator's service key without ``X-Chatstore-User``). The sessions a request
    creates get ``owner`` as their owner. ``empty``: no session at all (a user's list narrowed to
    another owner)."""

    owner: str | None
    empty: bool = False

    def sessions(self) -> ColumnElement[bool]:
        """The condition on ``sessions`` rows: a session with no owner is outside every user's scope."""
        if self.empty:
            return false()
        return true() if self.owner is None else sessions_table.c.owner == self.owner

    def session(self, session_id: str) -> ColumnElement[bool]:
        return (sessions_table.c.id == session_id) & self.sessions()

    def owns_session(self, connection: Connection, session_id: str) -> bool:
        """Whether the session exists within the scope."""
        found = connection.execute(select(sessions_table.c.id).where(self.session(session_id))).first()
        return found is not None

    def owns_message(self, connection: Connection, message_id: str) -> bool:
        """Whether the message exists, in a session within the scope."""
        query = select(messages_table.c.id).where(messages_table.c.id == message_id)
        if self.owner is not None:
            query = query.join(sessions_table, sessions_table.c.id == messages_table.c.session_id).where(
                self.sessions()
            )
        return connection.execute(query).first() is not None

    def require_session(self, connection: Connection, session_id: str) -> None:
        """Raise ``SessionNotFound`` for a session outside an owner's scope. Without an owner it reads
        nothing: the statements that follow find an unknown id themselves."""
        if self.owner is not None and not self.owns_session(connection, session_id):
            raise SessionNotFound(session_id)


# Open mode and operators: no condition.
EVERY_SESSION = OwnerScope(None)


async def require_reply_in_scope(db: Database, reply_id: str, scope: OwnerScope) -> None:
    """Raise ``ReplyNotFound`` for a reply in a session outside an owner's scope, before anything looks
    for it in this process's memory or flags it to stop."""
    if scope.owner is not None and not await db.read(
        lambda connection: scope.owns_message(connection, reply_id)
    ):
        raise ReplyNotFound(reply_id)


async def set_owner(db: Database, owner: str, *, session_id: str | None = None) -> int:
    """Give ``session_id`` (or, without it, every session with no owner) to ``owner``; returns how
    many sessions changed. For a deployment that moves from open mode to users."""

    def assign(connection: Connection) -> int:
        statement: Update = update(sessions_table).values(owner=owner)
        if session_id is None:
            statement = statement.where(sessions_table.c.owner.is_(None))
        else:
            statement = statement.where(sessions_table.c.id == session_id)
        return connection.execute(statement).rowcount

    return await db.write(assign)
