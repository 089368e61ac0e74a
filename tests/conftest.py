"""Fixtures: backend -> database_url -> settings -> app -> client, plus a direct view of the database.

A test that needs an app of its own builds it with ``make_app`` (or ``make_client``) from the
test's settings: ``make_app(responder=ScriptedResponder(["hi"]), api_key="k" * 32)``.

Every API test runs on SQLite and on PostgreSQL. PostgreSQL is the server named by
``CHATSTORE_TEST_POSTGRES_URL``; without it those cases skip. Each test gets its own SQLite file or
its own PostgreSQL schema, dropped afterwards.
"""

import dataclasses
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, create_engine

from chatstore.app import create_app
from chatstore.core.db import resolve_url
from chatstore.core.settings import Settings
from chatstore.services.responders import Responder
from tests.helpers import DatabaseView, postgres_schema

POSTGRES_URL_VARIABLE = "CHATSTORE_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgres"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Skips, one line per reason with how many tests it skipped (pyproject's ``-r`` leaves out
    pytest's own list, one line per test: some 135 without PostgreSQL)."""
    reasons = Counter(_skip_reason(report) for report in terminalreporter.stats.get("skipped", []))
    if not reasons:
        return
    terminalreporter.section("skipped, by reason")
    for reason, count in reasons.most_common():
        terminalreporter.line(f"SKIPPED {count}: {reason}")


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return message.removeprefix("Skipped: ")


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_URL_VARIABLE) or None


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip a test whose server or tool is missing here; in CI (``CI=true``) that is a failure."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI must run every test)")
    pytest.skip(reason)


# The Node packages the tests drive, installed by `npm ci --prefix tests/node`.
NODE_DIR = Path(__file__).parent / "node"


def node_with(packages: tuple[str, ...], needed_by: str) -> str:
    """The path of ``node``, once it and ``packages`` are installed; else skip (fail in CI)."""
    found = shutil.which("node")
    if found is None:
        skip_or_fail_in_ci(f"{needed_by} need Node.js: node is not on PATH")
    for package in packages:
        if not (NODE_DIR / "node_modules" / package / "package.json").is_file():
            skip_or_fail_in_ci(f"{needed_by} need {package}: run npm ci --prefix tests/node")
    return str(found)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and postgres_url() is None:
        skip_or_fail_in_ci(
            f"PostgreSQL tests need {POSTGRES_URL_VARIABLE}, e.g. postgresql://postgres@127.0.0.1:5432/test"
        )
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'chatstore.db'}"
        return
    base = postgres_url()
    assert base is not None
    with postgres_schema(base) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, mock_delay_ms=0)


AppFactory = Callable[..., Litestar]
ClientFactory = Callable[..., TestClient[Litestar]]


@pytest.fixture
def make_app(settings: Settings) -> AppFactory:
    """Build an app from the test's settings, with ``setting_overrides`` replaced in them."""

    def make(responder: Responder | None = None, **setting_overrides: Any) -> Litestar:
        return create_app(dataclasses.replace(settings, **setting_overrides), responder=responder)

    return make


@pytest.fixture
def make_client(make_app: AppFactory) -> ClientFactory:
    """A test client of ``make_app(...)``, to use as ``with make_client(...) as client:``."""

    def make(responder: Responder | None = None, **setting_overrides: Any) -> TestClient[Litestar]:
        return TestClient(make_app(responder, **setting_overrides))

    return make


@pytest.fixture
def app(make_app: AppFactory) -> Litestar:
    return make_app()


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(resolve_url(database_url, blocking=True))
    yield engine
    engine.dispose()


@pytest.fixture
def db(db_engine: Engine) -> DatabaseView:
    """Reads the database behind the app directly, to check what was really stored."""
    return DatabaseView(db_engine)


@pytest.fixture
def make_session(client: TestClient[Litestar]) -> Any:
    def make(**body: Any) -> dict[str, Any]:
        response = client.post("/api/sessions", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return make
