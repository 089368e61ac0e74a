"""A reply whose writes fail because the database is down or its disk is full: it is kept in memory,
the client is told so (not that the session was deleted), stop and re-attach answer from memory,
and it is stored whole when the database is back, or at shutdown.

The first tests run the app in-process on a real database whose writes fail on demand
(``FailingWrites``). The others start real server processes and break the real database under
them: PostgreSQL through a TCP proxy that the test cuts, SQLite on a small tmpfs that the test
fills (mounting it needs root). Both kinds run in CI, which runs as root; elsewhere the SQLite
cases skip without root.
"""

import json
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError

import chatstore.app as app_module
from chatstore.core.db import Database, open_database, resolve_url
from chatstore.core.settings import Settings
from chatstore.services.replies.events import REPLY_KEPT, SESSION_DELETED, UNEXPECTED_FAILURE
from tests.conftest import AppFactory, postgres_url, skip_or_fail_in_ci
from tests.faults import TcpProxy, can_mount, small_disk
from tests.helpers import (
    DatabaseView,
    Event,
    FailingWrites,
    ScriptedResponder,
    WriteFaults,
    call_asgi,
    failing_responder,
    parse_sse,
    postgres_schema,
    written_by,
)
from tests.servers import HTTP_TIMEOUT_S, BackgroundChat, ServerProcess, chat_body, deltas, running_servers

PIECES = [f"w{i} " for i in range(30)]
TEXT = "".join(PIECES)


def deltas_text(events: list[Event]) -> str:
    return "".join(e.data["content"] for e in events if e.event == "delta")


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.05)


def reply_row(db: DatabaseView, reply_id: str) -> dict[str, Any]:
    [row] = db.rows(
        "SELECT status, finish_reason, error, content, worker_id FROM messages WHERE id = :id", id=reply_id
    )
    return row


# --- In-process: a real database whose writes fail on demand ----------------------------------------


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> WriteFaults:
    """The app's database fails the writes that these faults pick."""
    faults = WriteFaults()

    async def open_failing(settings: Settings) -> Database:
        return FailingWrites(await open_database(settings), faults)

    monkeypatch.setattr(app_module, "open_database", open_failing)
    return faults


def scripted_app(make_app: AppFactory, *, progress_interval_ms: int = 20, delay_s: float = 0.01) -> Any:
    return make_app(ScriptedResponder(PIECES, delay_s=delay_s), progress_interval_ms=progress_interval_ms)


def chat(client: TestClient[Any], session_id: str, *, keep_generating: bool = False) -> list[Event]:
    body = chat_body(session_id, "q", keep_generating=keep_generating)
    response = client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    return parse_sse(response.text)


def test_a_reply_whose_final_write_fails_is_kept_and_stored_when_the_database_is_back(
    make_app: AppFactory, faults: WriteFaults, db: DatabaseView
) -> None:
    with TestClient(scripted_app(make_app)) as client:
        session_id = client.post("/api/sessions").json()["id"]
        faults.fail(written_by("finish_reply"))
        events = chat(client, session_id)
        reply_id = events[0].data["assistant_message_id"]

        assert deltas_text(events) == TEXT
        assert events[-1] == Event(len(TEXT) + 1, "error", {"detail": REPLY_KEPT})
        assert reply_row(db, reply_id)["status"] == "in_progress"
        # Stop answers with the reply as it will be stored, not its stale row.
        stopped = client.post(f"/api/messages/{reply_id}/stop")
        assert stopped.status_code == 200, stopped.text
        assert (stopped.json()["status"], stopped.json()["content"]) == ("complete", TEXT)
        # Re-attaching gives the rest from memory, then the same error.
        position = events[3].id
        rest = parse_sse(client.get(f"/api/messages/{reply_id}/stream?last_event_id={position}").text)
        assert deltas_text(rest) == TEXT[position:]
        assert rest[-1] == events[-1]

        faults.heal()
        wait_for("the kept reply stored", lambda: reply_row(db, reply_id)["status"] != "in_progress")
        replay = parse_sse(client.get(f"/api/messages/{reply_id}/stream").text)

    assert reply_row(db, reply_id) == {
        "status": "complete",
        "finish_reason": "completed",
        "error": None,
        "content": TEXT,
        "worker_id": None,
    }
    assert deltas_text(replay) == TEXT
    assert replay[-1].event == "done" and replay[-1].id == len(TEXT) + 1
    assert replay[-1].data == stopped.json(), "stop answered with the reply exactly as it was then stored"


def test_a_kept_reply_whose_session_is_deleted_meanwhile_is_gone_once_the_database_is_back(
    make_app: AppFactory, faults: WriteFaults, db: DatabaseView
) -> None:
    """The final write that finds no row means the session was deleted; one that raises means the
    database failed. Each is told for what it is."""
    with TestClient(scripted_app(make_app)) as client:
        session_id = client.post("/api/sessions").json()["id"]
        faults.fail(written_by("finish_reply"))
        reply_id = chat(client, session_id)[0].data["assistant_message_id"]
        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
        faults.heal()

        wait_for("the reply gone", lambda: client.get(f"/api/messages/{reply_id}/stream").status_code == 404)
        assert client.post(f"/api/messages/{reply_id}/stop").status_code == 404
        # The same deletion while the reply streams, with a database that works: the other message.
        session_id = client.post("/api/sessions").json()["id"]
        app = client.app

        async def delete_after_start(chunk: bytes) -> bool:
            if b"event: start" in chunk:
                status, _ = await call_asgi(app, "DELETE", f"/api/sessions/{session_id}")
                assert status == 204
            return False

        _, raw = client.blocking_portal.call(
            lambda: call_asgi(
                app, "POST", "/api/chat", chat_body(session_id, "q"), on_body=delete_after_start
            )
        )

    assert parse_sse(raw.decode())[-1].data == {"detail": SESSION_DELETED}
    assert SESSION_DELETED != REPLY_KEPT
    assert db.scalar("SELECT count(*) FROM messages") == 0


def test_a_final_write_that_fails_by_itself_is_stored_as_a_failed_reply_not_kept_for_ever(
    make_app: AppFactory, faults: WriteFaults, db: DatabaseView
) -> None:
    """An error that is not the database being away (a bug, a value it refuses) would fail every
    retry: the reply is stored as failed, without the text, and the client is told so."""
    refused: list[bool] = []

    def first_final_write(fn: Callable[..., Any]) -> bool:
        if written_by("finish_reply")(fn) and not refused:
            refused.append(True)
            return True
        return False

    with TestClient(scripted_app(make_app)) as client:
        session_id = client.post("/api/sessions").json()["id"]
        faults.fail(first_final_write, error=lambda: DataError("UPDATE", {}, ValueError("refused value")))
        events = chat(client, session_id)
        reply_id = events[0].data["assistant_message_id"]
        stopped = client.post(f"/api/messages/{reply_id}/stop")

    assert deltas_text(events) == TEXT
    assert events[-1] == Event(len(TEXT) + 1, "error", {"detail": UNEXPECTED_FAILURE})
    assert reply_row(db, reply_id) == {
        "status": "error",
        "finish_reason": "error",
        "error": UNEXPECTED_FAILURE,
        "content": "",
        "worker_id": None,
    }
    assert faults.failed == 1, "not retried"
    assert stopped.status_code == 200 and stopped.json()["status"] == "error"


def test_a_nul_from_the_responder_is_stored_as_a_replacement_character_on_every_engine(
    make_app: AppFactory, db: DatabaseView
) -> None:
    app = make_app(responder=ScriptedResponder(["hello ", "wor\0ld"]))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        events = chat(client, session_id)

    assert deltas_text(events) == "hello wor\ufffdld"
    assert events[-1].event == "done" and events[-1].data["content"] == "hello wor\ufffdld"
    assert reply_row(db, events[0].data["assistant_message_id"])["content"] == "hello wor\ufffdld"


@pytest.mark.parametrize("outage", ["progress writes", "every write, until mid-reply"])
def test_writes_failing_while_the_reply_streams_do_not_stop_it(
    make_app: AppFactory, faults: WriteFaults, db: DatabaseView, outage: str
) -> None:
    app = scripted_app(make_app, delay_s=0.02)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        seen = [0]

        def break_then_heal(chunk: bytes) -> bool:
            if b"event: start" in chunk:  # the turn is stored: from here on the writes fail
                faults.fail(written_by("flush") if outage == "progress writes" else lambda _: True)
            seen[0] += chunk.count(b"event: delta")
            if seen[0] >= 10 and outage != "progress writes":
                faults.heal()
            return False

        _, raw = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", chat_body(session_id, "q"), on_body=break_then_heal)
        )
        events = parse_sse(raw.decode())

    assert faults.failed >= 3, "progress writes failed while the reply streamed"
    assert deltas_text(events) == TEXT
    assert events[-1].event == "done" and events[-1].data["content"] == TEXT
    assert reply_row(db, events[0].data["assistant_message_id"])["content"] == TEXT


class AcknowledgementsLost(FailingWrites):
    """A real database whose writes that ``faults`` pick commit, and then fail as a connection lost
    during COMMIT does: the caller cannot tell that they are stored."""

    async def _write(self, fn: Callable[..., Any], priority: bool) -> Any:
        result = await self._database.write(fn, priority=priority)
        if self._faults.refuses(fn):
            raise self._faults.error()
        return result


def test_progress_writes_stored_but_not_acknowledged_store_no_text_twice(
    make_app: AppFactory, db: DatabaseView, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry starts where the last acknowledged write ended: it replaces the chunk that the
    unacknowledged one stored, so readers see the text once, in order, and so does the final row."""
    faults = WriteFaults()

    async def open_losing_acknowledgements(settings: Settings) -> Database:
        return AcknowledgementsLost(await open_database(settings), faults)

    monkeypatch.setattr(app_module, "open_database", open_losing_acknowledgements)
    app = scripted_app(make_app, delay_s=0.02)
    # (the reply as a reader saw it, the chunks stored)
    seen: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    # The app's logging set-up replaces the root handlers, caplog's among them: listen directly.
    logger = logging.getLogger("chatstore.replies")
    logger.addHandler(caplog.handler)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        flush = written_by("flush")

        async def fail_for_a_while_and_read(chunk: bytes) -> bool:
            if b"event: start" in chunk:  # the next three progress writes are not acknowledged
                faults.fail(lambda fn: flush(fn) and faults.failed < 3)
            _, page = await call_asgi(app, "GET", f"/api/sessions/{session_id}")
            reply = json.loads(page)["messages"][-1]
            chunks = db.rows(
                "SELECT position, content FROM reply_chunks WHERE reply_id = :id ORDER BY position",
                id=reply["id"],
            )
            seen.append((reply, chunks))
            return False

        try:
            _, raw = client.blocking_portal.call(
                lambda: call_asgi(
                    app, "POST", "/api/chat", chat_body(session_id, "q"), on_body=fail_for_a_while_and_read
                )
            )
        finally:
            logger.removeHandler(caplog.handler)
        events = parse_sse(raw.decode())

    assert faults.failed == 3, "progress writes were stored without being acknowledged"
    streaming = [(r["content"], c) for r, c in seen if r["status"] == "in_progress"]
    for content, chunks in streaming:
        assert TEXT.startswith(content), content
        assert TEXT.startswith("".join(chunk["content"] for chunk in chunks)), chunks
        assert [chunk["position"] for chunk in chunks] == [
            sum(len(before["content"]) for before in chunks[:index]) for index in range(len(chunks))
        ], chunks
    assert [len(content) for content, _ in streaming] == sorted(len(c) for c, _ in streaming)
    # The retry from the same position replaced the chunk the unacknowledged write had stored.
    assert "writing the progress of streaming replies works again" in caplog.text
    assert events[-1].event == "done" and events[-1].data["content"] == TEXT
    assert reply_row(db, events[0].data["assistant_message_id"])["content"] == TEXT
    assert db.rows("SELECT reply_id FROM reply_chunks") == []


def test_shutdown_makes_a_last_attempt_to_store_a_kept_reply(
    make_app: AppFactory, faults: WriteFaults, db: DatabaseView
) -> None:
    # Progress writes, and so retries, are 60 s apart: only the attempt at shutdown can store it.
    with TestClient(scripted_app(make_app, progress_interval_ms=60_000)) as client:
        session_id = client.post("/api/sessions").json()["id"]
        faults.fail(written_by("finish_reply"))
        events = chat(client, session_id)
        reply_id = events[0].data["assistant_message_id"]
        assert events[-1].data == {"detail": REPLY_KEPT}
        faults.heal()
        time.sleep(0.2)
        assert reply_row(db, reply_id)["status"] == "in_progress"

    assert reply_row(db, reply_id)["status"] == "complete"
    assert reply_row(db, reply_id)["content"] == TEXT


def test_a_failed_reply_that_cannot_be_stored_says_both(
    make_app: AppFactory, faults: WriteFaults, db: DatabaseView
) -> None:
    app = make_app(failing_responder(["a ", "b "]), progress_interval_ms=20)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        faults.fail(written_by("finish_reply"))
        events = chat(client, session_id)
        reply_id = events[0].data["assistant_message_id"]
        faults.heal()
        wait_for("the kept reply stored", lambda: reply_row(db, reply_id)["status"] != "in_progress")
        replay = parse_sse(client.get(f"/api/messages/{reply_id}/stream").text)

    assert events[-1] == Event(5, "error", {"detail": f"the model is overloaded; {REPLY_KEPT}"})
    assert replay[-1] == Event(5, "error", {"detail": "the model is overloaded"})
    assert reply_row(db, reply_id)["status"] == "error"


def test_a_reply_kept_going_after_its_client_left_is_kept_too(
    make_app: AppFactory, faults: WriteFaults, db: DatabaseView
) -> None:
    app = scripted_app(make_app)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        faults.fail(written_by("finish_reply"))
        _, raw = client.blocking_portal.call(
            lambda: call_asgi(
                app,
                "POST",
                "/api/chat",
                chat_body(session_id, "q", keep_generating=True),
                on_body=lambda chunk: b"event: delta" in chunk,
            )
        )
        reply_id = parse_sse(raw.decode())[0].data["assistant_message_id"]
        rest = parse_sse(client.get(f"/api/messages/{reply_id}/stream?last_event_id=0").text)
        faults.heal()
        wait_for("the kept reply stored", lambda: reply_row(db, reply_id)["status"] != "in_progress")

    assert deltas_text(rest) == TEXT
    assert rest[-1] == Event(len(TEXT) + 1, "error", {"detail": REPLY_KEPT})
    assert (reply_row(db, reply_id)["status"], reply_row(db, reply_id)["content"]) == ("complete", TEXT)


# --- Real server processes on a database that really fails ------------------------------------------

# Slow enough that the database can fail while the replies stream (about 35 words, 3 s).
ENV = {"CHATSTORE_MOCK_DELAY_MS": "80", "CHATSTORE_PROGRESS_INTERVAL_MS": "100"}
QUESTION = "please take your time and answer this question one word after another"


@dataclass
class Outage:
    """A database the test can take away: ``begin()`` breaks it, ``end()`` gives it back."""

    server_url: str  # what the servers are given
    db: DatabaseView  # a direct view, which the outage does not touch
    begin: Callable[[], None]
    end: Callable[[], None]


@pytest.fixture
def outage(backend: str) -> Iterator[Outage]:
    """PostgreSQL behind a proxy that is cut, or SQLite on a tmpfs that is filled."""
    with ExitStack() as stack:
        if backend == "sqlite":
            if not can_mount():
                skip_or_fail_in_ci("filling a small disk needs root, to mount a tmpfs")
            disk = stack.enter_context(small_disk())
            url = f"sqlite:///{disk.path / 'chatstore.db'}"
            server_url, begin, end = url, disk.fill, disk.free
        else:
            base = postgres_url()
            assert base is not None
            url = stack.enter_context(postgres_schema(base))
            target = make_url(url)
            proxy = stack.enter_context(TcpProxy(target.host or "127.0.0.1", target.port or 5432))
            server_url, begin, end = proxy.url_for(url), proxy.cut, proxy.restore
        engine = create_engine(resolve_url(url, blocking=True))
        stack.callback(engine.dispose)
        yield Outage(server_url, DatabaseView(engine), begin, end)
        end()


def new_session(server: ServerProcess) -> str:
    response = httpx.post(f"{server.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def stream_chats(stack: ExitStack, server: ServerProcess, count: int) -> list[BackgroundChat]:
    sessions = [new_session(server) for _ in range(count)]
    chats = [stack.enter_context(BackgroundChat(server, chat_body(s, QUESTION))) for s in sessions]
    for background in chats:
        background.wait_until("two deltas", deltas(2))
    return chats


def ended_kept(background: BackgroundChat) -> str:
    """The text a client saw of a reply that ended while the database was away."""
    background.wait_until_finished()
    assert background.failure is None, background.failure
    text = deltas_text(background.events)
    assert background.events[-1] == Event(len(text) + 1, "error", {"detail": REPLY_KEPT})
    return text


def progress_stored(db: DatabaseView, reply_id: str) -> str:
    """What the progress writes of a streaming reply have stored: the chunks beside its row."""
    chunks = db.rows("SELECT content FROM reply_chunks WHERE reply_id = :id ORDER BY position", id=reply_id)
    return "".join(chunk["content"] for chunk in chunks)


def stored_rows(db: DatabaseView, chats: list[BackgroundChat]) -> dict[str, dict[str, Any]]:
    return {c.reply_id: reply_row(db, c.reply_id) for c in chats}


def all_stored(db: DatabaseView, chats: list[BackgroundChat]) -> bool:
    return all(row["status"] != "in_progress" for row in stored_rows(db, chats).values())


@pytest.mark.server
def test_replies_that_end_while_the_database_is_away_are_stored_whole_when_it_is_back(
    outage: Outage, tmp_path: Path
) -> None:
    with running_servers(1, outage.server_url, tmp_path, ENV) as [server], ExitStack() as stack:
        chats = stream_chats(stack, server, 4)
        outage.begin()
        texts = {c.reply_id: ended_kept(c) for c in chats}
        with httpx.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT_S) as client:
            # While the database is away: stop answers from memory, and so does re-attaching.
            first = chats[0].reply_id
            stopped = client.post(f"/api/messages/{first}/stop")
            assert stopped.status_code == 200, stopped.text
            assert (stopped.json()["status"], stopped.json()["content"]) == ("complete", texts[first])
            position = chats[0].events[2].id
            rest = parse_sse(client.get(f"/api/messages/{first}/stream?last_event_id={position}").text)
            assert deltas_text(rest) == texts[first][position:]
            assert rest[-1] == chats[0].events[-1]

            outage.end()
            wait_for("every kept reply stored", lambda: all_stored(outage.db, chats))
            replays = {
                c.reply_id: parse_sse(client.get(f"/api/messages/{c.reply_id}/stream").text) for c in chats
            }

    for reply_id, row in stored_rows(outage.db, chats).items():
        assert row == {
            "status": "complete",
            "finish_reason": "completed",
            "error": None,
            "content": texts[reply_id],
            "worker_id": None,
        }
        assert len(row["content"]) > 100
        assert replays[reply_id][-1].event == "done"
        assert replays[reply_id][-1].data["content"] == texts[reply_id] == deltas_text(replays[reply_id])
    assert replays[first][-1].data == stopped.json()


@pytest.mark.server
def test_an_outage_shorter_than_the_reply_loses_nothing(outage: Outage, tmp_path: Path) -> None:
    with running_servers(1, outage.server_url, tmp_path, ENV) as [server], ExitStack() as stack:
        chats = stream_chats(stack, server, 3)
        outage.begin()
        at_cut = [len(c.events) for c in chats]
        time.sleep(0.8)  # several progress intervals: their writes fail
        during = [len(c.events) for c in chats]
        outage.end()
        for background in chats:
            background.wait_until_finished()
        assert "could not write the progress of streaming replies" in server.log()

    assert all(d > c for c, d in zip(at_cut, during, strict=True)), "the replies streamed on"
    for background in chats:
        assert background.failure is None
        text = deltas_text(background.events)
        assert background.events[-1].event == "done" and background.events[-1].data["content"] == text
        assert reply_row(outage.db, background.reply_id)["content"] == text
        assert reply_row(outage.db, background.reply_id)["status"] == "complete"


@pytest.mark.server
def test_a_server_stopped_while_the_database_is_away_says_what_it_could_not_store(
    outage: Outage, tmp_path: Path
) -> None:
    """One last attempt at shutdown fails too: the row keeps what its progress writes stored, folded
    in by the next process, which marks it ``incomplete``; what was lost is logged by name."""
    with running_servers(1, outage.server_url, tmp_path, ENV) as [server], ExitStack() as stack:
        chats = stream_chats(stack, server, 2)
        for background in chats:
            wait_for("a progress write", lambda b=background: progress_stored(outage.db, b.reply_id) != "")
        stored_before = {c.reply_id: progress_stored(outage.db, c.reply_id) for c in chats}
        outage.begin()
        texts = {c.reply_id: ended_kept(c) for c in chats}
        server.stop()
        assert server.process.returncode != -signal.SIGKILL, "it stopped by itself"
        log = server.log()
    outage.end()
    with running_servers(1, outage.server_url, tmp_path, ENV, name="after"):
        pass  # its start-up sweep ends the rows the stopped process left

    for reply_id, row in stored_rows(outage.db, chats).items():
        assert f"could not store the reply {reply_id} before stopping" in log
        assert (row["status"], row["finish_reason"], row["worker_id"]) == (
            "incomplete",
            "server_stopped",
            None,
        )
        assert texts[reply_id].startswith(row["content"])
        assert row["content"].startswith(stored_before[reply_id])
        assert len(row["content"]) < len(texts[reply_id])
    assert outage.db.rows("SELECT reply_id FROM reply_chunks") == []


@pytest.mark.server
def test_a_server_stopped_once_the_database_is_back_stores_every_kept_reply(
    outage: Outage, tmp_path: Path
) -> None:
    with running_servers(1, outage.server_url, tmp_path, ENV) as [server], ExitStack() as stack:
        chats = stream_chats(stack, server, 3)
        outage.begin()
        texts = {c.reply_id: ended_kept(c) for c in chats}
        time.sleep(3)  # the retries back off to seconds apart
        outage.end()
        server.stop()
        assert server.process.returncode != -signal.SIGKILL, "it stopped by itself"

    for reply_id, row in stored_rows(outage.db, chats).items():
        assert (row["status"], row["content"], row["worker_id"]) == ("complete", texts[reply_id], None)
