"""Real chatstore server processes for tests: start them on free ports, wait until they answer, stop them.

``running_servers`` is what tests use: it starts N processes of ``python -m chatstore`` on one database,
waits until each answers, and stops them all however the test ends. Each process writes its output to
its own log file, which the errors quote and the tests can read.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import Event, parse_sse

__all__ = ["ServerProcess", "running_servers", "start_server"]

READY_PATH = "/healthz"  # open with or without CHATSTORE_API_KEY, and it checks the database
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """One running ``python -m chatstore``."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Everything the process wrote on stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Poll ``GET /healthz`` until it answers 200; fail, quoting the log, if it dies or is slow."""
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"chatstore exited with {self.process.returncode} before it answered:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"chatstore did not answer within {timeout_s:.0f} s:\n{self.log()}")
            time.sleep(POLL_INTERVAL_S)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask the process to shut down (SIGTERM); SIGKILL it if it has not within ``timeout_s``."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """End the process at once (SIGKILL), as a crash would, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}{READY_PATH}", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it when binding port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(database_url: str, log_path: Path, env: Mapping[str, str] | None = None) -> ServerProcess:
    """Start ``python -m chatstore`` on a free port and ``database_url``; does not wait until it answers.

    ``env`` adds or overrides variables (``CHATSTORE_MOCK_DELAY_MS``, ``CHATSTORE_WORKER_LEASE_S``, …);
    the log level is ``warning`` unless ``env`` says otherwise.
    """
    port = free_port()
    process_env = {
        **os.environ,
        "CHATSTORE_LOG_LEVEL": "warning",
        **(env or {}),
        "CHATSTORE_DATABASE_URL": database_url,
    }
    with log_path.open("wb") as log:  # the child keeps its own copy of the file descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "chatstore", "--port", str(port)],
            env=process_env,
            cwd=log_path.parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(process, f"http://127.0.0.1:{port}", log_path)


@contextmanager
def running_servers(
    count: int,
    database_url: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    name: str = "server",
) -> Iterator[list[ServerProcess]]:
    """Start ``count`` processes on one database, all at once, and yield them once each answers.

    They are stopped (SIGTERM, then SIGKILL) when the block ends, whether it fails or not; one killed
    in the block stays dead. Logs are ``log_dir / f"{name}-{index}.log"``.
    """
    with ExitStack() as stack:
        servers = []
        for index in range(count):
            server = start_server(database_url, log_dir / f"{name}-{index}.log", env)
            stack.callback(server.stop)
            servers.append(server)
        for server in servers:
            server.wait_until_ready()
        yield servers


# --- Talking to them --------------------------------------------------------------------------------

HTTP_TIMEOUT_S = 30.0


def chat_body(session_id: str, content: str, **options: Any) -> dict[str, Any]:
    return {"session_id": session_id, "messages": [{"role": "user", "content": content}], **options}


class BackgroundChat:
    """A chat turn read event by event in a thread, so the test can act while the reply streams;
    ``BackgroundChat.following`` reads a reply's stream (``GET /api/messages/{id}/stream``) instead."""

    def __init__(self, server: ServerProcess, body: dict[str, Any] | None, path: str = "/api/chat") -> None:
        self._url = f"{server.base_url}{path}"
        self._body = body
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="background-chat", daemon=True)
        self.events: list[Event] = []
        self.finished = False
        self.failure: Exception | None = None

    @classmethod
    def following(cls, server: ServerProcess, reply_id: str) -> "BackgroundChat":
        return cls(server, None, f"/api/messages/{reply_id}/stream")

    def __enter__(self) -> "BackgroundChat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join(HTTP_TIMEOUT_S)

    @property
    def reply_id(self) -> str:
        return str(self.events[0].data["assistant_message_id"])

    def wait_until(self, what: str, seen: Callable[[list[Event]], bool], timeout_s: float = 10.0) -> None:
        """Block until ``seen(events)`` holds; fail if the stream ends first or it takes too long."""
        with self._changed:
            self._changed.wait_for(lambda: seen(self.events) or self.finished, timeout_s)
            assert seen(self.events), f"no {what}: events={self.events}, failure={self.failure!r}"

    def wait_until_finished(self, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.wait_until("end of the stream", lambda _: self.finished, timeout_s)

    def _read(self) -> None:
        try:
            with (
                httpx.Client(timeout=HTTP_TIMEOUT_S) as client,
                client.stream(
                    "GET" if self._body is None else "POST", self._url, json=self._body
                ) as response,
            ):
                response.raise_for_status()
                block: list[str] = []
                for line in response.iter_lines():
                    if line:
                        block.append(line)
                    elif block:
                        self._add(parse_sse("\n".join(block)))
                        block = []
        except Exception as exc:  # kept for the test to look at: a killed server cuts the stream
            self.failure = exc
        finally:
            with self._changed:
                self.finished = True
                self._changed.notify_all()

    def _add(self, events: list[Event]) -> None:
        with self._changed:
            self.events.extend(events)
            self._changed.notify_all()


def started(events: list[Event]) -> bool:
    return bool(events) and events[0].event == "start"


def deltas(count: int) -> Callable[[list[Event]], bool]:
    return lambda events: sum(e.event == "delta" for e in events) >= count
