"""The chat stream as stock SSE clients meet it: the `eventsource` package (the browser's EventSource
API) and `@microsoft/fetch-event-source`, run by Node against a real ``python -m chatstore``.

The scripts in ``tests/node/`` drive each client and print what it saw as JSON lines; the packages
are pinned in ``tests/node/package-lock.json`` and installed with ``npm ci --prefix tests/node``.
Cuts are real: the client talks to the server through a ``TcpProxy`` that drops its connections.
"""

import json
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from chatstore.core.db import resolve_url
from tests.conftest import (
    BACKENDS,
    NODE_DIR,
    POSTGRES_URL_VARIABLE,
    node_with,
    postgres_url,
    skip_or_fail_in_ci,
)
from tests.faults import TcpProxy
from tests.helpers import DatabaseView, parse_sse, postgres_schema
from tests.servers import HTTP_TIMEOUT_S, BackgroundChat, ServerProcess, free_port, running_servers, started

pytestmark = [pytest.mark.server, pytest.mark.node]

PACKAGES = ("eventsource", "@microsoft/fetch-event-source")
# Slow enough to cut a reply in the middle (about 44 pieces, 4-5 s).
SLOW = {"CHATSTORE_MOCK_DELAY_MS": "100", "CHATSTORE_PROGRESS_INTERVAL_MS": "100"}
QUESTION = "please take your time and answer this question one word after another"
# EventSource waits 3 s before it reconnects; each script gives up (and says so) well after that.
CLIENT_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def node() -> str:
    return node_with(PACKAGES, "the SSE client tests")


@pytest.fixture(scope="module", params=BACKENDS)
def shared_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per engine for the module: starting servers is the slow part of these tests,
    so they share them, each test in its own session."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sse-clients') / 'chatstore.db'}"
        return
    base = postgres_url()
    if base is None:
        skip_or_fail_in_ci(
            f"PostgreSQL tests need {POSTGRES_URL_VARIABLE}, e.g. postgresql://postgres@127.0.0.1:5432/test"
        )
    assert base is not None
    with postgres_schema(base, prefix="sse") as url:
        yield url


@pytest.fixture(scope="module")
def db(shared_database_url: str) -> Iterator[DatabaseView]:
    engine = create_engine(resolve_url(shared_database_url, blocking=True))
    yield DatabaseView(engine)
    engine.dispose()


def _server(
    shared_database_url: str, tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]
) -> Iterator[ServerProcess]:
    with running_servers(1, shared_database_url, tmp_path_factory.mktemp(name), env, name=name) as [server]:
        yield server


@pytest.fixture(scope="module")
def server(
    node: str, shared_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from _server(shared_database_url, tmp_path_factory, "fast", {"CHATSTORE_MOCK_DELAY_MS": "0"})


@pytest.fixture(scope="module")
def slow_server(
    node: str, shared_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from _server(shared_database_url, tmp_path_factory, "slow", SLOW)


@pytest.fixture(scope="module")
def failing_server(
    node: str, shared_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server whose replies fail: its model server is a port nobody listens on."""
    env = {
        "CHATSTORE_RESPONDER": "openai",
        "CHATSTORE_LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
        "CHATSTORE_LLM_MODEL": "none",
    }
    yield from _server(shared_database_url, tmp_path_factory, "failing", env)


@pytest.fixture(scope="module")
def proxy(slow_server: ServerProcess) -> Iterator[TcpProxy]:
    """The slow server behind a connection that the test can cut."""
    port = int(slow_server.base_url.rsplit(":", 1)[1])
    with TcpProxy("127.0.0.1", port) as proxy:
        yield proxy


def proxied(proxy: TcpProxy, path: str) -> str:
    return f"http://127.0.0.1:{proxy.port}{path}"


def run_client(
    node: str,
    script: str,
    config: dict[str, Any],
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run a script of tests/node with ``config``; ``on_progress`` sees each event as it comes."""
    config = {"timeout_ms": CLIENT_TIMEOUT_MS, **config}
    report: dict[str, Any] | None = None
    with (
        tempfile.TemporaryFile("w+") as stderr,
        subprocess.Popen(
            [node, str(NODE_DIR / script), json.dumps(config)],
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as process,
    ):
        # The scripts stop themselves at timeout_ms; this is for one that hangs all the same.
        watchdog = threading.Timer(config["timeout_ms"] / 1000 + 15, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                message = json.loads(line)
                if "report" in message:
                    report = message["report"]
                elif on_progress is not None:
                    on_progress(message["progress"])
            process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
        stderr.seek(0)
        assert report is not None, f"{script} ended with {process.wait()}: {stderr.read()}"
    return report


def new_session(server: ServerProcess) -> str:
    return str(httpx.post(f"{server.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()["id"])


def finished_chat(server: ServerProcess, body: dict[str, Any]) -> list[Any]:
    response = httpx.post(f"{server.base_url}/api/chat", json=body, timeout=HTTP_TIMEOUT_S)
    assert response.status_code == 200, response.text
    return parse_sse(response.text)


def chat_request(session_id: str, content: str, client_id: str | None, **options: Any) -> dict[str, Any]:
    message = {"role": "user", "content": content}
    if client_id is not None:
        message["id"] = client_id
    return {"session_id": session_id, "messages": [message], **options}


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["content"] for e in events if e["type"] == "delta")


def cut_once_after(proxy: TcpProxy, deltas: int) -> Callable[[dict[str, Any]], None]:
    """A progress hook that cuts the client's connection once, after ``deltas`` deltas."""
    count = [0]

    def hook(progress: dict[str, Any]) -> None:
        if progress["type"] != "delta":
            return
        count[0] += 1
        if count[0] == deltas:
            proxy.cut()
            proxy.restore()  # the next attempt gets through, as after a short network outage

    return hook


# --- eventsource ---------------------------------------------------------------------------------------


def test_eventsource_stops_after_a_finished_reply_instead_of_reconnecting_forever(
    node: str, server: ServerProcess
) -> None:
    """After `done` the server closes the stream and EventSource reconnects with the final id: that
    gets 204, and per the SSE specification EventSource then stops."""
    events = finished_chat(server, chat_request(new_session(server), "hello", None))
    reply_id, final = events[0].data["assistant_message_id"], events[-1]

    report = run_client(
        node,
        "eventsource-client.mjs",
        {
            "url": f"{server.base_url}/api/messages/{reply_id}/stream",
            "events": ["start", "delta", "done", "error"],
        },
    )

    assert not report["timed_out"] and report["closed"]
    assert report["requests"] == [
        {"method": "GET", "last_event_id": None, "status": 200},
        {"method": "GET", "last_event_id": str(final.id), "status": 204},
    ]
    seen = report["events"]
    assert next(e["type"] for e in seen if e["is_message"]) == "start"
    done = [e for e in seen if e["type"] == "done"]
    assert [(e["id"], e["data"]) for e in done] == [(str(final.id), final.data)]
    assert text_of([e for e in seen if e["is_message"]]) == final.data["content"]
    # Both errors are the package's own, without data: the stream's end (it reconnects), then the
    # 204 (it stops), the status as its code.
    assert [(e["is_message"], e["code"], e["connection"]) for e in seen if e["type"] == "error"] == [
        (False, None, 1),
        (False, 204, 2),
    ]


def test_eventsource_resumes_a_cut_stream_exactly(
    node: str, slow_server: ServerProcess, proxy: TcpProxy, db: DatabaseView
) -> None:
    """The connection to a streaming reply drops after three deltas; EventSource reconnects with
    Last-Event-ID and gets exactly the rest: the deltas it shows are the stored reply."""
    body = chat_request(new_session(slow_server), QUESTION, None, keep_generating=True)
    with BackgroundChat(slow_server, body) as chat:
        chat.wait_until("the start", started)
        report = run_client(
            node,
            "eventsource-client.mjs",
            {
                "url": proxied(proxy, f"/api/messages/{chat.reply_id}/stream"),
                "events": ["start", "delta", "done", "error"],
            },
            on_progress=cut_once_after(proxy, 3),
        )
        chat.wait_until_finished()

    assert not report["timed_out"] and report["closed"]
    seen = report["events"]
    messages = [e for e in seen if e["is_message"]]
    ids = [int(e["id"]) for e in messages]
    assert ids == sorted(set(ids)), "ids only increase: nothing came twice"
    assert [e["type"] for e in messages].count("start") == 1
    done = messages[-1]
    assert done["type"] == "done" and done["data"]["status"] == "complete"
    stored = db.scalar("SELECT content FROM messages WHERE id = :id", id=chat.reply_id)
    assert text_of(messages) == done["data"]["content"] == stored
    cut_at = max(int(e["id"]) for e in messages if e["connection"] == 1)
    assert [(r["last_event_id"], r["status"]) for r in report["requests"]] == [
        (None, 200),
        (str(cut_at), 200),
        (done["id"], 204),
    ]
    assert any(e["connection"] == 2 and e["type"] == "delta" for e in messages), "the rest came after the cut"
    # The package's own errors, without data: the cut, the end of the second stream, the 204.
    assert [(e["is_message"], e["code"], e["connection"]) for e in seen if e["type"] == "error"] == [
        (False, None, 1),
        (False, None, 2),
        (False, 204, 3),
    ]


@pytest.mark.parametrize("client_ids", [True, False], ids=["with client ids", "without client ids"])
def test_eventsource_posting_a_chat_stores_one_turn_and_stops(
    node: str, server: ServerProcess, db: DatabaseView, client_ids: bool
) -> None:
    """EventSource driving POST /api/chat (through the package's fetch option) posts the same body
    again after the reply, with Last-Event-ID. With client ids that is the earlier attempt's end:
    204. Without them the server cannot know it is the same request, and refuses to store it as a
    new one: 400. Either way the package stops, and the session holds one turn."""
    session_id = new_session(server)
    body = chat_request(session_id, "hello", "q-1" if client_ids else None)

    report = run_client(
        node,
        "eventsource-client.mjs",
        {"url": f"{server.base_url}/api/chat", "body": body, "events": ["start", "delta", "done", "error"]},
    )

    assert not report["timed_out"] and report["closed"]
    done = [e for e in report["events"] if e["type"] == "done"]
    assert len(done) == 1
    assert [(r["method"], r["last_event_id"], r["status"]) for r in report["requests"]] == [
        ("POST", None, 200),
        ("POST", done[0]["id"], 204 if client_ids else 400),
    ]
    assert [m["role"] for m in db.messages(session_id)] == ["user", "assistant"]


@pytest.mark.parametrize("error_event", [None, "failure"])
def test_eventsource_tells_a_failed_reply_from_a_lost_connection(
    node: str, failing_server: ServerProcess, error_event: str | None
) -> None:
    """A failed reply's event is named `error` by default, which EventSource's `error` listeners get
    together with the package's own connection errors (only `data` tells them apart). With
    `error_event=failure` it is `failure`, and `error` listeners see connection errors only."""
    events = finished_chat(failing_server, chat_request(new_session(failing_server), "hello", None))
    reply_id, final = events[0].data["assistant_message_id"], events[-1]
    assert final.event == "error"
    query = f"?error_event={error_event}" if error_event else ""

    report = run_client(
        node,
        "eventsource-client.mjs",
        {
            "url": f"{failing_server.base_url}/api/messages/{reply_id}/stream{query}",
            "events": ["start", "done", "error", "failure"],
        },
    )

    assert not report["timed_out"] and report["closed"]
    by_listener = {
        name: [(e["is_message"], e["data"], e["code"]) for e in report["events"] if e["listener"] == name]
        for name in ("error", "failure", "done")
    }
    failed = (True, final.data, None)
    # The package's own: the stream ended (it reconnects), then the reconnect got 204 (it stops).
    connection = [(False, None, None), (False, None, 204)]
    if error_event is None:
        assert by_listener == {"error": [failed, *connection], "failure": [], "done": []}
    else:
        assert by_listener == {"error": connection, "failure": [failed], "done": []}
    assert final.data["detail"].startswith("could not reach the model server")


# --- fetch-event-source --------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_generating", [True, False])
def test_fetch_event_source_retry_of_a_cut_chat_continues_without_duplicates(
    node: str, slow_server: ServerProcess, proxy: TcpProxy, db: DatabaseView, keep_generating: bool
) -> None:
    """fetch-event-source retries a cut POST /api/chat with the same body and Last-Event-ID. With
    client ids, the retry is the same turn, and its stream goes on after the last event received:
    a client that appends deltas shows the reply once, and it is stored once."""
    session_id = new_session(slow_server)
    body = chat_request(session_id, QUESTION, "q-1", keep_generating=keep_generating)

    report = run_client(
        node,
        "fetch-event-source-client.mjs",
        {"url": proxied(proxy, "/api/chat"), "method": "POST", "body": body},
        on_progress=cut_once_after(proxy, 3),
    )

    assert report["outcome"] == "resolved" and report["closed"] and not report["timed_out"]
    messages = report["messages"]
    assert [m["type"] for m in messages].count("start") == 1
    ids = [int(m["id"]) for m in messages]
    assert ids == sorted(set(ids)), "ids only increase: nothing came twice"
    done = messages[-1]
    assert done["type"] == "done"
    cut_at = max(int(m["id"]) for m in messages if m["connection"] == 1)
    assert [(r["last_event_id"], r["status"]) for r in report["requests"]] == [
        (None, 200),
        (str(cut_at), 200),
    ]
    assert len(report["errors"]) == 1, "one network error, then the retry"
    stored = db.messages(session_id)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", QUESTION),
        ("assistant", done["data"]["content"]),
    ]
    assert text_of(messages) == done["data"]["content"]
    if keep_generating:
        assert done["data"]["finish_reason"] == "completed"
    else:  # the cut stopped the reply; the retry shows how far it got
        assert done["data"]["finish_reason"] == "client_disconnected"


@pytest.mark.parametrize("stop_on_204", [False, True], ids=["default onopen", "onopen that stops on 204"])
def test_fetch_event_source_at_the_end_of_a_reply_needs_an_onopen_that_stops_on_204(
    node: str, server: ServerProcess, db: DatabaseView, stop_on_204: bool
) -> None:
    """A retry that comes after the final event (the cut fell between it and the end of the
    response) gets 204. fetch-event-source's default onopen treats that as a failure and retries
    every second; the onopen in the README ends there. Nothing is stored again either way."""
    session_id = new_session(server)
    body = chat_request(session_id, "hello", "q-1")
    final = finished_chat(server, body)[-1]

    report = run_client(
        node,
        "fetch-event-source-client.mjs",
        {
            "url": f"{server.base_url}/api/chat",
            "method": "POST",
            "body": body,
            "headers": {"Last-Event-ID": str(final.id)},
            "stop_on_204": stop_on_204,
            "timeout_ms": 2_500,
        },
    )

    assert report["messages"] == []
    assert {r["status"] for r in report["requests"]} == {204}
    if stop_on_204:
        assert report["outcome"] == "reply_ended" and not report["timed_out"]
        assert len(report["requests"]) == 1
    else:
        assert report["timed_out"] and len(report["requests"]) >= 2
    assert len(db.messages(session_id)) == 2
