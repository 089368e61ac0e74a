"""Live progress benchmark: how many bytes does the database write for one long streaming reply?

Run it by hand from the repository root:

    python bench/bench_progress.py [--reply-kb 20] [--writes 60] [--interval-ms 50] [--replies 3]
        [--backends sqlite,postgres] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

For each backend it creates a fresh database (a SQLite file in a temporary folder, or a PostgreSQL
schema dropped afterwards) and runs chatstore in this process (``create_app`` behind Litestar's test
client) with a responder of its own: a reply of ``--reply-kb`` KB of words, streamed in pieces
every 10 ms over ``--writes`` progress intervals of ``--interval-ms`` (60 x 50 ms: 3 s a reply).
Each measured reply is one chat turn in a new session, from the request to ``done``, after one
reply that is not measured. It runs them twice: with progress writes every ``--interval-ms``, and
with progress off (an interval longer than the reply), which leaves what the turn and the final
write cost; the difference is what the progress writes cost. The text is random words, which
PostgreSQL's compression of long values hardly shrinks (real text shrinks somewhat there, so its
figures are an upper bound).

What it counts as written:

- SQLite: the bytes appended to the write-ahead log. Checkpoints are turned off on chatstore's
  connections (``PRAGMA wal_autocheckpoint=0``, set by a pool listener of this script), the log is
  truncated before each reply, and its size after the reply is what the reply wrote (frames of a
  page and a 24-byte header each).
- PostgreSQL: the WAL of chatstore's own transactions, read with the ``pg_walinspect`` extension
  (created in the run's schema, so dropped with it): every record of a transaction that touched a
  table or index of the schema (its commit record included), between the LSNs before and after the
  reply. Other clients of the same server write WAL meanwhile; they are left out. Without the
  extension it falls back to the difference of ``pg_current_wal_lsn()``, which includes them, and
  says so. Full-page images (the first change of a page after a checkpoint) are counted apart.

It prints on stdout the date, ``nproc`` and the Python version, and a markdown table per backend
and setting: the reply's size, about how many progress writes it had, the bytes written per reply
(median and least of ``--replies``), that over the reply's size, and on PostgreSQL the full-page
images' share. Progress goes to stderr. The exit status is 1 if a reply did not end ``complete``
with its whole text.
"""

import argparse
import os
import platform
import random
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from litestar.testing import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.helpers

from chatstore.app import create_app
from chatstore.core.db import resolve_url
from chatstore.core.settings import Settings
from chatstore.services.responders import Conversation, Responder
from tests.helpers import postgres_schema

PIECE_EVERY_S = 0.01
# Longer than any reply: no progress write happens while it streams.
PROGRESS_OFF_MS = 3_600_000


def reply_text(size: int) -> str:
    """``size`` characters of words of 2 to 9 letters, drawn at random (the same every run): text
    that neither SQLite nor PostgreSQL's compression of long values makes much smaller, and that
    gives the full-text index as many words as an answer of that length."""
    draw = random.Random(20)
    words: list[str] = []
    length = 0
    while length < size:
        word = "".join(draw.choices(string.ascii_lowercase, k=draw.randint(2, 9)))
        words.append(word + ("\n\n" if len(words) % 40 == 39 else " "))
        length += len(words[-1])
    return "".join(words)[:size]


class SteadyResponder(Responder):
    """The same text every time, in equal pieces at a steady pace."""

    def __init__(self, text: str, pieces: int) -> None:
        size = -(-len(text) // pieces)
        self.pieces = [text[start : start + size] for start in range(0, len(text), size)]

    async def reply(self, conversation: Conversation) -> AsyncIterator[str]:
        for piece in self.pieces:
            await anyio.sleep(PIECE_EVERY_S)
            yield piece


@event.listens_for(Pool, "connect")
def _no_sqlite_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    """Every frame a reply appends stays in the log until it is measured (SQLite connections only)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


# --- Measuring ---------------------------------------------------------------------------------------


@dataclass
class Written:
    total: list[int] = field(default_factory=list)
    full_pages: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


class SQLiteLog:
    """The write-ahead log of a SQLite file: emptied before a reply, measured after it."""

    def __init__(self, database_url: str) -> None:
        self.path = Path(str(make_url(database_url).database))

    def start(self) -> None:
        with sqlite3.connect(self.path) as connection:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the log could not be emptied: a reader or writer held it"

    def written(self) -> tuple[int, int]:
        wal = self.path.with_name(self.path.name + "-wal")
        return (wal.stat().st_size if wal.exists() else 0), 0


class PostgresLog:
    """The WAL of the transactions that touched the schema's tables, or of the whole server."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(resolve_url(database_url, blocking=True), isolation_level="AUTOCOMMIT")
        with self.engine.connect() as connection:
            self.schema = str(connection.execute(text("SELECT current_schema()")).scalar())
            available = connection.execute(
                text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_walinspect'")
            ).scalar()
            if available:
                connection.execute(
                    text(f'CREATE EXTENSION IF NOT EXISTS pg_walinspect SCHEMA "{self.schema}"')
                )
            self.inspect = bool(
                connection.execute(
                    text("SELECT count(*) FROM pg_proc WHERE proname = 'pg_get_wal_records_info'")
                ).scalar()
            )
        self.started = ""

    @property
    def method(self) -> str:
        if self.inspect:
            return "WAL of chatstore's transactions (pg_walinspect)"
        return "difference of pg_current_wal_lsn(): every client of the server (no pg_walinspect)"

    def start(self) -> None:
        with self.engine.connect() as connection:
            self.started = str(connection.execute(text("SELECT pg_current_wal_lsn()")).scalar())

    def written(self) -> tuple[int, int]:
        with self.engine.connect() as connection:
            if not self.inspect:
                total = connection.execute(
                    text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :started)"), {"started": self.started}
                ).scalar()
                return int(total), 0
            relations = {
                str(row[0])
                for row in connection.execute(
                    text(
                        "SELECT c.relfilenode FROM pg_class AS c JOIN pg_namespace AS n "
                        "ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relfilenode <> 0 "
                        "UNION SELECT t.relfilenode FROM pg_class AS c JOIN pg_namespace AS n "
                        "ON n.oid = c.relnamespace JOIN pg_class AS t ON t.oid = c.reltoastrelid "
                        "WHERE n.nspname = :schema "
                        "UNION SELECT i.relfilenode FROM pg_class AS c JOIN pg_namespace AS n "
                        "ON n.oid = c.relnamespace JOIN pg_index AS x ON x.indrelid = c.reltoastrelid "
                        "JOIN pg_class AS i ON i.oid = x.indexrelid WHERE n.nspname = :schema"
                    ),
                    {"schema": self.schema},
                )
            }
            # Up to what is flushed: the reply's transactions all are, at their commits.
            records = connection.execute(
                text(
                    f'SELECT xid, record_length, fpi_length, block_ref FROM "{self.schema}".'
                    "pg_get_wal_records_info(:started, pg_current_wal_flush_lsn())"
                ),
                {"started": self.started},
            ).all()
        ours = {
            xid
            for xid, _, _, block_ref in records
            if xid and block_ref and any(f"/{relation} " in f"{block_ref} " for relation in relations)
        }
        mine = [(length, fpi) for xid, length, fpi, _ in records if xid in ours]
        return sum(length for length, _ in mine), sum(fpi for _, fpi in mine)

    def close(self) -> None:
        self.engine.dispose()


# --- Running -----------------------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, postgres_url: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'progress.db'}"
        return
    with postgres_schema(postgres_url, prefix="bench_progress") as url:
        yield url


def one_reply(client: TestClient[Any], text_: str) -> bool:
    session_id = client.post("/api/sessions").json()["id"]
    body = {"session_id": session_id, "messages": [{"role": "user", "content": "tell me everything"}]}
    response = client.post("/api/chat", json=body)
    reply = client.get(f"/api/sessions/{session_id}").json()["messages"][-1]
    return response.status_code == 200 and reply["status"] == "complete" and reply["content"] == text_


def run(backend: str, interval_ms: int, args: argparse.Namespace) -> tuple[Written, str, bool]:
    text_ = reply_text(args.reply_kb * 1000)
    pieces = max(1, round(args.writes * args.interval_ms / 1000 / PIECE_EVERY_S))
    written = Written()
    ok = True
    with fresh_database(backend, args.postgres_url) as url:
        settings = Settings(database_url=url, progress_interval_ms=interval_ms, worker_lease_s=600.0)
        log: SQLiteLog | PostgresLog = SQLiteLog(url) if backend == "sqlite" else PostgresLog(url)
        try:
            with TestClient(create_app(settings, responder=SteadyResponder(text_, pieces))) as client:
                ok &= one_reply(client, text_)  # warm-up, not measured
                for _ in range(args.replies):
                    log.start()
                    began = time.perf_counter()
                    ok &= one_reply(client, text_)
                    written.seconds.append(time.perf_counter() - began)
                    total, full_pages = log.written()
                    written.total.append(total)
                    written.full_pages.append(full_pages)
        finally:
            if isinstance(log, PostgresLog):
                log.close()
        method = "appended to the write-ahead log" if isinstance(log, SQLiteLog) else log.method
    return written, method, ok


def kb(value: float) -> str:
    return f"{value / 1000:,.1f} KB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reply-kb", type=int, default=20)
    parser.add_argument("--writes", type=int, default=60)
    parser.add_argument("--interval-ms", type=int, default=50)
    parser.add_argument("--replies", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CHATSTORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    if args.interval_ms < 10 or args.writes < 1 or args.replies < 1 or args.reply_kb < 1:
        parser.error("needs an interval of 10 ms or more, and at least one write, reply and KB")

    rows = []
    ok = True
    for backend in args.backends.split(","):
        for setting, interval_ms in (("on", args.interval_ms), ("off", PROGRESS_OFF_MS)):
            began = time.perf_counter()
            written, method, fine = run(backend, interval_ms, args)
            ok &= fine
            print(f"{backend}, progress {setting}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
            rows.append((backend, setting, written, method))

    print(
        f"{datetime.now(UTC):%Y-%m-%d}, nproc {len(os.sched_getaffinity(0))}, "
        f"{platform.python_implementation()} {platform.python_version()}, {sqlite3.sqlite_version=}; "
        f"a reply of {args.reply_kb} KB over {args.writes} progress intervals of {args.interval_ms} ms, "
        f"{args.replies} replies measured each\n"
    )
    print(
        "| backend | progress writes | written per reply, median | least | ÷ reply size | full-page images |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    size = args.reply_kb * 1000
    for backend, setting, written, _ in rows:
        median = statistics.median(written.total)
        # As many as intervals went by: the pieces come later than asked on a busy machine.
        seconds = statistics.median(written.seconds)
        writes = (
            f"about {seconds * 1000 / args.interval_ms:.0f} ({seconds:.1f} s)" if setting == "on" else "none"
        )
        images = statistics.median(written.full_pages) / median if median and backend != "sqlite" else 0
        share = f"{images:.0%}" if backend != "sqlite" else "n/a"
        least = kb(min(written.total))
        print(f"| {backend} | {writes} | {kb(median)} | {least} | {median / size:.1f}x | {share} |")
    print()
    for backend, setting, written, method in rows:
        if setting == "on":
            off = next(w for b, s, w, _ in rows if b == backend and s == "off")
            progress = statistics.median(written.total) - statistics.median(off.total)
            print(f"{backend}: {method}; the progress writes' share: {kb(progress)} per reply")
    if not ok:
        print("\nA REPLY WAS NOT STORED complete WITH ITS WHOLE TEXT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
