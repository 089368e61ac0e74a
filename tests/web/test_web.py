"""The web page at ``/``: how it is served, and what a person can do with it in a real browser.

The browser tests drive Debian's Chromium through Playwright against a real ``python -m chatstore``
process on a SQLite file (the page talks HTTP, so a second database adds nothing here). Without
Playwright or Chromium they skip with the reason; in CI that is a failure.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from chatstore.app import create_app
from chatstore.core.settings import Settings
from tests.conftest import POSTGRES_URL_VARIABLE, postgres_url, skip_or_fail_in_ci
from tests.fake_openai import FakeOpenAI, error_reply, reply
from tests.faults import TcpProxy
from tests.helpers import postgres_schema
from tests.servers import ServerProcess, free_port, running_servers

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture skips, or fails in CI, with the reason
    sync_playwright = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Route

CHROMIUM_VARIABLE = "CHATSTORE_TEST_CHROMIUM"
CHROMIUM_PATH = Path(os.environ.get(CHROMIUM_VARIABLE) or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 390, "height": 780}
# Slow enough that a reply is still streaming when the test clicks Stop (it has some 40 pieces).
SLOW_MOCK_DELAY_MS = "200"
# Slow enough that a reload or a lost connection happens while the reply streams.
RELOAD_MOCK_DELAY_MS = "150"
API_KEY = "web-test-key-0123456789"
REPLY_SETTLE_TIMEOUT_S = 10.0
WHOLE_REPLY_TIMEOUT_MS = 30_000  # a slow reply, written in full
GIVE_UP_TIMEOUT_MS = 15_000  # the page tries to re-attach for some 8 s (api.js RECONNECT_DELAYS_MS)
SIDEBAR_PAGE = 50  # sessions per page, as app.js asks for them
LONG_CHAT_MESSAGES = 1000  # each reply a page of Markdown: some 400 KB of text
LONG_CHAT_OPEN_TIMEOUT_MS = 10_000  # generous for a busy 2-core machine; about 1.5 s measured here
SESSION_URL = re.compile(r"#/sessions/([0-9a-f-]{36})$")


# ---- serving the page -------------------------------------------------------------------------


@pytest.fixture
def web_client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'chatstore.db'}"))) as client:
        yield client


def test_page_is_served_at_root_with_a_strict_content_security_policy(
    web_client: TestClient[Litestar],
) -> None:
    response = web_client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="static/app.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/static/app.js", "text/javascript"),
        ("/static/api.js", "text/javascript"),
        ("/static/markdown.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ],
)
def test_page_files_are_served_with_their_media_type(
    web_client: TestClient[Litestar], path: str, media_type: str
) -> None:
    response = web_client.get(path)

    assert response.status_code == 200
    # A module script with any other media type is refused by the browser.
    assert response.headers["content-type"].split(";")[0] == media_type


@pytest.mark.parametrize("path", ["/static/missing.js", "/static/../api/web.py", "/static/%2e%2e/app.py"])
def test_static_path_outside_the_page_files_is_not_found(web_client: TestClient[Litestar], path: str) -> None:
    response = web_client.get(path)

    assert response.status_code == 404
    assert response.json()["status_code"] == 404


def test_page_is_not_in_the_openapi_schema(web_client: TestClient[Litestar]) -> None:
    paths = web_client.get("/schema/openapi.json").json()["paths"]

    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/static")]


# ---- in the browser ---------------------------------------------------------------------------


@dataclass
class ChatPage:
    """The page in one browser tab, the server behind it, and what went wrong in the page."""

    page: Page
    server: ServerProcess
    errors: list[str] = field(default_factory=list)  # uncaught exceptions and rejected promises
    dialogs: list[str] = field(default_factory=list)  # alert(), confirm(), prompt(): the page uses none

    def open(self, fragment: str = "") -> None:
        self.page.goto(f"{self.server.base_url}/{fragment}")

    @property
    def input(self) -> Locator:
        return self.page.get_by_role("textbox", name="Message")

    @property
    def messages(self) -> Locator:
        return self.page.locator("#message-list > .message")

    @property
    def sessions(self) -> Locator:
        return self.page.locator("#session-list .session-link")

    @property
    def alert(self) -> Locator:
        return self.page.get_by_role("alert").and_(self.page.locator("#alert-text"))

    def session(self, name: str) -> Locator:
        return self.sessions.filter(
            has=self.page.locator(".session-name", has_text=re.compile(f"^{re.escape(name)}$"))
        )

    def session_row(self, name: str) -> Locator:
        """The sidebar's row of the session named ``name``: its link and its menu button."""
        name_locator = self.page.locator(".session-name", has_text=re.compile(f"^{re.escape(name)}$"))
        return self.page.locator("#session-list .session-item").filter(has=name_locator)

    def send(self, text: str) -> None:
        """Type a message (a newline as Shift+Enter) and press Enter."""
        self.input.click()
        for index, line in enumerate(text.split("\n")):
            if index:
                self.input.press("Shift+Enter")
            self.page.keyboard.insert_text(line)
        self.input.press("Enter")

    def send_and_wait(self, text: str) -> Locator:
        """Send a message and wait for the reply to be stored; returns the reply."""
        count = self.messages.count()
        self.send(text)
        reply = self.messages.nth(count + 1)
        expect(reply).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
        expect(self.input).to_be_enabled()
        return reply

    def session_id(self) -> str:
        match = SESSION_URL.search(self.page.url)
        assert match, self.page.url
        return match[1]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.server.base_url}{path}", timeout=10.0, **kwargs)

    def wait_for_reply(self, session_id: str) -> dict[str, Any]:
        """The last message of the session, once it is no longer ``in_progress``."""
        deadline = time.monotonic() + REPLY_SETTLE_TIMEOUT_S
        while (reply := self.stored_messages(session_id)[-1])["status"] == "in_progress":
            assert time.monotonic() < deadline, f"the reply is still in progress: {reply}"
            time.sleep(0.05)
        return reply

    def stored_messages(self, session_id: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every stored message of the session, of every branch, in seq order."""
        response = self.api("GET", f"/api/sessions/{session_id}/messages?limit=1000", headers=headers)
        assert response.status_code == 200, response.text
        return list(response.json())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        skip_or_fail_in_ci("the browser tests need Playwright for Python: pip install -e '.[test]'")
    if not CHROMIUM_PATH.is_file():
        skip_or_fail_in_ci(
            f"the browser tests need Chromium at {CHROMIUM_PATH}: apt-get install chromium, "
            f"or set {CHROMIUM_VARIABLE} to the browser's executable"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def chat_page(browser: Browser, tmp_path: Path) -> Iterator[Callable[..., ChatPage]]:
    """Start a chatstore server (``CHATSTORE_*`` variables as keyword arguments) and open a tab on it.

    A test fails if the page threw an error or opened a native dialog.
    """
    pages: list[ChatPage] = []
    with ExitStack() as stack:

        def start(
            *,
            viewport: dict[str, int] = DESKTOP,
            color_scheme: str = "light",
            has_touch: bool = False,
            database_url: str | None = None,
            **env: str,
        ) -> ChatPage:
            url = database_url or f"sqlite:///{tmp_path / 'chatstore.db'}"
            env = {"CHATSTORE_MOCK_DELAY_MS": "20", **env}
            [server] = stack.enter_context(
                running_servers(1, url, tmp_path, env, name=f"server-{len(pages)}")
            )
            # Reduced motion: no drawer animation, so a screenshot never catches one halfway.
            context = browser.new_context(
                viewport=viewport,
                color_scheme=color_scheme,  # type: ignore[arg-type]
                reduced_motion="reduce",
                has_touch=has_touch,
            )
            stack.callback(context.close)
            chat = ChatPage(context.new_page(), server)
            chat.page.on("pageerror", lambda error: chat.errors.append(str(error)))
            chat.page.on("dialog", lambda dialog: (chat.dialogs.append(dialog.message), dialog.dismiss()))
            pages.append(chat)
            chat.open()
            return chat

        yield start
    for chat in pages:
        assert chat.errors == [], "the page threw"
        assert chat.dialogs == [], "the page opened a native dialog"


@pytest.mark.browser
@pytest.mark.server
def test_first_message_creates_a_session_named_after_it_and_streams_the_reply(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page()
    expect(chat.page.get_by_role("heading", name="New chat")).to_be_visible()

    reply = chat.send_and_wait("Hello there")

    expect(chat.page).to_have_url(SESSION_URL)
    session_id = chat.session_id()
    expect(chat.messages).to_have_count(2)
    expect(chat.messages.nth(0)).to_have_class(re.compile(r"\buser\b"))
    expect(chat.messages.nth(0).locator(".message-content")).to_have_text("Hello there")
    expect(reply).to_have_class(re.compile(r"\bassistant\b"))
    expect(reply.locator(".message-content")).to_contain_text("You said: Hello there")
    expect(reply.locator(".message-status")).to_be_hidden()
    expect(chat.session("Hello there")).to_have_attribute("aria-current", "page")
    expect(chat.session("Hello there")).to_contain_text("2 messages")
    expect(chat.page.get_by_role("heading", name="Hello there")).to_be_visible()

    stored = chat.stored_messages(session_id)
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    expect(reply.locator(".message-content")).to_have_text(stored[1]["content"])
    assert chat.api("GET", f"/api/sessions/{session_id}").json()["session"]["name"] == "Hello there"


@pytest.mark.browser
@pytest.mark.server
def test_stop_ends_a_streaming_reply_on_the_server_and_shows_it_incomplete(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(CHATSTORE_MOCK_DELAY_MS=SLOW_MOCK_DELAY_MS)
    stop = chat.page.get_by_role("button", name="Stop")

    chat.send("First line\nsecond line")

    reply = chat.messages.nth(1)
    # The reply shows piece by piece while the input waits for it.
    expect(reply.locator(".message-content")).to_contain_text("You said:")
    expect(reply).to_have_attribute("data-status", "in_progress")
    expect(reply).to_have_attribute("aria-live", "polite")
    expect(reply).to_have_attribute("aria-busy", "true")
    expect(chat.input).to_be_disabled()
    expect(stop).to_be_focused()
    stop.click()

    expect(reply).to_have_attribute("data-status", "incomplete")
    expect(reply.locator(".message-status")).to_have_text("Incomplete: stopped before it finished")
    expect(stop).to_be_hidden()
    expect(chat.input).to_be_enabled()
    expect(chat.input).to_be_focused()
    expect(chat.messages.nth(0).locator(".message-content")).to_have_text("First line\nsecond line")
    # The server stored the reply, stopped, before the page showed it so: nothing to wait for.
    stored = chat.stored_messages(chat.session_id())
    assert [(m["role"], m["status"], m["finish_reason"]) for m in stored] == [
        ("user", "complete", None),
        ("assistant", "incomplete", "stopped"),
    ]
    assert stored[0]["content"] == "First line\nsecond line"
    assert stored[1]["content"].startswith("You said:")
    expect(reply.locator(".message-content")).to_have_text(stored[1]["content"])


@pytest.mark.browser
@pytest.mark.server
def test_stop_that_fails_says_so_and_the_reply_goes_on(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page(CHATSTORE_MOCK_DELAY_MS=SLOW_MOCK_DELAY_MS)
    chat.page.route(
        "**/api/messages/*/stop",
        lambda route: route.fulfill(status=503, json={"status_code": 503, "detail": "Service busy."}),
    )
    chat.send("keep talking")
    reply = chat.messages.nth(1)
    expect(reply.locator(".message-content")).to_contain_text("You said:")

    chat.page.get_by_role("button", name="Stop").click()

    expect(chat.alert).to_have_text("The reply could not be stopped: Service busy.")
    expect(reply).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    stored = chat.wait_for_reply(chat.session_id())
    assert (stored["status"], stored["finish_reason"]) == ("complete", "completed")
    expect(reply.locator(".message-content")).to_have_text(stored["content"])


@pytest.mark.browser
@pytest.mark.server
def test_leaving_a_chat_while_its_reply_streams_lets_it_finish_and_coming_back_follows_it(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(CHATSTORE_MOCK_DELAY_MS=SLOW_MOCK_DELAY_MS)
    chat.send("tell me a long story")
    expect(chat.messages.nth(1).locator(".message-content")).to_contain_text("You said:")
    session_id = chat.session_id()

    chat.page.get_by_role("button", name="New chat").click()

    expect(chat.page.get_by_role("heading", name="New chat")).to_be_visible()
    expect(chat.input).to_be_enabled()
    chat.session("tell me a long story").click()
    reply = chat.messages.nth(1)
    # Back in the chat, the reply shows as it goes on, and ends as the server stored it.
    expect(reply).to_have_attribute("data-status", "in_progress")
    expect(chat.page.get_by_role("button", name="Stop")).to_be_visible()
    expect(reply).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    stored = chat.wait_for_reply(session_id)
    assert (stored["status"], stored["finish_reason"]) == ("complete", "completed")
    expect(reply.locator(".message-content")).to_have_text(stored["content"])
    expect(chat.input).to_be_enabled()


@pytest.mark.browser
@pytest.mark.server
def test_reload_while_a_reply_streams_shows_it_growing_until_complete(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(CHATSTORE_MOCK_DELAY_MS=RELOAD_MOCK_DELAY_MS)
    chat.send("a reply worth waiting for")
    reply = chat.messages.nth(1)
    expect(reply.locator(".message-content")).to_contain_text("You said:")
    session_id = chat.session_id()

    chat.page.reload()

    expect(reply).to_have_attribute("data-status", "in_progress")
    expect(reply.locator(".message-status")).to_have_text("Still being written")
    shown = reply.locator(".message-content").text_content() or ""
    # More text arrives while it is still in progress: the page follows the reply live.
    expect(reply.locator(".message-content")).not_to_have_text(shown)
    expect(reply).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    stored = chat.wait_for_reply(session_id)
    assert stored["status"] == "complete"
    expect(reply.locator(".message-content")).to_have_text(stored["content"])
    expect(reply.locator(".message-status")).to_be_hidden()
    expect(chat.input).to_be_enabled()


def cut_chat_stream(chat: ChatPage, deltas: int) -> Callable[[Route], None]:
    """A route for ``POST /api/chat`` that passes the request to the server but hands the page only
    ``start`` and the first ``deltas`` deltas, then closes: a connection lost mid-reply."""

    def handle(route: Route) -> None:
        events: list[str] = []
        lines: list[str] = []
        with httpx.stream(
            "POST",
            f"{chat.server.base_url}/api/chat",
            content=route.request.post_data_buffer,
            headers={"content-type": "application/json"},
            timeout=10.0,
        ) as response:
            for line in response.iter_lines():
                if line:
                    lines.append(line)
                elif lines:
                    events.append("\n".join(lines) + "\n\n")
                    lines = []
                    if len(events) > deltas:  # start, then the deltas
                        break
        route.fulfill(status=200, content_type="text/event-stream", body="".join(events))

    return handle


@pytest.mark.browser
@pytest.mark.server
def test_connection_lost_mid_reply_reconnects_and_shows_the_whole_reply(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(CHATSTORE_MOCK_DELAY_MS=RELOAD_MOCK_DELAY_MS)
    reconnects: list[str] = []
    released = False

    def resume(route: Route) -> None:
        reconnects.append(route.request.headers.get("last-event-id", ""))
        if released:
            route.continue_()
        else:
            route.abort("connectionreset")  # still offline: the page waits and tries again

    chat.page.route("**/api/chat", cut_chat_stream(chat, deltas=3))
    chat.page.route("**/api/messages/*/stream", resume)
    chat.send("a flaky network")
    reply = chat.messages.nth(1)

    expect(reply.locator(".message-status")).to_have_text("Connection lost, reconnecting…")
    expect(reply).to_have_attribute("data-connection", "reconnecting")
    shown = reply.locator(".message-content").text_content() or ""
    assert shown.startswith("You said:")
    released = True

    expect(reply).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    stored = chat.wait_for_reply(chat.session_id())
    assert stored["status"] == "complete"
    expect(reply.locator(".message-content")).to_have_text(stored["content"])
    # Each attempt re-attached where the shown text ends, in the server's count of characters.
    assert set(reconnects) == {str(len(shown))}
    expect(reply.locator(".message-status")).to_be_hidden()
    expect(chat.alert).to_be_hidden()


@pytest.mark.browser
@pytest.mark.server
def test_connection_lost_for_good_says_so_and_the_reply_is_whole_when_the_chat_is_opened_again(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page()
    chat.page.route("**/api/chat", cut_chat_stream(chat, deltas=2))
    chat.page.route("**/api/messages/*/stream", lambda route: route.abort("internetdisconnected"))
    chat.send("offline soon")
    reply = chat.messages.nth(1)

    # After a few tries, spread over some seconds, the page gives up.
    expect(chat.alert).to_have_text(
        "The connection to the server was lost while the reply was streaming.", timeout=GIVE_UP_TIMEOUT_MS
    )
    expect(reply).to_have_attribute("data-status", "disconnected")
    expect(reply.locator(".message-status")).to_have_text(
        "Connection lost: open the chat again to see the rest"
    )
    expect(chat.input).to_be_enabled()
    stored = chat.wait_for_reply(chat.session_id())  # the server went on without the page
    assert stored["status"] == "complete"

    chat.page.unroute("**/api/messages/*/stream")
    chat.page.reload()
    expect(reply).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    expect(reply.locator(".message-content")).to_have_text(stored["content"])


# ---- with an API key ---------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.server
def test_api_key_is_asked_for_checked_and_kept_for_the_tab(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page(CHATSTORE_API_KEY=API_KEY)
    dialog = chat.page.get_by_role("dialog", name="Key or token needed")
    key_input = dialog.get_by_label("API key or access token")

    expect(dialog).to_be_visible()
    expect(key_input).to_be_focused()
    expect(key_input).to_have_attribute("type", "password")
    expect(dialog.locator("#key-text")).to_have_text(
        "This chatstore server asks for an API key or your access token (a JWT from your sign-in provider). "
        "It stays in this browser tab until the tab is closed."
    )
    ARTIFACTS.mkdir(exist_ok=True)
    chat.page.screenshot(path=ARTIFACTS / "key-prompt.png")
    key_input.fill("not the key")
    key_input.press("Enter")

    expect(dialog.get_by_role("alert")).to_have_text("That key or token is not valid.")
    expect(key_input).to_be_focused()
    expect(key_input).to_have_value("")
    chat.page.screenshot(path=ARTIFACTS / "key-prompt-invalid.png")
    key_input.fill(API_KEY)
    dialog.get_by_role("button", name="Use it").click()

    expect(dialog).to_be_hidden()
    reply = chat.send_and_wait("hello with a key")
    assert chat.page.evaluate("sessionStorage.getItem('chatstore.apiKey')") == API_KEY

    chat.page.reload()  # the key stays for the tab: no question this time
    expect(chat.messages.nth(1)).to_have_attribute("data-status", "complete")
    expect(chat.session("hello with a key")).to_be_visible()
    expect(dialog).to_be_hidden()
    stored = chat.stored_messages(chat.session_id(), headers={"Authorization": f"Bearer {API_KEY}"})
    expect(reply.locator(".message-content")).to_have_text(stored[1]["content"])


@pytest.mark.browser
@pytest.mark.server
def test_a_stored_key_that_is_no_longer_valid_is_forgotten_and_asked_for_again(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(CHATSTORE_API_KEY=API_KEY)
    dialog = chat.page.get_by_role("dialog", name="Key or token needed")
    expect(dialog).to_be_visible()
    chat.page.evaluate("sessionStorage.setItem('chatstore.apiKey', 'an old key')")

    chat.page.reload()

    expect(dialog.get_by_role("alert")).to_have_text("That key or token is not valid.")
    assert chat.page.evaluate("sessionStorage.getItem('chatstore.apiKey')") is None
    dialog.get_by_label("API key or access token").fill(API_KEY)
    dialog.get_by_label("API key or access token").press("Enter")
    expect(dialog).to_be_hidden()
    chat.send_and_wait("welcome back")


@pytest.mark.browser
@pytest.mark.server
def test_declining_to_give_the_key_says_the_server_needs_one(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page(CHATSTORE_API_KEY=API_KEY)
    dialog = chat.page.get_by_role("dialog", name="Key or token needed")

    dialog.get_by_role("button", name="Cancel").click()

    expect(dialog).to_be_hidden()
    expect(chat.alert).to_have_text(
        "This chatstore server needs an API key or an access token. Try again to enter it."
    )
    chat.send("let me in")
    expect(dialog).to_be_visible()  # asked again, for the message
    dialog.get_by_label("API key or access token").press("Escape")
    expect(dialog).to_be_hidden()
    expect(chat.input).to_have_value("let me in")
    expect(chat.input).to_be_enabled()


@pytest.mark.browser
@pytest.mark.server
def test_reload_and_bookmark_show_the_stored_history_most_recent_session_first(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page()
    chat.send_and_wait("Trip planning")
    chat.send_and_wait("Lisbon or Porto?")
    trip_url, trip_id = chat.page.url, chat.session_id()
    chat.page.get_by_role("button", name="New chat").click()
    expect(chat.messages).to_have_count(0)
    chat.send_and_wait("Recipes")
    expect(chat.sessions.locator(".session-name")).to_have_text(["Recipes", "Trip planning"])

    chat.session("Trip planning").click()
    expect(chat.page).to_have_url(trip_url)
    chat.send_and_wait("Porto, then")
    expect(chat.sessions.locator(".session-name")).to_have_text(["Trip planning", "Recipes"])

    chat.page.reload()
    stored = [m["content"] for m in chat.stored_messages(trip_id)]
    assert len(stored) == 6
    expect(chat.messages.locator(".message-content")).to_have_text(stored)
    expect(chat.sessions.locator(".session-name")).to_have_text(["Trip planning", "Recipes"])

    bookmark = chat.page.context.new_page()
    bookmark.goto(trip_url)
    expect(bookmark.locator("#message-list > .message .message-content")).to_have_text(stored)
    expect(bookmark.get_by_role("heading", name="Trip planning")).to_be_visible()
    bookmark.close()

    chat.page.go_back()  # history follows the sessions opened
    expect(chat.page.get_by_role("heading", name="Recipes")).to_be_visible()


@pytest.mark.browser
@pytest.mark.server
def test_sidebar_shows_more_sessions_on_request(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page()
    for index in range(SIDEBAR_PAGE + 2):
        assert chat.api("POST", "/api/sessions", json={"name": f"chat {index}"}).status_code == 201
    more = chat.page.get_by_role("button", name="Show more")

    chat.page.reload()
    expect(chat.sessions).to_have_count(SIDEBAR_PAGE)
    expect(chat.sessions.first).to_contain_text(f"chat {SIDEBAR_PAGE + 1}")  # the newest first
    more.click()

    expect(chat.sessions).to_have_count(SIDEBAR_PAGE + 2)
    expect(chat.sessions.last).to_contain_text("chat 0")
    expect(more).to_be_hidden()


@pytest.mark.browser
@pytest.mark.server
def test_rename_changes_the_name_everywhere_and_an_empty_name_clears_it(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page()
    chat.send_and_wait("hello")
    session_id = chat.session_id()
    dialog = chat.page.get_by_role("dialog", name="Rename chat")
    name_input = dialog.get_by_role("textbox", name="Name")

    chat.page.get_by_role("button", name="Rename").click()
    expect(name_input).to_have_value("hello")
    expect(name_input).to_be_focused()
    name_input.fill("Greetings")
    name_input.press("Enter")

    expect(dialog).to_be_hidden()
    expect(chat.page.get_by_role("heading", name="Greetings")).to_be_visible()
    expect(chat.session("Greetings")).to_be_visible()
    assert chat.api("GET", f"/api/sessions/{session_id}").json()["session"]["name"] == "Greetings"

    chat.page.get_by_role("button", name="Rename").click()
    name_input.fill("")
    dialog.get_by_role("button", name="Save").click()

    # Without a name, the chat is shown by its first message.
    expect(chat.page.get_by_role("heading", name="hello")).to_be_visible()
    expect(chat.session("hello")).to_be_visible()
    assert chat.api("GET", f"/api/sessions/{session_id}").json()["session"]["name"] is None


@pytest.mark.browser
@pytest.mark.server
def test_rename_shows_the_servers_400_in_the_dialog(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page(CHATSTORE_MAX_NAME_LENGTH="10")
    chat.send_and_wait("short")
    dialog = chat.page.get_by_role("dialog", name="Rename chat")

    chat.page.get_by_role("button", name="Rename").click()
    dialog.get_by_role("textbox", name="Name").fill("a name far too long")
    dialog.get_by_role("button", name="Save").click()

    expect(dialog.get_by_role("alert")).to_contain_text("name")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(chat.page.get_by_role("heading", name="short")).to_be_visible()
    assert chat.api("GET", f"/api/sessions/{chat.session_id()}").json()["session"]["name"] == "short"


@pytest.mark.browser
@pytest.mark.server
def test_delete_asks_for_confirmation_then_removes_the_session(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page()
    chat.send_and_wait("keep me")
    chat.page.get_by_role("button", name="New chat").click()
    chat.send_and_wait("delete me")
    session_id = chat.session_id()
    dialog = chat.page.get_by_role("dialog", name="Delete chat?")

    chat.page.get_by_role("button", name="Delete").click()
    expect(dialog).to_contain_text("“delete me” and its 2 messages will be deleted")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert chat.api("GET", f"/api/sessions/{session_id}").status_code == 200

    chat.page.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()

    expect(dialog).to_be_hidden()
    expect(chat.sessions.locator(".session-name")).to_have_text(["keep me"])
    expect(chat.page.get_by_role("heading", name="New chat")).to_be_visible()
    expect(chat.messages).to_have_count(0)
    assert not SESSION_URL.search(chat.page.url)
    assert chat.api("GET", f"/api/sessions/{session_id}").status_code == 404


@pytest.mark.browser
@pytest.mark.server
def test_html_in_messages_and_names_shows_as_text(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page()
    image = "<img src=x onerror=alert(1)>"
    script = "<script>alert(2)</script>"

    chat.send_and_wait(image)
    chat.send_and_wait(script)
    expect(chat.messages.nth(0).locator(".message-content")).to_have_text(image)
    expect(chat.messages.nth(2).locator(".message-content")).to_have_text(script)
    expect(chat.session(image)).to_be_visible()
    chat.page.get_by_role("button", name="Rename").click()
    chat.page.get_by_role("textbox", name="Name").fill("<b onmouseover=alert(3)>bold</b>")
    chat.page.get_by_role("textbox", name="Name").press("Enter")
    expect(chat.session("<b onmouseover=alert(3)>bold</b>")).to_be_visible()

    chat.page.reload()  # rendered again from what the API returns
    expect(chat.messages.nth(0).locator(".message-content")).to_have_text(image)
    expect(chat.messages.nth(2).locator(".message-content")).to_have_text(script)
    expect(chat.messages.nth(1).locator(".message-content")).to_contain_text(f"You said: {image}")
    assert chat.page.locator("#message-list img, #message-list script, #session-list b").count() == 0
    assert chat.dialogs == []


@pytest.mark.browser
@pytest.mark.server
def test_unknown_session_in_the_url_shows_that_it_does_not_exist(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page()

    chat.open("#/sessions/00000000-0000-0000-0000-000000000000")

    expect(chat.alert).to_contain_text("That chat does not exist; it may have been deleted.")
    expect(chat.page.get_by_role("heading", name="New chat")).to_be_visible()
    chat.page.get_by_role("button", name="Dismiss").click()
    expect(chat.alert).to_be_hidden()


@pytest.mark.browser
@pytest.mark.server
def test_rejected_message_shows_the_servers_400_and_stays_in_the_input(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(CHATSTORE_MAX_CONTENT_LENGTH="20")
    chat.send_and_wait("short")
    long_message = "this message is longer than twenty characters"

    chat.send(long_message)

    expect(chat.alert).to_contain_text("messages[0].content")
    expect(chat.input).to_have_value(long_message)
    expect(chat.input).to_be_enabled()
    expect(chat.messages).to_have_count(2)
    assert len(chat.stored_messages(chat.session_id())) == 2


@pytest.mark.browser
@pytest.mark.server
def test_message_to_a_session_deleted_elsewhere_shows_the_404(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page()
    chat.send_and_wait("soon gone")
    assert chat.api("DELETE", f"/api/sessions/{chat.session_id()}").status_code == 204

    chat.send("anyone there?")

    expect(chat.alert).to_contain_text(re.compile("not found", re.IGNORECASE))
    expect(chat.input).to_have_value("anyone there?")
    expect(chat.messages).to_have_count(2)
    expect(chat.sessions).to_have_count(0)  # the sidebar was refreshed


@pytest.mark.browser
@pytest.mark.server
def test_error_event_mid_stream_shows_the_reason_and_marks_the_reply_failed(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(CHATSTORE_MOCK_DELAY_MS=SLOW_MOCK_DELAY_MS)
    session_id = chat.api("POST", "/api/sessions", json={"name": "doomed"}).json()["id"]
    chat.open(f"#/sessions/{session_id}")
    expect(chat.page.get_by_role("heading", name="doomed")).to_be_visible()
    chat.send("hello")
    reply = chat.messages.nth(1)
    expect(reply.locator(".message-content")).to_contain_text("You said:")

    # Deleted while its reply streams: the server ends the stream with an `error` event.
    assert chat.api("DELETE", f"/api/sessions/{session_id}").status_code == 204

    expect(chat.alert).to_contain_text("The reply failed:")
    expect(reply).to_have_attribute("data-status", "error")
    expect(reply.locator(".message-status")).to_have_text("Failed before it finished")
    expect(chat.input).to_be_enabled()


@pytest.mark.browser
@pytest.mark.server
def test_server_down_shows_a_readable_error_and_keeps_the_message(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page()
    chat.send_and_wait("hello")
    chat.server.stop()

    chat.send("are you still there?")

    expect(chat.alert).to_have_text(
        "Cannot reach the chatstore server. Check that it is running, then try again."
    )
    expect(chat.input).to_have_value("are you still there?")
    expect(chat.input).to_be_enabled()
    expect(chat.messages).to_have_count(2)

    chat.page.get_by_role("button", name="Rename").click()
    chat.page.get_by_role("textbox", name="Name").fill("new name")
    chat.page.get_by_role("textbox", name="Name").press("Enter")
    expect(chat.page.get_by_role("dialog").get_by_role("alert")).to_contain_text(
        "Cannot reach the chatstore server"
    )


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize(
    ("name", "viewport", "color_scheme"),
    [("desktop-light", DESKTOP, "light"), ("desktop-dark", DESKTOP, "dark"), ("phone-light", PHONE, "light")],
)
def test_chat_view_screenshot(
    chat_page: Callable[..., ChatPage], name: str, viewport: dict[str, int], color_scheme: str
) -> None:
    chat = chat_page(viewport=viewport, color_scheme=color_scheme, CHATSTORE_MOCK_DELAY_MS="0")
    chat.send_and_wait("Plan a weekend in Lisbon")
    menu = chat.page.get_by_role("button", name="Show chats")
    new_chat = chat.page.get_by_role("button", name="New chat")
    on_phone = viewport is PHONE
    if on_phone:
        # The sidebar is a drawer behind the menu button.
        expect(new_chat).to_be_hidden()
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
    else:
        expect(menu).to_be_hidden()
    new_chat.click()
    chat.send_and_wait("What should I pack for a rainy week?\nWe leave on Friday.")
    chat.send_and_wait("And shoes?")
    ARTIFACTS.mkdir(exist_ok=True)

    if on_phone:
        menu.click()
        expect(chat.session("Plan a weekend in Lisbon")).to_be_visible()
        chat.page.screenshot(path=ARTIFACTS / f"chat-{name}-sessions.png")
        chat.session("What should I pack for a rainy week?").click()
        expect(menu).to_have_attribute("aria-expanded", "false")
    expect(chat.messages).to_have_count(4)
    chat.page.screenshot(path=ARTIFACTS / f"chat-{name}.png")


# ---- the Markdown renderer, in Chromium ---------------------------------------------------------

# Every element and attribute the renderer may produce; anything else in its output is a hole.
RENDERED_TAGS = {
    "p", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre", "ul", "ol", "li", "blockquote",
    "hr", "a", "span", "div", "button", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
RENDERED_ATTRIBUTES = {"class", "href", "target", "rel", "type", "start"}
SAFE_HREF = re.compile(r"^(https?://|mailto:)", re.IGNORECASE)


@pytest.fixture(scope="module")
def markdown(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """A tab on the page with ``window.markdown``: the module as the server serves it."""
    tmp_path = tmp_path_factory.mktemp("markdown")
    with running_servers(1, f"sqlite:///{tmp_path / 'chatstore.db'}", tmp_path, {}, name="markdown") as [
        server
    ]:
        context = browser.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.base_url}/")
        page.evaluate("async () => { window.markdown = await import('/static/markdown.js'); }")
        yield page
        context.close()
        assert errors == [], "the page threw"


def render(page: Page, source: str) -> str:
    return str(
        page.evaluate(
            "(source) => { const div = document.createElement('div');"
            " div.append(window.markdown.renderMarkdown(source)); return div.innerHTML; }",
            source,
        )
    )


def rendered_elements(page: Page, source: str) -> tuple[list[tuple[str, dict[str, str]]], str]:
    """Every element the source renders to, with its attributes, and the text of the whole."""
    tags, text = page.evaluate(
        """(source) => {
            const div = document.createElement('div');
            div.append(window.markdown.renderMarkdown(source));
            const tags = [...div.querySelectorAll('*')].map((node) =>
                [node.localName, Object.fromEntries([...node.attributes].map((a) => [a.name, a.value]))]);
            return [tags, div.textContent];
        }""",
        source,
    )
    return [(tag, attributes) for tag, attributes in tags], text


LINK = 'target="_blank" rel="noopener noreferrer nofollow"'


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize(
    ("source", "html"),
    [
        pytest.param(
            "Hello **bold**, *em*, ***both***, ~~gone~~, `code` and snake_case_name",
            "<p>Hello <strong>bold</strong>, <em>em</em>, <strong><em>both</em></strong>, <del>gone</del>, "
            "<code>code</code> and snake_case_name</p>",
            id="emphasis",
        ),
        pytest.param("line one\nline two\n\nnext", "<p>line one\nline two</p>\n<p>next</p>", id="paragraphs"),
        pytest.param(
            "# One\n## Two\n###### Six\n#nothing",
            "<h3>One</h3>\n<h4>Two</h4>\n<h6>Six</h6>\n<p>#nothing</p>",
            id="headings",
        ),
        pytest.param(
            "- a\n- b\n  - nested\n- c",
            '<ul><li><p class="tight">a</p></li><li><p class="tight">b</p>\n'
            '<ul><li><p class="tight">nested</p></li></ul></li><li><p class="tight">c</p></li></ul>',
            id="nested-list",
        ),
        pytest.param(
            "3. three\n4. four",
            '<ol start="3"><li><p class="tight">three</p></li><li><p class="tight">four</p></li></ol>',
            id="ordered",
        ),
        pytest.param(
            "1. **Step**\n\n   Details\n\n2. Next",
            "<ol><li><p><strong>Step</strong></p>\n<p>Details</p></li><li><p>Next</p></li></ol>",
            id="loose-list",
        ),
        pytest.param(
            "```python\nprint('<b>hi</b>')\n\n  indented\n```\nafter",
            '<div class="code-block"><div class="code-bar"><span class="code-language">python</span>'
            '<button class="button subtle small code-copy" type="button">Copy code</button></div>'
            "<pre><code>print('&lt;b&gt;hi&lt;/b&gt;')\n\n  indented</code></pre></div>\n<p>after</p>",
            id="fenced-code",
        ),
        pytest.param(
            "| a | b |\n|:--|--:|\n| 1 | `x|y` |\n| 2 \\| 3 | **z** |",
            '<div class="table-scroll"><table><thead><tr><th class="align-left">a</th>'
            '<th class="align-right">b</th></tr></thead><tbody><tr><td class="align-left">1</td>'
            '<td class="align-right"><code>x|y</code></td></tr><tr><td class="align-left">2 | 3</td>'
            '<td class="align-right"><strong>z</strong></td></tr></tbody>'
            "</table></div>",
            id="table",
        ),
        pytest.param(
            "> quoted\n> more\n\n---\n\ntext",
            "<blockquote><p>quoted\nmore</p></blockquote>\n<hr>\n<p>text</p>",
            id="quote-rule",
        ),
        pytest.param(
            "[site](https://example.com/a?b=1), <https://x.org>, https://y.org/p). [m](mailto:a@b.c)",
            f'<p><a href="https://example.com/a?b=1" {LINK}>site</a>, '
            f'<a href="https://x.org/" {LINK}>https://x.org</a>, '
            f'<a href="https://y.org/p" {LINK}>https://y.org/p</a>). <a href="mailto:a@b.c" {LINK}>m</a></p>',
            id="links",
        ),
        pytest.param("\\*not em\\* 2 * 3 * 4", "<p>*not em* 2 * 3 * 4</p>", id="escapes"),
    ],
)
def test_markdown_renders_each_construct(markdown: Page, source: str, html: str) -> None:
    assert render(markdown, source) == html


XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    '" onmouseover="alert(1)',
]
XSS_LINKS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "&#106;avascript:alert(1)",
    "&#x6A;avascript:alert(1)",
    "java%0ascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/x",
    "<javascript:alert(1)>",
]


def inert(elements: list[tuple[str, dict[str, str]]]) -> None:
    for tag, attributes in elements:
        assert tag in RENDERED_TAGS, tag
        assert set(attributes) <= RENDERED_ATTRIBUTES, attributes
        if "href" in attributes:
            assert SAFE_HREF.match(attributes["href"]), attributes["href"]


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("payload", XSS_PAYLOADS)
@pytest.mark.parametrize(
    "construct",
    [
        "{}",
        "**{}**",
        "*{}*",
        "~~{}~~",
        "`{}`",
        "# {}",
        "- {}",
        "1. {}",
        "> {}",
        "```{}\n{}\n```",
        "| {} | b |\n| --- | --- |\n| {} | `{}` |",
        "[{}](https://example.com)",
        "[x](https://example.com/{})",
        "![{}](https://example.com/i.png)",
    ],
)
def test_markdown_shows_html_in_every_construct_as_text(markdown: Page, construct: str, payload: str) -> None:
    elements, text = rendered_elements(markdown, construct.replace("{}", payload))

    inert(elements)
    if "(https://example.com/{})" not in construct:  # in an address it is the link's, not the text's
        assert payload.strip() in text


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("href", XSS_LINKS)
@pytest.mark.parametrize(
    "construct", ["[click]({})", "![click]({})", "<{}>", "{}", "| [click]({}) |\n| - |", "- [click]({})"]
)
def test_markdown_links_only_to_http_https_and_mailto(markdown: Page, construct: str, href: str) -> None:
    elements, _ = rendered_elements(markdown, construct.format(href))

    inert(elements)
    assert not [tag for tag, _ in elements if tag == "a"]


@pytest.mark.browser
@pytest.mark.server
def test_markdown_streamed_piece_by_piece_ends_as_the_whole_renders_and_keeps_finished_blocks(
    markdown: Page,
) -> None:
    source = (
        "# Plan\n\nFirst **day**: the castle.\n\n- one\n- two\n\n| a | b |\n| - | - |\n| 1 | 2 |\n\n"
        "```js\nlet x = `<b>`;\n\n```\n> done\n\nThe *end*."
    )
    result = markdown.evaluate(
        """(source) => {
            const root = document.createElement('div');
            const view = new window.markdown.MarkdownView(root);
            let first = null;
            let pendingMax = 0;
            for (let i = 0; i < source.length; i += 3) {
                view.append(source.slice(i, i + 3));
                view.render();
                if (view.kept > 0) first ??= root.firstChild;
                pendingMax = Math.max(pendingMax, view.source.length - view.kept);
            }
            const whole = document.createElement('div');
            whole.append(window.markdown.renderMarkdown(source));
            return {streamed: root.innerHTML, whole: whole.innerHTML, kept: root.firstChild === first,
                    pendingMax, text: view.text};
        }""",
        source,
    )

    assert result["streamed"] == result["whole"]
    assert result["text"] == source
    assert result["kept"], "a finished block was rendered again"
    # Only the unfinished blocks are rendered again: never much more than the longest block.
    assert result["pendingMax"] < 60


@pytest.mark.browser
@pytest.mark.server
def test_markdown_view_of_a_long_reply_renders_again_only_its_last_block(markdown: Page) -> None:
    pending = markdown.evaluate(
        """() => {
            const view = new window.markdown.MarkdownView(document.createElement('div'));
            for (let i = 0; i < 2000; i++) {
                view.append(`Paragraph ${i} with some **words**.\\n\\n`);
                view.render();
            }
            return [view.source.length, view.source.length - view.kept, view.root.children.length];
        }"""
    )

    length, rendered_again, blocks = pending
    assert length > 60_000
    assert rendered_again < 100
    assert blocks == 2000


@pytest.mark.browser
@pytest.mark.server
def test_search_snippet_makes_only_mark_an_element(markdown: Page) -> None:
    html = markdown.evaluate(
        """(snippet) => { const span = document.createElement('span');
            span.append(...window.markdown.snippetNodes(snippet)); return span.innerHTML; }""",
        "a &lt;b&gt; <mark>ferry</mark> &amp;amp; <img src=x onerror=alert(1)> "
        "<mark onclick=x>y</mark> &quot;q&#39;",
    )

    assert html == (
        "a &lt;b&gt; <mark>ferry</mark> &amp;amp; &lt;img src=x onerror=alert(1)&gt; "
        "&lt;mark onclick=x&gt;y&lt;/mark&gt; \"q'"
    )


# ---- the page with a real model: Markdown, copy, failures and retry ----------------------------

MARKDOWN_REPLY = """# Packing list

Bring **good shoes** and *a rain jacket*; see [the forecast](https://weather.example/lisbon).

1. Passport
2. Charger
   - USB-C cable

| Day | Plan |
| --- | ---: |
| Fri | `train` |

```python
print("<b>hello</b>")
```

That is all."""
CODE = 'print("<b>hello</b>")'


@pytest.fixture
def fake_model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def with_model(fake: FakeOpenAI) -> dict[str, str]:
    """The environment of a chatstore whose replies come from ``fake``."""
    return {
        "CHATSTORE_RESPONDER": "openai",
        "CHATSTORE_LLM_BASE_URL": fake.base_url,
        "CHATSTORE_LLM_MODEL": "fake",
    }


def pieces(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def clipboard(chat: ChatPage) -> str:
    return str(chat.page.evaluate("navigator.clipboard.readText()"))


def screenshot(chat: ChatPage, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    chat.page.screenshot(path=ARTIFACTS / f"{name}.png")


@pytest.mark.browser
@pytest.mark.server
def test_markdown_reply_from_a_model_is_rendered_as_it_streams_and_copied_as_written(
    chat_page: Callable[..., ChatPage], fake_model: FakeOpenAI
) -> None:
    fake_model.enqueue(reply(*pieces(MARKDOWN_REPLY)))
    chat = chat_page(**with_model(fake_model))
    chat.page.context.grant_permissions(["clipboard-read", "clipboard-write"])

    answer = chat.send_and_wait("What should I pack?").locator(".message-content")

    expect(answer.locator("h3")).to_have_text("Packing list")
    expect(answer.locator("strong")).to_have_text("good shoes")
    expect(answer.locator("em")).to_have_text("a rain jacket")
    expect(answer.get_by_role("link", name="the forecast")).to_have_attribute(
        "href", "https://weather.example/lisbon"
    )
    expect(answer.locator("ol > li")).to_have_count(2)
    expect(answer.locator("ol ul > li")).to_have_text("USB-C cable")
    expect(answer.locator("th")).to_have_text(["Day", "Plan"])
    expect(answer.locator("td")).to_have_text(["Fri", "train"])
    expect(answer.locator(".code-block code")).to_have_text(CODE)
    assert "**" not in (answer.text_content() or "")
    assert chat.page.locator("#message-list b").count() == 0
    stored = chat.stored_messages(chat.session_id())
    assert stored[1]["content"] == MARKDOWN_REPLY
    screenshot(chat, "markdown-desktop-light")

    answer.get_by_role("button", name="Copy code").click()
    expect(answer.locator(".code-copy")).to_have_text("Copied")  # its name says so, for a while
    assert clipboard(chat) == CODE
    reply_item = chat.messages.nth(1)
    reply_item.hover()
    reply_item.get_by_role("button", name="Copy message").click()
    assert clipboard(chat) == MARKDOWN_REPLY  # the Markdown as written, to paste elsewhere
    chat.messages.nth(0).get_by_role("button", name="Copy message").click()
    assert clipboard(chat) == "What should I pack?"

    chat.page.reload()  # rendered the same from what the API returns
    expect(chat.messages.nth(1).locator(".message-content h3")).to_have_text("Packing list")
    expect(chat.messages.nth(1).locator(".code-block code")).to_have_text(CODE)


@pytest.mark.browser
@pytest.mark.server
def test_failed_reply_says_what_happened_in_words_and_retry_asks_again(
    chat_page: Callable[..., ChatPage], fake_model: FakeOpenAI
) -> None:
    fake_model.enqueue(error_reply(503, {"error": {"message": "overloaded"}}))
    chat = chat_page(**with_model(fake_model))

    chat.send("Hello?")

    failed = chat.messages.nth(1)
    expect(failed).to_have_attribute("data-status", "error")
    expect(failed.locator(".failure-text")).to_have_text(
        "The model server had a problem of its own. Retry in a moment."
    )
    expect(chat.alert).to_have_text(
        "The reply failed: The model server had a problem of its own. Retry in a moment."
    )
    expect(failed.locator(".message-content")).to_be_hidden()  # no empty bubble
    detail = failed.locator(".failure-detail")
    expect(detail).to_be_hidden()
    failed.get_by_text("Details").click()
    expect(detail).to_have_text("the model server answered 503 Service Unavailable: overloaded")
    screenshot(chat, "failed-reply-desktop-light")
    retry = failed.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()

    retry.click()

    # Retry is a regenerate: the new reply is a sibling of the failed one, shown in its place.
    fresh = chat.messages.nth(1)
    expect(chat.messages).to_have_count(2)
    expect(fresh).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    expect(fresh.locator(".message-content")).to_contain_text("You said: Hello?")
    expect(fresh.get_by_role("group", name="Versions")).to_have_text(re.compile("2 / 2"))
    expect(fresh.get_by_role("button", name="Retry")).to_have_count(0)
    expect(chat.alert).to_be_hidden()
    stored = chat.stored_messages(chat.session_id())
    assert [(m["role"], m["status"], m["parent_id"]) for m in stored] == [
        ("user", "complete", None),
        ("assistant", "error", stored[0]["id"]),
        ("assistant", "complete", stored[0]["id"]),
    ]
    assert fresh.get_attribute("data-message-id") == stored[2]["id"]
    assert len(fake_model.requests) == 2
    chat.page.reload()  # the new reply's branch is the current one
    expect(chat.messages).to_have_count(2)
    expect(chat.messages.nth(1)).to_have_attribute("data-message-id", stored[2]["id"])

    # The failed reply is still there, one version back, and explained again from what is stored.
    chat.messages.nth(1).get_by_role("button", name="Previous version").click()
    expect(chat.messages.nth(1)).to_have_attribute("data-message-id", stored[1]["id"])
    expect(chat.messages.nth(1).locator(".failure-text")).to_have_text(
        "The model server had a problem of its own. Retry in a moment."
    )
    expect(chat.messages.nth(1).get_by_role("group", name="Versions")).to_have_text(re.compile("1 / 2"))


@pytest.mark.browser
@pytest.mark.server
def test_unreachable_model_server_is_explained_with_the_technical_detail_behind_a_toggle(
    chat_page: Callable[..., ChatPage],
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    chat = chat_page(CHATSTORE_RESPONDER="openai", CHATSTORE_LLM_BASE_URL=nobody, CHATSTORE_LLM_MODEL="m")

    chat.send("anyone?")

    failed = chat.messages.nth(1)
    expect(failed.locator(".failure-text")).to_have_text(
        "The model server could not be reached. Check that it is running at the address chatstore was given."
    )
    expect(chat.alert).not_to_contain_text("ConnectError")
    failed.get_by_text("Details").click()
    expect(failed.locator(".failure-detail")).to_contain_text(
        "could not reach the model server: ConnectError"
    )
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()


@pytest.mark.browser
@pytest.mark.server
def test_stopped_reply_can_be_retried(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page(CHATSTORE_MOCK_DELAY_MS=SLOW_MOCK_DELAY_MS)
    chat.send("tell me everything")
    stopped = chat.messages.nth(1)
    expect(stopped.locator(".message-content")).to_contain_text("You said:")
    chat.page.get_by_role("button", name="Stop").click()
    expect(stopped).to_have_attribute("data-status", "incomplete")

    stopped.get_by_role("button", name="Retry").click()

    fresh = chat.messages.nth(1)  # in the stopped reply's place, beside it
    expect(chat.messages).to_have_count(2)
    expect(fresh).to_have_attribute("data-status", "in_progress")
    chat.page.get_by_role("button", name="Stop").click()  # and this one can be stopped too
    expect(fresh).to_have_attribute("data-status", "incomplete")
    expect(fresh.get_by_role("group", name="Versions")).to_have_text(re.compile("2 / 2"))
    expect(fresh.get_by_role("button", name="Retry")).to_be_visible()
    stored = chat.stored_messages(chat.session_id())
    assert [(m["role"], m["finish_reason"]) for m in stored] == [
        ("user", None),
        ("assistant", "stopped"),
        ("assistant", "stopped"),
    ]
    assert stored[1]["parent_id"] == stored[2]["parent_id"] == stored[0]["id"]
    assert fresh.get_attribute("data-message-id") == stored[2]["id"]


@pytest.mark.browser
@pytest.mark.server
def test_a_reply_kept_while_the_database_is_away_says_it_is_not_saved_yet(
    chat_page: Callable[..., ChatPage], tmp_path: Path
) -> None:
    base = postgres_url()
    if base is None:
        skip_or_fail_in_ci(f"this test needs PostgreSQL: set {POSTGRES_URL_VARIABLE}")
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema(base))
        target = make_url(url)
        proxy = stack.enter_context(TcpProxy(target.host or "127.0.0.1", target.port or 5432))
        chat = chat_page(
            database_url=proxy.url_for(url),
            CHATSTORE_MOCK_DELAY_MS=SLOW_MOCK_DELAY_MS,
            CHATSTORE_PROGRESS_INTERVAL_MS="100",
        )
        chat.send("take your time")
        reply_item = chat.messages.nth(1)
        expect(reply_item.locator(".message-content")).to_contain_text("You said:")
        session_id = chat.session_id()

        proxy.cut()  # the database goes away while the reply streams; the reply ends without it

        status = reply_item.locator(".message-status")
        expect(status).to_have_text(
            "Not saved yet: the database is unavailable. "
            "The reply is kept and will be saved when it is back.",
            timeout=WHOLE_REPLY_TIMEOUT_MS,
        )
        expect(reply_item).to_have_attribute("data-kept", "true")
        expect(reply_item.locator(".message-failure")).to_be_hidden()
        expect(reply_item.get_by_role("button", name="Retry")).to_be_hidden()
        # The sidebar's refresh met the outage too: said in words, not as a stock phrase.
        expect(chat.alert).to_contain_text(re.compile("try again", re.IGNORECASE))
        expect(chat.alert).not_to_contain_text("Internal Server Error")
        shown = reply_item.locator(".message-content").text_content()
        screenshot(chat, "kept-reply-desktop-light")
        proxy.restore()

        stored = chat.wait_for_reply(session_id)
        assert stored["status"] == "complete"
        assert (shown or "").split() == stored["content"].split()


# ---- the API's features on the page: settings, search, export and import ------------------------


@pytest.mark.browser
@pytest.mark.server
def test_chat_settings_choose_the_model_and_system_prompt_the_model_server_is_sent(
    chat_page: Callable[..., ChatPage], fake_model: FakeOpenAI
) -> None:
    chat = chat_page(**with_model(fake_model))
    dialog = chat.page.get_by_role("dialog", name="Chat settings")
    model = dialog.get_by_role("textbox", name="Model")
    prompt = dialog.get_by_role("textbox", name="System prompt")

    chat.page.get_by_role("button", name="Settings").click()  # before the chat exists: kept for it
    expect(model).to_be_focused()
    model.fill("fake-large")
    prompt.fill("Answer in French.")
    screenshot(chat, "settings-desktop-light")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    chat.send_and_wait("Bonjour")

    sent = fake_model.requests[-1].body
    assert sent["model"] == "fake-large"
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
    stored = chat.api("GET", f"/api/sessions/{chat.session_id()}").json()["session"]["metadata"]
    assert stored == {"model": "fake-large", "system_prompt": "Answer in French."}

    chat.page.reload()
    chat.page.get_by_role("button", name="Settings").click()
    expect(model).to_have_value("fake-large")
    expect(prompt).to_have_value("Answer in French.")
    model.fill("")  # back to the server's default
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    chat.send_and_wait("Encore")

    assert fake_model.requests[-1].body["model"] == "fake"
    stored = chat.api("GET", f"/api/sessions/{chat.session_id()}").json()["session"]["metadata"]
    assert stored == {"system_prompt": "Answer in French."}


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def imported_session(chat: ChatPage, name: str | None, when: datetime, contents: list[str]) -> dict[str, Any]:
    """A session made through the API's import, with messages (user, assistant, …) from ``when``."""
    document = {
        "format": "chatstore.session",
        "version": 1,
        "exported_at": iso(datetime.now(UTC)),
        "session": {"name": name, "metadata": {}, "created_at": iso(when), "updated_at": iso(when)},
        "messages": [
            {
                "role": ("user", "assistant")[index % 2],
                "content": content,
                "created_at": iso(when + timedelta(seconds=index)),
            }
            for index, content in enumerate(contents)
        ],
    }
    response = chat.api("POST", "/api/sessions/import", json=document)
    assert response.status_code == 201, response.text
    session_id = response.json()["id"]
    return {"id": session_id, "messages": chat.stored_messages(session_id)}


@pytest.mark.browser
@pytest.mark.server
def test_search_shows_snippets_safely_and_jumps_to_the_message_found(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page()
    now = datetime.now(UTC)
    turns = [f"Day {index}: nothing to see." for index in range(40)]
    turns[21] = "Book the ferry to Lisbon & <b>back</b> at nine"
    trip = imported_session(chat, "Trip", now - timedelta(hours=2), turns)
    other = imported_session(chat, "Recipes", now - timedelta(hours=1), ["Soup", "Bread"])
    target = trip["messages"][21]
    chat.open(f"#/sessions/{other['id']}")
    chat.page.reload()  # the sidebar lists the chats made meanwhile
    expect(chat.page.get_by_role("heading", name="Recipes")).to_be_visible()
    search = chat.page.get_by_role("searchbox", name="Search messages")
    hits = chat.page.locator("#search-list .search-hit")

    search.fill("ferry")

    expect(hits).to_have_count(1)
    expect(hits.locator(".session-name")).to_have_text("Trip")
    expect(hits.locator("mark")).to_have_text("ferry")
    expect(hits.locator(".search-snippet")).to_contain_text(
        "& <b>back</b>"
    )  # the server's escaping, undone as text
    assert chat.page.locator("#search-list b").count() == 0
    expect(chat.page.locator("#session-list")).to_be_hidden()  # the results stand in for the list
    screenshot(chat, "search-desktop-light")
    hits.click()

    expect(chat.page.get_by_role("heading", name="Trip")).to_be_visible()
    found = chat.page.locator(f'[data-message-id="{target["id"]}"]')
    expect(found).to_have_class(re.compile(r"\bhighlighted\b"))
    expect(found).to_be_focused()
    expect(found).to_be_in_viewport()
    expect(chat.messages.last).not_to_be_in_viewport()  # it scrolled to the hit, not to the end
    assert f"/messages/{target['id']}" in chat.page.url
    chat.messages.last.scroll_into_view_if_needed()
    expect(found).not_to_be_in_viewport()
    hits.click()  # the same hit again, in the open chat
    expect(found).to_be_in_viewport()
    expect(found).to_have_class(re.compile(r"\bhighlighted\b"))

    search.fill("zzzz")
    expect(chat.page.locator("#search-status")).to_have_text("No messages match.")
    search.fill("!!!")  # no word to look for: the server's 400
    expect(chat.page.locator("#search-status")).to_have_text("Type a word to look for.")
    search.press("Escape")
    expect(search).to_have_value("")
    expect(chat.page.locator("#session-list")).to_be_visible()
    expect(chat.sessions).to_have_count(2)


@pytest.mark.browser
@pytest.mark.server
def test_export_downloads_markdown_and_json_and_import_brings_the_chat_back(
    chat_page: Callable[..., ChatPage], tmp_path: Path
) -> None:
    chat = chat_page()
    chat.send_and_wait("Hello export")
    original = chat.stored_messages(chat.session_id())
    export = chat.page.get_by_role("button", name="Export")

    export.click()
    with chat.page.expect_download() as markdown_download:
        chat.page.get_by_role("menuitem", name="Markdown (.md)").click()
    markdown_file = markdown_download.value
    assert markdown_file.suggested_filename.endswith(".md")
    assert "Hello export" in Path(markdown_file.path()).read_text()
    export.click()
    with chat.page.expect_download() as json_download:
        chat.page.get_by_role("menuitem", name="JSON (.json, to import again)").click()
    json_file = json_download.value
    assert json_file.suggested_filename.endswith(".json")
    exported = tmp_path / json_file.suggested_filename
    json_file.save_as(exported)

    with chat.page.expect_file_chooser() as chooser:
        chat.page.get_by_role("button", name="Import a chat…").click()
    chooser.value.set_files(exported)

    expect(chat.sessions.filter(has_text="Hello export")).to_have_count(2)
    expect(chat.page).not_to_have_url(re.compile(re.escape(original[0]["session_id"])))
    expect(chat.page.get_by_role("heading", name="Hello export")).to_be_visible()
    expect(chat.messages.locator(".message-content")).to_have_text([m["content"] for m in original])
    copy = chat.stored_messages(chat.session_id())
    assert [(m["role"], m["content"]) for m in copy] == [(m["role"], m["content"]) for m in original]

    not_json = tmp_path / "notes.json"
    not_json.write_text("these are not the droids")
    with chat.page.expect_file_chooser() as chooser:
        chat.page.get_by_role("button", name="Import a chat…").click()
    chooser.value.set_files(not_json)
    expect(chat.alert).to_have_text(
        "“notes.json” is not a chatstore export: it is not JSON. Export a chat as JSON to import it."
    )
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"hello": 1}')
    with chat.page.expect_file_chooser() as chooser:
        chat.page.get_by_role("button", name="Import a chat…").click()
    chooser.value.set_files(wrong)
    expect(chat.alert).to_contain_text("“wrong.json” could not be imported:")
    expect(chat.sessions).to_have_count(2)


# ---- orientation: times, days, names, the sidebar's menu ---------------------------------------


@pytest.mark.browser
@pytest.mark.server
def test_messages_show_their_time_on_hover(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page()
    chat.send_and_wait("What time is it?")
    stored = chat.stored_messages(chat.session_id())
    chat.page.reload()
    question = chat.messages.nth(0)
    time_label = question.locator(".message-time")
    opacity = "(node) => getComputedStyle(node).opacity"

    expect(time_label).to_have_attribute("datetime", stored[0]["created_at"])
    assert time_label.evaluate(opacity) == "0"
    question.hover()
    expect(time_label).to_have_css("opacity", "1")
    expect(time_label).to_have_text(re.compile(r"\d{1,2}:\d{2}"))
    expect(time_label).to_have_attribute("title", re.compile(str(datetime.now(UTC).year)))


@pytest.mark.browser
@pytest.mark.server
def test_sidebar_groups_chats_by_day_and_shows_unnamed_ones_by_their_first_message(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page()
    # The page's clock stands at today's noon, so a run near midnight sees the same days.
    now = datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0)
    long_ago = now - timedelta(days=60)
    for name, when in [
        ("Today's", now - timedelta(minutes=5)),
        ("Yesterday's", now - timedelta(days=1)),
        ("This week's", now - timedelta(days=3)),
        ("This month's", now - timedelta(days=10)),
    ]:
        imported_session(chat, name, when, ["Hi", "Hello"])
    imported_session(chat, None, long_ago, ["Where do penguins live?\nAnd why?", "Mostly south."])

    chat.page.clock.set_fixed_time(now)
    chat.page.reload()

    expect(chat.page.locator(".session-day")).to_have_text(
        ["Today", "Yesterday", "Previous 7 days", "Previous 30 days", long_ago.strftime("%B %Y")]
    )
    expect(chat.sessions.locator(".session-name")).to_have_text(
        ["Today's", "Yesterday's", "This week's", "This month's", "Where do penguins live? And why?"]
    )
    screenshot(chat, "sidebar-days-desktop-light")


@pytest.mark.browser
@pytest.mark.server
def test_an_unnamed_chat_is_a_new_chat_until_its_first_message_then_shown_by_it(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page()
    session_id = chat.api("POST", "/api/sessions", json={}).json()["id"]
    chat.open(f"#/sessions/{session_id}")
    chat.page.reload()
    expect(chat.page.get_by_role("heading", name="New chat")).to_be_visible()
    expect(chat.session("New chat")).to_be_visible()

    question = "Why is the sky blue in the day and red at sunset, and what does the air have to do with it?"
    chat.send_and_wait(question)

    expect(chat.page.get_by_role("heading", name=question)).to_be_visible()
    name = chat.session(question).locator(".session-name")
    expect(name).to_be_visible()
    # One line, cut with an ellipsis by the style sheet rather than in the text.
    assert name.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    assert name.evaluate("e => e.scrollWidth > e.clientWidth")
    assert chat.api("GET", f"/api/sessions/{session_id}").json()["session"]["name"] is None


@pytest.mark.browser
@pytest.mark.server
def test_rename_and_delete_from_the_sidebar_menu_of_a_chat_that_is_not_open(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page()
    chat.send_and_wait("first chat")
    chat.page.get_by_role("button", name="New chat").click()
    chat.send_and_wait("second chat")
    first = chat.session_row("first chat")
    first_id = first.get_attribute("data-session-id")
    options = first.get_by_role("button", name="Chat options")
    rename = chat.page.get_by_role("dialog", name="Rename chat")

    expect(options).to_have_accessible_description("first chat")
    options.click()
    menu = chat.page.get_by_role("menu", name="Chat")
    expect(menu.get_by_role("menuitem", name="Rename")).to_be_focused()
    screenshot(chat, "sidebar-menu-desktop-light")
    chat.page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(options).to_be_focused()
    options.click()
    menu.get_by_role("menuitem", name="Rename").click()
    expect(rename.get_by_role("textbox", name="Name")).to_have_value("first chat")
    rename.get_by_role("textbox", name="Name").fill("renamed")
    rename.get_by_role("textbox", name="Name").press("Enter")

    expect(chat.session("renamed")).to_be_visible()
    expect(chat.page.get_by_role("heading", name="second chat")).to_be_visible()  # the open chat stays
    assert chat.api("GET", f"/api/sessions/{first_id}").json()["session"]["name"] == "renamed"

    renamed = chat.session_row("renamed")
    renamed.get_by_role("button", name="Chat options").click()
    chat.page.get_by_role("menuitem", name="Delete").click()
    delete = chat.page.get_by_role("dialog", name="Delete chat?")
    expect(delete).to_contain_text("“renamed” and its 2 messages will be deleted")
    delete.get_by_role("button", name="Delete").click()

    expect(chat.sessions.locator(".session-name")).to_have_text(["second chat"])
    expect(chat.page.get_by_role("heading", name="second chat")).to_be_visible()
    expect(chat.messages).to_have_count(2)
    assert chat.api("GET", f"/api/sessions/{first_id}").status_code == 404


# ---- on a phone ---------------------------------------------------------------------------------


def placeholder_fits(chat: ChatPage) -> bool:
    return bool(
        chat.input.evaluate(
            """(input) => {
                const style = getComputedStyle(input);
                const context = document.createElement('canvas').getContext('2d');
                context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
                const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
                const room = input.clientWidth - padding;
                return context.measureText(input.placeholder).width <= room;
            }"""
        )
    )


@pytest.mark.browser
@pytest.mark.server
def test_on_a_touch_phone_enter_makes_a_new_line_and_the_placeholder_fits(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(viewport=PHONE, has_touch=True)
    assert chat.page.evaluate("matchMedia('(pointer: coarse)').matches")

    expect(chat.input).to_have_attribute("placeholder", "Write a message")
    assert placeholder_fits(chat)
    chat.input.tap()
    chat.page.keyboard.insert_text("line one")
    chat.input.press("Enter")
    chat.page.keyboard.insert_text("line two")
    expect(chat.input).to_have_value("line one\nline two")
    expect(chat.messages).to_have_count(0)

    chat.page.get_by_role("button", name="Send").tap()

    expect(chat.messages.nth(1)).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    assert chat.stored_messages(chat.session_id())[0]["content"] == "line one\nline two"


@pytest.mark.browser
@pytest.mark.server
def test_on_a_narrow_window_with_a_keyboard_the_placeholder_fits_and_enter_sends(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(viewport=PHONE)

    expect(chat.input).to_have_attribute("placeholder", "Write a message. Enter sends.")
    assert placeholder_fits(chat)
    chat.send_and_wait("sent with Enter")
    chat.page.set_viewport_size(DESKTOP)
    expect(chat.input).to_have_attribute(
        "placeholder", "Write a message. Enter sends, Shift+Enter starts a new line."
    )
    assert placeholder_fits(chat)


@pytest.mark.browser
@pytest.mark.server
def test_newest_message_stays_in_view_when_the_screen_changes_size(
    chat_page: Callable[..., ChatPage],
) -> None:
    chat = chat_page(viewport=PHONE, has_touch=True, CHATSTORE_MOCK_DELAY_MS="0")
    session_id = chat.api("POST", "/api/sessions", json={"name": "Long chat"}).json()["id"]
    for text in ["one", "two", "three", "four"]:
        with httpx.stream(
            "POST",
            f"{chat.server.base_url}/api/chat",
            json={"session_id": session_id, "messages": [{"role": "user", "content": text}]},
            timeout=10.0,
        ) as response:
            response.read()
    chat.open(f"#/sessions/{session_id}")
    newest = chat.messages.last
    expect(chat.messages).to_have_count(8)
    shows_the_end(chat)
    expect(chat.messages.first).not_to_be_in_viewport()

    for size in [{"width": 390, "height": 480}, {"width": 390, "height": 844}, {"width": 360, "height": 400}]:
        chat.page.set_viewport_size(size)  # a keyboard that opens, closes; another phone
        shows_the_end(chat)
        expect(newest).to_be_in_viewport()

    chat.input.tap()
    chat.page.keyboard.insert_text("a\nlonger\nmessage\nthat grows the box")  # the composer grows
    shows_the_end(chat)
    expect(newest).to_be_in_viewport()


def shows_the_end(chat: ChatPage) -> None:
    """Wait until the conversation is scrolled to its very end."""
    chat.page.wait_for_function(
        "() => { const s = document.getElementById('messages-region');"
        " return s.scrollHeight - s.scrollTop - s.clientHeight < 2; }",
        timeout=5000,
    )


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_phone_header_keeps_room_for_the_title_and_folds_the_actions_behind_one_button(
    chat_page: Callable[..., ChatPage], color_scheme: str
) -> None:
    chat = chat_page(viewport=PHONE, has_touch=True, color_scheme=color_scheme)
    chat.input.tap()
    chat.page.keyboard.insert_text("A rather long question about trains")
    chat.page.get_by_role("button", name="Send").tap()
    expect(chat.messages.nth(1)).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    title = chat.page.get_by_role("heading", name="A rather long question about trains")
    toggle = chat.page.get_by_role("button", name="Chat actions")
    rename = chat.page.get_by_role("button", name="Rename")

    expect(rename).to_be_hidden()
    box = title.bounding_box()
    assert box is not None
    assert box["width"] >= 0.6 * PHONE["width"], box
    toggle.tap()

    expect(toggle).to_have_attribute("aria-expanded", "true")
    for name in ["Settings", "Export", "Rename", "Delete"]:
        expect(chat.page.get_by_role("button", name=name, exact=True)).to_be_visible()
    screenshot(chat, f"phone-actions-{color_scheme}")
    rename.tap()
    expect(chat.page.get_by_role("dialog", name="Rename chat")).to_be_visible()
    chat.page.keyboard.press("Escape")
    expect(rename).to_be_hidden()


# ---- screenshots of the page's features -------------------------------------------------------


def send_with_the_button(chat: ChatPage, text: str) -> Locator:
    """Send as on a touch screen, where Enter makes a new line; returns the reply."""
    count = chat.messages.count()
    chat.input.fill(text)
    chat.page.get_by_role("button", name="Send").click()
    return chat.messages.nth(count + 1)


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize(
    ("name", "viewport", "color_scheme"),
    [
        ("desktop-light", DESKTOP, "light"),
        ("desktop-dark", DESKTOP, "dark"),
        ("phone-light", PHONE, "light"),
        ("phone-dark", PHONE, "dark"),
    ],
)
def test_feature_screenshots(
    chat_page: Callable[..., ChatPage],
    fake_model: FakeOpenAI,
    name: str,
    viewport: dict[str, int],
    color_scheme: str,
) -> None:
    """The page's features in Chromium, in ``tests/artifacts/``: a Markdown reply and a failed one,
    search, chat settings and the chat's actions; desktop and phone, light and dark."""
    on_phone = viewport is PHONE
    fake_model.enqueue(reply(*pieces(MARKDOWN_REPLY)), error_reply(503, {"error": {"message": "overloaded"}}))
    chat = chat_page(
        viewport=viewport, color_scheme=color_scheme, has_touch=on_phone, **with_model(fake_model)
    )
    first = send_with_the_button(chat, "What should I pack?")
    expect(first).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    failed = send_with_the_button(chat, "And the weather?")
    expect(failed).to_have_attribute("data-status", "error")
    failed.get_by_text("Details").click()
    chat.page.get_by_role("button", name="Dismiss").click()
    expect(failed.get_by_role("button", name="Retry")).to_be_in_viewport()
    screenshot(chat, f"failed-{name}")
    first.scroll_into_view_if_needed()
    chat.page.locator(".markdown h3").first.scroll_into_view_if_needed()
    expect(first.locator(".code-block")).to_be_visible()
    screenshot(chat, f"markdown-{name}")

    if on_phone:
        chat.page.get_by_role("button", name="Show chats").click()
    chat.page.get_by_role("searchbox", name="Search messages").fill("pack")
    expect(chat.page.locator("#search-list .search-hit mark")).to_have_text(["pack"])
    screenshot(chat, f"search-{name}")
    chat.page.locator("#search-list .search-hit").click()
    expect(chat.page.locator(".message.highlighted")).to_be_in_viewport()

    if on_phone:
        chat.page.get_by_role("button", name="Chat actions").click()
        screenshot(chat, f"actions-{name}")
    chat.page.get_by_role("button", name="Settings").click()
    dialog = chat.page.get_by_role("dialog", name="Chat settings")
    dialog.get_by_role("textbox", name="Model").fill("qwen2.5:7b")
    dialog.get_by_role("textbox", name="System prompt").fill("Answer in one short paragraph.")
    screenshot(chat, f"settings-{name}")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()


@pytest.mark.browser
@pytest.mark.server
def test_a_long_chat_opens_quickly_at_its_newest_message(chat_page: Callable[..., ChatPage]) -> None:
    chat = chat_page()
    turns = [
        f"Question {index}?"
        if index % 2 == 0
        else f"## Answer {index}\n\n- **point** one\n- `code` two\n\n{MARKDOWN_REPLY}"
        for index in range(LONG_CHAT_MESSAGES)
    ]
    session = imported_session(chat, "Long", datetime.now(UTC) - timedelta(hours=1), turns)

    started = time.monotonic()
    chat.open(f"#/sessions/{session['id']}")
    expect(chat.messages).to_have_count(LONG_CHAT_MESSAGES, timeout=LONG_CHAT_OPEN_TIMEOUT_MS)
    shows_the_end(chat)
    elapsed = time.monotonic() - started

    assert elapsed < LONG_CHAT_OPEN_TIMEOUT_MS / 1000, elapsed
    expect(chat.messages.last.locator("h4")).to_have_text(f"Answer {LONG_CHAT_MESSAGES - 1}")
    chat.send_and_wait("and one more")
    expect(chat.messages).to_have_count(LONG_CHAT_MESSAGES + 2)
