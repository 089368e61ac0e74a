"""Hostile input against a real ``python -m chatstore`` on each engine: never a 5xx, never a traceback
in the log, never a file system path in a body; a 400 names the field.

The probes are one table: deep JSON on every JSON endpoint, forged cursors for every listing, values
the databases cannot store (NUL, times outside the calendar once in UTC, integers past 64 bits,
lone surrogates), odd ids, query values and static file paths, and a path that tries to forge a log
line. Each is sent as raw bytes (``http.client`` keeps the target as written, ``%00`` and ``..``
included) to one server per engine, and the server's log is read after each.
"""

import base64
import http.client
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import TestClient

import chatstore
from chatstore.api.errors import exception_handlers
from tests.conftest import ClientFactory, postgres_url, skip_or_fail_in_ci
from tests.helpers import postgres_schema
from tests.servers import ServerProcess, running_servers

PACKAGE_DIR = str(Path(chatstore.__file__).resolve().parent)
TIMEOUT_S = 30.0
ACCESS_LOGGER = "chatstore.access"
ACCESS_LINE_WAIT_S = 2.0

# Times that are valid RFC 3339 but fall outside year 1..9999 once converted to UTC.
OVERFLOWING_TIMES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
EDGE_TIMES = ["9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z"]
NUL = "a\u0000b"
# Integers just past what each engine's columns hold, and far past.
HUGE_INTEGERS = [2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30)]


@dataclass(frozen=True)
class Probe:
    """One request and what it must get. ``target`` may hold ``{session}``, ``{message}`` and
    ``{cursor}``, filled in from the server's own data."""

    name: str
    method: str
    target: str
    body: bytes | None = None
    status: int | None = 400  # None: any answer below 500
    names: str | None = None  # what a 400's detail must mention
    headers: tuple[tuple[str, str], ...] = ()
    # A forged cursor for ``{cursor}``: the listing whose kind it carries, and its key as JSON text.
    listing: str | None = None
    key: str | None = None


def jsonb(value: Any) -> bytes:
    return json.dumps(value).encode()


def deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def nested_metadata(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def export(**changes: Any) -> dict[str, Any]:
    session = {
        "name": "n",
        "metadata": {},
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    message = {"role": "assistant", "content": "hi", "status": "error", "created_at": "2026-01-01T00:00:00Z"}
    document: dict[str, Any] = {
        "format": "chatstore.session",
        "version": 1,
        "exported_at": "2026-01-01T00:00:00Z",
        "session": {**session, **changes.pop("session", {})},
        "messages": [{**message, **changes.pop("message", {})}],
    }
    document.update(changes)
    return document


JSON_ENDPOINTS = [
    ("POST", "/api/sessions"),
    ("PATCH", "/api/sessions/{session}"),
    ("POST", "/api/sessions/import"),
    ("POST", "/api/chat"),
    ("POST", "/api/sessions/{session}/regenerate"),
]


def deep_json_probes() -> Iterator[Probe]:
    for method, path in JSON_ENDPOINTS:
        for depth in (1_000, 100_000):
            yield Probe(
                f"{method} {path} array {depth} deep", method, path, deep_array(depth).encode(), names="body"
            )
        yield Probe(
            f"{method} {path} object 1000 deep", method, path, deep_object(1_000).encode(), names="body"
        )
        # Deep enough to recurse in Python after decoding, not deep enough to fail in the decoder.
        yield Probe(
            f"{method} {path} metadata 500 deep",
            method,
            path,
            jsonb({"metadata": nested_metadata(500)}),
            names="body",
        )
    yield Probe(
        "import session.metadata 5000 deep",
        "POST",
        "/api/sessions/import",
        f'{{"session": {{"metadata": {deep_array(5_000)}}}}}'.encode(),
        names="body",
    )
    yield Probe(
        "chat messages 5000 deep",
        "POST",
        "/api/chat",
        f'{{"session_id": "{{session}}", "messages": {deep_array(5_000)}}}'.encode(),
        names="body",
    )


LISTINGS = {
    "sessions:created": "/api/sessions?cursor={cursor}",
    "sessions:activity": "/api/sessions?order=activity&cursor={cursor}",
    "messages:forward": "/api/sessions/{session}/messages?cursor={cursor}",
    "messages:backward": "/api/sessions/{session}/messages?direction=backward&cursor={cursor}",
    "search": "/api/search?q=hello&cursor={cursor}",
}


def forged(name: str, listing: str, key: Any, **expected: Any) -> Probe:
    """A cursor of ``listing``'s own kind whose key is ``key`` (JSON text if a string starting with ``[``)."""
    text = key if isinstance(key, str) and key.startswith("[") else json.dumps(key)
    return Probe(name, "GET", LISTINGS[listing], listing=listing, key=text, **{"names": "cursor", **expected})


def cursor_probes() -> Iterator[Probe]:
    some_id = "00000000-0000-4000-8000-000000000000"
    for listing in ("sessions:created", "sessions:activity"):
        for moment in OVERFLOWING_TIMES:
            yield forged(f"{listing} cursor at {moment}", listing, [moment, some_id])
        for moment in EDGE_TIMES:
            yield forged(f"{listing} cursor at {moment}", listing, [moment, some_id], status=200)
        yield forged(f"{listing} cursor with a naive time", listing, ["2026-01-01T00:00:00", some_id])
        yield forged(f"{listing} cursor id with NUL", listing, ["2026-01-01T00:00:00Z", NUL])
        yield forged(f"{listing} cursor of numbers", listing, [1, 2])
        yield forged(f"{listing} cursor of three", listing, ["2026-01-01T00:00:00Z", "a", "b"])
    for listing in ("messages:forward", "messages:backward"):
        for number in HUGE_INTEGERS:
            yield forged(f"{listing} cursor at seq {number}", listing, [number])
        yield forged(f"{listing} cursor at the last 32-bit seq", listing, [2**31 - 1], status=200)
        yield forged(f"{listing} cursor at seq -2^31", listing, [-(2**31)], status=200)
        yield forged(f"{listing} cursor at seq 1.5", listing, [1.5])
        yield forged(f"{listing} cursor at seq true", listing, [True])
        yield forged(f"{listing} cursor at a string", listing, ["1"])
    # The search key is (score, rowid) on SQLite and (score, id) on PostgreSQL: each probe is wrong
    # for one engine's shape, or out of range, or not storable.
    for number in HUGE_INTEGERS:
        # A rowid is 64-bit: past 32 bits it is still one on SQLite (and the wrong type on PostgreSQL).
        expected = {"status": None} if -(2**63) <= number < 2**63 else {}
        yield forged(f"search cursor at doc {number}", "search", [0.5, number], **expected)
    yield forged("search cursor id with NUL", "search", [0.5, NUL])
    # A score no hit has is a valid place to start (the shape fits only one engine, hence either answer).
    yield forged("search cursor with a huge score and a rowid", "search", [1e308, 1], status=None)
    yield forged("search cursor with a huge score and an id", "search", [-1e308, "x"], status=None)
    yield forged("search cursor of strings", "search", ["x", "y"])
    for listing in LISTINGS:
        yield forged(f"{listing} cursor nested 3000 deep", listing, deep_array(3_000))
        raw = LISTINGS[listing]
        yield Probe(f"{listing} cursor %00", "GET", raw.replace("{cursor}", "%00"), names="cursor")
        yield Probe(
            f"{listing} cursor not base64", "GET", raw.replace("{cursor}", "%21%21%21"), names="cursor"
        )
        yield Probe(
            f"{listing} cursor of invalid UTF-8",
            "GET",
            raw.replace("{cursor}", base64.urlsafe_b64encode(b'["x", ["\xed\xa0\x80"]]').decode()),
            names="cursor",
        )
        yield Probe(
            f"{listing} cursor with a lone surrogate",
            "GET",
            raw.replace("{cursor}", base64.urlsafe_b64encode(b'["x", ["\\ud800"]]').decode()),
            names="cursor",
        )
        yield Probe(
            f"{listing} cursor with an object",
            "GET",
            raw.replace("{cursor}", base64.urlsafe_b64encode(b'{"kind": "x", "key": []}').decode()),
            names="cursor",
        )


def import_probes() -> Iterator[Probe]:
    path = "/api/sessions/import"
    for moment in OVERFLOWING_TIMES:
        yield Probe(
            f"import session.created_at {moment}",
            "POST",
            path,
            jsonb(export(session={"created_at": moment})),
            names="session.created_at",
        )
        yield Probe(
            f"import session.updated_at {moment}",
            "POST",
            path,
            jsonb(export(session={"updated_at": moment})),
            names="session.updated_at",
        )
        yield Probe(
            f"import messages[0].created_at {moment}",
            "POST",
            path,
            jsonb(export(message={"created_at": moment})),
            names="messages[0].created_at",
        )
        yield Probe(
            f"import exported_at {moment}",
            "POST",
            path,
            jsonb(export(exported_at=moment)),
            names="exported_at",
        )
    for moment in EDGE_TIMES:
        yield Probe(
            f"import at {moment}",
            "POST",
            path,
            jsonb(
                export(session={"created_at": moment, "updated_at": moment}, message={"created_at": moment})
            ),
            status=201,
        )
    for field in ("content", "error"):
        yield Probe(
            f"import messages[0].{field} with NUL",
            "POST",
            path,
            jsonb(export(message={field: NUL})),
            names=f"messages[0].{field}",
        )
    yield Probe(
        "import session.name with NUL",
        "POST",
        path,
        jsonb(export(session={"name": NUL})),
        names="session.name",
    )
    yield Probe(
        "import session.metadata with NUL",
        "POST",
        path,
        jsonb(export(session={"metadata": {"k": NUL}})),
        names="session.metadata",
    )
    yield Probe(
        "import an error past the content limit",
        "POST",
        path,
        jsonb(export(message={"error": "x" * 100_001})),
        names="messages[0].error",
    )
    yield Probe("import version 2^70", "POST", path, jsonb(export(version=2**70)), names="version")
    yield Probe(
        "import finish_reason with NUL",
        "POST",
        path,
        jsonb(export(message={"finish_reason": NUL})),
        names="finish_reason",
    )
    yield Probe(
        "import a time with a NUL",
        "POST",
        path,
        jsonb(export(exported_at="2026-01-01T00:00:00Z\u0000")),
        names="exported_at",
    )
    yield Probe("import with no body", "POST", path, b"", names="body")


def text_probes() -> Iterator[Probe]:
    surrogate = b'"\\ud800"'
    yield Probe(
        "create name with a lone surrogate",
        "POST",
        "/api/sessions",
        b'{"name": ' + surrogate + b"}",
        names="body",
    )
    yield Probe(
        "create metadata key a lone surrogate",
        "POST",
        "/api/sessions",
        b'{"metadata": {' + surrogate + b": 1}}",
        names="body",
    )
    yield Probe(
        "create name as raw surrogate bytes",
        "POST",
        "/api/sessions",
        b'{"name": "\xed\xa0\x80"}',
        names="body",
    )
    yield Probe(
        "create metadata 10^30", "POST", "/api/sessions", jsonb({"metadata": {"n": 10**30}}), status=201
    )
    yield Probe(
        "create metadata -10^30", "POST", "/api/sessions", jsonb({"metadata": {"n": -(10**30)}}), status=201
    )
    yield Probe(
        "create metadata 1e308", "POST", "/api/sessions", jsonb({"metadata": {"n": 1e308}}), status=201
    )
    yield Probe("create metadata 1e999", "POST", "/api/sessions", b'{"metadata": {"n": 1e999}}', names="body")
    yield Probe(
        "create metadata 10^5000",
        "POST",
        "/api/sessions",
        b'{"metadata": {"n": 1' + b"0" * 5000 + b"}}",
        names="body",
    )
    yield Probe("create with a BOM", "POST", "/api/sessions", b'\xef\xbb\xbf{"name": "x"}', names="body")
    yield Probe("create with JSON null", "POST", "/api/sessions", b"null", status=201)
    yield Probe(
        "create with a text/plain body",
        "POST",
        "/api/sessions",
        b'{"name": "x"}',
        status=201,
        headers=(("Content-Type", "text/plain"),),
    )
    yield Probe(
        "update name with NUL", "PATCH", "/api/sessions/{session}", jsonb({"name": NUL}), names="name"
    )
    yield Probe(
        "update metadata with NUL",
        "PATCH",
        "/api/sessions/{session}",
        jsonb({"metadata": {"k": NUL}}),
        names="metadata",
    )
    yield Probe(
        "update metadata key with NUL",
        "PATCH",
        "/api/sessions/{session}",
        jsonb({"metadata": {NUL: 1}}),
        names="metadata",
    )
    yield Probe(
        "update name with a lone surrogate",
        "PATCH",
        "/api/sessions/{session}",
        b'{"name": ' + surrogate + b"}",
        names="body",
    )
    chat = {"session_id": "{session}", "messages": [{"role": "user", "content": "x"}]}
    yield Probe(
        "chat content with NUL",
        "POST",
        "/api/chat",
        jsonb({**chat, "messages": [{"role": "user", "content": NUL}]}),
        names="messages[0].content",
    )
    yield Probe(
        "chat id with NUL",
        "POST",
        "/api/chat",
        jsonb({**chat, "messages": [{"role": "user", "content": "x", "id": NUL}]}),
        names="messages[0].id",
    )
    yield Probe(
        "chat content a lone surrogate",
        "POST",
        "/api/chat",
        b'{"session_id": "{session}", "messages": [{"role": "user", "content": ' + surrogate + b"}]}",
        names="body",
    )
    yield Probe(
        "chat session_id with NUL", "POST", "/api/chat", jsonb({**chat, "session_id": NUL}), status=404
    )
    yield Probe(
        "chat keep_generating 2^70",
        "POST",
        "/api/chat",
        jsonb({**chat, "keep_generating": 2**70}),
        names="keep_generating",
    )
    yield Probe(
        "regenerate keep_generating a string",
        "POST",
        "/api/sessions/{session}/regenerate",
        jsonb({"keep_generating": NUL}),
        names="keep_generating",
    )


def path_and_query_probes() -> Iterator[Probe]:
    for odd in ("%00", "a%00b", "%ED%A0%80", "%FF", "x" * 8_000, "%0a", ".", "..", "%2e%2e"):
        yield Probe(f"session {odd[:12]}", "GET", f"/api/sessions/{odd}", status=404)
        yield Probe(f"delete session {odd[:12]}", "DELETE", f"/api/sessions/{odd}", status=404)
        yield Probe(
            f"update session {odd[:12]}", "PATCH", f"/api/sessions/{odd}", jsonb({"name": "x"}), status=404
        )
        yield Probe(f"messages of {odd[:12]}", "GET", f"/api/sessions/{odd}/messages", status=404)
        yield Probe(f"export {odd[:12]}", "GET", f"/api/sessions/{odd}/export", status=404)
        yield Probe(f"regenerate {odd[:12]}", "POST", f"/api/sessions/{odd}/regenerate", status=404)
        yield Probe(f"follow {odd[:12]}", "GET", f"/api/messages/{odd}/stream", status=404)
        yield Probe(f"stop {odd[:12]}", "POST", f"/api/messages/{odd}/stop", status=404)
    for value in ("99999999999999999999", "-1", "0", "1e4", "%00", "9" * 5_000):
        yield Probe(f"sessions limit={value[:12]}", "GET", f"/api/sessions?limit={value}", names="limit")
        yield Probe(f"search limit={value[:12]}", "GET", f"/api/search?q=hello&limit={value}", names="limit")
    # Query numbers are taken as written: 1e3 is not read as 1000.
    yield Probe("sessions limit=1e3", "GET", "/api/sessions?limit=1e3", names="limit")
    yield Probe(
        "last_event_id=1e3", "GET", "/api/messages/{message}/stream?last_event_id=1e3", names="last_event_id"
    )
    for value in ("-1", "abc", "%00", "9" * 5_000, "1.5"):
        yield Probe(
            f"last_event_id={value[:12]}",
            "GET",
            f"/api/messages/{{message}}/stream?last_event_id={value}",
            names="last_event_id",
        )
    for value in ("abc", "9" * 5_000, "1e3", "1.5"):
        yield Probe(
            f"Last-Event-ID {value[:12]}",
            "GET",
            "/api/messages/{message}/stream",
            headers=(("Last-Event-ID", value),),
            names="Last-Event-ID",
        )
    yield Probe(
        "Last-Event-ID -1",
        "GET",
        "/api/messages/{message}/stream",
        headers=(("Last-Event-ID", "-1"),),
        names="must not be negative",
    )
    yield Probe(
        "last_event_id past the end",
        "GET",
        "/api/messages/{message}/stream?last_event_id=99999999999999999999",
        status=200,
    )
    yield Probe("order=%00", "GET", "/api/sessions?order=%00", names="order")
    yield Probe("direction=%00", "GET", "/api/sessions/{session}/messages?direction=%00", names="direction")
    yield Probe("export format=%00", "GET", "/api/sessions/{session}/export?format=%00", names="format")
    for q in (
        "%00",
        "a%00b",
        "%ED%A0%80",
        "%22%22%22",
        "-",
        "or",
        "x" * 1_000,
        "%F0%9F%99%82",
        "a%22b",
        "%5C%22",
    ):
        yield Probe(f"search q={q[:12]}", "GET", f"/api/search?q={q}", status=None, names="q")
    yield Probe(
        "a forged log line in the path", "GET", "/api/sessions/x%0aERROR%20-%20forged%20line", status=404
    )
    yield Probe("TRACE", "TRACE", "/api/sessions", status=405)


def static_probes() -> Iterator[Probe]:
    for path in (
        "/static/app.js%00.html",
        "/static/api.js/..",
        "/static/.",
        "/static/..",
        "/static/",
        "/static/%2e",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/app.js/x",
        "/static/app.js%2f..",
        "/static/index.html%00",
        "/static/%FF",
        "/static/" + "a" * 300,
        "/static/" + "a/" * 3000,
        "/static//etc/passwd",
        "/static/%5c..%5capi%5cweb.py",
        "/static/__init__.py",
        "/static/../api/web.py",
    ):
        yield Probe(f"static {path[:40]}", "GET", path, status=404)
    yield Probe("static app.js", "GET", "/static/app.js", status=200)
    yield Probe("static app.js/ (the trailing slash is dropped)", "GET", "/static/app.js/", status=200)
    yield Probe("static style.css with a query", "GET", "/static/style.css?v=%00", status=200)
    yield Probe("static POST", "POST", "/static/app.js", status=405)


PROBES = [
    *deep_json_probes(),
    *cursor_probes(),
    *import_probes(),
    *text_probes(),
    *path_and_query_probes(),
    *static_probes(),
]


@dataclass
class Target:
    server: ServerProcess
    session: str
    message: str
    kinds: dict[str, str]  # listing -> the cursor kind it gives out
    log_offset: int = 0

    def new_log(self) -> str:
        """What the server logged since the last call, once its access line for the request is there
        (an error is logged before it), or after a short wait for a request the app never saw."""
        deadline = time.monotonic() + ACCESS_LINE_WAIT_S
        while True:
            text = self.server.log()
            if ACCESS_LOGGER in text[self.log_offset :] or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        new, self.log_offset = text[self.log_offset :], len(text)
        return new


def first_cursor(client: httpx.Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    cursor = response.headers.get("x-next-cursor")
    assert cursor, f"{path} gave no cursor"
    return cursor


def kind_of(cursor: str) -> str:
    return str(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[0])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp(f"hostile-{request.param}")
    env = {"CHATSTORE_MOCK_DELAY_MS": "0", "CHATSTORE_LOG_LEVEL": "info"}
    if request.param == "sqlite":
        urls: Any = iter([f"sqlite:///{directory / 'chatstore.db'}"])
        context = None
    else:
        base = postgres_url()
        if base is None:
            skip_or_fail_in_ci("PostgreSQL tests need CHATSTORE_TEST_POSTGRES_URL")
        context = postgres_schema(str(base))
        urls = iter([context.__enter__()])
    try:
        with running_servers(1, next(urls), directory, env, name="hostile") as (server,):
            with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as client:
                sessions = [
                    client.post("/api/sessions", json={"name": "hello"}).json()["id"] for _ in range(2)
                ]
                chat = {"session_id": sessions[0], "messages": [{"role": "user", "content": "hello there"}]}
                for _ in range(2):
                    assert client.post("/api/chat", json=chat).status_code == 200
                messages = client.get(f"/api/sessions/{sessions[0]}/messages").json()
                kinds = {
                    "sessions:created": kind_of(first_cursor(client, "/api/sessions?limit=1")),
                    "sessions:activity": kind_of(
                        first_cursor(client, "/api/sessions?limit=1&order=activity")
                    ),
                    "messages:forward": kind_of(
                        first_cursor(client, f"/api/sessions/{sessions[0]}/messages?limit=1")
                    ),
                    "messages:backward": kind_of(
                        first_cursor(
                            client, f"/api/sessions/{sessions[0]}/messages?limit=1&direction=backward"
                        )
                    ),
                    "search": kind_of(first_cursor(client, "/api/search?q=hello&limit=1")),
                }
            yield Target(server, sessions[0], messages[-1]["id"], kinds, len(server.log()))
    finally:
        if context is not None:
            context.__exit__(None, None, None)


def fill_in(probe: Probe, target: Target) -> str:
    path = probe.target.replace("{session}", target.session).replace("{message}", target.message)
    if probe.listing is not None:
        document = f'["{target.kinds[probe.listing]}", {probe.key}]'
        path = path.replace(
            "{cursor}", quote(base64.urlsafe_b64encode(document.encode()).decode().rstrip("="))
        )
    return path


def send(target: Target, probe: Probe) -> tuple[int, bytes]:
    address = urlsplit(target.server.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=TIMEOUT_S)
    try:
        path = fill_in(probe, target)
        body = probe.body.replace(b"{session}", target.session.encode()) if probe.body is not None else None
        connection.putrequest(probe.method, path, skip_accept_encoding=True)
        headers = dict(probe.headers)
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
            headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("probe", PROBES, ids=[probe.name for probe in PROBES])
def test_hostile_input_gets_a_clean_answer(target: Target, probe: Probe) -> None:
    status, body = send(target, probe)
    log = target.new_log()

    assert status < 500, (status, body[:500])
    assert "Traceback" not in log and " - ERROR - " not in log, log[-3000:]
    assert PACKAGE_DIR.encode() not in body, body[:500]
    assert not any(line.startswith("ERROR - forged") for line in log.splitlines()), log
    if probe.status:
        assert status == probe.status, (status, body[:500])
    if status == 400 and probe.names:
        assert probe.names in json.loads(body)["detail"], body[:500]


def test_the_error_log_shows_a_request_path_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """A path with a newline (``%0a``) must not start a line of its own in the log when a request fails."""

    @get("/fails/{part:str}")
    async def fails(part: FromPath[str]) -> None:
        raise RuntimeError("a bug")

    # The app's logging set-up replaces the root handlers, caplog's among them: listen directly.
    logger = logging.getLogger("chatstore.api")
    logger.addHandler(caplog.handler)
    try:
        with TestClient(Litestar([fails], exception_handlers=exception_handlers)) as client:
            response = client.get("/fails/x%0aERROR - forged%0d%00")
    finally:
        logger.removeHandler(caplog.handler)

    assert response.status_code == 500
    (record,) = [record for record in caplog.records if record.name == "chatstore.api"]
    message = record.getMessage()
    assert not any(character in message for character in "\n\r\x00"), message
    assert "x\\nERROR - forged\\r\\x00" in message


UNAUTHENTICATED = [
    ("POST", "/api/chat", deep_array(5_000).encode(), 401),
    ("POST", "/api/sessions/import", jsonb(export(session={"created_at": OVERFLOWING_TIMES[0]})), 401),
    (
        "GET",
        "/api/sessions?cursor=" + base64.urlsafe_b64encode(b'["x", [' + b"[" * 3000 + b"]]").decode(),
        None,
        401,
    ),
    ("GET", "/static/app.js%00.html", None, 404),
    ("GET", "/static/.", None, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), UNAUTHENTICATED)
def test_hostile_input_without_the_api_key_is_refused_before_anything_else(
    make_client: ClientFactory, method: str, path: str, body: bytes | None, status: int
) -> None:
    with make_client(api_key="hostile-input-key-0123456789") as client:
        response = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert PACKAGE_DIR not in response.text
