"""The AI SDK's routes across two real processes on one database: a reply streaming in one process
is resumed through the other, from its start, whichever protocol started it."""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import DatabaseView, parse_sse
from tests.servers import HTTP_TIMEOUT_S, ServerProcess, chat_body, running_servers

pytestmark = pytest.mark.server

# About 40 pieces, 4 s: time enough to resume elsewhere while it streams.
SLOW_REPLIES = {"CHATSTORE_MOCK_DELAY_MS": "100", "CHATSTORE_PROGRESS_INTERVAL_MS": "100"}


def chunks_of(body: str) -> list[dict[str, Any]]:
    blocks = [block for block in body.replace("\r\n", "\n").split("\n\n") if block]
    assert blocks[-1] == "data: [DONE]"
    return [json.loads(block.removeprefix("data: ")) for block in blocks[:-1]]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


def start_and_leave(server: ServerProcess, path: str, body: dict[str, Any], marker: bytes) -> None:
    """Start a reply that is kept generating, read until ``marker`` has come twice, and go away."""
    with (
        httpx.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT_S) as client,
        client.stream("POST", path, json=body) as response,
    ):
        assert response.status_code == 200
        seen = b""
        for piece in response.iter_bytes():
            seen += piece
            if seen.count(marker) >= 2:
                return


def stored_reply(db: DatabaseView, session_id: str) -> dict[str, Any]:
    return db.rows(
        "SELECT id, content, status FROM messages WHERE session_id = :s AND role = 'assistant'", s=session_id
    )[0]


def test_a_reply_streaming_in_one_process_is_resumed_through_the_other(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    with running_servers(2, database_url, tmp_path, SLOW_REPLIES) as (server_a, server_b):
        chat_id = str(uuid.uuid4())
        body = {
            "id": chat_id,
            "messages": [{"id": "q1", "role": "user", "parts": [{"type": "text", "text": "take your time"}]}],
            "keep_generating": True,
        }
        start_and_leave(server_a, "/api/ui/chat", body, b'"type":"text-delta"')
        assert stored_reply(db, chat_id)["status"] == "in_progress"

        resumed = httpx.get(f"{server_b.base_url}/api/ui/chat/{chat_id}/stream", timeout=HTTP_TIMEOUT_S)
        # chatstore's own stream, through B too, of the same reply
        reply_id = stored_reply(db, chat_id)["id"]
        followed = httpx.get(f"{server_b.base_url}/api/messages/{reply_id}/stream", timeout=HTTP_TIMEOUT_S)
        nothing = httpx.get(f"{server_b.base_url}/api/ui/chat/{chat_id}/stream", timeout=HTTP_TIMEOUT_S)

    assert resumed.status_code == 200
    assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    chunks = chunks_of(resumed.text)
    reply = stored_reply(db, chat_id)
    assert chunks[0] == {
        "type": "start",
        "messageId": reply["id"],
        "messageMetadata": chunks[0]["messageMetadata"] | {"session_id": chat_id, "status": "in_progress"},
    }
    assert chunks[-1]["type"] == "finish" and chunks[-1]["messageMetadata"]["status"] == "complete"
    assert reply["status"] == "complete"
    assert text_of(chunks) == reply["content"]
    assert parse_sse(followed.text)[-1].data["content"] == reply["content"]
    assert nothing.status_code == 204


def test_a_reply_started_by_post_api_chat_is_resumed_on_the_ui_route_of_another_process(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    with running_servers(2, database_url, tmp_path, SLOW_REPLIES) as (server_a, server_b):
        session_id = httpx.post(f"{server_a.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()["id"]
        body = chat_body(session_id, "take your time", keep_generating=True)
        start_and_leave(server_a, "/api/chat", body, b"event: delta")
        resumed = httpx.get(f"{server_b.base_url}/api/ui/chat/{session_id}/stream", timeout=HTTP_TIMEOUT_S)
        loaded = httpx.get(f"{server_a.base_url}/api/ui/chat/{session_id}/messages", timeout=HTTP_TIMEOUT_S)

    chunks = chunks_of(resumed.text)
    reply = stored_reply(db, session_id)
    assert chunks[0]["messageId"] == reply["id"]
    assert text_of(chunks) == reply["content"] and reply["status"] == "complete"
    assert loaded.json()[1]["parts"][1] == {"type": "text", "text": reply["content"], "state": "done"}


def test_a_ui_reply_of_a_killed_process_is_swept_by_the_other_and_nothing_resumes(
    database_url: str, db: DatabaseView, tmp_path: Path
) -> None:
    lease = {"CHATSTORE_WORKER_LEASE_S": "1.5"}
    with (
        running_servers(1, database_url, tmp_path, SLOW_REPLIES | lease, name="a") as [server_a],
        running_servers(1, database_url, tmp_path, lease, name="b") as [server_b],
    ):
        chat_id = str(uuid.uuid4())
        body = {
            "id": chat_id,
            "messages": [{"id": "q1", "role": "user", "parts": [{"type": "text", "text": "crash"}]}],
            "keep_generating": True,
        }
        start_and_leave(server_a, "/api/ui/chat", body, b'"type":"text-delta"')
        server_a.kill()
        deadline = time.monotonic() + 10
        while stored_reply(db, chat_id)["status"] == "in_progress":
            assert time.monotonic() < deadline, "the dead process's reply was not swept"
            time.sleep(0.05)
        resumed = httpx.get(f"{server_b.base_url}/api/ui/chat/{chat_id}/stream", timeout=HTTP_TIMEOUT_S)
        loaded = httpx.get(
            f"{server_b.base_url}/api/ui/chat/{chat_id}/messages", timeout=HTTP_TIMEOUT_S
        ).json()

    assert resumed.status_code == 204
    assert loaded[1]["metadata"]["status"] == "incomplete"
    assert loaded[1]["metadata"]["finish_reason"] == "server_stopped"
