"""A TypeScript client generated from ``/schema/openapi.json`` (openapi-typescript + openapi-fetch)
typechecks in strict mode with no hand-written type, and works against a real server.

``tests/node/client.ts`` uses every operation once, the streams' events typed by the schema's
``ReplyEvent``. The test writes the server's schema to a file, generates
``tests/node/generated/chatstore-api.d.ts`` from it, typechecks (``tsc --noEmit``), compiles and runs
the client against a server that requires an API key. The packages are pinned in
``tests/node/package-lock.json`` and installed with ``npm ci --prefix tests/node``.
"""

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import NODE_DIR, node_with
from tests.servers import ServerProcess, running_servers

pytestmark = [pytest.mark.server, pytest.mark.node]

PACKAGES = ("openapi-typescript", "openapi-fetch", "typescript", "@types/node")
API_KEY = "typescript-client-key-0123456789"
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def node() -> str:
    return node_with(PACKAGES, "the TypeScript client tests")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("typescript-client-server")
    env = {"CHATSTORE_API_KEY": API_KEY, "CHATSTORE_MOCK_DELAY_MS": "0"}
    with running_servers(1, f"sqlite:///{folder / 'app.db'}", folder, env) as (server,):
        yield server


def run(node: str, *args: str) -> str:
    result = subprocess.run(
        [node, *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)}:\n{output}"
    return result.stdout


@pytest.fixture(scope="module")
def schema(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    response = httpx.get(f"{server.base_url}/schema/openapi.json").raise_for_status()
    path = tmp_path_factory.mktemp("typescript-client") / "openapi.json"
    path.write_bytes(response.content)
    return {"path": str(path), "document": response.json()}


@pytest.fixture(scope="module")
def compiled(node: str, schema: dict[str, object]) -> None:
    """Generate the types, typecheck the client against them, then compile it to ``build/``."""
    generated = NODE_DIR / "generated" / "chatstore-api.d.ts"
    run(node, "node_modules/openapi-typescript/bin/cli.js", str(schema["path"]), "--output", str(generated))
    run(node, "node_modules/typescript/bin/tsc", "--noEmit", "--project", ".")
    run(node, "node_modules/typescript/bin/tsc", "--project", ".")


def test_the_generated_types_need_no_hand_written_event_types(compiled: None) -> None:
    generated = (NODE_DIR / "generated" / "chatstore-api.d.ts").read_text()
    assert (
        'ReplyEvent: components["schemas"]["StreamStart"] | components["schemas"]["StreamDelta"]' in generated
    )
    # Always sent, so not optional; a request field with a default is optional.
    assert "message_count: number;" in generated and "last_message_at: string | null;" in generated
    assert "keep_generating?: boolean;" in generated
    client = (NODE_DIR / "client.ts").read_text()
    for escape_hatch in (
        "as any",
        "as unknown",
        ": any",
        ": unknown",
        "<any>",
        "@ts-ignore",
        "@ts-expect-error",
    ):
        assert escape_hatch not in client, escape_hatch


def test_the_typed_client_uses_every_operation_against_a_real_server(
    node: str, compiled: None, server: ServerProcess, schema: dict[str, object]
) -> None:
    document = schema["document"]
    assert isinstance(document, dict)
    operation_ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    output = run(node, "build/client.js", server.base_url, API_KEY)
    used = json.loads(output.strip().splitlines()[-1])["used"]
    assert sorted(used) == sorted(operation_ids)
