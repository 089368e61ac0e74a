"""The OpenAPI schema: valid 3.1, and every endpoint with every status code a client can get."""

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from openapi_spec_validator import validate

import chatstore.app
from chatstore.app import create_app
from chatstore.core.settings import Settings
from tests.helpers import parse_sse

EXPECTED = {
    ("post", "/api/sessions"): {"201", "400", "401", "413", "503", "507"},
    ("get", "/api/sessions"): {"200", "401", "503"},
    ("get", "/api/sessions/{session_id}"): {"200", "400", "401", "404", "503"},
    ("delete", "/api/sessions/{session_id}"): {"204", "401", "404", "503", "507"},
    ("post", "/api/chat"): {"200", "400", "401", "404", "413", "503", "507"},
    ("patch", "/api/sessions/{session_id}"): {"200", "400", "401", "404", "413", "503", "507"},
    ("get", "/api/sessions/{session_id}/messages"): {"200", "400", "401", "404", "503"},
    ("get", "/api/sessions/{session_id}/export"): {"200", "400", "401", "404", "503"},
    ("post", "/api/sessions/import"): {"201", "400", "401", "413", "503", "507"},
    ("get", "/healthz"): {"200", "503"},
    ("get", "/api/search"): {"200", "400", "401", "503"},
    ("post", "/api/sessions/{session_id}/regenerate"): {
        "200",
        "400",
        "401",
        "404",
        "409",
        "413",
        "503",
        "507",
    },
    ("post", "/api/sessions/{session_id}/fork"): {"201", "400", "401", "404", "413", "503", "507"},
    ("delete", "/api/messages/{message_id}"): {"204", "401", "404", "503", "507"},
    ("get", "/api/messages/{message_id}/stream"): {"200", "400", "401", "404", "503"},
    ("post", "/api/messages/{message_id}/stop"): {"200", "401", "404", "503", "507"},
    ("post", "/api/ui/chat"): {"200", "400", "401", "404", "409", "413", "503", "507"},
    ("get", "/api/ui/chat/{chat_id}/stream"): {"200", "204", "401", "404", "503"},
    ("get", "/api/ui/chat/{chat_id}/messages"): {"200", "401", "404", "503"},
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
        "uiChat",
        "uiChatStream",
        "uiChatMessages",
    }


STREAMS = [
    ("/api/chat", "post"),
    ("/api/sessions/{session_id}/regenerate", "post"),
    ("/api/messages/{message_id}/stream", "get"),
]
EVENTS = {
    "start": "StreamStart",
    "delta": "StreamDelta",
    "done": "StreamDone",
    "error": "StreamError",
    "failure": "StreamFailure",
}


@pytest.mark.parametrize(("path", "method"), STREAMS)
def test_the_streams_are_event_streams_of_typed_events(
    schema: dict[str, Any], path: str, method: str
) -> None:
    ok = schema["paths"][path][method]["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    for event in EVENTS:
        assert f"`{event}`" in ok["description"]
    # Each event as sent (what schemathesis checks every event against), or the body as text.
    on_the_wire, text = ok["content"]["text/event-stream"]["schema"]["anyOf"]
    assert text == {"type": "string"}
    components = schema["components"]["schemas"]
    for event, decoded in zip(on_the_wire["oneOf"], components["ReplyEvent"]["oneOf"], strict=True):
        decoded_event = components[decoded["$ref"].rsplit("/", 1)[-1]]
        assert event["properties"]["event"] == decoded_event["properties"]["event"]
        assert event["properties"]["data"] == {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": decoded_event["properties"]["data"],
        }


def test_each_event_has_a_schema_named_by_its_event(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    reply_event = components["ReplyEvent"]
    assert reply_event["discriminator"] == {
        "propertyName": "event",
        "mapping": {event: f"#/components/schemas/{name}" for event, name in EVENTS.items()},
    }
    data = {
        "start": "ReplyStarted",
        "delta": "ReplyDelta",
        "done": "MessageRead",
        "error": "ErrorEvent",
        "failure": "ErrorEvent",
    }
    for event, name in EVENTS.items():
        component = components[name]
        assert component["properties"]["event"] == {"type": "string", "const": event}
        assert component["properties"]["data"] == {"$ref": f"#/components/schemas/{data[event]}"}
        assert component["properties"]["id"]["pattern"] == "^[0-9]+$"
        assert sorted(component["required"]) == ["data", "event", "id"]


def test_fields_always_sent_are_required_and_nullable_where_null(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    for name in (
        "SessionRead",
        "MessageRead",
        "BranchMessage",
        "SessionDetail",
        "ReplyStarted",
        "SearchHit",
        "SearchPage",
    ):
        assert sorted(components[name]["required"]) == sorted(components[name]["properties"]), name
    message = components["MessageRead"]["properties"]
    assert {"type": "null"} in message["error"]["oneOf"] and {"type": "null"} in message["client_id"]["oneOf"]
    assert None in message["finish_reason"]["enum"]
    last_message_at = components["SessionRead"]["properties"]["last_message_at"]["oneOf"]
    assert {"type": "string", "format": "date-time"} in last_message_at and {
        "type": "null"
    } in last_message_at
    # Left out when empty, and Health's detail and reason only when unavailable: optional.
    assert components["ErrorBody"]["required"] == ["detail", "status_code"]
    assert components["Health"]["required"] == ["status"]


def test_responses_carry_every_field_their_schema_requires(
    schema: dict[str, Any], client: TestClient[Litestar]
) -> None:
    components = schema["components"]["schemas"]
    session_id = client.post("/api/sessions").json()["id"]
    chat = client.post(
        "/api/chat", json={"session_id": session_id, "messages": [{"role": "user", "content": "hi"}]}
    )
    events = parse_sse(chat.text)
    detail = client.get(f"/api/sessions/{session_id}").json()
    shapes = [
        ("SessionRead", detail["session"]),
        ("SessionRead", client.get("/api/sessions").json()[0]),
        ("ReplyStarted", events[0].data),
        ("ReplyDelta", events[1].data),
        # A session's messages are its current branch, each with its siblings.
        *(("BranchMessage", message) for message in detail["messages"]),
        ("MessageRead", events[-1].data),
    ]
    for name, body in shapes:
        assert set(body) == set(components[name]["required"]), name


REQUESTS = [
    "SessionCreate",
    "SessionUpdate",
    "ChatRequest",
    "RegenerateRequest",
    "MessageIn",
    "SessionExport",
]


@pytest.mark.parametrize("name", REQUESTS)
def test_request_bodies_refuse_unknown_fields_and_need_no_defaulted_field(
    schema: dict[str, Any], name: str
) -> None:
    component = schema["components"]["schemas"][name]
    assert component["additionalProperties"] is False
    for field, property_schema in component["properties"].items():
        # openapi-typescript's default mode makes a property with a `default` required.
        assert "default" not in property_schema, (name, field)
    if name in ("ChatRequest", "RegenerateRequest"):
        assert "keep_generating" not in component["required"]
        assert "Default: `false`." in component["properties"]["keep_generating"]["description"]


def test_limits_and_positions_declare_their_bounds(schema: dict[str, Any]) -> None:
    def parameter(path: str, name: str) -> dict[str, Any]:
        (found,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
        return dict(found["schema"])

    for path in ("/api/sessions", "/api/sessions/{session_id}/messages", "/api/search"):
        assert parameter(path, "limit") | {"description": ""} == {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "description": "",
        }
    stream = "/api/messages/{message_id}/stream"
    for name in ("Last-Event-ID", "last_event_id"):
        assert parameter(stream, name)["type"] == "integer" and parameter(stream, name)["minimum"] == 0
    chat = schema["components"]["schemas"]["ChatRequest"]["properties"]["messages"]
    assert chat["maxItems"] == 50


def test_every_api_operation_declares_401_and_says_what_400_and_404_mean(schema: dict[str, Any]) -> None:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if path.startswith("/api/"):
                assert responses["401"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"
                }, (method, path)
            assert responses.get("400", {}).get("description") != "Bad request syntax or unsupported method"
            assert responses.get("404", {}).get("description") != "Nothing matches the given URI"
    assert schema["paths"]["/api/chat"]["post"]["responses"]["404"]["description"] == (
        "No session has the body's `session_id`."
    )


def test_export_declares_json_and_markdown(schema: dict[str, Any]) -> None:
    content = schema["paths"]["/api/sessions/{session_id}/export"]["get"]["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/SessionExport"}
    assert content["text/markdown"]["schema"]["type"] == "string"


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


@pytest.mark.parametrize(
    ("path", "method"), [("/api/ui/chat", "post"), ("/api/ui/chat/{chat_id}/stream", "get")]
)
def test_the_ai_sdk_routes_document_the_ui_message_stream(
    schema: dict[str, Any], path: str, method: str
) -> None:
    ok = schema["paths"][path][method]["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    assert ok["content"]["text/event-stream"]["schema"] == {"type": "string"}
    for chunk in ("start", "start-step", "text-start", "text-delta", "text-end", "finish-step", "finish"):
        assert f"`{chunk}`" in ok["description"]
    assert "`error` (`errorText`)" in ok["description"]
    assert "x-vercel-ai-ui-message-stream: v1" in ok["description"]
    assert "data: [DONE]" in ok["description"]


def test_the_ai_sdk_chat_body_is_the_transports(schema: dict[str, Any]) -> None:
    body = schema["paths"]["/api/ui/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    request = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert set(request["properties"]) == {"id", "messages", "trigger", "messageId", "keep_generating"}
    assert request["required"] == ["id", "messages"]
    assert request["additionalProperties"] is False
    assert "pattern" in request["properties"]["id"]
    assert request["properties"]["trigger"]["enum"] == ["submit-message", "regenerate-message"]
    loaded = schema["paths"]["/api/ui/chat/{chat_id}/messages"]["get"]["responses"]["200"]["content"]
    message = schema["components"]["schemas"][
        loaded["application/json"]["schema"]["items"]["$ref"].split("/")[-1]
    ]
    assert set(message["properties"]) == {"id", "role", "parts", "metadata"}
