"""Replies that survive the network: live progress, re-attaching, keep generating, stop, finish
reasons, idempotent retries and regeneration, in one process (see processes/test_multiprocess_replies.py for
several)."""

import dataclasses
import json
import random
from itertools import accumulate
from typing import Any

import anyio
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine
from sqlalchemy import event as sql_events

from chatstore.schemas import MessageIn
from chatstore.services.owners import EVERY_SESSION
from chatstore.services.replies.turns import CANNOT_RESUME, start_turn
from tests.conftest import AppFactory, ClientFactory
from tests.helpers import DatabaseView, Event, ScriptedResponder, call_asgi, failing_responder, parse_sse

PIECES = [f"w{i} " for i in range(30)]


def slow_app(
    make_app: AppFactory, delay_s: float = 0.02, pieces: list[str] = PIECES
) -> tuple[Litestar, ScriptedResponder]:
    responder = ScriptedResponder(pieces, delay_s=delay_s)
    return make_app(responder, progress_interval_ms=20), responder


def body(
    session_id: str, *contents: str, keep_generating: bool = False, ids: list[str] | None = None
) -> dict[str, Any]:
    messages = [{"role": "user", "content": c} for c in contents]
    for message, client_id in zip(messages, ids or [], strict=False):
        message["id"] = client_id
    return {"session_id": session_id, "messages": messages, "keep_generating": keep_generating}


def deltas_text(events: list[Event]) -> str:
    return "".join(e.data["content"] for e in events if e.event == "delta")


def cut_after(count: int) -> Any:
    """An ``on_body`` hook that disconnects once ``count`` deltas were received."""
    seen = [0]

    def hook(chunk: bytes) -> bool:
        seen[0] += chunk.count(b"event: delta")
        return seen[0] >= count

    return hook


def stored_chunks(db: DatabaseView, reply_id: str) -> list[dict[str, Any]]:
    return db.rows(
        "SELECT position, content FROM reply_chunks WHERE reply_id = :id ORDER BY position", id=reply_id
    )


def assert_follow_each_other(chunks: list[dict[str, Any]], start: int = 0) -> None:
    """Each chunk starts where the one before it ended."""
    for chunk in chunks:
        assert chunk["position"] == start, chunks
        start += len(chunk["content"])


def test_a_streaming_reply_shows_its_progress_to_readers(make_app: AppFactory, db: DatabaseView) -> None:
    """While a reply streams, another reader sees its text so far; the database holds only what each
    progress write added (chunks beside an unchanged row), and the final write folds them in."""
    app, _ = slow_app(make_app, delay_s=0.03)
    seen: list[tuple[str, str]] = []
    in_database: list[tuple[str, list[dict[str, Any]]]] = []
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]

        async def watch(chunk: bytes) -> bool:
            if b"event: delta" in chunk:
                _, page = await call_asgi(app, "GET", f"/api/sessions/{session_id}")
                reply = json.loads(page)["messages"][1]
                seen.append((reply["status"], reply["content"]))
                [_, row] = db.messages(session_id)
                if row["status"] == "in_progress":
                    in_database.append((row["content"], stored_chunks(db, row["id"])))
            return False

        _, raw = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body(session_id, "go"), on_body=watch)
        )
        reply_id = parse_sse(raw.decode())[0].data["assistant_message_id"]

    full = deltas_text(parse_sse(raw.decode()))
    growing = [content for status, content in seen if status == "in_progress"]
    assert any(growing), "another reader sees the reply grow while it streams"
    assert all(full.startswith(content) for content in growing)
    assert [len(c) for c in growing] == sorted(len(c) for c in growing)
    # The row is not rewritten while the reply streams: its progress is the chunks, in order.
    assert {row_content for row_content, _ in in_database} == {""}
    for _, chunks in in_database:
        assert_follow_each_other(chunks)
        assert full.startswith("".join(chunk["content"] for chunk in chunks))
    assert max(len(chunks) for _, chunks in in_database) >= 3, "several progress writes, each a chunk"
    assert db.scalar("SELECT content FROM messages WHERE id = :id", id=reply_id) == full
    assert stored_chunks(db, reply_id) == []


@pytest.mark.parametrize("progress_written", [False, True])
def test_the_final_write_drops_chunks_only_of_a_reply_that_had_progress_writes(
    make_app: AppFactory, db: DatabaseView, progress_written: bool
) -> None:
    """A reply that ended before any progress write has no chunks: its final write issues no
    statement for them. One that had some drops them all."""
    if progress_written:
        app, _ = slow_app(make_app, delay_s=0.03)
    else:
        app = make_app(ScriptedResponder(PIECES, delay_s=0), progress_interval_ms=60_000)
    chunk_deletes: list[str] = []

    def note(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM REPLY_CHUNKS"):
            chunk_deletes.append(statement)

    sql_events.listen(Engine, "before_cursor_execute", note)
    try:
        with TestClient(app) as client:
            session_id = client.post("/api/sessions").json()["id"]
            events = parse_sse(client.post("/api/chat", json=body(session_id, "go")).text)
    finally:
        sql_events.remove(Engine, "before_cursor_execute", note)
    reply_id = events[0].data["assistant_message_id"]
    assert db.scalar("SELECT content FROM messages WHERE id = :id", id=reply_id) == "".join(PIECES)
    assert stored_chunks(db, reply_id) == []
    assert len(chunk_deletes) == (1 if progress_written else 0)


def test_re_attaching_from_random_positions_gives_exactly_the_rest(
    make_app: AppFactory, db: DatabaseView
) -> None:
    """Cut many streams at random points, re-attach from the last id received: the deltas before
    and after the cut always make the stored reply, with nothing missing or repeated."""
    rng = random.Random(8)
    app, _ = slow_app(make_app, delay_s=0.005)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        for _ in range(12):
            cut = rng.randint(1, len(PIECES) - 1)
            _, raw = client.blocking_portal.call(
                lambda cut=cut: call_asgi(
                    app,
                    "POST",
                    "/api/chat",
                    body(session_id, "q", keep_generating=True),
                    on_body=cut_after(cut),
                )
            )
            before = parse_sse(raw.decode())
            reply_id = before[0].data["assistant_message_id"]
            last_id = before[-1].id
            after = parse_sse(
                client.get(f"/api/messages/{reply_id}/stream", headers={"Last-Event-ID": str(last_id)}).text
            )

            assert after[-1].event == "done"
            assert all(e.id > last_id for e in after)
            stored = after[-1].data
            assert deltas_text(before) + deltas_text(after) == stored["content"] == "".join(PIECES)
            assert db.scalar("SELECT content FROM messages WHERE id = :id", id=reply_id) == stored["content"]


def test_a_slow_reader_gets_the_pieces_waiting_for_it_as_one_delta_and_resumes_exactly(
    make_app: AppFactory, db: DatabaseView
) -> None:
    """A client that falls behind is sent every piece waiting for it as one delta, whose id is the
    position after it: fewer, larger deltas, and re-attaching from any id it saw, live or once the
    reply has ended, gives exactly the rest."""
    app, responder = slow_app(make_app, delay_s=0.002)
    full = "".join(PIECES)
    reply_ids: list[str] = []
    live_rests: list[tuple[int, int, bytes]] = []

    async def read_slowly(chunk: bytes) -> bool:
        for event in parse_sse(chunk.decode()):
            if event.event == "start":
                reply_ids.append(event.data["assistant_message_id"])
            elif event.event == "delta" and not live_rests:
                # The client stalls on its first delta until the responder has written every piece.
                with anyio.fail_after(10):
                    while responder.produced < len(PIECES):
                        await anyio.sleep(0.005)
                # Meanwhile another client re-attaches from the id this one has, live.
                path = f"/api/messages/{reply_ids[0]}/stream?last_event_id={event.id}"
                live_rests.append((event.id, *await call_asgi(app, "GET", path)))
        return False

    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        status, raw = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body(session_id, "go"), on_body=read_slowly)
        )
        events = parse_sse(raw.decode())
        deltas = [e for e in events if e.event == "delta"]
        resumed = {
            seen.id: client.get(
                f"/api/messages/{reply_ids[0]}/stream", headers={"Last-Event-ID": str(seen.id)}
            )
            for seen in events
        }

    assert status == 200
    assert len(deltas) == 2, "the first delta, then all the pieces that waited behind it in one"
    assert "".join(e.data["content"] for e in deltas) == full == events[-1].data["content"]
    assert [e.id for e in deltas] == list(accumulate(len(e.data["content"]) for e in deltas))
    assert events[-1].event == "done" and events[-1].id == len(full) + 1
    [(live_from, live_status, live_raw)] = live_rests
    live = parse_sse(live_raw.decode())
    assert live_status == 200 and deltas_text(live) == full[live_from:] and live[-1] == events[-1]
    for position, response in resumed.items():
        if position == events[-1].id:
            assert response.status_code == 204, "nothing comes after the final event"
            continue
        rest = parse_sse(response.text)
        assert deltas_text(rest) == full[position:]
        assert all(e.id > position for e in rest) and rest[-1] == events[-1]
    assert db.scalar("SELECT content FROM messages WHERE id = :id", id=reply_ids[0]) == full


@pytest.mark.parametrize("position", [0, 1, 7, 100, 149, 150])
def test_re_attaching_to_a_finished_reply_replays_what_is_missing(
    client: TestClient[Litestar], make_session: Any, position: int
) -> None:
    session_id = make_session()["id"]
    events = parse_sse(client.post("/api/chat", json=body(session_id, "hello")).text)
    reply = events[-1].data
    position = min(position, len(reply["content"]))

    after = parse_sse(client.get(f"/api/messages/{reply['id']}/stream?last_event_id={position}").text)

    assert deltas_text(after) == reply["content"][position:]
    assert after[-1].event == "done" and after[-1].data == reply
    assert after[-1].id == events[-1].id


def test_re_attaching_without_a_position_starts_from_the_beginning(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session_id = make_session()["id"]
    original = parse_sse(client.post("/api/chat", json=body(session_id, "hello")).text)

    replay = parse_sse(client.get(f"/api/messages/{original[0].data['assistant_message_id']}/stream").text)

    assert replay[0].event == "start" and replay[0].data == original[0].data
    assert deltas_text(replay) == deltas_text(original)
    assert replay[-1].data == original[-1].data


def test_re_attaching_after_the_last_event_gives_nothing_more(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session_id = make_session()["id"]
    events = parse_sse(client.post("/api/chat", json=body(session_id, "hello")).text)
    reply_id = events[0].data["assistant_message_id"]
    response = client.get(f"/api/messages/{reply_id}/stream", headers={"Last-Event-ID": str(events[-1].id)})
    # 204, not an empty 200: per the SSE specification that is what makes EventSource stop reconnecting.
    assert response.status_code == 204
    assert response.text == ""


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/messages/00000000-0000-4000-8000-000000000000/stream", {}, 404),
        ("/api/messages/nope/stream", {}, 404),
        ("/api/messages/{reply}/stream?last_event_id=-1", {}, 400),
        ("/api/messages/{reply}/stream", {"Last-Event-ID": "abc"}, 400),
        ("/api/messages/{question}/stream", {}, 404),
    ],
)
def test_bad_re_attach_requests(
    client: TestClient[Litestar], make_session: Any, path: str, headers: dict[str, str], status: int
) -> None:
    session_id = make_session()["id"]
    start = parse_sse(client.post("/api/chat", json=body(session_id, "hello")).text)[0].data
    url = path.format(reply=start["assistant_message_id"], question=start["message_ids"][0])
    assert client.get(url, headers=headers).status_code == status


def test_keep_generating_finishes_the_reply_after_the_client_left(
    make_app: AppFactory, db: DatabaseView
) -> None:
    app, responder = slow_app(make_app)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.blocking_portal.call(
            lambda: call_asgi(
                app, "POST", "/api/chat", body(session_id, "q", keep_generating=True), on_body=cut_after(2)
            )
        )
        reply_id = db.messages(session_id)[1]["id"]
        # Following the reply waits for its end: the stream ends with done once it is complete.
        events = parse_sse(
            client.get(f"/api/messages/{reply_id}/stream", headers={"Last-Event-ID": "0"}).text
        )

    assert events[-1].event == "done"
    [_, reply] = db.messages(session_id)
    assert (reply["status"], reply["content"]) == ("complete", "".join(PIECES))
    assert responder.produced == len(PIECES)


def test_without_keep_generating_a_departed_client_stops_the_reply(
    make_app: AppFactory, db: DatabaseView
) -> None:
    app, responder = slow_app(make_app)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body(session_id, "q"), on_body=cut_after(2))
        )
    reply = db.rows("SELECT status, finish_reason FROM messages WHERE role = 'assistant'")[0]
    assert reply == {"status": "incomplete", "finish_reason": "client_disconnected"}
    assert responder.closed and responder.produced < len(PIECES)


def test_the_stop_endpoint_ends_a_reply_as_stopped(make_app: AppFactory, db: DatabaseView) -> None:
    app, responder = slow_app(make_app, delay_s=0.05)
    chunks_before: list[dict[str, Any]] = []
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        stopped: list[Any] = []

        async def stop_after_three_deltas(chunk: bytes, seen: list[int] = [0]) -> bool:  # noqa: B006
            seen[0] += chunk.count(b"event: delta")
            if seen[0] >= 3 and not stopped:
                reply_id = db.messages(session_id)[1]["id"]
                chunks_before.extend(stored_chunks(db, reply_id))
                status, raw = await call_asgi(app, "POST", f"/api/messages/{reply_id}/stop")
                stopped.append((status, raw))
            return False

        _, raw = client.blocking_portal.call(
            lambda: call_asgi(
                app, "POST", "/api/chat", body(session_id, "q"), on_body=stop_after_three_deltas
            )
        )

    status, stop_body = stopped[0]
    assert status == 200
    events = parse_sse(raw.decode())
    assert events[-1].event == "done"
    assert (events[-1].data["status"], events[-1].data["finish_reason"]) == ("incomplete", "stopped")
    assert events[-1].data["content"] == deltas_text(events)
    assert b'"finish_reason":"stopped"' in stop_body
    assert responder.produced < len(PIECES)
    assert db.rows("SELECT status, finish_reason, content FROM messages WHERE role = 'assistant'") == [
        {"status": "incomplete", "finish_reason": "stopped", "content": deltas_text(events)}
    ]
    # Its progress was stored as chunks, which the stop's final write replaced by the whole text.
    assert chunks_before, "progress writes stored chunks before the stop"
    assert db.rows("SELECT reply_id FROM reply_chunks") == []


@pytest.mark.parametrize("deleted", ["session", "question"])
def test_deleting_a_streaming_reply_deletes_its_chunks(
    make_app: AppFactory, db: DatabaseView, deleted: str
) -> None:
    app, _ = slow_app(make_app, delay_s=0.03)
    chunks_before: list[dict[str, Any]] = []
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]

        async def delete_once_progress_is_stored(chunk: bytes) -> bool:
            [question, reply] = db.messages(session_id) or [None, None]
            if reply is None or chunks_before or not stored_chunks(db, reply["id"]):
                return False
            chunks_before.extend(stored_chunks(db, reply["id"]))
            path = (
                f"/api/sessions/{session_id}" if deleted == "session" else f"/api/messages/{question['id']}"
            )
            status, _ = await call_asgi(app, "DELETE", path)
            assert status == 204
            return False

        _, raw = client.blocking_portal.call(
            lambda: call_asgi(
                app, "POST", "/api/chat", body(session_id, "q"), on_body=delete_once_progress_is_stored
            )
        )

    assert chunks_before
    assert parse_sse(raw.decode())[-1].event == "error"
    assert db.rows("SELECT reply_id FROM reply_chunks") == []
    assert db.messages(session_id) == []


def test_stopping_a_finished_reply_returns_it_unchanged(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session_id = make_session()["id"]
    reply = parse_sse(client.post("/api/chat", json=body(session_id, "hi")).text)[-1].data
    response = client.post(f"/api/messages/{reply['id']}/stop")
    assert response.status_code == 200
    assert response.json() == reply
    assert client.post("/api/messages/00000000-0000-4000-8000-000000000000/stop").status_code == 404


def test_finish_reasons_tell_how_each_reply_ended(make_app: AppFactory, db: DatabaseView) -> None:
    app = make_app(responder=failing_responder(["x"], "upstream says no"))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.post("/api/chat", json=body(session_id, "q"))
        message = client.get(f"/api/sessions/{session_id}").json()["messages"][1]
    assert (message["status"], message["finish_reason"], message["error"]) == (
        "error",
        "error",
        "upstream says no",
    )


def test_a_retried_request_stores_nothing_twice_and_streams_the_same_reply(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView
) -> None:
    session_id = make_session()["id"]
    first = parse_sse(client.post("/api/chat", json=body(session_id, "hi", ids=["m-1"])).text)

    again = parse_sse(client.post("/api/chat", json=body(session_id, "hi", ids=["m-1"])).text)

    assert again[0].data == first[0].data
    assert deltas_text(again) == deltas_text(first)
    assert again[-1].data == first[-1].data
    stored = db.messages(session_id)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "hi"),
        ("assistant", first[-1].data["content"]),
    ]
    assert client.get(f"/api/sessions/{session_id}").json()["messages"][0]["client_id"] == "m-1"


def test_a_partly_stored_request_stores_only_what_is_new(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView
) -> None:
    session_id = make_session()["id"]
    client.post("/api/chat", json=body(session_id, "one", ids=["a"]))

    events = parse_sse(client.post("/api/chat", json=body(session_id, "one", "two", ids=["a", "b"])).text)

    stored = db.messages(session_id)
    assert [(m["seq"], m["role"], m["content"][:3]) for m in stored] == [
        (1, "user", "one"),
        (2, "assistant", "You"),
        (3, "user", "two"),
        (4, "assistant", "You"),
    ]
    assert events[0].data["message_ids"] == [stored[0]["id"], stored[2]["id"]]


def test_the_same_client_id_twice_in_one_request_is_400(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session_id = make_session()["id"]
    response = client.post("/api/chat", json=body(session_id, "a", "b", ids=["x", "x"]))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("messages[0].id:")


def test_client_ids_are_per_session(client: TestClient[Litestar], make_session: Any) -> None:
    first, second = make_session()["id"], make_session()["id"]
    client.post("/api/chat", json=body(first, "hi", ids=["same"]))
    client.post("/api/chat", json=body(second, "hi", ids=["same"]))
    assert len(client.get(f"/api/sessions/{second}").json()["messages"]) == 2


def test_regenerate_appends_a_new_reply_and_keeps_the_old_one(
    make_client: ClientFactory, db: DatabaseView
) -> None:
    responder = ScriptedResponder(["new ", "answer"])
    with make_client(responder=responder) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.post("/api/chat", json=body(session_id, "question"))

        events = parse_sse(client.post(f"/api/sessions/{session_id}/regenerate").text)
        history = client.blocking_portal.call(responder.conversations[-1].history)

    assert events[0].data["message_ids"] == []
    assert events[-1].event == "done"
    assert [(m["seq"], m["role"], m["content"]) for m in db.messages(session_id)] == [
        (1, "user", "question"),
        (2, "assistant", "new answer"),
        (3, "assistant", "new answer"),
    ]
    assert [(m.role, m.content) for m in history] == [("user", "question")], (
        "the old reply is not shown again"
    )


def test_regenerating_needs_a_user_message(client: TestClient[Litestar], make_session: Any) -> None:
    session_id = make_session()["id"]
    response = client.post(f"/api/sessions/{session_id}/regenerate")
    assert response.status_code == 409
    assert client.post("/api/sessions/00000000-0000-4000-8000-000000000000/regenerate").status_code == 404


def test_a_reply_streaming_at_shutdown_is_stored_as_server_stopped(
    make_app: AppFactory, db: DatabaseView
) -> None:
    app, _ = slow_app(make_app, delay_s=0.05)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.blocking_portal.call(
            lambda: call_asgi(
                app, "POST", "/api/chat", body(session_id, "q", keep_generating=True), on_body=cut_after(1)
            )
        )
    assert db.rows("SELECT status, finish_reason FROM messages WHERE role = 'assistant'") == [
        {"status": "incomplete", "finish_reason": "server_stopped"}
    ]


def test_follow_waits_for_a_reply_still_streaming(make_app: AppFactory) -> None:
    app, _ = slow_app(make_app, delay_s=0.01)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.blocking_portal.call(
            lambda: call_asgi(
                app, "POST", "/api/chat", body(session_id, "q", keep_generating=True), on_body=cut_after(1)
            )
        )
        reply_id = client.get(f"/api/sessions/{session_id}").json()["messages"][1]["id"]

        followed = client.get(f"/api/messages/{reply_id}/stream").text
        replayed = client.get(f"/api/messages/{reply_id}/stream").text
    assert deltas_text(parse_sse(followed)) == deltas_text(parse_sse(replayed)) == "".join(PIECES)


def test_a_reply_stopped_before_its_task_ran_is_still_stored(make_app: AppFactory, db: DatabaseView) -> None:
    app = make_app(responder=ScriptedResponder(["never"]))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]

        async def begin_and_stop_at_once() -> None:
            replies = app.state.replies
            turn = await start_turn(
                replies.db,
                session_id,
                [MessageIn(role="user", content="q")],
                replies.worker_id,
                scope=EVERY_SESSION,
            )
            generation = replies.begin(turn, keep_generating=False)
            generation.stop("stopped")  # before the task had a chance to start
            await generation.finished.wait()

        client.blocking_portal.call(begin_and_stop_at_once)
    reply = db.rows("SELECT status, finish_reason, content FROM messages WHERE role = 'assistant'")
    assert reply == [{"status": "incomplete", "finish_reason": "stopped", "content": ""}]


def test_a_partly_retried_request_gives_the_responder_only_the_new_messages(
    make_client: ClientFactory,
) -> None:
    responder = ScriptedResponder(["ok"])
    with make_client(responder=responder) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.post("/api/chat", json=body(session_id, "one", ids=["a"]))
        client.post("/api/chat", json=body(session_id, "one", "two", ids=["a", "b"]))
    assert [m.content for m in responder.conversations[-1].new_messages] == ["two"]


# --- Streams as stock SSE clients handle them (see test_sse_clients.py for the clients themselves) ---


def test_re_attaching_by_query_after_the_last_event_is_204(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session_id = make_session()["id"]
    events = parse_sse(client.post("/api/chat", json=body(session_id, "hello")).text)
    reply_id = events[0].data["assistant_message_id"]

    response = client.get(f"/api/messages/{reply_id}/stream?last_event_id={events[-1].id}")

    assert (response.status_code, response.text) == (204, "")


def test_re_attaching_past_the_end_gets_the_end_once_then_204(
    client: TestClient[Litestar], make_session: Any
) -> None:
    """A position past the end (a client that saw more than was stored, or a stray id) gets the final
    event with the id of the stored end; reconnecting with that id, as EventSource does, gets 204
    instead of the end again and again."""
    session_id = make_session()["id"]
    events = parse_sse(client.post("/api/chat", json=body(session_id, "hello")).text)
    reply_id, final = events[0].data["assistant_message_id"], events[-1]

    after = parse_sse(
        client.get(f"/api/messages/{reply_id}/stream", headers={"Last-Event-ID": "100000"}).text
    )
    again = client.get(f"/api/messages/{reply_id}/stream", headers={"Last-Event-ID": str(after[-1].id)})

    assert after == [final]
    assert again.status_code == 204


def test_re_attaching_to_a_streaming_reply_is_never_204(make_app: AppFactory) -> None:
    """Only a reply that has ended gets 204: a position one past a streaming reply's current length
    is not its end, and the client gets the rest once it comes."""
    app, _ = slow_app(make_app, delay_s=0.03)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.blocking_portal.call(
            lambda: call_asgi(
                app, "POST", "/api/chat", body(session_id, "q", keep_generating=True), on_body=cut_after(1)
            )
        )
        reply_id = client.get(f"/api/sessions/{session_id}").json()["messages"][1]["id"]
        # One delta seen: the reply is "w0 " long, and 4 would be the id of its end if it ended now.
        followed = client.get(f"/api/messages/{reply_id}/stream", headers={"Last-Event-ID": "4"})

    assert followed.status_code == 200
    rest = parse_sse(followed.text)
    assert rest[-1].event == "done"
    assert "".join(PIECES)[:4] + deltas_text(rest) == rest[-1].data["content"] == "".join(PIECES)


@pytest.mark.parametrize("keep_generating", [True, False])
def test_a_retried_post_with_last_event_id_continues_from_there(
    make_app: AppFactory, db: DatabaseView, keep_generating: bool
) -> None:
    """fetch-event-source retries a cut POST with the same body and the last id it saw: the retry
    streams the rest of the first attempt's reply, with nothing twice, shown or stored."""
    app, responder = slow_app(make_app, delay_s=0.01)
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        request = body(session_id, "hi", keep_generating=keep_generating, ids=["q-1"])
        _, raw = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", request, on_body=cut_after(3))
        )
        before = parse_sse(raw.decode())
        last_id = before[-1].id
        retry = client.post("/api/chat", json=request, headers={"Last-Event-ID": str(last_id)})

    after = parse_sse(retry.text)
    assert retry.status_code == 200
    assert "start" not in {e.event for e in after}, "the stream goes on after the last event seen"
    assert all(e.id > last_id for e in after)
    final = after[-1]
    assert final.event == "done"
    assert deltas_text(before) + deltas_text(after) == final.data["content"]
    if keep_generating:
        assert final.data["content"] == "".join(PIECES)
    else:
        assert final.data["finish_reason"] == "client_disconnected"
    stored = db.messages(session_id)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "hi"),
        ("assistant", final.data["content"]),
    ]
    assert len(responder.conversations) == 1, "the retry started no second reply"


def test_a_retried_post_with_the_last_event_id_is_204(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView
) -> None:
    session_id = make_session()["id"]
    request = body(session_id, "hi", ids=["q-1"])
    events = parse_sse(client.post("/api/chat", json=request).text)

    retry = client.post("/api/chat", json=request, headers={"Last-Event-ID": str(events[-1].id)})
    from_start = parse_sse(client.post("/api/chat", json=request, headers={"Last-Event-ID": "0"}).text)

    assert (retry.status_code, retry.text) == (204, "")
    assert deltas_text(from_start) == events[-1].data["content"] and from_start[-1] == events[-1]
    assert len(db.messages(session_id)) == 2


@pytest.mark.parametrize(
    ("messages", "stored_first"),
    [
        ([{"role": "user", "content": "hi"}], False),
        ([{"role": "user", "content": "hi", "id": "new-1"}], False),
        ([{"role": "user", "content": "one", "id": "a"}, {"role": "user", "content": "two"}], True),
    ],
    ids=["without client ids", "ids not stored", "one message without its id"],
)
def test_a_post_with_last_event_id_but_no_earlier_attempt_is_400_and_stores_nothing(
    client: TestClient[Litestar],
    make_session: Any,
    db: DatabaseView,
    messages: list[dict[str, str]],
    stored_first: bool,
) -> None:
    """Last-Event-ID on a POST says "go on with the stream I had". If no earlier attempt of these
    messages is stored, storing them as new would store them twice (and a client that reconnects
    after every reply, as EventSource does, would start a new turn each time): 400 instead."""
    session_id = make_session()["id"]
    if stored_first:
        client.post("/api/chat", json=body(session_id, "one", ids=["a"]))
    before = db.messages(session_id)

    response = client.post(
        "/api/chat", json={"session_id": session_id, "messages": messages}, headers={"Last-Event-ID": "5"}
    )

    assert response.status_code == 400
    assert response.json()["detail"] == f"Last-Event-ID: {CANNOT_RESUME}"
    assert response.json()["extra"] == [
        {"key": "Last-Event-ID", "message": CANNOT_RESUME, "source": "header"}
    ]
    assert db.messages(session_id) == before


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", ""])
def test_a_post_with_a_bad_last_event_id_is_400_and_stores_nothing(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView, value: str
) -> None:
    session_id = make_session()["id"]
    response = client.post(
        "/api/chat", json=body(session_id, "hi", ids=["q"]), headers={"Last-Event-ID": value}
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("Last-Event-ID: ")
    assert db.messages(session_id) == []


def failure_app(make_app: AppFactory) -> Litestar:
    return make_app(responder=failing_responder(["so ", "far"], detail="the model is overloaded"))


def test_the_error_event_keeps_its_name_by_default(make_app: AppFactory) -> None:
    with TestClient(failure_app(make_app)) as client:
        session_id = client.post("/api/sessions").json()["id"]
        events = parse_sse(client.post("/api/chat", json=body(session_id, "hi")).text)

    assert [e.event for e in events] == ["start", "delta", "delta", "error"]
    assert events[-1].data == {"detail": "the model is overloaded"}


def test_error_event_failure_names_the_event_of_a_failed_reply_failure_everywhere(
    make_app: AppFactory,
) -> None:
    """``failure`` cannot be mistaken for EventSource's own ``error`` event: the chat stream, a retry,
    a re-attach and a regeneration all use it when asked, with the same data and id."""
    with TestClient(failure_app(make_app)) as client:
        session_id = client.post("/api/sessions").json()["id"]
        request = {**body(session_id, "hi", ids=["q"]), "error_event": "failure"}
        chat = parse_sse(client.post("/api/chat", json=request).text)
        reply_id = chat[0].data["assistant_message_id"]
        retried = parse_sse(client.post("/api/chat", json=request).text)
        attached = parse_sse(client.get(f"/api/messages/{reply_id}/stream?error_event=failure").text)
        attached_default = parse_sse(client.get(f"/api/messages/{reply_id}/stream").text)
        regenerated = parse_sse(
            client.post(f"/api/sessions/{session_id}/regenerate", json={"error_event": "failure"}).text
        )

    expected = Event(len("so far") + 1, "failure", {"detail": "the model is overloaded"})
    for events in (chat, retried, attached, regenerated):
        assert events[0].event == "start"
        assert deltas_text(events) == "so far"
        assert events[-1] == expected
        assert "error" not in {e.event for e in events}
    assert attached_default[-1] == dataclasses.replace(expected, event="error")


@pytest.mark.parametrize(
    ("method", "path", "request_body", "key"),
    [
        ("POST", "/api/chat", {"error_event": "message"}, "error_event"),
        ("POST", "/api/sessions/{session}/regenerate", {"error_event": "delta"}, "error_event"),
        ("GET", "/api/messages/{reply}/stream?error_event=done", None, "error_event"),
    ],
)
def test_error_event_accepts_only_its_two_names(
    client: TestClient[Litestar],
    make_session: Any,
    db: DatabaseView,
    method: str,
    path: str,
    request_body: dict[str, Any] | None,
    key: str,
) -> None:
    session_id = make_session()["id"]
    start = parse_sse(client.post("/api/chat", json=body(session_id, "hello")).text)[0].data
    before = db.messages(session_id)
    url = path.format(session=session_id, reply=start["assistant_message_id"])
    if request_body is not None and path == "/api/chat":
        request_body = {**body(session_id, "again"), **request_body}

    response = client.request(method, url, json=request_body)

    assert response.status_code == 400
    assert key in response.json()["detail"]
    assert db.messages(session_id) == before
