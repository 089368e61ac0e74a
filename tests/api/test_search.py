"""``GET /api/search``: ranked full-text search of messages, on SQLite's FTS5 and PostgreSQL's tsvector."""

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.core.settings import Settings
from chatstore.services.search import MAX_QUERY_LENGTH, MAX_QUERY_TERMS
from tests.conftest import AppFactory, ClientFactory
from tests.helpers import DatabaseView, ScriptedResponder, parse_sse

FILLER = "the weather report talked about clouds rain wind and sunshine over the hills " * 3
REPLY = "Noted."


@pytest.fixture
def app(make_app: AppFactory) -> Litestar:
    # A fixed reply, so that only the messages a test writes contain its words.
    return make_app(responder=ScriptedResponder([REPLY]))


def store(client: TestClient[Litestar], session_id: str, *contents: str) -> list[str]:
    """Append user messages to a session (and the fixed reply); return the messages' ids."""
    ids: list[str] = []
    for start in range(0, len(contents), 50):
        response = client.post(
            "/api/chat",
            json={
                "session_id": session_id,
                "messages": [
                    {"role": "user", "content": content} for content in contents[start : start + 50]
                ],
            },
        )
        assert response.status_code == 200, response.text
        ids += parse_sse(response.text)[0].data["message_ids"]
    return ids


def search(client: TestClient[Litestar], q: str, **params: Any) -> dict[str, Any]:
    response = client.get("/api/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def hit_ids(page: dict[str, Any]) -> list[str]:
    return [hit["message_id"] for hit in page["results"]]


def test_a_hit_names_its_message_and_session(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session(name="Trip")
    [message_id] = store(client, session["id"], "Book the ferry to Lisbon")

    page = search(client, "ferry")

    assert page["next_cursor"] is None
    [hit] = page["results"]
    assert hit["message_id"] == message_id
    assert hit["session_id"] == session["id"]
    assert hit["session_name"] == "Trip"
    assert hit["seq"] == 1
    assert hit["role"] == "user"
    assert hit["created_at"].endswith("Z")
    assert hit["snippet"] == "Book the <mark>ferry</mark> to Lisbon"


def test_messages_about_the_words_rank_above_a_passing_mention(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session = make_session()
    passing, repeated, short = store(
        client,
        session["id"],
        f"{FILLER} and by the way a volcano {FILLER}",
        "volcano volcano: the volcano erupted",
        "a volcano",
    )

    order = hit_ids(search(client, "volcano"))

    assert set(order) == {passing, repeated, short}
    assert order[-1] == passing


def test_snippets_mark_the_words_and_escape_the_rest(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session(name="<i>raw</i>")
    store(client, session["id"], 'Try <script>alert("x")</script> & the "café" recipe')

    [hit] = search(client, "cafe recipe")["results"]

    snippet = hit["snippet"]
    assert "<mark>café</mark>" in snippet
    assert "<mark>recipe</mark>" in snippet
    assert "&lt;/script&gt;" in snippet and "&amp;" in snippet
    assert "<script>" not in snippet
    assert hit["session_name"] == "<i>raw</i>"  # data, not markup: only the snippet is HTML


def test_long_messages_get_a_short_snippet(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session()
    store(client, session["id"], f"{FILLER} the penguin waddled {FILLER}")

    [hit] = search(client, "penguin")["results"]

    assert "<mark>penguin</mark>" in hit["snippet"]
    assert len(hit["snippet"]) < 300


def test_case_and_accents_do_not_matter(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session()
    accented, plain = store(client, session["id"], "Un café crème à Genève", "A CAFE CREME IN GENEVA")

    assert set(hit_ids(search(client, "cafe"))) == {accented, plain}
    assert set(hit_ids(search(client, "CAFÉ Crème"))) == {accented, plain}
    assert hit_ids(search(client, "geneve")) == [accented]


def test_cjk_and_emoji_are_searchable_or_refused_but_never_fail(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session = make_session()
    [message_id] = store(client, session["id"], "東京 タワー 🎉 party time")

    assert hit_ids(search(client, "東京")) == [message_id]
    assert hit_ids(search(client, "party 🎉")) == [message_id]
    assert client.get("/api/search", params={"q": "🎉🎉"}).status_code == 400


def test_quoted_words_or_and_minus(client: TestClient[Litestar], make_session: Any) -> None:
    session = make_session()
    red_car, car_red, blue_bike = store(client, session["id"], "a red car", "the car is red", "a blue bike")

    assert hit_ids(search(client, '"red car"')) == [red_car]
    assert set(hit_ids(search(client, "red car"))) == {red_car, car_red}
    assert set(hit_ids(search(client, "car -is"))) == {red_car}
    assert set(hit_ids(search(client, "red car or bike"))) == {red_car, car_red, blue_bike}


@pytest.mark.parametrize(
    "q",
    [
        '"foo',
        'foo"',
        '""',
        "AND OR",
        "foo AND",
        "OR foo",
        "NOT foo",
        "NEAR(foo bar)",
        "NEAR(",
        "foo*",
        "*",
        "-",
        "-foo",
        "--foo",
        "(",
        "foo)",
        "foo:bar",
        "content:foo",
        "^foo",
        "{foo}",
        "+foo",
        "foo|bar",
        "'",
        "\\",
        "%",
        "foo & bar",
        "!foo",
        "<->",
        "foo <-> bar",
        "é́́́",
        "👍🏽",
        "\u200b",
        "\ufeff",
        "�",
    ],
)
def test_query_syntax_never_fails(client: TestClient[Litestar], make_session: Any, q: str) -> None:
    store(client, make_session()["id"], "foo bar baz")

    response = client.get("/api/search", params={"q": q})

    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["detail"].startswith("q: ")


def test_an_unclosed_quote_searches_the_rest_as_a_phrase(
    client: TestClient[Litestar], make_session: Any
) -> None:
    [message_id] = store(client, make_session()["id"], "foo bar baz")

    assert hit_ids(search(client, '"foo bar')) == [message_id]
    assert hit_ids(search(client, '"bar foo')) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Missing required query parameter 'q'"),
        ({"q": ""}, "must not be empty"),
        ({"q": "   "}, "must not be empty"),
        ({"q": "?!*"}, "has no words to search for"),
        ({"q": "-foo"}, "has no words to search for"),
        ({"q": "a\x00b"}, "NUL"),
        ({"q": "a" * (MAX_QUERY_LENGTH + 1)}, f"at most {MAX_QUERY_LENGTH} characters"),
        ({"q": " ".join(["w"] * (MAX_QUERY_TERMS + 1))}, f"at most {MAX_QUERY_TERMS} words"),
    ],
)
def test_a_query_with_nothing_to_look_for_is_a_400_naming_q(
    client: TestClient[Litestar], params: dict[str, str], message: str
) -> None:
    response = client.get("/api/search", params=params)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("q: ")
    assert message in response.json()["detail"]


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "1.5"])
def test_limit_is_validated(client: TestClient[Litestar], limit: str) -> None:
    response = client.get("/api/search", params={"q": "foo", "limit": limit})

    assert response.status_code == 400
    assert response.json()["detail"].startswith("limit: ")


def test_the_largest_page_is_allowed(client: TestClient[Litestar], settings: Settings) -> None:
    assert search(client, "foo", limit=settings.max_page_size)["results"] == []


def test_a_cursor_is_valid_only_for_its_query(client: TestClient[Litestar], make_session: Any) -> None:
    store(client, make_session()["id"], "kiwi one", "kiwi two")
    cursor = search(client, "kiwi", limit=1)["next_cursor"]
    assert cursor is not None

    kind, _ = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps([kind, [1.0, [2]]]).encode()).decode()

    for q, bad_cursor in [("kiwi", "not-a-cursor"), ("kiwi", "e30"), ("kiwi", forged), ("mango", cursor)]:
        response = client.get("/api/search", params={"q": q, "cursor": bad_cursor})
        assert response.status_code == 400, (q, bad_cursor)
        assert response.json()["detail"].startswith("cursor: ")


def test_paging_never_repeats_or_skips_a_hit_while_messages_are_added(
    client: TestClient[Litestar], make_session: Any
) -> None:
    session = make_session()
    # Scores spread out: different counts of the word in texts of different lengths, and ties.
    contents = [
        " ".join(["otter"] * (1 + i % 4) + ["river"] * (i % 7)) + f" note {i // 10}" for i in range(60)
    ]
    original = set(store(client, session["id"], *contents))
    other = make_session()

    seen: list[str] = []
    page = search(client, "otter", limit=7)
    pages = 0
    while True:
        pages += 1
        seen += hit_ids(page)
        if page["next_cursor"] is None:
            break
        # New hits that rank first, last and in between, and noise, between two pages.
        store(client, other["id"], "otter", f"{FILLER} otter", "otter otter otter river", "no match here")
        response = client.get("/api/search", params={"q": "otter", "limit": 7, "cursor": page["next_cursor"]})
        assert response.status_code == 200, response.text
        page = response.json()

    assert len(seen) == len(set(seen)), "a hit was repeated"
    assert original <= set(seen), "a hit was skipped"
    assert pages >= 9


def test_the_next_page_is_linked_in_the_headers(client: TestClient[Litestar], make_session: Any) -> None:
    store(client, make_session()["id"], "lemon a", "lemon b", "lemon c")

    response = client.get("/api/search", params={"q": "lemon", "limit": 2})

    cursor = response.json()["next_cursor"]
    assert response.headers["X-Next-Cursor"] == cursor
    url, rel = response.headers["Link"].split("; ")
    assert rel == 'rel="next"'
    link = urlsplit(url.strip("<>"))
    assert link.path == "/api/search"
    assert parse_qs(link.query) == {"q": ["lemon"], "limit": ["2"], "cursor": [cursor]}
    last = client.get(url.strip("<>"))
    assert len(last.json()["results"]) == 1
    assert last.json()["next_cursor"] is None
    assert "Link" not in last.headers and "X-Next-Cursor" not in last.headers


def test_a_deleted_sessions_messages_are_no_longer_found(
    client: TestClient[Litestar], make_session: Any, backend: str, db: DatabaseView
) -> None:
    gone, kept = make_session(), make_session()
    store(client, gone["id"], "walrus tusks")
    [kept_id] = store(client, kept["id"], "walrus whiskers")

    assert client.delete(f"/api/sessions/{gone['id']}").status_code == 204

    assert hit_ids(search(client, "walrus")) == [kept_id]
    if backend == "sqlite":  # the index agrees with the table, row for row
        db.execute("INSERT INTO messages_search (messages_search, rank) VALUES ('integrity-check', 1)")


def test_the_sqlite_index_reads_a_message_by_its_primary_key(
    client: TestClient[Litestar], backend: str, db: DatabaseView
) -> None:
    """FTS5 reads a hit's text (for its snippet) through the view of messages and their owners, one
    row by its rowid, as it asks for it: that must stay two primary-key look-ups, not a scan."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL's index is a column of messages")
    plan = db.rows(
        "EXPLAIN QUERY PLAN SELECT T.doc, T.content, T.owner_key FROM messages_search_source AS T "
        "WHERE T.doc = :doc",
        doc=1,
    )
    assert [row["detail"] for row in plan] == [
        "SEARCH m USING INTEGER PRIMARY KEY (rowid=?)",
        "SEARCH s USING INDEX sqlite_autoindex_sessions_1 (id=?) LEFT-JOIN",
    ]


def test_a_reply_is_found_by_the_content_it_ends_with(
    make_client: ClientFactory, make_session: Any, client: TestClient[Litestar]
) -> None:
    session = make_session()
    responder = ScriptedResponder(["The capital ", "is Ulaanbaatar."])
    with make_client(responder=responder) as other:
        response = other.post(
            "/api/chat",
            json={"session_id": session["id"], "messages": [{"role": "user", "content": "Mongolia?"}]},
        )
    events = parse_sse(response.text)

    [hit] = search(client, "ulaanbaatar")["results"]
    assert hit["message_id"] == events[0].data["assistant_message_id"]
    assert hit["role"] == "assistant"
    assert hit["seq"] == 2


def test_messages_stored_before_the_index_existed_are_found(
    make_client: ClientFactory, backend: str, db: DatabaseView
) -> None:
    with make_client(responder=ScriptedResponder([REPLY])) as client:
        session = client.post("/api/sessions", json={}).json()
        [message_id] = store(client, session["id"], "an older armadillo")
    # As a database from before search: no index, nothing that keeps one, and no version table
    # (which came later still), so that start-up takes it for the 0.1.0 schema's first state.
    db.execute("DROP TABLE chatstore_alembic_version")
    if backend == "sqlite":
        for trigger in ("insert", "update", "delete", "owner", "session_delete"):
            db.execute(f"DROP TRIGGER messages_search_{trigger}")
        db.execute("DROP TABLE messages_search")
        db.execute("DROP VIEW messages_search_source")
    else:
        db.execute("ALTER TABLE messages DROP COLUMN search_vector")
        db.execute("DROP TEXT SEARCH CONFIGURATION chatstore_search")

    for _ in range(2):  # and starting again changes nothing
        with make_client(responder=ScriptedResponder([REPLY])) as client:
            assert hit_ids(search(client, "armadillo")) == [message_id]
