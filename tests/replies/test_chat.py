"""``POST /api/chat``: what is stored, when, and how the stream ends."""

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.services.responders import Conversation
from tests.conftest import AppFactory
from tests.helpers import DatabaseView, ScriptedResponder, call_asgi, failing_responder, parse_sse


def chat(client: TestClient[Litestar], session_id: str, *contents: str, role: str = "user") -> Any:
    return client.post(
        "/api/chat",
        json={"session_id": session_id, "messages": [{"role": role, "content": c} for c in contents]},
    )


def test_the_stream_is_start_deltas_done_with_increasing_ids(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView
) -> None:
    session = make_session()

    response = chat(client, session["id"], "Hello there")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [e.event for e in events[:1] + events[-1:]] == ["start", "done"]
    assert {e.event for e in events[1:-1]} == {"delta"}
    assert len(events) > 4
    ids = [e.id for e in events]
    assert ids == sorted(set(ids)), "ids must strictly increase"

    start, done = events[0].data, events[-1].data
    stored = db.messages(session["id"])
    assert start == {
        "session_id": session["id"],
        "message_ids": [stored[0]["id"]],
        "assistant_message_id": stored[1]["id"],
    }
    reply = "".join(e.data["content"] for e in events[1:-1])
    assert "Hello there" in reply
    assert done["id"] == stored[1]["id"]
    assert done["content"] == reply == stored[1]["content"]
    assert done["status"] == "complete" == stored[1]["status"]
    assert done["role"] == "assistant" and done["seq"] == 2
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]


def test_the_mock_reply_is_deterministic(client: TestClient[Litestar], make_session: Any) -> None:
    first, second = make_session()["id"], make_session()["id"]
    replies = [parse_sse(chat(client, s, "same words").text)[-1].data["content"] for s in (first, second)]
    assert replies[0] == replies[1]


def test_messages_of_several_turns_keep_their_order(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView
) -> None:
    session = make_session()
    chat(client, session["id"], "be brief", "first", role="user")
    chat(client, session["id"], "second")
    chat(client, session["id"], "third")

    stored = db.messages(session["id"])
    assert [m["seq"] for m in stored] == list(range(1, 8))
    assert [m["role"] for m in stored] == [
        "user",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert [m["content"] for m in stored if m["role"] == "user"] == ["be brief", "first", "second", "third"]
    assert all("third" in m["content"] for m in stored[-1:])
    detail = client.get(f"/api/sessions/{session['id']}").json()
    assert [m["id"] for m in detail["messages"]] == [m["id"] for m in stored]


def test_a_system_message_is_stored_like_any_other(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session()
    response = client.post(
        "/api/chat",
        json={
            "session_id": session["id"],
            "messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}],
        },
    )
    assert response.status_code == 200
    roles = [m["role"] for m in client.get(f"/api/sessions/{session['id']}").json()["messages"]]
    assert roles == ["system", "user", "assistant"]


def test_user_messages_and_the_reply_row_are_committed_before_start(
    make_app: AppFactory, db: DatabaseView
) -> None:
    seen_at_start: list[list[dict[str, Any]]] = []
    seen_at_done: list[list[dict[str, Any]]] = []

    class AfterTheLook(ScriptedResponder):
        """Replies once the test has read the database at ``start``: an instant reply could be
        stored before the first event reaches the wire."""

        async def reply(self, conversation: Conversation) -> AsyncIterator[str]:
            while not seen_at_start:
                await anyio.sleep(0.001)
            async for piece in super().reply(conversation):
                yield piece

    app = make_app(responder=AfterTheLook(["a", "b", "c"]))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]

        def look(chunk: bytes) -> bool:
            # Runs when the chunk is handed to the server, before the client could see it.
            if b"event: start" in chunk:
                seen_at_start.append(db.messages(session_id))
            if b"event: done" in chunk:
                seen_at_done.append(db.messages(session_id))
            return False

        body = {"session_id": session_id, "messages": [{"role": "user", "content": "q"}]}
        status, _ = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body, on_body=look)
        )

    assert status == 200
    (at_start,) = seen_at_start
    assert [(m["role"], m["content"], m["status"]) for m in at_start] == [
        ("user", "q", "complete"),
        ("assistant", "", "in_progress"),
    ]
    assert at_start[1]["worker_id"] is not None
    (at_done,) = seen_at_done
    assert [(m["role"], m["content"], m["status"]) for m in at_done] == [
        ("user", "q", "complete"),
        ("assistant", "abc", "complete"),
    ]
    assert at_done[1]["worker_id"] is None


@pytest.mark.parametrize("after_deltas", [0, 2])
def test_a_client_that_disconnects_leaves_an_incomplete_reply(
    make_app: AppFactory, db: DatabaseView, after_deltas: int
) -> None:
    responder = ScriptedResponder([f"p{i} " for i in range(50)], delay_s=0.01)
    app = make_app(responder=responder)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        deltas = 0

        def disconnect_after(chunk: bytes) -> bool:
            nonlocal deltas
            deltas += chunk.count(b"event: delta")
            return deltas >= after_deltas

        body = {"session_id": session_id, "messages": [{"role": "user", "content": "long please"}]}
        client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body, on_body=disconnect_after)
        )

        stored = db.messages(session_id)
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "incomplete")]
    assert responder.closed, "the responder must be stopped"
    assert responder.produced < 50
    # What was generated before the disconnect is kept (the piece in flight may or may not be).
    expected = "".join(f"p{i} " for i in range(responder.produced))
    assert expected.startswith(stored[1]["content"])
    assert len(stored[1]["content"]) >= len("".join(f"p{i} " for i in range(after_deltas)))


def test_the_reply_is_stored_within_moments_of_a_disconnect(make_app: AppFactory, db: DatabaseView) -> None:
    """The client goes away while the responder is slow (2 s in all): nothing waits for it to finish."""
    app = make_app(responder=ScriptedResponder(["first "] + ["slow "] * 3, delay_s=0.5))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        body = {"session_id": session_id, "messages": [{"role": "user", "content": "x"}]}

        async def cut_after_first_delta() -> float:
            started = anyio.current_time()
            await call_asgi(app, "POST", "/api/chat", body, on_body=lambda chunk: b"event: delta" in chunk)
            return anyio.current_time() - started

        elapsed = client.blocking_portal.call(cut_after_first_delta)
        stored = db.messages(session_id)
    assert stored[1]["status"] == "incomplete"
    assert stored[1]["content"] == "first "
    assert elapsed < 1.5


def test_a_failing_responder_gives_an_error_event_and_keeps_the_partial_reply(
    make_app: AppFactory, db: DatabaseView
) -> None:
    app = make_app(responder=failing_responder(["partial ", "reply"], "the model is overloaded"))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        response = chat(client, session_id, "go")

    assert response.status_code == 200
    events = parse_sse(response.text)
    assert [e.event for e in events] == ["start", "delta", "delta", "error"]
    assert events[-1].data == {"detail": "the model is overloaded"}
    assert events[-1].id > events[-2].id
    stored = db.messages(session_id)
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "go", "complete"),
        ("assistant", "partial reply", "error"),
    ]


def test_an_unexpected_responder_crash_is_an_error_event_without_internals(
    make_app: AppFactory, db: DatabaseView, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(responder=ScriptedResponder(["x"], fail_with=KeyError("secret internals")))
    # The app's logging set-up replaces the root handlers, caplog's among them: listen directly.
    logger = logging.getLogger("chatstore")
    logger.addHandler(caplog.handler)
    try:
        with TestClient(app) as client:
            session_id = client.post("/api/sessions").json()["id"]
            events = parse_sse(chat(client, session_id, "go").text)
    finally:
        logger.removeHandler(caplog.handler)

    assert events[-1].event == "error"
    assert "secret" not in events[-1].data["detail"]
    assert db.messages(session_id)[1]["status"] == "error"
    assert "secret internals" in caplog.text


def test_the_responder_gets_the_stored_history(make_app: AppFactory) -> None:
    responder = ScriptedResponder(["ok"])
    app = make_app(responder=responder)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        chat(client, session_id, "one")
        chat(client, session_id, "two")
        history = client.blocking_portal.call(responder.conversations[-1].history)

    assert [(m.role, m.content) for m in history] == [("user", "one"), ("assistant", "ok"), ("user", "two")]
    assert [m.content for m in responder.conversations[-1].new_messages] == ["two"]


def test_the_responder_gets_the_session_metadata_the_turn_read_without_reading_again(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn's write touches the session row anyway: it brings the metadata along, for a chat and
    for a regeneration, so that a responder that asks for it costs no read of its own."""

    async def no_second_read(*_: Any) -> Any:
        raise AssertionError("the session's metadata was read again")

    monkeypatch.setattr("chatstore.services.replies.generation.read_session_metadata", no_second_read)
    responder = ScriptedResponder(["ok"])
    metadata = {"model": "m", "nested": {"list": [1, 2.5, "x", None, True]}, "text": "line\nbreak"}
    with TestClient(make_app(responder=responder)) as client:
        session_id = client.post("/api/sessions", json={"metadata": metadata}).json()["id"]
        chat(client, session_id, "one")
        patched = client.patch(f"/api/sessions/{session_id}", json={"metadata": {"model": "n"}}).json()
        client.post(f"/api/sessions/{session_id}/regenerate")
        seen = [client.blocking_portal.call(c.session_metadata) for c in responder.conversations]

    assert seen == [metadata, patched["metadata"]] and patched["metadata"]["model"] == "n"


def test_deleting_the_session_while_its_reply_streams_ends_the_stream_with_an_error(
    make_app: AppFactory, db: DatabaseView
) -> None:
    app = make_app(responder=ScriptedResponder(["a ", "b ", "c "], delay_s=0.05))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]

        async def delete_during_stream(chunk: bytes) -> bool:
            if b"event: start" in chunk:
                status, _ = await call_asgi(app, "DELETE", f"/api/sessions/{session_id}")
                assert status == 204
            return False

        body = {"session_id": session_id, "messages": [{"role": "user", "content": "x"}]}
        status, raw = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body, on_body=delete_during_stream)
        )

    events = parse_sse(raw.decode())
    assert status == 200
    assert events[-1].event == "error"
    assert events[-1].data == {"detail": "the session was deleted while the reply was streaming"}
    assert db.scalar("SELECT count(*) FROM messages") == 0
