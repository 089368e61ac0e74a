"""A long read (``GET /api/sessions/{id}``, a whole branch) comes from the driver's rows, not
SQLAlchemy's: its body must be, byte for byte, what msgspec makes of the structs built from
SQLAlchemy's rows, on both engines and for every kind of value a message or a session holds."""

import gc
import sqlite3
import uuid
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from chatstore.models import messages_table, sessions_table
from chatstore.schemas import SessionDetail
from chatstore.services.rows import (
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    driver_rows,
    to_branch_messages,
    to_session,
)
from tests.conftest import AppFactory

# Every character below U+0020 but NUL (refused on the way in), and what JSON encoders disagree on.
AWKWARD_TEXTS = [
    "".join(chr(c) for c in range(1, 0x20)),
    'quotes " and \\ backslashes \\" and slashes / </script>',
    "line\u2028and paragraph\u2029separators, DEL \x7f, NBSP \xa0, BOM \ufeff",
    "emoji 😀👩‍👩‍👧 flags 🇵🇹, CJK 漢字, RTL שלום, combining e\u0301, astral 𝄞",
    "",
    " " * 3 + "\t\n",
]
METADATA = {
    "nested": {"deeper": {"list": [1, -2.5, 1e300, 0.1, True, False, None, "s", [], {}]}},
    "unicode ключ 🔑": '\u2028\x01"\\',
    "big": 2**62,
    "empty": {},
}
TIMES = [
    "2026-12-01T18:02:04.609275Z",
    "2026-12-01T18:02:04Z",  # no fraction: msgspec writes none
    "2026-12-01T18:02:04.000001Z",
    "2026-12-01T18:02:04.999999Z",
    # The first and last times but one: asyncpg stores datetime.min and .max as -infinity and infinity,
    # which the reference's driver (psycopg) does not read.
    "0001-01-01T00:00:00.000001Z",
    "9999-12-31T23:59:59.999998Z",
    "2026-06-30T23:59:59.500000+02:00",  # stored, and read, as UTC
]


def import_tree(client: TestClient[Litestar]) -> str:
    """26 messages: a current branch of 24, an edit of the 7th message (a short branch beside it) and
    a second first message, holding every awkward text, time and state; returns the session's id."""
    messages: list[dict[str, Any]] = []

    def add(parent: str | None, role: str, content: str, index: int, **state: Any) -> str:
        message_id = f"m{len(messages)}"
        messages.append(
            {
                "id": message_id,
                "parent_id": parent,
                "role": role,
                "content": content,
                "created_at": TIMES[index % len(TIMES)],
                **state,
            }
        )
        return message_id

    parent = None
    for index in range(24):
        role = "user" if index % 2 == 0 else "assistant"
        parent = add(parent, role, AWKWARD_TEXTS[index % len(AWKWARD_TEXTS)] + f" #{index}", index)
        if index == 5:
            fork_point = parent
    add(fork_point, "user", "an edit, beside the rest", 3)
    add(None, "system", "a second first message", 5)
    messages[-3]["status"] = "error"
    messages[-3]["error"] = "upstream said \u2028\x02 no 😀"
    messages[5]["status"] = "incomplete"
    messages[5]["finish_reason"] = "stopped"
    messages[7]["finish_reason"] = "completed"
    document = {
        "format": "chatstore.session",
        "version": 1,
        "exported_at": "2026-12-01T18:00:00Z",
        "session": {
            "name": "long read \u2028 😀 \x1f",
            "metadata": METADATA,
            "created_at": "2026-12-01T17:00:00Z",
            "updated_at": "2026-12-01T17:30:00.000001Z",
            "current_message_id": "m23",
        },
        "messages": messages,
    }
    response = client.post("/api/sessions/import", json=document)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def body_from_sqlalchemy_rows(engine: Engine, session_id: str, leaf_id: str) -> bytes:
    """The body as the structs built from SQLAlchemy's own rows encode it: the branch found by
    walking up from ``leaf_id``, each message's siblings grouped from all the session's rows."""
    with engine.connect() as connection:
        session = connection.execute(select(*SESSION_COLUMNS).where(sessions_table.c.id == session_id)).one()
        rows = connection.execute(
            select(*MESSAGE_COLUMNS)
            .where(messages_table.c.session_id == session_id)
            .order_by(messages_table.c.seq)
        ).all()
    by_id = {row.id: row for row in rows}
    siblings: dict[str | None, list[str]] = {}
    for row in rows:
        siblings.setdefault(row.parent_id, []).append(row.id)
    branch = []
    on_branch: str | None = leaf_id
    while on_branch is not None:
        branch.append(by_id[on_branch])
        on_branch = by_id[on_branch].parent_id
    detail = SessionDetail(session=to_session(session), messages=to_branch_messages(branch[::-1], siblings))
    return msgspec.json.encode(detail)


def test_a_session_read_is_byte_for_byte_the_structs_of_sqlalchemy_rows(
    client: TestClient[Litestar], db_engine: Engine
) -> None:
    session_id = import_tree(client)
    # A turn with a client id, answered by the mock: the last states a message can have.
    turn = client.post(
        "/api/chat",
        json={"session_id": session_id, "messages": [{"role": "user", "content": "ok \u2028", "id": "c-1"}]},
    )
    assert turn.status_code == 200
    leaf = client.get(f"/api/sessions/{session_id}").json()["session"]["current_message_id"]

    response = client.get(f"/api/sessions/{session_id}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == body_from_sqlalchemy_rows(db_engine, session_id, leaf)
    assert len(response.json()["messages"]) == 26  # the whole current branch: read with its session


# m24 (the edit) and m25 (a first message) are short branches, read up their parents; m12's branch
# goes on down to m23, and holds most of the session: it is read with the session.
@pytest.mark.parametrize("message", ["m24", "m25", "m12"])
def test_a_branch_read_upwards_or_with_its_session_is_byte_for_byte_the_same(
    client: TestClient[Litestar], db_engine: Engine, message: str
) -> None:
    session_id = import_tree(client)
    # The import gives new ids, and seqs in the document's order: m<n> is the n-th message stored.
    stored_ids = [m["id"] for m in client.get(f"/api/sessions/{session_id}/messages?limit=100").json()]
    assert len(stored_ids) == 26
    chosen = stored_ids[int(message[1:])]

    response = client.get(f"/api/sessions/{session_id}", params={"message_id": chosen})

    assert response.status_code == 200
    leaf = stored_ids[23] if message == "m12" else chosen
    assert response.content == body_from_sqlalchemy_rows(db_engine, session_id, leaf)


def test_an_empty_session_reads_as_before(client: TestClient[Litestar], db_engine: Engine) -> None:
    session_id = client.post("/api/sessions", json={"metadata": METADATA}).json()["id"]

    response = client.get(f"/api/sessions/{session_id}")

    with db_engine.connect() as connection:
        session = connection.execute(select(*SESSION_COLUMNS).where(sessions_table.c.id == session_id)).one()
    assert response.content == msgspec.json.encode(SessionDetail(session=to_session(session), messages=[]))
    assert client.get(f"/api/sessions/{uuid.uuid4()}").status_code == 404


def test_what_start_up_made_is_left_out_of_garbage_collection_while_the_app_runs(
    make_app: AppFactory,
) -> None:
    # A full collection would otherwise walk it all, in the middle of some request, every few long reads.
    assert gc.get_freeze_count() == 0
    with TestClient(make_app()) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


def test_an_error_while_the_driver_fetches_rows_is_sqlalchemys_as_ever(db_engine: Engine) -> None:
    if db_engine.dialect.name != "sqlite":
        pytest.skip("SQLite steps through the rows as they are fetched; asyncpg has them all at once")
    # The first row comes with the statement; the second fails as it is fetched (integer overflow).
    overflows = text(
        "SELECT CASE WHEN value = 1 THEN 1 ELSE abs(-9223372036854775807 - 1) END "
        "FROM (SELECT 1 AS value UNION ALL SELECT 2)"
    )
    with db_engine.connect() as connection, pytest.raises(DBAPIError) as raised:
        driver_rows(connection, overflows)
    assert isinstance(raised.value.orig, sqlite3.Error)
