"""The access log: one JSON line per request on ``chatstore.access``, never a body, a query or a key."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import AppFactory
from tests.helpers import parse_sse


@contextmanager
def logged_client(app: Litestar, caplog: pytest.LogCaptureFixture) -> Iterator[TestClient[Litestar]]:
    """A client of an app whose log ``caplog`` sees. Use it inside the test: pytest puts its own
    handler back on the root logger when the test starts, which would see every line twice."""
    # The app's logging set-up replaces the root handlers, caplog's among them: listen directly.
    logger = logging.getLogger("chatstore")
    logger.addHandler(caplog.handler)
    try:
        with TestClient(app) as client:
            yield client
    finally:
        logger.removeHandler(caplog.handler)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [record for record in caplog.records if record.name == "chatstore.access"]
    for record in records:
        assert record.levelno == logging.INFO
        assert json.loads(record.getMessage()) == record.access  # the line is the fields, as JSON
    return [record.access for record in records]


def test_one_line_per_request_with_method_path_status_and_duration(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with logged_client(make_app(), caplog) as client:
        session_id = client.post("/api/sessions", json={"name": "secret name"}).json()["id"]
        client.get(f"/api/sessions/{session_id}")
        client.get("/api/sessions/not-a-session")
        client.get("/no/such/page")
        client.put("/api/sessions")

    lines = access_lines(caplog)
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/api/sessions", 201),
        ("GET", f"/api/sessions/{session_id}", 200),
        ("GET", "/api/sessions/not-a-session", 404),
        ("GET", "/no/such/page", 404),
        ("PUT", "/api/sessions", 405),
    ]
    assert all(isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0 for line in lines)
    assert "session_id" not in lines[0]
    assert lines[1]["session_id"] == session_id
    assert "secret name" not in caplog.text


def test_the_query_string_is_not_logged(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    with logged_client(make_app(), caplog) as client:
        client.get("/api/sessions", params={"limit": 5, "cursor": "private-words"})
    [line] = access_lines(caplog)
    assert line["path"] == "/api/sessions"
    assert "private-words" not in caplog.text


def test_a_chat_is_logged_with_its_session_and_without_its_content(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with logged_client(make_app(), caplog) as client:
        session_id = client.post("/api/sessions").json()["id"]
        caplog.clear()
        response = client.post(
            "/api/chat",
            json={"session_id": session_id, "messages": [{"role": "user", "content": "my diary"}]},
        )
    reply = parse_sse(response.text)[-1].data["content"]

    [line] = access_lines(caplog)
    assert (line["method"], line["path"], line["status"]) == ("POST", "/api/chat", 200)
    assert line["session_id"] == session_id
    assert "my diary" not in caplog.text and reply not in caplog.text


def test_a_warning_log_level_turns_the_access_log_off(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with logged_client(make_app(log_level="warning"), caplog) as client:
        client.get("/api/sessions")
    assert access_lines(caplog) == []
