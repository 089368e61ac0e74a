"""The log records still queued when the process is about to end.

Litestar's logging config hands records to a queue that a thread writes out, so that no request waits
on a slow log sink. uvicorn, once the app has shut down, ends the process with the signal that stopped
it: that runs no ``atexit`` hook, so the thread's last records (the shutdown's own, which say what
could not be stored) would be lost unless written out first.
"""

import logging
from logging.handlers import QueueListener

__all__ = ["write_out_queued_logs"]


def write_out_queued_logs() -> None:
    """Let every queue listener write what is queued, then start it again for anything after."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {h for logger in loggers if isinstance(logger, logging.Logger) for h in logger.handlers}
    for handler in handlers:
        listener = getattr(handler, "listener", None)
        if isinstance(listener, QueueListener):
            listener.stop()  # writes out the queue, then ends its thread
            listener.start()
