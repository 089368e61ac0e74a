"""Deleting a message and everything below it.

The foreign key on ``parent_id`` cascades, in the database, within one transaction that holds the
session row's lock (no turn can add to the subtree meanwhile). SQLite runs a cascade as nested
triggers, at most 1000 levels deep, so a subtree deeper than ``CASCADE_BAND`` goes in bands, the
deepest first, each one cascading within itself. A reply streaming below the deleted message
stops at its process's next progress write, which finds its row gone; its stream ends with an
``error`` event saying it was deleted (``REPLY_DELETED``).
"""

from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from chatstore.core.db import Database
from chatstore.models import messages_table, sessions_table
from chatstore.services.branches import ancestors, descendants
from chatstore.services.errors import MessageNotFound
from chatstore.services.owners import OwnerScope

__all__ = ["CASCADE_BAND", "delete_message"]

CASCADE_BAND = 500


async def delete_message(db: Database, message_id: str, *, scope: OwnerScope) -> None:
    """Delete the message and what follows it; if the session's current branch went through it,
    the current message becomes its parent. Raises ``MessageNotFound``, also for a message outside the
    scope. The id is a UUID: the
    route's path parameter is typed."""

    def delete_subtree(connection: Connection) -> None:
        found = connection.execute(
            select(messages_table.c.session_id, messages_table.c.parent_id)
            .join(sessions_table, sessions_table.c.id == messages_table.c.session_id)
            .where(messages_table.c.id == message_id, scope.sessions())
        ).first()
        if found is None:
            raise MessageNotFound(message_id)
        session = connection.execute(
            select(sessions_table.c.current_message_id)
            .where(sessions_table.c.id == found.session_id)
            .with_for_update()
        ).first()
        below = descendants(message_id)
        count, height = connection.execute(select(func.count(), func.max(below.c.distance))).one()
        if session is None or count == 0:  # deleted meanwhile, with its session or above it
            raise MessageNotFound(message_id)
        current = session.current_message_id
        path = ancestors(current) if current is not None else None
        on_current_branch = (
            path is not None
            and connection.execute(select(path.c.id).where(path.c.id == message_id)).first() is not None
        )
        for floor in range(height - height % CASCADE_BAND, 0, -CASCADE_BAND):
            band = descendants(message_id)
            connection.execute(
                delete(messages_table).where(
                    messages_table.c.id.in_(select(band.c.id).where(band.c.distance >= floor))
                )
            )
        connection.execute(delete(messages_table).where(messages_table.c.id == message_id))
        values: dict[str, Any] = {"message_count": sessions_table.c.message_count - count}
        if on_current_branch:
            values["current_message_id"] = found.parent_id
        connection.execute(
            update(sessions_table).where(sessions_table.c.id == found.session_id).values(**values)
        )

    await db.write(delete_subtree)
