"""The page's conversation trees in Chromium: edits that branch, versions to switch between,
regenerated replies, deleting a message and what follows it, forks and their names, and messages
that follow the branch shown while another device switches branches or deletes messages.

Each test runs against a real server on SQLite and on PostgreSQL (when
``CHATSTORE_TEST_POSTGRES_URL`` names one), and checks what the page shows against what the API
stores. The browser, the server and the page object come from ``test_web`` (through this folder's
``conftest.py``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.web.test_web import (
    DESKTOP,
    PHONE,
    RELOAD_MOCK_DELAY_MS,
    SESSION_URL,
    WHOLE_REPLY_TIMEOUT_MS,
    ChatPage,
    screenshot,
    send_with_the_button,
)

# Without Playwright the browser fixture skips, or fails in CI, with the reason.
with contextlib.suppress(ImportError):
    from playwright.sync_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import Locator


@pytest.fixture
def tree_page(chat_page: Callable[..., ChatPage], database_url: str) -> Callable[..., ChatPage]:
    def start(**options: Any) -> ChatPage:
        return chat_page(database_url=database_url, **options)

    return start


def branch(chat: ChatPage) -> list[dict[str, Any]]:
    """The session's current branch, as the API returns it."""
    response = chat.api("GET", f"/api/sessions/{chat.session_id()}")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def shown_ids(chat: ChatPage) -> list[str | None]:
    return [item.get_attribute("data-message-id") for item in chat.messages.all()]


def versions(message: Locator) -> Locator:
    return message.get_by_role("group", name="Versions")


def edit(chat: ChatPage, message: Locator, text: str) -> None:
    """Edit a message of the person's in place and send it; waits for the reply."""
    message.hover()
    message.get_by_role("button", name="Edit message").click()
    box = message.get_by_role("textbox", name="Edit message")
    expect(box).to_be_focused()
    box.fill(text)
    box.press("Enter")
    expect(chat.messages.last).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    expect(chat.input).to_be_enabled()


def message_action(chat: ChatPage, message: Locator, action: str) -> None:
    """Choose ``action`` in the ⋯ menu of a message."""
    message.hover()
    message.get_by_role("button", name="More actions").click()
    chat.page.get_by_role("menu", name="Message").get_by_role("menuitem", name=action).click()


@contextlib.contextmanager
def another_device(chat: ChatPage) -> Iterator[ChatPage]:
    """The chat open in ``chat`` open in a second browser too, as on another device."""
    browser = chat.page.context.browser
    assert browser is not None
    context = browser.new_context(viewport=DESKTOP, reduced_motion="reduce")
    other = ChatPage(context.new_page(), chat.server)
    other.page.on("pageerror", lambda error: other.errors.append(str(error)))
    try:
        other.open(f"#/sessions/{chat.session_id()}")
        expect(other.messages).to_have_count(chat.messages.count())
        yield other
    finally:
        context.close()
    assert other.errors == [], "the other page threw"


def chat_requests(chat: ChatPage) -> list[dict[str, Any]]:
    """The bodies of the page's ``POST /api/chat`` requests, as they are sent from now on."""
    bodies: list[dict[str, Any]] = []
    chat.page.on(
        "request",
        lambda request: (
            bodies.append(request.post_data_json)
            if request.method == "POST" and request.url.endswith("/api/chat")
            else None
        ),
    )
    return bodies


@pytest.mark.browser
@pytest.mark.server
def test_an_edit_is_a_new_branch_and_the_versions_switch_back_and_forth(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page()
    chat.send_and_wait("Plan a trip")
    chat.send_and_wait("By train")
    [q1, r1, q2, r2] = [m["id"] for m in branch(chat)]
    question = chat.messages.nth(2)

    # Escape leaves the message as it was.
    question.hover()
    question.get_by_role("button", name="Edit message").click()
    question.get_by_role("textbox", name="Edit message").press("Escape")
    expect(question.get_by_role("textbox")).to_have_count(0)
    expect(question.get_by_role("button", name="Edit message")).to_be_focused()
    expect(question.locator(".message-content")).to_have_text("By train")
    assert len(chat.stored_messages(chat.session_id())) == 4

    edit(chat, question, "By bike")

    expect(chat.messages).to_have_count(4)
    expect(chat.messages.nth(2).locator(".message-content")).to_have_text("By bike")
    expect(chat.messages.nth(3).locator(".message-content")).to_contain_text("You said: By bike")
    expect(versions(chat.messages.nth(2))).to_have_text(re.compile(r"2 / 2"))
    expect(versions(chat.messages.nth(0))).to_be_hidden()
    current = branch(chat)
    q2b, r2b = current[2]["id"], current[3]["id"]
    assert [m["content"] for m in current][:3] == ["Plan a trip", current[1]["content"], "By bike"]
    assert current[2]["parent_id"] == r1  # beside the old message, below the same reply
    assert current[2]["sibling_ids"] == [q2, q2b]
    assert shown_ids(chat) == [q1, r1, q2b, r2b]
    stored = chat.stored_messages(chat.session_id())
    assert {m["id"]: m["parent_id"] for m in stored} == {q1: None, r1: q1, q2: r1, r2: q2, q2b: r1, r2b: q2b}

    chat.messages.nth(2).get_by_role("button", name="Previous version").click()

    expect(chat.messages.nth(2).locator(".message-content")).to_have_text("By train")
    expect(versions(chat.messages.nth(2))).to_have_text(re.compile(r"1 / 2"))
    expect(chat.messages.nth(2).get_by_role("button", name="Previous version")).to_be_disabled()
    # The keyboard stays on the switcher.
    expect(chat.messages.nth(2).get_by_role("button", name="Next version")).to_be_focused()
    assert shown_ids(chat) == [q1, r1, q2, r2]
    session = chat.api("GET", f"/api/sessions/{chat.session_id()}").json()["session"]
    assert session["current_message_id"] == r2  # the switch went on down to the reply

    chat.page.reload()  # the same branch, from the server
    expect(chat.messages.nth(2).locator(".message-content")).to_have_text("By train")
    assert shown_ids(chat) == [q1, r1, q2, r2]

    chat.messages.nth(2).get_by_role("button", name="Next version").click()

    expect(chat.messages.nth(2).locator(".message-content")).to_have_text("By bike")
    expect(versions(chat.messages.nth(2))).to_have_text(re.compile(r"2 / 2"))
    assert shown_ids(chat) == [q1, r1, q2b, r2b]
    # The next turn follows the branch shown.
    chat.send_and_wait("How long?")
    assert branch(chat)[4]["parent_id"] == r2b
    chat.page.reload()
    expect(chat.messages).to_have_count(6)
    expect(chat.messages.nth(2).locator(".message-content")).to_have_text("By bike")


@pytest.mark.browser
@pytest.mark.server
def test_an_edit_the_server_refuses_stays_in_the_editor_and_the_branch_as_it_was(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page(CHATSTORE_MAX_CONTENT_LENGTH="20")
    chat.send_and_wait("short")
    before = shown_ids(chat)
    question = chat.messages.nth(0)
    question.hover()
    question.get_by_role("button", name="Edit message").click()
    box = question.get_by_role("textbox", name="Edit message")
    box.fill("this edit is longer than twenty characters")

    box.press("Enter")

    expect(chat.alert).to_contain_text("messages[0].content")
    expect(box).to_have_value("this edit is longer than twenty characters")  # nothing lost
    assert shown_ids(chat) == before
    assert len(chat.stored_messages(chat.session_id())) == 2
    question.get_by_role("button", name="Cancel").click()
    expect(question.locator(".message-content")).to_have_text("short")


@pytest.mark.browser
@pytest.mark.server
def test_regenerate_makes_a_new_reply_beside_the_old_one(tree_page: Callable[..., ChatPage]) -> None:
    chat = tree_page()
    chat.send_and_wait("Name a colour")
    chat.send_and_wait("And a fruit")
    [q1, r1, _, _] = [m["id"] for m in branch(chat)]
    first_reply = chat.messages.nth(1)
    first_reply.hover()

    first_reply.get_by_role("button", name="Regenerate").click()

    # The new reply answers the same question, in place of the old one and what followed it.
    fresh = chat.messages.nth(1)
    expect(chat.messages).to_have_count(2)
    expect(fresh).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    expect(versions(fresh)).to_have_text(re.compile(r"2 / 2"))
    current = branch(chat)
    assert current[0]["id"] == q1
    r1b = current[1]["id"]
    assert (current[1]["parent_id"], current[1]["sibling_ids"]) == (q1, [r1, r1b])
    assert shown_ids(chat) == [q1, r1b]
    assert len(chat.stored_messages(chat.session_id())) == 5  # the old reply's branch stays

    fresh.get_by_role("button", name="Previous version").click()

    expect(chat.messages).to_have_count(4)  # the old reply, and the turn that followed it
    expect(versions(chat.messages.nth(1))).to_have_text(re.compile(r"1 / 2"))
    expect(chat.messages.nth(2).locator(".message-content")).to_have_text("And a fruit")
    assert [m["id"] for m in branch(chat)][:2] == [q1, r1]


@pytest.mark.browser
@pytest.mark.server
def test_delete_asks_first_then_deletes_the_message_and_what_follows_it(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page()
    chat.send_and_wait("Keep this")
    chat.send_and_wait("Drop this")
    [q1, r1, q2, _] = [m["id"] for m in branch(chat)]
    dialog = chat.page.get_by_role("dialog", name="Delete message?")

    message_action(chat, chat.messages.nth(2), "Delete…")
    expect(dialog).to_contain_text("“Drop this” and the 1 message after it will be deleted")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()

    expect(dialog).to_be_hidden()
    expect(chat.messages).to_have_count(4)
    assert len(chat.stored_messages(chat.session_id())) == 4

    message_action(chat, chat.messages.nth(2), "Delete…")
    dialog.get_by_role("button", name="Delete").click()

    expect(dialog).to_be_hidden()
    expect(chat.messages).to_have_count(2)
    assert shown_ids(chat) == [q1, r1]
    assert [m["id"] for m in chat.stored_messages(chat.session_id())] == [q1, r1]
    session = chat.api("GET", f"/api/sessions/{chat.session_id()}").json()["session"]
    assert session["current_message_id"] == r1
    assert chat.api("DELETE", f"/api/messages/{q2}").status_code == 404
    expect(chat.session("Keep this")).to_contain_text("2 messages")
    chat.page.reload()
    expect(chat.messages).to_have_count(2)


@pytest.mark.browser
@pytest.mark.server
def test_deleting_a_version_shows_the_version_beside_it(tree_page: Callable[..., ChatPage]) -> None:
    chat = tree_page()
    chat.send_and_wait("Hi")
    chat.send_and_wait("Tea?")
    edit(chat, chat.messages.nth(2), "Coffee?")
    [q1, r1, q2b, r2b] = [m["id"] for m in branch(chat)]
    stored = chat.stored_messages(chat.session_id())
    q2, r2 = stored[2]["id"], stored[3]["id"]

    message_action(chat, chat.messages.nth(2), "Delete…")
    dialog = chat.page.get_by_role("dialog", name="Delete message?")
    expect(dialog).to_contain_text("“Coffee?” and the 1 message after it will be deleted")
    dialog.get_by_role("button", name="Delete").click()

    expect(chat.messages.nth(2).locator(".message-content")).to_have_text("Tea?")
    expect(versions(chat.messages.nth(2))).to_be_hidden()  # the only version left
    assert shown_ids(chat) == [q1, r1, q2, r2]
    assert {m["id"] for m in chat.stored_messages(chat.session_id())} == {q1, r1, q2, r2}
    assert chat.api("GET", f"/api/sessions/{chat.session_id()}").json()["session"]["current_message_id"] == r2
    assert q2b not in shown_ids(chat) and r2b not in shown_ids(chat)


@pytest.mark.browser
@pytest.mark.server
def test_fork_opens_a_new_chat_holding_the_branch(tree_page: Callable[..., ChatPage]) -> None:
    chat = tree_page()
    chat.send_and_wait("Soup recipes")
    chat.send_and_wait("Something cold")
    original_id = chat.session_id()
    [q1, r1, _, _] = branch(chat)

    message_action(chat, chat.messages.nth(1), "Fork into a new chat")

    expect(chat.page).not_to_have_url(re.compile(re.escape(original_id)))
    expect(chat.page).to_have_url(SESSION_URL)
    fork_id = chat.session_id()
    expect(chat.messages).to_have_count(2)
    expect(chat.messages.locator(".message-content")).to_have_text([q1["content"], r1["content"]])
    # Both chats are in the sidebar, told apart by name, the fork marked as the one open.
    expect(chat.sessions).to_have_count(2)
    expect(chat.session("Soup recipes")).to_have_attribute("href", f"#/sessions/{original_id}")
    expect(chat.session("Soup recipes (fork)")).to_have_attribute("href", f"#/sessions/{fork_id}")
    current_link = chat.page.locator("#session-list .session-link[aria-current='page']")
    expect(current_link).to_have_attribute("href", f"#/sessions/{fork_id}")
    expect(chat.page.get_by_role("heading", name="Soup recipes (fork)", exact=True)).to_be_visible()
    fork = chat.api("GET", f"/api/sessions/{fork_id}").json()
    assert fork["session"]["name"] == "Soup recipes (fork)"
    assert fork["session"]["forked_from"] == {"session_id": original_id, "message_id": r1["id"]}
    assert [(m["role"], m["content"]) for m in fork["messages"]] == [
        ("user", q1["content"]),
        ("assistant", r1["content"]),
    ]
    assert len(chat.stored_messages(original_id)) == 4  # the original is as it was

    chat.send_and_wait("Warm, then")  # the fork goes on by itself
    assert len(chat.stored_messages(fork_id)) == 4
    assert len(chat.stored_messages(original_id)) == 4


@pytest.mark.browser
@pytest.mark.server
def test_forks_of_one_chat_are_numbered_and_a_fork_of_a_fork_counts_on(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page()
    chat.send_and_wait("Knots")
    original_url = chat.page.url
    message_action(chat, chat.messages.nth(1), "Fork into a new chat")
    expect(chat.page.get_by_role("heading", name="Knots (fork)", exact=True)).to_be_visible()

    message_action(chat, chat.messages.nth(1), "Fork into a new chat")  # a fork of the fork
    expect(chat.page.get_by_role("heading", name="Knots (fork 2)", exact=True)).to_be_visible()
    chat.page.goto(original_url)
    expect(chat.page.get_by_role("heading", name="Knots", exact=True)).to_be_visible()
    message_action(chat, chat.messages.nth(0), "Fork into a new chat")

    expect(chat.page.get_by_role("heading", name="Knots (fork 3)", exact=True)).to_be_visible()
    expect(chat.messages).to_have_count(1)
    names = sorted(session["name"] for session in chat.api("GET", "/api/sessions").json())
    assert names == ["Knots", "Knots (fork 2)", "Knots (fork 3)", "Knots (fork)"]
    expect(chat.sessions).to_have_count(4)


@pytest.mark.browser
@pytest.mark.server
def test_a_fork_of_a_chat_without_a_name_has_none_and_shows_its_first_message(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page()
    created = chat.api("POST", "/api/sessions", json={})
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    turn = chat.api(
        "POST",
        "/api/chat",
        json={"session_id": session_id, "messages": [{"role": "user", "content": "Bread"}]},
    )
    assert turn.status_code == 200, turn.text
    chat.open(f"#/sessions/{session_id}")
    expect(chat.messages).to_have_count(2)

    message_action(chat, chat.messages.nth(1), "Fork into a new chat")

    expect(chat.page).not_to_have_url(re.compile(re.escape(session_id)))
    fork = chat.api("GET", f"/api/sessions/{chat.session_id()}").json()["session"]
    assert (fork["name"], fork["forked_from"]["session_id"]) == (None, session_id)
    expect(chat.page.get_by_role("heading", name="Bread", exact=True)).to_be_visible()
    expect(chat.sessions.locator(".session-name")).to_have_text(["Bread", "Bread"])


@pytest.mark.browser
@pytest.mark.server
def test_a_fork_of_a_name_at_the_servers_limit_is_cut_to_fit(tree_page: Callable[..., ChatPage]) -> None:
    chat = tree_page(CHATSTORE_MAX_NAME_LENGTH="20")
    chat.send_and_wait("Twenty letters, long")  # the chat is named after it: 20 characters
    assert chat.api("GET", f"/api/sessions/{chat.session_id()}").json()["session"]["name"] == (
        "Twenty letters, long"
    )

    message_action(chat, chat.messages.nth(1), "Fork into a new chat")

    expect(chat.page.get_by_role("heading", name="Twenty lette… (fork)", exact=True)).to_be_visible()
    expect(chat.alert).to_be_hidden()
    fork = chat.api("GET", f"/api/sessions/{chat.session_id()}").json()
    assert fork["session"]["name"] == "Twenty lette… (fork)"
    assert len(fork["messages"]) == 2


# ---- sending on the branch shown ------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.server
def test_a_message_follows_the_branch_shown_when_another_device_switched_branches(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page()
    sent = chat_requests(chat)
    chat.send_and_wait("Pick a city")
    edit(chat, chat.messages.nth(0), "Pick a town")
    [town, town_reply] = [m["id"] for m in branch(chat)]
    with another_device(chat) as other:
        # The other device shows the first version and makes it the session's current branch.
        other.messages.nth(0).get_by_role("button", name="Previous version").click()
        expect(other.messages.nth(0).locator(".message-content")).to_have_text("Pick a city")
        city_reply = branch(chat)[1]["id"]
        assert city_reply != town_reply

        chat.send_and_wait("A small one")  # from the page that still shows the town

        stored = chat.stored_messages(chat.session_id())
        assert [(m["content"], m["parent_id"]) for m in stored[-2:]] == [
            ("A small one", town_reply),
            (stored[-1]["content"], stored[-2]["id"]),
        ]
        assert [m["id"] for m in branch(chat)] == [town, town_reply, stored[-2]["id"], stored[-1]["id"]]
        assert shown_ids(chat) == [town, town_reply, stored[-2]["id"], stored[-1]["id"]]
        # A chat's first message follows nothing; each later one names the message shown before it.
        assert [body.get("parent_id", "absent") for body in sent] == [None, None, town_reply]

        other.send_and_wait("A big one")  # and the other device's message follows what it shows

        stored = chat.stored_messages(chat.session_id())
        assert stored[-2]["content"] == "A big one"
        assert stored[-2]["parent_id"] == city_reply


@pytest.mark.browser
@pytest.mark.server
def test_a_message_after_one_deleted_elsewhere_is_kept_in_the_composer_and_the_chat_reloaded(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page()
    chat.send_and_wait("Keep this")
    chat.send_and_wait("Lose this")
    [q1, r1, q2, _] = [m["id"] for m in branch(chat)]
    with another_device(chat) as other:
        message_action(other, other.messages.nth(2), "Delete…")
        other.page.get_by_role("dialog", name="Delete message?").get_by_role("button", name="Delete").click()
        expect(other.messages).to_have_count(2)

    chat.send("And then?")  # below the reply deleted on the other device

    expect(chat.alert).to_have_text(
        "Your message was not sent: the message it followed was deleted in another tab or on another device. "
        "The chat now shows what is left; your message is still in the box below, to send again."
    )
    expect(chat.messages).to_have_count(2)
    assert shown_ids(chat) == [q1, r1]
    expect(chat.input).to_have_value("And then?")
    expect(chat.input).to_be_enabled()
    expect(chat.input).to_be_focused()
    assert [m["id"] for m in chat.stored_messages(chat.session_id())] == [q1, r1]  # nothing stored

    chat.input.press("Enter")  # sent again, now below the message shown last

    expect(chat.messages.nth(3)).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    expect(chat.alert).to_be_hidden()
    expect(chat.input).to_have_value("")
    stored = chat.stored_messages(chat.session_id())
    assert [(m["content"], m["parent_id"]) for m in stored[:3]] == [
        ("Keep this", None),
        (stored[1]["content"], q1),
        ("And then?", r1),
    ]
    assert q2 not in {m["id"] for m in stored}


@pytest.mark.browser
@pytest.mark.server
def test_an_edit_of_a_message_deleted_elsewhere_is_kept_in_the_composer_and_the_chat_reloaded(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page()
    chat.send_and_wait("Keep this")
    chat.send_and_wait("Edit this")
    [q1, r1, q2, _] = [m["id"] for m in branch(chat)]
    assert chat.api("DELETE", f"/api/messages/{r1}").status_code == 204  # from another device

    question = chat.messages.nth(2)
    question.hover()
    question.get_by_role("button", name="Edit message").click()
    question.get_by_role("textbox", name="Edit message").fill("Edited")
    question.get_by_role("textbox", name="Edit message").press("Enter")

    expect(chat.alert).to_contain_text("Your edit was not sent: the message you edited was deleted")
    expect(chat.messages).to_have_count(1)
    assert shown_ids(chat) == [q1]
    expect(chat.page.get_by_role("textbox", name="Edit message")).to_have_count(0)
    expect(chat.input).to_have_value("Edited")
    assert [m["id"] for m in chat.stored_messages(chat.session_id())] == [q1]
    assert q2 not in shown_ids(chat)


@pytest.mark.browser
@pytest.mark.server
def test_reload_while_a_regenerated_reply_streams_shows_its_branch_growing(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page(CHATSTORE_MOCK_DELAY_MS=RELOAD_MOCK_DELAY_MS)
    chat.send_and_wait("Tell me about ferries")
    [question_id, old_id] = shown_ids(chat)
    chat.messages.nth(1).hover()
    chat.messages.nth(1).get_by_role("button", name="Regenerate").click()
    fresh = chat.messages.nth(1)
    expect(fresh.locator(".message-content")).to_contain_text("You said:")
    expect(fresh).to_have_attribute("data-status", "in_progress")
    # While it streams, the branch stays as it is: no edit, switch or regenerate.
    expect(chat.messages.nth(0).get_by_role("button", name="Edit message")).to_be_hidden()
    expect(fresh.get_by_role("button", name="Previous version")).to_be_disabled()
    expect(fresh.get_by_role("button", name="Regenerate")).to_be_hidden()
    new_id = fresh.get_attribute("data-message-id")
    assert new_id not in (None, old_id)

    chat.page.reload()

    expect(chat.messages).to_have_count(2)
    expect(fresh).to_have_attribute("data-message-id", new_id)
    expect(fresh).to_have_attribute("data-status", "in_progress")
    expect(versions(fresh)).to_have_text(re.compile(r"2 / 2"))
    expect(fresh).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    stored = chat.wait_for_reply(chat.session_id())
    assert (stored["id"], stored["parent_id"], stored["status"]) == (new_id, question_id, "complete")
    expect(fresh.locator(".message-content")).to_have_text(stored["content"])
    expect(fresh.get_by_role("button", name="Previous version")).to_be_enabled()


@pytest.mark.browser
@pytest.mark.server
def test_a_search_hit_on_another_branch_shows_that_branch(tree_page: Callable[..., ChatPage]) -> None:
    chat = tree_page()
    chat.send_and_wait("Apples or pears?")
    edit(chat, chat.messages.nth(0), "Cherries or plums?")  # a new first message
    session_id = chat.session_id()
    [apples, apples_reply] = [m["id"] for m in chat.stored_messages(session_id)][:2]
    expect(chat.messages.nth(0).locator(".message-content")).to_have_text("Cherries or plums?")
    hits = chat.page.locator("#search-list .search-hit")

    chat.page.get_by_role("searchbox", name="Search messages").fill("apples")
    expect(hits).to_have_count(2)  # the question and its reply
    hits.filter(has=chat.page.locator(".session-meta", has_text=re.compile("^You"))).click()

    found = chat.page.locator(f'[data-message-id="{apples}"]')
    expect(found).to_have_class(re.compile(r"\bhighlighted\b"))
    expect(chat.messages.nth(0).locator(".message-content")).to_have_text("Apples or pears?")
    expect(versions(chat.messages.nth(0))).to_have_text(re.compile(r"1 / 2"))
    assert shown_ids(chat) == [apples, apples_reply]
    assert f"#/sessions/{session_id}/messages/{apples}" in chat.page.url
    session = chat.api("GET", f"/api/sessions/{session_id}").json()["session"]
    assert session["current_message_id"] == apples_reply  # so a reload shows it too
    chat.page.reload()
    expect(chat.messages.nth(0).locator(".message-content")).to_have_text("Apples or pears?")


@pytest.mark.browser
@pytest.mark.server
def test_on_a_touch_phone_the_controls_show_without_hover_and_an_edit_is_sent_with_its_button(
    tree_page: Callable[..., ChatPage],
) -> None:
    chat = tree_page(viewport=PHONE, has_touch=True)
    sent = send_with_the_button(chat, "Which platform?")
    expect(sent).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    question = chat.messages.nth(0)
    pencil = question.get_by_role("button", name="Edit message")
    # No hover on a touch screen: the controls are in view (opacity 1) as they are.
    assert pencil.evaluate("e => getComputedStyle(e).opacity") == "1"

    pencil.tap()
    box = question.get_by_role("textbox", name="Edit message")
    box.press("End")
    box.press("Enter")  # a new line, as in the composer on a touch screen
    chat.page.keyboard.insert_text("Platform 2?")
    expect(box).to_have_value("Which platform?\nPlatform 2?")
    question.get_by_role("button", name="Send").tap()

    expect(chat.messages.nth(1)).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    expect(chat.messages.nth(0).locator(".message-content")).to_have_text("Which platform?\nPlatform 2?")
    expect(versions(chat.messages.nth(0))).to_have_text(re.compile(r"2 / 2"))
    assert branch(chat)[0]["content"] == "Which platform?\nPlatform 2?"
    assert len(chat.stored_messages(chat.session_id())) == 4


# ---- screenshots ----------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize(
    ("name", "viewport", "color_scheme"),
    [("desktop-light", DESKTOP, "light"), ("desktop-dark", DESKTOP, "dark"), ("phone-light", PHONE, "light")],
)
def test_branches_screenshots(
    chat_page: Callable[..., ChatPage], name: str, viewport: dict[str, int], color_scheme: str
) -> None:
    """A chat with an edited message and a regenerated reply, its menu open, in
    ``tests/artifacts/branches-*.png`` (the README shows copies from ``docs/screenshots/``)."""
    on_phone = viewport is PHONE
    chat = chat_page(
        viewport=viewport, color_scheme=color_scheme, has_touch=on_phone, CHATSTORE_MOCK_DELAY_MS="0"
    )
    for text in ["Plan a weekend in Lisbon", "Where should we stay?"]:
        # On a touch screen Enter makes a new line: the Send button sends.
        sent = send_with_the_button(chat, text)
        expect(sent).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    edit_box_text = "Where should we stay, near the river?"
    question = chat.messages.nth(2)
    question.hover()
    question.get_by_role("button", name="Edit message").click()
    box = question.get_by_role("textbox", name="Edit message")
    box.fill(edit_box_text)
    question.get_by_role("button", name="Send").click()
    expect(chat.messages.nth(3)).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    reply = chat.messages.nth(3)
    reply.hover()
    reply.get_by_role("button", name="Regenerate").click()
    expect(versions(chat.messages.nth(3))).to_have_text(re.compile(r"2 / 2"))
    expect(chat.messages.nth(3)).to_have_attribute("data-status", "complete", timeout=WHOLE_REPLY_TIMEOUT_MS)
    expect(chat.input).to_be_enabled()
    chat.messages.nth(3).hover()
    chat.messages.nth(3).get_by_role("button", name="More actions").click()
    expect(chat.page.get_by_role("menu", name="Message")).to_be_visible()

    screenshot(chat, f"branches-{name}")
