"""Bad input: a 400 (or 413) that names the field, nothing changed in the database, never a 500."""

import json
import random
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.core.settings import Settings
from tests.conftest import ClientFactory
from tests.helpers import DatabaseView, parse_sse

LIMITS = Settings(
    max_name_length=20,
    max_metadata_bytes=200,
    max_metadata_depth=4,
    max_content_length=50,
    max_messages_per_request=3,
    max_request_body_bytes=4_000,
)
SESSION = "00000000-0000-4000-8000-000000000000"  # replaced by a real session id in each test


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


BAD_SESSION_BODIES: list[tuple[str, Any, str]] = [
    ("malformed JSON", b"{", "body"),
    ("not UTF-8", b'{"name": "\xff"}', "body"),
    ("an array", [], "body"),
    ("a string", "name", "body"),
    ("unknown field", {"nme": "x"}, "nme"),
    ("name of the wrong type", {"name": 1}, "name"),
    ("name too long", {"name": "x" * 21}, "name"),
    ("name with NUL", {"name": "a\u0000b"}, "name"),
    ("metadata an array", {"metadata": []}, "metadata"),
    ("metadata a string", {"metadata": "x"}, "metadata"),
    ("metadata null", {"metadata": None}, "metadata"),
    ("metadata too big", {"metadata": {"k": "x" * 300}}, "metadata"),
    ("metadata too deep", {"metadata": nested(5)}, "metadata"),
    ("metadata with NUL", {"metadata": {"k": ["a\u0000"]}}, "metadata.k[0]"),
    ("metadata key with NUL", {"metadata": {"a\u0000": 1}}, "metadata"),
]

BAD_CHAT_BODIES: list[tuple[str, Any, str]] = [
    ("malformed JSON", b'{"session_id": ', "body"),
    ("empty body", b"", "body"),
    ("not UTF-8", b'{"session_id": "\xc3\x28", "messages": []}', "body"),
    ("an array", [], "body"),
    ("missing session_id", {"messages": [user("x")]}, "session_id"),
    ("session_id of the wrong type", {"session_id": 7, "messages": [user("x")]}, "session_id"),
    ("missing messages", {"session_id": SESSION}, "messages"),
    ("messages not a list", {"session_id": SESSION, "messages": {"role": "user"}}, "messages"),
    ("empty messages", {"session_id": SESSION, "messages": []}, "messages"),
    ("a message not an object", {"session_id": SESSION, "messages": ["hi"]}, "messages[0]"),
    (
        "unknown role",
        {"session_id": SESSION, "messages": [{"role": "bot", "content": "x"}]},
        "messages[0].role",
    ),
    ("missing role", {"session_id": SESSION, "messages": [{"content": "x"}]}, "role"),
    ("missing content", {"session_id": SESSION, "messages": [{"role": "user"}]}, "content"),
    ("empty content", {"session_id": SESSION, "messages": [user("ok"), user("")]}, "messages[1].content"),
    ("content not a string", {"session_id": SESSION, "messages": [user(["x"])]}, "messages[0].content"),
    ("content too long", {"session_id": SESSION, "messages": [user("x" * 51)]}, "messages[0].content"),
    ("content with NUL", {"session_id": SESSION, "messages": [user("a\u0000")]}, "messages[0].content"),
    ("too many messages", {"session_id": SESSION, "messages": [user("x")] * 4}, "messages"),
    ("unknown field", {"session_id": SESSION, "messages": [user("x")], "stream": False}, "stream"),
    ("unknown message field", {"session_id": SESSION, "messages": [{**user("x"), "name": "n"}]}, "name"),
]


@pytest.fixture
def limited_client(make_client: ClientFactory) -> Any:
    limits = {name: getattr(LIMITS, name) for name in LIMITS.__slots__ if name.startswith("max_")}
    with make_client(**limits) as client:
        yield client


def snapshot(db: DatabaseView) -> list[Any]:
    return [
        db.rows("SELECT id, name, metadata, last_seq FROM sessions ORDER BY id"),
        db.rows("SELECT id, seq, content, status FROM messages ORDER BY id"),
    ]


def send(client: TestClient[Litestar], path: str, body: Any) -> Any:
    if isinstance(body, bytes):
        return client.post(path, content=body, headers={"content-type": "application/json"})
    return client.post(path, json=body)


def assert_names_field(response: Any, field: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["status_code"] == 400
    assert field in error["detail"], f"{field!r} is not named in {error['detail']!r}"


@pytest.mark.parametrize(
    ("case", "body", "field"), BAD_SESSION_BODIES, ids=[c[0] for c in BAD_SESSION_BODIES]
)
def test_bad_session_bodies_are_rejected_and_change_nothing(
    limited_client: TestClient[Litestar], db: DatabaseView, case: str, body: Any, field: str
) -> None:
    before = snapshot(db)
    assert_names_field(send(limited_client, "/api/sessions", body), field)
    assert snapshot(db) == before


@pytest.mark.parametrize(("case", "body", "field"), BAD_CHAT_BODIES, ids=[c[0] for c in BAD_CHAT_BODIES])
def test_bad_chat_bodies_are_rejected_and_change_nothing(
    limited_client: TestClient[Litestar], db: DatabaseView, case: str, body: Any, field: str
) -> None:
    session_id = limited_client.post("/api/sessions").json()["id"]
    if isinstance(body, dict) and body.get("session_id") == SESSION:
        body = {**body, "session_id": session_id}
    before = snapshot(db)
    assert_names_field(send(limited_client, "/api/chat", body), field)
    assert snapshot(db) == before


def test_limits_admit_values_right_at_them(limited_client: TestClient[Litestar]) -> None:
    session = limited_client.post("/api/sessions", json={"name": "x" * 20, "metadata": nested(4)})
    assert session.status_code == 201, session.text
    response = limited_client.post(
        "/api/chat", json={"session_id": session.json()["id"], "messages": [user("y" * 50)] * 3}
    )
    assert response.status_code == 200, response.text


def test_a_body_over_the_size_limit_is_413(limited_client: TestClient[Litestar], db: DatabaseView) -> None:
    before = snapshot(db)
    response = limited_client.post("/api/sessions", json={"name": "x", "metadata": {"k": "x" * 5_000}})
    assert response.status_code == 413
    assert response.json()["status_code"] == 413
    assert snapshot(db) == before


@pytest.mark.parametrize("path", ["/api/sessions/" + "x" * 5000, "/api/sessions/%00", "/api/sessions/%E2%82"])
def test_odd_ids_are_404_not_500(client: TestClient[Litestar], path: str) -> None:
    assert client.get(path).status_code == 404
    assert client.delete(path).status_code == 404


def test_a_session_id_with_nul_in_chat_is_404(client: TestClient[Litestar]) -> None:
    response = client.post("/api/chat", json={"session_id": "a\u0000b", "messages": [user("x")]})
    assert response.status_code == 404


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 2**63, -(2**70), rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e-300])
    if kind == "str":
        return rng.choice(
            ["", "user", "assistant", "\u0000", "é🙂", "x" * 300, "00000000-0000-4000-8000-000000000000"]
        )
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["name", "metadata", "session_id", "messages", "role", "content", "extra"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_random_bodies_never_get_a_500(limited_client: TestClient[Litestar]) -> None:
    rng = random.Random(20261125)
    session_id = limited_client.post("/api/sessions").json()["id"]
    for _ in range(150):
        body = random_json(rng)
        if isinstance(body, dict) and rng.random() < 0.5:
            body["session_id"] = session_id
        for path in ("/api/sessions", "/api/chat"):
            response = limited_client.post(path, content=json.dumps(body).encode())
            assert response.status_code in (200, 201, 400, 404, 413), (path, body, response.text)


# --- Values taken as sent: no coercion of one JSON type into another --------------------------------

EXPORT = {
    "exported_at": "2026-11-20T10:00:00Z",
    "session": {"created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-20T09:30:00Z"},
    "messages": [{"role": "user", "content": "hi", "created_at": "2026-11-20T09:00:01Z"}],
}
COERCIBLE_BODIES: list[tuple[str, str, Any, str]] = [
    ("a boolean as a string", "/api/chat", {"keep_generating": "true"}, "keep_generating"),
    ("a boolean as a number", "/api/chat", {"keep_generating": 1}, "keep_generating"),
    ("a time as a number", "/api/sessions/import", {"created_at": 0}, "messages[0].created_at"),
    ("a string as a number", "/api/sessions", {"name": 5}, "name"),
]


@pytest.mark.parametrize(
    ("case", "path", "change", "field"), COERCIBLE_BODIES, ids=[c[0] for c in COERCIBLE_BODIES]
)
def test_values_of_another_json_type_are_400_not_coerced(
    client: TestClient[Litestar], db: DatabaseView, case: str, path: str, change: Any, field: str
) -> None:
    session_id = client.post("/api/sessions").json()["id"]
    bodies = {
        "/api/chat": {"session_id": session_id, "messages": [user("x")], **change},
        "/api/sessions/import": {**EXPORT, "messages": [{**EXPORT["messages"][0], **change}]},
        "/api/sessions": change,
    }
    before = snapshot(db)
    response = client.post(path, json=bodies[path])
    assert_names_field(response, field)
    assert response.json()["extra"][0]["key"] == field
    assert snapshot(db) == before


def test_the_same_values_of_the_right_type_are_taken(client: TestClient[Litestar]) -> None:
    session_id = client.post("/api/sessions", json={"name": "5"}).json()["id"]
    chat = {"session_id": session_id, "messages": [user("x")], "keep_generating": True}
    assert client.post("/api/chat", json=chat).status_code == 200
    assert client.post("/api/sessions/import", json=EXPORT).status_code == 201


@pytest.mark.parametrize("limit", ["1e3", "5.0", "1E1", "null"])
@pytest.mark.parametrize("path", ["/api/sessions", "/api/search"])
def test_an_integer_query_parameter_must_be_written_in_digits(
    client: TestClient[Litestar], path: str, limit: str
) -> None:
    query = {"q": "hello"} if path == "/api/search" else {}
    response = client.get(path, params={**query, "limit": limit})
    assert_names_field(response, "limit")
    assert response.json()["extra"][0] == {
        "key": "limit",
        "message": f"must be an integer written in digits, got {limit!r}",
        "source": "query",
    }
    assert client.get(path, params={**query, "limit": "5"}).status_code == 200


@pytest.mark.parametrize("header", ["+5", " 5", "5_0", "1e1"])
def test_last_event_id_must_be_written_in_digits(client: TestClient[Litestar], header: str) -> None:
    session_id = client.post("/api/sessions").json()["id"]
    chat = client.post("/api/chat", json={"session_id": session_id, "messages": [user("x")]})
    reply_id = parse_sse(chat.text)[0].data["assistant_message_id"]
    response = client.get(f"/api/messages/{reply_id}/stream", headers={"Last-Event-ID": header})
    assert_names_field(response, "Last-Event-ID")
    assert client.get(f"/api/messages/{reply_id}/stream", headers={"Last-Event-ID": "0"}).status_code == 200
