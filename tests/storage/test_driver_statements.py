"""``DriverStatement``: a turn's writes run on the driver store, return and fail as SQLAlchemy's own
execution of the same statement does, on each engine and driver."""

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, bindparam, create_engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from chatstore.core.db import Database, DatabaseUnavailable, open_database, resolve_url
from chatstore.core.driver import DriverStatement
from chatstore.core.migrations import upgrade_schema
from chatstore.core.settings import Settings
from chatstore.models import sessions_table
from chatstore.models.tables import new_session_row

T = TypeVar("T")

S = sessions_table
# A repeated parameter, a datetime (text on SQLite), values of the statement's own (a literal and
# None), and RETURNING.
RENAME = (
    update(S)
    .where(S.c.id == bindparam("session_id"))
    .values(
        name=bindparam("name"),
        last_seq=S.c.last_seq + bindparam("count"),
        message_count=S.c.message_count + bindparam("count"),
        updated_at=bindparam("at", type_=S.c.updated_at.type),
        activity_at=bindparam("at", type_=S.c.activity_at.type),
        forked_from_session_id=None,
        current_message_id="not a message",
    )
    .returning(S.c.last_seq, S.c.message_count, S.c.name)
)
AT = datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC)


def on_the_app_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = await open_database(settings)
        try:
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(run())


def two_sessions(connection: Connection) -> None:
    for session_id in ("driver", "sqlalchemy"):
        connection.execute(insert(S), new_session_row(id=session_id, meta={"a": [1]}))


def stored_as_text(engine: Engine, session_id: str) -> dict[str, Any]:
    """The row as the database holds it, read back without SQLAlchemy's types."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT name, last_seq, message_count, CAST(updated_at AS TEXT) AS updated_at, "
                "CAST(activity_at AS TEXT) AS activity_at, forked_from_session_id, current_message_id "
                "FROM sessions WHERE id = :id"
            ),
            {"id": session_id},
        ).one()
    return dict(row._mapping)


@pytest.mark.parametrize("blocking", [False, True], ids=["app's driver", "blocking driver"])
def test_it_stores_and_returns_what_sqlalchemy_does_with_the_same_statement(
    settings: Settings, db_engine: Engine, blocking: bool
) -> None:
    statement = DriverStatement(RENAME)
    params = {"name": "renamed", "count": 2, "at": AT}
    if blocking:  # psycopg on PostgreSQL takes parameters by name, asyncpg and SQLite by position
        asyncio.run(upgrade_schema(settings))
        engine = create_engine(resolve_url(settings.database_url, blocking=True))
        with engine.begin() as connection:
            two_sessions(connection)
            by_driver = statement.run(connection, {**params, "session_id": "driver"})
            by_sqlalchemy = connection.execute(RENAME, {**params, "session_id": "sqlalchemy"}).one()
        engine.dispose()
    else:

        def both(connection: Connection) -> tuple[Any, Any]:
            two_sessions(connection)
            return (
                statement.run(connection, {**params, "session_id": "driver"}),
                connection.execute(RENAME, {**params, "session_id": "sqlalchemy"}).one(),
            )

        by_driver, by_sqlalchemy = on_the_app_database(settings, lambda database: database.write(both))

    assert by_driver == tuple(by_sqlalchemy) == (2, 2, "renamed")
    assert stored_as_text(db_engine, "driver") == stored_as_text(db_engine, "sqlalchemy")
    with db_engine.connect() as connection:
        updated_at = connection.execute(select(S.c.updated_at).where(S.c.id == "driver")).scalar_one()
    assert updated_at == AT


def test_many_rows_go_in_one_call_and_a_driver_error_is_sqlalchemys(
    settings: Settings, db_engine: Engine
) -> None:
    inserted = DriverStatement(insert(S), column_keys=S.c.keys())
    rows = [new_session_row(id=f"s{n}", name=f"session {n}", meta={"n": n}) for n in range(3)]

    def insert_twice(connection: Connection) -> None:
        inserted.run_many(connection, rows)
        inserted.run(connection, rows[1])

    def insert_once(connection: Connection) -> None:
        inserted.run_many(connection, rows)

    async def work(database: Database) -> None:
        with pytest.raises(IntegrityError):  # as SQLAlchemy raises it: a refusal, not an outage
            await database.write(insert_twice)
        await database.write(insert_once)

    on_the_app_database(settings, work)
    with db_engine.connect() as connection:
        stored = connection.execute(select(S.c.id, S.c.name, S.c.metadata).order_by(S.c.id)).all()
    assert [tuple(row) for row in stored] == [(f"s{n}", f"session {n}", {"n": n}) for n in range(3)]


def test_a_connection_lost_under_it_is_an_outage_and_the_next_write_gets_a_new_one(
    backend: str, settings: Settings, db_engine: Engine
) -> None:
    if backend != "postgres":
        pytest.skip("a SQLite connection is a file: it is not lost, its disk fails (test_database_failures)")
    statement = DriverStatement(RENAME)

    def rename_after_losing_the_connection(connection: Connection) -> object:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with db_engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return statement.run(connection, {"name": "x", "count": 1, "at": AT, "session_id": "s"})

    def rename(connection: Connection) -> object:
        two_sessions(connection)
        return statement.run(connection, {"name": "x", "count": 1, "at": AT, "session_id": "driver"})

    async def work(database: Database) -> object:
        with pytest.raises(DatabaseUnavailable):
            await database.write(rename_after_losing_the_connection)
        return await database.write(rename)

    # A pool of one: the next write gets a new connection, not the lost one.
    assert on_the_app_database(dataclasses.replace(settings, db_pool_size=1), work) == (1, 1, "x")
