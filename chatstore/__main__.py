"""``python -m chatstore [--host HOST] [--port PORT] [--workers N]``: serve the app with uvicorn.

``python -m chatstore db upgrade|current|history``: the database's schema, for operators.
"""

import argparse
import asyncio
import ipaddress
import sys

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from chatstore.api.request_limits import MAX_HEADER_BYTES
from chatstore.core.db import DatabaseUnavailable
from chatstore.core.migrations import (
    SchemaError,
    check_can_serve,
    history,
    read_schema_state,
    upgrade_schema,
)
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
    parser = argparse.ArgumentParser(
        prog="python -m chatstore",
        usage="%(prog)s [--host HOST] [--port PORT] [--workers N]\n"
        "       %(prog)s db {upgrade,current,history}",
        description="Serve chatstore, or look after its database (db).",
    )
    parser.add_argument("--host", default=settings.host, help="address to listen on (CHATSTORE_HOST)")
    parser.add_argument("--port", type=int, default=settings.port, help="port to listen on (CHATSTORE_PORT)")
    parser.add_argument("--workers", type=int, default=1, help="number of worker processes")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="db")
    db = commands.add_parser(
        "db", help="the database's schema: upgrade it, show its revision, list revisions"
    )
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="{upgrade,current,history}")
    db_commands.add_parser("upgrade", help="upgrade the database to the newest revision")
    db_commands.add_parser("current", help="print the database's revision and whether it is the newest")
    db_commands.add_parser("history", help="list the revisions, oldest first")
    args = parser.parse_args(argv)
    if args.command == "db":
        sys.exit(run_db_command(args.db_command, settings))
    warning = open_access_warning(args.host, settings)
    if warning:
        print(f"WARNING:  {warning}", file=sys.stderr, flush=True)
    # Here rather than in the app's start-up, so that a refusal is one line, not a traceback.
    refusal = schema_refusal(settings)
    if refusal:
        print(f"ERROR:    {refusal}", file=sys.stderr, flush=True)
        sys.exit(1)
    uvicorn.run(
        "chatstore.app:create_app",
        factory=True,
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


def schema_refusal(settings: Settings) -> str | None:
    """Why start-up cannot serve this database (newer than the code; with ``CHATSTORE_MIGRATE=off``,
    not at the newest revision), or None. The upgrade itself runs in the app's start-up."""
    try:
        check_can_serve(asyncio.run(read_schema_state(settings)), upgrading=settings.migrate == "auto")
    except SchemaError as refused:
        return str(refused)
    except (DatabaseUnavailable, SQLAlchemyError, OSError):
        return None  # the app's start-up meets the same error and reports it, as it always has
    return None


def run_db_command(command: str, settings: Settings) -> int:
    """``db upgrade``, ``db current`` or ``db history``: prints one line (history: one per revision);
    returns the exit status."""
    try:
        if command == "history":
            revisions = history()
            for index, (revision, title) in enumerate(revisions):
                print(f"{revision}  {title}{'  (newest)' if index == len(revisions) - 1 else ''}")
        elif command == "current":
            state = asyncio.run(read_schema_state(settings))
            hint = "" if state.is_newest or not state.known else ": run python -m chatstore db upgrade"
            print(f"{state.describe()}{hint}")
        else:
            print(asyncio.run(upgrade_schema(settings)).describe())
    except SchemaError as refused:
        print(f"chatstore: {refused}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as failed:
        # An operator reads this, so the driver's own words may come too.
        cause = f": {failed.__cause__}".splitlines()[0] if failed.__cause__ else ""
        print(f"chatstore: {failed} ({failed.reason}{cause})", file=sys.stderr)
        return 1
    except (SQLAlchemyError, OSError) as failed:
        print(f"chatstore: the database cannot be reached or read: {failed}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    main()
