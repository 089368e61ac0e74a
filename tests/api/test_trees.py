"""Conversations as trees: turns below a parent, edits, regenerations, and what the model sees.

Every test runs on both engines; the tree is checked in the database with plain SQL (``tree``) as
well as through the API.
"""

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text

from chatstore.app import create_app
from chatstore.core.settings import Settings
from chatstore.services.replies.events import MESSAGE_DELETED
from tests.conftest import ClientFactory
from tests.fake_openai import FakeOpenAI, reply
from tests.helpers import DatabaseView, Event, ScriptedResponder, call_asgi, parse_sse

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def answers() -> ScriptedResponder:
    return ScriptedResponder(["an ", "answer"])


@pytest.fixture
def client(make_client: ClientFactory, answers: ScriptedResponder) -> Iterator[TestClient[Litestar]]:
    with make_client(answers) as client:
        yield client


def new_session(client: TestClient[Litestar]) -> str:
    response = client.post("/api/sessions", json={})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def turn(client: TestClient[Litestar], session_id: str, *contents: str, **fields: Any) -> list[Event]:
    """One chat turn of user messages; ``fields`` go into the body as they are (``parent_id``, ids)."""
    messages = [{"role": "user", "content": c} for c in contents]
    response = client.post("/api/chat", json={"session_id": session_id, "messages": messages, **fields})
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    assert events[-1].event == "done", events
    return events


def started(events: list[Event]) -> tuple[list[str], str]:
    """The ids a turn's ``start`` event names: its messages, and its reply."""
    return events[0].data["message_ids"], events[0].data["assistant_message_id"]


def regenerate(client: TestClient[Litestar], session_id: str, **fields: Any) -> list[Event]:
    response = client.post(f"/api/sessions/{session_id}/regenerate", json=fields or None)
    assert response.status_code == 200, response.text
    return parse_sse(response.text)


def tree(db: DatabaseView, session_id: str) -> dict[str, str | None]:
    """Each stored message's parent, as the database has it."""
    rows = db.rows("SELECT id, parent_id FROM messages WHERE session_id = :s ORDER BY seq", s=session_id)
    return {row["id"]: row["parent_id"] for row in rows}


def current(db: DatabaseView, session_id: str) -> str | None:
    return db.scalar("SELECT current_message_id FROM sessions WHERE id = :s", s=session_id)


async def seen_by_responder(answers: ScriptedResponder, index: int = -1) -> list[tuple[str, str]]:
    history = await answers.conversations[index].history()
    return [(m.role, m.content) for m in history]


def history(
    client: TestClient[Litestar], answers: ScriptedResponder, index: int = -1
) -> list[tuple[str, str]]:
    return client.blocking_portal.call(seen_by_responder, answers, index)


# --- Turns on a tree ------------------------------------------------------------------------------


def test_turns_without_a_parent_chain_at_the_end_of_the_current_branch(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = new_session(client)
    assert client.get(f"/api/sessions/{session_id}").json()["session"]["current_message_id"] is None

    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2, q3], r2 = started(turn(client, session_id, "q2", "q3"))

    assert tree(db, session_id) == {q1: None, r1: q1, q2: r1, q3: q2, r2: q3}
    assert current(db, session_id) == r2
    detail = client.get(f"/api/sessions/{session_id}").json()
    assert detail["session"]["current_message_id"] == r2
    assert [(m["id"], m["parent_id"]) for m in detail["messages"]] == list(tree(db, session_id).items())


def test_an_edit_is_a_new_branch_beside_the_old_one(
    client: TestClient[Litestar], answers: ScriptedResponder, db: DatabaseView
) -> None:
    session_id = new_session(client)
    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2], r2 = started(turn(client, session_id, "q2"))

    # Editing q2: the edited text follows q2's parent.
    events = turn(client, session_id, "q2 edited", parent_id=r1)
    [q2_edited], r2_edited = started(events)

    assert tree(db, session_id) == {q1: None, r1: q1, q2: r1, r2: q2, q2_edited: r1, r2_edited: q2_edited}
    assert current(db, session_id) == r2_edited
    assert events[-1].data["parent_id"] == q2_edited
    assert history(client, answers) == [("user", "q1"), ("assistant", "an answer"), ("user", "q2 edited")]
    # The next turn without a parent follows the edited branch.
    [q3], _ = started(turn(client, session_id, "q3"))
    assert tree(db, session_id)[q3] == r2_edited
    assert [content for _, content in history(client, answers)] == [
        "q1",
        "an answer",
        "q2 edited",
        "an answer",
        "q3",
    ]


def test_a_null_parent_starts_a_new_first_message(
    client: TestClient[Litestar], answers: ScriptedResponder, db: DatabaseView
) -> None:
    session_id = new_session(client)
    [q1], _ = started(turn(client, session_id, "q1"))

    [other], reply_id = started(turn(client, session_id, "another start", parent_id=None))

    assert tree(db, session_id)[other] is None
    assert tree(db, session_id)[q1] is None
    assert current(db, session_id) == reply_id
    assert history(client, answers) == [("user", "another start")]


def test_two_turns_on_one_parent_are_two_sibling_branches(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = new_session(client)
    [_], r1 = started(turn(client, session_id, "q1"))

    [a], reply_a = started(turn(client, session_id, "a", parent_id=r1))
    [b], reply_b = started(turn(client, session_id, "b", parent_id=r1))

    parents = tree(db, session_id)
    assert (parents[a], parents[b], parents[reply_a], parents[reply_b]) == (r1, r1, a, b)
    seqs = [m["seq"] for m in db.messages(session_id)]
    assert seqs == list(range(1, 7))  # seq stays the order of storing, whatever the branch


@pytest.mark.parametrize("parent", ["unknown", "malformed", "other session"])
def test_a_parent_that_is_not_a_message_of_the_session_is_400_and_stores_nothing(
    client: TestClient[Litestar], db: DatabaseView, parent: str
) -> None:
    session_id, other_id = new_session(client), new_session(client)
    [_], other_reply = started(turn(client, other_id, "elsewhere"))
    parent_id = {"unknown": UNKNOWN_ID, "malformed": "not an id", "other session": other_reply}[parent]

    response = client.post(
        "/api/chat",
        json={
            "session_id": session_id,
            "messages": [{"role": "user", "content": "x"}],
            "parent_id": parent_id,
        },
    )

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("parent_id:")
    assert tree(db, session_id) == {}
    assert db.scalar("SELECT last_seq FROM sessions WHERE id = :s", s=session_id) == 0


def test_a_retried_request_finds_its_turn_on_the_branch_it_was_made(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = new_session(client)
    [_], r1 = started(turn(client, session_id, "q1"))
    turn(client, session_id, "q2")
    request = {"parent_id": r1, "messages": [{"role": "user", "content": "edit", "id": "edit-1"}]}
    first = client.post("/api/chat", json={"session_id": session_id, **request})
    turn(client, session_id, "later, on the edited branch")
    stored = tree(db, session_id)

    again = client.post("/api/chat", json={"session_id": session_id, **request})

    assert again.status_code == 200
    assert parse_sse(again.text)[0].data == parse_sse(first.text)[0].data
    assert tree(db, session_id) == stored


# --- Regenerations --------------------------------------------------------------------------------


def test_a_reply_streams_on_to_its_end_while_an_earlier_message_is_edited_into_another_branch(
    make_client: ClientFactory, db: DatabaseView
) -> None:
    slow = ScriptedResponder(["word "] * 40, delay_s=0.01)
    with make_client(slow) as client:
        session_id = new_session(client)
        [q1], r1 = started(turn(client, session_id, "q1"))
        body = {"session_id": session_id, "messages": [{"role": "user", "content": "q2"}]}
        edits: list[list[Event]] = []

        async def edit_q2_meanwhile(chunk: bytes) -> bool:
            if not edits and b"event: delta" in chunk:
                edit = {**body, "messages": [{"role": "user", "content": "q2 edited"}], "parent_id": r1}
                status, raw = await call_asgi(client.app, "POST", "/api/chat", edit)
                assert status == 200
                edits.append(parse_sse(raw.decode()))
            return False

        async def chat() -> bytes:
            return (await call_asgi(client.app, "POST", "/api/chat", body, on_body=edit_q2_meanwhile))[1]

        events = parse_sse(client.blocking_portal.call(chat).decode())
        [q2], r2 = started(events)
        [q2b], r2b = started(edits[0])
        edited_history = history(client, slow, index=2)
        first_branch = client.get(f"/api/sessions/{session_id}", params={"message_id": r2}).json()

    assert events[-1].event == "done" and edits[0][-1].event == "done"
    assert events[-1].data["content"] == "word " * 40  # streamed to its end, the edit notwithstanding
    assert [m["content"] for m in first_branch["messages"]] == ["q1", "word " * 40, "q2", "word " * 40]
    assert tree(db, session_id) == {q1: None, r1: q1, q2: r1, r2: q2, q2b: r1, r2b: q2b}
    statuses = db.rows("SELECT id, status FROM messages WHERE id IN (:a, :b)", a=r2, b=r2b)
    assert {row["id"]: row["status"] for row in statuses} == {r2: "complete", r2b: "complete"}
    # The edit, started last, is the branch the session shows; its reply saw only its own branch.
    assert current(db, session_id) == r2b
    assert edited_history == [("user", "q1"), ("assistant", "word " * 40), ("user", "q2 edited")]


def test_a_regenerated_reply_is_a_sibling_and_becomes_current(
    client: TestClient[Litestar], answers: ScriptedResponder, db: DatabaseView
) -> None:
    session_id = new_session(client)
    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2], r2 = started(turn(client, session_id, "q2"))

    events = regenerate(client, session_id)
    r2_again = events[0].data["assistant_message_id"]

    assert events[0].data["message_ids"] == []
    assert tree(db, session_id) == {q1: None, r1: q1, q2: r1, r2: q2, r2_again: q2}
    assert current(db, session_id) == r2_again
    assert history(client, answers) == [("user", "q1"), ("assistant", "an answer"), ("user", "q2")]
    # The next turn answers the new reply's branch: the replaced reply is not shown again.
    turn(client, session_id, "q3")
    assert history(client, answers) == [
        ("user", "q1"),
        ("assistant", "an answer"),
        ("user", "q2"),
        ("assistant", "an answer"),
        ("user", "q3"),
    ]
    assert len(answers.conversations[-1].new_messages) == 1


def test_regenerating_an_earlier_reply_answers_its_own_history(
    client: TestClient[Litestar], answers: ScriptedResponder, db: DatabaseView
) -> None:
    session_id = new_session(client)
    [q1], r1 = started(turn(client, session_id, "q1"))
    turn(client, session_id, "q2")

    r1_again = regenerate(client, session_id, message_id=r1)[0].data["assistant_message_id"]

    assert tree(db, session_id)[r1_again] == q1
    assert current(db, session_id) == r1_again
    assert history(client, answers) == [("user", "q1")]


@pytest.mark.parametrize("target", ["a user message", "unknown", "malformed", "another session's reply"])
def test_regenerating_what_is_not_a_reply_of_the_session_is_400(
    client: TestClient[Litestar], db: DatabaseView, target: str
) -> None:
    session_id, other_id = new_session(client), new_session(client)
    [q1], _ = started(turn(client, session_id, "q1"))
    [_], other_reply = started(turn(client, other_id, "elsewhere"))
    message_id = {
        "a user message": q1,
        "unknown": UNKNOWN_ID,
        "malformed": "x",
        "another session's reply": other_reply,
    }[target]
    stored = tree(db, session_id)

    response = client.post(f"/api/sessions/{session_id}/regenerate", json={"message_id": message_id})

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("message_id:")
    assert tree(db, session_id) == stored


# --- What the model sees --------------------------------------------------------------------------


def test_the_model_sees_exactly_the_branch_of_its_reply(settings: Settings) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(reply("A1"), reply("A2"), reply("A2 again"), reply("B2"), reply("A3"))
        # Built by hand: the setting `responder="openai"` would clash with make_app's `responder`.
        upstream = dataclasses.replace(
            settings, responder="openai", llm_base_url=fake.base_url, llm_model="m"
        )
        with TestClient(create_app(upstream)) as client:
            session_id = new_session(client)
            [_], a1 = started(turn(client, session_id, "Q1"))
            [_], a2 = started(turn(client, session_id, "Q2"))
            regenerate(client, session_id)  # "A2 again", beside A2
            turn(client, session_id, "Q2 edited", parent_id=a1)  # B2, a branch beside Q2
            turn(client, session_id, "Q3", parent_id=a2)

        sent = [[(m["role"], m["content"]) for m in r.body["messages"]] for r in fake.requests]

    assert sent == [
        [("user", "Q1")],
        [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")],
        [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")],
        [("user", "Q1"), ("assistant", "A1"), ("user", "Q2 edited")],
        [("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2"), ("user", "Q3")],
    ]


# --- Export and import ----------------------------------------------------------------------------


def test_an_imported_session_is_one_branch_ending_at_its_last_message(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = new_session(client)
    turn(client, session_id, "q1")
    turn(client, session_id, "q2")
    exported = client.get(f"/api/sessions/{session_id}/export").json()

    imported = client.post("/api/sessions/import", json=exported).json()["id"]

    ids = [m["id"] for m in db.messages(imported)]
    assert tree(db, imported) == dict(zip(ids, [None, *ids[:-1]], strict=True))
    assert current(db, imported) == ids[-1]


# --- Reading branches and switching ---------------------------------------------------------------


def branch_of(client: TestClient[Litestar], session_id: str, **params: Any) -> list[tuple[str, list[str]]]:
    """``GET /api/sessions/{id}``'s messages as (id, sibling_ids)."""
    response = client.get(f"/api/sessions/{session_id}", params=params)
    assert response.status_code == 200, response.text
    return [(m["id"], m["sibling_ids"]) for m in response.json()["messages"]]


def test_a_session_reads_as_its_current_branch_with_the_siblings_of_each_message(
    client: TestClient[Litestar],
) -> None:
    session_id = new_session(client)
    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2], r2 = started(turn(client, session_id, "q2"))
    [q2b], r2b = started(turn(client, session_id, "q2 edited", parent_id=r1))
    r2c = regenerate(client, session_id)[0].data["assistant_message_id"]

    assert branch_of(client, session_id) == [
        (q1, [q1]),
        (r1, [r1]),
        (q2b, [q2, q2b]),
        (r2c, [r2b, r2c]),
    ]
    detail = client.get(f"/api/sessions/{session_id}").json()
    assert detail["session"]["current_message_id"] == r2c
    assert detail["session"]["message_count"] == 7  # every stored message, of every branch
    # The branch through a message goes down to the newest message below it.
    assert [m for m, _ in branch_of(client, session_id, message_id=q2)] == [q1, r1, q2, r2]
    assert [m for m, _ in branch_of(client, session_id, message_id=q1)] == [q1, r1, q2b, r2c]
    assert [m for m, _ in branch_of(client, session_id, message_id=r2b)] == [q1, r1, q2b, r2b]


def test_a_branch_reads_the_same_whether_it_holds_most_of_its_session_or_little_of_it(
    client: TestClient[Litestar],
) -> None:
    # Most of the session is read with the whole session; a small part of it up its parents.
    session_id = new_session(client)
    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2], r2 = started(turn(client, session_id, "q2"))
    assert branch_of(client, session_id) == [(q1, [q1]), (r1, [r1]), (q2, [q2]), (r2, [r2])]

    again = [regenerate(client, session_id, message_id=r1)[0].data["assistant_message_id"] for _ in range(6)]

    # Two of the ten messages, then four.
    assert branch_of(client, session_id) == [(q1, [q1]), (again[-1], [r1, *again])]
    assert branch_of(client, session_id, message_id=q2) == [
        (q1, [q1]),
        (r1, [r1, *again]),
        (q2, [q2]),
        (r2, [r2]),
    ]


def test_first_messages_are_siblings_of_each_other(client: TestClient[Litestar]) -> None:
    session_id = new_session(client)
    [q1], _ = started(turn(client, session_id, "q1"))
    [other], reply_id = started(turn(client, session_id, "another start", parent_id=None))

    assert branch_of(client, session_id) == [(other, [q1, other]), (reply_id, [reply_id])]


@pytest.mark.parametrize("message_id", [UNKNOWN_ID, "not an id"])
def test_reading_the_branch_of_what_is_not_a_message_of_the_session_is_400(
    client: TestClient[Litestar], message_id: str
) -> None:
    session_id = new_session(client)
    turn(client, session_id, "q1")

    response = client.get(f"/api/sessions/{session_id}", params={"message_id": message_id})

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("message_id:")


def test_switching_branches_moves_the_current_message_to_the_newest_below(
    client: TestClient[Litestar], answers: ScriptedResponder, db: DatabaseView
) -> None:
    session_id = new_session(client)
    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2], r2 = started(turn(client, session_id, "q2"))
    [q2b], r2b = started(turn(client, session_id, "q2 edited", parent_id=r1))

    response = client.patch(f"/api/sessions/{session_id}", json={"current_message_id": q2})

    assert response.status_code == 200, response.text
    assert response.json()["current_message_id"] == r2
    assert current(db, session_id) == r2
    assert [m for m, _ in branch_of(client, session_id)] == [q1, r1, q2, r2]
    # A turn now follows the branch switched to, and its model sees that branch.
    [q3], _ = started(turn(client, session_id, "q3"))
    assert tree(db, session_id)[q3] == r2
    assert [c for _, c in history(client, answers)] == ["q1", "an answer", "q2", "an answer", "q3"]
    # A leaf is taken as it is; a reload shows the same branch.
    client.patch(f"/api/sessions/{session_id}", json={"current_message_id": r2b})
    assert [m for m, _ in branch_of(client, session_id)] == [q1, r1, q2b, r2b]
    assert [m for m, _ in branch_of(client, session_id)] == [q1, r1, q2b, r2b]


@pytest.mark.parametrize("value", [UNKNOWN_ID, "not an id", None, 3])
def test_switching_to_what_is_not_a_message_of_the_session_is_400(
    client: TestClient[Litestar], db: DatabaseView, value: Any
) -> None:
    session_id = new_session(client)
    [_], reply_id = started(turn(client, session_id, "q1"))

    response = client.patch(f"/api/sessions/{session_id}", json={"current_message_id": value})

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("current_message_id")
    assert current(db, session_id) == reply_id


def test_switching_branches_of_an_unknown_session_is_404(client: TestClient[Litestar]) -> None:
    session_id = new_session(client)
    [q1], _ = started(turn(client, session_id, "q1"))

    response = client.patch(f"/api/sessions/{UNKNOWN_ID}", json={"current_message_id": q1})

    assert response.status_code == 404


# --- Paging along a branch ------------------------------------------------------------------------


def pages(
    client: TestClient[Litestar], session_id: str, between: Any = None, **params: Any
) -> list[list[dict[str, Any]]]:
    """Every page of ``/messages`` with ``params``; ``between()`` runs after each page."""
    found, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/api/sessions/{session_id}/messages", params=query)
        assert response.status_code == 200, response.text
        found.append(response.json())
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            return found
        if between is not None:
            between()


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_paging_along_a_branch_in_both_directions_while_other_branches_grow(
    client: TestClient[Litestar], direction: str
) -> None:
    session_id = new_session(client)
    [_], r1 = started(turn(client, session_id, "q1"))
    for n in range(2, 6):
        turn(client, session_id, f"q{n}")
    main = [m for m, _ in branch_of(client, session_id)]
    turn(client, session_id, "side", parent_id=r1)  # another branch, now current
    client.patch(f"/api/sessions/{session_id}", json={"current_message_id": main[-1]})

    def grow_the_other_branch() -> None:
        turn(client, session_id, "side again", parent_id=r1)
        client.patch(f"/api/sessions/{session_id}", json={"current_message_id": main[-1]})

    found = pages(client, session_id, grow_the_other_branch, branch="current", limit=3, direction=direction)

    ids = [[m["id"] for m in page] for page in found]
    if direction == "backward":
        assert ids == [main[7:], main[4:7], main[1:4], main[:1]]  # each page root first
    else:
        assert ids == [main[:3], main[3:6], main[6:9], main[9:]]
    siblings = {m["id"]: m["sibling_ids"] for page in found for m in page}
    assert siblings[main[2]][0] == main[2] and len(siblings[main[2]]) >= 2  # q2 beside "side", and more
    assert siblings[main[0]] == [main[0]]


def test_paging_along_the_branch_through_a_message(client: TestClient[Litestar]) -> None:
    session_id = new_session(client)
    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2], r2 = started(turn(client, session_id, "q2"))
    turn(client, session_id, "q2 edited", parent_id=r1)

    found = pages(client, session_id, branch=q2, limit=10, direction="backward")

    assert [[m["id"] for m in page] for page in found] == [[q1, r1, q2, r2]]


@pytest.mark.parametrize("branch", [UNKNOWN_ID, "newest"])
def test_paging_along_what_is_not_a_branch_is_400(client: TestClient[Litestar], branch: str) -> None:
    session_id = new_session(client)
    turn(client, session_id, "q1")

    response = client.get(f"/api/sessions/{session_id}/messages", params={"branch": branch})

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("branch:")


def test_paging_along_the_current_branch_of_an_empty_session_is_one_empty_page(
    client: TestClient[Litestar],
) -> None:
    session_id = new_session(client)

    assert pages(client, session_id, branch="current") == [[]]


# --- Deleting a message and what follows it -------------------------------------------------------


def message_count(client: TestClient[Litestar], session_id: str) -> int:
    return int(client.get(f"/api/sessions/{session_id}").json()["session"]["message_count"])


def test_deleting_a_message_deletes_what_follows_it_and_moves_the_current_branch(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = new_session(client)
    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2], _ = started(turn(client, session_id, "q2"))
    [_], r3 = started(turn(client, session_id, "q3"))
    r3b = regenerate(client, session_id)[0].data["assistant_message_id"]
    [q2b], r2b = started(turn(client, session_id, "q2 edited", parent_id=r1))
    client.patch(f"/api/sessions/{session_id}", json={"current_message_id": r3b})

    response = client.delete(f"/api/messages/{q2}")

    assert response.status_code == 204, response.text
    assert tree(db, session_id) == {q1: None, r1: q1, q2b: r1, r2b: q2b}  # in the database itself
    assert current(db, session_id) == r1  # the current branch went through q2: its parent
    assert message_count(client, session_id) == 4
    assert [m for m, _ in branch_of(client, session_id)] == [q1, r1]
    assert client.delete(f"/api/messages/{q2}").status_code == 404
    assert client.delete(f"/api/messages/{r3}").status_code == 404


def test_deleting_a_message_off_the_current_branch_keeps_the_current_message(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = new_session(client)
    [_], r1 = started(turn(client, session_id, "q1"))
    [q2], _ = started(turn(client, session_id, "q2"))
    [_], r2b = started(turn(client, session_id, "q2 edited", parent_id=r1))

    assert client.delete(f"/api/messages/{q2}").status_code == 204

    assert current(db, session_id) == r2b
    assert message_count(client, session_id) == 4
    # Seqs are not reused: the next message comes after every one stored so far.
    [q3], _ = started(turn(client, session_id, "q3"))
    assert db.scalar("SELECT seq FROM messages WHERE id = :id", id=q3) == 7


def test_deleting_a_first_message_empties_the_current_branch(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = new_session(client)
    [q1], _ = started(turn(client, session_id, "q1"))

    assert client.delete(f"/api/messages/{q1}").status_code == 204

    assert tree(db, session_id) == {}
    assert current(db, session_id) is None
    assert client.get(f"/api/sessions/{session_id}").json()["messages"] == []
    turn(client, session_id, "again")  # a new first message


@pytest.mark.parametrize("message_id", [UNKNOWN_ID, "not-an-id"])
def test_deleting_an_unknown_message_is_404(client: TestClient[Litestar], message_id: str) -> None:
    assert client.delete(f"/api/messages/{message_id}").status_code == 404


def test_a_branch_deeper_than_sqlites_trigger_limit_is_deleted_whole(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    session_id = new_session(client)
    [q1], _ = started(turn(client, session_id, "q1"))
    depth = 1200  # SQLite nests a cascade as triggers, at most 1000 deep
    ids = [f"0c0c0c0c-0000-4000-8000-{n:012d}" for n in range(depth)]
    rows = [
        {
            "id": ids[n],
            "parent": ids[n - 1] if n else q1,
            "seq": n + 3,
            "s": session_id,
            "t": "2026-01-01 00:00:00+00:00",
        }
        for n in range(depth)
    ]
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO messages (id, session_id, parent_id, seq, role, content, status, created_at, "
                "updated_at, stop_requested) "
                "VALUES (:id, :s, :parent, :seq, 'user', 'deep', 'complete', :t, :t, :false)"
            ),
            [{**row, "false": False} for row in rows],
        )
        connection.execute(
            text(
                "UPDATE sessions SET last_seq = :n, message_count = :n, current_message_id = :leaf "
                "WHERE id = :s"
            ),
            {"n": depth + 2, "leaf": ids[-1], "s": session_id},
        )

    assert client.delete(f"/api/messages/{q1}").status_code == 204

    assert db.scalar("SELECT count(*) FROM messages WHERE session_id = :s", s=session_id) == 0
    assert message_count(client, session_id) == 0


def test_a_reply_streaming_below_a_deleted_message_stops_and_says_why(
    make_client: ClientFactory, db: DatabaseView
) -> None:
    slow = ScriptedResponder(["word "] * 400, delay_s=0.01)
    with make_client(slow) as client:
        session_id = new_session(client)
        body = {"session_id": session_id, "messages": [{"role": "user", "content": "q"}]}
        deleted: list[int] = []

        async def delete_the_question(chunk: bytes) -> bool:
            if not deleted and b"event: start" in chunk:
                question = parse_sse(chunk.decode())[0].data["message_ids"][0]
                deleted.append((await call_asgi(client.app, "DELETE", f"/api/messages/{question}"))[0])
            return False  # stay connected, to the end of the stream

        async def chat() -> bytes:
            return (await call_asgi(client.app, "POST", "/api/chat", body, on_body=delete_the_question))[1]

        raw = client.blocking_portal.call(chat)

    assert deleted == [204]
    events = parse_sse(raw.decode())
    assert events[-1].event == "error"
    assert events[-1].data == {"detail": MESSAGE_DELETED}
    assert slow.produced < 400
    assert tree(db, session_id) == {}


# --- Forking --------------------------------------------------------------------------------------


def test_a_fork_copies_the_branch_ending_at_a_message_into_a_new_session(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    response = client.post("/api/sessions", json={"name": "Trip", "metadata": {"topic": "travel"}})
    session_id = response.json()["id"]
    [q1], r1 = started(turn(client, session_id, "q1"))
    [q2], r2 = started(turn(client, session_id, "q2"))
    turn(client, session_id, "q2 edited", parent_id=r1)
    before = tree(db, session_id)

    response = client.post(f"/api/sessions/{session_id}/fork", json={"message_id": r2})

    assert response.status_code == 201, response.text
    fork = response.json()
    assert response.headers["location"] == f"/api/sessions/{fork['id']}"
    assert fork["id"] != session_id
    assert (fork["name"], fork["metadata"], fork["message_count"]) == ("Trip", {"topic": "travel"}, 4)
    assert fork["forked_from"] == {"session_id": session_id, "message_id": r2}
    original = {m["id"]: m for m in db.rows("SELECT * FROM messages WHERE session_id = :s", s=session_id)}
    copies = db.rows("SELECT * FROM messages WHERE session_id = :s ORDER BY seq", s=fork["id"])
    assert [m["seq"] for m in copies] == [1, 2, 3, 4]
    assert not {m["id"] for m in copies} & set(original)
    same = ("role", "content", "status", "created_at", "finish_reason", "error")
    assert [tuple(m[k] for k in same) for m in copies] == [
        tuple(original[i][k] for k in same) for i in (q1, r1, q2, r2)
    ]
    assert tree(db, fork["id"]) == dict(
        zip([m["id"] for m in copies], [None, *[m["id"] for m in copies[:-1]]], strict=True)
    )
    assert current(db, fork["id"]) == copies[-1]["id"]
    assert tree(db, session_id) == before  # the original is as it was
    detail = client.get(f"/api/sessions/{fork['id']}").json()
    assert detail["session"]["forked_from"] == {"session_id": session_id, "message_id": r2}
    assert [m["content"] for m in detail["messages"]] == ["q1", "an answer", "q2", "an answer"]


def test_a_fork_may_be_named(client: TestClient[Litestar]) -> None:
    session_id = new_session(client)
    [q1], _ = started(turn(client, session_id, "q1"))

    fork = client.post(f"/api/sessions/{session_id}/fork", json={"message_id": q1, "name": "Other"}).json()

    assert fork["name"] == "Other"
    assert [m["content"] for m in client.get(f"/api/sessions/{fork['id']}").json()["messages"]] == ["q1"]


@pytest.mark.parametrize("message_id", [UNKNOWN_ID, "x"])
def test_forking_at_what_is_not_a_message_of_the_session_is_400(
    client: TestClient[Litestar], message_id: str
) -> None:
    session_id = new_session(client)
    turn(client, session_id, "q1")

    response = client.post(f"/api/sessions/{session_id}/fork", json={"message_id": message_id})

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("message_id:")
    assert len(client.get("/api/sessions").json()) == 1


def test_forking_an_unknown_session_is_404(client: TestClient[Litestar]) -> None:
    response = client.post(f"/api/sessions/{UNKNOWN_ID}/fork", json={"message_id": UNKNOWN_ID})
    assert response.status_code == 404


def test_export_then_import_reproduces_the_tree(client: TestClient[Litestar], db: DatabaseView) -> None:
    session_id = new_session(client)
    [_], r1 = started(turn(client, session_id, "q1"))
    [_], r2 = started(turn(client, session_id, "q2"))
    regenerate(client, session_id)
    turn(client, session_id, "q2 edited", parent_id=r1)
    turn(client, session_id, "another start", parent_id=None)
    client.patch(f"/api/sessions/{session_id}", json={"current_message_id": r2})
    exported = client.get(f"/api/sessions/{session_id}/export").json()

    imported = client.post("/api/sessions/import", json=exported).json()["id"]

    def shape(session: str) -> list[tuple[str, int | None, bool]]:
        """Each message's content, its parent's seq, and whether it is current: the tree without ids."""
        rows = db.rows(
            "SELECT m.content, p.seq AS parent_seq, s.current_message_id = m.id AS is_current "
            "FROM messages AS m LEFT JOIN messages AS p ON p.id = m.parent_id "
            "JOIN sessions AS s ON s.id = m.session_id WHERE m.session_id = :s ORDER BY m.seq",
            s=session,
        )
        return [(row["content"], row["parent_seq"], bool(row["is_current"])) for row in rows]

    assert shape(imported) == shape(session_id)
    assert [m["content"] for m in client.get(f"/api/sessions/{imported}").json()["messages"]] == [
        "q1",
        "an answer",
        "q2",
        "an answer",
    ]
    markdown = client.get(f"/api/sessions/{session_id}/export?format=markdown").text
    assert "q2" in markdown and "q2 edited" not in markdown and "another start" not in markdown


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"parent_id": "nowhere"}, "messages[1].parent_id"),
        ({"id": "m0"}, "messages[1].id"),
    ],
)
def test_an_export_whose_tree_does_not_hold_together_is_400(
    client: TestClient[Litestar], change: dict[str, str], field: str
) -> None:
    session_id = new_session(client)
    turn(client, session_id, "q1")
    exported = client.get(f"/api/sessions/{session_id}/export").json()
    exported["messages"][0]["id"] = "m0"
    exported["messages"][1]["parent_id"] = "m0"
    exported["messages"][1].update(change)

    response = client.post("/api/sessions/import", json=exported)

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}:")
    assert len(client.get("/api/sessions").json()) == 1
