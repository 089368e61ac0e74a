"""The log lines of a shutdown reach the log, although the process ends without ``atexit`` hooks."""

import logging
import threading
from collections.abc import Iterator
from logging.handlers import QueueHandler, QueueListener
from queue import Queue

import pytest

from chatstore.core.logs import write_out_queued_logs


class SlowSink(logging.Handler):
    """A log sink that takes its time, as a slow disk or a full pipe does."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []
        self.go_on = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.go_on.wait(0.05)
        self.written.append(record.getMessage())


@pytest.fixture
def queued_logger() -> Iterator[tuple[logging.Logger, SlowSink]]:
    """A logger whose records go through a queue to a thread, as Litestar's logging config sets up."""
    sink = SlowSink()
    queue: Queue[logging.LogRecord] = Queue()
    handler = QueueHandler(queue)
    handler.listener = QueueListener(queue, sink)  # type: ignore[attr-defined]
    handler.listener.start()  # type: ignore[attr-defined]
    logger = logging.getLogger("chatstore.tests.shutdown")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, sink
    logger.removeHandler(handler)
    sink.go_on.set()
    handler.listener.stop()  # type: ignore[attr-defined]


def test_what_is_queued_is_written_before_it_returns_and_later_lines_are_written_too(
    queued_logger: tuple[logging.Logger, SlowSink],
) -> None:
    logger, sink = queued_logger
    for n in range(5):
        logger.warning("could not store the reply %d before stopping", n)
    assert len(sink.written) < 5, "the sink keeps up: the test shows nothing"

    write_out_queued_logs()

    assert sink.written == [f"could not store the reply {n} before stopping" for n in range(5)]
    logger.warning("after")  # the queue's thread is there again to take it
    write_out_queued_logs()
    assert sink.written[-1] == "after"
