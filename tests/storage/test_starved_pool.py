"""A starved connection pool costs requests a 503, never a live process its lease.

The lease's heartbeat and the progress of streaming replies write with priority: on PostgreSQL on a
pool of their own, on SQLite ahead of the writer's queue. Requests that find no connection within
``CHATSTORE_DB_POOL_TIMEOUT_S`` get 503 with ``Retry-After``.
"""

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import Connection, create_engine, text

from chatstore.core.db import DatabaseUnavailable, open_database, resolve_url
from chatstore.core.settings import Settings
from tests.conftest import postgres_url, skip_or_fail_in_ci
from tests.helpers import DatabaseView, postgres_schema
from tests.servers import HTTP_TIMEOUT_S, BackgroundChat, chat_body, running_servers, started

# A pool of two that gives up after half a second, and a lease renewed every 0.5 s that lapses
# after 1.5 s: one second of a heartbeat stuck behind requests is enough to lose it.
STARVED = {
    "CHATSTORE_DB_POOL_SIZE": "2",
    "CHATSTORE_DB_POOL_TIMEOUT_S": "0.5",
    "CHATSTORE_WORKER_LEASE_S": "1.5",
    "CHATSTORE_MOCK_DELAY_MS": "200",
    "CHATSTORE_PROGRESS_INTERVAL_MS": "100",
}
LONG_MESSAGE = "please take your time and answer this question one word after another"
HOLD_S = 4.0  # more than twice the lease
CLIENTS = 12


@pytest.fixture
def postgres_database() -> Iterator[str]:
    base = postgres_url()
    if base is None:
        skip_or_fail_in_ci("the starved PostgreSQL pool needs CHATSTORE_TEST_POSTGRES_URL")
    assert base is not None
    with postgres_schema(base, prefix="starved") as url:
        yield url


@pytest.mark.server
def test_a_starved_pool_answers_503_and_never_costs_a_live_process_its_lease(
    postgres_database: str, tmp_path: Path
) -> None:
    engine = create_engine(resolve_url(postgres_database, blocking=True))
    db = DatabaseView(engine)
    try:
        with running_servers(2, postgres_database, tmp_path, STARVED) as (busy, sweeper):
            session_id = httpx.post(f"{busy.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()["id"]
            locked_id = httpx.post(f"{busy.base_url}/api/sessions", timeout=HTTP_TIMEOUT_S).json()["id"]
            body = chat_body(session_id, LONG_MESSAGE, keep_generating=True)
            with BackgroundChat(busy, body) as chat:
                chat.wait_until("start", started)
                worker_id = db.scalar("SELECT worker_id FROM messages WHERE id = :id", id=chat.reply_id)
                answers, samples = _starve(busy.base_url, engine, locked_id, worker_id, chat.reply_id)
                chat.wait_until_finished()
            log = busy.log() + sweeper.log()
    finally:
        engine.dispose()

    codes = [code for code, _ in answers]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) >= CLIENTS, codes
    assert all(
        retry_after is not None and int(retry_after) > 0 for code, retry_after in answers if code == 503
    )
    # The lease never ran out, it kept moving ahead, and the live reply was never swept.
    assert all(expires is not None and expires > at for at, expires, _ in samples), samples
    assert samples[-1][1] is not None and samples[0][1] is not None and samples[-1][1] > samples[0][1]
    assert {status for _, _, status in samples} == {"in_progress"}, samples
    assert chat.events[-1].event == "done", chat.events[-3:]
    assert chat.events[-1].data["status"] == "complete"
    assert "could not renew" not in log and "Traceback" not in log, log


def _starve(
    base_url: str, engine: Any, locked_id: str, worker_id: str, reply_id: str
) -> tuple[list[tuple[int, str | None]], list[tuple[datetime, datetime | None, str]]]:
    """Hold every connection of the pool for ``HOLD_S``: two updates wait on a row the test has
    locked while more clients keep asking. Returns what they got, and the lease as sampled."""
    answers: list[tuple[int, str | None]] = []
    samples: list[tuple[datetime, datetime | None, str]] = []
    stop = threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_S) as http:
            while not stop.is_set():
                if number < 2:
                    response = http.patch(f"/api/sessions/{locked_id}", json={"name": f"held {number}"})
                else:
                    response = http.get("/api/sessions")
                answers.append((response.status_code, response.headers.get("Retry-After")))

    with engine.connect() as holder, ThreadPoolExecutor(CLIENTS) as pool:
        holder.execute(text("SELECT id FROM sessions WHERE id = :id FOR UPDATE"), {"id": locked_id})
        futures = [pool.submit(client, number) for number in range(CLIENTS)]
        try:
            deadline = time.monotonic() + HOLD_S
            with engine.connect() as reader:
                while time.monotonic() < deadline:
                    row = reader.execute(
                        text(
                            "SELECT (SELECT lease_expires_at FROM workers WHERE id = :worker) AS expires,"
                            " status FROM messages WHERE id = :reply"
                        ),
                        {"worker": worker_id, "reply": reply_id},
                    ).one()
                    reader.rollback()
                    samples.append((datetime.now(UTC), row.expires, row.status))
                    time.sleep(0.2)
        finally:
            stop.set()
            holder.rollback()  # the two waiting updates go through; the clients stop
        for future in futures:
            future.result()
    return answers, samples


# --- SQLite: the writer's queue and the reader pool -----------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_priority_writes_go_ahead_of_every_queued_write_on_sqlite(tmp_path: Path) -> None:
    database = await open_database(Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    order: list[str] = []
    release = threading.Event()

    def blocking(_: Connection) -> None:
        release.wait(10)  # the writer thread is busy: everything after it queues

    def record(name: str) -> Any:
        return lambda _: order.append(name)

    try:
        first = asyncio.ensure_future(database.write(blocking))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(database.write(record(f"request {i}"))) for i in range(300)]
        lease = asyncio.ensure_future(database.write(record("lease"), priority=True))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, *queued, lease)
    finally:
        release.set()
        await database.close()
    assert order[0] == "lease", order[:5]
    assert order[1:] == [f"request {i}" for i in range(300)]


@pytest.mark.anyio
async def test_a_read_that_finds_no_free_connection_in_time_is_unavailable_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'app.db'}", db_pool_size=1, db_pool_timeout_s=0.2
    )
    database = await open_database(settings)
    release = threading.Event()
    try:
        holding = asyncio.ensure_future(database.read(lambda _: release.wait(10)))
        await asyncio.sleep(0.05)
        began = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as refused:
            await database.read(lambda connection: connection.execute(text("SELECT 1")).scalar())
        waited = time.monotonic() - began
        release.set()
        await holding
        assert await database.read(lambda connection: connection.execute(text("SELECT 1")).scalar()) == 1
    finally:
        release.set()
        await database.close()
    assert refused.value.reason == "busy"
    assert 0.15 < waited < 2


@pytest.mark.anyio
async def test_at_most_pool_size_reads_run_at_once_each_in_a_worker_thread_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", db_pool_size=3, db_pool_timeout_s=10)
    database = await open_database(settings)
    lock = threading.Lock()
    running = 0
    most = 0
    threads: set[str] = set()

    def overlapping(connection: Connection) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.current_thread().name)
        time.sleep(0.05)
        with lock:
            running -= 1
        return connection.execute(text("SELECT 1")).scalar_one()

    try:
        results = await asyncio.gather(*(database.read(overlapping) for _ in range(12)))
    finally:
        await database.close()
    assert results == [1] * 12
    assert most == 3
    assert threading.current_thread().name not in threads and len(threads) <= 3, threads


@pytest.mark.anyio
@pytest.mark.parametrize("cancelled_by", ["task.cancel", "anyio cancel scope"])
async def test_a_cancelled_read_returns_at_once_and_holds_its_slot_until_its_thread_is_done_on_sqlite(
    tmp_path: Path, cancelled_by: str
) -> None:
    """Cancelled, a read raises at once; its thread runs on with the connection, so its slot is not
    free until the thread is done, and is free again after."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'app.db'}", db_pool_size=1, db_pool_timeout_s=0.2
    )
    database = await open_database(settings)
    began, release, finished = threading.Event(), threading.Event(), threading.Event()

    def held(connection: Connection) -> None:
        began.set()
        release.wait(10)
        connection.execute(text("SELECT 1"))
        finished.set()

    async def cancelled_read() -> None:
        if cancelled_by == "task.cancel":
            reading = asyncio.ensure_future(database.read(held))
            while not began.is_set():
                await asyncio.sleep(0.01)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
        else:
            with anyio.move_on_after(0.1) as scope:
                await database.read(held)
            assert scope.cancelled_caught

    try:
        with anyio.fail_after(2):
            await cancelled_read()
        assert began.is_set() and not finished.is_set()
        with pytest.raises(DatabaseUnavailable) as refused:
            await database.read(lambda connection: connection.execute(text("SELECT 1")).scalar())
        release.set()
        with anyio.fail_after(2):
            while not finished.is_set():
                await asyncio.sleep(0.01)
        assert await database.read(lambda connection: connection.execute(text("SELECT 2")).scalar()) == 2
    finally:
        release.set()
        await database.close()
    assert refused.value.reason == "busy"
    assert refused.value.__cause__ is None  # refused a slot, not a connection by the engine's pool


@pytest.mark.anyio
async def test_closing_waits_for_the_reads_still_running_on_sqlite(tmp_path: Path) -> None:
    database = await open_database(Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    began, release = threading.Event(), threading.Event()

    def held(connection: Connection) -> int:
        began.set()
        release.wait(10)
        return connection.execute(text("SELECT 1")).scalar_one()

    try:
        reading = asyncio.ensure_future(database.read(held))
        while not began.is_set():
            await asyncio.sleep(0.01)
        reading.cancel()
        closing = asyncio.ensure_future(database.close())
        await asyncio.sleep(0.1)
        assert not closing.done()
    finally:
        release.set()
    await closing
    with pytest.raises(asyncio.CancelledError):
        await reading
