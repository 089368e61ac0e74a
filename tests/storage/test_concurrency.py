"""Many chats at once on a few sessions, in one process: no error, nothing lost, nothing reordered."""

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.helpers import DatabaseView, parse_sse

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
