"""Versioned schema: upgrading a real 0.1.0 database, revisions against the models, locks, refusals.

The 0.1.0 databases are SQL dumps written by that release's code (``tests/data/build_0_1_0.py``),
with what its API answered about them beside each one.
"""

import asyncio
import json
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from litestar.testing import TestClient
from sqlalchemy import BigInteger, Column, DateTime, Engine, MetaData, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from chatstore.__main__ import EXIT_DATABASE, main
from chatstore.app import create_app
from chatstore.core.db import open_database, resolve_url
from chatstore.core.migrations import (
    _SCHEMA_LOCK_KEY,
    MIGRATIONS,
    SchemaError,
    SchemaState,
    Upgrade,
    _config,
    differences_from_models,
    read_schema_state,
    upgrade_schema,
)
from chatstore.core.settings import Settings, SettingsError
from chatstore.services.owners import OwnerScope
from chatstore.services.search import search
from tests.conftest import postgres_url, skip_or_fail_in_ci
from tests.helpers import DatabaseView, assert_search_index_whole, parse_sse
from tests.servers import ServerProcess, running_servers, start_server

DATA = Path(__file__).parents[1] / "data" / "0.1.0"
UPGRADE_LINES = ("created the schema at revision", "recorded the chatstore 0.1.0 database", "upgraded the")
NOTHING_TO_DO = "nothing to upgrade"
# This code's newest revision, and the one a later release would add after it.
NEWEST = "0006"
# The revision before it.
PREVIOUS = "0005"
NEXT = f"{int(NEWEST) + 1:04}"


# --- Helpers ------------------------------------------------------------------------------------


def load_0_1_0(backend: str, database_url: str) -> None:
    """Write the 0.1.0 dump of ``backend`` into the (empty) database of ``database_url``."""
    if backend == "sqlite":
        connection = sqlite3.connect(make_url(database_url).database, isolation_level=None)
        statement = ""
        # Statement by statement, as the sqlite3 shell reads a dump (its FTS5 table is written into
        # sqlite_schema directly, and later statements must see it).
        for line in (DATA / "sqlite.sql").read_text().splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                connection.execute(statement)
                statement = ""
        connection.close()
        return
    with psycopg.connect(database_url, autocommit=True) as connection:
        unaccent = connection.execute(
            "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'unaccent'"
        ).fetchone()
        if unaccent is None:
            connection.execute("CREATE EXTENSION unaccent WITH SCHEMA public")
            unaccent = ("public",)
        # The dump names the schema unaccent was in where it was made.
        sql = (DATA / "postgres.sql").read_text().replace("public.unaccent", f'"{unaccent[0]}".unaccent')
        connection.execute(sql.encode())


def recorded_api(backend: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"{backend}-api.json").read_text()))


def as_chains(recorded: dict[str, Any]) -> dict[str, Any]:
    """What 0.1.0 answered, with the fields of conversations as trees (revision 0002) that a 0.1.0
    session has once upgraded: each message follows the one before it (so it has no sibling), the
    newest is current, the current branch is all of them, and none is a fork."""
    current = {}
    for session_id, detail in recorded["details"].items():
        messages = detail["messages"]
        for previous, message in zip([None, *messages], messages, strict=False):
            message["parent_id"] = previous and previous["id"]
            message["sibling_ids"] = [message["id"]]
        current[session_id] = messages[-1]["id"] if messages else None
        detail["session"]["current_message_id"] = current[session_id]
        detail["session"]["forked_from"] = None
    for session in [*recorded["sessions"], *recorded["sessions_by_activity"]]:
        session["current_message_id"] = current[session["id"]]
        session["forked_from"] = None
    return recorded


def describe_schema(engine: Engine) -> dict[str, Any]:
    """Every object of the schema as the database itself states it (names of the schema taken out)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("SELECT type, name, tbl_name, sql FROM sqlite_master").all()
            return {"objects": sorted(tuple(row) for row in rows)}
        schema = connection.exec_driver_sql("SELECT current_schema()").scalar()

        def rows(sql: str) -> list[tuple[Any, ...]]:
            found = connection.execute(text(sql), {"schema": schema}).all()
            return sorted(tuple(str(v).replace(f"{schema}.", "") for v in row) for row in found)

        return {
            "columns": rows(
                "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default, "
                "is_generated, generation_expression FROM information_schema.columns "
                "WHERE table_schema = :schema"
            ),
            "constraints": rows(
                "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
                "FROM pg_constraint AS c JOIN pg_namespace AS n ON n.oid = c.connamespace "
                "WHERE n.nspname = :schema"
            ),
            "indexes": rows("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :schema"),
            "search_configuration": rows(
                "SELECT m.maptokentype, m.mapseqno, m.mapdict::regdictionary::text "
                "FROM pg_ts_config_map AS m JOIN pg_ts_config AS c ON c.oid = m.mapcfg "
                "JOIN pg_namespace AS n ON n.oid = c.cfgnamespace "
                "WHERE c.cfgname = 'chatstore_search' AND n.nspname = :schema"
            ),
            "triggers": rows(
                "SELECT t.tgname FROM pg_trigger AS t JOIN pg_class AS r ON r.oid = t.tgrelid "
                "JOIN pg_namespace AS n ON n.oid = r.relnamespace "
                "WHERE n.nspname = :schema AND NOT t.tgisinternal"
            ),
        }


def without_version_table(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: [row for row in rows if "chatstore_alembic_version" not in " ".join(map(str, row))]
        for kind, rows in schema.items()
    }


def snapshot(engine: Engine) -> dict[str, Any]:
    """The schema and every row of chatstore's tables (and the version table, if there is one)."""
    state: dict[str, Any] = {"schema": describe_schema(engine)}
    with engine.connect() as connection:
        tables = ["sessions", "messages", "workers", "chatstore_alembic_version"]
        for table in tables:
            if engine.dialect.has_table(connection, table):
                rows = connection.exec_driver_sql(f"SELECT * FROM {table}").all()
                state[table] = sorted(tuple(str(v) for v in row) for row in rows)
    return state


def db_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, *args: str
) -> Any:
    """Run ``python -m chatstore db …`` in this process; returns (exit status, stdout, stderr)."""
    monkeypatch.setenv("CHATSTORE_DATABASE_URL", url)
    with pytest.raises(SystemExit) as exited:
        main(["db", *args])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def scripts_with(tmp_path: Path, name: str, body: str) -> Path:
    """A copy of chatstore's migrations with one more revision file: what the next release adds."""
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / name).write_text(body)
    return location


def scripts_until(tmp_path: Path, last: str) -> Path:
    """A copy of chatstore's migrations that ends at revision ``last``, to pin what the next one does."""
    location = tmp_path / f"migrations-{last}"
    shutil.copytree(MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    for revision in (location / "versions").glob("*.py"):
        if revision.name[:4].isdigit() and revision.name[:4] > last:
            revision.unlink()
    return location


def scripts_until_revision_1(tmp_path: Path) -> Path:
    return scripts_until(tmp_path, "0001")


# One file, as the README says, after this code's newest revision: archive a session (a
# column on a table messages refer to, so that SQLite copies the table: its messages must survive
# the copy, and the search index's triggers on it are made again), and index by it.
NEXT_REVISION = f'''"""Sessions can be archived.

Revision ID: {NEXT}
Revises: {NEWEST}
"""

import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{NEWEST}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    sqlite = connection.dialect.name == "sqlite"
    # SQLite drops the triggers on the table it copies (the search index's): they are made again.
    triggers = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'sessions'"
    ).scalars().all() if sqlite else []
    with op.batch_alter_table("sessions", recreate="always" if sqlite else "auto") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_sessions_archived", ["archived_at"])
    for trigger in triggers:
        op.execute(trigger)
    op.execute("UPDATE sessions SET archived_at = created_at WHERE name = 'Imported'")


def downgrade() -> None:
    raise NotImplementedError
'''

# Changes the schema, then fails: none of it may stay.
FAILING_NEXT_REVISION = f'''"""Fails half-way.

Revision ID: {NEXT}
Revises: {NEWEST}
"""

import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{NEWEST}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("archive", sa.Column("id", sa.String(), primary_key=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("pinned", sa.Boolean(), nullable=True))
    op.execute("UPDATE sessions SET name = 'changed'")
    raise RuntimeError("the upgrade broke half-way")


def downgrade() -> None:
    raise NotImplementedError
'''


# Fields of a session that releases after 0.1.0 added; the rest must read back as 0.1.0 answered.
ADDED_SESSION_FIELDS = {"preview", "owner"}


def as_0_1_0(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in session.items() if k not in ADDED_SESSION_FIELDS} for session in sessions]


# The SQLite search index's triggers since revision 0005: on messages, and on sessions.
SEARCH_TRIGGERS = {
    "messages_search_insert",
    "messages_search_update",
    "messages_search_delete",
    "messages_search_owner",
    "messages_search_session_delete",
}


def downgrade_to(db_engine: Engine, revision: str) -> None:
    with db_engine.begin() as connection:
        command.downgrade(_config(MIGRATIONS, connection), revision)


def upgrade(settings: Settings, script_location: Path = MIGRATIONS) -> Upgrade:
    return asyncio.run(upgrade_schema(settings, script_location=script_location))


def state_of(settings: Settings, script_location: Path = MIGRATIONS) -> SchemaState:
    return asyncio.run(read_schema_state(settings, script_location=script_location))


# --- Upgrading a real 0.1.0 database -------------------------------------------------------------


def test_a_0_1_0_database_upgrades_and_reads_back_as_before(
    backend: str,
    database_url: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load_0_1_0(backend, database_url)
    expected = as_chains(recorded_api(backend))

    status, out, _ = db_command(monkeypatch, capsys, database_url, "current")
    assert status == 0
    assert out.startswith("the database is a chatstore 0.1.0 one, without a version table"), out
    assert "run python -m chatstore db upgrade" in out

    with TestClient(create_app(settings)) as client:  # start-up upgrades it

        def get(path: str, **params: Any) -> Any:
            response = client.get(path, params=params)
            assert response.status_code == 200, response.text
            return response.json()

        sessions = get("/api/sessions", limit=100)
        assert as_0_1_0(sessions) == expected["sessions"]
        assert as_0_1_0(get("/api/sessions", limit=100, order="activity")) == expected["sessions_by_activity"]
        for session_id, detail in expected["details"].items():
            read = get(f"/api/sessions/{session_id}")
            assert {**read, "session": as_0_1_0([read["session"]])[0]} == detail
            # What this release added: the start of the first user message, from the upgraded rows.
            first = next((m["content"] for m in detail["messages"] if m["role"] == "user"), None)
            assert read["session"]["preview"] == (first and first[:200])
        for q, page in expected["searches"].items():
            assert get("/api/search", q=q, limit=50) == page, q
        # The reply another host still streams is left to it.
        statuses = {m["status"] for d in expected["details"].values() for m in d["messages"]}
        assert statuses == {"complete", "incomplete", "error", "in_progress"}
        # The index keeps up with what is written after the upgrade.
        session_id = expected["sessions"][0]["id"]
        response = client.post(
            "/api/chat",
            json={"session_id": session_id, "messages": [{"role": "user", "content": "zeppelin"}]},
        )
        assert response.status_code == 200, response.text
        [stored] = parse_sse(response.text)[0].data["message_ids"]
        assert stored in [hit["message_id"] for hit in get("/api/search", q="zeppelin")["results"]]

    status, out, _ = db_command(monkeypatch, capsys, database_url, "current")
    assert (status, out) == (0, f"the database is at revision {NEWEST}, the newest\n")


def test_db_upgrade_records_a_0_1_0_database_as_revision_1(
    backend: str,
    database_url: str,
    settings: Settings,
    db_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load_0_1_0(backend, database_url)
    before = snapshot(db_engine)

    done = upgrade(settings, scripts_until_revision_1(tmp_path))
    assert done.describe() == "recorded the chatstore 0.1.0 database as revision 0001, the newest"

    after = snapshot(db_engine)
    assert after.pop("chatstore_alembic_version") == [("0001",)]
    after["schema"] = without_version_table(after["schema"])
    assert after == before  # nothing else was touched
    # The revisions after it run on from there.
    status, out, _ = db_command(monkeypatch, capsys, database_url, "upgrade")
    assert (status, out) == (0, f"upgraded the database from revision 0001 to {NEWEST}, the newest\n")
    status, out, _ = db_command(monkeypatch, capsys, database_url, "upgrade")
    assert (status, out) == (0, f"the database is at revision {NEWEST}, the newest: nothing to upgrade\n")


def test_db_upgrade_takes_a_0_1_0_database_to_the_newest_revision(
    backend: str, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_0_1_0(backend, database_url)

    status, out, _ = db_command(monkeypatch, capsys, database_url, "upgrade")

    assert (status, out) == (
        0,
        f"recorded the chatstore 0.1.0 database as revision 0001, then upgraded it to {NEWEST}, the newest\n",
    )


# --- Revision 0002: conversations as trees -------------------------------------------------------


def parents_by_seq(db: DatabaseView, session_id: str) -> list[tuple[int, int | None]]:
    """Each message's seq and its parent's seq, in seq order: the tree of a session, in plain SQL."""
    rows = db.rows(
        "SELECT m.seq, p.seq AS parent_seq FROM messages AS m LEFT JOIN messages AS p ON p.id = m.parent_id "
        "WHERE m.session_id = :session_id ORDER BY m.seq",
        session_id=session_id,
    )
    return [(row["seq"], row["parent_seq"]) for row in rows]


def current_seq(db: DatabaseView, session_id: str) -> int | None:
    return db.scalar(
        "SELECT m.seq FROM sessions AS s JOIN messages AS m ON m.id = s.current_message_id WHERE s.id = :id",
        id=session_id,
    )


def delete_message_in_sql(backend: str, database_url: str, db: DatabaseView, message_id: str) -> None:
    if backend == "sqlite":  # foreign keys are enforced per connection, when asked for
        with sqlite3.connect(make_url(database_url).database, isolation_level=None) as connection:
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("DELETE FROM messages WHERE id = ?", (message_id,))
        return
    db.execute("DELETE FROM messages WHERE id = :id", id=message_id)


REGENERATED = "0b0b0b0b-0000-4000-8000-000000000001"
# A 0.1.0 session as that release stored it: replies its regenerate appended after the replies to
# the same question, and an assistant message a client sent (complete, no finish reason), which is
# a message like any other. (role, status, finish_reason), in seq order.
REGENERATED_MESSAGES = [
    ("user", "complete", None),
    ("assistant", "complete", "completed"),
    ("assistant", "complete", "completed"),  # regenerated
    ("assistant", "incomplete", "stopped"),  # regenerated again
    ("user", "complete", None),
    ("assistant", "complete", None),  # the client's
    ("assistant", "error", "error"),
    ("assistant", "incomplete", "server_stopped"),  # regenerated
    ("user", "complete", None),
    ("assistant", "complete", "completed"),
]


def store_0_1_0_regenerated_session(db: DatabaseView) -> None:
    at = "2026-11-30 12:00:00+00:00"
    db.execute(
        "INSERT INTO sessions (id, name, metadata, created_at, updated_at, last_seq, last_message_at, "
        "activity_at) VALUES (:id, 'Regenerated', '{}', :at, :at, :count, :at, :at)",
        id=REGENERATED,
        at=at,
        count=len(REGENERATED_MESSAGES),
    )
    for seq, (role, status, reason) in enumerate(REGENERATED_MESSAGES, start=1):
        db.execute(
            "INSERT INTO messages (id, session_id, seq, role, content, status, created_at, updated_at, "
            "finish_reason, stop_requested) VALUES (:id, :session_id, :seq, :role, :content, :status, "
            ":at, :at, :reason, :stopped)",
            id=f"0b0b0b0b-0000-4000-8000-{seq:012d}",
            session_id=REGENERATED,
            seq=seq,
            role=role,
            content=f"message {seq}",
            status=status,
            at=at,
            reason=reason,
            stopped=False,
        )


def test_revision_2_makes_each_0_1_0_session_a_chain_by_seq(
    backend: str, database_url: str, settings: Settings, db: DatabaseView
) -> None:
    load_0_1_0(backend, database_url)
    sessions = [row["id"] for row in db.rows("SELECT id FROM sessions")]
    last_seqs = {row["id"]: row["last_seq"] for row in db.rows("SELECT id, last_seq FROM sessions")}

    upgrade(settings)

    for session_id in sessions:
        count = last_seqs[session_id]
        assert parents_by_seq(db, session_id) == [
            (seq, seq - 1 if seq > 1 else None) for seq in range(1, count + 1)
        ]
        assert current_seq(db, session_id) == (count or None)
    assert db.scalar("SELECT count(*) FROM messages") == 22  # every message kept


def test_revision_2_makes_a_0_1_0_regenerated_reply_a_sibling_of_the_one_it_replaced(
    backend: str, database_url: str, settings: Settings, db: DatabaseView
) -> None:
    load_0_1_0(backend, database_url)
    store_0_1_0_regenerated_session(db)

    upgrade(settings)

    assert parents_by_seq(db, REGENERATED) == [
        (1, None),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 4),  # the next question followed the newest reply
        (6, 5),
        (7, 6),
        (8, 6),
        (9, 8),
        (10, 9),
    ]
    assert current_seq(db, REGENERATED) == 10
    # The foreign key cascades, in the database: deleting a reply deletes what follows it.
    delete_message_in_sql(backend, database_url, db, "0b0b0b0b-0000-4000-8000-000000000004")
    assert [seq for seq, _ in parents_by_seq(db, REGENERATED)] == [1, 2, 3]


def test_revision_2_gives_an_empty_session_no_current_message(
    database_url: str, settings: Settings, db: DatabaseView, tmp_path: Path
) -> None:
    upgrade(settings, scripts_until_revision_1(tmp_path))
    db.execute(
        "INSERT INTO sessions (id, name, metadata, created_at, updated_at, last_seq, activity_at) "
        "VALUES (:id, NULL, '{}', :t, :t, 0, :t)",
        id=REGENERATED,
        t="2026-01-01 00:00:00+00:00",
    )

    assert upgrade(settings).describe() == f"upgraded the database from revision 0001 to {NEWEST}, the newest"

    assert db.rows("SELECT current_message_id FROM sessions") == [{"current_message_id": None}]


# --- Revision 0003: each message's depth -------------------------------------------------------


def test_revision_3_gives_each_message_the_number_of_messages_above_it(
    backend: str, database_url: str, settings: Settings, db: DatabaseView
) -> None:
    load_0_1_0(backend, database_url)
    store_0_1_0_regenerated_session(db)

    upgrade(settings)

    depths = db.rows("SELECT seq, depth FROM messages WHERE session_id = :id ORDER BY seq", id=REGENERATED)
    # The tree of the test above: the regenerated replies are siblings, one deep.
    assert [(row["seq"], row["depth"]) for row in depths] == [
        (1, 0),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 2),
        (6, 3),
        (7, 4),
        (8, 4),
        (9, 5),
        (10, 6),
    ]
    # Every message of the 0.1.0 sessions, chains by seq, is one deeper than its parent.
    mismatched = db.rows(
        "SELECT m.id FROM messages AS m LEFT JOIN messages AS p ON p.id = m.parent_id "
        "WHERE m.depth <> COALESCE(p.depth + 1, 0)"
    )
    assert mismatched == []
    assert db.scalar("SELECT max(depth) FROM messages WHERE session_id <> :id", id=REGENERATED) > 0


# --- Revision 0004: session owners --------------------------------------------------------------


def test_revision_4_keeps_every_row_and_leaves_every_session_without_an_owner(
    backend: str, database_url: str, settings: Settings, db_engine: Engine, db: DatabaseView, tmp_path: Path
) -> None:
    load_0_1_0(backend, database_url)
    upgrade(settings, scripts_until(tmp_path, "0003"))
    before = snapshot(db_engine)

    done = upgrade(settings, scripts_until(tmp_path, "0004"))
    assert done.describe() == "upgraded the database from revision 0003 to 0004, the newest"

    after = snapshot(db_engine)
    assert after["messages"] == before["messages"]
    assert len(after["messages"]) == 22
    # Every session as it was, with one more column: its owner, null.
    owner_column = [column["name"] for column in inspect(db_engine).get_columns("sessions")].index("owner")
    assert [row[:owner_column] + row[owner_column + 1 :] for row in after["sessions"]] == before["sessions"]
    assert db.rows("SELECT DISTINCT owner FROM sessions") == [{"owner": None}]
    if backend == "sqlite":  # added in place: the search triggers are still on the table
        triggers = {row[1] for row in after["schema"]["objects"] if row[0] == "trigger"}
        assert triggers == {"messages_search_insert", "messages_search_update", "messages_search_delete"}


# --- Revision 0005: the owner in the search index ----------------------------------------------


def hits(settings: Settings, q: str, owner: str | None) -> set[str]:
    async def run() -> set[str]:
        database = await open_database(settings)
        try:
            page = await search(database, q, scope=OwnerScope(owner), limit=100)
        finally:
            await database.close()
        return {hit.message_id for hit in page.results}

    return asyncio.run(run())


def test_revision_5_indexes_each_message_under_its_sessions_owner(
    backend: str, database_url: str, settings: Settings, db_engine: Engine, db: DatabaseView, tmp_path: Path
) -> None:
    load_0_1_0(backend, database_url)
    upgrade(settings, scripts_until(tmp_path, "0004"))
    # Owners given at revision 0004, whose index knows none.
    sessions = [row["id"] for row in db.rows("SELECT id FROM sessions ORDER BY id")]
    db.execute("UPDATE sessions SET owner = 'alice' WHERE id = :id", id=sessions[0])
    db.execute("UPDATE sessions SET owner = 'bob' WHERE id <> :id", id=sessions[0])
    words = {row["id"]: row["session_id"] for row in db.rows("SELECT id, session_id FROM messages")}
    before = snapshot(db_engine)

    done = upgrade(settings, scripts_until(tmp_path, "0005"))

    assert done.describe() == "upgraded the database from revision 0004 to 0005, the newest"
    after = snapshot(db_engine)
    assert after["messages"] == before["messages"] and after["sessions"] == before["sessions"]
    if backend == "postgres":  # nothing changes there
        assert after["schema"] == before["schema"]
    else:
        triggers = {row[1] for row in after["schema"]["objects"] if row[0] == "trigger"}
        assert triggers == SEARCH_TRIGGERS
        assert_search_index_whole(db)
    # Every 0.1.0 message holds the word "the" or not; each owner finds only theirs.
    every = hits(settings, "the", None)
    assert every
    assert hits(settings, "the", "alice") == {m for m in every if words[m] == sessions[0]}
    assert hits(settings, "the", "bob") == {m for m in every if words[m] != sessions[0]}
    assert hits(settings, "the", "carol") == set()


def test_revision_5_downgrades_to_the_index_of_revision_4(
    backend: str, database_url: str, settings: Settings, db_engine: Engine, db: DatabaseView, tmp_path: Path
) -> None:
    load_0_1_0(backend, database_url)
    upgrade(settings, scripts_until(tmp_path, "0004"))
    at_revision_4 = snapshot(db_engine)
    found_at_revision_4 = hits(settings, "the", None)
    upgrade(settings)

    downgrade_to(db_engine, "0004")

    assert snapshot(db_engine) == at_revision_4  # the same objects, written the same way, and rows
    if backend == "sqlite":
        assert_search_index_whole(db)
        found = db.rows(
            "SELECT m.id FROM messages_search JOIN messages AS m ON m.rowid = messages_search.rowid "
            "WHERE messages_search MATCH 'the'"
        )
        assert {row["id"] for row in found} == found_at_revision_4
    # And up again.
    assert upgrade(settings).describe() == f"upgraded the database from revision 0004 to {NEWEST}, the newest"


def test_at_the_newest_revision_every_search_trigger_is_there(
    backend: str, database_url: str, settings: Settings, db_engine: Engine, db: DatabaseView
) -> None:
    """A later revision that copies ``sessions`` or ``messages`` must make their triggers again."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL's index is a generated column, kept by no trigger")
    load_0_1_0(backend, database_url)
    upgrade(settings)
    triggers = {row[1] for row in describe_schema(db_engine)["objects"] if row[0] == "trigger"}
    assert triggers == SEARCH_TRIGGERS
    assert_search_index_whole(db)


# --- Revision 0006: reply chunks ----------------------------------------------------------------


def test_revision_6_adds_the_reply_chunks_and_keeps_every_row(
    backend: str, database_url: str, settings: Settings, db_engine: Engine, tmp_path: Path
) -> None:
    load_0_1_0(backend, database_url)
    upgrade(settings, scripts_until(tmp_path, PREVIOUS))
    before = snapshot(db_engine)

    done = upgrade(settings)

    assert done.describe() == f"upgraded the database from revision {PREVIOUS} to 0006, the newest"
    after = snapshot(db_engine)
    for table in ("sessions", "messages", "workers"):
        assert after[table] == before[table]
    assert len(after["messages"]) == 22
    with db_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM reply_chunks").scalar() == 0
    if backend == "sqlite":  # a table of its own: the search triggers are still on messages
        objects = after["schema"]["objects"]
        triggers = {row[1] for row in objects if row[0] == "trigger"}
        assert triggers == SEARCH_TRIGGERS
        [chunks_sql] = [row[3] for row in objects if row[0] == "table" and row[1] == "reply_chunks"]
        assert chunks_sql.rstrip().endswith("WITHOUT ROWID")


def test_revision_6_downgraded_folds_the_chunks_into_their_replies(
    database_url: str, settings: Settings, db: DatabaseView, db_engine: Engine
) -> None:
    upgrade(settings)
    at = "2026-12-01 12:00:00+00:00"
    db.execute(
        "INSERT INTO sessions (id, name, metadata, created_at, updated_at, last_seq, activity_at) "
        "VALUES ('s', 'streaming', '{}', :at, :at, 2, :at)",
        at=at,
    )
    for seq, (message_id, status, content) in enumerate(
        [("question", "complete", "a question"), ("reply", "in_progress", "")], start=1
    ):
        db.execute(
            "INSERT INTO messages (id, session_id, seq, role, content, status, created_at, updated_at, "
            "stop_requested) VALUES (:id, 's', :seq, 'user', :content, :status, :at, :at, false)",
            id=message_id,
            seq=seq,
            content=content,
            status=status,
            at=at,
        )
    for position, chunk in [(7, "long "), (0, "Half "), (12, "reply"), (5, "a ")]:  # stored out of order
        db.execute(
            "INSERT INTO reply_chunks (reply_id, position, content) VALUES ('reply', :position, :chunk)",
            position=position,
            chunk=chunk,
        )

    downgrade_to(db_engine, "-1")

    assert state_of(settings).revision == PREVIOUS
    assert not inspect(db_engine).has_table("reply_chunks")
    assert db.rows("SELECT id, content, status FROM messages ORDER BY seq") == [
        {"id": "question", "content": "a question", "status": "complete"},
        {"id": "reply", "content": "Half a long reply", "status": "in_progress"},
    ]


# --- The revisions against the 0.1.0 schema and the models -------------------------------------


def test_revision_1_from_empty_is_exactly_the_0_1_0_schema(
    backend: str, database_url: str, settings: Settings, db_engine: Engine, tmp_path: Path
) -> None:
    done = upgrade(settings, scripts_until_revision_1(tmp_path))
    assert done.describe() == "created the schema at revision 0001, the newest"

    if backend == "sqlite":  # SQLite keeps each object's SQL as it was written: compare it all
        old_url = f"sqlite:///{tmp_path / 'old.db'}"
        load_0_1_0(backend, old_url)
        old_engine = create_engine(resolve_url(old_url, blocking=True))
        assert describe_schema(old_engine) == without_version_table(describe_schema(db_engine))
        old_engine.dispose()
        return
    # PostgreSQL states a constraint differently once it has gone through a dump: compare the dumps.
    if shutil.which("pg_dump") is None:
        skip_or_fail_in_ci("comparing PostgreSQL schemas needs pg_dump (PostgreSQL's client programs)")
    with db_engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE chatstore_alembic_version")
    assert ddl_lines(pg_dump(database_url)) == ddl_lines((DATA / "postgres.sql").read_text())


def pg_dump(database_url: str) -> str:
    url = make_url(database_url)
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    plain = url.difference_update_query(["options"]).render_as_string(hide_password=False)
    dumped = subprocess.run(
        ["pg_dump", "--schema", schema, "--schema-only", "--no-owner", "--no-privileges", plain],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dumped.replace(f"{schema}.", "")


def ddl_lines(dump: str) -> list[str]:
    """A dump's statements but its rows, comments, psql commands, and the schema and search path."""
    skipped = ("--", "\\", "INSERT INTO", "CREATE SCHEMA", "SELECT pg_catalog.set_config('search_path'")
    return [line for line in dump.splitlines() if line.strip() and not line.startswith(skipped)]


def test_the_revisions_give_the_schema_of_the_models(settings: Settings, db_engine: Engine) -> None:
    upgrade(settings)
    with db_engine.connect() as connection:
        assert differences_from_models(connection) == []


def test_a_model_change_without_a_revision_fails_the_comparison(
    settings: Settings, db_engine: Engine
) -> None:
    upgrade(settings)
    changed = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["sessions"].append_column(Column("archived_at", DateTime(timezone=True), nullable=True))
    changed.tables["messages"].c.seq.type = BigInteger()

    with db_engine.connect() as connection:
        found = differences_from_models(connection, changed)

    # Alembic gives an added column as a tuple, a changed one as a list of tuples.
    entries = [diff[0] if isinstance(diff, list) else diff for diff in found]
    assert sorted((entry[0], entry[2]) for entry in entries) == [
        ("add_column", "sessions"),
        ("modify_type", "messages"),
    ], found


def test_a_foreign_key_whose_on_delete_differs_from_the_model_fails_the_comparison(
    settings: Settings, db_engine: Engine
) -> None:
    upgrade(settings)
    changed = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    [parent] = changed.tables["messages"].c.parent_id.foreign_keys
    parent.constraint.ondelete = "SET NULL"  # the database has CASCADE

    with db_engine.connect() as connection:
        found = differences_from_models(connection, changed)

    assert sorted(diff[0] for diff in found) == ["add_fk", "remove_fk"], found


# --- The next revision --------------------------------------------------------------------------


def test_the_next_revision_is_one_file_and_keeps_every_row(
    backend: str, database_url: str, settings: Settings, db_engine: Engine, db: DatabaseView, tmp_path: Path
) -> None:
    load_0_1_0(backend, database_url)
    upgrade(settings)
    before = snapshot(db_engine)
    scripts = scripts_with(tmp_path, f"{NEXT}_sessions_can_be_archived.py", NEXT_REVISION)

    done = upgrade(settings, scripts)

    assert done.describe() == f"upgraded the database from revision {NEWEST} to {NEXT}, the newest"
    after = snapshot(db_engine)
    assert after["chatstore_alembic_version"] == [(NEXT,)]
    assert len(after["messages"]) == len(before["messages"]) == 22  # the copy of sessions cascaded nothing
    assert after["messages"] == before["messages"]
    archived = [row for row in after["sessions"] if row[-1] != "None"]
    assert [row[1] for row in archived] == ["Imported"]
    if backend == "sqlite":  # the search index's triggers are all there, and keep it whole
        triggers = {row[1] for row in after["schema"]["objects"] if row[0] == "trigger"}
        assert triggers == SEARCH_TRIGGERS
        db.execute("UPDATE sessions SET owner = 'alice' WHERE name = 'Imported'")
        db.execute("DELETE FROM sessions WHERE name <> 'Imported'")
        assert_search_index_whole(db)


def test_a_failed_upgrade_leaves_the_revision_it_had(
    database_url: str, settings: Settings, db_engine: Engine, tmp_path: Path
) -> None:
    upgrade(settings)
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sessions (id, name, metadata, created_at, updated_at, last_seq, activity_at) "
                "VALUES ('s', 'kept', '{}', :t, :t, 0, :t)"
            ),
            {"t": "2026-01-01 00:00:00+00:00"},
        )
    before = snapshot(db_engine)
    scripts = scripts_with(tmp_path, f"{NEXT}_fails.py", FAILING_NEXT_REVISION)

    with pytest.raises(RuntimeError, match="half-way"):
        upgrade(settings, scripts)

    assert snapshot(db_engine) == before
    assert state_of(settings, scripts).revision == NEWEST


# --- A database newer than the code -------------------------------------------------------------


@pytest.mark.server
def test_a_database_newer_than_the_code_is_refused_and_left_as_it_is(
    database_url: str,
    settings: Settings,
    db_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upgrade(settings, scripts_with(tmp_path, f"{NEXT}_sessions_can_be_archived.py", NEXT_REVISION))
    before = snapshot(db_engine)

    server = start_server(database_url, tmp_path / "server.log")
    assert server.process.wait(30) != 0
    log = server.log()
    assert "Traceback" not in log
    [refusal] = log.strip().splitlines()
    assert refusal.startswith(
        f"ERROR:    the database is at revision {NEXT}, which this chatstore does not have"
    )
    assert f"this one's newest revision is {NEWEST}" in refusal
    assert "nothing was changed" in refusal

    status, _, err = db_command(monkeypatch, capsys, database_url, "upgrade")
    assert status == EXIT_DATABASE
    assert f"revision {NEXT}" in err and NEWEST in err
    status, out, _ = db_command(monkeypatch, capsys, database_url, "current")
    assert status == 0
    assert out.startswith(f"the database is at revision {NEXT}, which this chatstore does not have")

    # The app's own start-up (any other launcher) refuses too, under the lock.
    with pytest.raises(BaseExceptionGroup) as caught, TestClient(create_app(settings)):
        pass
    assert caught.group_contains(SchemaError, match=f"revision {NEXT}")
    assert snapshot(db_engine) == before


# --- CHATSTORE_MIGRATE=off ----------------------------------------------------------------------


def test_with_upgrades_off_start_up_refuses_until_db_upgrade_ran(
    backend: str,
    database_url: str,
    tmp_path: Path,
    db_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    load_0_1_0(backend, database_url)
    settings = Settings(database_url=database_url, migrate="off")
    before = snapshot(db_engine)

    refusal = "CHATSTORE_MIGRATE=off: run python -m chatstore db upgrade first"
    with pytest.raises(BaseExceptionGroup) as caught, TestClient(create_app(settings)):
        pass
    assert caught.group_contains(SchemaError, match=refusal)
    assert snapshot(db_engine) == before

    assert db_command(monkeypatch, capsys, database_url, "upgrade")[0] == 0
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200


def test_an_unknown_upgrade_mode_names_its_variable() -> None:
    with pytest.raises(SettingsError, match="CHATSTORE_MIGRATE must be auto or off"):
        Settings.from_env({"CHATSTORE_MIGRATE": "sometimes"})


def test_history_lists_the_revisions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = db_command(monkeypatch, capsys, f"sqlite:///{tmp_path / 'none.db'}", "history")
    assert status == 0
    assert out == (
        "0001  The schema of release 0.1.0: sessions, messages, workers, and the full-text index of "
        "messages.\n"
        "0002  Conversations as trees: each message's parent, and the message a session shows last "
        "(stop 0.1.0 first).\n"
        "0003  Each message's depth on its branch, so that a branch's length is known before it is read.\n"
        "0004  Session owners: the user a session belongs to, and the list's orders per owner.\n"
        "0005  The full-text index knows each message's owner, so that a user's search reads only their "
        "matches.\n"
        "0006  Reply chunks: live progress writes only the text a streaming reply added since its last "
        "write.  (newest)\n"
    )
    assert not (tmp_path / "none.db").exists()  # history reads no database


def test_another_apps_alembic_version_table_in_the_same_database_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str, db: DatabaseView
) -> None:
    db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    db.execute("INSERT INTO alembic_version VALUES ('3f2a9c1b7d4e')")

    status, out, _ = db_command(monkeypatch, capsys, database_url, "upgrade")

    assert status == 0, out
    assert db.rows("SELECT version_num FROM alembic_version") == [{"version_num": "3f2a9c1b7d4e"}]
    assert db.rows("SELECT version_num FROM chatstore_alembic_version") == [{"version_num": NEWEST}]


# --- Processes starting together ----------------------------------------------------------------


@contextmanager
def holding_schema_lock(backend: str, database_url: str) -> Iterator[threading.Event]:
    """Hold the schema lock, as a process upgrading would, until the yielded event is set."""
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        if backend == "sqlite":
            connection = sqlite3.connect(make_url(database_url).database, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(60)
            connection.execute("COMMIT")
            connection.close()
            return
        with psycopg.connect(database_url) as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold, name="schema-lock", daemon=True)
    holder.start()
    assert held.wait(10)
    try:
        yield release
    finally:
        release.set()
        holder.join(10)


def release_when_all_start(log_dir: Path, count: int, release: threading.Event) -> list[bool]:
    """Let go of the schema lock once every process has reached its start-up (in the background), so
    that all of them ask for the lock while it is held; the list says whether they all got there."""
    reached: list[bool] = []

    def watch() -> None:
        deadline = time.monotonic() + 30
        logs = [log_dir / f"server-{i}.log" for i in range(count)]
        while time.monotonic() < deadline:
            if all(p.exists() and "Waiting for application startup" in p.read_text() for p in logs):
                reached.append(True)
                time.sleep(1.0)  # and on into the wait for the lock
                break
            time.sleep(0.05)
        release.set()

    threading.Thread(target=watch, name="release-lock", daemon=True).start()
    return reached


def assert_upgraded_once(servers: list[ServerProcess], expected: str) -> None:
    upgrades = [
        line for s in servers for line in s.log().splitlines() if any(u in line for u in UPGRADE_LINES)
    ]
    assert len(upgrades) == 1, "\n".join(s.log() for s in servers)
    assert expected in upgrades[0]
    waited = [s for s in servers if NOTHING_TO_DO in s.log()]
    assert len(waited) == len(servers) - 1
    for server in servers:
        assert "Traceback" not in server.log(), server.log()


PROCESSES = 4
INFO_LOGS = {"CHATSTORE_LOG_LEVEL": "info", "CHATSTORE_DB_BUSY_TIMEOUT_MS": "30000"}


@pytest.mark.server
@pytest.mark.parametrize("start", ["empty", "0.1.0"])
def test_processes_starting_together_upgrade_once(
    start: str, backend: str, database_url: str, tmp_path: Path, db: DatabaseView
) -> None:
    if start == "0.1.0":
        load_0_1_0(backend, database_url)

    with holding_schema_lock(backend, database_url) as release:
        reached = release_when_all_start(tmp_path, PROCESSES, release)
        with running_servers(PROCESSES, database_url, tmp_path, INFO_LOGS) as servers:
            assert reached == [True]
            for server in servers:
                assert httpx.get(f"{server.base_url}/api/sessions", timeout=10).status_code == 200
            upgraded = "created the schema" if start == "empty" else "recorded the chatstore 0.1.0"
            assert_upgraded_once(servers, upgraded)
    assert db.rows("SELECT version_num FROM chatstore_alembic_version") == [{"version_num": NEWEST}]
    assert db.scalar("SELECT count(*) FROM messages") == (0 if start == "empty" else 22)


@pytest.mark.server
def test_processes_starting_together_on_a_new_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "chatstore.db"
    url = f"sqlite:///{path}"

    with running_servers(PROCESSES, url, tmp_path, INFO_LOGS) as servers:
        assert_upgraded_once(servers, "created the schema")

    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM chatstore_alembic_version").fetchall() == [
            (NEWEST,)
        ]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_search_path_without_a_schema_that_exists_is_named() -> None:
    base = postgres_url()
    if base is None:
        skip_or_fail_in_ci("this test needs PostgreSQL (CHATSTORE_TEST_POSTGRES_URL)")
    settings = Settings(database_url=f"{base}?options=-csearch_path%3Dnowhere_at_all")

    with pytest.raises(BaseExceptionGroup) as caught, TestClient(create_app(settings)):
        pass
    assert caught.group_contains(SchemaError, match="search_path names no schema that exists")
