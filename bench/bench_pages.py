"""Pagination benchmark: is a deep page as fast as the first one? 100,000 sessions, a real server.

Run it by hand from the repository root:

    python bench/bench_pages.py [--sessions 100000] [--messages 5000] [--requests 50]
        [--backends sqlite,postgres] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

For each backend it creates a fresh database (a SQLite file in a temporary folder, or a PostgreSQL
schema dropped afterwards), lets chatstore create its tables and indexes by opening it once, and
inserts with plain SQL ``--sessions`` sessions whose creation and activity times are spread over a
month (two at a time share a creation time, so the id breaks ties), one of them holding
``--messages`` messages. Then it starts ``python -m chatstore`` (``tests/servers.py``) and, with one
keep-alive client, pages once through the listings to collect the cursors of the deep pages: page
1,000 of ``GET /api/sessions?limit=50`` (about 50,000 sessions in) by creation and by activity, and
the middle page of ``GET /api/sessions/{id}/messages?limit=50``. It checks that each page holds
exactly the items it should, then times the queries round-robin: a few warm-up rounds, then
``--requests`` measured requests of each.

It also asks the database for the plan of each query: ``EXPLAIN QUERY PLAN`` on SQLite; on
PostgreSQL ``EXPLAIN`` of the plan for these values and of the generic plan, which the server's
cached prepared statements may switch to. The SQL explained is the SQL chatstore sends: the service
functions are run in-process on a plain synchronous engine that records their statements.

It prints on stdout the date, ``nproc`` and the Python version, a markdown table of p50 and p90
latency per backend and query, the deep/first ratios of the p50s with their target (≤ 1.5x), and
the plans, each marked with whether it walks the expected index without sorting. Progress goes to
stderr. The exit status is 1 if a page held the wrong items or a plan does not use its index;
missed ratio targets do not change it.
"""

import argparse
import asyncio
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.servers

from chatstore.core.db import Database, Work, open_database, resolve_url
from chatstore.core.settings import Settings
from chatstore.models import ChatSession, Message
from chatstore.services.owners import EVERY_SESSION
from chatstore.services.sessions import list_messages, list_sessions
from tests.helpers import postgres_schema
from tests.servers import running_servers

T = TypeVar("T")

PAGE = 50
DEEP_PAGE = 1_000
WARM_UP_ROUNDS = 5
INSERT_BATCH = 5_000
RATIO_TARGET = 1.5
MESSAGE_TEXT = "A chat turn of a typical length, long enough to look like a real question or answer. " * 3

sessions_table = ChatSession.__table__  # type: ignore[attr-defined]
messages_table = Message.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Dataset:
    """What was inserted, in the orders the listings promise, to check the pages against."""

    by_created: list[str]  # session ids, newest first
    by_activity: list[str]
    long_session: str
    message_count: int


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    path: str
    params: dict[str, str | int]
    key: str  # the field of an item that ``expected`` lists
    expected: list[str] | list[int]
    index_table: str
    index_columns: list[str]
    baseline: str | None = None  # the query whose p50 this one's is compared to


# --- Filling the database ----------------------------------------------------------------------------


def fill(database_url: str, session_count: int, message_count: int) -> Dataset:
    async def create_schema() -> None:
        database = await open_database(Settings(database_url=database_url))
        await database.close()

    anyio.run(create_schema)
    rng = random.Random(5)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    sessions = []
    for index in range(session_count):
        created = start + timedelta(seconds=30 * (index // 2))
        # Most sessions go quiet soon after they start; a few are picked up again days later.
        active = created + timedelta(seconds=int(rng.expovariate(1 / 86_400)))
        sessions.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "name": f"session {index}",
                "metadata": {},
                "created_at": created,
                "updated_at": active,
                "last_seq": 0,
                "last_message_at": active,
                "activity_at": active,
            }
        )
    long_session = sessions[rng.randrange(session_count)]
    long_session["last_seq"] = message_count
    messages = [
        {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "session_id": long_session["id"],
            "seq": seq,
            "role": ("user", "assistant")[seq % 2],
            "content": MESSAGE_TEXT,
            "status": "complete",
            "created_at": long_session["created_at"],
            "updated_at": long_session["created_at"],
        }
        for seq in range(1, message_count + 1)
    ]
    engine = create_engine(resolve_url(database_url, blocking=True))
    with engine.begin() as connection:
        for rows, table in ((sessions, sessions_table), (messages, messages_table)):
            for first in range(0, len(rows), INSERT_BATCH):
                connection.execute(insert(table), rows[first : first + INSERT_BATCH])
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    engine.dispose()

    def newest_first(column: str) -> list[str]:
        return [row["id"] for row in sorted(sessions, key=lambda row: (row[column], row["id"]), reverse=True)]

    return Dataset(newest_first("created_at"), newest_first("activity_at"), long_session["id"], message_count)


@contextmanager
def fresh_database(backend: str, postgres_url: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'pages.db'}"
        return
    with postgres_schema(postgres_url, prefix="bench") as url:
        yield url


# --- The queries -------------------------------------------------------------------------------------


def cursor_of_page(client: httpx.Client, path: str, params: dict[str, str | int], page: int) -> str:
    """The cursor that asks for page number ``page`` (1-based), found by paging there."""
    cursor: str | None = None
    for _ in range(page - 1):
        response = client.get(path, params=params if cursor is None else {**params, "cursor": cursor})
        response.raise_for_status()
        cursor = response.headers["X-Next-Cursor"]
    assert cursor is not None, "the first page has no cursor"
    return cursor


def queries(client: httpx.Client, data: Dataset) -> list[Query]:
    deep = slice((DEEP_PAGE - 1) * PAGE, DEEP_PAGE * PAGE)
    listed: list[Query] = []
    for order, ids, column in (
        ("created", data.by_created, "created_at"),
        ("activity", data.by_activity, "activity_at"),
    ):
        params: dict[str, str | int] = {"limit": PAGE, "order": order}
        cursor = cursor_of_page(client, "/api/sessions", params, DEEP_PAGE)
        index = ("sessions", [column, "id"])
        listed += [
            Query(f"sessions by {order}, first page", "/api/sessions", params, "id", ids[:PAGE], *index),
            Query(
                f"sessions by {order}, page {DEEP_PAGE:,}",
                "/api/sessions",
                {**params, "cursor": cursor},
                "id",
                ids[deep],
                *index,
                baseline=f"sessions by {order}, first page",
            ),
        ]
    path = f"/api/sessions/{data.long_session}/messages"
    forward: dict[str, str | int] = {"limit": PAGE, "direction": "forward"}
    middle_page = data.message_count // PAGE // 2 + 1
    middle_cursor = cursor_of_page(client, path, forward, middle_page)
    first_middle_seq = (middle_page - 1) * PAGE + 1
    index = ("messages", ["session_id", "seq"])
    return [
        *listed,
        Query("messages forward, first page", path, forward, "seq", list(range(1, PAGE + 1)), *index),
        Query(
            f"messages forward, page {middle_page} (middle)",
            path,
            {**forward, "cursor": middle_cursor},
            "seq",
            list(range(first_middle_seq, first_middle_seq + PAGE)),
            *index,
            baseline="messages forward, first page",
        ),
        Query(
            "messages backward, first page",
            path,
            {"limit": PAGE, "direction": "backward"},
            "seq",
            list(range(data.message_count - PAGE + 1, data.message_count + 1)),
            *index,
            baseline="messages forward, first page",
        ),
    ]


def wrong_pages(client: httpx.Client, listed: list[Query]) -> list[str]:
    problems = []
    for query in listed:
        response = client.get(query.path, params=query.params)
        response.raise_for_status()
        got = [item[query.key] for item in response.json()]
        if got != query.expected:
            problems.append(
                f"{query.name}: got {query.key}s {got[:3]}… ({len(got)}), expected {query.expected[:3]}…"
            )
    return problems


def measure(client: httpx.Client, listed: list[Query], requests: int) -> dict[str, list[float]]:
    """Milliseconds per request of each query, taken round-robin so that noise spreads evenly."""
    timings: dict[str, list[float]] = {query.name: [] for query in listed}
    for round_ in range(WARM_UP_ROUNDS + requests):
        for query in listed:
            began = time.perf_counter()
            response = client.get(query.path, params=query.params)
            elapsed_ms = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            if round_ >= WARM_UP_ROUNDS:
                timings[query.name].append(elapsed_ms)
    return timings


# --- Query plans -------------------------------------------------------------------------------------


class RecordingDatabase(Database):
    """chatstore's ``Database`` on a plain synchronous engine, keeping the SQL the service functions send."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.dialect = engine.dialect.name
        self.statements: list[tuple[str, Any]] = []
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._record)

    async def _read(self, fn: Work[T]) -> T:
        with self.engine.begin() as connection:
            return fn(connection)

    async def _write(self, fn: Work[T], priority: bool) -> T:
        return await self._read(fn)

    async def close(self) -> None:
        self.engine.dispose()

    def _record(self, _connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.statements.append((statement, parameters))


def service_sql(db: RecordingDatabase, query: Query) -> tuple[str, Any]:
    """The last statement chatstore's service sends to answer ``query`` (the page's SELECT)."""
    params = query.params
    cursor = str(params["cursor"]) if "cursor" in params else None
    if query.path == "/api/sessions":
        order = params["order"]
        call = list_sessions(db, scope=EVERY_SESSION, limit=PAGE, cursor=cursor, order=order)  # type: ignore[arg-type]
    else:
        session_id = query.path.split("/")[3]
        direction = params["direction"]
        scope = EVERY_SESSION
        call = list_messages(db, session_id, scope=scope, limit=PAGE, cursor=cursor, direction=direction)  # type: ignore[arg-type]
    db.statements.clear()
    asyncio.run(call)
    return db.statements[-1]


def index_name(connection: Connection, table: str, columns: list[str]) -> str:
    # SQLite names the index of a UNIQUE constraint sqlite_autoindex_…, which it lists only on request.
    options = {"include_auto_indexes": True} if connection.dialect.name == "sqlite" else {}
    for index in inspect(connection).get_indexes(table, **options):
        if index["column_names"] == columns:
            return str(index["name"])
    raise LookupError(f"no index on {table}({', '.join(columns)})")


@dataclass(frozen=True, slots=True)
class PlanCheck:
    query: str
    kind: str  # which plan: SQLite's, or PostgreSQL's custom or generic one
    index: str  # the index the query should walk
    wrong: str | None  # None if it walks the index without sorting
    lines: list[str]


def sqlite_plan(connection: Connection, statement: str, parameters: Any) -> list[str]:
    return [row.detail for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]


def custom_plan(connection: Connection, statement: str, parameters: Any) -> list[str]:
    """PostgreSQL's plan for these very values."""
    return [row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)]


def generic_plan(connection: Connection, statement: str, parameters: dict[str, Any]) -> list[str]:
    """PostgreSQL's plan for any values: the one a server's cached prepared statement (asyncpg
    caches them) may switch to after five executions."""
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        names.append(match[1])
        return f"${len(names)}"

    prepared = re.sub(r"%\((\w+)\)s", placeholder, statement)
    connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    connection.exec_driver_sql(f"PREPARE bench_page AS {prepared}")
    arguments = ", ".join(f"%({name})s" for name in names)
    # EXPLAIN EXECUTE takes no bound parameters: psycopg's client-side cursor writes the values in.
    with psycopg.ClientCursor(connection.connection.driver_connection) as cursor:
        cursor.execute(f"EXPLAIN EXECUTE bench_page({arguments})", parameters)
        rows = cursor.fetchall()
    connection.exec_driver_sql("DEALLOCATE bench_page")
    return [row[0] for row in rows]


def plan_verdict(lines: list[str], index: str) -> str | None:
    """None if the plan walks ``index`` without sorting; what is wrong otherwise."""
    plan_text = "\n".join(lines)
    sorts = "USE TEMP B-TREE" in plan_text or any(
        line.lstrip(" ->").startswith(("Sort", "Incremental Sort")) for line in lines
    )
    if index not in plan_text:
        return f"does not use {index}" + (" and sorts" if sorts else "")
    return "uses the index but sorts" if sorts else None


def plans(database_url: str, listed: list[Query]) -> list[PlanCheck]:
    db = RecordingDatabase(create_engine(resolve_url(database_url, blocking=True)))
    explainers = (
        {"plan": sqlite_plan}
        if db.dialect == "sqlite"
        else {"custom plan": custom_plan, "generic plan": generic_plan}
    )
    try:
        checks = []
        for query in listed:
            statement, parameters = service_sql(db, query)
            with db.engine.begin() as connection:
                index = index_name(connection, query.index_table, query.index_columns)
                for kind, explain in explainers.items():
                    lines = explain(connection, statement, parameters)
                    checks.append(PlanCheck(query.name, kind, index, plan_verdict(lines, index), lines))
        return checks
    finally:
        asyncio.run(db.close())


# --- Running it --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    backend: str
    queries: list[Query]
    timings: dict[str, list[float]]
    plans: list[PlanCheck]
    wrong_pages: list[str]


def run_backend(backend: str, args: argparse.Namespace) -> Result:
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_database(backend, args.postgres_url, Path(folder)) as url,
    ):
        began = time.perf_counter()
        data = fill(url, args.sessions, args.messages)
        print(f"{backend}: filled in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        with (
            running_servers(1, url, Path(folder)) as [server],
            httpx.Client(base_url=server.base_url, timeout=30) as client,
        ):
            began = time.perf_counter()
            listed = queries(client, data)
            print(f"{backend}: cursors collected in {time.perf_counter() - began:.0f} s", file=sys.stderr)
            problems = wrong_pages(client, listed)
            timings = measure(client, listed, args.requests)
        return Result(backend, listed, timings, plans(url, listed), problems)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def report(results: list[Result]) -> bool:
    """Print the tables and plans; whether every page and plan was right."""
    print("| backend | query | p50 ms | p90 ms |")
    print("| --- | --- | --- | --- |")
    for result in results:
        for name, values in result.timings.items():
            print(f"| {result.backend} | {name} | {p50(values):.2f} | {p90(values):.2f} |")
    print("\n| backend | ratio of p50s | value | target |")
    print("| --- | --- | --- | --- |")
    for result in results:
        for query in result.queries:
            if query.baseline is not None:
                ratio = p50(result.timings[query.name]) / p50(result.timings[query.baseline])
                verdict = "met" if ratio <= RATIO_TARGET else "MISSED"
                print(
                    f"| {result.backend} | {query.name} / {query.baseline} | {ratio:.2f}x "
                    f"| ≤ {RATIO_TARGET}x ({verdict}) |"
                )
    ok = True
    print("\nQuery plans:")
    for result in results:
        for check in result.plans:
            ok = ok and check.wrong is None
            verdict = f"walks {check.index}, no sort" if check.wrong is None else f"NOT OK, {check.wrong}"
            print(f"\n{result.backend}, {check.query}, {check.kind}: {verdict}")
            for line in check.lines:
                print(f"    {line}")
        for problem in result.wrong_pages:
            ok = False
            print(f"\n{result.backend}: WRONG PAGE: {problem}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHATSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    if args.sessions < DEEP_PAGE * PAGE or args.messages < 2 * PAGE:
        parser.error(f"needs at least {DEEP_PAGE * PAGE} sessions and {2 * PAGE} messages")

    results = [run_backend(backend, args) for backend in args.backends.split(",")]
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, nproc {len(os.sched_getaffinity(0))}, "
        f"{platform.python_implementation()} {platform.python_version()}; {args.sessions:,} sessions, "
        f"{args.messages:,} messages in one of them, pages of {PAGE}, {args.requests} requests per query "
        f"after {WARM_UP_ROUNDS} warm-up rounds, one keep-alive client\n"
    )
    sys.exit(0 if report(results) else 1)


if __name__ == "__main__":
    main()
