"""A fake OpenAI-compatible model server: real HTTP on 127.0.0.1, scripted replies and faults.

Each ``POST …/chat/completions`` is answered by the next queued ``Script`` (``reply(...)`` of the
last user message when none is queued) and recorded as a ``ReceivedRequest``, including whether
the client closed the connection before the script was done. Responses are chunked HTTP/1.1, one
HTTP chunk per step, so a connection dropped mid-body is visible as such to the client.

``python -m tests.fake_openai --port 8001`` serves it for trying chatstore by hand.
"""

import argparse
import contextlib
import json
import select
import threading
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DONE",
    "Drop",
    "FakeOpenAI",
    "Hold",
    "ReceivedRequest",
    "Script",
    "Send",
    "WaitFor",
    "delta",
    "error_reply",
    "event",
    "finish",
    "reply",
]

WAIT_LIMIT_S = 30.0  # no step waits longer than this, so a broken test cannot hang the server
POLL_INTERVAL_S = 0.02


@dataclass(frozen=True)
class Send:
    """Write these bytes as one HTTP chunk."""

    data: bytes


@dataclass(frozen=True)
class WaitFor:
    """Send nothing until the test sets ``gate``."""

    gate: threading.Event


@dataclass(frozen=True)
class Hold:
    """Send nothing more; wait until the client closes the connection."""


@dataclass(frozen=True)
class Drop:
    """Close the connection without ending the response."""


Step = Send | WaitFor | Hold | Drop


@dataclass(frozen=True)
class Script:
    steps: list[Step]
    status: int = 200
    content_type: str = "text/event-stream"
    silent: bool = False  # accept the request and never answer, not even the headers


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any
    sent: int = 0  # Send steps of the script begun so far
    closed_by_client: threading.Event = field(default_factory=threading.Event)


def event(payload: Any) -> Send:
    return Send(f"data: {json.dumps(payload)}\n\n".encode())


def delta(content: str) -> Send:
    return event(
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]}
    )


def finish(reason: str = "stop") -> Send:
    return event(
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    )


DONE = Send(b"data: [DONE]\n\n")


def reply(*pieces: str) -> Script:
    """A well-formed streamed reply, as OpenAI sends it: a role chunk, the pieces, finish, [DONE]."""
    role = event(
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    )
    return Script([role, *(delta(piece) for piece in pieces), finish(), DONE])


def error_reply(status: int, body: Any) -> Script:
    """An HTTP error; ``body`` is sent as JSON, or as it is if it is a string."""
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return Script([Send(data)] if data else [], status=status, content_type="application/json")


class FakeOpenAI:
    """The server; ``with FakeOpenAI() as fake:`` runs it on a free port in a thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> None:
        self.requests: list[ReceivedRequest] = []
        self.quiet = quiet
        self._scripts: deque[Script] = deque()
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL_S,), name="fake-openai", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def enqueue(self, *scripts: Script) -> None:
        self._scripts.extend(scripts)

    def next_script(self, body: Any) -> Script:
        if self._scripts:
            return self._scripts.popleft()
        users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        words = f"You said: {users[-1] if users else ''}. This reply comes from the fake model server.".split(
            " "
        )
        return reply(*(word if index == 0 else f" {word}" for index, word in enumerate(words)))

    def wait(self, event: threading.Event) -> bool:
        """Wait for ``event`` until it is set, the server stops, or the wait limit passes."""
        for _ in range(int(WAIT_LIMIT_S / POLL_INTERVAL_S)):
            if event.wait(POLL_INTERVAL_S):
                return True
            if self.stopping.is_set():
                return False
        return False

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self.stopping.set()
            self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined,no-any-return]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"null")
        if not self.path.endswith("/chat/completions"):
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        received = ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.fake.requests.append(received)
        script = self.fake.next_script(body)
        self.close_connection = True
        try:
            if script.silent:
                self._wait_for_close(received)
                return
            self.send_response(script.status)
            self.send_header("Content-Type", script.content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for step in script.steps:
                if isinstance(step, Send):
                    received.sent += 1  # before the write: the client may see the bytes at once
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(step.data), step.data))
                elif isinstance(step, WaitFor):
                    self.fake.wait(step.gate)
                elif isinstance(step, Hold):
                    self._wait_for_close(received)
                    return
                else:  # Drop
                    return
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            received.closed_by_client.set()

    def _wait_for_close(self, received: ReceivedRequest) -> None:
        """Return once the client has closed the connection (recorded), or the server stops."""
        while not self.fake.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], POLL_INTERVAL_S)
            if readable:
                try:
                    closed = self.connection.recv(4096) == b""
                except ConnectionResetError:
                    closed = True
                if closed:
                    received.closed_by_client.set()
                    return

    def log_message(self, format: str, *args: Any) -> None:
        if not self.fake.quiet:
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_openai", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    fake = FakeOpenAI(args.host, args.port, quiet=False)
    print(f"fake model server at {fake.base_url} (Ctrl-C stops it)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake.serve_forever()


if __name__ == "__main__":
    main()
