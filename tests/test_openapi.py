"""The OpenAPI schema: valid 3.1, and every endpoint with every status code a client can get."""

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from openapi_spec_validator import validate

import chatstore.app
from chatstore.app import create_app
from chatstore.core.settings import Settings

EXPECTED = {
    ("post", "/api/sessions"): {"201", "400", "413", "503", "507"},
    ("get", "/api/sessions"): {"200", "503"},
    ("get", "/api/sessions/{session_id}"): {"200", "400", "404", "503"},
    ("delete", "/api/sessions/{session_id}"): {"204", "404", "503", "507"},
    ("post", "/api/chat"): {"200", "400", "404", "413", "503", "507"},
    ("patch", "/api/sessions/{session_id}"): {"200", "400", "404", "413", "503", "507"},
    ("get", "/api/sessions/{session_id}/messages"): {"200", "400", "404", "503"},
    ("get", "/api/sessions/{session_id}/export"): {"200", "400", "404", "503"},
    ("post", "/api/sessions/import"): {"201", "400", "413", "503", "507"},
    ("get", "/healthz"): {"200", "503"},
    ("get", "/api/search"): {"200", "400", "503"},
    ("post", "/api/sessions/{session_id}/regenerate"): {"200", "400", "404", "409", "413", "503", "507"},
    ("post", "/api/sessions/{session_id}/fork"): {"201", "400", "404", "413", "503", "507"},
    ("delete", "/api/messages/{message_id}"): {"204", "404", "503", "507"},
    ("get", "/api/messages/{message_id}/stream"): {"200", "400", "404", "503"},
    ("post", "/api/messages/{message_id}/stop"): {"200", "404", "503", "507"},
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    database = tmp_path_factory.mktemp("openapi") / "app.db"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{database}"))) as client:
        response = client.get("/schema/openapi.json")
        assert response.status_code == 200
        assert client.get("/schema").status_code == 200
        return dict(response.json())


def test_the_schema_is_valid_openapi_3_1(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.1")
    validate(schema)


def test_every_endpoint_documents_its_status_codes(schema: dict[str, Any]) -> None:
    documented = {(method, path) for path, item in schema["paths"].items() for method in item}
    assert documented == set(EXPECTED)
    for (method, path), codes in EXPECTED.items():
        assert codes <= set(schema["paths"][path][method]["responses"]), (method, path)


def test_operation_ids_are_unique_and_named(schema: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in schema["paths"].values() for op in item.values()]
    assert sorted(ids) == sorted(set(ids))
    assert set(ids) == {
        "createSession",
        "listSessions",
        "getSession",
        "deleteSession",
        "chat",
        "updateSession",
        "listMessages",
        "exportSession",
        "importSession",
        "getHealth",
        "searchMessages",
        "regenerateReply",
        "followReply",
        "stopReply",
        "forkSession",
        "deleteMessage",
    }


def test_the_chat_response_is_an_event_stream(schema: dict[str, Any]) -> None:
    ok = schema["paths"]["/api/chat"]["post"]["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    for event in ("start", "delta", "done", "error"):
        assert f"`{event}`" in ok["description"]


def test_the_session_body_is_optional_and_the_location_header_documented(schema: dict[str, Any]) -> None:
    create = schema["paths"]["/api/sessions"]["post"]
    assert create["requestBody"]["required"] is False
    assert create["responses"]["201"]["headers"]["Location"]["schema"] == {"type": "string"}


def test_wire_names_not_attribute_names(schema: dict[str, Any]) -> None:
    session = schema["components"]["schemas"]["SessionRead"]["properties"]
    assert "metadata" in session and "meta" not in session
    message_in = schema["components"]["schemas"]["MessageIn"]["properties"]
    assert message_in["role"]["enum"] == ["system", "user", "assistant"]
    assert message_in["content"]["minLength"] == 1


def test_the_app_module_exposes_app_and_create_app() -> None:
    assert isinstance(chatstore.app.app, Litestar)
    assert isinstance(chatstore.app.create_app(), Litestar)


def test_paged_lists_document_their_parameters_and_headers(schema: dict[str, Any]) -> None:
    for path in ("/api/sessions", "/api/sessions/{session_id}/messages"):
        operation = schema["paths"][path]["get"]
        assert {"limit", "cursor"} <= {p["name"] for p in operation["parameters"]}
        assert {"Link", "X-Next-Cursor"} <= set(operation["responses"]["200"]["headers"])


def test_database_refusals_are_documented_with_retry_after(schema: dict[str, Any]) -> None:
    for path, method in (("/api/sessions", "get"), ("/api/chat", "post")):
        refused = schema["paths"][path][method]["responses"]["503"]
        assert refused["headers"]["Retry-After"]["schema"] == {"type": "integer"}
        assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "507" not in schema["paths"]["/api/sessions"]["get"]["responses"]
