"""Whether the database answers, and takes writes: what ``GET /healthz`` reports."""

import logging
from dataclasses import dataclass

from sqlalchemy import Connection, literal, select

from chatstore.core.db import Database, DatabaseUnavailable
from chatstore.models import sessions_table
from chatstore.services.workers import WorkerLease

__all__ = ["DatabaseProblem", "database_problem"]

logger = logging.getLogger("chatstore.health")

_DETAILS = {
    "unreachable": "the database does not answer",
    "busy": "the database has no connection free",
    "disk_full": "the database's disk is full: reads work, writes fail",
    "file_deleted": "the database file was deleted while the service runs",
}


@dataclass(frozen=True, slots=True)
class DatabaseProblem:
    """``reason`` is one of ``DatabaseUnavailable``'s, or None when the cause is not one of those."""

    detail: str
    reason: str | None = None


def _problem(error: DatabaseUnavailable, *, writing: bool) -> DatabaseProblem:
    detail = _DETAILS.get(error.reason, "the database is unavailable")
    if writing and error.reason in ("unreachable", "busy"):
        detail = f"writes fail: {detail}"
    return DatabaseProblem(detail, error.reason)


async def database_problem(db: Database, lease: WorkerLease) -> DatabaseProblem | None:
    """None when all is well: a read and a tiny write both work.

    The read takes one row of ``sessions``: the database is reachable and chatstore's tables are
    there (a bare ``SELECT 1`` would not touch SQLite's file). The write renews this process's lease,
    one small row that the answering process has every right to renew: a full disk still reads, so
    only a write can tell. (A write that sets a value to itself would not do: SQLite skips it.)
    """

    def probe(connection: Connection) -> None:
        connection.execute(select(literal(1)).select_from(sessions_table).limit(1)).all()

    try:
        await db.read(probe)
    except DatabaseUnavailable as exc:
        return _problem(exc, writing=False)  # the database layer has logged why
    except Exception as exc:
        logger.warning("health check: the database did not answer: %s: %s", type(exc).__name__, exc)
        return DatabaseProblem(_DETAILS["unreachable"])
    try:
        await lease.renew(priority=False)
    except DatabaseUnavailable as exc:
        return _problem(exc, writing=True)
    except Exception as exc:
        logger.warning("health check: the database took no write: %s: %s", type(exc).__name__, exc)
        return DatabaseProblem("writes fail")
    return None
