"""The limits of one ``python -m chatstore`` process, against real processes over loopback sockets: the
header size (431), the deadlines for slow clients (``CHATSTORE_CLIENT_TIMEOUT_S``) and the bound on
requests in progress (``CHATSTORE_MAX_CONNECTIONS``), which idle or trickling sockets do not use up.

Every socket here is on 127.0.0.1, at most ``TRICKLED`` of them at once, and every wait is bounded.
These limits belong to the process, not to the database, so one engine (SQLite) is enough.
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from chatstore.api.request_limits import MAX_HEADER_BYTES
from chatstore.app import create_app
from chatstore.core.settings import Settings
from tests.servers import BackgroundChat, ServerProcess, chat_body, running_servers, started

TIMEOUT_S = 1.0  # CHATSTORE_CLIENT_TIMEOUT_S in these servers
MAX_REQUESTS = 50  # CHATSTORE_MAX_CONNECTIONS in these servers
TRICKLED = 1_000
BURST = 300
SOCKET_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that change nothing in it (none of them creates a session)."""
    tmp_path = tmp_path_factory.mktemp("limits")
    env = {
        "CHATSTORE_CLIENT_TIMEOUT_S": str(TIMEOUT_S),
        "CHATSTORE_MAX_CONNECTIONS": str(MAX_REQUESTS),
        "CHATSTORE_MOCK_DELAY_MS": "0",
        "CHATSTORE_LOG_LEVEL": "info",
    }
    with running_servers(1, f"sqlite:///{tmp_path / 'chatstore.db'}", tmp_path, env) as (server,):
        yield server


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return host, int(port)


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(address(server), timeout=SOCKET_TIMEOUT_S)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket times out)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def request_bytes(path: str = "/healthz", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def no_traceback(server: ServerProcess) -> None:
    assert "Traceback" not in server.log(), server.log()[-3000:]


# --- header size --------------------------------------------------------------------------------------


def test_headers_past_the_limit_in_one_write_get_431_and_the_connection_closes(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(request_bytes(headers={"X-Padding": "x" * 20_000}))
        response = read_all(sock)  # ends: the server closed the connection

    assert status_of(response) == 431, response[:300]
    assert b'"status_code":431' in response
    no_traceback(server)


@pytest.mark.parametrize("size", [100_000, 250_000])
def test_large_headers_in_one_write_are_refused_whichever_way_they_arrive(
    server: ServerProcess, size: int
) -> None:
    with connect(server) as sock:
        with suppress(BrokenPipeError, ConnectionResetError):  # refused before the last byte went out
            sock.sendall(request_bytes(headers={"X-Padding": "x" * size}))
        response = read_all(sock)

    # 431 if they reached the server in one read; 400 (h11's own check) if they were still arriving.
    assert status_of(response) in (400, 431), response[:300]
    no_traceback(server)


def test_headers_just_within_the_limit_are_served(server: ServerProcess) -> None:
    padding = MAX_HEADER_BYTES - len(request_bytes(headers={"X-Padding": "", "Connection": "close"}))
    with connect(server) as sock:
        sock.sendall(request_bytes(headers={"X-Padding": "x" * padding, "Connection": "close"}))
        assert status_of(read_all(sock)) == 200
    with connect(server) as sock:
        sock.sendall(request_bytes(headers={"X-Padding": "x" * (padding + 1), "Connection": "close"}))
        assert status_of(read_all(sock)) == 431


def test_headers_past_the_limit_in_pieces_are_refused_and_the_connection_closes(
    server: ServerProcess,
) -> None:
    head = request_bytes(headers={"X-Padding": "x" * 40_000})[:-2]  # never complete
    with connect(server) as sock:
        try:
            for start in range(0, len(head), 1_000):
                sock.sendall(head[start : start + 1_000])
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the last piece went out
        response = read_all(sock)

    # h11 refuses them while they arrive: 400 (uvicorn's answer), or 431 if they came in one read.
    assert status_of(response) in (400, 431), response[:300]
    no_traceback(server)


# --- deadlines ------------------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(server: ServerProcess) -> None:
    with connect(server) as sock:
        opened = time.monotonic()
        assert read_all(sock) == b""  # closed without a word: nothing was asked
        waited = time.monotonic() - opened
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 3, waited


def test_headers_that_trickle_past_the_timeout_get_408_and_the_connection_closes(
    server: ServerProcess,
) -> None:
    head = request_bytes(headers={"X-Slow": "y" * 50})[:-2]
    with connect(server) as sock:
        opened = time.monotonic()
        sent = 0
        try:
            while time.monotonic() - opened < TIMEOUT_S + 3 and sent < len(head):
                sock.sendall(head[sent : sent + 1])  # a byte every 50 ms: never the whole headers in time
                sent += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_all(sock)
        waited = time.monotonic() - opened

    assert status_of(response) == 408, response
    assert waited < TIMEOUT_S + 3, waited
    assert sent < len(head)


def test_a_kept_alive_connection_gets_a_fresh_deadline_for_each_request(server: ServerProcess) -> None:
    with connect(server) as sock:
        for _ in range(3):
            time.sleep(TIMEOUT_S * 0.6)  # idle between requests: keep-alive's to close, not the deadline
            sock.sendall(request_bytes())
            assert status_of(read_response(sock)) == 200


def test_a_body_that_trickles_past_the_timeout_closes_the_connection_cleanly(server: ServerProcess) -> None:
    head = b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with connect(server) as sock:
        sock.sendall(head + b"Content-Length: 100\r\n\r\n" + b'{"name": ')
        opened = time.monotonic()
        response = read_all(sock)
        waited = time.monotonic() - opened

    assert response == b""  # the body never came: the request has nobody to answer
    assert waited < TIMEOUT_S + 3, waited
    assert httpx.get(f"{server.base_url}/api/sessions").json() == []
    deadline = time.monotonic() + 5
    while '"path":"/api/sessions","status":400' not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert '"method":"POST","path":"/api/sessions","status":400' in server.log()
    no_traceback(server)


def test_a_client_that_stops_reading_is_let_go_and_its_request_ends(tmp_path: Path) -> None:
    env = {
        "CHATSTORE_CLIENT_TIMEOUT_S": str(TIMEOUT_S),
        "CHATSTORE_MAX_CONNECTIONS": "1",  # so that the one request it holds would block everyone
        "CHATSTORE_MAX_REQUEST_BODY_BYTES": str(12 * 1024 * 1024),
        "CHATSTORE_LOG_LEVEL": "info",
    }
    with running_servers(1, f"sqlite:///{tmp_path / 'chatstore.db'}", tmp_path, env) as (server,):
        # An export far larger than what loopback's socket buffers hold (a few MiB at most).
        content = "x" * 100_000
        messages = [{"role": "user", "content": content, "created_at": "2026-01-01T00:00:00Z"}] * 100
        document = {
            "exported_at": "2026-01-01T00:00:00Z",
            "session": {"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"},
            "messages": messages,
        }
        session_id = httpx.post(f"{server.base_url}/api/sessions/import", json=document, timeout=30).json()[
            "id"
        ]

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(SOCKET_TIMEOUT_S)
        sock.connect(address(server))
        with sock:
            sock.sendall(request_bytes(f"/api/sessions/{session_id}/export"))
            assert status_of(sock.recv(4096)) == 200
            time.sleep(TIMEOUT_S + 2)  # not reading: the server must give up on this client
            assert httpx.get(f"{server.base_url}/healthz").status_code == 200  # the one slot is free
            assert len(read_all(sock)) < 10 * 1024 * 1024  # cut off, not all of it
        assert "took in nothing" in server.log()
        no_traceback(server)


# --- requests in progress, not sockets --------------------------------------------------------------


@contextmanager
def idle_sockets(server: ServerProcess, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        yield [stack.enter_context(connect(server)) for _ in range(count)]


def test_open_sockets_do_not_count_against_the_request_limit(server: ServerProcess) -> None:
    with (
        idle_sockets(server, BURST),
        httpx.Client(base_url=server.base_url, timeout=SOCKET_TIMEOUT_S) as client,
    ):
        statuses = [client.get("/api/sessions").status_code for _ in range(20)]
    assert statuses == [200] * 20


def test_a_burst_past_the_limit_is_served_up_to_it(server: ServerProcess) -> None:
    with idle_sockets(server, BURST) as sockets:
        for sock in sockets:  # all connected first, then every request at once
            sock.sendall(request_bytes(headers={"Connection": "close"}))
        statuses = [status_of(read_all(sock)) for sock in sockets]

    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= MAX_REQUESTS, statuses


def test_past_the_limit_of_requests_in_progress_a_request_gets_503_at_once(tmp_path: Path) -> None:
    env = {"CHATSTORE_MAX_CONNECTIONS": "3", "CHATSTORE_MOCK_DELAY_MS": "50"}
    with running_servers(1, f"sqlite:///{tmp_path / 'chatstore.db'}", tmp_path, env) as (server,):
        session_id = httpx.post(f"{server.base_url}/api/sessions").json()["id"]
        chats = [BackgroundChat(server, chat_body(session_id, f"hello {n}")) for n in range(3)]
        with ExitStack() as stack:
            for chat in chats:
                stack.enter_context(chat).wait_until("start", started)
            refused = httpx.get(f"{server.base_url}/api/sessions", timeout=SOCKET_TIMEOUT_S)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert "requests in progress" in refused.json()["detail"]
            for chat in chats:
                chat.wait_until_finished()
        assert httpx.get(f"{server.base_url}/api/sessions").status_code == 200


def test_trickling_connections_do_not_starve_other_clients(server: ServerProcess) -> None:
    """A thousand connections that send their headers a byte at a time, reconnecting whenever the
    deadline closes one, while another client's requests all get through."""
    stop = threading.Event()

    def trickler() -> socket.socket:
        sock = connect(server)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ")  # never finished
        return sock

    sockets = [trickler() for _ in range(TRICKLED)]

    def trickle() -> None:
        while not stop.wait(0.2):
            for index, sock in enumerate(sockets):
                try:
                    sock.send(b"a")
                except OSError:  # closed by the header deadline: reconnect, as an attacker would
                    sock.close()
                    sockets[index] = trickler()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        statuses = []
        with httpx.Client(base_url=server.base_url, timeout=SOCKET_TIMEOUT_S) as client:
            deadline = time.monotonic() + 3 * TIMEOUT_S
            while time.monotonic() < deadline:
                statuses.append(client.get("/api/sessions").status_code)
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join(SOCKET_TIMEOUT_S)
        for sock in sockets:
            sock.close()

    assert statuses and set(statuses) == {200}, statuses


def test_the_header_size_counts_a_long_query_once(tmp_path: Path) -> None:
    """Test clients put the query in ``raw_path`` too; it must not count twice."""
    query = "q=" + "x" * (MAX_HEADER_BYTES * 2 // 3)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'chatstore.db'}")  # one engine is enough
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/api/search?{query}").status_code == 400  # q too long: a 400, not a 431
        assert client.get(f"/api/search?{query}{'x' * (MAX_HEADER_BYTES // 2)}").status_code == 431
