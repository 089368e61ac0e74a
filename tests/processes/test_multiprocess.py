"""Several real chatstore processes on one database: nothing lost or misordered, and leases that hold.

Each test starts ``python -m chatstore`` processes (see ``tests/servers.py``), talks to them over
HTTP and then reads the database directly.
"""

import asyncio
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chatstore.services.replies.events import MESSAGE_DELETED
from tests.helpers import DatabaseView, Event, parse_sse
from tests.servers import (
    HTTP_TIMEOUT_S,
    BackgroundChat,
    ServerProcess,
    chat_body,
    deltas,
    running_servers,
    started,
)

LOG_PROBLEMS = ("Traceback", "database is locked", "Exception in ASGI application")

# A short lease: a process renews it every 0.5 s, and sweeps for replies of dead processes as often.
SHORT_LEASE = {"CHATSTORE_WORKER_LEASE_S": "1.5"}
# Fast replies still pause between chunks, so that concurrent streams interleave.
FAST_REPLIES = {"CHATSTORE_MOCK_DELAY_MS": "1"}
# With these, the reply to LONG_MESSAGE (about 44 chunks) streams for about 6 s.
SLOW_REPLIES = {"CHATSTORE_MOCK_DELAY_MS": "150"}
LONG_MESSAGE = "please take your time and answer this question one word after another"


def create_session(server: ServerProcess, name: str) -> str:
    response = httpx.post(f"{server.base_url}/api/sessions", json={"name": name}, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def reply_text(events: Sequence[Event]) -> str:
    return "".join(e.data["content"] for e in events if e.event == "delta")


def assert_clean_logs(servers: Sequence[ServerProcess]) -> None:
    for server in servers:
        log = server.log()
        found = [problem for problem in LOG_PROBLEMS if problem in log]
        assert not found, f"{server.log_path.name} contains {found}:\n{log}"


def reply_status(db: DatabaseView, reply_id: str) -> str:
    return str(db.scalar("SELECT status FROM messages WHERE id = :id", id=reply_id))


def wait_for_status(db: DatabaseView, reply_id: str, status: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (current := reply_status(db, reply_id)) != status:
        if time.monotonic() > deadline:
            pytest.fail(f"the reply is still {current!r}, not {status!r}, after {timeout_s} s")
        time.sleep(0.05)


# --- Many clients, two processes ----------------------------------------------------------------

SESSIONS = 6
CLIENTS = 24
TURNS_PER_CLIENT = 3


@dataclass(frozen=True, slots=True)
class TurnResult:
    """One chat turn as the client saw it."""

    session_id: str
    content: str
    status_code: int | None  # None: the connection broke
    body: str
    events: list[Event]

    @property
    def user_message_id(self) -> str:
        [message_id] = self.events[0].data["message_ids"]
        return str(message_id)

    @property
    def reply_id(self) -> str:
        return str(self.events[0].data["assistant_message_id"])


async def chat_turn(client: httpx.AsyncClient, session_id: str, content: str) -> TurnResult:
    """Send one message and read the reply's stream to its end."""
    try:
        response = await client.post("/api/chat", json=chat_body(session_id, content))
    except httpx.TransportError as exc:  # e.g. the server cut the stream short
        return TurnResult(session_id, content, None, repr(exc), [])
    events = parse_sse(response.text) if response.status_code == 200 else []
    return TurnResult(session_id, content, response.status_code, response.text, events)


async def run_client(base_url: str, plan: Sequence[tuple[str, str]]) -> list[TurnResult]:
    """One client with its own connection: its turns ``(session_id, content)``, one after the other."""
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S) as client:
        return [await chat_turn(client, session_id, content) for session_id, content in plan]


async def run_clients(plans: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> list[TurnResult]:
    """Run every ``(base_url, plan)`` client at once."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(run_client(base_url, plan)) for base_url, plan in plans]
    return [turn for task in tasks for turn in task.result()]


def client_plans(
    servers: Sequence[ServerProcess], sessions: Sequence[str]
) -> list[tuple[str, list[tuple[str, str]]]]:
    """Client ``c`` talks to process ``(c // SESSIONS) % 2`` and, in turn ``t``, writes to session
    ``(c + t) % SESSIONS``: in every round each session has four writers, two through each process."""
    plans = []
    for client in range(CLIENTS):
        server = servers[(client // SESSIONS) % len(servers)]
        plan = [
            (sessions[(client + turn) % SESSIONS], f"client {client} turn {turn}")
            for turn in range(TURNS_PER_CLIENT)
        ]
        plans.append((server.base_url, plan))
    return plans


def assert_session_stored(db: DatabaseView, session_id: str, turns: Sequence[TurnResult]) -> None:
    """The session holds exactly these turns: seq 1..n, each user message right before its full reply."""
    stored = db.messages(session_id)
    assert [m["seq"] for m in stored] == list(range(1, 2 * len(turns) + 1))
    by_id = {m["id"]: m for m in stored}
    for turn in turns:
        question, reply = by_id[turn.user_message_id], by_id[turn.reply_id]
        assert (question["role"], question["content"]) == ("user", turn.content)
        assert reply["seq"] == question["seq"] + 1, f"the reply to {turn.content!r} does not follow it"
        assert (reply["role"], reply["status"]) == ("assistant", "complete")
        assert reply["content"] == reply_text(turn.events)


@pytest.mark.server
def test_many_clients_on_shared_sessions_through_two_processes_lose_nothing(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    """Concurrent turns written to the same sessions through two processes each get their own seq
    numbers, with no gap, no duplicate and the reply right after its message; every stream ends with
    ``done``, every reply is stored complete as streamed, and no process hits "database is locked"."""
    with running_servers(2, database_url, tmp_path, FAST_REPLIES) as servers:
        sessions = [create_session(servers[i % 2], f"shared {i}") for i in range(SESSIONS)]
        turns = asyncio.run(run_clients(client_plans(servers, sessions)))

    assert_clean_logs(servers)  # first: if anything failed, its traceback is there
    assert len(turns) == CLIENTS * TURNS_PER_CLIENT
    for turn in turns:
        assert turn.status_code == 200, f"{turn.content!r} got {turn.status_code}: {turn.body}"
        assert [turn.events[0].event, turn.events[-1].event] == ["start", "done"], turn.body
        done = turn.events[-1].data
        assert (done["id"], done["status"]) == (turn.reply_id, "complete")
        assert done["content"] == reply_text(turn.events)
    for session_id in sessions:
        assert_session_stored(db, session_id, [t for t in turns if t.session_id == session_id])


# --- Replies streaming while processes start and die ---------------------------------------------


@pytest.mark.server
def test_a_starting_process_leaves_the_replies_of_a_live_one_alone(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    """A process that starts while another streams a reply does not sweep that reply, neither at
    start-up nor on its heartbeat: it stays ``in_progress`` until its own process stores it complete."""
    env = SLOW_REPLIES | SHORT_LEASE
    with running_servers(1, database_url, tmp_path, env, name="a") as [server_a]:
        session_id = create_session(server_a, "slow")
        with BackgroundChat(server_a, chat_body(session_id, LONG_MESSAGE)) as chat:
            chat.wait_until("start event", started)
            with running_servers(1, database_url, tmp_path, env, name="b") as [server_b]:
                status = reply_status(db, chat.reply_id)
                assert status == "in_progress", f"the reply is {status!r} once B is up"
                while not chat.finished:  # B sweeps every 0.5 s meanwhile
                    assert reply_status(db, chat.reply_id) != "incomplete", "swept while it streamed"
                    time.sleep(0.1)

    assert chat.failure is None, chat.failure
    assert [chat.events[0].event, chat.events[-1].event] == ["start", "done"]
    [reply] = [m for m in db.messages(session_id) if m["id"] == chat.reply_id]
    assert (reply["status"], reply["content"]) == ("complete", reply_text(chat.events))
    assert_clean_logs([server_a, server_b])


@pytest.mark.server
@pytest.mark.parametrize("host", ["same host", "other host"])
def test_replies_of_a_killed_process_are_marked_incomplete_by_a_live_one(
    database_url: str, db: DatabaseView, tmp_path: Path, host: str
) -> None:
    """When a process dies mid-reply (SIGKILL: no chance to clean up), a live process's heartbeat
    sweep marks the reply ``incomplete`` within a few seconds, and goes on serving the session.

    On the same host the dead process id gives it away at once; a process on another host is
    found when its lease runs out (the lease row is moved to another host name to see that)."""
    with (
        running_servers(1, database_url, tmp_path, SLOW_REPLIES | SHORT_LEASE, name="a") as [server_a],
        running_servers(1, database_url, tmp_path, FAST_REPLIES | SHORT_LEASE, name="b") as [server_b],
    ):
        session_id = create_session(server_a, "crash")
        with BackgroundChat(server_a, chat_body(session_id, LONG_MESSAGE)) as chat:
            chat.wait_until("two deltas", deltas(2))
            if host == "other host":
                db.execute("UPDATE workers SET hostname = 'elsewhere' WHERE pid = :pid", pid=server_a.pid)
            server_a.kill()
            chat.wait_until_finished()
        assert chat.failure is not None, "the stream of a killed process cannot end normally"

        wait_for_status(db, chat.reply_id, "incomplete", timeout_s=5.0)

        with httpx.Client(base_url=server_b.base_url, timeout=HTTP_TIMEOUT_S) as client:
            response = client.post("/api/chat", json=chat_body(session_id, "are you still there?"))
        assert response.status_code == 200
        assert parse_sse(response.text)[-1].event == "done"

    stored = db.messages(session_id)
    assert [(m["seq"], m["role"], m["status"]) for m in stored] == [
        (1, "user", "complete"),
        (2, "assistant", "incomplete"),
        (3, "user", "complete"),
        (4, "assistant", "complete"),
    ]
    assert stored[1]["worker_id"] is None
    assert_clean_logs([server_b])


@pytest.mark.server
def test_processes_starting_together_on_a_new_database_all_come_up(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    """Three processes that start at the same moment on an empty database race to create the
    tables; every one comes up, and what one writes the others read."""
    with running_servers(3, database_url, tmp_path, name="racer") as servers:
        created = {create_session(server, server.log_path.stem) for server in servers}
        for server in servers:
            listed = httpx.get(f"{server.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()
            assert {s["id"] for s in listed} == created
        assert_clean_logs(servers)
    assert db.scalar("SELECT count(*) FROM sessions") == 3


@pytest.mark.server
def test_edits_sent_at_once_through_two_processes_are_sibling_branches(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    """Four turns on one parent, started together through two processes: all four are stored as
    sibling branches, each with its own reply, and they overlap (every reply was streaming at once)."""
    with running_servers(2, database_url, tmp_path, SLOW_REPLIES) as servers:
        session_id = create_session(servers[0], "edits")
        first = parse_sse(
            httpx.post(
                f"{servers[0].base_url}/api/chat", json=chat_body(session_id, "q"), timeout=HTTP_TIMEOUT_S
            ).text
        )
        parent = first[0].data["assistant_message_id"]
        with ExitStack() as streams:
            edits = [
                streams.enter_context(
                    BackgroundChat(
                        servers[n % 2], chat_body(session_id, f"{LONG_MESSAGE} {n}", parent_id=parent)
                    )
                )
                for n in range(4)
            ]
            for edit in edits:
                edit.wait_until("start event", started)
            statuses = [reply_status(db, edit.reply_id) for edit in edits]
            for edit in edits:
                edit.wait_until_finished()

    assert statuses == ["in_progress"] * 4, "the four replies were streaming at the same time"
    rows = db.rows("SELECT id, parent_id, role, status FROM messages WHERE session_id = :s", s=session_id)
    by_id = {row["id"]: row for row in rows}
    assert len(by_id) == 2 + 2 * len(edits)
    for edit in edits:
        assert edit.failure is None and edit.events[-1].event == "done", edit.events[-3:]
        [question_id] = edit.events[0].data["message_ids"]
        assert by_id[question_id]["parent_id"] == parent
        assert (by_id[edit.reply_id]["parent_id"], by_id[edit.reply_id]["status"]) == (
            question_id,
            "complete",
        )
    assert_clean_logs(servers)


@pytest.mark.server
def test_a_reply_deleted_mid_stream_ends_with_why_for_a_follower_on_another_process(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    """A reply generated by one process, followed through the other, and its question deleted through
    that other one: the generation stops, and both streams end with the error that says why."""
    with running_servers(2, database_url, tmp_path, SLOW_REPLIES) as [server_a, server_b]:
        session_id = create_session(server_a, "deleted")
        with BackgroundChat(server_a, chat_body(session_id, LONG_MESSAGE)) as chat:
            chat.wait_until("a delta", deltas(1))
            with BackgroundChat.following(server_b, chat.reply_id) as follower:
                follower.wait_until("a delta", deltas(1))
                [question_id] = chat.events[0].data["message_ids"]
                deleted = httpx.delete(
                    f"{server_b.base_url}/api/messages/{question_id}", timeout=HTTP_TIMEOUT_S
                )
                follower.wait_until_finished()
                chat.wait_until_finished()

    assert deleted.status_code == 204
    for stream in (chat, follower):
        assert stream.failure is None
        assert stream.events[-1].event == "error", stream.events[-3:]
        assert stream.events[-1].data == {"detail": MESSAGE_DELETED}
    assert db.rows("SELECT id FROM messages WHERE session_id = :s", s=session_id) == []
    assert db.scalar("SELECT message_count FROM sessions WHERE id = :s", s=session_id) == 0
    assert_clean_logs([server_a, server_b])
