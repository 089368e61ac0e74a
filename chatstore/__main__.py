"""``python -m chatstore [--host HOST] [--port PORT] [--workers N]``: serve the app with uvicorn.

``python -m chatstore db upgrade|current|history``: the database's schema, for operators.

``python -m chatstore db set-owner --owner USER (--session ID | --unowned)``: give sessions stored
without an owner (in open mode, by an operator, or before owners existed) to a user.

What stops either is said in one line on stderr, with an exit status per kind of failure (the
traceback follows only with ``CHATSTORE_LOG_LEVEL=debug``). Start-up checks what it can before the
app starts, cheapest first: the settings, the address (bound here and held, so that a busy port is
found before the database is opened), then the database, read without writing anything.
"""

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import TypeVar

import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from uvicorn.supervisors import Multiprocess

from chatstore.api.request_limits import MAX_HEADER_BYTES
from chatstore.core.db import DatabaseUnavailable, open_database, resolve_url
from chatstore.core.migrations import (
    SchemaError,
    check_can_serve,
    history,
    read_schema_state,
    upgrade_schema,
)
from chatstore.core.settings import Settings, SettingsError
from chatstore.services.owners import set_owner, user_id_problem
from chatstore.serving import listening_socket

# The exit statuses, as the README lists them. 2 is also argparse's, for a bad command line.
EXIT_BAD_SETTING = 2
EXIT_DATABASE = 3  # also uvicorn's own when the app's start-up fails
EXIT_CANNOT_LISTEN = 4

T = TypeVar("T")


class StartupFailure(Exception):
    """Why chatstore cannot start (or a ``db`` command cannot run), in one line, and its exit status."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def open_access_warning(host: str, settings: Settings) -> str | None:
    """The warning to print when the API is reachable from other machines without a key."""
    if settings.api_keys or settings.tokens_enabled or _is_loopback(host):
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatstore",
        usage="%(prog)s [--host HOST] [--port PORT] [--workers N]\n"
        "       %(prog)s db {upgrade,current,history}\n"
        "       %(prog)s db set-owner --owner USER (--session ID | --unowned)",
        description="Serve chatstore, or look after its database (db).",
    )
    # No defaults here: the settings, read after the command line, give them.
    parser.add_argument("--host", help="address to listen on (CHATSTORE_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (CHATSTORE_PORT; default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="number of worker processes")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="db")
    db = commands.add_parser(
        "db", help="the database's schema: upgrade it, show its revision, list revisions"
    )
    db_commands = db.add_subparsers(
        dest="db_command", required=True, metavar="{upgrade,current,history,set-owner}"
    )
    db_commands.add_parser("upgrade", help="upgrade the database to the newest revision")
    db_commands.add_parser("current", help="print the database's revision and whether it is the newest")
    db_commands.add_parser("history", help="list the revisions, oldest first")
    set_owner_command = db_commands.add_parser(
        "set-owner", help="give one session, or every session without an owner, to a user"
    )
    set_owner_command.add_argument("--owner", required=True, help="the user id the sessions go to")
    which = set_owner_command.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", metavar="ID", help="this session (whoever owns it now)")
    which.add_argument("--unowned", action="store_true", help="every session that has no owner")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    # The server's lines look like uvicorn's, which follow them; a db command's like a tool's.
    prefix = "chatstore: " if args.command == "db" else "ERROR:    "
    try:
        settings = read_settings()
        if args.command == "db":
            if args.db_command == "set-owner":
                status = run_set_owner(settings, args.owner, args.session)
            else:
                status = run_db_command(args.db_command, settings)
        else:
            port = settings.port if args.port is None else args.port
            status = serve(settings, args.host or settings.host, port, args.workers)
    except StartupFailure as failure:
        print(f"{prefix}{failure}", file=sys.stderr, flush=True)
        if _debugging() and failure.__cause__ is not None:
            traceback.print_exception(failure.__cause__, file=sys.stderr)
        sys.exit(failure.exit_status)
    sys.exit(status)


def read_settings() -> Settings:
    """The settings, with the database URL checked too (it is read only when the database opens)."""
    try:
        settings = Settings.from_env()
        resolve_url(settings.database_url)
    except SettingsError as bad:
        raise StartupFailure(str(bad), EXIT_BAD_SETTING) from bad
    return settings


def _debugging() -> bool:
    # Read directly: the settings themselves may be what failed.
    return os.environ.get("CHATSTORE_LOG_LEVEL", "").strip().lower() in ("debug", "trace")


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    """Check the address and the database, then serve until stopped; returns the exit status."""
    try:
        sock = listening_socket(host, port)
    except OSError as failed:
        raise StartupFailure(_listen_failure(host, port, failed), EXIT_CANNOT_LISTEN) from failed
    with sock:
        check_database(settings)
        warning = open_access_warning(host, settings)
        if warning:
            print(f"WARNING:  {warning}", file=sys.stderr, flush=True)
        config = _uvicorn_config(settings, host, sock.getsockname()[1], workers)
        # uvicorn says where it listens only when it binds the socket itself.
        logging.getLogger("uvicorn.error").info(
            "chatstore listens on %s (Press CTRL+C to quit)", _address(host, config.port)
        )
        server = uvicorn.Server(config)
        with contextlib.suppress(KeyboardInterrupt):
            if workers > 1:
                Multiprocess(config, sockets=[sock]).run()
            else:
                server.run(sockets=[sock])
    # uvicorn has logged why the app's start-up failed, with its traceback: it is not one foreseen here.
    return EXIT_DATABASE if workers == 1 and not server.started else 0


def check_database(settings: Settings) -> None:
    """Raise ``StartupFailure`` if the database cannot be reached, or served as it is (newer than the
    code; with ``CHATSTORE_MIGRATE=off``, not at the newest revision). Here rather than in the app's
    start-up, so that a refusal is one line, not a traceback; the upgrade itself runs in the app's
    start-up, under the schema lock."""
    state = _read_database(settings, lambda: asyncio.run(read_schema_state(settings)))
    try:
        check_can_serve(state, upgrading=settings.migrate == "auto")
    except SchemaError as refused:
        raise StartupFailure(str(refused), EXIT_DATABASE) from refused


def _uvicorn_config(settings: Settings, host: str, port: int, workers: int) -> uvicorn.Config:
    return uvicorn.Config(
        "chatstore.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
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


def _address(host: str, port: int) -> str:
    bare = host.strip("[]")
    return f"http://[{bare}]:{port}" if ":" in bare else f"http://{bare}:{port}"


def _listen_failure(host: str, port: int, failed: OSError) -> str:
    where = _address(host, port).removeprefix("http://")
    if isinstance(failed, socket.gaierror):
        return f"cannot listen on {where}: the host name {host!r} is unknown (CHATSTORE_HOST, --host)"
    if failed.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is in use by another program (CHATSTORE_PORT, --port)"
    if failed.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: the address is not one of this machine's (CHATSTORE_HOST, --host)"
    reason = (failed.strerror or str(failed)).lower()
    return f"cannot listen on {where}: {reason}"


def run_db_command(command: str, settings: Settings) -> int:
    """``db upgrade``, ``db current`` or ``db history``: prints one line (history: one per revision);
    returns the exit status, or raises ``StartupFailure``."""
    if command == "history":
        revisions = history()
        for index, (revision, title) in enumerate(revisions):
            print(f"{revision}  {title}{'  (newest)' if index == len(revisions) - 1 else ''}")
    elif command == "current":
        state = _read_database(settings, lambda: asyncio.run(read_schema_state(settings)))
        hint = "" if state.is_newest or not state.known else ": run python -m chatstore db upgrade"
        print(f"{state.describe()}{hint}")
    else:
        try:
            upgrade = _read_database(settings, lambda: asyncio.run(upgrade_schema(settings)))
        except SchemaError as refused:
            raise StartupFailure(str(refused), EXIT_DATABASE) from refused
        print(upgrade.describe())
    return 0


def run_set_owner(settings: Settings, owner: str, session_id: str | None) -> int:
    """``db set-owner``: prints what changed; the schema is upgraded first, as at start-up."""
    problem = user_id_problem(owner)
    if problem is not None:
        raise StartupFailure(f"--owner {problem}", EXIT_BAD_SETTING)

    async def assign() -> int:
        db = await open_database(settings)
        try:
            return await set_owner(db, owner, session_id=session_id)
        finally:
            await db.close()

    try:
        changed = _read_database(settings, lambda: asyncio.run(assign()))
    except SchemaError as refused:
        raise StartupFailure(str(refused), EXIT_DATABASE) from refused
    if session_id is not None:
        if not changed:
            raise StartupFailure(
                f"no session has the id {session_id!r}: nothing was changed", EXIT_BAD_SETTING
            )
        print(f"session {session_id} now belongs to {owner!r}")
    else:
        print(f"{changed} session{'' if changed == 1 else 's'} without an owner now belong to {owner!r}")
    return 0


def _read_database(settings: Settings, work: Callable[[], T]) -> T:
    """Run ``work``; a database that cannot be reached or used becomes a ``StartupFailure``."""
    with _driver_logs_only_when_debugging():
        try:
            return work()
        except (DatabaseUnavailable, SQLAlchemyError, OSError) as failed:
            raise StartupFailure(describe_database_failure(settings, failed), EXIT_DATABASE) from failed


@contextlib.contextmanager
def _driver_logs_only_when_debugging() -> Iterator[None]:
    """Keep chatstore's log lines about the outage (logging is not set up yet, so Python would print
    them) from repeating the one line, unless debugging."""
    quiet = logging.NullHandler()
    chatstore_logger = logging.getLogger("chatstore")
    if not _debugging():
        chatstore_logger.addHandler(quiet)
    try:
        yield
    finally:
        chatstore_logger.removeHandler(quiet)


def describe_database_failure(settings: Settings, failed: BaseException) -> str:
    """One line: which database (its password hidden), and what went wrong, in words."""
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    causes = _causes(failed)
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return f"cannot reach the database at {where}: connection refused"
    if any(isinstance(cause, socket.gaierror) for cause in causes):
        return f"cannot reach the database at {where}: its host name is unknown"
    if any(isinstance(cause, TimeoutError) for cause in causes):
        return f"cannot reach the database at {where}: the connection timed out"
    driver = next((cause.orig for cause in causes if isinstance(cause, DBAPIError)), None) or causes[-1]
    first_line = " ".join((str(driver) or type(driver).__name__).split("\n")[0].split())
    if isinstance(failed, DatabaseUnavailable):
        return f"cannot reach the database at {where}: {first_line}"
    return f"cannot use the database at {where}: {first_line}"


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


if __name__ == "__main__":
    main()
