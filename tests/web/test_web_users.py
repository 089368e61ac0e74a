"""The page with users' own tokens, in Chromium: given a user's JWT it lists, opens and adds to only that
user's chats, and a token the server refuses (expired) or cannot check (the sign-in provider's keys
cannot be fetched) is explained in words.

Each test runs against a real server on SQLite and on PostgreSQL (when ``CHATSTORE_TEST_POSTGRES_URL``
names one). Tokens are signed here with PyJWT and the server's ``CHATSTORE_JWT_SECRET``; what the page
shows is checked against what the API stores, read with the operator's service key.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tests.servers import free_port
from tests.web.test_web import API_KEY, ARTIFACTS, ChatPage

# Without Playwright the browser fixture skips, or fails in CI, with the reason.
with contextlib.suppress(ImportError):
    from playwright.sync_api import expect

SECRET = "web-users-token-secret-0123456789abcdef"  # CHATSTORE_JWT_SECRET: at least 32 bytes
OPERATOR = {"Authorization": f"Bearer {API_KEY}"}
DIALOG = "Key or token needed"
FIELD = "API key or access token"


def token_of(user: str, *, expires_in_s: int = 3600, secret: str = SECRET, **headers: Any) -> str:
    """A token for ``user``, as a sign-in provider would issue it (HS256 with the server's secret)."""
    claims = {"sub": user, "exp": int(time.time()) + expires_in_s}
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def create_session(chat: ChatPage, token: str, name: str) -> str:
    """A session made through the API with the user's own token; its id."""
    response = chat.api(
        "POST", "/api/sessions", json={"name": name}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def stored_session(chat: ChatPage, session_id: str) -> dict[str, Any]:
    response = chat.api("GET", f"/api/sessions/{session_id}", headers=OPERATOR)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def users_page(chat_page: Callable[..., ChatPage], database_url: str) -> Callable[..., ChatPage]:
    """A server taking users' tokens (and the operator's service key), and a tab on it."""

    def start() -> ChatPage:
        return chat_page(database_url=database_url, CHATSTORE_API_KEY=API_KEY, CHATSTORE_JWT_SECRET=SECRET)

    return start


def give_token(chat: ChatPage, token: str) -> None:
    dialog = chat.page.get_by_role("dialog", name=DIALOG)
    expect(dialog).to_be_visible()
    dialog.get_by_label(FIELD).fill(token)
    dialog.get_by_role("button", name="Use it").click()


@pytest.mark.browser
@pytest.mark.server
def test_a_users_token_shows_only_their_chats_and_what_they_send_is_theirs(
    users_page: Callable[..., ChatPage],
) -> None:
    chat = users_page()
    alice, bob = token_of("alice"), token_of("bob")
    trip = create_session(chat, alice, "Alice's trip")
    create_session(chat, alice, "Alice's books")
    plan = create_session(chat, bob, "Bob's secret plan")
    chat.page.reload()  # the page asked before the sessions existed: ask again, for a list with them

    give_token(chat, alice)

    expect(chat.page.get_by_role("dialog", name=DIALOG)).to_be_hidden()
    expect(chat.sessions).to_have_count(2)
    expect(chat.session("Alice's trip")).to_be_visible()
    expect(chat.session("Alice's books")).to_be_visible()
    expect(chat.page.get_by_text("Bob's secret plan")).to_have_count(0)
    assert chat.page.evaluate("sessionStorage.getItem('chatstore.apiKey')") == alice

    chat.session("Alice's trip").click()
    expect(chat.page).to_have_url(f"{chat.server.base_url}/#/sessions/{trip}")
    chat.send_and_wait("pack a towel")
    ARTIFACTS.mkdir(exist_ok=True)
    chat.page.screenshot(path=ARTIFACTS / "users-alice.png")

    session = stored_session(chat, trip)
    assert session["session"]["owner"] == "alice"
    question, answer = session["messages"]
    assert (question["role"], question["content"]) == ("user", "pack a towel")
    assert (answer["role"], answer["status"]) == ("assistant", "complete")
    assert stored_session(chat, plan)["messages"] == []  # Bob's chat: untouched
    listed = chat.api("GET", "/api/sessions", headers={"Authorization": f"Bearer {bob}"})
    assert [(s["name"], s["owner"]) for s in listed.json()] == [("Bob's secret plan", "bob")]

    # Bob's chat by its address: to Alice's token it does not exist, and nothing of it is shown.
    chat.open(f"#/sessions/{plan}")
    expect(chat.alert).to_have_text("That chat does not exist; it may have been deleted.")
    expect(chat.sessions).to_have_count(2)
    expect(chat.page.get_by_text("Bob's secret plan")).to_have_count(0)
    expect(chat.page.get_by_role("dialog", name=DIALOG)).to_be_hidden()  # the token stays for the tab

    # A chat the page starts with Alice's token is hers.
    chat.page.get_by_role("button", name="New chat").click()
    chat.send_and_wait("a list for the shop")
    assert stored_session(chat, chat.session_id())["session"]["owner"] == "alice"
    expect(chat.sessions).to_have_count(3)
    expect(chat.page.get_by_text("Bob's secret plan")).to_have_count(0)


@pytest.mark.browser
@pytest.mark.server
def test_an_expired_token_is_refused_with_its_reason_and_a_fresh_one_is_taken(
    users_page: Callable[..., ChatPage],
) -> None:
    chat = users_page()
    create_session(chat, token_of("alice"), "Alice's trip")
    dialog = chat.page.get_by_role("dialog", name=DIALOG)

    give_token(chat, token_of("alice", expires_in_s=-3600))

    expect(dialog.get_by_role("alert")).to_have_text("That key or token is not valid: the token has expired.")
    expect(dialog.get_by_label(FIELD)).to_have_value("")
    expect(dialog.get_by_label(FIELD)).to_be_focused()
    assert chat.page.evaluate("sessionStorage.getItem('chatstore.apiKey')") is None  # not kept
    ARTIFACTS.mkdir(exist_ok=True)
    chat.page.screenshot(path=ARTIFACTS / "users-expired-token.png")
    expect(chat.sessions).to_have_count(0)

    give_token(chat, token_of("alice"))

    expect(dialog).to_be_hidden()
    expect(chat.sessions).to_have_count(1)
    expect(chat.session("Alice's trip")).to_be_visible()


@pytest.mark.browser
@pytest.mark.server
def test_sign_in_keys_that_cannot_be_fetched_are_explained(chat_page: Callable[..., ChatPage]) -> None:
    # Nothing listens on the JWKS address: the server cannot check any token, and answers 503.
    jwks_url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    chat = chat_page(CHATSTORE_JWT_JWKS_URL=jwks_url)

    give_token(chat, token_of("alice", kid="provider-key-1"))

    expect(chat.page.get_by_role("dialog", name=DIALOG)).to_be_hidden()
    expect(chat.alert).to_have_text(
        "The sign-in provider's keys can't be fetched right now; try again in a moment."
    )
    response = chat.api(
        "GET", "/api/sessions", headers={"Authorization": f"Bearer {token_of('alice', kid='k')}"}
    )
    assert response.status_code == 503, response.text
    assert "cannot be fetched" in response.json()["detail"]
