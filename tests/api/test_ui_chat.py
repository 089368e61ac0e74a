"""The AI SDK's routes (``/api/ui/chat``): the UI message stream's framing, checked against the
``ai`` package's own ``uiMessageChunkSchema``, and the rules of the chat body, retries, regenerate,
resume and stop, with what each stores."""

import json
import subprocess
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import NODE_DIR, AppFactory, node_with
from tests.helpers import DatabaseView, ScriptedResponder, call_asgi, failing_responder, parse_sse

PIECES = [f"w{i} " for i in range(30)]


def user_message(text: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        "id": message_id or uuid.uuid4().hex[:16],
        "role": "user",
        "parts": [{"type": "text", "text": text}],
    }


def submit(chat_id: str, *messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": chat_id, "messages": list(messages), "trigger": "submit-message", **extra}


def chunks_of(body: str) -> list[dict[str, Any]]:
    """The chunks of a UI message stream; asserts its framing: one JSON ``data:`` line per event, and
    ``data: [DONE]`` last."""
    events = [block for block in body.replace("\r\n", "\n").split("\n\n") if block]
    assert all(block.startswith("data: ") and "\n" not in block for block in events), events
    assert events[-1] == "data: [DONE]"
    return [json.loads(block.removeprefix("data: ")) for block in events[:-1]]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(chunk["delta"] for chunk in chunks if chunk["type"] == "text-delta")


def slow_app(make_app: AppFactory, delay_s: float = 0.02) -> tuple[Litestar, ScriptedResponder]:
    responder = ScriptedResponder(PIECES, delay_s=delay_s)
    return make_app(responder, progress_interval_ms=20), responder


def cut_after(count: int) -> Any:
    """An ``on_body`` hook that disconnects once ``count`` text deltas were received."""
    seen = [0]

    def hook(chunk: bytes) -> bool:
        seen[0] += chunk.count(b'"type":"text-delta"')
        return seen[0] >= count

    return hook


def test_a_submit_streams_the_reply_as_ui_message_chunks_and_stores_it(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    chat_id = str(uuid.uuid4())
    response = client.post("/api/ui/chat", json=submit(chat_id, user_message("Hello there", "m-1")))

    assert response.status_code == 200
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = chunks_of(response.text)
    types = [chunk["type"] for chunk in chunks]
    assert types[:3] == ["start", "start-step", "text-start"]
    assert set(types[3:-3]) == {"text-delta"}
    assert types[-3:] == ["text-end", "finish-step", "finish"]
    [question, reply] = db.rows(
        "SELECT id, role, content, status, finish_reason, client_id, seq FROM messages"
        " WHERE session_id = :s ORDER BY seq",
        s=chat_id,
    )
    assert (question["role"], question["content"], question["client_id"]) == ("user", "Hello there", "m-1")
    assert chunks[0]["messageId"] == reply["id"]
    assert chunks[0]["messageMetadata"]["session_id"] == chat_id
    assert chunks[0]["messageMetadata"]["seq"] == reply["seq"] == 2
    assert chunks[0]["messageMetadata"]["status"] == "in_progress"
    assert text_of(chunks) == reply["content"] and reply["content"].startswith("You said: Hello there")
    assert {chunk["id"] for chunk in chunks if "delta" in chunk} == {chunks[2]["id"]}
    assert chunks[-1]["finishReason"] == "stop"
    assert chunks[-1]["messageMetadata"] | {"created_at": None} == {
        "session_id": chat_id,
        "seq": 2,
        "status": "complete",
        "finish_reason": "completed",
        "created_at": None,
        "error": None,
    }
    assert (reply["status"], reply["finish_reason"]) == ("complete", "completed")


def test_an_unknown_chat_id_starts_a_session_under_that_id(client: TestClient[Litestar]) -> None:
    chat_id = str(uuid.uuid4())
    assert client.get(f"/api/sessions/{chat_id}").status_code == 404
    assert client.post("/api/ui/chat", json=submit(chat_id, user_message("hi"))).status_code == 200

    session = client.get(f"/api/sessions/{chat_id}").json()
    assert session["session"]["id"] == chat_id
    assert session["session"]["name"] is None
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]


def test_an_upper_case_chat_id_names_the_same_session(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session_id = make_session(name="mine")["id"]
    response = client.post("/api/ui/chat", json=submit(session_id.upper(), user_message("hi")))
    assert response.status_code == 200
    assert client.get(f"/api/sessions/{session_id}").json()["session"]["message_count"] == 2


def test_a_retried_submit_stores_nothing_twice_and_streams_the_same_reply(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    chat_id = str(uuid.uuid4())
    body = submit(chat_id, user_message("once", "same-id"))
    first = chunks_of(client.post("/api/ui/chat", json=body).text)
    again = chunks_of(client.post("/api/ui/chat", json=body).text)

    assert again[0]["messageId"] == first[0]["messageId"]
    assert text_of(again) == text_of(first)
    assert again[-1]["type"] == "finish"
    assert [m["role"] for m in db.messages(chat_id)] == ["user", "assistant"]


def test_only_the_newest_message_of_a_submit_is_new(client: TestClient[Litestar], db: DatabaseView) -> None:
    chat_id = str(uuid.uuid4())
    first = user_message("first")
    start = chunks_of(client.post("/api/ui/chat", json=submit(chat_id, first)).text)[0]
    reply = {"id": start["messageId"], "role": "assistant", "parts": [{"type": "text", "text": "whatever"}]}
    # Earlier messages are sent as the client has them, in any shape: they are not read again.
    odd = {"id": "x", "role": "assistant", "parts": [{"type": "tool-weather", "state": "output-available"}]}
    response = client.post("/api/ui/chat", json=submit(chat_id, first, reply, odd, user_message("second")))

    assert response.status_code == 200
    rows = db.rows(
        "SELECT role, content, parent_id, id FROM messages WHERE session_id = :s ORDER BY seq", s=chat_id
    )
    assert [(r["role"], r["content"][:6]) for r in rows] == [
        ("user", "first"),
        ("assistant", "You sa"),
        ("user", "second"),
        ("assistant", "You sa"),
    ]
    # The new message follows the end of the current branch.
    assert rows[2]["parent_id"] == rows[1]["id"] == start["messageId"]


def test_regenerate_streams_a_new_reply_beside_the_old_one(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    chat_id = str(uuid.uuid4())
    question = user_message("again")
    old = chunks_of(client.post("/api/ui/chat", json=submit(chat_id, question)).text)[0]["messageId"]
    body = {"id": chat_id, "messages": [question], "trigger": "regenerate-message", "messageId": old}
    new = chunks_of(client.post("/api/ui/chat", json=body).text)

    assert new[0]["messageId"] != old
    assert new[-1]["type"] == "finish"
    rows = db.rows("SELECT id, parent_id, role FROM messages WHERE session_id = :s ORDER BY seq", s=chat_id)
    assert [r["id"] for r in rows[1:]] == [old, new[0]["messageId"]]
    assert rows[1]["parent_id"] == rows[2]["parent_id"] == rows[0]["id"]
    detail = client.get(f"/api/sessions/{chat_id}").json()
    assert detail["session"]["current_message_id"] == new[0]["messageId"]
    assert detail["messages"][-1]["sibling_ids"] == [old, new[0]["messageId"]]


def test_regenerate_without_a_message_id_answers_the_last_user_message(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    chat_id = str(uuid.uuid4())
    question = user_message("again")
    client.post("/api/ui/chat", json=submit(chat_id, question))
    response = client.post(
        "/api/ui/chat", json={"id": chat_id, "messages": [question], "trigger": "regenerate-message"}
    )
    assert response.status_code == 200
    rows = db.rows("SELECT role, parent_id, id FROM messages WHERE session_id = :s ORDER BY seq", s=chat_id)
    assert [r["role"] for r in rows] == ["user", "assistant", "assistant"]
    assert rows[2]["parent_id"] == rows[0]["id"]


def test_a_failed_reply_ends_with_an_error_chunk(make_app: AppFactory, db: DatabaseView) -> None:
    with TestClient(make_app(failing_responder(["part ", "way"]))) as client:
        chat_id = str(uuid.uuid4())
        chunks = chunks_of(client.post("/api/ui/chat", json=submit(chat_id, user_message("q"))).text)

    assert [c["type"] for c in chunks][-3:] == ["text-end", "finish-step", "error"]
    assert chunks[-1] == {"type": "error", "errorText": "the model is overloaded"}
    assert text_of(chunks) == "part way"
    [_, reply] = db.rows(
        "SELECT content, status, error FROM messages WHERE session_id = :s ORDER BY seq", s=chat_id
    )
    assert reply == {"content": "part way", "status": "error", "error": "the model is overloaded"}


def test_a_reply_that_fails_before_any_text_has_no_text_part(make_app: AppFactory) -> None:
    with TestClient(make_app(failing_responder([]))) as client:
        chat_id = str(uuid.uuid4())
        chunks = chunks_of(client.post("/api/ui/chat", json=submit(chat_id, user_message("q"))).text)
        messages = client.get(f"/api/ui/chat/{chat_id}/messages").json()
    assert [c["type"] for c in chunks] == ["start", "start-step", "finish-step", "error"]
    assert messages[1]["parts"] == [{"type": "step-start"}]
    assert messages[1]["metadata"]["status"] == "error"


INVALID = [
    (lambda c: {"id": "not-a-uuid", "messages": [user_message("hi")]}, "id"),
    (lambda c: {"messages": [user_message("hi")]}, "body"),
    (lambda c: submit(c), "messages"),
    (lambda c: submit(c, {**user_message("hi"), "role": "assistant"}), "messages[0].role"),
    (
        lambda c: submit(
            c, {**user_message("hi"), "parts": [{"type": "file", "url": "x", "mediaType": "a/b"}]}
        ),
        "messages[0].parts[0].type",
    ),
    (
        lambda c: submit(c, {**user_message("hi"), "parts": [{"type": "text", "text": 5}]}),
        "messages[0].parts[0].text",
    ),
    (lambda c: submit(c, {**user_message("hi"), "parts": []}), "messages[0].parts"),
    (
        lambda c: submit(c, {**user_message("hi"), "parts": [{"type": "text", "text": "a\u0000b"}]}),
        "messages[0].parts",
    ),
    (lambda c: submit(c, user_message("hi", "x" * 201)), "messages[0].id"),
    (lambda c: submit(c, user_message("hi"), messageId="m-1"), "messageId"),
    (lambda c: {**submit(c, user_message("hi")), "trigger": "resume-stream"}, "trigger"),
    (lambda c: {**submit(c, user_message("hi")), "keep_generating": "true"}, "keep_generating"),
    (lambda c: {**submit(c, user_message("hi")), "sessionId": "x"}, "body"),
]


@pytest.mark.parametrize(("make_body", "field"), INVALID)
def test_a_bad_chat_body_is_a_400_naming_the_field_and_stores_nothing(
    client: TestClient[Litestar], db: DatabaseView, make_body: Any, field: str
) -> None:
    chat_id = str(uuid.uuid4())
    response = client.post("/api/ui/chat", json=make_body(chat_id))

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}:"), response.json()
    assert db.scalar("SELECT count(*) FROM sessions") == 0
    assert db.scalar("SELECT count(*) FROM messages") == 0


def test_a_message_longer_than_the_limit_is_a_400(make_app: AppFactory, db: DatabaseView) -> None:
    with TestClient(make_app(max_content_length=5)) as client:
        response = client.post("/api/ui/chat", json=submit(str(uuid.uuid4()), user_message("too long")))
    assert response.status_code == 400
    assert response.json()["detail"] == "messages[0].parts: at most 5 characters, got 8"
    assert db.scalar("SELECT count(*) FROM messages") == 0


def test_regenerating_in_an_unknown_chat_is_a_404(client: TestClient[Litestar], db: DatabaseView) -> None:
    body = {"id": str(uuid.uuid4()), "messages": [user_message("q")], "trigger": "regenerate-message"}
    response = client.post("/api/ui/chat", json=body)
    assert response.status_code == 404
    assert db.scalar("SELECT count(*) FROM sessions") == 0


@pytest.mark.parametrize("message_id", ["not-a-reply", "question", str(uuid.uuid4())])
def test_regenerating_something_that_is_not_a_reply_of_the_chat_is_a_400(
    client: TestClient[Litestar], db: DatabaseView, message_id: str
) -> None:
    chat_id = str(uuid.uuid4())
    client.post("/api/ui/chat", json=submit(chat_id, user_message("q")))
    if message_id == "question":
        message_id = db.messages(chat_id)[0]["id"]
    body = {
        "id": chat_id,
        "messages": [user_message("q")],
        "trigger": "regenerate-message",
        "messageId": message_id,
    }
    response = client.post("/api/ui/chat", json=body)
    assert response.status_code == 400
    assert response.json()["detail"] == "messageId: is not a reply of this session"
    assert len(db.messages(chat_id)) == 2


def test_regenerating_a_chat_without_a_user_message_is_a_409(
    client: TestClient[Litestar], make_session: Any
) -> None:
    chat_id = make_session()["id"]
    body = {"id": chat_id, "messages": [user_message("q")], "trigger": "regenerate-message"}
    assert client.post("/api/ui/chat", json=body).status_code == 409


def test_the_messages_route_gives_the_current_branch_as_ui_messages(client: TestClient[Litestar]) -> None:
    chat_id = str(uuid.uuid4())
    chunks = chunks_of(client.post("/api/ui/chat", json=submit(chat_id, user_message("Hi", "first-id"))).text)
    stored = client.get(f"/api/sessions/{chat_id}").json()["messages"]

    messages = client.get(f"/api/ui/chat/{chat_id}/messages").json()

    assert [m["id"] for m in messages] == ["first-id", chunks[0]["messageId"]]
    assert messages[0]["role"] == "user" and messages[0]["parts"] == [{"type": "text", "text": "Hi"}]
    assert messages[1]["parts"] == [
        {"type": "step-start"},
        {"type": "text", "text": stored[1]["content"], "state": "done"},
    ]
    for message, row in zip(messages, stored, strict=True):
        assert message["metadata"] == {
            "session_id": chat_id,
            "seq": row["seq"],
            "status": row["status"],
            "finish_reason": row["finish_reason"],
            "created_at": row["created_at"],
            "error": None,
        }
    assert messages[1]["metadata"] == chunks[-1]["messageMetadata"]


def test_an_unknown_chat_has_no_messages_and_nothing_streaming(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    chat_id = str(uuid.uuid4())
    assert client.get(f"/api/ui/chat/{chat_id}/messages").json() == []
    response = client.get(f"/api/ui/chat/{chat_id}/stream")
    assert (response.status_code, response.content) == (204, b"")
    assert db.scalar("SELECT count(*) FROM sessions") == 0


@pytest.mark.parametrize("path", ["/api/ui/chat/not-a-uuid/messages", "/api/ui/chat/not-a-uuid/stream"])
def test_a_chat_id_in_a_path_that_is_not_a_uuid_is_a_404(client: TestClient[Litestar], path: str) -> None:
    assert client.get(path).status_code == 404


def test_nothing_streams_once_the_reply_has_ended(client: TestClient[Litestar]) -> None:
    chat_id = str(uuid.uuid4())
    client.post("/api/ui/chat", json=submit(chat_id, user_message("q")))
    assert client.get(f"/api/ui/chat/{chat_id}/stream").status_code == 204


def test_resume_replays_a_streaming_reply_from_its_start(make_app: AppFactory, db: DatabaseView) -> None:
    app, responder = slow_app(make_app)
    with TestClient(app) as client:
        chat_id = str(uuid.uuid4())
        body = submit(chat_id, user_message("q"), keep_generating=True)
        _, raw = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/ui/chat", body, on_body=cut_after(2))
        )
        cut = chunks_of_partial(raw.decode())
        resumed = client.get(f"/api/ui/chat/{chat_id}/stream")

    assert resumed.status_code == 200
    assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    chunks = chunks_of(resumed.text)
    assert chunks[0]["type"] == "start" and chunks[0]["messageId"] == cut[0]["messageId"]
    assert chunks[0]["messageMetadata"]["seq"] == 2
    assert text_of(chunks) == "".join(PIECES)
    assert text_of(chunks).startswith(text_of(cut))
    assert chunks[-1]["type"] == "finish" and chunks[-1]["messageMetadata"]["status"] == "complete"
    assert db.messages(chat_id)[1]["content"] == "".join(PIECES)
    assert responder.produced == len(PIECES)


def chunks_of_partial(body: str) -> list[dict[str, Any]]:
    """The chunks of a stream that was cut off."""
    blocks = [block for block in body.replace("\r\n", "\n").split("\n\n") if block.startswith("data: {")]
    return [json.loads(block.removeprefix("data: ")) for block in blocks]


def test_a_client_that_goes_away_leaves_the_reply_incomplete(make_app: AppFactory, db: DatabaseView) -> None:
    app, responder = slow_app(make_app)
    with TestClient(app) as client:
        chat_id = str(uuid.uuid4())
        body = submit(chat_id, user_message("q"))
        client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/ui/chat", body, on_body=cut_after(2))
        )
        assert client.get(f"/api/ui/chat/{chat_id}/stream").status_code == 204
        messages = client.get(f"/api/ui/chat/{chat_id}/messages").json()

    [_, reply] = db.rows(
        "SELECT status, finish_reason FROM messages WHERE session_id = :s ORDER BY seq", s=chat_id
    )
    assert reply == {"status": "incomplete", "finish_reason": "client_disconnected"}
    assert responder.closed and responder.produced < len(PIECES)
    assert messages[1]["metadata"]["status"] == "incomplete"


def test_a_stopped_reply_finishes_as_interrupted(make_app: AppFactory, db: DatabaseView) -> None:
    app, _ = slow_app(make_app, delay_s=0.05)
    with TestClient(app) as client:
        chat_id = str(uuid.uuid4())
        stopped: list[int] = []

        async def stop_after_three_deltas(chunk: bytes, seen: list[int] = [0]) -> bool:  # noqa: B006
            seen[0] += chunk.count(b'"type":"text-delta"')
            if seen[0] >= 3 and not stopped:
                reply_id = db.messages(chat_id)[1]["id"]
                status, _ = await call_asgi(app, "POST", f"/api/messages/{reply_id}/stop")
                stopped.append(status)
            return False

        body = submit(chat_id, user_message("q"), keep_generating=True)
        _, raw = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/ui/chat", body, on_body=stop_after_three_deltas)
        )

    assert stopped == [200]
    chunks = chunks_of(raw.decode())
    assert chunks[-1]["finishReason"] == "interrupted"
    assert chunks[-1]["messageMetadata"]["status"] == "incomplete"
    assert chunks[-1]["messageMetadata"]["finish_reason"] == "stopped"
    assert db.messages(chat_id)[1]["content"] == text_of(chunks)


def test_a_reply_started_on_the_ui_route_is_re_attached_by_chatstores_stream(
    client: TestClient[Litestar],
) -> None:
    chat_id = str(uuid.uuid4())
    chunks = chunks_of(client.post("/api/ui/chat", json=submit(chat_id, user_message("q"))).text)
    events = parse_sse(client.get(f"/api/messages/{chunks[0]['messageId']}/stream").text)
    assert events[-1].event == "done"
    assert events[-1].data["content"] == text_of(chunks)


def test_a_reply_started_by_post_api_chat_is_resumed_on_the_ui_route(make_app: AppFactory) -> None:
    app, _ = slow_app(make_app)
    with TestClient(app) as client:
        chat_id = client.post("/api/sessions").json()["id"]
        body = {
            "session_id": chat_id,
            "messages": [{"role": "user", "content": "q"}],
            "keep_generating": True,
        }
        cut = [0]

        def after_two(chunk: bytes) -> bool:
            cut[0] += chunk.count(b"event: delta")
            return cut[0] >= 2

        client.blocking_portal.call(lambda: call_asgi(app, "POST", "/api/chat", body, on_body=after_two))
        chunks = chunks_of(client.get(f"/api/ui/chat/{chat_id}/stream").text)
        stored = client.get(f"/api/sessions/{chat_id}").json()["messages"][-1]
    assert chunks[0]["messageId"] == stored["id"]
    assert text_of(chunks) == stored["content"] == "".join(PIECES)


# --- Against the package's own schema ---------------------------------------------------------------


def captured_streams(make_app: AppFactory) -> dict[str, str]:
    """A stream of each kind the routes send: complete, failed (with and without text), stopped,
    replayed after a retry, resumed."""
    bodies: dict[str, str] = {}
    with TestClient(make_app()) as client:
        chat_id = str(uuid.uuid4())
        body = submit(chat_id, user_message("q", "retried"))
        bodies["complete"] = client.post("/api/ui/chat", json=body).text
        bodies["retry"] = client.post("/api/ui/chat", json=body).text
        regenerate = {"id": chat_id, "messages": [user_message("q")], "trigger": "regenerate-message"}
        bodies["regenerate"] = client.post("/api/ui/chat", json=regenerate).text
    for name, responder in (("error", failing_responder(["a"])), ("error-at-once", failing_responder([]))):
        with TestClient(make_app(responder)) as client:
            bodies[name] = client.post("/api/ui/chat", json=submit(str(uuid.uuid4()), user_message("q"))).text
    app, _ = slow_app(make_app)
    with TestClient(app) as client:
        chat_id = str(uuid.uuid4())
        body = submit(chat_id, user_message("q"), keep_generating=True)
        client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/ui/chat", body, on_body=cut_after(2))
        )
        bodies["resumed"] = client.get(f"/api/ui/chat/{chat_id}/stream").text
        reply_id = client.get(f"/api/sessions/{chat_id}").json()["messages"][-1]["id"]
        client.post(f"/api/messages/{reply_id}/stop")
        # An incomplete reply replayed: finish with finishReason interrupted.
        client.blocking_portal.call(
            lambda: call_asgi(
                app, "POST", "/api/ui/chat", submit(chat_id, user_message("r", "cut")), on_body=cut_after(1)
            )
        )
        bodies["interrupted"] = client.post(
            "/api/ui/chat", json=submit(chat_id, user_message("r", "cut"))
        ).text
    return bodies


@pytest.mark.node
def test_every_stream_parses_with_the_ai_sdks_own_chunk_schema(make_app: AppFactory) -> None:
    node = node_with(("ai",), "the UI message stream tests")
    bodies = captured_streams(make_app)
    result = subprocess.run(
        [node, "ui-message-chunks.mjs"],
        cwd=NODE_DIR,
        input=json.dumps(list(bodies.values())),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parsed = dict(zip(bodies, json.loads(result.stdout), strict=True))

    for name, outcome in parsed.items():
        assert outcome["errors"] == [], name
        assert outcome["chunks"] == chunks_of(bodies[name]), name  # every chunk, as it was sent
    types = {chunk["type"] for outcome in parsed.values() for chunk in outcome["chunks"]}
    assert types == {
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
        "error",
    }
    assert parsed["interrupted"]["chunks"][-1]["finishReason"] == "interrupted"
    assert parsed["complete"]["chunks"][-1]["finishReason"] == "stop"


def test_the_message_and_the_reply_are_committed_before_the_start_chunk(
    make_app: AppFactory, db: DatabaseView
) -> None:
    app, _ = slow_app(make_app)
    with TestClient(app) as client:
        chat_id = str(uuid.uuid4())
        seen_at_start: list[list[dict[str, Any]]] = []

        def at_start(chunk: bytes) -> bool:
            if b'"type":"start"' in chunk and not seen_at_start:
                seen_at_start.append(
                    db.rows("SELECT role, status FROM messages WHERE session_id = :s ORDER BY seq", s=chat_id)
                )
            return False

        body = submit(chat_id, user_message("q"))
        client.blocking_portal.call(lambda: call_asgi(app, "POST", "/api/ui/chat", body, on_body=at_start))

    assert seen_at_start == [
        [{"role": "user", "status": "complete"}, {"role": "assistant", "status": "in_progress"}]
    ]


def test_an_edit_is_a_new_branch_beside_the_edited_message(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    chat_id = str(uuid.uuid4())
    first = user_message("first", "m-1")
    reply_1 = chunks_of(client.post("/api/ui/chat", json=submit(chat_id, first)).text)[0]["messageId"]
    shown_1 = {"id": reply_1, "role": "assistant", "parts": [{"type": "text", "text": "…"}]}
    second = user_message("second", "m-2")
    client.post("/api/ui/chat", json=submit(chat_id, first, shown_1, second))
    # sendMessage({text, messageId: "m-2"}): the chat up to the edited message, its text replaced.
    edit = submit(chat_id, first, shown_1, user_message("second, edited", "m-2"), messageId="m-2")
    edited = chunks_of(client.post("/api/ui/chat", json=edit).text)
    again = chunks_of(client.post("/api/ui/chat", json=edit).text)

    assert again[0]["messageId"] == edited[0]["messageId"]  # a retried edit stores nothing twice
    rows = db.rows(
        "SELECT id, role, content, parent_id, client_id FROM messages WHERE session_id = :s ORDER BY seq",
        s=chat_id,
    )
    assert [(r["role"], r["content"][:14]) for r in rows] == [
        ("user", "first"),
        ("assistant", "You said: firs"),
        ("user", "second"),
        ("assistant", "You said: seco"),
        ("user", "second, edited"),
        ("assistant", "You said: seco"),
    ]
    assert rows[4]["parent_id"] == rows[2]["parent_id"] == reply_1
    assert rows[5]["id"] == edited[0]["messageId"] and rows[5]["parent_id"] == rows[4]["id"]
    assert rows[4]["client_id"].startswith("edit:")
    # The chat now shows the edited branch; the edit's id is its client id.
    loaded = client.get(f"/api/ui/chat/{chat_id}/messages").json()
    assert [m["id"] for m in loaded] == ["m-1", reply_1, rows[4]["client_id"], edited[0]["messageId"]]
    assert loaded[2]["parts"] == [{"type": "text", "text": "second, edited"}]


def test_editing_the_first_message_starts_a_new_first_message(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    chat_id = str(uuid.uuid4())
    client.post("/api/ui/chat", json=submit(chat_id, user_message("hello", "m-1")))
    edit = submit(chat_id, user_message("hello again", "m-1"), messageId="m-1")
    assert client.post("/api/ui/chat", json=edit).status_code == 200
    firsts = db.rows(
        "SELECT content FROM messages WHERE session_id = :s AND parent_id IS NULL ORDER BY seq", s=chat_id
    )
    assert firsts == [{"content": "hello"}, {"content": "hello again"}]


@pytest.mark.parametrize(
    ("messages", "message_id", "field"),
    [
        (lambda reply: [user_message("a", "m-1"), user_message("b", "m-2")], "m-1", "messageId"),
        (
            lambda reply: [user_message("a", "m-1"), {**reply, "id": "unknown"}, user_message("b", "m-2")],
            "m-2",
            "messages[1].id",
        ),
    ],
)
def test_an_edit_that_does_not_fit_the_chat_is_a_400(
    client: TestClient[Litestar], db: DatabaseView, messages: Any, message_id: str, field: str
) -> None:
    chat_id = str(uuid.uuid4())
    reply_id = chunks_of(client.post("/api/ui/chat", json=submit(chat_id, user_message("a", "m-1"))).text)[0][
        "messageId"
    ]
    reply = {"id": reply_id, "role": "assistant", "parts": []}
    response = client.post("/api/ui/chat", json=submit(chat_id, *messages(reply), messageId=message_id))
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}:")
    assert len(db.messages(chat_id)) == 2
