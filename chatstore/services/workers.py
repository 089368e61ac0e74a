"""Process leases: how one chatstore process finds the replies that a dead one left ``in_progress``.

Every process registers a row in ``workers`` and renews its lease on a heartbeat. Replies carry the
id of the process streaming them. A reply whose process has let its lease expire (or, on the same
host and in the same PID namespace, whose process id no longer runs) is swept to ``incomplete``
(the UPDATE itself is the reply store's, ``sweep_replies_of_dead_workers``); a reply of a live
process, in this process or another, is never touched.

The lease is written with the database's priority: its writes go ahead of requests' writes and have
connections of their own, so that a load that exhausts the request pool cannot let it lapse.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select, update

from chatstore.core.db import Database, DatabaseUnavailable
from chatstore.models import workers_table
from chatstore.models.tables import new_id, utc_now
from chatstore.services.replies.reply_store import release_replies_of, sweep_replies_of_dead_workers

__all__ = ["WorkerLease", "process_namespace"]

logger = logging.getLogger("chatstore.workers")

# ``Worker.process_namespace``: its column keeps the name it had in 0.1.0, ``hostname``.
PROCESS_NAMESPACE = workers_table.c.hostname


def process_namespace() -> str:
    """Where this process's id means something: the host name, and on Linux the PID namespace, so
    that two containers sharing a host name never take each other's processes for dead."""
    try:
        namespace = Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/pidns:{namespace}"


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


class WorkerLease:
    def __init__(self, db: Database, lease_s: float, heartbeat_interval_s: float) -> None:
        self.id = new_id()
        self._db = db
        self._lease = timedelta(seconds=lease_s)
        self._interval_s = heartbeat_interval_s
        self._namespace = process_namespace()
        self._pid = os.getpid()
        self._task: asyncio.Task[None] | None = None
        self._renewed_at = 0.0
        self._released = False

    async def start(self) -> None:
        """Register this process, sweep what dead ones left behind, and keep the lease alive."""
        await self.renew()
        await self.sweep()
        self._task = asyncio.create_task(self._heartbeat(), name="chatstore-heartbeat")

    async def stop(self) -> None:
        """Give up the lease; replies this process still had open are swept now, not after it expires."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._released = True
        try:
            await self._db.write(self._release, priority=True)
        except DatabaseUnavailable:
            # Nothing more to do at shutdown: the lease runs out, and another process sweeps then.
            logger.warning("could not release the process lease: the database is unavailable")

    async def renew(self, *, priority: bool = True) -> None:
        """Push the lease's expiry ``lease_s`` ahead (and register the process if it is not).

        The heartbeat renews with priority; a health check without, as the requests' writes go, so
        that it reports what they meet and a flood of checks cannot hold the requests up."""
        if self._released:  # shutting down: a health check must not register the process again
            return
        await self._db.write(self._renew, priority=priority)
        self._renewed_at = time.monotonic()

    async def sweep(self) -> int:
        """Mark ``incomplete`` the replies whose process is dead; returns how many."""
        swept = await self._db.write(self._sweep, priority=True)
        if swept:
            logger.warning("marked %d reply(ies) of stopped processes incomplete", swept)
        return swept

    async def _heartbeat(self) -> None:
        lapsed = False
        failing = False
        sweeps_from = 0.0
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.renew()
                if failing:
                    # Every lease may have run out while the database was away. The other processes
                    # get a whole lease term to renew theirs before this one takes them for dead.
                    sweeps_from = time.monotonic() + self._lease.total_seconds()
                failing = lapsed = False
                if time.monotonic() >= sweeps_from:
                    await self.sweep()
            except DatabaseUnavailable:
                failing = True
                # The database layer logs the outage; what matters here is whether the lease ran out.
                if not lapsed and time.monotonic() - self._renewed_at > self._lease.total_seconds():
                    lapsed = True
                    logger.error(
                        "the process lease has not been renewed for %.0f s: other processes may mark "
                        "the replies this process streams incomplete",
                        time.monotonic() - self._renewed_at,
                    )
            except Exception:
                logger.exception("could not renew the process lease; retrying")

    def _renew(self, connection: Connection) -> None:
        expires = utc_now() + self._lease
        renewed = connection.execute(
            update(workers_table).where(workers_table.c.id == self.id).values(lease_expires_at=expires)
        ).rowcount
        if not renewed:
            connection.execute(
                insert(workers_table).values(
                    {
                        workers_table.c.id: self.id,
                        PROCESS_NAMESPACE: self._namespace,
                        workers_table.c.pid: self._pid,
                        workers_table.c.lease_expires_at: expires,
                    }
                )
            )

    def _sweep(self, connection: Connection) -> int:
        now = utc_now()
        neighbours = connection.execute(
            select(workers_table.c.id, workers_table.c.pid).where(
                self._namespace == PROCESS_NAMESPACE, workers_table.c.id != self.id
            )
        ).all()
        # A process id on this host that runs no process (or runs this one) frees its lease at once.
        gone = [w.id for w in neighbours if w.pid == self._pid or _process_is_gone(w.pid)]
        if gone:
            connection.execute(delete(workers_table).where(workers_table.c.id.in_(gone)))
        live = select(workers_table.c.id).where(workers_table.c.lease_expires_at > now)
        swept = sweep_replies_of_dead_workers(connection, live)
        # Leases long expired have nothing left to protect.
        connection.execute(delete(workers_table).where(workers_table.c.lease_expires_at < now - self._lease))
        return swept

    def _release(self, connection: Connection) -> None:
        release_replies_of(connection, self.id)
        connection.execute(delete(workers_table).where(workers_table.c.id == self.id))
