"""Access control: the API key, the schema's bearer scheme, CORS, and the warning when the API is open."""

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from chatstore.__main__ import open_access_warning
from chatstore.core.settings import Settings, SettingsError
from tests.conftest import AppFactory, ClientFactory
from tests.helpers import DatabaseView, parse_sse
from tests.servers import ServerProcess, free_port

KEY = "first-key-0123456789abcdef"
OTHER_KEY = "second-key-0123456789abcdef"
ORIGIN = "https://chat.example.com"
SOME_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def keyed_client(make_client: ClientFactory) -> Iterator[TestClient[Litestar]]:
    with make_client(api_key=f"{KEY}, {OTHER_KEY}", cors_origins=ORIGIN) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (method, path) under /api in the schema, path parameters filled with a well-formed id."""
    operations = []
    for path, item in schema["paths"].items():
        if path.startswith("/api/"):
            concrete = path
            for parameter in ("{session_id}", "{message_id}", "{chat_id}"):
                concrete = concrete.replace(parameter, SOME_ID)
            operations += [(method.upper(), concrete) for method in item]
    return operations


def test_without_a_key_every_api_operation_is_401(
    keyed_client: TestClient[Litestar], db: DatabaseView
) -> None:
    operations = api_operations(keyed_client.get("/schema/openapi.json").json())
    assert len(operations) >= 9

    for method, path in operations:
        response = keyed_client.request(method, path, json={"session_id": SOME_ID, "messages": []})
        assert response.status_code == 401, (method, path, response.text)
        assert response.json() == {
            "status_code": 401,
            "detail": "this API needs a key: send the header `Authorization: Bearer <key>`",
        }
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert db.scalar("SELECT count(*) FROM sessions") == 0


def test_a_wrong_key_is_401_and_not_echoed(keyed_client: TestClient[Litestar], db: DatabaseView) -> None:
    wrong = KEY[:-1] + "X"
    for headers in (bearer(wrong), bearer(KEY + "0"), {"Authorization": f"Basic {KEY}"}, bearer("")):
        response = keyed_client.post("/api/sessions", json={"name": "no"}, headers=headers)
        assert response.status_code == 401, headers
        assert KEY not in response.text and wrong not in response.text
        assert all(KEY not in value and wrong not in value for value in response.headers.values())
    assert (
        keyed_client.get("/api/sessions", headers=bearer(wrong)).json()["detail"]
        == "the API key is not valid"
    )
    assert (
        'error="invalid_token"'
        in keyed_client.get("/api/sessions", headers=bearer(wrong)).headers["WWW-Authenticate"]
    )
    assert db.scalar("SELECT count(*) FROM sessions") == 0


def test_every_configured_key_works(keyed_client: TestClient[Litestar]) -> None:
    created = keyed_client.post("/api/sessions", json={"name": "a"}, headers=bearer(KEY))
    assert created.status_code == 201
    session_id = created.json()["id"]
    # The scheme's name is case-insensitive (RFC 7235).
    read = keyed_client.get(f"/api/sessions/{session_id}", headers={"Authorization": f"bearer {OTHER_KEY}"})
    assert read.status_code == 200
    chat = keyed_client.post(
        "/api/chat",
        json={"session_id": session_id, "messages": [{"role": "user", "content": "hi"}]},
        headers=bearer(OTHER_KEY),
    )
    assert [event.event for event in parse_sse(chat.text)][-1] == "done"
    assert keyed_client.delete(f"/api/sessions/{session_id}", headers=bearer(KEY)).status_code == 204


def test_the_page_the_schema_and_the_health_check_need_no_key(keyed_client: TestClient[Litestar]) -> None:
    assert keyed_client.get("/healthz").status_code == 200
    assert keyed_client.get("/schema/openapi.json").status_code == 200
    assert keyed_client.get("/schema").status_code == 200
    assert keyed_client.get("/").status_code == 200


def test_the_key_never_reaches_the_log(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(api_key=KEY, log_level="debug")
    # The app's logging set-up replaces the root handlers, caplog's among them: listen directly.
    logger = logging.getLogger("chatstore")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        with TestClient(app) as client:
            client.get("/api/sessions", headers=bearer(KEY[:-1] + "X"))
            client.get("/api/sessions", headers=bearer(KEY))
    finally:
        logger.removeHandler(caplog.handler)
    assert [record.access["status"] for record in caplog.records if record.name == "chatstore.access"] == [
        401,
        200,
    ]
    assert KEY[:-1] not in caplog.text


def test_the_schema_declares_the_bearer_schemes_on_api_operations_only(
    keyed_client: TestClient[Litestar],
) -> None:
    schema = keyed_client.get("/schema/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert (schemes["bearer"]["type"], schemes["bearer"]["scheme"]) == ("http", "bearer")
    assert (schemes["bearerJWT"]["type"], schemes["bearerJWT"]["scheme"]) == ("http", "bearer")
    assert schemes["bearerJWT"]["bearerFormat"] == "JWT"
    assert "bearerFormat" not in schemes["bearer"]
    assert "security" not in schema
    for path, item in schema["paths"].items():
        for operation in item.values():
            if path.startswith("/api/"):
                assert operation["security"] == [{"bearer": []}, {"bearerJWT": []}], path
                assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"
                }
            else:
                assert "security" not in operation and "401" not in operation["responses"], path


def test_without_a_key_the_api_is_open_and_the_schema_says_the_key_is_optional(
    client: TestClient[Litestar],
) -> None:
    assert client.post("/api/sessions").status_code == 201
    assert client.get("/api/sessions", headers=bearer("anything-at-all-0123")).status_code == 200
    operation = client.get("/schema/openapi.json").json()["paths"]["/api/sessions"]["post"]
    assert operation["security"] == [{}, {"bearer": []}, {"bearerJWT": []}]
    # The schema is the API's, the same with or without keys: it says what a key's absence gets.
    assert "CHATSTORE_API_KEY" in operation["responses"]["401"]["description"]


@pytest.mark.parametrize(
    "value", ["short", "has space in the middle!", "x" * 15, f"{KEY},tooshort", "ключ-ключ-ключ-ключ"]
)
def test_unusable_keys_stop_start_up_without_being_quoted(value: str) -> None:
    with pytest.raises(SettingsError, match="CHATSTORE_API_KEY") as raised:
        Settings.from_env({"CHATSTORE_API_KEY": value})
    assert value not in str(raised.value)
    assert "tooshort" not in str(raised.value)


def test_keys_are_a_comma_separated_list_and_never_printed() -> None:
    settings = Settings.from_env({"CHATSTORE_API_KEY": f" {KEY} ,{OTHER_KEY},"})
    assert settings.api_keys == (KEY, OTHER_KEY)
    assert KEY not in repr(settings)


def test_cors_origins_must_be_web_origins() -> None:
    with pytest.raises(SettingsError, match="CHATSTORE_CORS_ORIGINS"):
        Settings.from_env({"CHATSTORE_CORS_ORIGINS": "chat.example.com"})
    settings = Settings.from_env({"CHATSTORE_CORS_ORIGINS": "https://a.example/, http://localhost:5173"})
    assert settings.cors_origin_list == ("https://a.example", "http://localhost:5173")


def test_the_chat_stream_preflight_is_answered_for_an_allowed_origin(
    keyed_client: TestClient[Litestar],
) -> None:
    response = keyed_client.options(
        "/api/chat",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = {
        header.strip().lower() for header in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed


def test_cross_origin_responses_expose_the_paging_and_location_headers(
    keyed_client: TestClient[Litestar],
) -> None:
    response = keyed_client.post("/api/sessions", headers={"Origin": ORIGIN, **bearer(KEY)})
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = {
        header.strip().lower() for header in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"location", "link", "x-next-cursor"} <= exposed


def test_other_origins_get_no_cors_headers(keyed_client: TestClient[Litestar]) -> None:
    preflight = keyed_client.options(
        "/api/chat",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = keyed_client.get("/api/sessions", headers={"Origin": "https://evil.example", **bearer(KEY)})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_without_cors_origins_there_is_no_cors(client: TestClient[Litestar]) -> None:
    response = client.get("/api/sessions", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    ("host", "warns"),
    [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("localhost", False),
        ("::1", False),
        ("0.0.0.0", True),
        ("::", True),
        ("192.168.1.20", True),
        ("chat.internal", True),
    ],
)
def test_listening_beyond_loopback_without_a_key_warns(host: str, warns: bool) -> None:
    assert (open_access_warning(host, Settings()) is not None) is warns
    assert open_access_warning(host, Settings(api_key=KEY)) is None


def start_on_all_interfaces(tmp_path: Path, env: dict[str, str]) -> ServerProcess:
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatstore", "--host", "0.0.0.0", "--port", str(port)],
            env={**os.environ, "CHATSTORE_LOG_LEVEL": "warning", **env},
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(process, f"http://127.0.0.1:{port}", log_path)


@pytest.mark.server
@pytest.mark.parametrize("api_key", ["", KEY])
def test_the_server_warns_at_start_up_when_it_listens_openly(tmp_path: Path, api_key: str) -> None:
    server = start_on_all_interfaces(
        tmp_path, {"CHATSTORE_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "CHATSTORE_API_KEY": api_key}
    )
    try:
        server.wait_until_ready()
    finally:
        server.stop()
    assert ("without CHATSTORE_API_KEY" in server.log()) is not api_key
    assert KEY not in server.log()
