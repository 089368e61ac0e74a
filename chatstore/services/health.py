"""Whether the database answers: what ``GET /healthz`` reports."""

import logging

from sqlalchemy import Connection, literal, select

from chatstore.core.db import Database
from chatstore.models import sessions_table

__all__ = ["database_answers"]

logger = logging.getLogger("chatstore.health")


async def database_answers(db: Database) -> bool:
    """Read one row of ``sessions``: the database is reachable and chatstore's tables are there.

    A bare ``SELECT 1`` would not do on SQLite, where it never touches the file.
    """

    def probe(connection: Connection) -> None:
        connection.execute(select(literal(1)).select_from(sessions_table).limit(1)).all()

    try:
        await db.read(probe)
    except Exception as exc:
        logger.warning("health check: the database did not answer: %s: %s", type(exc).__name__, exc)
        return False
    return True
