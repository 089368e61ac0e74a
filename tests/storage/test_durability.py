"""Durability under a crash: SIGKILL the server while replies stream, restart it on the same SQLite file.

What a client was told must hold after the crash: every user message whose ``start`` event arrived is
stored, every reply whose ``done`` arrived is stored complete with that content, the file passes
``PRAGMA integrity_check``, the replies the kill cut short end up ``incomplete`` (the restarted
process sweeps them: same host, dead process) with the text their progress writes stored, and the
service answers as before.
"""

import sqlite3
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import parse_sse
from tests.servers import BackgroundChat, ServerProcess, chat_body, deltas, running_servers, start_server

pytestmark = pytest.mark.server

STREAMING_CHATS = 4
FINISHED_CHATS = 2
SLOW_MOCK = {"CHATSTORE_MOCK_DELAY_MS": "50"}


def new_session(server: ServerProcess, name: str) -> str:
    response = httpx.post(f"{server.base_url}/api/sessions", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def stored_messages(server: ServerProcess, session_id: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{server.base_url}/api/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return {message["id"]: message for message in response.json()["messages"]}


def progress_stored(database: Path, reply_id: str) -> str:
    """The text the progress writes of a streaming reply have stored: the chunks beside its row."""
    with closing(sqlite3.connect(database)) as connection:
        chunks = connection.execute(
            "SELECT content FROM reply_chunks WHERE reply_id = ? ORDER BY position", (reply_id,)
        ).fetchall()
    return "".join(content for (content,) in chunks)


def wait_for_progress(database: Path, reply_id: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not progress_stored(database, reply_id):
        assert time.monotonic() < deadline, f"no progress write of {reply_id} within {timeout_s} s"
        time.sleep(0.05)


def test_a_killed_server_keeps_what_it_confirmed_and_sweeps_what_it_cut(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    url = f"sqlite:///{database}"
    with running_servers(1, url, tmp_path, SLOW_MOCK, name="before-kill") as (server,):
        sent: dict[str, str] = {}  # session id -> the user message sent to it
        finished = []
        for index in range(FINISHED_CHATS):
            session_id = new_session(server, f"finished {index}")
            sent[session_id] = f"finished {index}"
            response = httpx.post(
                f"{server.base_url}/api/chat", json=chat_body(session_id, sent[session_id]), timeout=30
            )
            finished.append((session_id, parse_sse(response.text)))
        with ExitStack() as stack:
            streaming = []
            for index in range(STREAMING_CHATS):
                session_id = new_session(server, f"streaming {index}")
                sent[session_id] = f"streaming {index}"
                chat = stack.enter_context(BackgroundChat(server, chat_body(session_id, sent[session_id])))
                streaming.append((session_id, chat))
            for _, chat in streaming:
                chat.wait_until("a few deltas", deltas(3))
            progress_before_kill = {}
            for _, chat in streaming:
                wait_for_progress(database, chat.reply_id)
                progress_before_kill[chat.reply_id] = progress_stored(database, chat.reply_id)
            server.kill()
            for _, chat in streaming:
                chat.wait_until_finished()
        streamed = [(session_id, list(chat.events)) for session_id, chat in streaming]

    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    restarted = start_server(url, tmp_path / "after-kill.log", SLOW_MOCK)
    try:
        restarted.wait_until_ready()
        cut = 0
        for session_id, events in finished + streamed:
            assert events and events[0].event == "start", events
            stored = stored_messages(restarted, session_id)
            [message_id] = events[0].data["message_ids"]
            assert stored[message_id]["role"] == "user"
            assert stored[message_id]["content"] == sent[session_id]
            assert stored[message_id]["status"] == "complete"
            reply = stored[events[0].data["assistant_message_id"]]
            received = "".join(event.data["content"] for event in events if event.event == "delta")
            if events[-1].event == "done":
                assert reply["status"] == "complete"
                assert reply["content"] == events[-1].data["content"] == received
            else:
                cut += 1
                # Swept when the new process started: the old one is gone from this host.
                assert reply["status"] == "incomplete", reply
                # What was stored and what was received are the same text, one as far as the other.
                assert reply["content"].startswith(received) or received.startswith(reply["content"])
                # The chunks its progress writes stored before the kill, folded in by the sweep.
                assert reply["content"].startswith(progress_before_kill[reply["id"]]), reply
        with closing(sqlite3.connect(database)) as connection:
            assert connection.execute("SELECT count(*) FROM reply_chunks").fetchone() == (0,)
        assert cut >= 1, "the kill cut no reply short"

        session_id = new_session(restarted, "after the crash")
        response = httpx.post(
            f"{restarted.base_url}/api/chat", json=chat_body(session_id, "still there?"), timeout=30
        )
        assert parse_sse(response.text)[-1].event == "done"
        assert httpx.get(f"{restarted.base_url}/healthz").json() == {"status": "ok"}
    finally:
        restarted.stop()
    print(
        f"kill-restart: {FINISHED_CHATS + STREAMING_CHATS} chats, {cut} cut by SIGKILL and swept to "
        "incomplete, integrity_check ok"
    )
