"""The browser and the chat page of ``test_web``, for the page's other test modules."""

from tests.web.test_web import browser, chat_page  # noqa: F401 (fixtures)
