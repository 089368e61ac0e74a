"""Export a session as JSON or Markdown, and import the JSON back: a round trip loses nothing."""

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import AppFactory
from tests.helpers import DatabaseView, ScriptedResponder, call_asgi


def chat(client: TestClient[Litestar], session_id: str, *messages: tuple[str, str]) -> None:
    body = {"session_id": session_id, "messages": [{"role": r, "content": c} for r, c in messages]}
    assert client.post("/api/chat", json=body).status_code == 200


def test_export_then_import_keeps_everything_but_the_ids(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session = make_session(
        name="Trip to Lisbon", metadata={"topic": "travel", "nested": {"n": [1, 2.5, None]}}
    )
    chat(client, session["id"], ("system", "Be brief."), ("user", "Olá! ✈️ <b>where</b> to eat?"))
    chat(client, session["id"], ("user", "And `code`\nwith lines"))
    original = client.get(f"/api/sessions/{session['id']}").json()

    exported = client.get(f"/api/sessions/{session['id']}/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == (
        f'attachment; filename="chatstore-trip-to-lisbon-{session["id"][:8]}.json"'
    )
    imported = client.post("/api/sessions/import", content=exported.content)

    assert imported.status_code == 201, imported.text
    copy_id = imported.json()["id"]
    assert copy_id != session["id"]
    assert imported.headers["location"] == f"/api/sessions/{copy_id}"
    copy = client.get(f"/api/sessions/{copy_id}").json()
    for field in ("name", "metadata", "created_at", "updated_at", "message_count", "last_message_at"):
        assert copy["session"][field] == original["session"][field], field
    keep = ("seq", "role", "content", "status", "created_at", "finish_reason", "error")
    assert [{k: m[k] for k in keep} for m in copy["messages"]] == [
        {k: m[k] for k in keep} for m in original["messages"]
    ]
    assert not {m["id"] for m in copy["messages"]} & {m["id"] for m in original["messages"]}


def test_an_imported_session_goes_on_like_any_other(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session()
    chat(client, session["id"], ("user", "first"))
    copy_id = client.post(
        "/api/sessions/import", content=client.get(f"/api/sessions/{session['id']}/export").content
    ).json()["id"]

    chat(client, copy_id, ("user", "second"))

    assert [m["seq"] for m in client.get(f"/api/sessions/{copy_id}").json()["messages"]] == [1, 2, 3, 4]


def test_the_markdown_export_is_a_readable_transcript(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session = make_session(name="Notes")
    chat(client, session["id"], ("user", "Remember the milk"))

    response = client.get(f"/api/sessions/{session['id']}/export?format=markdown")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.headers["content-disposition"].endswith('.md"')
    text = response.text
    assert text.startswith("# Notes\n")
    assert "**user**" in text and "Remember the milk" in text and "**assistant**" in text


def test_a_reply_exported_mid_stream_is_imported_as_incomplete(
    make_app: AppFactory, db: DatabaseView
) -> None:
    app = make_app(responder=ScriptedResponder(["slow ", "reply"], delay_s=0.2))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions").json()["id"]
        exported: list[bytes] = []

        async def export_during_stream(chunk: bytes) -> bool:
            if b"event: start" in chunk:
                _, body = await call_asgi(app, "GET", f"/api/sessions/{session_id}/export")
                exported.append(body)
            return False

        body = {"session_id": session_id, "messages": [{"role": "user", "content": "x"}]}
        client.blocking_portal.call(
            lambda: call_asgi(app, "POST", "/api/chat", body, on_body=export_during_stream)
        )
        assert b'"in_progress"' in exported[0]
        copy_id = client.post("/api/sessions/import", content=exported[0]).json()["id"]
        statuses = [m["status"] for m in client.get(f"/api/sessions/{copy_id}").json()["messages"]]
    assert statuses == ["complete", "incomplete"]


def valid_export(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": "chatstore.session",
        "version": 1,
        "exported_at": "2026-01-01T00:00:00Z",
        "session": {
            "name": "n",
            "metadata": {},
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        },
        "messages": [
            {"role": "user", "content": "hi", "status": "complete", "created_at": "2026-01-01T00:00:00Z"}
        ],
    }
    document.update(changes)
    return document


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (valid_export(format="other"), "format"),
        (valid_export(version=2), "version"),
        (
            valid_export(messages=[{"role": "bot", "content": "x", "created_at": "2026-01-01T00:00:00Z"}]),
            "role",
        ),
        (
            valid_export(messages=[{"role": "user", "content": "x", "created_at": "2026-01-01T00:00:00"}]),
            "created_at",
        ),
        (
            valid_export(
                messages=[{"role": "user", "content": "x" * 100_001, "created_at": "2026-01-01T00:00:00Z"}]
            ),
            "content",
        ),
        (valid_export(session={"created_at": "2026-01-01T00:00:00Z"}), "updated_at"),
        (valid_export(session={**valid_export()["session"], "metadata": "x"}), "metadata"),
        ({k: v for k, v in valid_export().items() if k != "session"}, "session"),
    ],
)
def test_a_bad_import_is_400_and_creates_nothing(
    client: TestClient[Litestar], db: DatabaseView, document: Any, field: str
) -> None:
    response = client.post("/api/sessions/import", json=document)
    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]
    assert db.scalar("SELECT count(*) FROM sessions") == 0


def test_an_empty_session_round_trips(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session(name="empty")
    document = client.get(f"/api/sessions/{session['id']}/export").content
    copy = client.post("/api/sessions/import", content=document).json()
    assert (copy["name"], copy["message_count"], copy["last_message_at"]) == ("empty", 0, None)


def test_exporting_an_unknown_session_is_404(client: TestClient[Litestar]) -> None:
    assert client.get(f"/api/sessions/{uuid.uuid4()}/export").status_code == 404
    assert client.get(f"/api/sessions/{uuid.uuid4()}/export?format=xml").status_code == 400
