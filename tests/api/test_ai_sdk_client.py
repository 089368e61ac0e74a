"""The AI SDK's own client (``ai``, pinned in ``tests/node/package-lock.json``) against a real server.

``tests/node/ai-sdk-client.mjs`` drives the framework-free ``Chat`` with ``DefaultChatTransport``
pointed at ``/api/ui/chat``: send, the streamed reply, a reload as ``UIMessage[]``, regenerate, edit a
message, stop mid-stream, resume after a dropped connection and after a reload, each compared with
what chatstore stored. It exits non-zero on the first mismatch, saying what differed. The server
requires a key, as a deployment would, and replies slowly enough to be stopped and resumed mid-way.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NODE_DIR, node_with
from tests.servers import ServerProcess, running_servers

pytestmark = [pytest.mark.server, pytest.mark.node]

API_KEY = "ai-sdk-client-key-0123456789abcdef"
AI_VERSION = "7.0.173"
# The mock's reply to a short message is about 40 pieces: some 2 s at this pace.
SLOW_REPLIES = {"CHATSTORE_MOCK_DELAY_MS": "40", "CHATSTORE_PROGRESS_INTERVAL_MS": "100"}


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"CHATSTORE_API_KEY": API_KEY, **SLOW_REPLIES}
    with running_servers(1, database_url, tmp_path, env) as (server,):
        yield server


def test_the_ai_sdks_chat_streams_reloads_regenerates_stops_and_resumes(server: ServerProcess) -> None:
    node = node_with(("ai",), "the AI SDK client tests")
    result = subprocess.run(
        [node, "ai-sdk-client.mjs", server.base_url, API_KEY],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    steps = {line["step"]: line for line in map(json.loads, result.stdout.splitlines())}

    assert list(steps) == [
        "streamed",
        "reloaded",
        "regenerated",
        "edited",
        "stopped",
        "resumed",
        "reloaded-and-resumed",
        "nothing-to-resume",
    ]
    assert {step["ai"] for step in steps.values()} == {AI_VERSION}
    assert steps["streamed"]["text"].startswith("You said: Hello from the AI SDK")
    assert steps["streamed"]["metadata"]["status"] == "complete"
    assert len(steps["regenerated"]["siblings"]) == 2
    assert steps["edited"]["siblings"] == 2
    assert steps["stopped"]["status"] == "incomplete"
    assert 0 < steps["resumed"]["before"] < steps["resumed"]["after"]
    assert "Traceback" not in server.log()
