"""After an outage longer than the lease, every lease has run out: the first process whose database is
back must not take the others for dead before they had a lease term to renew theirs."""

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from chatstore.core.db import Database, open_database
from chatstore.core.settings import Settings
from chatstore.models import messages_table, sessions_table, workers_table
from chatstore.models.tables import new_id, utc_now
from chatstore.services.workers import WorkerLease
from tests.helpers import FailingWrites, WriteFaults

LEASE_S = 0.6
HEARTBEAT_S = 0.1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def reply_of_another_process(database: Database, lease_left_s: float) -> str:
    """A streaming reply of a process on another host, whose lease runs out in ``lease_left_s``."""
    now = utc_now()
    worker_id, session_id, reply_id = new_id(), new_id(), new_id()

    def store(connection: object) -> None:
        connection.execute(  # type: ignore[attr-defined]
            insert(workers_table).values(
                id=worker_id,
                hostname="elsewhere",
                pid=1,
                lease_expires_at=now + timedelta(seconds=lease_left_s),
            )
        )
        connection.execute(  # type: ignore[attr-defined]
            insert(sessions_table).values(
                id=session_id, metadata={}, created_at=now, updated_at=now, activity_at=now
            )
        )
        connection.execute(  # type: ignore[attr-defined]
            insert(messages_table).values(
                id=reply_id,
                session_id=session_id,
                seq=1,
                role="assistant",
                content="so far",
                status="in_progress",
                worker_id=worker_id,
                created_at=now,
                updated_at=now,
            )
        )

    await database.write(store)
    return reply_id


async def reply_status(database: Database, reply_id: str) -> str:
    def read(connection: object) -> str:
        row = connection.execute(  # type: ignore[attr-defined]
            messages_table.select().where(messages_table.c.id == reply_id)
        ).first()
        return str(row.status)

    return await database.read(read)


@pytest.mark.anyio
async def test_a_process_back_from_an_outage_gives_the_others_a_lease_term_before_sweeping(
    tmp_path: Path,
) -> None:
    faults = WriteFaults()
    database = FailingWrites(
        await open_database(Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}")), faults
    )
    lease = WorkerLease(database, LEASE_S, HEARTBEAT_S)
    try:
        await lease.start()
        # The other process's lease runs out during the outage, as every lease does.
        reply_id = await reply_of_another_process(database, lease_left_s=0.2)
        faults.fail()
        await asyncio.sleep(3 * LEASE_S)
        faults.heal()
        # Back: this process renews at once, but the other one has not had its turn yet.
        await asyncio.sleep(LEASE_S / 2)
        assert await reply_status(database, reply_id) == "in_progress"
        # A whole term later it still has not renewed: now it is taken for dead.
        await asyncio.sleep(LEASE_S + 4 * HEARTBEAT_S)
        assert await reply_status(database, reply_id) == "incomplete"
    finally:
        await lease.stop()
        await database.close()


@pytest.mark.anyio
async def test_without_an_outage_an_expired_lease_is_swept_on_the_next_heartbeat(tmp_path: Path) -> None:
    database = await open_database(Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    lease = WorkerLease(database, LEASE_S, HEARTBEAT_S)
    try:
        await lease.start()
        reply_id = await reply_of_another_process(database, lease_left_s=0.1)
        await asyncio.sleep(0.1 + 3 * HEARTBEAT_S)
        assert await reply_status(database, reply_id) == "incomplete"
    finally:
        await lease.stop()
        await database.close()
