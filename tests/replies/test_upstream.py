"""Replies from an OpenAI-compatible model server: chatstore against a real fake one on 127.0.0.1.

The fake (``tests/fake_openai.py``) speaks the streaming chat-completions protocol over real HTTP,
serves scripted replies and faults, and records what it received and whether the client hung up.
"""

import dataclasses
import logging
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import accumulate
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.app import create_app
from chatstore.core.settings import Settings, SettingsError
from tests.fake_openai import (
    DONE,
    Drop,
    FakeOpenAI,
    Hold,
    Script,
    Send,
    WaitFor,
    delta,
    error_reply,
    event,
    finish,
    reply,
)
from tests.helpers import DatabaseView, Event, call_asgi, parse_sse
from tests.servers import free_port

API_KEY = "sk-test-5eCr3t-0123456789abcdef"
CLOSE_WAIT_S = 10.0  # how long the fake may take to notice a close; a bound, not a measurement
SHORT_TIMEOUT_S = 0.3


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def upstream(settings: Settings, fake: FakeOpenAI) -> Settings:
    """The test's settings, with replies from the fake."""
    return dataclasses.replace(
        settings, responder="openai", llm_base_url=fake.base_url, llm_model="test-model", llm_api_key=API_KEY
    )


@contextmanager
def running(settings: Settings) -> Iterator[TestClient[Litestar]]:
    # Hand-made: these settings name the "openai" responder, which make_app's responder would shadow.
    with TestClient(create_app(settings)) as client:
        yield client


def new_session(client: TestClient[Litestar], **body: Any) -> str:
    response = client.post("/api/sessions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def chat(client: TestClient[Litestar], session_id: str, *messages: str | tuple[str, str]) -> list[Event]:
    """One turn; a message is its content (a user message) or ``(role, content)``."""
    pairs = [("user", m) if isinstance(m, str) else m for m in messages]
    response = client.post(
        "/api/chat",
        json={"session_id": session_id, "messages": [{"role": r, "content": c} for r, c in pairs]},
    )
    assert response.status_code == 200, response.text
    return parse_sse(response.text)


def stored(db: DatabaseView, session_id: str) -> list[tuple[str, str, str]]:
    return [(m["role"], m["content"], m["status"]) for m in db.messages(session_id)]


def test_the_reply_streams_from_the_upstream_and_is_stored(
    upstream: Settings, fake: FakeOpenAI, db: DatabaseView
) -> None:
    fake.enqueue(reply("Hel", "lo", " world"))
    with running(upstream) as client:
        session_id = new_session(client)
        events = chat(client, session_id, "hi")

    assert (events[0].event, events[-1].event) == ("start", "done")
    # Pieces that reach the server together may go out as one delta; each delta's id is its end.
    deltas = events[1:-1]
    assert {e.event for e in deltas} == {"delta"}
    assert "".join(e.data["content"] for e in deltas) == "Hello world"
    assert [e.id for e in deltas] == list(accumulate(len(e.data["content"]) for e in deltas))
    assert events[-1].data["content"] == "Hello world"
    assert stored(db, session_id) == [("user", "hi", "complete"), ("assistant", "Hello world", "complete")]
    (request,) = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


def test_without_an_api_key_no_authorization_is_sent(upstream: Settings, fake: FakeOpenAI) -> None:
    with running(dataclasses.replace(upstream, llm_api_key="")) as client:
        events = chat(client, new_session(client), "hi")

    assert events[-1].event == "done"
    assert "authorization" not in fake.requests[0].headers


def test_each_delta_is_passed_on_before_the_upstream_sends_the_next(
    upstream: Settings, fake: FakeOpenAI
) -> None:
    gate = threading.Event()
    fake.enqueue(Script([delta("first"), WaitFor(gate), delta(" second"), finish(), DONE]))
    app = create_app(upstream)
    upstream_sent_when_seen: list[int] = []

    def on_first_delta(chunk: bytes) -> bool:
        if b"event: delta" in chunk and not gate.is_set():
            upstream_sent_when_seen.append(fake.requests[0].sent)
            gate.set()  # only now may the fake send the rest
        return False

    with TestClient(app) as client:
        session_id = new_session(client)
        body = {"session_id": session_id, "messages": [{"role": "user", "content": "hi"}]}
        status, raw = client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body, on_body=on_first_delta)
        )

    assert status == 200
    # Had chatstore waited for more, the fake would have given up waiting and sent it all first.
    assert upstream_sent_when_seen == [1]
    events = parse_sse(raw.decode())
    assert [e.data["content"] for e in events if e.event == "delta"] == ["first", " second"]
    assert events[-1].event == "done"


def test_what_real_servers_send_besides_text_is_passed_over(
    upstream: Settings, fake: FakeOpenAI, db: DatabaseView
) -> None:
    fake.enqueue(
        Script(
            [
                Send(b": keep-alive\n\n"),  # a comment
                event({"choices": [], "prompt_filter_results": []}),  # Azure's first chunk
                event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}),
                Send(b'event: message\ndata: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\r\n\r\n'),
                Send(b'data: {"choices":[{"index":0,"delta":{"con'),  # one event split over two chunks
                Send(b'tent":"lo"}}]}\n\n'),
                finish("length"),
                event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
                # ... and the stream ends without [DONE], as older llama.cpp servers do.
            ]
        )
    )
    with running(upstream) as client:
        session_id = new_session(client)
        events = chat(client, session_id, "hi")

    # "Hel" and "lo", or both as one delta when they reach the server together.
    assert {e.event for e in events[1:-1]} == {"delta"}
    assert [e.data["content"] for e in events[1:-1]] in (["Hel", "lo"], ["Hello"])
    assert (events[-1].event, events[-1].data["content"]) == ("done", "Hello")
    assert stored(db, session_id)[1] == ("assistant", "Hello", "complete")


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose listener takes no more connections: its accept queue is full, so the kernel
    drops further connection attempts and they hang until the client gives up."""
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(16):
            filler = stack.enter_context(socket.socket())
            filler.settimeout(SHORT_TIMEOUT_S)
            try:
                filler.connect(address)
            except TimeoutError:
                break
        else:
            pytest.fail("could not fill the listener's accept queue")
        yield int(address[1])


ERROR_BODY = {
    "error": {"message": f"Incorrect API key provided: {API_KEY}.", "type": "invalid_request_error"}
}

UNANSWERED = "unanswered"  # connections to the upstream hang


@dataclasses.dataclass(frozen=True)
class Failure:
    upstream_does: Script | str | None  # None: nothing listens; or UNANSWERED
    detail: str  # the error event's detail, a regular expression
    partial: str = ""  # the reply stored, with status error
    hung_up: bool = False  # whether the fake must see chatstore close the request
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


FIRST_BYTE_TIMEOUT = {"llm_first_byte_timeout_s": SHORT_TIMEOUT_S}

FAILURES = {
    "unreachable": Failure(None, r"could not reach the model server: ConnectError: .+"),
    "connect timeout": Failure(
        UNANSWERED,
        r"could not reach the model server: ConnectTimeout.*",
        settings={"llm_connect_timeout_s": SHORT_TIMEOUT_S},
    ),
    "401 with an error body": Failure(
        error_reply(401, ERROR_BODY),
        re.escape("the model server answered 401 Unauthorized: Incorrect API key provided: ***."),
    ),
    "429": Failure(
        error_reply(429, {"error": {"message": "Rate limit reached", "type": "requests"}}),
        re.escape("the model server answered 429 Too Many Requests: Rate limit reached"),
    ),
    "500 with a text body": Failure(
        error_reply(500, "upstream exploded"),
        re.escape("the model server answered 500 Internal Server Error: upstream exploded"),
    ),
    "400 from vLLM": Failure(
        error_reply(400, {"object": "error", "message": "context length is 4096 tokens"}),
        re.escape("the model server answered 400 Bad Request: context length is 4096 tokens"),
    ),
    "404 from Ollama": Failure(
        error_reply(404, {"error": 'model "llama9" not found'}),
        re.escape('the model server answered 404 Not Found: model "llama9" not found'),
    ),
    "502 without a body": Failure(
        error_reply(502, ""), re.escape("the model server answered 502 Bad Gateway")
    ),
    "no answer at all": Failure(
        Script([], silent=True),
        re.escape("the model server did not start replying within 0.3 s"),
        hung_up=True,
        settings=FIRST_BYTE_TIMEOUT,
    ),
    "headers but no event": Failure(
        Script([Hold()]),
        re.escape("the model server did not start replying within 0.3 s"),
        hung_up=True,
        settings=FIRST_BYTE_TIMEOUT,
    ),
    "a stall in the middle": Failure(
        Script([delta("par"), delta("tial"), Hold()]),
        re.escape("the model server stopped sending for 0.3 s in the middle of the reply"),
        partial="partial",
        hung_up=True,
        settings={"llm_read_timeout_s": SHORT_TIMEOUT_S},
    ),
    "malformed JSON": Failure(
        Script([delta("par"), Send(b"data: {not json\n\n"), Hold()]),
        r"the model server sent a malformed chunk \(JSON is malformed: .+\): \{not json",
        partial="par",
        hung_up=True,
    ),
    "a chunk with no choices": Failure(
        Script([delta("par"), event({"object": "chat.completion.chunk"}), Hold()]),
        re.escape('the model server sent a chunk without choices: {"object": "chat.completion.chunk"}'),
        partial="par",
        hung_up=True,
    ),
    "content of the wrong type": Failure(
        Script([delta("par"), event({"choices": [{"delta": {"content": 5}}]}), Hold()]),
        re.escape("the model server sent a malformed chunk (Expected `str | null`, got `int` - at ")
        + re.escape("`$.choices[0].delta.content`): ")
        + ".+",
        partial="par",
        hung_up=True,
    ),
    "an error event": Failure(
        Script([delta("par"), event({"error": {"message": "CUDA out of memory"}}), Hold()]),
        re.escape("the model server failed in the middle of the reply: CUDA out of memory"),
        partial="par",
        hung_up=True,
    ),
    "[DONE] missing, then the end": Failure(
        Script([delta("par"), delta("tial")]),
        re.escape("the model server ended the stream before the reply was finished"),
        partial="partial",
    ),
    "the connection dropped": Failure(
        Script([delta("par"), Drop()]),
        r"the connection to the model server broke: RemoteProtocolError: .+",
        partial="par",
    ),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_an_upstream_failure_is_an_error_event_and_keeps_what_was_said(
    upstream: Settings, fake: FakeOpenAI, db: DatabaseView, failure: Failure
) -> None:
    overrides = dict(failure.settings)
    with ExitStack() as stack:
        if failure.upstream_does is None:
            overrides["llm_base_url"] = f"http://127.0.0.1:{free_port()}/v1"
        elif failure.upstream_does == UNANSWERED:
            overrides["llm_base_url"] = f"http://127.0.0.1:{stack.enter_context(unanswered_port())}/v1"
        else:
            assert isinstance(failure.upstream_does, Script)
            fake.enqueue(failure.upstream_does)
        client = stack.enter_context(running(dataclasses.replace(upstream, **overrides)))
        session_id = new_session(client)
        events = chat(client, session_id, "hi")

    assert [e.event for e in events] == ["start"] + ["delta"] * len(events[1:-1]) + ["error"]
    assert "".join(e.data["content"] for e in events[1:-1]) == failure.partial
    assert re.fullmatch(failure.detail, events[-1].data["detail"]), events[-1].data["detail"]
    assert API_KEY not in events[-1].data["detail"]
    assert stored(db, session_id) == [("user", "hi", "complete"), ("assistant", failure.partial, "error")]
    if failure.hung_up:
        assert fake.requests[0].closed_by_client.wait(CLOSE_WAIT_S), (
            "chatstore must close the upstream request"
        )


def test_a_client_disconnect_closes_the_upstream_request(
    upstream: Settings, fake: FakeOpenAI, db: DatabaseView
) -> None:
    # The fake holds the stream open after one piece; only chatstore hanging up ends it (the read
    # timeout, 60 s by default, is far beyond the wait below).
    fake.enqueue(Script([delta("first"), Hold()]), reply("Second answer."))
    app = create_app(upstream)
    with TestClient(app) as client:
        session_id = new_session(client)
        body = {"session_id": session_id, "messages": [{"role": "user", "content": "hi"}]}
        client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body, on_body=lambda chunk: b"event: delta" in chunk)
        )
        assert fake.requests[0].closed_by_client.wait(CLOSE_WAIT_S), "the upstream must see the close"
        assert stored(db, session_id) == [("user", "hi", "complete"), ("assistant", "first", "incomplete")]

        # The cut reply is part of the history: the user saw it.
        chat(client, session_id, "go on")
    assert fake.requests[1].body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "go on"},
    ]


def test_the_upstream_gets_the_history_with_the_sessions_model_and_system_prompt(
    upstream: Settings, fake: FakeOpenAI, db: DatabaseView
) -> None:
    fake.enqueue(
        reply("Paris."),
        Script([delta("About "), Drop()]),  # fails after a piece: kept
        error_reply(503, {"error": {"message": "overloaded"}}),  # fails before any: left out
        reply("About 390 km."),
    )
    with running(upstream) as client:
        metadata = {"model": "other-model", "system_prompt": "Answer briefly.", "topic": "travel"}
        session_id = new_session(client, metadata=metadata)
        chat(client, session_id, "Capital of France?")
        chat(client, session_id, "Its population?")
        chat(client, session_id, "Hello?")
        chat(client, session_id, ("system", "Use kilometres."), "How far is Lyon?")

    assert [r.body["model"] for r in fake.requests] == ["other-model"] * 4
    assert fake.requests[-1].body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Its population?"},
        {"role": "assistant", "content": "About "},
        {"role": "user", "content": "Hello?"},
        {"role": "system", "content": "Use kilometres."},
        {"role": "user", "content": "How far is Lyon?"},
    ]
    replies = [(content, status) for role, content, status in stored(db, session_id) if role == "assistant"]
    assert replies == [
        ("Paris.", "complete"),
        ("About ", "error"),
        ("", "error"),
        ("About 390 km.", "complete"),
    ]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        pytest.param({}, ["S", "q1", "a1", "s2", "q2", "a2", "q3"], id="within the budget"),
        pytest.param(
            {"llm_history_max_messages": 0, "llm_history_max_chars": 0},
            ["S", "q1", "a1", "s2", "q2", "a2", "q3"],
            id="no limits",
        ),
        # System messages count: 5 messages = S, s2 and the newest three.
        pytest.param({"llm_history_max_messages": 5}, ["S", "s2", "q2", "a2", "q3"], id="by messages"),
        # 1 + 2 (system) + 2 + 2 + 2 characters; a1 would need 2 more.
        pytest.param({"llm_history_max_chars": 10}, ["S", "s2", "q2", "a2", "q3"], id="by characters"),
        # The newest message goes even when it alone is over the budget.
        pytest.param({"llm_history_max_chars": 1}, ["S", "s2", "q3"], id="the newest message always"),
    ],
)
def test_the_history_is_trimmed_from_the_oldest_end_keeping_system_messages(
    upstream: Settings, fake: FakeOpenAI, budget: dict[str, int], expected: list[str]
) -> None:
    fake.enqueue(reply("a1"), reply("a2"), reply("a3"))
    with running(dataclasses.replace(upstream, **budget)) as client:
        session_id = new_session(client, metadata={"system_prompt": "S"})
        chat(client, session_id, "q1")
        chat(client, session_id, ("system", "s2"), "q2")
        chat(client, session_id, "q3")

    assert [m["content"] for m in fake.requests[-1].body["messages"]] == expected


@pytest.mark.parametrize(
    ("metadata", "detail"),
    [
        ({"model": 5}, "the session's metadata `model` must be a non-empty string"),
        ({"model": ""}, "the session's metadata `model` must be a non-empty string"),
        ({"system_prompt": ["be", "brief"]}, "the session's metadata `system_prompt` must be a string"),
    ],
)
def test_unusable_metadata_overrides_are_an_error_event(
    upstream: Settings, fake: FakeOpenAI, db: DatabaseView, metadata: dict[str, Any], detail: str
) -> None:
    with running(upstream) as client:
        session_id = new_session(client, metadata=metadata)
        events = chat(client, session_id, "hi")

    assert [(e.event, e.data) for e in events[1:]] == [("error", {"detail": detail})]
    assert stored(db, session_id) == [("user", "hi", "complete"), ("assistant", "", "error")]
    assert fake.requests == []


def test_the_api_key_is_in_no_error_detail_and_no_log(
    upstream: Settings, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.enqueue(
        error_reply(401, ERROR_BODY),
        Script([delta("x"), event({"error": {"message": f"key {API_KEY} revoked"}})]),
    )
    app = create_app(upstream)
    # The app's logging set-up (done by create_app) replaces the root handlers, caplog's among
    # them: listen directly, to chatstore and to the HTTP client underneath, at every level.
    loggers = [logging.getLogger(name) for name in ("chatstore", "httpx", "httpcore")]
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    for logger in loggers:
        logger.addHandler(caplog.handler)
    try:
        with TestClient(app) as client:
            session_id = new_session(client)
            details = [chat(client, session_id, "hi")[-1].data["detail"] for _ in range(2)]
    finally:
        for logger in loggers:
            logger.removeHandler(caplog.handler)

    assert details == [
        "the model server answered 401 Unauthorized: Incorrect API key provided: ***.",
        "the model server failed in the middle of the reply: key *** revoked",
    ]
    assert f"Bearer {API_KEY}" in fake.requests[0].headers["authorization"]
    assert "model server failure" in caplog.text, "failures are logged"
    assert "HTTP Request: POST" in caplog.text, "httpx's own logs were captured too"
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(upstream)


def test_the_openai_responder_is_configured_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CHATSTORE_RESPONDER": "openai",
            "CHATSTORE_LLM_BASE_URL": "http://127.0.0.1:11434/v1",
            "CHATSTORE_LLM_MODEL": "llama3.2",
            "CHATSTORE_LLM_API_KEY": API_KEY,
            "CHATSTORE_LLM_READ_TIMEOUT_S": "5.5",
            "CHATSTORE_LLM_HISTORY_MAX_CHARS": "1000",
        }
    )
    assert (settings.responder, settings.llm_model, settings.llm_api_key) == ("openai", "llama3.2", API_KEY)
    assert (settings.llm_read_timeout_s, settings.llm_history_max_chars) == (5.5, 1000)
    assert Settings.from_env({}).responder == "mock"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"CHATSTORE_RESPONDER": "gpt"}, "CHATSTORE_RESPONDER"),
        ({"CHATSTORE_RESPONDER": "openai", "CHATSTORE_LLM_MODEL": "m"}, "CHATSTORE_LLM_BASE_URL"),
        ({"CHATSTORE_RESPONDER": "openai", "CHATSTORE_LLM_BASE_URL": "http://h/v1"}, "CHATSTORE_LLM_MODEL"),
        (
            {
                "CHATSTORE_RESPONDER": "openai",
                "CHATSTORE_LLM_BASE_URL": "localhost:11434",
                "CHATSTORE_LLM_MODEL": "m",
            },
            "CHATSTORE_LLM_BASE_URL",
        ),
        ({"CHATSTORE_LLM_FIRST_BYTE_TIMEOUT_S": "0"}, "CHATSTORE_LLM_FIRST_BYTE_TIMEOUT_S"),
        ({"CHATSTORE_LLM_HISTORY_MAX_MESSAGES": "-1"}, "CHATSTORE_LLM_HISTORY_MAX_MESSAGES"),
    ],
)
def test_an_unusable_responder_configuration_stops_start_up(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(environ)
