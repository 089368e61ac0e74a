"""Many chats at once on a few sessions, in one process: no error, nothing lost, nothing reordered;
and a progress write racing the end of its reply leaves no chunk behind."""

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import Connection, Engine, create_engine, text

from chatstore.core.db import resolve_url
from chatstore.core.migrations import upgrade_schema
from chatstore.core.settings import Settings
from chatstore.services.replies.reply_store import release_replies_of, store_final_state, write_progress
from tests.conftest import postgres_url, skip_or_fail_in_ci
from tests.helpers import DatabaseView, parse_sse, postgres_schema

SESSIONS = 4
CLIENTS = 32
TURNS_PER_CLIENT = 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_dozens_of_simultaneous_chats_on_a_few_sessions(app: Litestar, db: DatabaseView) -> None:
    turns: dict[str, list[dict[str, Any]]] = defaultdict(list)

    async with AsyncTestClient(app) as client:
        session_ids = [(await client.post("/api/sessions")).json()["id"] for _ in range(SESSIONS)]

        async def chat_client(number: int) -> None:
            for turn in range(TURNS_PER_CLIENT):
                session_id = session_ids[(number + turn) % SESSIONS]
                response = await client.post(
                    "/api/chat",
                    json={
                        "session_id": session_id,
                        "messages": [{"role": "user", "content": f"c{number} t{turn}"}],
                    },
                )
                assert response.status_code == 200, response.text
                events = parse_sse(response.text)
                assert [events[0].event, events[-1].event] == ["start", "done"]
                turns[session_id].append(
                    {
                        "user_id": events[0].data["message_ids"][0],
                        "reply_id": events[0].data["assistant_message_id"],
                        "content": f"c{number} t{turn}",
                        "reply": "".join(e.data["content"] for e in events if e.event == "delta"),
                    }
                )

        await asyncio.gather(*(chat_client(n) for n in range(CLIENTS)))

    assert sum(len(t) for t in turns.values()) == CLIENTS * TURNS_PER_CLIENT
    for session_id, session_turns in turns.items():
        stored = db.messages(session_id)
        assert [m["seq"] for m in stored] == list(range(1, 2 * len(session_turns) + 1))
        by_id = {m["id"]: m for m in stored}
        for turn in session_turns:
            question, reply = by_id[turn["user_id"]], by_id[turn["reply_id"]]
            assert question["content"] == turn["content"]
            assert reply["seq"] == question["seq"] + 1, "a reply comes right after its user message"
            assert (reply["status"], reply["content"]) == ("complete", turn["reply"])


# --- A progress write and the end of its reply, on two connections (PostgreSQL) ------------------
# On SQLite every write of a process goes through one connection, and processes take turns at the
# file's write lock (BEGIN IMMEDIATE): the two never overlap there.

REPLY = "22222222-2222-4222-8222-222222222222"
SO_FAR = "the text so far"
WHOLE = "the text so far, and the rest"


@pytest.fixture
def postgres_database() -> Iterator[str]:
    base = postgres_url()
    if base is None:
        skip_or_fail_in_ci("this test needs PostgreSQL (CHATSTORE_TEST_POSTGRES_URL)")
    assert base is not None
    with postgres_schema(base, prefix="races") as url:
        asyncio.run(upgrade_schema(Settings(database_url=url)))
        yield url


def streaming_reply(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sessions (id, metadata, created_at, updated_at, last_seq, activity_at) "
                "VALUES ('s', '{}', :now, :now, 1, :now)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO messages (id, session_id, seq, role, content, status, created_at, updated_at, "
                "worker_id) VALUES (:id, 's', 1, 'assistant', '', 'in_progress', :now, :now, 'w')"
            ),
            {"id": REPLY, "now": now},
        )


ENDINGS: dict[str, Callable[[Connection], object]] = {
    # Its process had asked a progress write for a chunk: the final write drops the chunks.
    "final write": lambda connection: store_final_state(
        connection, REPLY, WHOLE, "complete", "completed", None, lambda: True
    ),
    "shutdown release": lambda connection: release_replies_of(connection, "w"),
}
# A final write that found no progress write asked when it had locked the row drops no chunk: one
# asked after that must find the reply ended.
ENDINGS_BEFORE_ANY_PROGRESS = {
    **ENDINGS,
    "final write, no chunk asked": lambda connection: store_final_state(
        connection, REPLY, WHOLE, "complete", "completed", None, lambda: False
    ),
}


def in_a_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive(), "it waits for the other transaction's lock"
    return thread


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_reply_ended_while_its_progress_write_commits_folds_or_drops_the_chunk(
    postgres_database: str, ending: str
) -> None:
    engine = create_engine(resolve_url(postgres_database, blocking=True))
    try:
        streaming_reply(engine)
        with engine.connect() as progress:
            progress.begin()
            write_progress(progress, {REPLY: (0, SO_FAR)}, [REPLY])

            def end() -> None:
                with engine.begin() as connection:
                    ENDINGS[ending](connection)

            ender = in_a_thread(end)
            progress.commit()
            ender.join()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM reply_chunks")).scalar() == 0
            content = connection.execute(text("SELECT content FROM messages WHERE id = :id"), {"id": REPLY})
            assert content.scalar() == (WHOLE if ending == "final write" else SO_FAR)
    finally:
        engine.dispose()


@pytest.mark.parametrize("ending", ENDINGS_BEFORE_ANY_PROGRESS)
def test_a_progress_write_while_its_reply_ends_stores_no_chunk(postgres_database: str, ending: str) -> None:
    engine = create_engine(resolve_url(postgres_database, blocking=True))
    try:
        streaming_reply(engine)
        stop_flags: list[dict[str, bool]] = []
        with engine.connect() as ending_connection:
            ending_connection.begin()
            ENDINGS_BEFORE_ANY_PROGRESS[ending](ending_connection)

            def write() -> None:
                with engine.begin() as connection:
                    stop_flags.append(write_progress(connection, {REPLY: (0, SO_FAR)}, [REPLY]))

            writer = in_a_thread(write)
            ending_connection.commit()
            writer.join()
        assert stop_flags == [{REPLY: False}]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM reply_chunks")).scalar() == 0
            content = connection.execute(text("SELECT content FROM messages WHERE id = :id"), {"id": REPLY})
            assert content.scalar() == (WHOLE if ending.startswith("final write") else "")
    finally:
        engine.dispose()
