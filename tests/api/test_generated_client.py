"""A client generated from ``/schema/openapi.json`` by openapi-python-client works as generated.

The client is generated into a temporary folder, without warnings, imported as it is and used against
a real server that requires an API key: create, list, read, chat (the stream read raw: the generated
client types it as a string) and delete.
"""

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.helpers import parse_sse
from tests.servers import ServerProcess, running_servers

pytestmark = pytest.mark.server

API_KEY = "generated-client-key-0123456789"
PACKAGE = "chatstore_client"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("generated-client-server")
    env = {"CHATSTORE_API_KEY": API_KEY, "CHATSTORE_MOCK_DELAY_MS": "0"}
    with running_servers(1, f"sqlite:///{folder / 'app.db'}", folder, env) as (server,):
        yield server


@pytest.fixture(scope="module")
def generated(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ModuleType]]:
    """The generated package's modules, imported from where the generator wrote them."""
    folder = tmp_path_factory.mktemp("generated-client")
    schema_path = folder / "openapi.json"
    schema_path.write_bytes(httpx.get(f"{server.base_url}/schema/openapi.json").raise_for_status().content)
    tool_dir = Path(sys.executable).parent  # the generator runs ruff over its output: same environment
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(schema_path),
            "--output-path",
            str(folder / PACKAGE),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{tool_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output  # a warning means a piece of the client was dropped

    sys.path.insert(0, str(folder))
    try:
        yield {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in (
                "client",
                "models",
                "api.sessions.create_session",
                "api.sessions.list_sessions",
                "api.sessions.get_session",
                "api.sessions.delete_session",
                "api.chat.chat",
            )
        }
    finally:
        sys.path.remove(str(folder))
        for module in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[module]


def test_the_generated_client_creates_lists_reads_chats_and_deletes(
    server: ServerProcess, generated: dict[str, ModuleType]
) -> None:
    models: Any = generated["models"]
    with generated["client"].AuthenticatedClient(base_url=server.base_url, token=API_KEY) as client:
        use_every_step(client, generated, models)


def use_every_step(client: Any, generated: dict[str, ModuleType], models: Any) -> None:
    body = models.SessionCreate(name="generated", metadata=models.SessionCreateMetadata.from_dict({"k": "v"}))
    created = generated["api.sessions.create_session"].sync_detailed(client=client, body=body)
    assert created.status_code == 201
    session = created.parsed
    assert isinstance(session, models.SessionRead)
    assert session.name == "generated" and session.metadata.to_dict() == {"k": "v"}
    assert created.headers["Location"] == f"/api/sessions/{session.id}"

    listed = generated["api.sessions.list_sessions"].sync(client=client)
    assert [item.id for item in listed] == [session.id]

    request = models.ChatRequest(
        session_id=session.id, messages=[models.MessageIn(role=models.MessageInRole.USER, content="hello")]
    )
    streamed = generated["api.chat.chat"].sync_detailed(client=client, body=request)
    assert streamed.status_code == 200
    assert streamed.headers["Content-Type"].startswith("text/event-stream")
    events = parse_sse(streamed.content.decode())
    assert [events[0].event, events[-1].event] == ["start", "done"]

    detail = generated["api.sessions.get_session"].sync(client=client, session_id=session.id)
    assert isinstance(detail, models.SessionDetail)
    assert [(m.role.value, m.status.value) for m in detail.messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert detail.messages[0].content == "hello"
    assert detail.messages[1].content == events[-1].data["content"]

    deleted = generated["api.sessions.delete_session"].sync_detailed(client=client, session_id=session.id)
    assert deleted.status_code == 204
    gone = generated["api.sessions.get_session"].sync(client=client, session_id=session.id)
    assert isinstance(gone, models.ErrorBody) and gone.status_code == 404


def test_the_generated_client_reads_the_401_without_a_key(
    server: ServerProcess, generated: dict[str, ModuleType]
) -> None:
    with generated["client"].Client(base_url=server.base_url) as anonymous:
        response = generated["api.sessions.list_sessions"].sync_detailed(client=anonymous)
    assert response.status_code == 401
    assert isinstance(response.parsed, generated["models"].ErrorBody)
    assert response.parsed.status_code == 401
