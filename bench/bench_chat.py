"""Chat-turn benchmark of chatstore against real server processes, and against the framework's own limit.

Run it by hand from the repository root:

    python bench/bench_chat.py [--clients 16] [--duration 8]
        [--configs sqlite-1,sqlite-2,postgres-1,postgres-2,memory]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--get-messages 10000]

Every config gets fresh server processes on a free port, stopped (with their process group) when it ends:

- ``sqlite-N``: ``python -m chatstore --workers N`` on a new SQLite file;
- ``postgres-N``: the same on a new PostgreSQL schema, dropped afterwards;
- ``memory``: a minimal Litestar app defined in this file (run as ``--serve-memory --port P``) that keeps
  everything in dicts but speaks the same contract: the same structs, SSE events and mock reply, on the
  same uvicorn server. It is the limit that chatstore's targets are ratios to.

For each config, ``--clients`` clients (each with its own session and keep-alive connection) run chat
turns back to back, one second of warm-up and then ``--duration`` seconds measured, while the server
processes' CPU time is read from ``/proc``. Then the database is read directly: every completed turn
must be stored, in order, complete. One-process configs also time a GET of a session holding
``--get-messages`` messages, seeded with SQL (through a seeding endpoint for ``memory``).

It prints on stdout the date, ``nproc`` and the Python version, one markdown table with a row per config
(turns/s, turn latency p50/p99, time to the first event, server CPU per turn, lost and reordered
messages, GET p50 and size), any failed turn or integrity problem, and the ratios to the memory row
with their targets. Progress goes to stderr.

``CHATSTORE_*`` variables in the environment reach the servers: ``CHATSTORE_MOCK_DELAY_MS=10`` makes
replies last (0 by default here), and ``CHATSTORE_PROGRESS_INTERVAL_MS`` sets how often their progress
is written, so that the cost of live progress can be measured.

Server CPU counts the server's processes only, not PostgreSQL's. The load client shares the cores with
the servers; its own CPU per turn is printed too, and where it is close to the server's, turns/s is
partly the client's limit and CPU per turn is the steadier comparison.

The exit status is 1 if a config did not run, a turn failed or the database lost or misordered a
message; missed targets do not change it.
"""

import argparse
import asyncio
import functools
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, cast

import httpx
import msgspec
import uvicorn
from litestar import Litestar, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy import Engine, create_engine, insert, select, text, update

from chatstore.core.db import resolve_url
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import new_id, new_message_row, utc_now
from chatstore.schemas import (
    ChatRequest,
    MessageIn,
    MessageRead,
    ReplyDelta,
    ReplyStarted,
    Role,
    SessionCreate,
    SessionDetail,
    SessionRead,
    Status,
)
from chatstore.services.responders import Conversation, MockResponder

SESSIONS_PATH = "/api/sessions"
CHAT_PATH = "/api/chat"
JSON_HEADERS = {"content-type": "application/json"}
CLIENT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)

WARMUP_S = 1.0
GET_WARMUP_REQUESTS = 3
GET_TIMED_REQUESTS = 30
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

TURNS_TARGET = 0.7  # chatstore's chat turns/s, as a fraction of the memory app's
GET_TARGET = 5.0  # chatstore's large GET p50, as a multiple of the memory app's

SEED_FILLER = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 4)[:285]


Backend = Literal["sqlite", "postgres", "memory"]
Seeder = Callable[[str, int], None]


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- Configs and options --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    backend: Backend
    workers: int


def parse_config(name: str) -> Config:
    if name == "memory":
        return Config(name, "memory", 1)
    backend, _, workers = name.partition("-")
    if backend not in ("sqlite", "postgres") or not workers.isdigit() or int(workers) < 1:
        raise argparse.ArgumentTypeError(f"unknown config {name!r}: use memory, sqlite-N or postgres-N")
    return Config(name, cast(Backend, backend), int(workers))


def parse_configs(names: str) -> list[Config]:
    return [parse_config(name.strip()) for name in names.split(",") if name.strip()]


@dataclass(frozen=True, slots=True)
class Options:
    clients: int
    duration_s: float
    configs: list[Config]
    postgres_url: str
    get_messages: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark chatstore's chat turns against real servers.")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients, one session each")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per config")
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=parse_configs("sqlite-1,sqlite-2,postgres-1,postgres-2,memory"),
        help="comma-separated: sqlite-N, postgres-N (N worker processes), memory",
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--get-messages", type=int, default=10_000, help="messages in the session read by GET"
    )
    parser.add_argument("--serve-memory", action="store_true", help="(internal) serve the in-memory app")
    parser.add_argument("--port", type=int, default=8000, help="(internal) port for --serve-memory")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.get_messages < 1:
        parser.error("--clients, --duration and --get-messages must be positive")
    return args


# --- The in-memory app: the same contract with no database ----------------------------------------


def seed_role(seq: int) -> Role:
    return "user" if seq % 2 else "assistant"


def seed_content(seq: int) -> str:
    """About 300 characters, different for every message."""
    return f"seeded message {seq}: {SEED_FILLER}"


@dataclass(frozen=True, slots=True)
class MemoryTurn:
    session_id: str
    message_ids: list[str]
    reply: MessageRead


class MemoryStore:
    """Sessions and their messages in dicts; a message's ``seq`` is its position in its list."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionRead] = {}
        self.messages: dict[str, list[MessageRead]] = {}

    def create_session(self, data: SessionCreate) -> SessionRead:
        now = utc_now()
        session = SessionRead(id=new_id(), name=data.name, meta=data.meta, created_at=now, updated_at=now)
        self.sessions[session.id] = session
        self.messages[session.id] = []
        return session

    def detail(self, session_id: str) -> SessionDetail:
        messages = self._messages_of(session_id)
        session = msgspec.structs.replace(self.sessions[session_id], message_count=len(messages))
        return SessionDetail(session=session, messages=messages)

    def append(self, session_id: str, role: Role, content: str, status: Status) -> MessageRead:
        messages = self._messages_of(session_id)
        message = MessageRead(
            id=new_id(),
            session_id=session_id,
            seq=len(messages) + 1,
            role=role,
            content=content,
            status=status,
            created_at=utc_now(),
        )
        messages.append(message)
        return message

    def start_turn(self, session_id: str, messages: Sequence[MessageIn]) -> MemoryTurn:
        stored = [self.append(session_id, message.role, message.content, "complete") for message in messages]
        reply = self.append(session_id, "assistant", "", "in_progress")
        return MemoryTurn(session_id, [message.id for message in stored], reply)

    def finish_reply(self, reply: MessageRead, content: str) -> MessageRead:
        done = msgspec.structs.replace(reply, content=content, status="complete")
        self.messages[reply.session_id][reply.seq - 1] = done
        return done

    async def history(self, session_id: str, before_seq: int) -> list[MessageRead]:
        return self._messages_of(session_id)[: before_seq - 1]

    def _messages_of(self, session_id: str) -> list[MessageRead]:
        messages = self.messages.get(session_id)
        if messages is None:
            raise NotFoundException(f"session {session_id!r} not found")
        return messages


def sse_message(event: str, event_id: int, data: msgspec.Struct) -> ServerSentEventMessage:
    return ServerSentEventMessage(id=event_id, event=event, data=msgspec.json.encode(data).decode())


async def memory_reply_events(
    store: MemoryStore, responder: MockResponder, turn: MemoryTurn, messages: Sequence[MessageIn]
) -> AsyncIterator[ServerSentEventMessage]:
    """chatstore's events: ``id`` is the reply's length so far, ``done`` carries the stored reply."""
    yield sse_message(
        "start",
        0,
        ReplyStarted(
            session_id=turn.session_id, message_ids=turn.message_ids, assistant_message_id=turn.reply.id
        ),
    )
    conversation = Conversation(
        session_id=turn.session_id,
        new_messages=messages,
        load_history=partial(store.history, turn.session_id, turn.reply.seq),
    )
    parts: list[str] = []
    length = 0
    async for piece in responder.reply(conversation):
        parts.append(piece)
        length += len(piece)
        yield sse_message("delta", length, ReplyDelta(content=piece))
    yield sse_message("done", length + 1, store.finish_reply(turn.reply, "".join(parts)))


def create_memory_app() -> Litestar:
    store = MemoryStore()
    responder = MockResponder(delay_ms=0)

    @post(SESSIONS_PATH, status_code=201)
    async def create_session(data: SessionCreate | None = None) -> Response[SessionRead]:
        session = store.create_session(data or SessionCreate())
        return Response(session, status_code=201, headers={"Location": f"{SESSIONS_PATH}/{session.id}"})

    @get(SESSIONS_PATH)
    async def list_sessions() -> list[SessionRead]:
        return list(reversed(store.sessions.values()))

    @get(f"{SESSIONS_PATH}/{{session_id:str}}")
    async def get_session(session_id: str) -> SessionDetail:
        return store.detail(session_id)

    @post(CHAT_PATH, status_code=200)
    async def chat(data: ChatRequest) -> ServerSentEvent:
        turn = store.start_turn(data.session_id, data.messages)
        return ServerSentEvent(memory_reply_events(store, responder, turn, data.messages))

    @post("/seed/{session_id:str}", status_code=204)
    async def seed(session_id: str, n: int) -> None:
        for seq in range(1, n + 1):
            store.append(session_id, seed_role(seq), seed_content(seq), "complete")

    return Litestar(route_handlers=[create_session, list_sessions, get_session, chat, seed])


def serve_memory(port: int) -> None:
    uvicorn.run(create_memory_app(), host="127.0.0.1", port=port, log_level="warning")


# --- Databases and server processes ---------------------------------------------------------------


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A new schema for one config; yields a URL whose connections use it, and drops it afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(resolve_url(base_url, blocking=True), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in base_url else "?"
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_for(config: Config, workdir: Path, postgres_url: str) -> Iterator[str | None]:
    """The database URL a config's servers use (None for memory), new for this config."""
    if config.backend == "sqlite":
        yield f"sqlite:///{workdir / f'{config.name}.db'}"
    elif config.backend == "postgres":
        with postgres_schema(postgres_url) as url:
            yield url
    else:
        yield None


@contextmanager
def opened_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(resolve_url(database_url, blocking=True))
    try:
        yield engine
    finally:
        engine.dispose()


@dataclass(frozen=True, slots=True)
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def cpu_seconds(self) -> float:
        return process_group_cpu_seconds(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_group_cpu_seconds(group: int) -> float:
    """User + system CPU time of the live processes in a process group (the server and its workers)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        # After the command name: state ppid pgrp session tty tpgid flags, 4 fault counts, utime stime ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS_PER_S


@contextmanager
def running_server(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """Start ``command --port P`` in its own process group, wait until it answers, and kill the group."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            cwd=log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        poll_until(server, "the API to answer", partial(api_answers, server.base_url))
        yield server
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:  # whatever is left of the group, the leader's workers included
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait()


def poll_until(server: Server, what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready():
        if server.process.poll() is not None:
            raise RuntimeError(
                f"the server exited ({server.process.returncode}) waiting for {what}:\n{server.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {READY_TIMEOUT_S:.0f} s for {what}:\n{server.log_tail()}")
        time.sleep(0.1)


def api_answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}{SESSIONS_PATH}", timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


def workers_registered(engine: Engine, workers: int) -> bool:
    """Each chatstore process registers its lease on start-up: all are serving once all are there."""
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM workers")).scalar_one()) >= workers


def server_command(config: Config) -> list[str]:
    if config.backend == "memory":
        return [sys.executable, str(Path(__file__).resolve()), "--serve-memory"]
    return [sys.executable, "-m", "chatstore", "--workers", str(config.workers)]


def server_env(database_url: str | None) -> dict[str, str]:
    # CHATSTORE_* variables of the caller win (e.g. CHATSTORE_PROGRESS_INTERVAL_MS, to measure live
    # progress); the mock streams without pauses unless CHATSTORE_MOCK_DELAY_MS says otherwise.
    env = {"CHATSTORE_MOCK_DELAY_MS": "0", **os.environ, "CHATSTORE_LOG_LEVEL": "warning"}
    if database_url is not None:
        env["CHATSTORE_DATABASE_URL"] = database_url
    return env


# --- Load: concurrent clients running chat turns --------------------------------------------------


@dataclass(slots=True)
class Phase:
    """What the clients read between turns: whether turns count yet, and whether to stop."""

    measuring: bool = False
    stopping: bool = False


@dataclass(slots=True)
class ClientRecord:
    session_id: str
    completed: int = 0  # turns that ended with `done`, warm-up included: what the database must hold
    latencies_s: list[float] = field(default_factory=list)
    first_events_s: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass(frozen=True, slots=True)
class TurnTiming:
    latency_s: float
    first_event_s: float


@dataclass(frozen=True, slots=True)
class LoadResult:
    records: list[ClientRecord]
    elapsed_s: float
    server_cpu_s: float
    client_cpu_s: float

    @property
    def turns(self) -> int:
        return sum(len(record.latencies_s) for record in self.records)

    @property
    def errors(self) -> int:
        return sum(record.errors for record in self.records)

    @property
    def latencies_s(self) -> list[float]:
        return [latency for record in self.records for latency in record.latencies_s]

    @property
    def first_events_s(self) -> list[float]:
        return [first for record in self.records for first in record.first_events_s]

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.elapsed_s

    @property
    def server_cpu_ms_per_turn(self) -> float:
        return 1000 * self.server_cpu_s / self.turns if self.turns else math.nan

    @property
    def client_cpu_ms_per_turn(self) -> float:
        return 1000 * self.client_cpu_s / self.turns if self.turns else math.nan


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN when there are no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def chat_body(session_id: str, turn_number: int) -> bytes:
    message = {"role": "user", "content": f"benchmark turn {turn_number}"}
    return msgspec.json.encode({"session_id": session_id, "messages": [message]})


async def chat_turn(client: httpx.AsyncClient, session_id: str, turn_number: int) -> TurnTiming | None:
    """One turn, read to the end of the stream; None unless it answered 200 and ended with ``done``."""
    body = chat_body(session_id, turn_number)
    started = time.perf_counter()
    first_event_s: float | None = None
    received = bytearray()
    async with client.stream("POST", CHAT_PATH, content=body, headers=JSON_HEADERS) as response:
        if response.status_code != 200:
            await response.aread()  # so that the connection can be reused
            return None
        async for chunk in response.aiter_raw():
            received += chunk
            if first_event_s is None and b"\nevent: start" in received:
                first_event_s = time.perf_counter() - started
    latency_s = time.perf_counter() - started
    if first_event_s is None or b"\nevent: done" not in received:
        return None
    return TurnTiming(latency_s, first_event_s)


async def run_client(client: httpx.AsyncClient, record: ClientRecord, phase: Phase) -> None:
    turn_number = 0
    while not phase.stopping:
        turn_number += 1
        measured = phase.measuring
        try:
            timing = await chat_turn(client, record.session_id, turn_number)
        except httpx.HTTPError:
            timing = None
        if timing is not None:
            record.completed += 1
        if not measured:
            continue
        if timing is None:
            record.errors += 1
        else:
            record.latencies_s.append(timing.latency_s)
            record.first_events_s.append(timing.first_event_s)


async def create_session(client: httpx.AsyncClient) -> str:
    response = await client.post(SESSIONS_PATH, json={"name": "benchmark"})
    response.raise_for_status()
    return str(response.json()["id"])


async def run_load(
    base_url: str, clients: int, duration_s: float, server_cpu: Callable[[], float]
) -> LoadResult:
    """``clients`` clients run turns back to back: ``WARMUP_S`` not counted, then ``duration_s`` measured."""
    async with AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT))
            for _ in range(clients)
        ]
        records = [ClientRecord(await create_session(client)) for client in connections]
        phase = Phase()
        async with asyncio.TaskGroup() as group:
            for client, record in zip(connections, records, strict=True):
                group.create_task(run_client(client, record, phase))
            await asyncio.sleep(WARMUP_S)
            server_cpu_before, client_cpu_before = server_cpu(), time.process_time()
            started = time.perf_counter()
            phase.measuring = True
            await asyncio.sleep(duration_s)
            phase.stopping = True
        elapsed_s = time.perf_counter() - started
        return LoadResult(
            records,
            elapsed_s,
            server_cpu() - server_cpu_before,
            time.process_time() - client_cpu_before,
        )


# --- What the database holds after the load -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Integrity:
    lost: int = 0  # messages of completed turns that are not stored
    reordered: int = 0  # stored messages out of place: wrong seq, role, turn order or reply
    extra: int = 0  # stored messages beyond those of completed turns
    not_complete: int = 0  # stored messages whose status is not 'complete'

    def __add__(self, other: "Integrity") -> "Integrity":
        return Integrity(
            self.lost + other.lost,
            self.reordered + other.reordered,
            self.extra + other.extra,
            self.not_complete + other.not_complete,
        )


@functools.cache
def expected_reply(user_content: str) -> str:
    conversation = Conversation(
        session_id="", new_messages=[MessageIn(role="user", content=user_content)], load_history=_no_history
    )
    return asyncio.run(MockResponder(delay_ms=0).text_for(conversation))


async def _no_history() -> list[MessageRead]:
    return []


def turn_number(user_content: str) -> int:
    return int(user_content.removeprefix("benchmark turn "))


def check_session(rows: Sequence[Any], completed_turns: int) -> Integrity:
    """Rows in seq order must be 1..n, user then assistant, turns in order, each reply after its request."""
    expected = 2 * completed_turns
    reordered = 0
    previous_turn = 0
    for index, row in enumerate(rows):
        in_place = row.seq == index + 1 and row.role == ("user" if index % 2 == 0 else "assistant")
        if in_place and row.role == "user":
            turn = turn_number(row.content)
            in_place, previous_turn = turn > previous_turn, turn
        elif in_place:
            in_place = row.content == expected_reply(rows[index - 1].content)
        reordered += not in_place
    return Integrity(
        lost=max(0, expected - len(rows)),
        reordered=reordered,
        extra=max(0, len(rows) - expected),
        not_complete=sum(row.status != "complete" for row in rows),
    )


def check_database(engine: Engine, records: Sequence[ClientRecord]) -> Integrity:
    columns = messages_table.c
    query = (
        select(columns.session_id, columns.seq, columns.role, columns.content, columns.status)
        .where(columns.session_id.in_([record.session_id for record in records]))
        .order_by(columns.session_id, columns.seq)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    by_session: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_session[row.session_id].append(row)
    return sum(
        (check_session(by_session[record.session_id], record.completed) for record in records), Integrity()
    )


# --- GET of a large session -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LargeRead:
    p50_s: float
    size_bytes: int


def seed_with_sql(engine: Engine, session_id: str, count: int) -> None:
    """Store ``count`` complete messages in the session as chatstore would have: a chain, each the
    child of the one before, the last the session's current message."""
    now = utc_now()
    rows: list[dict[str, object]] = []
    for seq in range(1, count + 1):
        parent_id = rows[-1]["id"] if rows else None
        rows.append(
            new_message_row(
                session_id=session_id,
                parent_id=parent_id,
                depth=seq - 1,
                seq=seq,
                role=seed_role(seq),
                content=seed_content(seq),
                created_at=now,
            )
        )
    with engine.begin() as connection:
        connection.execute(insert(messages_table), rows)
        connection.execute(
            update(sessions_table)
            .where(sessions_table.c.id == session_id)
            .values(
                last_seq=count,
                message_count=count,
                current_message_id=rows[-1]["id"],
                last_message_at=now,
                updated_at=now,
            )
        )


def seed_through_api(base_url: str, session_id: str, count: int) -> None:
    response = httpx.post(f"{base_url}/seed/{session_id}", params={"n": count}, timeout=CLIENT_TIMEOUT)
    response.raise_for_status()


def time_large_read(base_url: str, messages: int, seed: Seeder) -> LargeRead:
    """Create a session, seed it with ``messages`` messages, and time sequential GETs of it."""
    with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(SESSIONS_PATH, json={"name": "large"})
        response.raise_for_status()
        session_id = str(response.json()["id"])
        seed(session_id, messages)
        path = f"{SESSIONS_PATH}/{session_id}"
        for _ in range(GET_WARMUP_REQUESTS):
            response = client.get(path)
            response.raise_for_status()
        if len(response.json()["messages"]) != messages:
            raise RuntimeError(f"GET {path} did not return the {messages} seeded messages")
        timings = [timed_get(client, path) for _ in range(GET_TIMED_REQUESTS)]
    return LargeRead(percentile(timings, 0.5), len(response.content))


def timed_get(client: httpx.Client, path: str) -> float:
    """Seconds from sending the request to the body's last byte; the body is read in chunks and dropped,
    so that assembling megabytes in the client does not count as the server's time."""
    started = time.perf_counter()
    with client.stream("GET", path) as response:
        for _ in response.iter_raw():
            pass
    elapsed_s = time.perf_counter() - started
    response.raise_for_status()
    return elapsed_s


# --- One config, end to end -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigResult:
    config: Config
    load: LoadResult
    integrity: Integrity | None
    large_read: LargeRead | None


def benchmark_config(config: Config, options: Options, workdir: Path) -> ConfigResult:
    with ExitStack() as stack:
        database_url = stack.enter_context(database_for(config, workdir, options.postgres_url))
        engine = None if database_url is None else stack.enter_context(opened_engine(database_url))
        server = stack.enter_context(
            running_server(server_command(config), server_env(database_url), workdir / f"{config.name}.log")
        )
        if engine is not None:
            poll_until(server, "all workers", partial(workers_registered, engine, config.workers))
        load = asyncio.run(run_load(server.base_url, options.clients, options.duration_s, server.cpu_seconds))
        report_load(config, load)
        integrity = None if engine is None else check_database(engine, load.records)
        large_read = None
        if config.workers == 1:
            seed: Seeder = (
                partial(seed_through_api, server.base_url)
                if engine is None
                else partial(seed_with_sql, engine)
            )
            large_read = time_large_read(server.base_url, options.get_messages, seed)
        return ConfigResult(config, load, integrity, large_read)


def report_load(config: Config, load: LoadResult) -> None:
    progress(
        f"{config.name}: {load.turns} turns in {load.elapsed_s:.1f} s, {load.errors} failed; "
        f"CPU per turn: server {fmt(load.server_cpu_ms_per_turn, 2)} ms, "
        f"load client {fmt(load.client_cpu_ms_per_turn, 2)} ms"
    )


# --- Output ---------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def get_label(messages: int) -> str:
    return f"{messages // 1000}k" if messages % 1000 == 0 else str(messages)


def table_row(result: ConfigResult) -> list[str]:
    load, integrity, large_read = result.load, result.integrity, result.large_read
    read = "-"
    if large_read is not None:
        read = f"{fmt(1000 * large_read.p50_s)} ({large_read.size_bytes / 1e6:.1f} MB)"
    return [
        result.config.name,
        fmt(load.turns_per_s, 0),
        fmt(1000 * percentile(load.latencies_s, 0.5)),
        fmt(1000 * percentile(load.latencies_s, 0.99)),
        fmt(1000 * percentile(load.first_events_s, 0.5)),
        fmt(load.server_cpu_ms_per_turn, 2),
        "-" if integrity is None else str(integrity.lost),
        "-" if integrity is None else str(integrity.reordered),
        read,
    ]


def print_table(results: Sequence[ConfigResult], get_messages: int) -> None:
    header = [
        "config",
        "turns/s",
        "p50 ms",
        "p99 ms",
        "first event p50 ms",
        "CPU ms/turn",
        "lost",
        "reordered",
        f"GET {get_label(get_messages)} p50 ms",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    for result in results:
        print("| " + " | ".join(table_row(result)) + " |")
    client_cpu = ", ".join(f"{r.config.name} {fmt(r.load.client_cpu_ms_per_turn, 2)}" for r in results)
    print(f"\nLoad client CPU ms/turn (on the same cores as the servers): {client_cpu}")


def problems(result: ConfigResult) -> list[str]:
    found = []
    if result.load.errors:
        found.append(f"{result.load.errors} failed turns (not 200, or no `done` event)")
    integrity = result.integrity or Integrity()
    counts = {
        "messages of completed turns lost": integrity.lost,
        "stored messages out of order": integrity.reordered,
        "stored messages beyond those of the completed turns": integrity.extra,
        "stored messages not 'complete'": integrity.not_complete,
    }
    found += [f"{count} {what}" for what, count in counts.items() if count]
    return found


def print_problems(results: Sequence[ConfigResult], failures: dict[str, str]) -> bool:
    """List failed turns, integrity problems and configs that did not run; False if there were none."""
    lines = [f"- {result.config.name}: {problem}" for result in results for problem in problems(result)]
    lines += [f"- {name}: did not run: {error}" for name, error in failures.items()]
    if lines:
        print("\nProblems:")
        print("\n".join(lines))
    return bool(lines)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def ratio_line(result: ConfigResult, memory: ConfigResult, get_messages: int) -> str:
    turns_ratio = ratio(result.load.turns_per_s, memory.load.turns_per_s)
    cpu_ratio = ratio(result.load.server_cpu_ms_per_turn, memory.load.server_cpu_ms_per_turn)
    line = (
        f"- {result.config.name}: chat turns/s ÷ memory = {turns_ratio:.2f} "
        f"(target ≥ {TURNS_TARGET}: {verdict(turns_ratio >= TURNS_TARGET)}); "
        f"server CPU per turn ÷ memory = {cpu_ratio:.1f}x"
    )
    if result.large_read is not None and memory.large_read is not None:
        get_ratio = ratio(result.large_read.p50_s, memory.large_read.p50_s)
        line += (
            f"; GET {get_label(get_messages)} ÷ memory = {get_ratio:.1f}x "
            f"(target ≤ {GET_TARGET:.0f}x: {verdict(get_ratio <= GET_TARGET)})"
        )
    return line


def print_ratios(results: Sequence[ConfigResult], get_messages: int) -> None:
    memory = next((result for result in results if result.config.backend == "memory"), None)
    others = [result for result in results if result is not memory]
    if memory is None or not others:
        return
    print("\nRatios to memory:")
    for result in others:
        print(ratio_line(result, memory, get_messages))


def print_header(options: Options) -> None:
    print(f"# chatstore chat benchmark, {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}\n")
    print(
        f"nproc {len(os.sched_getaffinity(0))}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"litestar {version('litestar')}, uvicorn {version('uvicorn')}, httpx {version('httpx')}; "
        f"{options.clients} clients, {WARMUP_S:.0f} s warm-up + {options.duration_s:g} s per config, "
        f"GET of {options.get_messages:,} messages\n"
    )


def run_benchmarks(options: Options) -> bool:
    """Run every config and print the results; True if everything ran without a problem."""
    print_header(options)
    results: list[ConfigResult] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="chatstore-bench-") as workdir:
        for config in options.configs:
            progress(f"{config.name}: starting")
            try:
                results.append(benchmark_config(config, options, Path(workdir)))
            except Exception as exc:  # one config failing (no PostgreSQL, say) does not stop the others
                progress(f"{config.name}: failed: {exc}")
                failures[config.name] = str(exc).splitlines()[0]
    print_table(results, options.get_messages)
    found_problems = print_problems(results, failures)
    print_ratios(results, options.get_messages)
    return not found_problems


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_memory:
        serve_memory(args.port)
        return
    options = Options(args.clients, args.duration, args.configs, args.postgres_url, args.get_messages)
    # Stopped with SIGTERM as with Ctrl-C: the cleanup that kills the servers runs either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        succeeded = run_benchmarks(options)
    except KeyboardInterrupt:
        progress("interrupted; the servers are stopped")
        sys.exit(130)
    sys.exit(0 if succeeded else 1)


if __name__ == "__main__":
    main()
