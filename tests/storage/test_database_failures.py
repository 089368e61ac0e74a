"""When the database fails: every endpoint answers 503 (507 for a full disk) with ``Retry-After``,
never 500; reads that can still be served are served; ``/healthz`` says what is wrong.

The faults are real and the servers are real ``python -m chatstore`` processes: PostgreSQL goes away
behind a TCP proxy the test cuts (``tests/faults.py:TcpProxy``), SQLite's disk is a small tmpfs the
test fills (``small_disk``, root only), and the data folder is deleted under a running server.
"""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import postgres_url, skip_or_fail_in_ci
from tests.faults import SmallDisk, TcpProxy, can_mount, small_disk
from tests.helpers import parse_sse, postgres_schema
from tests.servers import HTTP_TIMEOUT_S, ServerProcess, chat_body, running_servers

pytestmark = pytest.mark.server

UNAVAILABLE_DETAIL = "the database is unavailable"
# Short timeouts, so that a request during an outage is answered at once rather than after 10 s.
QUICK_FAILURE = {"CHATSTORE_DB_POOL_TIMEOUT_S": "2", "CHATSTORE_MOCK_DELAY_MS": "0"}


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    method: str
    path: str
    body: Any = None
    writes: bool = False
    served: int = 200  # the status when the database can serve it


@dataclass(frozen=True, slots=True)
class Stored:
    """What a server stored before the fault: the probes' targets."""

    session_id: str
    other_session_id: str
    reply_id: str
    export: dict[str, Any]


def store_before_the_fault(server: ServerProcess) -> Stored:
    with httpx.Client(base_url=server.base_url, timeout=HTTP_TIMEOUT_S) as client:
        session_id = client.post("/api/sessions", json={"name": "kept"}).json()["id"]
        other_session_id = client.post("/api/sessions", json={"name": "to delete"}).json()["id"]
        chat = client.post("/api/chat", json=chat_body(session_id, "hello there"))
        assert chat.status_code == 200, chat.text
        events = parse_sse(chat.text)
        assert events[-1].event == "done", events
        export = client.get(f"/api/sessions/{session_id}/export").json()
    return Stored(session_id, other_session_id, str(events[0].data["assistant_message_id"]), export)


def probes(stored: Stored) -> list[Probe]:
    """One request per API endpoint, each aimed at something that exists."""
    session = f"/api/sessions/{stored.session_id}"
    reply = f"/api/messages/{stored.reply_id}"
    return [
        Probe("list", "GET", "/api/sessions"),
        Probe("get", "GET", session),
        Probe("messages", "GET", f"{session}/messages"),
        Probe("search", "GET", "/api/search?q=hello"),
        Probe("export", "GET", f"{session}/export"),
        Probe("stream", "GET", f"{reply}/stream"),
        Probe("create", "POST", "/api/sessions", {"name": "new"}, writes=True),
        Probe("patch", "PATCH", session, {"name": "renamed"}, writes=True),
        Probe("delete", "DELETE", f"/api/sessions/{stored.other_session_id}", writes=True),
        Probe("import", "POST", "/api/sessions/import", stored.export, writes=True),
        Probe("chat", "POST", "/api/chat", chat_body(stored.session_id, "are you there?"), writes=True),
        Probe("regenerate", "POST", f"{session}/regenerate", writes=True),
        # Stopping a reply that has ended writes nothing, so it can be served on a full disk.
        Probe("stop", "POST", f"{reply}/stop"),
        Probe("ui messages", "GET", f"/api/ui/chat/{stored.session_id}/messages"),
        # Nothing streams in the chat: served, that is a 204.
        Probe("ui stream", "GET", f"/api/ui/chat/{stored.session_id}/stream", served=204),
        Probe("ui chat", "POST", "/api/ui/chat", ui_chat_body(stored.session_id), writes=True),
    ]


def ui_chat_body(session_id: str) -> dict[str, Any]:
    message = {"id": "probe", "role": "user", "parts": [{"type": "text", "text": "are you there?"}]}
    return {"id": session_id, "messages": [message], "trigger": "submit-message"}


def send(server: ServerProcess, probe: Probe) -> httpx.Response:
    return httpx.request(
        probe.method, f"{server.base_url}{probe.path}", json=probe.body, timeout=HTTP_TIMEOUT_S
    )


def run_probes(server: ServerProcess, stored: Stored) -> dict[str, httpx.Response]:
    return {probe.name: send(server, probe) for probe in probes(stored)}


def table(answers: dict[str, httpx.Response]) -> str:
    return "\n".join(f"{name:>10}: {r.status_code} {r.text[:120]}" for name, r in answers.items())


def assert_refused(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert body["status_code"] == status
    assert body["detail"].startswith(detail), body


def health(server: ServerProcess) -> httpx.Response:
    return httpx.get(f"{server.base_url}/healthz", timeout=HTTP_TIMEOUT_S)


# --- PostgreSQL goes away -----------------------------------------------------------------------


@pytest.fixture
def postgres_behind_proxy() -> Iterator[tuple[str, TcpProxy]]:
    base = postgres_url()
    if base is None:
        skip_or_fail_in_ci("the PostgreSQL outage needs CHATSTORE_TEST_POSTGRES_URL")
    assert base is not None
    target = make_url(base)
    with (
        postgres_schema(base, prefix="outage") as url,
        TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy,
    ):
        yield proxy.url_for(url), proxy


def test_a_postgresql_outage_answers_503_on_every_endpoint_and_ends_when_it_comes_back(
    postgres_behind_proxy: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    url, proxy = postgres_behind_proxy
    with running_servers(1, url, tmp_path, QUICK_FAILURE) as (server,):
        stored = store_before_the_fault(server)
        proxy.cut()
        answers = run_probes(server, stored)
        unhealthy = health(server)
        proxy.restore()
        for name, response in answers.items():
            assert response.status_code == 503, f"{name}\n{table(answers)}"
            assert_refused(response, 503, UNAVAILABLE_DETAIL)
            assert "asyncpg" not in response.text and "connect" not in response.text.lower(), response.text
        assert unhealthy.status_code == 503
        assert unhealthy.json()["status"] == "unavailable"
        assert unhealthy.json()["reason"] == "unreachable"

        after = run_probes(server, stored)
        assert {name: r.status_code for name, r in after.items()} == {
            "list": 200,
            "get": 200,
            "messages": 200,
            "search": 200,
            "export": 200,
            "stream": 200,
            "create": 201,
            "patch": 200,
            "delete": 204,
            "import": 201,
            "chat": 200,
            "regenerate": 200,
            "stop": 200,
            "ui messages": 200,
            "ui stream": 204,
            "ui chat": 200,
        }, table(after)
        assert health(server).json() == {"status": "ok"}
        log = server.log()
    # The outage is logged as a warning once, not once per request, and with no traceback.
    assert log.count("the database is unavailable") == 1, log
    assert "Traceback" not in log, log


# --- SQLite's disk fills up ---------------------------------------------------------------------


@pytest.fixture
def disk() -> Iterator[SmallDisk]:
    if not can_mount():
        skip_or_fail_in_ci("the full-disk test mounts a tmpfs, which needs root")
    with small_disk() as mounted:
        yield mounted


def test_a_full_disk_serves_reads_refuses_writes_with_507_and_recovers(
    disk: SmallDisk, tmp_path: Path
) -> None:
    url = f"sqlite:///{disk.path / 'chatstore.db'}"
    with running_servers(1, url, tmp_path, QUICK_FAILURE) as (server,):
        stored = store_before_the_fault(server)
        disk.fill()
        try:
            # First, before any request has failed: only a write can tell that the disk is full.
            unhealthy = health(server)
            answers = run_probes(server, stored)
        finally:
            disk.free()
        writes = {probe.name for probe in probes(stored) if probe.writes}
        served = {probe.name: probe.served for probe in probes(stored)}
        for name, response in answers.items():
            if name in writes:
                assert response.status_code == 507, f"{name}\n{table(answers)}"
                assert_refused(response, 507, "the database cannot store")
            else:
                assert response.status_code == served[name], f"{name}\n{table(answers)}"
        assert unhealthy.status_code == 503
        assert unhealthy.json()["reason"] == "disk_full"

        created = httpx.post(
            f"{server.base_url}/api/sessions", json={"name": "after"}, timeout=HTTP_TIMEOUT_S
        )
        assert created.status_code == 201, created.text
        assert health(server).json() == {"status": "ok"}
        log = server.log()
    assert log.count("the database is unavailable") == 1, log
    assert "Traceback" not in log, log


# --- The data folder is deleted -------------------------------------------------------------------


def test_a_deleted_data_folder_is_noticed_refused_and_logged(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    url = f"sqlite:///{folder / 'chatstore.db'}"
    with running_servers(1, url, tmp_path, QUICK_FAILURE) as (server,):
        stored = store_before_the_fault(server)
        shutil.rmtree(folder)
        created = httpx.post(f"{server.base_url}/api/sessions", json={"name": "lost"}, timeout=HTTP_TIMEOUT_S)
        chat = send(server, probes(stored)[10])
        listed = httpx.get(f"{server.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S)
        unhealthy = health(server)
        log = server.log()
    assert_refused(created, 503, UNAVAILABLE_DETAIL)
    assert_refused(chat, 503, UNAVAILABLE_DETAIL)
    # What is still open is the deleted file: reading it would show data that is already gone.
    assert_refused(listed, 503, UNAVAILABLE_DETAIL)
    assert unhealthy.status_code == 503
    assert unhealthy.json()["reason"] == "file_deleted"
    assert "ERROR" in log and "was deleted" in log, log
    assert str(folder) not in created.text + unhealthy.text
