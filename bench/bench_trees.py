"""Trees benchmark: does a branched session read and grow as fast as a chain? A real server.

Run it by hand from the repository root:

    python bench/bench_trees.py [--messages 10000] [--branches 20] [--side-length 20] [--requests 30]
        [--backends sqlite,postgres] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

For each backend it creates a fresh database (a SQLite file in a temporary folder, or a PostgreSQL
schema dropped afterwards), lets chatstore create its tables by opening it once, and inserts with
plain SQL four sessions:

- *chain*: ``--messages`` messages, each the child of the one before;
- *tree*: ``--messages`` messages in ``--branches`` branches, grown the way edits grow them: at
  ``--branches - 1`` points spread along the conversation the last ``--side-length`` messages were
  left as a side branch and the conversation went on from the message before them (so the current
  branch's messages are not contiguous in ``seq``); the current branch is the long one;
- *chain as long as the tree's branch*: a chain of that branch's length, to compare like with like;
- *short*: two messages.

Then it starts ``python -m chatstore`` (``tests/servers.py``, ``CHATSTORE_MOCK_DELAY_MS=0``) and with
one keep-alive client checks that each read returns exactly the messages it should (the tree's current
branch, and two ``sibling_ids`` at each fork), then times round-robin, after a few warm-up rounds,
``--requests`` of each: ``GET /api/sessions/{id}`` (the session and its whole current branch; the body
read to its last byte), and the newest page of 50 along the current branch
(``/messages?branch=current&direction=backward``), and in ``seq`` order for the chain. Last it times
chat turns (``POST /api/chat``, read to ``done``) round-robin at the end of the short session, of the
chain and of the tree's current branch: the time to the ``start`` event (the turn is stored and
committed) and to ``done`` (which includes reading the branch as the responder's history).

It prints on stdout the date, ``nproc`` and the Python version, a markdown table of p50 and p90 per
backend and measurement, and the ratios with their targets: the tree's branch read within 1.3x of the
chain's, and a turn at the end of a deep branch stored in the time it takes in a short session (within
1.3x). Progress goes to stderr. The exit status is 1 if a read returned the wrong messages or a turn
failed; missed targets do not change it.
"""

import argparse
import os
import platform
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
from typing import Any

import anyio
import httpx
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.servers

from chatstore.core.db import open_database, resolve_url
from chatstore.core.settings import Settings
from chatstore.models import messages_table, sessions_table
from chatstore.models.tables import new_message_row, new_session_row
from tests.helpers import postgres_schema
from tests.servers import running_servers

PAGE = 50
WARM_UP_ROUNDS = 5
INSERT_BATCH = 5_000
READ_TARGET = 1.3
TURN_TARGET = 1.3
MESSAGE_TEXT = "A chat turn of a typical length, long enough to look like a real question or answer. " * 3


# --- The shapes --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """A conversation's tree: ``parents[i]`` is the index of message ``i``'s parent (None for a root),
    messages listed in ``seq`` order; ``current`` lists the current branch's indexes, root first."""

    parents: list[int | None]
    current: list[int]

    @property
    def forks(self) -> list[int]:
        """Indexes of the messages that have a sibling."""
        children: dict[int | None, list[int]] = {}
        for index, parent in enumerate(self.parents):
            children.setdefault(parent, []).append(index)
        return [index for siblings in children.values() if len(siblings) > 1 for index in siblings]


def chain(length: int) -> Shape:
    return Shape([None, *range(length - 1)], list(range(length)))


def edited_tree(total: int, branches: int, side_length: int) -> Shape:
    """``total`` messages, ``branches`` leaves: the conversation grows message by message, and at
    ``branches - 1`` evenly spread moments its last ``side_length`` messages become a side branch and
    it goes on from the message before them (an edit there, as a user makes it)."""
    parents: list[int | None] = []
    branch: list[int] = []  # the current branch, as indexes
    trunk_length = total - (branches - 1) * side_length
    edit_every = trunk_length // branches
    grown = 0  # messages added to the branch that stays current
    while len(parents) < total:
        parents.append(branch[-1] if branch else None)
        branch.append(len(parents) - 1)
        grown += 1
        edits_made = (len(parents) - grown) // side_length
        if edits_made < branches - 1 and grown >= (edits_made + 1) * edit_every + side_length:
            # The last side_length messages become a side branch: the branch goes back to before them,
            # and messages already counted as grown on it are given back.
            del branch[-side_length:]
            grown -= side_length
    return Shape(parents, branch)


# --- Filling the database ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    session_id: str
    ids: list[str]  # by index in the shape
    shape: Shape

    @property
    def current_ids(self) -> list[str]:
        return [self.ids[index] for index in self.shape.current]


def session_rows(shape: Shape, start: datetime, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    session_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in shape.parents]
    depth: list[int] = []
    messages = []
    for index, parent in enumerate(shape.parents):
        depth.append(0 if parent is None else depth[parent] + 1)
        at = start + timedelta(seconds=index)
        messages.append(
            new_message_row(
                id=ids[index],
                session_id=session_id,
                parent_id=None if parent is None else ids[parent],
                depth=depth[index],
                seq=index + 1,
                role=("user", "assistant")[depth[index] % 2],
                content=MESSAGE_TEXT,
                created_at=at,
            )
        )
    last_at = start + timedelta(seconds=len(ids))
    session = new_session_row(
        id=session_id,
        name=name,
        meta={},
        created_at=start,
        last_seq=len(ids),
        message_count=len(ids),
        last_message_at=last_at,
        activity_at=last_at,
        current_message_id=ids[shape.current[-1]],
    )
    return session, messages


def fill(database_url: str, shapes: dict[str, Shape]) -> dict[str, Stored]:
    async def create_schema() -> None:
        database = await open_database(Settings(database_url=database_url))
        await database.close()

    anyio.run(create_schema)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    stored: dict[str, Stored] = {}
    engine = create_engine(resolve_url(database_url, blocking=True))
    with engine.begin() as connection:
        for name, shape in shapes.items():
            session, messages = session_rows(shape, start, name)
            connection.execute(insert(sessions_table), [session])
            for first in range(0, len(messages), INSERT_BATCH):
                connection.execute(insert(messages_table), messages[first : first + INSERT_BATCH])
            stored[name] = Stored(session["id"], [row["id"] for row in messages], shape)
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    engine.dispose()
    return stored


@contextmanager
def fresh_database(backend: str, postgres_url: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'trees.db'}"
        return
    with postgres_schema(postgres_url, prefix="bench") as url:
        yield url


# --- Reads -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Read:
    name: str
    path: str
    params: dict[str, str | int]
    expected: list[str]  # ids, in the order returned
    expected_forks: set[str] | None = None  # ids that must carry two or more sibling_ids


def reads(data: dict[str, Stored], tree: str, chain_name: str, same: str) -> list[Read]:
    def detail(name: str) -> Read:
        stored = data[name]
        forks = {stored.ids[index] for index in stored.shape.forks} & set(stored.current_ids)
        return Read(
            f"GET session, {name}", f"/api/sessions/{stored.session_id}", {}, stored.current_ids, forks
        )

    def branch_page(name: str) -> Read:
        stored = data[name]
        params: dict[str, str | int] = {"branch": "current", "direction": "backward", "limit": PAGE}
        path = f"/api/sessions/{stored.session_id}/messages"
        return Read(f"newest branch page, {name}", path, params, stored.current_ids[-PAGE:])

    seq_page = Read(
        f"newest seq page, {chain_name}",
        f"/api/sessions/{data[chain_name].session_id}/messages",
        {"direction": "backward", "limit": PAGE},
        data[chain_name].ids[-PAGE:],
    )
    return [
        detail(chain_name),
        detail(tree),
        detail(same),
        branch_page(chain_name),
        branch_page(tree),
        seq_page,
    ]


def wrong_reads(client: httpx.Client, listed: list[Read]) -> list[str]:
    problems = []
    for read in listed:
        response = client.get(read.path, params=read.params)
        response.raise_for_status()
        body = response.json()
        messages = body["messages"] if isinstance(body, dict) else body
        got = [message["id"] for message in messages]
        if sorted(got) != sorted(read.expected) or (read.expected_forks is None and got != read.expected):
            problems.append(f"{read.name}: {len(got)} messages, not the {len(read.expected)} expected")
            continue
        if read.expected_forks is not None:
            forked = {m["id"] for m in messages if len(m["sibling_ids"]) > 1}
            if forked != read.expected_forks:
                problems.append(
                    f"{read.name}: {len(forked)} messages with siblings, not {len(read.expected_forks)}"
                )
    return problems


def timed_get(client: httpx.Client, path: str, params: dict[str, str | int]) -> float:
    """Milliseconds to the body's last byte, read in chunks and dropped."""
    began = time.perf_counter()
    with client.stream("GET", path, params=params) as response:
        for _ in response.iter_raw():
            pass
    elapsed_ms = (time.perf_counter() - began) * 1000
    response.raise_for_status()
    return elapsed_ms


def measure_reads(client: httpx.Client, listed: list[Read], requests: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {read.name: [] for read in listed}
    for round_ in range(WARM_UP_ROUNDS + requests):
        for read in listed:
            elapsed_ms = timed_get(client, read.path, read.params)
            if round_ >= WARM_UP_ROUNDS:
                timings[read.name].append(elapsed_ms)
    return timings


# --- Turns -------------------------------------------------------------------------------------------


def timed_turn(client: httpx.Client, session_id: str, round_: int) -> tuple[float, float]:
    """Milliseconds to the ``start`` event and to ``done`` of one chat turn; raises if it fails."""
    body = {"session_id": session_id, "messages": [{"role": "user", "content": f"turn {round_}"}]}
    began = time.perf_counter()
    to_start = None
    with client.stream("POST", "/api/chat", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line == "event: start":
                to_start = (time.perf_counter() - began) * 1000
            elif line == "event: error":
                raise RuntimeError(f"a turn in {session_id} failed")
            elif line == "event: done":
                break
        else:
            raise RuntimeError(f"a turn in {session_id} ended without done")
    if to_start is None:
        raise RuntimeError(f"a turn in {session_id} sent no start")
    return to_start, (time.perf_counter() - began) * 1000


def measure_turns(
    client: httpx.Client, data: dict[str, Stored], names: list[str], requests: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for round_ in range(WARM_UP_ROUNDS + requests):
        for name in names:
            to_start, to_done = timed_turn(client, data[name].session_id, round_)
            if round_ >= WARM_UP_ROUNDS:
                timings.setdefault(f"turn stored (start), {name}", []).append(to_start)
                timings.setdefault(f"turn to done, {name}", []).append(to_done)
    return timings


# --- Running it --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    backend: str
    timings: dict[str, list[float]]
    problems: list[str]


def run_backend(backend: str, args: argparse.Namespace, names: dict[str, str]) -> Result:
    tree_shape = edited_tree(args.messages, args.branches, args.side_length)
    shapes = {
        names["chain"]: chain(args.messages),
        names["tree"]: tree_shape,
        names["same"]: chain(len(tree_shape.current)),
        names["short"]: chain(2),
    }
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_database(backend, args.postgres_url, Path(folder)) as url,
    ):
        began = time.perf_counter()
        data = fill(url, shapes)
        print(f"{backend}: filled in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        env = {"CHATSTORE_MOCK_DELAY_MS": "0"}
        with (
            running_servers(1, url, Path(folder), env) as [server],
            httpx.Client(base_url=server.base_url, timeout=60) as client,
        ):
            listed = reads(data, names["tree"], names["chain"], names["same"])
            problems = wrong_reads(client, listed)
            timings = measure_reads(client, listed, args.requests)
            print(f"{backend}: reads timed", file=sys.stderr)
            turn_sessions = [names["short"], names["chain"], names["tree"]]
            timings |= measure_turns(client, data, turn_sessions, args.requests)
            print(f"{backend}: turns timed", file=sys.stderr)
        return Result(backend, timings, problems)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def report(results: list[Result], names: dict[str, str]) -> bool:
    print("| backend | measurement | p50 ms | p90 ms |")
    print("| --- | --- | --- | --- |")
    for result in results:
        for name, values in result.timings.items():
            print(f"| {result.backend} | {name} | {p50(values):.2f} | {p90(values):.2f} |")
    tree, chain_name, same, short = names["tree"], names["chain"], names["same"], names["short"]
    ratios = [
        (f"GET session, {tree}", f"GET session, {chain_name}", READ_TARGET),
        (f"GET session, {tree}", f"GET session, {same}", READ_TARGET),
        (f"newest branch page, {tree}", f"newest branch page, {chain_name}", READ_TARGET),
        (f"newest branch page, {chain_name}", f"newest seq page, {chain_name}", None),
        (f"turn stored (start), {tree}", f"turn stored (start), {short}", TURN_TARGET),
        (f"turn stored (start), {chain_name}", f"turn stored (start), {short}", TURN_TARGET),
        (f"turn to done, {tree}", f"turn to done, {short}", None),
    ]
    print("\n| backend | ratio of p50s | value | target |")
    print("| --- | --- | --- | --- |")
    for result in results:
        for numerator, denominator, target in ratios:
            if numerator not in result.timings or denominator not in result.timings:
                continue
            ratio = p50(result.timings[numerator]) / p50(result.timings[denominator])
            verdict = "—" if target is None else f"≤ {target}x ({'met' if ratio <= target else 'MISSED'})"
            print(f"| {result.backend} | {numerator} / {denominator} | {ratio:.2f}x | {verdict} |")
    ok = True
    for result in results:
        for problem in result.problems:
            ok = False
            print(f"\n{result.backend}: WRONG READ: {problem}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--branches", type=int, default=20)
    parser.add_argument("--side-length", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHATSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    if args.branches < 2 or args.side_length < 1 or args.messages < 4 * args.branches * args.side_length:
        parser.error("needs 2 or more branches, and at least 4 x branches x side length messages")

    tree_shape = edited_tree(args.messages, args.branches, args.side_length)
    names = {
        "chain": f"chain of {args.messages:,}",
        "tree": f"tree of {args.messages:,}",
        "same": f"chain of {len(tree_shape.current):,}",
        "short": "chain of 2",
    }
    results = [run_backend(backend, args, names) for backend in args.backends.split(",")]
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, nproc {len(os.sched_getaffinity(0))}, "
        f"{platform.python_implementation()} {platform.python_version()}; the tree: {args.messages:,} "
        f"messages, {args.branches} branches ({args.branches - 1} side branches of {args.side_length}), "
        f"current branch {len(tree_shape.current):,} messages; {args.requests} requests of each after "
        f"{WARM_UP_ROUNDS} warm-up rounds, one keep-alive client\n"
    )
    sys.exit(0 if report(results, names) else 1)


if __name__ == "__main__":
    main()
