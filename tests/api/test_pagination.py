"""Paging through sessions and messages: opaque cursors that neither repeat nor skip, even while
new items arrive between pages."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import insert, update

from chatstore.models import ChatSession, Message
from tests.helpers import DatabaseView

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def insert_sessions(db: DatabaseView, count: int) -> list[str]:
    """``count`` sessions, three to a timestamp so that the id must break the ties."""
    rows = [
        {
            "id": str(uuid.uuid4()),
            "created_at": at,
            "updated_at": at,
            "activity_at": at,
            "metadata": {},
            "last_seq": 0,
        }
        for at in (BASE_TIME + timedelta(seconds=index // 3) for index in range(count))
    ]
    with db.engine.begin() as connection:
        connection.execute(insert(ChatSession.__table__), rows)  # type: ignore[attr-defined]
    return [row["id"] for row in rows]


def insert_messages(db: DatabaseView, session_id: str, count: int) -> None:
    messages = Message.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "id": str(uuid.uuid4()),
            "session_id": session_id,
            "seq": seq,
            "role": "user" if seq % 2 else "assistant",
            "content": f"message {seq}",
            "status": "complete",
            "created_at": BASE_TIME,
            "updated_at": BASE_TIME,
        }
        for seq in range(1, count + 1)
    ]
    with db.engine.begin() as connection:
        connection.execute(insert(messages), rows)
        sessions = ChatSession.__table__  # type: ignore[attr-defined]
        connection.execute(update(sessions).where(sessions.c.id == session_id).values(last_seq=count))


def pages(client: TestClient[Litestar], url: str, between_pages: Any = None) -> list[list[dict[str, Any]]]:
    """Follow the ``Link: rel="next"`` headers from ``url`` to the end, calling ``between_pages()``."""
    result = []
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        result.append(response.json())
        link = response.headers.get("link")
        if link is None:
            assert "x-next-cursor" not in response.headers
            return result
        assert link.endswith('>; rel="next"')
        assert response.headers["x-next-cursor"] in link
        url = link[1 : link.index(">")]
        if between_pages is not None:
            between_pages()


def test_paging_through_1000_sessions_while_new_ones_arrive(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    existing = set(insert_sessions(db, 1000))
    added: list[str] = []

    def add_session() -> None:
        added.append(client.post("/api/sessions").json()["id"])

    seen = [s for page in pages(client, "/api/sessions?limit=37", add_session) for s in page]

    ids = [s["id"] for s in seen]
    assert len(ids) == len(set(ids)), "no session twice"
    assert existing <= set(ids), "no session skipped"
    assert not set(added) & set(ids), "sessions newer than the first page come before it, not after"
    keys = [(s["created_at"], s["id"]) for s in seen]
    assert keys == sorted(keys, reverse=True)


def test_the_list_without_parameters_is_the_newest_default_page(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    insert_sessions(db, 120)
    response = client.get("/api/sessions")
    assert response.status_code == 200
    assert isinstance(response.json(), list)
    assert len(response.json()) == 100
    assert "x-next-cursor" in response.headers


def test_ordering_by_activity_puts_the_last_chatted_session_first(
    client: TestClient[Litestar], make_session: Any
) -> None:
    older = make_session(name="older")
    make_session(name="newer")
    client.post(
        "/api/chat", json={"session_id": older["id"], "messages": [{"role": "user", "content": "hi"}]}
    )

    by_creation = [s["name"] for s in client.get("/api/sessions").json()]
    by_activity = client.get("/api/sessions?order=activity").json()

    assert by_creation == ["newer", "older"]
    assert [s["name"] for s in by_activity] == ["older", "newer"]
    assert by_activity[0]["message_count"] == 2
    assert by_activity[0]["last_message_at"] is not None
    assert by_activity[1]["last_message_at"] is None


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_paging_through_2000_messages_while_the_chat_goes_on(
    client: TestClient[Litestar], db: DatabaseView, make_session: Any, direction: str
) -> None:
    session_id = make_session()["id"]
    insert_messages(db, session_id, 2000)

    def chat() -> None:
        body = {"session_id": session_id, "messages": [{"role": "user", "content": "more"}]}
        assert client.post("/api/chat", json=body).status_code == 200

    got = pages(client, f"/api/sessions/{session_id}/messages?limit=73&direction={direction}", chat)

    for page in got:
        seqs = [m["seq"] for m in page]
        assert seqs == sorted(seqs), "each page is in seq order"
    flat = [m["seq"] for page in (got if direction == "forward" else reversed(got)) for m in page]
    assert len(flat) == len(set(flat)), "no message twice"
    if direction == "forward":
        # Forward paging reaches the messages added while it went: everything, in order.
        assert flat == list(range(1, len(flat) + 1))
        assert len(flat) > 2000
    else:
        # Backward paging starts at the newest message when it started and walks back to the first.
        assert flat == list(range(1, 2001))


def test_the_first_backward_page_is_the_latest(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView
) -> None:
    session_id = make_session()["id"]
    insert_messages(db, session_id, 10)
    page = client.get(f"/api/sessions/{session_id}/messages?direction=backward&limit=4").json()
    assert [m["seq"] for m in page] == [7, 8, 9, 10]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-5", "limit"),
        ("limit=ten", "limit"),
        ("cursor=nonsense", "cursor"),
        ("cursor=%F0%9F%99%82", "cursor"),
        ("order=oldest", "order"),
    ],
)
def test_bad_paging_parameters_are_400(client: TestClient[Litestar], query: str, field: str) -> None:
    response = client.get(f"/api/sessions?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}:")


def test_a_cursor_of_another_listing_is_refused(
    client: TestClient[Litestar], make_session: Any, db: DatabaseView
) -> None:
    insert_sessions(db, 5)
    cursor = client.get("/api/sessions?limit=2").headers["x-next-cursor"]
    session_id = make_session()["id"]
    for url in (
        f"/api/sessions/{session_id}/messages?cursor={cursor}",
        f"/api/sessions?order=activity&cursor={cursor}",
    ):
        response = client.get(url)
        assert response.status_code == 400
        assert response.json()["detail"].startswith("cursor:")


def test_messages_of_an_unknown_session_are_404(client: TestClient[Litestar]) -> None:
    assert client.get(f"/api/sessions/{uuid.uuid4()}/messages").status_code == 404
    assert client.get("/api/sessions/nope/messages").status_code == 404
