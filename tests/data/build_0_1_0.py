"""Build the 0.1.0 databases that ``tests/storage/test_migrations.py`` upgrades; run with 0.1.0's code.

The files it writes are committed; this script is how they were made, and only the 0.1.0 code can
make them again (later code creates a migrated schema). From a checkout of this repository::

    git worktree add /tmp/chatstore-0.1.0 37558c3   # release 0.1.0
    cd /tmp/chatstore-0.1.0 && cp <this file> tests/data/ && \
        python -m tests.data.build_0_1_0 postgresql://postgres@127.0.0.1:5432/test <out dir>

For each engine it stores, through the API and the services of that release, sessions with names and
metadata, messages of every status and finish reason (one reply still ``in_progress``, held by a
lease of a process on another host that is still valid), an imported and a renamed session, and
text the search finds; then it records what the API answers (``<engine>-api.json``) and dumps the
database as SQL (``<engine>.sql``): SQLite's ``.dump``, and a ``pg_dump`` of the schema with the
schema's name taken out, so it loads into any schema named by ``search_path``. It needs the
``sqlite3`` and ``pg_dump`` commands.
"""

import json
import re
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import insert, update
from sqlalchemy.engine import make_url

from chatstore.app import create_app
from chatstore.core.db import Database
from chatstore.core.settings import Settings
from chatstore.models import messages_table, workers_table
from chatstore.schemas import MessageIn
from chatstore.services.owners import EVERY_SESSION
from chatstore.services.replies.reply_store import finish_reply
from chatstore.services.replies.turns import start_turn
from tests.helpers import ScriptedResponder, failing_responder, parse_sse, postgres_schema

FIXTURE_WORKER_ID = "0a0a0a0a-0000-4000-8000-000000000001"
# A process on another host whose lease runs for years: its reply stays ``in_progress``.
FIXTURE_WORKER = {
    "id": FIXTURE_WORKER_ID,
    "hostname": "chatstore-fixture-host/pidns:4026531836",
    "pid": 4242,
    "started_at": datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
    "lease_expires_at": datetime(2099, 12, 31, 23, 59, tzinfo=UTC),
}
SEARCHES = ["cafe", "zurich", "script", '"good café"', "museum -lake", "naive or bayes", "snowflake"]


def build(database_url: str) -> dict[str, Any]:
    """Fill an empty database with the fixture's data; return what the API answers about it."""
    settings = Settings(database_url=database_url, mock_delay_ms=0)
    answers = ScriptedResponder(["Try the Café Schober, ", "near the Grossmünster."])
    with TestClient(create_app(settings, responder=answers)) as client:
        trip = post(client, "/api/sessions", {"name": "Trip to Zürich", "metadata": TRIP_METADATA})
        chat(client, trip, [{"role": "user", "content": "Where can I find a good café near the lake?"}])
        answers.pieces = ["The Kunsthaus; the Landesmuseum is near the station."]
        chat(client, trip, [{"role": "user", "content": "And a museum?", "id": "client-msg-1"}])
        post(client, "/api/sessions", {})  # no name, no metadata, no messages
        renamed = post(client, "/api/sessions", {"name": "draft", "metadata": {"keep": 1, "drop": 2}})
        response = client.patch(
            f"/api/sessions/{renamed}", json={"name": "Renamed", "metadata": {"drop": None, "new": [1]}}
        )
        assert response.status_code == 200, response.text
        chat(client, renamed, [{"role": "user", "content": "A snowflake ❄ in a renamed session"}])
        imported = client.post("/api/sessions/import", json=IMPORTED)
        assert imported.status_code == 201, imported.text
        portal, db = client.blocking_portal, client.app.state.db
        portal.call(_store_other_statuses, db, post(client, "/api/sessions", {"name": "Stopped replies"}))
        portal.call(_store_streaming_reply, db, post(client, "/api/sessions", {"name": "Still streaming"}))
    failing = failing_responder(["Use html.escape, "], "the model is overloaded")
    with TestClient(create_app(settings, responder=failing)) as client:
        code = post(client, "/api/sessions", {"name": "Code <b>", "metadata": {"lang": "python"}})
        chat(client, code, [{"role": "user", "content": "How do I escape <script> tags in HTML?"}])
    with TestClient(create_app(settings)) as client:
        return record_api(client)


TRIP_METADATA = {
    "topic": "travel",
    "tags": ["café", "zürich"],
    "nested": {"a": {"b": [1, 2.5, {"c": None}]}, "t": True},
    "emoji": "🚀",
}
IMPORTED = {
    "format": "chatstore.session",
    "version": 1,
    "exported_at": "2025-01-03T10:00:00Z",
    "session": {
        "name": "Imported",
        "metadata": {"source": "export"},
        "created_at": "2025-01-02T09:00:00Z",
        "updated_at": "2025-01-02T09:30:00Z",
    },
    "messages": [
        {"role": "system", "content": "Be brief.", "created_at": "2025-01-02T09:00:01Z"},
        {"role": "user", "content": "Naive question about Bayes", "created_at": "2025-01-02T09:00:02Z"},
        {
            "role": "assistant",
            "content": "Naïve Bayes assumes",
            "status": "in_progress",
            "created_at": "2025-01-02T09:00:03Z",
        },
    ],
}


async def _store_other_statuses(db: Database, session_id: str) -> None:
    """Replies that ended every other way a reply ends."""
    endings = [
        ("Stop this one", "stopped half", "incomplete", "stopped", None),
        ("I will close the tab", "partial", "incomplete", "client_disconnected", None),
        ("The server restarts", "cut", "incomplete", "server_stopped", None),
        ("Fail please", "", "error", "error", "the model server answered 429 Too Many Requests: slow down"),
    ]
    for question, content, status, reason, error in endings:
        question_in = [MessageIn(role="user", content=question)]
        turn = await start_turn(db, session_id, question_in, "nobody", scope=EVERY_SESSION)
        await finish_reply(db, turn.reply_id, content, status, reason, error)  # type: ignore[arg-type]


async def _store_streaming_reply(db: Database, session_id: str) -> None:
    """A reply that a process on another host is still streaming, its progress written so far."""
    await db.write(lambda connection: connection.execute(insert(workers_table).values(**FIXTURE_WORKER)))
    turn = await start_turn(
        db,
        session_id,
        [
            MessageIn(role="system", content="You explain statistics."),
            MessageIn(role="user", content="Explain naive Bayes", id="client-msg-2"),
        ],
        FIXTURE_WORKER_ID,
        scope=EVERY_SESSION,
    )
    await db.write(
        lambda connection: connection.execute(
            update(messages_table)
            .where(messages_table.c.id == turn.reply_id)
            .values(content="Naive Bayes is a classifier that")
        )
    )


def post(client: TestClient[Any], path: str, body: dict[str, Any]) -> str:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def chat(client: TestClient[Any], session_id: str, messages: list[dict[str, Any]]) -> None:
    response = client.post("/api/chat", json={"session_id": session_id, "messages": messages})
    assert response.status_code == 200, response.text
    assert parse_sse(response.text)[-1].event in ("done", "error"), response.text


def record_api(client: TestClient[Any]) -> dict[str, Any]:
    def get(path: str, **params: Any) -> Any:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    sessions = get("/api/sessions", limit=100)
    return {
        "sessions": sessions,
        "sessions_by_activity": get("/api/sessions", limit=100, order="activity"),
        "details": {s["id"]: get(f"/api/sessions/{s['id']}") for s in sessions},
        "searches": {q: get("/api/search", q=q, limit=50) for q in SEARCHES},
    }


def dump_sqlite(path: Path) -> str:
    return subprocess.run(
        ["sqlite3", str(path), ".dump --preserve-rowids"], check=True, capture_output=True, text=True
    ).stdout


def dump_postgres(database_url: str) -> str:
    url = make_url(database_url)
    schema = str(url.query["options"]).removeprefix("-csearch_path=")
    dsn = url.difference_update_query(["options"]).render_as_string(hide_password=False)
    sql = subprocess.run(
        ["pg_dump", "--schema", schema, "--no-owner", "--no-privileges", "--inserts", dsn],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kept = []
    for line in sql.splitlines():
        # psql meta-commands, the schema itself and the empty search_path the dump sets.
        if line.startswith("\\") or "set_config('search_path'" in line or line.startswith("CREATE SCHEMA"):
            continue
        kept.append(re.sub(rf"\b{re.escape(schema)}\.", "", line))
    return "\n".join(kept) + "\n"


def main(postgres_url: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "chatstore.db"
        api = build(f"sqlite:///{path}")
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (out / "sqlite.sql").write_text(dump_sqlite(path))
        (out / "sqlite-api.json").write_text(json.dumps(api, indent=1, ensure_ascii=False) + "\n")
    with postgres_schema(postgres_url, prefix="fixture") as url:
        api = build(url)
        (out / "postgres.sql").write_text(dump_postgres(url))
        (out / "postgres-api.json").write_text(json.dumps(api, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
