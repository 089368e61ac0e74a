"""``python -m chatstore [--host HOST] [--port PORT] [--workers N]``: serve the app with uvicorn."""

import argparse
import ipaddress
import sys

import uvicorn

from chatstore.api.request_limits import MAX_HEADER_BYTES
from chatstore.core.settings import Settings


def open_access_warning(host: str, settings: Settings) -> str | None:
    """The warning to print when the API is reachable from other machines without a key."""
    if settings.api_keys or _is_loopback(host):
        return None
    return (
        f"chatstore listens on {host} without CHATSTORE_API_KEY: anyone who can reach it can read "
        "and delete every session. Set CHATSTORE_API_KEY, or listen on 127.0.0.1."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m chatstore", description="Serve chatstore.")
    parser.add_argument("--host", default=settings.host, help="address to listen on (CHATSTORE_HOST)")
    parser.add_argument("--port", type=int, default=settings.port, help="port to listen on (CHATSTORE_PORT)")
    parser.add_argument("--workers", type=int, default=1, help="number of worker processes")
    args = parser.parse_args(argv)
    warning = open_access_warning(args.host, settings)
    if warning:
        print(f"WARNING:  {warning}", file=sys.stderr, flush=True)
    uvicorn.run(
        "chatstore.app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
        # chatstore.access logs each request without the query string (search words are message text).
        access_log=False,
        # h11 (uvicorn's httptools parser has no header limit), with deadlines for slow clients.
        http="chatstore.serving:DeadlineH11Protocol",
        # For headers still arriving when they pass the limit; the app checks those that came whole.
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=settings.keep_alive_s,
        # No limit_concurrency: it counts sockets. The app bounds requests in progress instead.
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
