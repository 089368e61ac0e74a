"""Owners: two users and an operator against every endpoint; nobody reads another's chats.

The callers are a backend holding a service key: with ``X-Chatstore-User`` it acts as that user,
without it as an operator. (Tokens resolve to the same ``Caller``; ``test_tokens.py`` covers them.)
Another user's session or message answers exactly as an unknown one, and changes nothing.
"""

import random
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.__main__ import main
from tests.conftest import ClientFactory
from tests.helpers import DatabaseView, ScriptedResponder, assert_search_index_whole, parse_sse

KEY = "owners-service-key-0123456789"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
OPERATOR = {"Authorization": f"Bearer {KEY}"}


def user(name: str) -> dict[str, str]:
    return {**OPERATOR, "X-Chatstore-User": name}


ALICE, BOB = user("alice"), user("bob")


@pytest.fixture
def client(make_client: ClientFactory) -> Iterator[TestClient[Litestar]]:
    with make_client(ScriptedResponder(["an ", "answer"]), api_key=KEY) as client:
        yield client


def create(client: TestClient[Litestar], headers: dict[str, str], **body: Any) -> str:
    response = client.post("/api/sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def chat(
    client: TestClient[Litestar], headers: dict[str, str], session_id: str, content: str
) -> dict[str, Any]:
    response = client.post(
        "/api/chat",
        json={"session_id": session_id, "messages": [{"role": "user", "content": content}]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    assert events[-1].event == "done", events
    return dict(events[0].data)


def stored(db: DatabaseView) -> dict[str, Any]:
    """Every row that matters, to show that a refused request changed nothing."""
    return {
        "sessions": db.rows(
            "SELECT id, owner, name, metadata, current_message_id, message_count, last_seq FROM sessions "
            "ORDER BY id"
        ),
        "messages": db.rows(
            "SELECT id, session_id, parent_id, content, status, stop_requested FROM messages ORDER BY id"
        ),
    }


def owners(db: DatabaseView) -> dict[str, str | None]:
    return {row["id"]: row["owner"] for row in db.rows("SELECT id, owner FROM sessions")}


# (method, path, body): every endpoint that names a session or a message. {s} is the session,
# {m} its first (user) message, {r} the reply.
ENDPOINTS = [
    ("GET", "/api/sessions/{s}", None),
    ("GET", "/api/sessions/{s}?message_id={m}", None),
    ("GET", "/api/sessions/{s}/messages", None),
    ("GET", "/api/sessions/{s}/messages?direction=backward", None),
    ("GET", "/api/sessions/{s}/messages?branch=current", None),
    ("GET", "/api/sessions/{s}/messages?branch={m}", None),
    ("GET", "/api/sessions/{s}/export", None),
    ("GET", "/api/sessions/{s}/export?format=markdown", None),
    ("PATCH", "/api/sessions/{s}", {"name": "taken over"}),
    ("PATCH", "/api/sessions/{s}", {"metadata": {"stolen": True}}),
    ("PATCH", "/api/sessions/{s}", {"current_message_id": "{m}"}),
    ("POST", "/api/sessions/{s}/fork", {"message_id": "{r}"}),
    ("POST", "/api/sessions/{s}/regenerate", None),
    ("POST", "/api/sessions/{s}/regenerate", {"message_id": "{r}"}),
    ("POST", "/api/chat", {"session_id": "{s}", "messages": [{"role": "user", "content": "hijack"}]}),
    ("GET", "/api/messages/{r}/stream", None),
    ("GET", "/api/messages/{r}/stream?last_event_id=0", None),
    ("POST", "/api/messages/{r}/stop", None),
    ("DELETE", "/api/messages/{m}", None),
    ("DELETE", "/api/messages/{r}", None),
    ("DELETE", "/api/sessions/{s}", None),
]


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, id_ in ids.items():
            value = value.replace("{" + name + "}", id_)
        return value
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, ids) for item in value]
    return value


def call(
    client: TestClient[Litestar], headers: dict[str, str], endpoint: tuple[str, str, Any], ids: dict[str, str]
) -> Any:
    method, path, body = endpoint
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = fill(body, ids)
    return client.request(method, fill(path, ids), **kwargs)


@pytest.fixture
def alices(client: TestClient[Litestar]) -> dict[str, str]:
    """Alice's session with one turn: the ids the endpoints name."""
    session_id = create(client, ALICE, name="Alice's plans", metadata={"topic": "secret"})
    started = chat(client, ALICE, session_id, "alice's zanzibar itinerary")
    return {"s": session_id, "m": started["message_ids"][0], "r": started["assistant_message_id"]}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_another_users_session_or_message_answers_as_an_unknown_one_and_changes_nothing(
    client: TestClient[Litestar], db: DatabaseView, alices: dict[str, str], endpoint: tuple[str, str, Any]
) -> None:
    create(client, BOB, name="Bob's own")
    before = stored(db)

    as_bob = call(client, BOB, endpoint, alices)
    # The same request naming ids that exist nowhere.
    unknown = call(client, BOB, endpoint, dict.fromkeys(alices, UNKNOWN_ID))

    assert as_bob.status_code == unknown.status_code == 404, (as_bob.text, unknown.text)
    assert as_bob.headers.get("content-type") == unknown.headers.get("content-type")
    anonymised = as_bob.text
    for id_ in alices.values():
        anonymised = anonymised.replace(id_, UNKNOWN_ID)
    assert anonymised == unknown.text
    assert stored(db) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize("caller", ["owner", "operator"])
def test_the_owner_and_an_operator_reach_every_endpoint(
    client: TestClient[Litestar],
    db: DatabaseView,
    alices: dict[str, str],
    endpoint: tuple[str, str, Any],
    caller: str,
) -> None:
    response = call(client, ALICE if caller == "owner" else OPERATOR, endpoint, alices)

    assert response.status_code in (200, 201, 204), response.text
    method, path, _ = endpoint
    remaining = owners(db)
    if path.endswith("/fork"):  # a fork is the caller's: an operator's has no owner
        assert remaining[response.json()["id"]] == ("alice" if caller == "owner" else None)
    if method == "DELETE" and path.startswith("/api/sessions/"):
        assert alices["s"] not in remaining
    else:  # whoever wrote to it, Alice's session stays hers
        assert remaining[alices["s"]] == "alice"


def test_lists_hold_the_callers_sessions_and_an_operator_sees_all_or_filters_by_owner(
    client: TestClient[Litestar], db: DatabaseView
) -> None:
    alice_ids = {create(client, ALICE, name=f"alice {i}") for i in range(3)}
    bob_ids = {create(client, BOB, name=f"bob {i}") for i in range(2)}
    unowned = create(client, OPERATOR, name="before users")

    def listed(headers: dict[str, str], query: str = "") -> set[str]:
        ids = set()
        for order in ("created", "activity"):
            # Pages of one, so that the cursors are followed too.
            url = f"/api/sessions?limit=1&order={order}{query}"
            while url:
                response = client.get(url, headers=headers)
                assert response.status_code == 200, response.text
                ids |= {session["id"] for session in response.json()}
                cursor = response.headers.get("x-next-cursor")
                url = f"/api/sessions?limit=1&order={order}{query}&cursor={cursor}" if cursor else ""
        return ids

    assert listed(ALICE) == alice_ids
    assert listed(BOB) == bob_ids
    assert listed(OPERATOR) == alice_ids | bob_ids | {unowned}
    assert listed(OPERATOR, "&owner=alice") == alice_ids
    assert listed(OPERATOR, "&owner=nobody") == set()
    assert {s["owner"] for s in client.get("/api/sessions", headers=ALICE).json()} == {"alice"}
    assert owners(db) == {**dict.fromkeys(alice_ids, "alice"), **dict.fromkeys(bob_ids, "bob"), unowned: None}
    # The session stored without an owner is the operator's alone.
    assert client.get(f"/api/sessions/{unowned}", headers=ALICE).status_code == 404
    assert client.get(f"/api/sessions/{unowned}", headers=OPERATOR).status_code == 200


def test_a_users_owner_filter_narrows_their_own_sessions_only(
    client: TestClient[Litestar], alices: dict[str, str]
) -> None:
    bobs = create(client, BOB)
    chat(client, BOB, bobs, "bob's zanzibar budget")

    def listed(headers: dict[str, str], owner: str) -> tuple[set[str], set[str]]:
        sessions = client.get(f"/api/sessions?owner={owner}", headers=headers)
        found = client.get(f"/api/search?q=zanzibar&owner={owner}", headers=headers)
        assert sessions.status_code == found.status_code == 200, (sessions.text, found.text)
        return {s["id"] for s in sessions.json()}, {hit["session_id"] for hit in found.json()["results"]}

    assert listed(BOB, "bob") == ({bobs}, {bobs})
    assert listed(BOB, "alice") == (set(), set())  # naming another owner shows nothing of theirs
    assert listed(OPERATOR, "alice") == ({alices["s"]}, {alices["s"]})
    response = client.get("/api/sessions?owner=%20", headers=OPERATOR)
    assert response.status_code == 400, response.text
    assert response.json()["extra"][0]["key"] == "owner"


def test_search_finds_the_callers_messages_only(client: TestClient[Litestar], alices: dict[str, str]) -> None:
    bobs = create(client, BOB)
    chat(client, BOB, bobs, "bob's zanzibar budget")

    def hits(headers: dict[str, str], query: str) -> set[str]:
        response = client.get(f"/api/search?q={query}", headers=headers)
        assert response.status_code == 200, response.text
        return {hit["session_id"] for hit in response.json()["results"]}

    assert hits(ALICE, "zanzibar") == {alices["s"]}
    assert hits(BOB, "zanzibar") == {bobs}
    assert hits(BOB, "itinerary") == set()
    assert hits(OPERATOR, "zanzibar") == {alices["s"], bobs}
    assert hits(OPERATOR, "zanzibar&owner=bob") == {bobs}


def searched(
    client: TestClient[Litestar], headers: dict[str, str], q: str, owner: str | None = None
) -> list[str]:
    """The ids of every hit, page by page (pages of two, so that the cursors are followed too)."""
    params = {"q": q, "limit": "2", **({"owner": owner} if owner else {})}
    found: list[str] = []
    while True:
        response = client.get("/api/search", params=params, headers=headers)
        assert response.status_code == 200, response.text
        found += [hit["message_id"] for hit in response.json()["results"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found
        params["cursor"] = cursor


def test_a_users_search_holds_exactly_their_matches_on_every_page(
    client: TestClient[Litestar], backend: str, db: DatabaseView
) -> None:
    callers = {"alice": ALICE, "bob": BOB, "carol": user("carol"), None: OPERATOR}
    theirs: dict[str | None, set[str]] = {name: set() for name in callers}
    for round_ in range(3):
        for name, headers in callers.items():
            session_id = create(client, headers)
            started = chat(client, headers, session_id, f"zanzibar trip {round_} of {name}")
            theirs[name].add(started["message_ids"][0])
            chat(client, headers, session_id, "something else")

    everyone = set().union(*theirs.values())
    for name in ("alice", "bob", "carol"):
        found = searched(client, callers[name], "zanzibar")
        assert len(found) == len(set(found)) and set(found) == theirs[name], name
        assert set(searched(client, OPERATOR, "zanzibar", owner=name)) == theirs[name]
        assert set(searched(client, callers[name], "zanzibar or trip -else", owner=name)) == set(found)
    assert sorted(searched(client, OPERATOR, "zanzibar")) == sorted(everyone)
    assert searched(client, OPERATOR, "zanzibar", owner="dan") == []
    if backend == "sqlite":
        assert_search_index_whole(db)


def test_an_owners_key_in_the_index_is_never_a_users_word(
    client: TestClient[Litestar], alices: dict[str, str]
) -> None:
    # The SQLite index holds each message's owner as the hex of its id: a query for that hex finds
    # only the messages that say it.
    alice_in_hex = b"alice".hex()
    assert searched(client, ALICE, alice_in_hex) == []
    assert searched(client, OPERATOR, alice_in_hex) == []
    assert searched(client, OPERATOR, f"zanzibar {alice_in_hex}") == []
    said = chat(client, ALICE, alices["s"], f"my key is {alice_in_hex}")["message_ids"]
    assert searched(client, ALICE, alice_in_hex) == said
    assert searched(client, OPERATOR, alice_in_hex) == said
    assert searched(client, BOB, alice_in_hex) == []


def test_the_index_follows_every_write_to_an_owners_messages(
    client: TestClient[Litestar], backend: str, db: DatabaseView
) -> None:
    def check() -> None:
        if backend == "sqlite":
            assert_search_index_whole(db)

    session_id = create(client, ALICE)
    started = chat(client, ALICE, session_id, "a question about the okapi")
    question, reply = started["message_ids"][0], started["assistant_message_id"]
    check()
    # The reply is stored empty and its text written when it ends: an update of its content.
    assert searched(client, ALICE, "okapi") == [question]
    assert searched(client, ALICE, "answer") == [reply]
    assert searched(client, BOB, "answer") == []
    check()
    assert client.delete(f"/api/messages/{reply}", headers=ALICE).status_code == 204
    assert searched(client, ALICE, "answer") == []
    check()
    other = create(client, ALICE)
    kept = chat(client, ALICE, other, "the okapi again")["message_ids"]
    assert client.delete(f"/api/sessions/{session_id}", headers=ALICE).status_code == 204
    assert searched(client, ALICE, "okapi") == kept
    check()


def test_a_cursor_naming_another_users_hit_reveals_nothing(
    client: TestClient[Litestar], alices: dict[str, str]
) -> None:
    bobs = create(client, BOB)
    for n in range(3):
        chat(client, BOB, bobs, f"zanzibar note {n}")
    first = client.get("/api/search?q=zanzibar&limit=1", headers=BOB)
    cursor = first.headers["x-next-cursor"]
    rest = client.get(f"/api/search?q=zanzibar&limit=10&cursor={cursor}", headers=BOB).json()["results"]
    assert {hit["session_id"] for hit in rest} == {bobs}
    assert len(rest) == 2


def test_import_and_fork_belong_to_the_caller(
    client: TestClient[Litestar], db: DatabaseView, alices: dict[str, str]
) -> None:
    export = client.get(f"/api/sessions/{alices['s']}/export", headers=ALICE).json()
    assert "owner" not in export["session"]

    imported = client.post("/api/sessions/import", json=export, headers=BOB)
    assert imported.status_code == 201, imported.text
    assert imported.json()["owner"] == "bob"
    forked = client.post(f"/api/sessions/{alices['s']}/fork", json={"message_id": alices["r"]}, headers=ALICE)
    assert forked.status_code == 201, forked.text

    assert owners(db)[imported.json()["id"]] == "bob"
    assert owners(db)[forked.json()["id"]] == "alice"
    assert client.get(f"/api/sessions/{imported.json()['id']}", headers=ALICE).status_code == 404


def test_a_user_never_changes_the_owner(
    client: TestClient[Litestar], db: DatabaseView, alices: dict[str, str]
) -> None:
    before = stored(db)
    for body in ({"owner": "bob"}, {"name": "x", "owner": None}):
        response = client.patch(f"/api/sessions/{alices['s']}", json=body, headers=ALICE)
        assert response.status_code == 400, response.text
        assert "unknown field `owner`" in response.json()["detail"]
    created = client.post("/api/sessions", json={"owner": "bob"}, headers=ALICE)
    assert created.status_code == 400, created.text
    assert stored(db) == before


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must name a user"),
        ("   ", "must name a user"),
        ("a\x7fb", "no control characters"),
        ("x" * 201, "at most 200 characters, got 201"),
    ],
)
def test_an_unusable_user_header_gets_400_naming_it(
    client: TestClient[Litestar], db: DatabaseView, value: str, problem: str
) -> None:
    response = client.post("/api/sessions", headers={**OPERATOR, "X-Chatstore-User": value})
    assert response.status_code == 400, response.text
    [extra] = response.json()["extra"]
    assert (extra["key"], extra["source"]) == ("X-Chatstore-User", "header")
    assert problem in extra["message"]
    assert db.scalar("SELECT count(*) FROM sessions") == 0


def test_in_open_mode_the_user_header_is_refused_rather_than_ignored(
    make_client: ClientFactory, db: DatabaseView
) -> None:
    with make_client() as client:
        response = client.post("/api/sessions", headers={"X-Chatstore-User": "alice"})
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == "X-Chatstore-User: takes effect only with a service key"
        assert client.post("/api/sessions").json()["owner"] is None
    assert db.rows("SELECT owner FROM sessions") == [{"owner": None}]


def test_without_a_key_the_user_header_proves_nothing(client: TestClient[Litestar], db: DatabaseView) -> None:
    response = client.post("/api/sessions", headers={"X-Chatstore-User": "alice"})
    assert response.status_code == 401, response.text
    wrong = client.post(
        "/api/sessions", headers={"Authorization": "Bearer not-the-key", "X-Chatstore-User": "a"}
    )
    assert wrong.status_code == 401, wrong.text
    assert db.scalar("SELECT count(*) FROM sessions") == 0


# --- Two users at random ----------------------------------------------------------------------------


def test_two_users_interleaved_at_random_never_see_each_other(
    client: TestClient[Litestar], backend: str, db: DatabaseView
) -> None:
    """Random operations by Alice and Bob; after each, neither's lists, reads, exports or searches
    hold an id or a word of the other's."""
    rng = random.Random(16)
    callers = {"alice": ALICE, "bob": BOB}
    mine: dict[str, dict[str, set[str]]] = {name: {"sessions": set(), "messages": set()} for name in callers}

    def word(name: str) -> str:
        return f"{name}word{rng.randrange(5)}"

    for _step in range(40):
        name = rng.choice(sorted(callers))
        headers, own = callers[name], mine[name]
        action = rng.choice(["create", "chat", "chat", "rename", "fork", "delete", "delete_message"])
        if action == "create" or not own["sessions"]:
            own["sessions"].add(create(client, headers, name=word(name)))
        elif action == "chat":
            started = chat(client, headers, rng.choice(sorted(own["sessions"])), f"about {word(name)}")
            own["messages"] |= {*started["message_ids"], started["assistant_message_id"]}
        elif action == "rename":
            session_id = rng.choice(sorted(own["sessions"]))
            response = client.patch(f"/api/sessions/{session_id}", json={"name": word(name)}, headers=headers)
            assert response.status_code == 200, response.text
        elif action == "fork":
            session_id = rng.choice(sorted(own["sessions"]))
            detail = client.get(f"/api/sessions/{session_id}", headers=headers).json()
            if detail["messages"]:
                response = client.post(
                    f"/api/sessions/{session_id}/fork",
                    json={"message_id": detail["messages"][-1]["id"]},
                    headers=headers,
                )
                assert response.status_code == 201, response.text
                own["sessions"].add(response.json()["id"])
        elif action == "delete":
            session_id = rng.choice(sorted(own["sessions"]))
            assert client.delete(f"/api/sessions/{session_id}", headers=headers).status_code == 204
            own["sessions"].discard(session_id)
        else:
            detail = client.get(
                f"/api/sessions/{rng.choice(sorted(own['sessions']))}", headers=headers
            ).json()
            if detail["messages"]:
                doomed = detail["messages"][-1]["id"]
                assert client.delete(f"/api/messages/{doomed}", headers=headers).status_code == 204

        for viewer, viewer_headers in callers.items():
            other = "bob" if viewer == "alice" else "alice"
            theirs = mine[other]
            listed = client.get("/api/sessions?limit=1000", headers=viewer_headers).json()
            assert {s["id"] for s in listed} == mine[viewer]["sessions"]
            assert other not in str(listed)
            for session_id in mine[viewer]["sessions"]:
                export = client.get(f"/api/sessions/{session_id}/export", headers=viewer_headers).text
                assert other + "word" not in export
                assert not any(id_ in export for id_ in theirs["messages"] | theirs["sessions"])
            found = client.get(f"/api/search?q={other}word0 or {other}word1 or about", headers=viewer_headers)
            assert found.status_code == 200, found.text
            assert {hit["session_id"] for hit in found.json()["results"]} <= mine[viewer]["sessions"]
            assert other + "word" not in found.text
            for session_id in sorted(theirs["sessions"])[:3]:
                assert client.get(f"/api/sessions/{session_id}", headers=viewer_headers).status_code == 404
    stored_owners = owners(db)
    for name, own in mine.items():
        assert {stored_owners[s] for s in own["sessions"]} <= {name}
    if backend == "sqlite":  # after forks and deletes of messages and sessions
        assert_search_index_whole(db)


# --- python -m chatstore db set-owner -------------------------------------------------------------


def set_owner_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str, *args: str
) -> tuple[Any, str, str]:
    monkeypatch.setenv("CHATSTORE_DATABASE_URL", database_url)
    capsys.readouterr()  # what came before: the app's own logs
    with pytest.raises(SystemExit) as exited:
        main(["db", "set-owner", *args])
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_db_set_owner_gives_sessions_without_an_owner_to_a_user(
    make_client: ClientFactory,
    backend: str,
    db: DatabaseView,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with make_client(api_key=KEY) as client:
        before_users = [create(client, OPERATOR, name=f"open mode {n}") for n in range(2)]
        alices = create(client, ALICE)
        # The mock's reply repeats the question: both hold the word.
        turns = [chat(client, OPERATOR, s, "the quokka") for s in before_users]
        unowned_words = [id_ for t in turns for id_ in [*t["message_ids"], t["assistant_message_id"]]]
        alices_turn = chat(client, ALICE, alices, "alice's quokka")
        alices_words = [*alices_turn["message_ids"], alices_turn["assistant_message_id"]]
        assert searched(client, user("carol"), "quokka") == []

    status, out, _ = set_owner_command(monkeypatch, capsys, database_url, "--owner", "carol", "--unowned")
    assert (status, out) == (0, "2 sessions without an owner now belong to 'carol'\n")
    assert owners(db) == {before_users[0]: "carol", before_users[1]: "carol", alices: "alice"}

    status, out, _ = set_owner_command(
        monkeypatch, capsys, database_url, "--owner", "dan", "--session", alices
    )
    assert (status, out) == (0, f"session {alices} now belongs to 'dan'\n")
    status, out, err = set_owner_command(
        monkeypatch, capsys, database_url, "--owner", "dan", "--session", "nope"
    )
    assert (status, out) == (2, "")
    assert err.endswith("chatstore: no session has the id 'nope': nothing was changed\n")
    status, _, err = set_owner_command(monkeypatch, capsys, database_url, "--owner", " ", "--unowned")
    assert status == 2
    assert "--owner must name a user" in err
    assert owners(db) == {before_users[0]: "carol", before_users[1]: "carol", alices: "dan"}

    with make_client(api_key=KEY) as client:
        assert {s["id"] for s in client.get("/api/sessions", headers=user("carol")).json()} == set(
            before_users
        )
        assert client.get(f"/api/sessions/{alices}", headers=ALICE).status_code == 404
        # Their messages moved in the search too: into the new owner's, out of the old one's.
        assert sorted(searched(client, user("carol"), "quokka")) == sorted(unowned_words)
        assert sorted(searched(client, user("dan"), "quokka")) == sorted(alices_words)
        assert searched(client, ALICE, "quokka") == []
        assert sorted(searched(client, OPERATOR, "quokka")) == sorted(unowned_words + alices_words)
    if backend == "sqlite":
        assert_search_index_whole(db)


# --- The schema and browsers --------------------------------------------------------------------------


def test_every_api_operation_declares_the_user_header(client: TestClient[Litestar]) -> None:
    schema = client.get("/schema/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
            named = [p for p in headers if p["name"] == "X-Chatstore-User"]
            if not path.startswith("/api/"):
                assert not named, (method, path)
                continue
            [header] = named
            assert header["required"] is False
            assert header["schema"]["maxLength"] == 200
            assert "400" in operation["responses"], (method, path)
    for path in ("/api/sessions", "/api/search"):
        [owner] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "owner"]
        assert (owner["in"], owner["required"]) == ("query", False)


def test_a_page_on_an_allowed_origin_may_send_the_user_header(make_client: ClientFactory) -> None:
    origin = "https://chat.example.test"
    with make_client(api_key=KEY, cors_origins=origin) as client:
        response = client.options(
            "/api/sessions",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, x-chatstore-user",
            },
        )
    assert response.status_code == 204, response.text
    allowed = {
        header.strip().lower() for header in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "x-chatstore-user"} <= allowed


def test_another_users_streaming_reply_can_be_neither_followed_nor_stopped(
    client: TestClient[Litestar], db: DatabaseView, alices: dict[str, str]
) -> None:
    """A reply still streaming (its row ``in_progress``, as another process writes it): Bob's stop must
    not even flag it."""
    streaming = "0c0c0c0c-0000-4000-8000-000000000001"
    db.execute(
        "INSERT INTO messages (id, session_id, parent_id, seq, role, content, status, created_at, "
        "updated_at, worker_id, stop_requested) VALUES (:id, :s, :parent, 3, 'assistant', 'half a rep', "
        "'in_progress', :at, :at, :worker, :no)",
        id=streaming,
        s=alices["s"],
        parent=alices["m"],
        at="2026-12-01 12:00:00+00:00",
        worker=str(client.app.state.lease.id),
        no=False,
    )
    before = stored(db)

    for method, path in (
        ("GET", f"/api/messages/{streaming}/stream"),
        ("POST", f"/api/messages/{streaming}/stop"),
    ):
        response = client.request(method, path, headers=BOB)
        assert response.status_code == 404, response.text
        assert response.json() == {"status_code": 404, "detail": f"reply '{streaming}' not found"}
    assert stored(db) == before
    # Its owner can: the stop is flagged for the process that streams it.
    response = client.post(f"/api/messages/{streaming}/stop", headers=ALICE)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == streaming
    assert db.scalar("SELECT stop_requested FROM messages WHERE id = :id", id=streaming) in (True, 1)


# --- The AI SDK's routes ---------------------------------------------------------------------------


def ui_submit(chat_id: str, text: str) -> dict[str, Any]:
    message = {"id": f"ui-{text}", "role": "user", "parts": [{"type": "text", "text": text}]}
    return {"id": chat_id, "messages": [message], "trigger": "submit-message"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/ui/chat/{s}/messages", None),
        ("GET", "/api/ui/chat/{s}/stream", None),
        ("POST", "/api/ui/chat", {"id": "{s}", "messages": [], "trigger": "regenerate-message"}),
    ],
)
def test_another_users_chat_answers_the_ai_sdks_routes_as_an_unknown_one(
    client: TestClient[Litestar],
    db: DatabaseView,
    alices: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    before = stored(db)

    as_bob = call(client, BOB, (method, path, body), alices)
    unknown = call(client, BOB, (method, path, body), dict.fromkeys(alices, UNKNOWN_ID))

    assert as_bob.status_code == unknown.status_code, (as_bob.text, unknown.text)
    assert as_bob.text.replace(alices["s"], UNKNOWN_ID) == unknown.text
    assert stored(db) == before


def test_a_chat_the_ai_sdk_starts_is_the_callers_and_another_users_id_is_not_taken_over(
    client: TestClient[Litestar], db: DatabaseView, alices: dict[str, str]
) -> None:
    before = stored(db)
    # Bob's transport posting to Alice's chat id: it cannot be his, and hers is left alone.
    response = client.post("/api/ui/chat", json=ui_submit(alices["s"], "hijack"), headers=BOB)
    assert response.status_code == 404, response.text
    assert stored(db) == before

    bobs_chat = "0d0d0d0d-0000-4000-8000-000000000001"
    response = client.post("/api/ui/chat", json=ui_submit(bobs_chat, "mine"), headers=BOB)
    assert response.status_code == 200, response.text
    assert owners(db)[bobs_chat] == "bob"
    assert [m["role"] for m in client.get(f"/api/ui/chat/{bobs_chat}/messages", headers=BOB).json()] == [
        "user",
        "assistant",
    ]
    assert client.get(f"/api/ui/chat/{bobs_chat}/messages", headers=ALICE).json() == []
    # The owner and an operator read Alice's chat.
    for caller in (ALICE, OPERATOR):
        read = client.get(f"/api/ui/chat/{alices['s']}/messages", headers=caller).json()
        assert [m["id"] for m in read][1] == alices["r"]
