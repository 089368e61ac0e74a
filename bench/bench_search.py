"""Search benchmark: the latency of ``GET /api/search`` over 100,000 stored messages, through a real server.

Run it by hand from the repository root:

    python bench/bench_search.py [--messages 100000] [--requests 300]
        [--backends sqlite,postgres] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

For each backend it creates a fresh database (a SQLite file in a temporary folder, or a PostgreSQL
schema dropped afterwards), lets chatstore create its tables and search index by starting it once,
inserts the messages with plain SQL (the index is kept up to date by the triggers or the generated
column, as in service), then starts ``python -m chatstore`` (``tests/servers.py``) and times searches
over HTTP with one keep-alive client: a few warm-up requests, then ``--requests`` measured, cycling
through queries from rare to common words, two words, a phrase and an ``or``, each asking for the
first page of 20 hits. It prints a markdown table of p50 and p95 per backend and query kind.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.servers

from chatstore.core.db import open_database, resolve_url
from chatstore.core.settings import Settings
from chatstore.models import ChatSession, Message
from tests.helpers import postgres_schema
from tests.servers import running_servers

SESSIONS = 1_000
PAGE = 20
WARM_UP = 10
VOCABULARY = [f"w{index}" for index in range(20_000)]
# Words with known frequencies, planted in the generated text: roughly 0.1 %, 1 % and 10 % of messages.
PLANTED = {"aurora": 0.001, "glacier": 0.01, "harbour": 0.1}
QUERIES = {
    "rare word": "aurora",
    "1% word": "glacier",
    "10% word": "harbour",
    "two words": "glacier harbour",
    "phrase": '"w1 w2"',
    "or": "aurora or glacier",
}


def message_text(rng: random.Random) -> str:
    # Zipf-like word choice, 5 to 60 words, like chat turns of various lengths.
    words = [
        VOCABULARY[min(int(rng.paretovariate(1.1)), len(VOCABULARY) - 1)] for _ in range(rng.randint(5, 60))
    ]
    for word, share in PLANTED.items():
        if rng.random() < share:
            words.insert(rng.randrange(len(words) + 1), word)
    return " ".join(words)


def fill(database_url: str, count: int) -> None:
    async def create_schema() -> None:
        database = await open_database(Settings(database_url=database_url))
        await database.close()

    anyio.run(create_schema)
    rng = random.Random(5)
    engine = create_engine(resolve_url(database_url, blocking=True))
    start = datetime.now(UTC) - timedelta(days=30)
    per_session = count // SESSIONS
    with engine.begin() as connection:
        session_ids = [str(uuid.uuid4()) for _ in range(SESSIONS)]
        connection.execute(
            insert(ChatSession.__table__),  # type: ignore[attr-defined]
            [
                {
                    "id": sid,
                    "name": f"session {index}",
                    "metadata": {},
                    "created_at": start,
                    "updated_at": start,
                    "last_seq": per_session,
                    "last_message_at": start,
                    "activity_at": start,
                }
                for index, sid in enumerate(session_ids)
            ],
        )
        for sid in session_ids:
            connection.execute(
                insert(Message.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "id": str(uuid.uuid4()),
                        "session_id": sid,
                        "seq": seq,
                        "role": ("user", "assistant")[seq % 2],
                        "content": message_text(rng),
                        "status": "complete",
                        "created_at": start,
                        "updated_at": start,
                    }
                    for seq in range(1, per_session + 1)
                ],
            )
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    engine.dispose()


@contextmanager
def fresh_database(backend: str, postgres_url: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'search.db'}"
        return
    with postgres_schema(postgres_url, prefix="bench") as url:
        yield url


def measure(base_url: str, requests: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = defaultdict(list)
    kinds = list(QUERIES.items())
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for index in range(WARM_UP + requests):
            kind, q = kinds[index % len(kinds)]
            began = time.perf_counter()
            response = client.get("/api/search", params={"q": q, "limit": PAGE})
            elapsed = time.perf_counter() - began
            response.raise_for_status()
            if index >= WARM_UP:
                timings[kind].append(elapsed * 1000)
                timings["all"].append(elapsed * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHATSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()

    print(
        f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{args.messages} messages in {SESSIONS} sessions, first page of {PAGE} hits\n"
    )
    print("| backend | query | hits | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- |")
    for backend in args.backends.split(","):
        with (
            tempfile.TemporaryDirectory() as folder,
            fresh_database(backend, args.postgres_url, Path(folder)) as url,
        ):
            began = time.perf_counter()
            fill(url, args.messages)
            print(f"{backend}: filled in {time.perf_counter() - began:.0f} s", file=sys.stderr)
            with running_servers(1, url, Path(folder)) as [server]:
                hits = {
                    kind: len(
                        httpx.get(f"{server.base_url}/api/search", params={"q": q, "limit": 1000}).json()[
                            "results"
                        ]
                    )
                    for kind, q in QUERIES.items()
                }
                timings = measure(server.base_url, args.requests)
        for kind, values in timings.items():
            p95 = statistics.quantiles(values, n=20)[-1]
            count = "" if kind == "all" else (f"{hits[kind]}" if hits[kind] < 1000 else "1000+")
            print(f"| {backend} | {kind} | {count} | {statistics.median(values):.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
