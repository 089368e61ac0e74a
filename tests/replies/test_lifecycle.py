"""Start-up and shutdown: the database is created, data survives, orphaned replies are swept."""

import asyncio
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from litestar.testing import TestClient
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError

from chatstore.app import create_app
from chatstore.core.db import DatabaseUnavailable, open_database
from chatstore.core.settings import Settings
from chatstore.services.workers import process_namespace
from tests.conftest import ClientFactory
from tests.helpers import DatabaseView


def test_the_sqlite_file_and_its_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "app.db"
    # Hand-made, as in the next two tests: the database is a SQLite file the test places itself.
    with TestClient(create_app(Settings(database_url=f"sqlite:///{path}"))) as client:
        assert client.post("/api/sessions").status_code == 201
    assert path.is_file()


def test_the_default_database_is_data_app_db_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app(Settings())) as client:  # the default settings are what is tested
        assert client.post("/api/sessions").status_code == 201
    assert (tmp_path / "data" / "app.db").is_file()


def test_data_survives_a_new_app_instance(make_client: ClientFactory) -> None:
    with make_client() as client:
        session = client.post("/api/sessions", json={"name": "kept", "metadata": {"a": [1]}}).json()
        client.post(
            "/api/chat", json={"session_id": session["id"], "messages": [{"role": "user", "content": "hi"}]}
        )
        before = client.get(f"/api/sessions/{session['id']}").json()

    with make_client() as client:
        after = client.get(f"/api/sessions/{session['id']}").json()
        assert after == before
        client.post(
            "/api/chat",
            json={"session_id": session["id"], "messages": [{"role": "user", "content": "again"}]},
        )
        assert [m["seq"] for m in client.get(f"/api/sessions/{session['id']}").json()["messages"]] == [
            1,
            2,
            3,
            4,
        ]


def insert_in_progress_reply(db: DatabaseView, session_id: str, worker_id: str | None) -> str:
    reply_id = "11111111-1111-4111-8111-111111111111"
    now = datetime.now(UTC)
    db.execute("UPDATE sessions SET last_seq = 1 WHERE id = :s", s=session_id)
    db.execute(
        "INSERT INTO messages (id, session_id, seq, role, content, status, created_at, updated_at, worker_id)"
        " VALUES (:id, :s, 1, 'assistant', 'half a rep', 'in_progress', :now, :now, :w)",
        id=reply_id,
        s=session_id,
        now=now,
        w=worker_id,
    )
    # The session shows the branch ending at it, as a turn that stored it would have made it.
    db.execute("UPDATE sessions SET current_message_id = :id WHERE id = :s", id=reply_id, s=session_id)
    return reply_id


def add_worker(db: DatabaseView, worker_id: str, *, pid: int, lease_left: timedelta, hostname: str) -> None:
    db.execute(
        "INSERT INTO workers (id, hostname, pid, started_at, lease_expires_at)"
        " VALUES (:id, :h, :pid, :now, :exp)",
        id=worker_id,
        h=hostname,
        pid=pid,
        now=datetime.now(UTC),
        exp=datetime.now(UTC) + lease_left,
    )


def status_of(db: DatabaseView, message_id: str) -> Any:
    return db.scalar("SELECT status FROM messages WHERE id = :id", id=message_id)


@pytest.fixture
def session_id(make_client: ClientFactory) -> str:
    with make_client() as client:
        return str(client.post("/api/sessions").json()["id"])


def test_a_reply_whose_process_lease_expired_is_marked_incomplete_at_start_up(
    make_client: ClientFactory, db: DatabaseView, session_id: str
) -> None:
    add_worker(db, "dead", pid=1, lease_left=timedelta(seconds=-1), hostname="elsewhere")
    reply_id = insert_in_progress_reply(db, session_id, "dead")

    with make_client() as client:
        assert status_of(db, reply_id) == "incomplete"
        message = client.get(f"/api/sessions/{session_id}").json()["messages"][0]
        assert (message["status"], message["content"]) == ("incomplete", "half a rep")


def add_chunks(db: DatabaseView, reply_id: str, *chunks: tuple[int, str]) -> None:
    """What progress writes store: each piece of text new since the previous one, where it starts."""
    for position, content in chunks:
        db.execute(
            "INSERT INTO reply_chunks (reply_id, position, content) VALUES (:id, :position, :content)",
            id=reply_id,
            position=position,
            content=content,
        )


def test_a_swept_reply_keeps_the_text_its_progress_writes_stored_in_order(
    make_client: ClientFactory, db: DatabaseView, session_id: str
) -> None:
    add_worker(db, "dead", pid=1, lease_left=timedelta(seconds=-1), hostname="elsewhere")
    reply_id = insert_in_progress_reply(db, session_id, "dead")
    add_chunks(db, reply_id, (18, " rest"), (10, "ly, the"))  # stored out of order

    with make_client() as client:
        message = client.get(f"/api/sessions/{session_id}").json()["messages"][0]

    assert (message["status"], message["content"]) == ("incomplete", "half a reply, the rest")
    assert db.scalar("SELECT content FROM messages WHERE id = :id", id=reply_id) == "half a reply, the rest"
    assert db.rows("SELECT reply_id FROM reply_chunks") == []


def test_a_streaming_reply_of_another_process_is_read_with_its_chunks(
    make_client: ClientFactory, db: DatabaseView, session_id: str
) -> None:
    add_worker(db, "alive", pid=1, lease_left=timedelta(minutes=5), hostname="another-host")
    reply_id = insert_in_progress_reply(db, session_id, "alive")
    add_chunks(db, reply_id, (17, " so far"), (10, "ly, and"))

    with make_client() as client:
        [message] = client.get(f"/api/sessions/{session_id}").json()["messages"]
        [paged] = client.get(f"/api/sessions/{session_id}/messages").json()
        exported = client.get(f"/api/sessions/{session_id}/export?format=json").json()["messages"]

    assert (message["status"], message["content"]) == ("in_progress", "half a reply, and so far")
    assert paged == {k: v for k, v in message.items() if k != "sibling_ids"}
    assert [(m["status"], m["content"]) for m in exported] == [("in_progress", "half a reply, and so far")]
    assert len(db.rows("SELECT reply_id FROM reply_chunks")) == 2, "reading changes nothing"


def test_chunks_left_by_a_sweep_of_an_older_release_are_folded_in(
    make_client: ClientFactory, db: DatabaseView, session_id: str
) -> None:
    """A process of a release before chunks sweeps a reply without folding them: the next sweep does."""
    reply_id = insert_in_progress_reply(db, session_id, None)
    add_chunks(db, reply_id, (10, "ly"))
    db.execute(
        "UPDATE messages SET status = 'incomplete', finish_reason = 'server_stopped' WHERE id = :id",
        id=reply_id,
    )

    with make_client():
        pass

    assert db.scalar("SELECT content FROM messages WHERE id = :id", id=reply_id) == "half a reply"
    assert db.rows("SELECT reply_id FROM reply_chunks") == []


def a_pid_that_is_gone() -> int:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(finished.stdout)


def test_a_reply_of_a_process_that_no_longer_runs_here_is_swept_before_its_lease_ends(
    make_client: ClientFactory, db: DatabaseView, session_id: str
) -> None:
    add_worker(
        db, "crashed", pid=a_pid_that_is_gone(), lease_left=timedelta(minutes=5), hostname=process_namespace()
    )
    reply_id = insert_in_progress_reply(db, session_id, "crashed")

    with make_client():
        assert status_of(db, reply_id) == "incomplete"


def test_a_process_id_from_another_pid_namespace_is_not_looked_up_here(
    make_client: ClientFactory, db: DatabaseView, session_id: str
) -> None:
    """Containers may share a host name but not their process ids: only the lease tells."""
    other_container = process_namespace().split("/")[0] + "/pidns:1"
    add_worker(
        db, "elsewhere", pid=a_pid_that_is_gone(), lease_left=timedelta(minutes=5), hostname=other_container
    )
    reply_id = insert_in_progress_reply(db, session_id, "elsewhere")

    with make_client():
        assert status_of(db, reply_id) == "in_progress"


def test_a_reply_of_a_live_process_is_left_alone(
    make_client: ClientFactory, db: DatabaseView, session_id: str
) -> None:
    add_worker(db, "alive", pid=1, lease_left=timedelta(minutes=5), hostname="another-host")
    reply_id = insert_in_progress_reply(db, session_id, "alive")

    with make_client():
        assert status_of(db, reply_id) == "in_progress"


def test_shutdown_gives_up_the_lease(make_client: ClientFactory, db: DatabaseView) -> None:
    with make_client():
        assert db.scalar("SELECT count(*) FROM workers") == 1
    assert db.scalar("SELECT count(*) FROM workers") == 0


def test_a_file_that_is_not_a_database_stops_start_up_instead_of_hanging(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.write_bytes(b"this is not a SQLite database, only some text " * 100)
    app = create_app(Settings(database_url=f"sqlite:///{path}"))
    with pytest.raises(BaseExceptionGroup) as caught, TestClient(app):
        pass
    assert caught.group_contains(DatabaseError, match="not a database")


def one_batch_of_writes(
    database_url: str, writes: list[Callable[[Connection], Any]]
) -> tuple[list[Any], list[int], list[str]]:
    """Run ``writes`` as one batch of SQLite's writer (queued while it is busy) on a table of
    ``numbers``; their results (or errors), the numbers stored, and every statement the writer ran."""
    statements: list[str] = []

    def note(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async def run() -> tuple[list[Any], list[int]]:
        database = await open_database(Settings(database_url=database_url))
        engine = database._writer._engine  # type: ignore[attr-defined]
        event.listen(engine, "before_cursor_execute", note)
        release = threading.Event()
        try:
            await database.write(
                lambda connection: connection.exec_driver_sql("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
            )
            holding = asyncio.ensure_future(database.write(lambda _: release.wait(10)))
            await asyncio.sleep(0.05)  # the writer is busy: the writes queue into one batch
            queued = [asyncio.ensure_future(database.write(write)) for write in writes]
            await asyncio.sleep(0.05)
            release.set()
            await holding
            results = await asyncio.gather(*queued, return_exceptions=True)
            stored = await database.read(
                lambda connection: [
                    n for (n,) in connection.execute(text("SELECT n FROM numbers ORDER BY n"))
                ]
            )
        finally:
            release.set()
            await database.close()
        return results, stored

    results, stored = anyio.run(run)
    return results, stored, statements


def test_a_write_that_raises_fails_alone_and_the_rest_of_its_batch_commits(tmp_path: Path) -> None:
    """SQLite's writer commits queued writes together: one that raises is rolled back alone and its
    caller gets its error, while the writes before and after it are stored. The batch is tried first
    without savepoints; once a write raises, it is rolled back and run again, each write in a
    SAVEPOINT of its own."""
    transactions: list[Any] = []  # kept alive, so that distinct ones cannot share an id

    def insert(*numbers: int, then: Exception | None = None) -> Callable[[Connection], int]:
        def write(connection: Connection) -> int:
            transactions.append(connection.get_transaction())
            for n in numbers:
                connection.execute(text("INSERT INTO numbers (n) VALUES (:n)"), {"n": n})
            if then is not None:
                raise then
            return numbers[0]

        return write

    results, stored, statements = one_batch_of_writes(
        f"sqlite:///{tmp_path / 'app.db'}",
        [
            insert(1),
            insert(2, 1),  # 2 goes in, then 1 again: the primary key refuses it
            insert(3),
            insert(4, then=LookupError("refused by the function itself")),
        ],
    )
    assert results[0] == 1
    assert isinstance(results[1], IntegrityError)
    assert results[2] == 3
    assert isinstance(results[3], LookupError) and str(results[3]) == "refused by the function itself"
    assert stored == [1, 3]
    # One batch: the first try stopped at the write that raised, then all four ran in one transaction.
    first_try, again = transactions[:2], transactions[2:]
    assert len(again) == 4 and all(t is again[0] for t in again)
    assert all(t is first_try[0] for t in first_try) and first_try[0] is not again[0]
    assert sum(statement.startswith("SAVEPOINT") for statement in statements) == 4


def test_a_batch_where_no_write_raises_commits_once_without_savepoints(tmp_path: Path) -> None:
    """The common case costs one transaction and no SAVEPOINT, however many writes share it."""

    def insert(n: int) -> Callable[[Connection], int]:
        def write(connection: Connection) -> int:
            connection.execute(text("INSERT INTO numbers (n) VALUES (:n)"), {"n": n})
            return n

        return write

    results, stored, statements = one_batch_of_writes(
        f"sqlite:///{tmp_path / 'app.db'}", [insert(n) for n in range(1, 6)]
    )
    assert results == [1, 2, 3, 4, 5] == stored
    assert sum("INSERT" in statement for statement in statements) == 5  # each write ran once
    assert not [statement for statement in statements if "SAVEPOINT" in statement.upper()]


def test_writes_fail_together_when_another_process_holds_the_lock_too_long(tmp_path: Path) -> None:
    """Past the busy timeout every queued write fails with "database is locked" (as
    ``DatabaseUnavailable``, reason ``busy``), as one batch, and the writer goes on working once the
    lock is released."""
    path = tmp_path / "app.db"
    settings = Settings(database_url=f"sqlite:///{path}", db_busy_timeout_ms=300)
    with TestClient(create_app(settings)) as client:  # SQLite only: the test locks the file itself
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:

            async def five_writes() -> list[BaseException | None]:
                db = client.app.state.db
                results: list[BaseException | None] = []

                async def one() -> None:
                    try:
                        await db.write(
                            lambda connection: connection.exec_driver_sql("DELETE FROM workers WHERE 0")
                        )
                        results.append(None)
                    except DatabaseUnavailable as exc:
                        results.append(exc)

                async with anyio.create_task_group() as group:
                    for _ in range(5):
                        group.start_soon(one)
                return results

            results = client.blocking_portal.call(five_writes)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert len(results) == 5
        assert all(isinstance(r, DatabaseUnavailable) and r.reason == "busy" for r in results)
        assert all(
            isinstance(r.__cause__, OperationalError) and "locked" in str(r.__cause__) for r in results
        )
        assert client.post("/api/sessions").status_code == 201


def test_a_write_that_finds_the_database_unavailable_fails_its_whole_batch(tmp_path: Path) -> None:
    """A full disk or a lost file is the database's state, not one write's refusal: every write of
    the batch fails with it at once, nothing is stored, and the batch is not run again."""

    def insert(n: int) -> Callable[[Connection], int]:
        def write(connection: Connection) -> int:
            connection.execute(text("INSERT INTO numbers (n) VALUES (:n)"), {"n": n})
            return n

        return write

    def unavailable(_connection: Connection) -> None:
        raise DatabaseUnavailable("unreachable")

    results, stored, statements = one_batch_of_writes(
        f"sqlite:///{tmp_path / 'app.db'}", [insert(1), unavailable, insert(3)]
    )
    assert all(isinstance(r, DatabaseUnavailable) and r.reason == "unreachable" for r in results), results
    assert stored == []
    assert sum("INSERT" in statement for statement in statements) == 1  # tried once, not again
    assert not [statement for statement in statements if "SAVEPOINT" in statement.upper()]
