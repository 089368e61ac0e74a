"""Benchmark of chatstore against real server processes, and against the framework's own limit.

Run it by hand from the repository root:

    python bench/bench_chat.py [--rounds 3] [--duration 8] [--clients 16]
        [--configs memory,sqlite-1,sqlite-2,postgres-1,postgres-2] [--workloads all]
        [--slow-clients 500] [--slow-delay-ms 50] [--open-streams 1000] [--open-delay-ms 200]
        [--get-messages 10000] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

Configs, each on fresh server processes (on a free port, stopped with their process group):

- ``sqlite-N``: ``python -m chatstore --workers N`` on a new SQLite file;
- ``postgres-N``: the same on a new PostgreSQL schema, dropped afterwards;
- ``memory``: a minimal Litestar app defined in this file (run as ``--serve-memory --port P``) that keeps
  everything in dicts but speaks the same contract: the same structs, SSE events and mock reply (the
  same text, in the same pieces, with the same pause between them), on the same uvicorn settings. It is
  the limit that chatstore's targets are ratios to.

Workloads (``--workloads``, comma-separated, or ``all``):

- ``turns``: ``--clients`` clients (each with its own session and keep-alive connection) run chat turns
  back to back without pauses in the reply; a second of warm-up, then ``--duration`` seconds measured.
  Turns/s, latency, time to the first event, and the server processes' CPU per turn (from ``/proc``).
- ``first-event``: the same with one client: time to the ``start`` event, which chatstore sends once
  the user's message and the reply's row are committed.
- ``create``: ``--clients`` clients creating sessions back to back: server CPU per request.
- ``get``: sequential GETs of a session holding ``--get-messages`` messages (one-process configs;
  seeded with SQL, through a seeding endpoint for ``memory``).
- ``slow``: ``--slow-clients`` clients at once, the reply pausing ``--slow-delay-ms`` between pieces:
  turns/s and time to the first event when many streams are open.
- ``streams``: ``--open-streams`` replies opened at once, pausing ``--open-delay-ms`` between pieces
  (long enough that all are open together): the server's resident memory with them open minus before,
  per stream, and the p99 gap between two deltas of a stream as its client sees it.

Each workload of a config gets a server of its own (``slow`` and ``streams`` need a slower mock), and
every completed turn must then be in the database, in order, complete. ``--rounds`` rounds run every
config in turn, so configs alternate on the machine; the tables give each figure's median over the
rounds with the spread (lowest to highest), and the ratios of the medians to ``memory`` with the targets.
The slow workloads use a small raw HTTP/1.1 client rather than httpx, so that the load client's own
CPU stays small beside the server's.

It prints on stdout the date, ``nproc``, the versions, the figures table, the ratios, and any failed
turn or integrity problem. Progress goes to stderr. ``CHATSTORE_*`` variables in the environment reach
the servers (``CHATSTORE_PROGRESS_INTERVAL_MS`` sets how often progress is written, say); the mock's
pause is this script's to set.

Server CPU counts the server's processes only, not PostgreSQL's. The load client shares the cores with
the servers; its CPU per turn is printed too: where it is close to the server's, turns/s is partly the
client's limit and CPU per turn is the steadier comparison.

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
import statistics
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
from urllib.parse import urlsplit

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
    BranchMessage,
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
CLIENT_TIMEOUT = httpx.Timeout(120.0, connect=30.0)

WARMUP_S = 1.0
GET_WARMUP_REQUESTS = 3
GET_TIMED_REQUESTS = 30
FIRST_EVENT_DURATION_S = 3.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# The mock's pause between pieces, in the environment of both kinds of server.
MOCK_DELAY_VARIABLE = "CHATSTORE_MOCK_DELAY_MS"

SEED_FILLER = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 4)[:285]
# The user's message of a turn in the streams workload: long, so that its reply (which quotes it) is too.
LONG_QUESTION_WORDS = 30

WORKLOADS = ("turns", "first-event", "create", "get", "slow", "streams")

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


def parse_workloads(names: str) -> tuple[str, ...]:
    if names.strip() == "all":
        return WORKLOADS
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in WORKLOADS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workload {unknown[0]!r}: use {', '.join(WORKLOADS)} or all"
        )
    return tuple(name for name in WORKLOADS if name in chosen)


@dataclass(frozen=True, slots=True)
class Options:
    rounds: int
    clients: int
    duration_s: float
    configs: list[Config]
    workloads: tuple[str, ...]
    postgres_url: str
    get_messages: int
    slow_clients: int
    slow_delay_ms: int
    open_streams: int
    open_delay_ms: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark chatstore against real servers and its limit.")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every config, alternating")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients, one session each")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per load")
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=parse_configs("memory,sqlite-1,sqlite-2,postgres-1,postgres-2"),
        help="comma-separated: memory, sqlite-N, postgres-N (N worker processes)",
    )
    parser.add_argument("--workloads", type=parse_workloads, default=WORKLOADS, help=", ".join(WORKLOADS))
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--get-messages", type=int, default=10_000, help="messages in the session read by GET"
    )
    parser.add_argument("--slow-clients", type=int, default=500, help="concurrent clients of the slow load")
    parser.add_argument("--slow-delay-ms", type=int, default=50, help="pause between pieces, slow load")
    parser.add_argument("--open-streams", type=int, default=1000, help="streams opened at once")
    parser.add_argument("--open-delay-ms", type=int, default=200, help="pause between pieces, open streams")
    parser.add_argument("--serve-memory", action="store_true", help="(internal) serve the in-memory app")
    parser.add_argument("--port", type=int, default=8000, help="(internal) port for --serve-memory")
    args = parser.parse_args(argv)
    sizes = (
        args.rounds,
        args.clients,
        args.duration,
        args.get_messages,
        args.slow_clients,
        args.open_streams,
    )
    if min(sizes) <= 0 or min(args.slow_delay_ms, args.open_delay_ms) < 0:
        parser.error("counts and durations must be positive, pauses not negative")
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
    reply: BranchMessage


class MemoryStore:
    """Sessions and their messages in dicts; a message's ``seq`` is its position in its list."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionRead] = {}
        self.messages: dict[str, list[BranchMessage]] = {}

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

    def append(self, session_id: str, role: Role, content: str, status: Status) -> BranchMessage:
        """A message below the session's last one, as chatstore's GET gives it: with its parent and
        its siblings (itself alone, on a chain), so that both servers send the same bytes."""
        messages = self._messages_of(session_id)
        message_id = new_id()
        message = BranchMessage(
            id=message_id,
            session_id=session_id,
            seq=len(messages) + 1,
            role=role,
            content=content,
            status=status,
            created_at=utc_now(),
            parent_id=messages[-1].id if messages else None,
            sibling_ids=[message_id],
        )
        messages.append(message)
        return message

    def start_turn(self, session_id: str, messages: Sequence[MessageIn]) -> MemoryTurn:
        stored = [self.append(session_id, message.role, message.content, "complete") for message in messages]
        reply = self.append(session_id, "assistant", "", "in_progress")
        return MemoryTurn(session_id, [message.id for message in stored], reply)

    def finish_reply(self, reply: BranchMessage, content: str) -> BranchMessage:
        done = msgspec.structs.replace(reply, content=content, status="complete")
        self.messages[reply.session_id][reply.seq - 1] = done
        return done

    async def history(self, session_id: str, before_seq: int) -> list[BranchMessage]:
        return self._messages_of(session_id)[: before_seq - 1]

    def _messages_of(self, session_id: str) -> list[BranchMessage]:
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
    responder = MockResponder(delay_ms=int(os.environ.get(MOCK_DELAY_VARIABLE, "0")))

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
    # chatstore's own settings where they touch speed: h11, no access log, uvicorn's default loop.
    uvicorn.run(
        create_memory_app(), host="127.0.0.1", port=port, log_level="warning", http="h11", access_log=False
    )


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

    def rss_bytes(self) -> int:
        return process_group_rss_bytes(self.process.pid)

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


def process_group_rss_bytes(group: int) -> int:
    """Resident memory of the live processes in a process group."""
    pages = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == group:
            pages += int(statm.split()[1])
    return pages * PAGE_SIZE


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


def server_env(database_url: str | None, mock_delay_ms: int) -> dict[str, str]:
    # CHATSTORE_* variables of the caller reach the servers (e.g. CHATSTORE_PROGRESS_INTERVAL_MS, to
    # measure live progress), except the mock's pause, which the workload sets for both kinds of server.
    env = {**os.environ, "CHATSTORE_LOG_LEVEL": "warning", MOCK_DELAY_VARIABLE: str(mock_delay_ms)}
    if database_url is not None:
        env["CHATSTORE_DATABASE_URL"] = database_url
    return env


# --- Load: chat turns through httpx ---------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    """What the clients read between turns: whether the measured window is open, and whether to stop."""

    measuring: bool = False
    stopping: bool = False


@dataclass(slots=True)
class ClientRecord:
    session_id: str
    completed: int = 0  # turns that ended with `done`, warm-up included: what the database must hold
    latencies_s: list[float] = field(default_factory=list)  # turns that ended in the measured window
    first_events_s: list[float] = field(default_factory=list)
    delta_gaps_s: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass(frozen=True, slots=True)
class TurnTiming:
    latency_s: float
    first_event_s: float
    delta_gaps_s: list[float] = field(default_factory=list)


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

    def samples(self, which: Callable[[ClientRecord], list[float]]) -> list[float]:
        return [sample for record in self.records for sample in which(record)]

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


def question(turn: int, words: int = 0) -> str:
    """The user's message of a turn: its number, then ``words`` words to make it (and its reply) longer."""
    return f"benchmark turn {turn}" + "".join(f" word{index}" for index in range(words))


def turn_number(user_content: str) -> int:
    return int(user_content.removeprefix("benchmark turn ").split(" ", 1)[0])


def chat_body(session_id: str, turn: int, words: int = 0) -> bytes:
    message = {"role": "user", "content": question(turn, words)}
    return msgspec.json.encode({"session_id": session_id, "messages": [message]})


async def chat_turn(client: httpx.AsyncClient, session_id: str, turn: int) -> TurnTiming | None:
    """One turn, read to the end of the stream; None unless it answered 200 and ended with ``done``."""
    body = chat_body(session_id, turn)
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


async def run_client(turn: Callable[[int], Any], record: ClientRecord, phase: Phase) -> None:
    """Turns back to back until told to stop; a turn counts if it ends inside the measured window."""
    number = 0
    while not phase.stopping:
        number += 1
        try:
            timing: TurnTiming | None = await turn(number)
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError):
            timing = None
        if timing is not None:
            record.completed += 1
        if not phase.measuring:
            continue
        if timing is None:
            record.errors += 1
        else:
            record.latencies_s.append(timing.latency_s)
            record.first_events_s.append(timing.first_event_s)
            record.delta_gaps_s.extend(timing.delta_gaps_s)


async def create_session(client: httpx.AsyncClient) -> str:
    response = await client.post(SESSIONS_PATH, json={"name": "benchmark"})
    response.raise_for_status()
    return str(response.json()["id"])


async def measure_window(
    clients: Sequence[Callable[[ClientRecord, Phase], Any]],
    records: list[ClientRecord],
    duration_s: float,
    server_cpu: Callable[[], float],
) -> LoadResult:
    """Run every client; ``WARMUP_S`` not counted, then ``duration_s`` measured. The clients finish the
    turns they are in before this returns (the database must hold those too), outside the window."""
    phase = Phase()
    async with asyncio.TaskGroup() as group:
        for client, record in zip(clients, records, strict=True):
            group.create_task(client(record, phase))
        await asyncio.sleep(WARMUP_S)
        server_cpu_before, client_cpu_before = server_cpu(), time.process_time()
        started = time.perf_counter()
        phase.measuring = True
        await asyncio.sleep(duration_s)
        phase.measuring, phase.stopping = False, True
        elapsed_s = time.perf_counter() - started
        server_cpu_s, client_cpu_s = server_cpu() - server_cpu_before, time.process_time() - client_cpu_before
    return LoadResult(records, elapsed_s, server_cpu_s, client_cpu_s)


async def run_turns(
    base_url: str, clients: int, duration_s: float, server_cpu: Callable[[], float]
) -> LoadResult:
    """``clients`` httpx clients, each with its session and keep-alive connection, turns back to back."""
    async with AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT))
            for _ in range(clients)
        ]
        records = [ClientRecord(await create_session(client)) for client in connections]
        runners = [
            partial(run_client, partial(chat_turn, client, record.session_id))
            for client, record in zip(connections, records, strict=True)
        ]
        return await measure_window(runners, records, duration_s, server_cpu)


# --- Load: session creation -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateResult:
    requests: int
    errors: int
    server_cpu_s: float

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.requests if self.requests else math.nan


async def run_creates(
    base_url: str, clients: int, duration_s: float, server_cpu: Callable[[], float]
) -> CreateResult:
    counts = {"requests": 0, "errors": 0}
    phase = Phase()

    async def create_back_to_back(client: httpx.AsyncClient) -> None:
        while not phase.stopping:
            try:
                response = await client.post(SESSIONS_PATH, json={"name": "benchmark", "metadata": {"k": 1}})
                ok = response.status_code == 201
            except httpx.HTTPError:
                ok = False
            if phase.measuring:
                counts["requests" if ok else "errors"] += 1

    async with AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT))
            for _ in range(clients)
        ]
        async with asyncio.TaskGroup() as group:
            for client in connections:
                group.create_task(create_back_to_back(client))
            await asyncio.sleep(WARMUP_S)
            before = server_cpu()
            phase.measuring = True
            await asyncio.sleep(duration_s)
            phase.measuring, phase.stopping = False, True
            cpu_s = server_cpu() - before
    return CreateResult(counts["requests"], counts["errors"], cpu_s)


# --- Load: many slow streams, through a raw HTTP/1.1 client ---------------------------------------


class RawChatConnection:
    """One keep-alive HTTP/1.1 connection that posts chat turns and scans their event streams as bytes,
    without parsing them: cheap enough for one client process to keep a thousand streams going."""

    def __init__(self, base_url: str) -> None:
        address = urlsplit(base_url)
        self._host, self._port = address.hostname or "127.0.0.1", address.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def turn(
        self, session_id: str, number: int, words: int, started_streams: "OpenStreams | None" = None
    ) -> TurnTiming | None:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        body = chat_body(session_id, number, words)
        started = time.perf_counter()
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (CHAT_PATH.encode(), self._host.encode(), len(body))
            + body
        )
        status = int((await reader.readline()).split()[1])
        headers: dict[bytes, bytes] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        scan = EventScan(started)
        try:
            if headers.get(b"transfer-encoding") == b"chunked":
                while size := int((await reader.readline()).split(b";")[0], 16):
                    chunk = (await reader.readexactly(size + 2))[:-2]
                    if scan.feed(chunk) and started_streams is not None:
                        started_streams.opened()
                await reader.readline()  # the empty trailer
            else:
                scan.feed(await reader.readexactly(int(headers.get(b"content-length", b"0"))))
        finally:
            if started_streams is not None and scan.first_event_s is not None:
                started_streams.closed()
        if headers.get(b"connection") == b"close":
            await self.close()
        if status != 200 or scan.first_event_s is None or not scan.done:
            return None
        return TurnTiming(time.perf_counter() - started, scan.first_event_s, scan.gaps_s)


class EventScan:
    """What a turn's stream has shown so far: its start, the gaps between chunks carrying deltas, done."""

    START, DELTA, DONE = b"event: start", b"event: delta", b"event: done"

    def __init__(self, started: float) -> None:
        self.started = started
        self.first_event_s: float | None = None
        self.gaps_s: list[float] = []
        self.done = False
        self._last_delta: float | None = None
        self._tail = b""  # an event name may be cut between two chunks

    def feed(self, chunk: bytes) -> bool:
        """Take in a chunk; True if it is the one that holds the ``start`` event."""
        now = time.perf_counter()
        seen = self._tail + chunk
        self._tail = seen[-len(self.START) :]
        began = False
        if self.first_event_s is None and self.START in seen:
            self.first_event_s, began = now - self.started, True
        if self.DELTA in seen:
            if self._last_delta is not None:
                self.gaps_s.append(now - self._last_delta)
            self._last_delta = now
        self.done = self.done or self.DONE in seen
        return began


class OpenStreams:
    """How many streams have started and not yet ended; ``all_open`` is set once ``expected`` are."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.open = 0
        self.peak = 0
        self.all_open = asyncio.Event()

    def opened(self) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        if self.open >= self.expected:
            self.all_open.set()

    def closed(self) -> None:
        self.open -= 1


async def create_sessions(base_url: str, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT) as client:
        return [await create_session(client) for _ in range(count)]


async def run_slow_turns(base_url: str, clients: int, duration_s: float) -> LoadResult:
    """``clients`` raw connections at once, turns back to back; the server's mock pauses between pieces."""
    records = [ClientRecord(session_id) for session_id in await create_sessions(base_url, clients)]
    connections = [RawChatConnection(base_url) for _ in records]
    runners = [
        partial(run_client, lambda number, c=connection, s=record.session_id: c.turn(s, number, 0))
        for connection, record in zip(connections, records, strict=True)
    ]
    try:
        return await measure_window(runners, records, duration_s, lambda: 0.0)
    finally:
        for connection in connections:
            await connection.close()


@dataclass(frozen=True, slots=True)
class StreamsResult:
    records: list[ClientRecord]
    peak_open: int
    idle_rss_bytes: int
    open_rss_bytes: int

    @property
    def kb_per_stream(self) -> float:
        return (
            (self.open_rss_bytes - self.idle_rss_bytes) / 1024 / self.peak_open
            if self.peak_open
            else math.nan
        )

    @property
    def errors(self) -> int:
        return sum(record.errors for record in self.records)


RSS_SAMPLES = 10
RSS_SAMPLE_INTERVAL_S = 0.1


async def run_open_streams(base_url: str, count: int, rss: Callable[[], int]) -> StreamsResult:
    """Open ``count`` replies at once, one per session and connection; read the server's memory before
    and while all are open, and the gaps between deltas that each stream shows its client."""
    records = [ClientRecord(session_id) for session_id in await create_sessions(base_url, count)]
    connections = [RawChatConnection(base_url) for _ in records]
    streams = OpenStreams(count)
    idle_rss = rss()

    async def one_turn(connection: RawChatConnection, record: ClientRecord) -> None:
        try:
            timing = await connection.turn(record.session_id, 1, LONG_QUESTION_WORDS, streams)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            timing = None
        finally:
            await connection.close()
        if timing is None:
            record.errors += 1
            streams.expected -= 1  # so that the others are still measured
            if streams.open >= streams.expected:
                streams.all_open.set()
            return
        record.completed += 1
        record.latencies_s.append(timing.latency_s)
        record.first_events_s.append(timing.first_event_s)
        record.delta_gaps_s.extend(timing.delta_gaps_s)

    open_rss = idle_rss
    async with asyncio.TaskGroup() as group:
        for connection, record in zip(connections, records, strict=True):
            group.create_task(one_turn(connection, record))
        try:
            await asyncio.wait_for(streams.all_open.wait(), READY_TIMEOUT_S)
        except TimeoutError:
            progress(f"  only {streams.peak} of {count} streams were open at once")
        for _ in range(RSS_SAMPLES):
            open_rss = max(open_rss, rss())
            await asyncio.sleep(RSS_SAMPLE_INTERVAL_S)
    return StreamsResult(records, streams.peak, idle_rss, open_rss)


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


# --- One config, one round ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    label: str
    digits: int
    target: str = ""
    # Whether chatstore's median meets the target, given the memory app's.
    met: Callable[[float, float], bool] | None = None


def metrics(options: Options) -> list[Metric]:
    n, slow, opened = options.clients, options.slow_clients, options.open_streams
    messages = f"{options.get_messages:,}"
    return [
        Metric("turns_per_s", f"chat turns/s, {n} clients", 0, "≥ 0.65x", lambda c, m: c >= 0.65 * m),
        Metric(
            "cpu_per_turn_ms",
            f"server CPU per chat turn, {n} clients, ms",
            2,
            "≤ 1.5x",
            lambda c, m: c <= 1.5 * m,
        ),
        Metric("turn_p50_ms", "turn latency p50, ms", 1),
        Metric("turn_p99_ms", "turn latency p99, ms", 1),
        Metric("client_cpu_per_turn_ms", "load client's CPU per chat turn, ms", 2),
        Metric(
            "slow_turns_per_s",
            f"{slow} concurrent slow streams ({options.slow_delay_ms} ms between deltas), turns/s",
            0,
            "≥ 0.9x",
            lambda c, m: c >= 0.9 * m,
        ),
        Metric(
            "slow_first_event_ms", "same, time to first event p50, ms", 0, "≤ 1.5x", lambda c, m: c <= 1.5 * m
        ),
        Metric("get_ms", f"GET of a {messages}-message session, p50, ms", 1, "≤ 3x", lambda c, m: c <= 3 * m),
        Metric("get_mb", "its body, MB", 2),
        Metric(
            "first_event_ms",
            "time to first event, one client, p50, ms",
            2,
            "≤ 1.5x + 1 ms",
            lambda c, m: c <= 1.5 * m + 1,
        ),
        Metric(
            "create_cpu_ms",
            f"create session, {n} clients, server CPU per request, ms",
            3,
            "≤ 1.5x",
            lambda c, m: c <= 1.5 * m,
        ),
        Metric("stream_kb", f"memory per open stream, {opened} open, KB", 1),
        Metric("gap_p99_ms", f"same, p99 gap between deltas ({options.open_delay_ms} ms apart), ms", 0),
        Metric("streams_open", "same, streams open at once", 0),
    ]


@dataclass(slots=True)
class RoundResult:
    figures: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def check(self, what: str, load_errors: int, integrity: Integrity | None) -> None:
        if load_errors:
            self.problems.append(f"{what}: {load_errors} failed turns (not 200, or no `done` event)")
        integrity = integrity or Integrity()
        counts = {
            "messages of completed turns lost": integrity.lost,
            "stored messages out of order": integrity.reordered,
            "stored messages beyond those of the completed turns": integrity.extra,
            "stored messages not 'complete'": integrity.not_complete,
        }
        self.problems += [f"{what}: {count} {problem}" for problem, count in counts.items() if count]


@contextmanager
def config_server(
    config: Config, options: Options, workdir: Path, name: str, mock_delay_ms: int, **env: str
) -> Iterator[tuple[Server, Engine | None]]:
    """Fresh servers of ``config`` on a fresh database, for one workload."""
    with ExitStack() as stack:
        database_url = stack.enter_context(database_for(config, workdir / name, options.postgres_url))
        engine = None if database_url is None else stack.enter_context(opened_engine(database_url))
        environment = {**server_env(database_url, mock_delay_ms), **env}
        log_path = workdir / name / f"{config.name}.log"
        server = stack.enter_context(running_server(server_command(config), environment, log_path))
        if engine is not None:
            poll_until(server, "all workers", partial(workers_registered, engine, config.workers))
        yield server, engine


def benchmark_config(config: Config, options: Options, workdir: Path) -> RoundResult:
    result = RoundResult()
    figures = result.figures
    chosen = set(options.workloads)
    if chosen & {"turns", "first-event", "create", "get"}:
        with config_server(config, options, workdir, "fast", 0) as (server, engine):
            if "turns" in chosen:
                load = asyncio.run(
                    run_turns(server.base_url, options.clients, options.duration_s, server.cpu_seconds)
                )
                figures["turns_per_s"] = load.turns_per_s
                figures["cpu_per_turn_ms"] = load.server_cpu_ms_per_turn
                figures["client_cpu_per_turn_ms"] = load.client_cpu_ms_per_turn
                figures["turn_p50_ms"] = 1000 * percentile(load.samples(lambda r: r.latencies_s), 0.5)
                figures["turn_p99_ms"] = 1000 * percentile(load.samples(lambda r: r.latencies_s), 0.99)
                result.check("turns", load.errors, engine and check_database(engine, load.records))
                progress(
                    f"  turns: {load.turns_per_s:.0f}/s, server CPU {load.server_cpu_ms_per_turn:.2f} ms/turn"
                )
            if "first-event" in chosen:
                duration = min(options.duration_s, FIRST_EVENT_DURATION_S)
                load = asyncio.run(run_turns(server.base_url, 1, duration, server.cpu_seconds))
                figures["first_event_ms"] = 1000 * percentile(load.samples(lambda r: r.first_events_s), 0.5)
                result.check("first-event", load.errors, engine and check_database(engine, load.records))
                progress(f"  first event, one client: {figures['first_event_ms']:.2f} ms")
            if "create" in chosen:
                created = asyncio.run(
                    run_creates(server.base_url, options.clients, options.duration_s, server.cpu_seconds)
                )
                figures["create_cpu_ms"] = created.server_cpu_ms_per_request
                if created.errors:
                    result.problems.append(f"create: {created.errors} failed requests")
                progress(f"  create: {created.server_cpu_ms_per_request:.3f} ms of server CPU per request")
            if "get" in chosen and config.workers == 1:
                seed: Seeder = (
                    partial(seed_through_api, server.base_url)
                    if engine is None
                    else partial(seed_with_sql, engine)
                )
                large_read = time_large_read(server.base_url, options.get_messages, seed)
                figures["get_ms"] = 1000 * large_read.p50_s
                figures["get_mb"] = large_read.size_bytes / 1e6
                progress(f"  GET: {figures['get_ms']:.1f} ms")
    if "slow" in chosen:
        with config_server(config, options, workdir, "slow", options.slow_delay_ms) as (server, engine):
            load = asyncio.run(run_slow_turns(server.base_url, options.slow_clients, options.duration_s))
            figures["slow_turns_per_s"] = load.turns_per_s
            figures["slow_first_event_ms"] = 1000 * percentile(load.samples(lambda r: r.first_events_s), 0.5)
            result.check("slow", load.errors, engine and check_database(engine, load.records))
            progress(
                f"  slow: {load.turns_per_s:.0f} turns/s, first event {figures['slow_first_event_ms']:.0f} ms"
            )
    if "streams" in chosen:
        limit = {"CHATSTORE_MAX_CONNECTIONS": str(2 * options.open_streams)}
        with config_server(config, options, workdir, "streams", options.open_delay_ms, **limit) as (
            server,
            engine,
        ):
            streams = asyncio.run(run_open_streams(server.base_url, options.open_streams, server.rss_bytes))
            figures["stream_kb"] = streams.kb_per_stream
            figures["streams_open"] = streams.peak_open
            figures["gap_p99_ms"] = 1000 * percentile(
                [gap for record in streams.records for gap in record.delta_gaps_s], 0.99
            )
            result.check("streams", streams.errors, engine and check_database(engine, streams.records))
            progress(
                f"  streams: {streams.peak_open} open, {streams.kb_per_stream:.1f} KB each, "
                f"p99 gap {figures['gap_p99_ms']:.0f} ms"
            )
    return result


# --- Output ---------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def summary(values: Sequence[float], digits: int) -> str:
    """The median, and the spread when there is one."""
    if not values:
        return "-"
    middle = fmt(statistics.median(values), digits)
    if len(values) == 1:
        return middle
    return f"{middle} ({fmt(min(values), digits)} to {fmt(max(values), digits)})"


def print_figures(
    shown: Sequence[Metric], configs: Sequence[Config], figures: dict[str, dict[str, list[float]]]
) -> None:
    header = ["", *(config.name for config in configs)]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    for metric in shown:
        cells = [summary(figures[config.name].get(metric.key, []), metric.digits) for config in configs]
        print(f"| {metric.label} | " + " | ".join(cells) + " |")


def print_ratios(
    shown: Sequence[Metric], configs: Sequence[Config], figures: dict[str, dict[str, list[float]]]
) -> None:
    memory = figures.get("memory")
    others = [config for config in configs if config.backend != "memory"]
    if memory is None or not others:
        return
    targeted = [metric for metric in shown if metric.met is not None and memory.get(metric.key)]
    print("\nRatios of the medians to memory:\n")
    header = ["", "target", *(config.name for config in others)]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    for metric in targeted:
        limit = statistics.median(memory[metric.key])
        cells = []
        for config in others:
            values = figures[config.name].get(metric.key)
            if not values:
                cells.append("-")
                continue
            value = statistics.median(values)
            met = metric.met(value, limit) if metric.met is not None else True
            cells.append(f"{value / limit:.2f}x {'met' if met else 'MISSED'}")
        print(f"| {metric.label} | {metric.target} | " + " | ".join(cells) + " |")


def print_header(options: Options) -> None:
    print(f"# chatstore benchmark, {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}\n")
    print(
        f"nproc {len(os.sched_getaffinity(0))}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"litestar {version('litestar')}, uvicorn {version('uvicorn')}, httpx {version('httpx')}; "
        f"{options.rounds} rounds; workloads {', '.join(options.workloads)}; "
        f"{WARMUP_S:.0f} s warm-up + {options.duration_s:g} s per load\n"
    )


def run_benchmarks(options: Options) -> bool:
    """Run every config in every round and print the results; True if nothing went wrong."""
    print_header(options)
    figures: dict[str, dict[str, list[float]]] = {
        config.name: defaultdict(list) for config in options.configs
    }
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chatstore-bench-") as workdir:
        for round_number in range(1, options.rounds + 1):
            for config in options.configs:
                progress(f"round {round_number}, {config.name}:")
                config_dir = Path(workdir) / f"{round_number}-{config.name}"
                for name in ("fast", "slow", "streams"):
                    (config_dir / name).mkdir(parents=True)
                try:
                    result = benchmark_config(config, options, config_dir)
                except Exception as exc:  # one config failing (no PostgreSQL, say) does not stop the others
                    progress(f"  failed: {exc}")
                    problems.append(
                        f"- {config.name}, round {round_number}: did not run: {str(exc).splitlines()[0]}"
                    )
                    continue
                for key, value in result.figures.items():
                    if not math.isnan(value):
                        figures[config.name][key].append(value)
                problems += [
                    f"- {config.name}, round {round_number}: {problem}" for problem in result.problems
                ]
    shown = [
        metric for metric in metrics(options) if any(figures[c.name].get(metric.key) for c in options.configs)
    ]
    print_figures(shown, options.configs, figures)
    print_ratios(shown, options.configs, figures)
    if problems:
        print("\nProblems:")
        print("\n".join(problems))
    return not problems


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_memory:
        serve_memory(args.port)
        return
    options = Options(
        rounds=args.rounds,
        clients=args.clients,
        duration_s=args.duration,
        configs=args.configs,
        workloads=args.workloads,
        postgres_url=args.postgres_url,
        get_messages=args.get_messages,
        slow_clients=args.slow_clients,
        slow_delay_ms=args.slow_delay_ms,
        open_streams=args.open_streams,
        open_delay_ms=args.open_delay_ms,
    )
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
