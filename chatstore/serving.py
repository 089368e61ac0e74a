"""How ``python -m chatstore`` listens and speaks HTTP: its socket, and uvicorn's h11 protocol with
deadlines for slow clients.

uvicorn has none for a client that sends its headers or body slowly, or that stops reading what it
is sent: such a client kept its connection, and its request, for as long as it liked. Here each of
those may take at most ``CHATSTORE_CLIENT_TIMEOUT_S``:

- the headers of a request, from the connection's opening (or the request's first byte on a kept-alive
  connection) until the last header: past it, 408 if part of a request had arrived, and the
  connection closes;
- the body, from the end of the headers until its last byte: past it, the connection closes (the
  app sees the body cut off and answers 400 to nobody);
- a response the client does not take in: past that long with the socket's buffers full, the
  connection closes (a chat stream's reply goes on, or stops, as when any client goes away).

An idle connection between two requests is uvicorn's own ``timeout_keep_alive``.
"""

import asyncio
import logging
import socket
from functools import cache
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from chatstore.core.settings import Settings

__all__ = ["DeadlineH11Protocol", "listening_socket"]

logger = logging.getLogger("chatstore.server")

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 15\r\nconnection: close\r\n\r\nRequest Timeout"
)


@cache
def _client_timeout_s() -> float:
    # The protocol is made by uvicorn from an import string (so that --workers can spawn it), which
    # leaves the environment as the one way to reach it: each process reads it once, as the app does.
    return float(Settings.from_env().client_timeout_s)


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for the headers, the body and each write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_s = _client_timeout_s()
        self._waiting_for: Literal["headers", "body"] | None = None
        self._receive_deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request(new_bytes=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start on a pipelined request already received
        self._follow_request(new_bytes=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._wait_for(None)
        self._stop_send_deadline()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.timeout_s, self._not_reading)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stop_send_deadline()

    def _follow_request(self, *, new_bytes: bool) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._wait_for("body")
        elif state is h11.IDLE:
            # Bytes of a next request start its deadline; an idle connection is keep-alive's to close.
            if new_bytes or self.conn.trailing_data[0]:
                self._wait_for("headers")
        else:
            self._wait_for(None)

    def _wait_for(self, part: Literal["headers", "body"] | None) -> None:
        """Start the deadline for ``part`` unless it is already running (it counts from the start)."""
        if part == self._waiting_for:
            return
        if self._receive_deadline is not None:
            self._receive_deadline.cancel()
            self._receive_deadline = None
        self._waiting_for = part
        if part is not None:
            self._receive_deadline = self.loop.call_later(self.timeout_s, self._too_slow)

    def _too_slow(self) -> None:
        self._receive_deadline = None
        if self.transport.is_closing():
            return
        client = self.client[0] if self.client else "?"
        logger.info(
            "closed a connection from %s: its %s took more than %g s",
            client,
            self._waiting_for,
            self.timeout_s,
        )
        if self._waiting_for == "headers":
            if self.conn.trailing_data[0]:  # part of a request came: say why it gets no answer
                self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()
        else:
            self.transport.abort()

    def _not_reading(self) -> None:
        self._send_deadline = None
        if not self.transport.is_closing():
            client = self.client[0] if self.client else "?"
            logger.info("closed a connection from %s: it took in nothing for %g s", client, self.timeout_s)
        # abort, not close: close would wait for the buffer this client is not reading to drain.
        self.transport.abort()

    def _stop_send_deadline(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` for uvicorn to serve on (``--workers``: each process).

    Made before the app starts, so that a busy port is found before the database is opened, and held
    from then on, so that no other program can take the port in between.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a port that a closed connection of a previous run still holds is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
