"""Test helpers: reading the database directly, parsing SSE, and driving the ASGI app by hand."""

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from chatstore.core.db import Database, resolve_url
from chatstore.services.errors import ResponderError
from chatstore.services.responders import Conversation, Responder


@dataclass
class Event:
    id: int
    event: str
    data: Any


def parse_sse(body: str) -> list[Event]:
    """Parse a complete ``text/event-stream`` body into its events."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        if fields:
            events.append(
                Event(int(fields["id"][0]), fields["event"][0], json.loads("\n".join(fields["data"])))
            )
    return events


@contextmanager
def postgres_schema(base_url: str, prefix: str = "test") -> Iterator[str]:
    """A new, empty schema on the PostgreSQL server of ``base_url``, dropped afterwards: yields a
    chatstore database URL whose tables go there (``options=-csearch_path=…``)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(resolve_url(base_url, blocking=True), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class DatabaseView:
    """Direct reads of the database behind the app, through its own connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(sql), params)]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(sql), params)

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT id, seq, role, content, status, worker_id FROM messages"
            " WHERE session_id = :s ORDER BY seq",
            s=session_id,
        )


def assert_search_index_whole(db: DatabaseView) -> None:
    """SQLite's full-text index holds exactly what it reads from (messages and their sessions'
    owners): FTS5's own check, which fails the statement otherwise."""
    db.execute("INSERT INTO messages_search (messages_search, rank) VALUES ('integrity-check', 1)")


T = TypeVar("T")


def _disk_full() -> sqlite3.OperationalError:
    """What SQLite's driver raises when the disk is full: its message, and the result code."""
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = 13  # SQLITE_FULL
    error.sqlite_errorname = "SQLITE_FULL"
    return error


class WriteFaults:
    """Which writes fail: ``fail(when)`` makes every write whose function ``when`` picks fail (all of
    them by default) with a full disk, or with what ``error`` makes; ``heal()`` lets them through
    again. ``failed`` counts the writes refused."""

    def __init__(self) -> None:
        self._when: Callable[[Callable[..., Any]], bool] | None = None
        self.error: Callable[[], Exception] = lambda: OperationalError("COMMIT", {}, _disk_full())
        self.failed = 0

    def fail(
        self,
        when: Callable[[Callable[..., Any]], bool] = lambda _: True,
        error: Callable[[], Exception] | None = None,
    ) -> None:
        self._when = when
        if error is not None:
            self.error = error

    def heal(self) -> None:
        self._when = None

    def refuses(self, fn: Callable[..., Any]) -> bool:
        refused = self._when is not None and self._when(fn)
        self.failed += refused
        return refused


def written_by(name: str) -> Callable[[Callable[..., Any]], bool]:
    """Picks the writes made by the function called ``name`` (its SQL is a function nested in it)."""
    return lambda fn: fn.__qualname__.split(".<locals>.")[0].split(".")[-1] == name


class FailingWrites(Database):
    """A real database whose writes fail when ``faults`` says so (by default with the error the
    driver raises on a full disk), before they reach it; reads always go through."""

    def __init__(self, database: Database, faults: WriteFaults) -> None:
        super().__init__()
        self.dialect = database.dialect
        self._database = database
        self._faults = faults

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        return await self._database.read(fn)

    async def _write(self, fn: Callable[[Connection], T], priority: bool) -> T:
        if self._faults.refuses(fn):
            raise self._faults.error()
        return await self._database.write(fn, priority=priority)

    async def close(self) -> None:
        await self._database.close()


class ScriptedResponder(Responder):
    """Yields the given pieces, then optionally fails; records how far it got and whether it was closed."""

    def __init__(
        self, pieces: list[str], *, fail_with: Exception | None = None, delay_s: float = 0.0
    ) -> None:
        self.pieces = pieces
        self.fail_with = fail_with
        self.delay_s = delay_s
        self.produced = 0
        self.closed = False
        self.conversations: list[Conversation] = []

    async def reply(self, conversation: Conversation) -> AsyncIterator[str]:
        self.conversations.append(conversation)
        try:
            for piece in self.pieces:
                await anyio.sleep(self.delay_s)
                self.produced += 1
                yield piece
            if self.fail_with is not None:
                raise self.fail_with
        finally:
            self.closed = True


def failing_responder(pieces: list[str], detail: str = "the model is overloaded") -> ScriptedResponder:
    return ScriptedResponder(pieces, fail_with=ResponderError(detail))


async def call_asgi(
    app: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    on_body: Callable[[bytes], Awaitable[bool] | bool] | None = None,
) -> tuple[int, bytes]:
    """Call the app as a server would (``path`` may end with a query). ``on_body`` sees each body
    chunk; when it returns True the client disconnects (the app's next ``receive`` says
    ``http.disconnect``)."""
    path, _, query = path.partition("?")
    payload = json.dumps(body).encode() if body is not None else b""
    gone = anyio.Event()
    request_sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            gone.set()  # as servers do: once the response is complete, receive() says disconnect
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            if on_body is not None and not gone.is_set():
                verdict = on_body(message["body"])
                if not isinstance(verdict, bool):
                    verdict = await verdict
                if verdict:
                    gone.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    return status, b"".join(chunks)
