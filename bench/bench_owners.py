"""Owners benchmark: does one user's page cost the same however many other users there are?

Run it by hand from the repository root:

    python bench/bench_owners.py [--users 1000] [--sessions-per-user 100] [--requests 30]
        [--backends sqlite,postgres] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

For each backend it creates a fresh database, lets chatstore create its schema, and inserts with
plain SQL ``--users`` x ``--sessions-per-user`` sessions (the users' sessions interleaved in time,
so that a user's are spread among everyone else's), each with a question and an answer; every
answer holds a word all users share (``zanzibar``) and every question one of its user's own. Then it
starts ``python -m chatstore`` with a service key (``tests/servers.py``) and, as one user in the
middle (``X-Chatstore-User``), times round-robin, after warm-up rounds: the first page of the
session list and page 10 (``limit=10``, by creation and by activity), and the first page of a search
for the shared word. It checks that each page holds exactly that user's items, in order.

It prints the date, ``nproc`` and the Python version, a table of p50 and p90 per backend and query,
the page-10/first-page ratio of the p50s, and the plan of each query as chatstore sends it (SQLite's
``EXPLAIN QUERY PLAN``; PostgreSQL's ``EXPLAIN`` for these values and its generic plan), each marked
with whether it starts from the owner: by an index that starts with the owner, or, for SQLite's
search, by a full-text match that holds the owner's key (FTS5 intersects the word's rows with the
owner's, and reads no other table before the page is cut). Exit status 1 if a page held the wrong
items or a plan does not start from the owner.

To see whether a user's search grows with other users' data, run it at two sizes and compare the
search's p50, e.g. ``--users 20`` and ``--users 200`` (each with the default 100 sessions a user).
"""

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.servers
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_pages' helpers

from bench_pages import (
    RecordingDatabase,
    custom_plan,
    fresh_database,
    generic_plan,
    p50,
    p90,
    sqlite_plan,
)

from chatstore.core.db import open_database, resolve_url
from chatstore.core.settings import Settings
from chatstore.models import ChatSession, Message
from chatstore.models.search_index import SQLITE_OWNER_COLUMN, sqlite_owner_key
from chatstore.services.owners import OwnerScope
from chatstore.services.search import search
from chatstore.services.sessions import list_sessions
from tests.servers import running_servers

PAGE = 10
DEEP_PAGE = 10
WARM_UP_ROUNDS = 5
INSERT_BATCH = 5_000
KEY = "bench-owners-service-key-0123456789"
SHARED_WORD = "zanzibar"
OWNER_INDEXES = ("ix_sessions_owner_created", "ix_sessions_owner_activity")

sessions_table = ChatSession.__table__  # type: ignore[attr-defined]
messages_table = Message.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    path: str
    params: dict[str, str | int]
    expected: list[str]  # session ids (lists) or message ids (search), in order or as a set
    ordered: bool = True


def user_name(index: int) -> str:
    return f"user-{index:05d}"


def fill(database_url: str, users: int, per_user: int) -> dict[str, dict[str, list[str]]]:
    """Insert the sessions and messages; returns the chosen user's session ids newest first by each
    order, and the ids of their answers."""

    async def create_schema() -> None:
        database = await open_database(Settings(database_url=database_url))
        await database.close()

    anyio.run(create_schema)
    rng = random.Random(16)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
    chosen = user_name(users // 2)
    mine: dict[str, list[tuple[Any, str]]] = {"created": [], "activity": []}
    answers: list[str] = []
    engine = create_engine(resolve_url(database_url, blocking=True))
    with engine.begin() as connection:
        sessions: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        for index in range(users * per_user):
            owner = user_name(index % users)
            created = start + timedelta(seconds=index)
            active = created + timedelta(seconds=int(rng.expovariate(1 / 86_400)))
            session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            question_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            answer_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            sessions.append(
                {
                    "id": session_id,
                    "name": f"session {index}",
                    "metadata": {},
                    "created_at": created,
                    "updated_at": active,
                    "last_seq": 2,
                    "message_count": 2,
                    "last_message_at": active,
                    "activity_at": active,
                    "current_message_id": answer_id,
                    "owner": owner,
                }
            )
            common = {
                "session_id": session_id,
                "status": "complete",
                "created_at": active,
                "updated_at": active,
            }
            messages.append(
                {
                    **common,
                    "id": question_id,
                    "seq": 1,
                    "role": "user",
                    "content": f"{owner} asks about trips",
                }
            )
            messages.append(
                {
                    **common,
                    "id": answer_id,
                    "parent_id": question_id,
                    "seq": 2,
                    "role": "assistant",
                    "content": f"A week in {SHARED_WORD} is a fine trip, {owner}.",
                }
            )
            if owner == chosen:
                mine["created"].append(((created, session_id), session_id))
                mine["activity"].append(((active, session_id), session_id))
                answers.append(answer_id)
            if len(sessions) >= INSERT_BATCH:
                connection.execute(insert(sessions_table), sessions)
                connection.execute(insert(messages_table), messages)
                sessions, messages = [], []
        if sessions:
            connection.execute(insert(sessions_table), sessions)
            connection.execute(insert(messages_table), messages)
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    engine.dispose()
    ordered = {order: [id_ for _, id_ in sorted(rows, reverse=True)] for order, rows in mine.items()}
    return {"user": {"name": [chosen]}, "sessions": ordered, "answers": {"ids": answers}}


def cursor_of_page(client: httpx.Client, params: dict[str, str | int], page: int) -> str:
    cursor: str | None = None
    for _ in range(page - 1):
        response = client.get(
            "/api/sessions", params=params if cursor is None else {**params, "cursor": cursor}
        )
        response.raise_for_status()
        cursor = response.headers["X-Next-Cursor"]
    assert cursor is not None, "the first page has no cursor"
    return cursor


def queries(client: httpx.Client, data: dict[str, dict[str, list[str]]]) -> list[Query]:
    listed = []
    for order in ("created", "activity"):
        ids = data["sessions"][order]
        params: dict[str, str | int] = {"limit": PAGE, "order": order}
        cursor = cursor_of_page(client, params, DEEP_PAGE)
        deep = slice((DEEP_PAGE - 1) * PAGE, DEEP_PAGE * PAGE)
        listed += [
            Query(f"sessions by {order}, first page", "/api/sessions", params, ids[:PAGE]),
            Query(
                f"sessions by {order}, page {DEEP_PAGE}",
                "/api/sessions",
                {**params, "cursor": cursor},
                ids[deep],
            ),
        ]
    # bm25/ts_rank_cd tie on these identical answers: the hits are checked as a set.
    answers = data["answers"]["ids"]
    search_query = Query(
        f"search {SHARED_WORD!r}, first page",
        "/api/search",
        {"q": SHARED_WORD, "limit": PAGE},
        answers,
        False,
    )
    return [*listed, search_query]


def page_ids(client: httpx.Client, query: Query) -> list[str]:
    response = client.get(query.path, params=query.params)
    response.raise_for_status()
    if query.path == "/api/search":
        return [hit["message_id"] for hit in response.json()["results"]]
    return [session["id"] for session in response.json()]


def wrong_pages(client: httpx.Client, listed: list[Query]) -> list[str]:
    problems = []
    for query in listed:
        got = page_ids(client, query)
        right = (
            got == query.expected if query.ordered else len(got) == PAGE and set(got) <= set(query.expected)
        )
        if not right:
            problems.append(f"{query.name}: got {got[:3]}… ({len(got)}), expected {query.expected[:3]}…")
    return problems


def measure(client: httpx.Client, listed: list[Query], requests: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {query.name: [] for query in listed}
    for round_ in range(WARM_UP_ROUNDS + requests):
        for query in listed:
            began = time.perf_counter()
            client.get(query.path, params=query.params).raise_for_status()
            if round_ >= WARM_UP_ROUNDS:
                timings[query.name].append((time.perf_counter() - began) * 1000)
    return timings


def starts_from_owner(dialect: str, statement: str, parameters: Any, lines: list[str], owner: str) -> bool:
    """Whether the plan starts from the owner's rows: an owner index, or SQLite's full-text match with
    the owner's key, scanning nothing but the index (messages and sessions by their keys only)."""
    if any(index in "\n".join(lines) for index in OWNER_INDEXES):
        return True
    if dialect != "sqlite" or "messages_search MATCH" not in statement:
        return False
    values = parameters.values() if isinstance(parameters, dict) else parameters
    key = f'{SQLITE_OWNER_COLUMN} : "{sqlite_owner_key(owner)}"'
    scans = [line for line in lines if line.startswith("SCAN ")]
    return any(isinstance(value, str) and key in value for value in values) and all(
        line.startswith("SCAN messages_search VIRTUAL TABLE") for line in scans
    )


def plans(database_url: str, listed: list[Query], owner: str) -> list[tuple[str, str, bool, list[str]]]:
    """(query, kind of plan, whether it starts from the owner, the plan's lines)."""
    db = RecordingDatabase(create_engine(resolve_url(database_url, blocking=True)))
    scope = OwnerScope(owner)
    explainers = (
        {"plan": sqlite_plan}
        if db.dialect == "sqlite"
        else {"custom plan": custom_plan, "generic plan": generic_plan}
    )
    found = []
    try:
        for query in listed:
            params = query.params
            cursor = str(params["cursor"]) if "cursor" in params else None
            if query.path == "/api/search":
                call: Any = search(db, SHARED_WORD, scope=scope, limit=PAGE)
            else:
                order: Any = params["order"]
                call = list_sessions(db, scope=scope, limit=PAGE, cursor=cursor, order=order)
            db.statements.clear()
            asyncio.run(call)
            statement, parameters = db.statements[-1]
            with db.engine.begin() as connection:
                for kind, explain in explainers.items():
                    lines = explain(connection, statement, parameters)
                    uses = starts_from_owner(db.dialect, statement, parameters, lines, owner)
                    found.append((query.name, kind, uses, lines))
        return found
    finally:
        asyncio.run(db.close())


@dataclass(frozen=True, slots=True)
class Result:
    backend: str
    timings: dict[str, list[float]]
    plans: list[tuple[str, str, bool, list[str]]]
    wrong_pages: list[str]


def run_backend(backend: str, args: argparse.Namespace) -> Result:
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_database(backend, args.postgres_url, Path(folder)) as url,
    ):
        began = time.perf_counter()
        data = fill(url, args.users, args.sessions_per_user)
        owner = data["user"]["name"][0]
        print(f"{backend}: filled in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        headers = {"Authorization": f"Bearer {KEY}", "X-Chatstore-User": owner}
        with (
            running_servers(1, url, Path(folder), {"CHATSTORE_API_KEY": KEY}) as [server],
            httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client,
        ):
            listed = queries(client, data)
            problems = wrong_pages(client, listed)
            timings = measure(client, listed, args.requests)
        return Result(backend, timings, plans(url, listed, owner), problems)


def report(results: list[Result]) -> bool:
    print("| backend | query | p50 ms | p90 ms |")
    print("| --- | --- | --- | --- |")
    for result in results:
        for name, values in result.timings.items():
            print(f"| {result.backend} | {name} | {p50(values):.2f} | {p90(values):.2f} |")
    print("\n| backend | ratio of p50s | value |")
    print("| --- | --- | --- |")
    for result in results:
        for order in ("created", "activity"):
            first, deep = f"sessions by {order}, first page", f"sessions by {order}, page {DEEP_PAGE}"
            ratio = p50(result.timings[deep]) / p50(result.timings[first])
            print(f"| {result.backend} | {deep} / first page | {ratio:.2f}x |")
    ok = True
    print("\nQuery plans:")
    for result in results:
        for name, kind, uses, lines in result.plans:
            ok = ok and uses
            verdict = "starts from the owner" if uses else "NOT OK, does not start from the owner"
            print(f"\n{result.backend}, {name}, {kind}: {verdict}")
            for line in lines:
                print(f"    {line}")
        for problem in result.wrong_pages:
            ok = False
            print(f"\n{result.backend}: WRONG PAGE: {problem}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--sessions-per-user", type=int, default=100)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHATSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    if args.sessions_per_user < DEEP_PAGE * PAGE or args.users < 2:
        parser.error(f"needs at least 2 users and {DEEP_PAGE * PAGE} sessions per user")

    results = [run_backend(backend, args) for backend in args.backends.split(",")]
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, nproc {len(os.sched_getaffinity(0))}, "
        f"{platform.python_implementation()} {platform.python_version()}; {args.users:,} users x "
        f"{args.sessions_per_user} sessions, each with a question and an answer; as one user, pages of "
        f"{PAGE}, {args.requests} requests per query after {WARM_UP_ROUNDS} warm-up rounds\n"
    )
    sys.exit(0 if report(results) else 1)


if __name__ == "__main__":
    main()
