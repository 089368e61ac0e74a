"""Resume and stop across real server processes on one database, and a client re-attaching to the
reply of a process that was killed."""

import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import DatabaseView, parse_sse
from tests.servers import HTTP_TIMEOUT_S, BackgroundChat, chat_body, deltas, running_servers

# Slow enough that the test acts while the reply streams (about 44 pieces, 2-3 s).
ENV = {
    "CHATSTORE_MOCK_DELAY_MS": "60",
    "CHATSTORE_PROGRESS_INTERVAL_MS": "100",
    "CHATSTORE_WORKER_LEASE_S": "1.5",
}
QUESTION = "please take your time and answer this question one word after another"


def reply_text(events: list) -> str:  # type: ignore[type-arg]
    return "".join(e.data["content"] for e in events if e.event == "delta")


@pytest.mark.server
def test_a_client_re_attaches_through_another_process(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    """The stream from process A is cut; the client re-attaches to process B with its last event id
    and gets exactly the rest, live, while A is still generating."""
    with running_servers(2, database_url, tmp_path, ENV) as [server_a, server_b]:
        session_id = httpx.post(f"{server_a.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()["id"]
        with BackgroundChat(server_a, chat_body(session_id, QUESTION, keep_generating=True)) as chat:
            chat.wait_until("three deltas", deltas(3))
            seen = list(chat.events)
        last_id = seen[-1].id
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            rest = client.get(
                f"{server_b.base_url}/api/messages/{chat.reply_id}/stream",
                headers={"Last-Event-ID": str(last_id)},
            )
        after = parse_sse(rest.text)

    assert after[-1].event == "done"
    assert all(e.id > last_id for e in after)
    stored = db.scalar("SELECT content FROM messages WHERE id = :id", id=chat.reply_id)
    assert reply_text(seen) + reply_text(after) == after[-1].data["content"] == stored


@pytest.mark.server
def test_a_reader_and_a_follower_on_another_process_see_the_reply_grow(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    """Process B has only the database: the row and the chunks A's progress writes add to it. What
    B shows grows while A generates, in order, and B's follower gets it in pieces with exact ids."""
    with running_servers(2, database_url, tmp_path, ENV) as [server_a, server_b]:
        session_id = httpx.post(f"{server_a.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()["id"]
        with BackgroundChat(server_a, chat_body(session_id, QUESTION, keep_generating=True)) as chat:
            chat.wait_until("two deltas", deltas(2))
            with BackgroundChat.following(server_b, chat.reply_id) as follower:
                shown = []
                while not chat.finished:
                    page = httpx.get(f"{server_b.base_url}/api/sessions/{session_id}", timeout=HTTP_TIMEOUT_S)
                    reply = page.json()["messages"][-1]
                    if reply["status"] == "in_progress":
                        shown.append(reply["content"])
                    time.sleep(0.1)
                follower.wait_until_finished()
            chat.wait_until_finished()

    final = chat.events[-1].data
    assert final["status"] == "complete"
    assert len({content for content in shown if content}) >= 3, "B showed the reply growing"
    assert all(final["content"].startswith(content) for content in shown)
    assert [len(content) for content in shown] == sorted(len(content) for content in shown)
    followed = follower.events
    assert followed[0].event == "start" and followed[-1].event == "done"
    pieces = [e for e in followed if e.event == "delta"]
    assert len(pieces) >= 3, "followed live, in several pieces"
    assert "".join(e.data["content"] for e in pieces) == final["content"]
    ends = [len("".join(e.data["content"] for e in pieces[: index + 1])) for index in range(len(pieces))]
    assert [e.id for e in pieces] == ends
    assert db.rows("SELECT reply_id FROM reply_chunks") == []


@pytest.mark.server
def test_a_stop_sent_to_another_process_ends_the_reply(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    with running_servers(2, database_url, tmp_path, ENV) as [server_a, server_b]:
        session_id = httpx.post(f"{server_a.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()["id"]
        with BackgroundChat(server_a, chat_body(session_id, QUESTION)) as chat:
            chat.wait_until("two deltas", deltas(2))
            stopped = httpx.post(
                f"{server_b.base_url}/api/messages/{chat.reply_id}/stop", timeout=HTTP_TIMEOUT_S
            )
            chat.wait_until_finished()

    assert stopped.status_code == 200
    assert (stopped.json()["status"], stopped.json()["finish_reason"]) == ("incomplete", "stopped")
    assert chat.events[-1].event == "done"
    assert chat.events[-1].data["finish_reason"] == "stopped"
    assert chat.events[-1].data["content"] == reply_text(chat.events)
    assert db.rows("SELECT status, finish_reason FROM messages WHERE role = 'assistant'") == [
        {"status": "incomplete", "finish_reason": "stopped"}
    ]


@pytest.mark.server
def test_re_attaching_to_the_reply_of_a_killed_process_ends_instead_of_hanging(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    with (
        running_servers(1, database_url, tmp_path, ENV, name="a") as [server_a],
        running_servers(1, database_url, tmp_path, ENV, name="b") as [server_b],
    ):
        session_id = httpx.post(f"{server_a.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()["id"]
        with BackgroundChat(server_a, chat_body(session_id, QUESTION, keep_generating=True)) as chat:
            chat.wait_until("two deltas", deltas(2))
            server_a.kill()
            chat.wait_until_finished()
        last_id = max(e.id for e in chat.events)
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            url = f"{server_b.base_url}/api/messages/{chat.reply_id}/stream"
            rest = parse_sse(client.get(url, headers={"Last-Event-ID": str(last_id)}).text)
            # What EventSource does next: reconnect with the id of the end it got. That is the end.
            again = client.get(url, headers={"Last-Event-ID": str(rest[-1].id)})

    assert rest[-1].event == "done"
    assert again.status_code == 204
    final = rest[-1].data
    assert (final["status"], final["finish_reason"]) == ("incomplete", "server_stopped")
    assert final["content"].startswith(reply_text(chat.events)[: len(final["content"])])
    assert (
        db.scalar("SELECT finish_reason FROM messages WHERE id = :id", id=chat.reply_id) == "server_stopped"
    )
