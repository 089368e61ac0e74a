"""Processes that open one new SQLite file at the same instant all start.

Switching a file to WAL takes an exclusive lock, and SQLite answers that switch with SQLITE_BUSY at
once, without waiting for its busy timeout: processes starting together used to fail now and then.
Here a few real processes run ``open_database`` on a fresh file, released together by a barrier, for
many trials.
"""

import asyncio
import multiprocessing
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from chatstore.core.db import open_database
from chatstore.core.settings import Settings

PROCESSES = 4
TRIALS = 300
# What the whole test may take on a 2-core CI machine; it takes about a third of this here.
TIME_LIMIT_S = 60.0


def _open_each_new_file(folder: str, trials: int, barrier: Barrier, results: Any) -> None:
    async def open_once(path: Path) -> None:
        database = await open_database(Settings(database_url=f"sqlite:///{path}"))
        await database.close()

    for trial in range(trials):
        barrier.wait()
        try:
            asyncio.run(open_once(Path(folder) / f"trial-{trial}.db"))
        except Exception as exc:
            results.put((trial, f"{type(exc).__name__}: {exc}"))
        else:
            results.put((trial, None))


def test_processes_opening_one_new_file_at_once_all_start(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")  # no fork of the test process and its threads
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(target=_open_each_new_file, args=(str(tmp_path), TRIALS, barrier, results))
        for _ in range(PROCESSES)
    ]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=TIME_LIMIT_S) for _ in range(PROCESSES * TRIALS)]
    for worker in workers:
        worker.join(10)
    took = time.monotonic() - began
    failures = [(trial, error) for trial, error in outcomes if error is not None]
    assert not failures, f"{len(failures)} of {PROCESSES * TRIALS} openings failed: {failures[:5]}"
    assert all(worker.exitcode == 0 for worker in workers)
    assert took < TIME_LIMIT_S
