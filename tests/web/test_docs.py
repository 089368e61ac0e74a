"""The interactive API docs under ``/schema``: Swagger UI from an installed package, working offline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.app import create_app
from chatstore.core.settings import Settings
from tests.servers import running_servers
from tests.web.test_web import browser as browser  # Chromium, started once per module

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Request, Route

DOCS_PATHS = ["/schema", "/schema/swagger"]


@pytest.fixture
def web_client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    # The docs do not depend on the engine, so this app is built by hand, on SQLite only.
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'chatstore.db'}"))) as client:
        yield client


def referenced_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


@pytest.mark.parametrize("path", DOCS_PATHS)
def test_docs_reference_only_files_the_server_serves(web_client: TestClient[Litestar], path: str) -> None:
    response = web_client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    urls = referenced_urls(response.text)
    assert len(urls) == 4  # the icon, the style sheet, Swagger UI and the script that starts it
    for url in urls:
        assert url.startswith("/schema/assets/"), url  # same origin, no CDN
        asset = web_client.get(url)
        assert asset.status_code == 200, url
        assert asset.content
    assert "<script>" not in response.text  # no inline script: the policy below runs none


def test_docs_have_their_own_policy_and_the_page_keeps_its_own(web_client: TestClient[Litestar]) -> None:
    docs_policy = web_client.get("/schema").headers["content-security-policy"]
    page_policy = web_client.get("/").headers["content-security-policy"]

    for policy in (docs_policy, page_policy):
        assert "default-src 'none'" in policy
        assert "script-src 'self';" in policy  # no inline script, no eval, nothing from elsewhere
        assert "style-src 'self';" in policy
        assert "connect-src 'self'" in policy
        assert "unsafe" not in policy


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("docs.js", "text/javascript"),
    ],
)
def test_docs_files_are_served_with_their_media_type(
    web_client: TestClient[Litestar], name: str, media_type: str
) -> None:
    response = web_client.get(f"/schema/assets/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/schema/assets/index.html", "/schema/assets/../docs.py", "/schema/assets/"]
)
def test_docs_files_are_only_those_named(web_client: TestClient[Litestar], path: str) -> None:
    assert web_client.get(path).status_code == 404


def test_schema_json_is_still_where_it_was(web_client: TestClient[Litestar]) -> None:
    response = web_client.get("/schema/openapi.json")

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("path", DOCS_PATHS)
def test_docs_render_every_operation_in_chromium_without_the_network(
    browser: Browser, tmp_path: Path, path: str
) -> None:
    with running_servers(1, f"sqlite:///{tmp_path / 'chatstore.db'}", tmp_path) as [server]:
        schema = httpx.get(f"{server.base_url}/schema/openapi.json", timeout=10).json()
        operations = sum(len(item) for item in schema["paths"].values())
        context = browser.new_context()
        try:
            page = context.new_page()
            elsewhere: list[str] = []
            problems: list[str] = []

            def only_the_server(route: Route, request: Request) -> None:
                if request.url.startswith(f"{server.base_url}/"):
                    route.continue_()
                else:  # as if there were no internet
                    elsewhere.append(request.url)
                    route.abort()

            page.route("**/*", only_the_server)
            page.on("pageerror", lambda error: problems.append(str(error)))
            # A refused script or style (the policy) is reported on the console as an error.
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))

            page.goto(f"{server.base_url}{path}")
            blocks = page.locator(".opblock")
            blocks.nth(operations - 1).wait_for(timeout=20_000)

            assert blocks.count() == operations
            assert page.locator(".opblock-summary-path", has_text="/api/chat").count() >= 1
            assert page.locator(".info .title", has_text="chatstore").count() == 1
            # And it works: an operation tried from the docs gets the server's answer.
            list_sessions = page.locator("#operations-sessions-listSessions")
            list_sessions.locator(".opblock-summary").click()
            list_sessions.get_by_role("button", name="Try it out").click()
            list_sessions.get_by_role("button", name="Execute").click()
            answer = list_sessions.locator(".live-responses-table tr.response .response-col_status")
            answer.wait_for(timeout=10_000)
            assert answer.inner_text().strip() == "200"
            assert elsewhere == []
            assert problems == []
        finally:
            context.close()
