"""The sessions endpoints, as the contract describes them."""

from datetime import datetime
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from tests.helpers import DatabaseView


def test_create_returns_the_session_with_its_location(client: TestClient[Litestar], db: DatabaseView) -> None:
    response = client.post(
        "/api/sessions", json={"name": "Trip", "metadata": {"topic": "travel", "n": [1, 2]}}
    )

    assert response.status_code == 201
    session = response.json()
    assert response.headers["location"] == f"/api/sessions/{session['id']}"
    assert session["name"] == "Trip"
    assert session["metadata"] == {"topic": "travel", "n": [1, 2]}
    assert session["created_at"].endswith("Z") and session["updated_at"].endswith("Z")
    assert datetime.fromisoformat(session["created_at"]).tzinfo is not None
    assert db.scalar("SELECT name FROM sessions WHERE id = :id", id=session["id"]) == "Trip"


def test_create_accepts_an_empty_body(client: TestClient[Litestar]) -> None:
    for kwargs in ({}, {"content": b""}, {"json": {}}):
        response = client.post("/api/sessions", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 201, (kwargs, response.text)
        assert response.json()["name"] is None
        assert response.json()["metadata"] == {}


def test_list_is_newest_first(client: TestClient[Litestar], make_session: Any) -> None:
    created = [make_session(name=f"s{i}")["id"] for i in range(5)]

    response = client.get("/api/sessions")

    assert response.status_code == 200
    assert [s["id"] for s in response.json()] == created[::-1]


def test_get_returns_the_session_and_its_messages_in_order(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session = make_session(name="chat")
    for text in ("one", "two"):
        client.post(
            "/api/chat", json={"session_id": session["id"], "messages": [{"role": "user", "content": text}]}
        )

    response = client.get(f"/api/sessions/{session['id']}")

    assert response.status_code == 200
    body = response.json()
    assert body["session"]["id"] == session["id"]
    assert body["session"]["message_count"] == 4
    assert [m["seq"] for m in body["messages"]] == [1, 2, 3, 4]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
    assert body["messages"][0]["content"] == "one"
    assert body["messages"][2]["content"] == "two"


def test_delete_removes_the_session_and_its_messages(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView
) -> None:
    session = make_session()
    client.post(
        "/api/chat", json={"session_id": session["id"], "messages": [{"role": "user", "content": "hi"}]}
    )
    assert db.scalar("SELECT count(*) FROM messages WHERE session_id = :s", s=session["id"]) == 2

    response = client.delete(f"/api/sessions/{session['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/api/sessions/{session['id']}").status_code == 404
    assert db.scalar("SELECT count(*) FROM messages WHERE session_id = :s", s=session["id"]) == 0


def test_unknown_session_is_404_everywhere(client: TestClient[Litestar], db: DatabaseView) -> None:
    for method, path in (("GET", "/api/sessions/nope"), ("DELETE", "/api/sessions/nope")):
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.json() == {"status_code": 404, "detail": "session 'nope' not found"}

    response = client.post(
        "/api/chat", json={"session_id": "nope", "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"] == "session 'nope' not found"
    assert db.scalar("SELECT count(*) FROM messages") == 0


def test_each_session_carries_the_start_of_its_first_user_message_as_its_preview(
    client: TestClient[Litestar], make_session: Any
) -> None:
    empty = make_session()
    session = make_session()
    question = "Where do penguins live?\n" + "é" * 300  # counted in characters, not bytes
    client.post(
        "/api/chat",
        json={
            "session_id": session["id"],
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
        },
    )
    client.post(
        "/api/chat", json={"session_id": session["id"], "messages": [{"role": "user", "content": "And why?"}]}
    )
    preview = question[:200]

    assert empty["preview"] is None
    listed = {s["id"]: s["preview"] for s in client.get("/api/sessions").json()}
    assert listed == {empty["id"]: None, session["id"]: preview}
    assert client.get(f"/api/sessions/{session['id']}").json()["session"]["preview"] == preview
    renamed = client.patch(f"/api/sessions/{session['id']}", json={"name": "Penguins"})
    assert (renamed.json()["name"], renamed.json()["preview"]) == ("Penguins", preview)
