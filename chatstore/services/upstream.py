"""Replies from a model server that speaks OpenAI's streaming chat-completions API.

llama.cpp's server, Ollama, vLLM, LM Studio and OpenAI itself answer
``POST {base_url}/chat/completions`` with ``"stream": true`` as Server-Sent Events: one
``data: {json}`` event per piece, whose text is ``choices[0].delta.content``, and ``data: [DONE]``
at the end. Each piece is passed on as soon as its event arrives.

What the model is sent (``upstream_messages``):

- the session's ``metadata.system_prompt``, if set, as the first system message;
- the session's stored messages in ``seq`` order, this turn's included. A reply that ended
  ``incomplete`` or ``error`` is sent with the text it had, since that is what the user saw; a
  message with no text (a reply that failed before its first piece, or one still streaming in
  another turn) is left out;
- trimmed from the oldest end to ``llm_history_max_messages`` and ``llm_history_max_chars``.
  System messages count toward both but are never dropped, and the newest message is always sent.

Every failure (the server unreachable, an HTTP error status, no first event in time, a stall in
the middle, a malformed chunk, a stream that ends before the reply is finished) raises
``ResponderError`` with a detail the client can read. The API key is never in a detail or a log.
"""

import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import anyio
import httpx
import msgspec

from chatstore.core.settings import Settings
from chatstore.schemas import MessageRead
from chatstore.services.errors import ResponderError
from chatstore.services.responders import Conversation, Responder

__all__ = ["OpenAIResponder", "upstream_messages"]

logger = logging.getLogger("chatstore.upstream")

ERROR_BODY_LIMIT = 16_384  # bytes of an error response read for its message
QUOTE_LIMIT = 300  # characters of the server's own words quoted in a detail
REDACTED = "***"


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    # Both optional: a chunk has choices, an error event has ``error``; one with neither is malformed.
    choices: list[_Choice] | None = None
    error: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class OpenAIResponder(Responder):
    """Streams each reply from ``{llm_base_url}/chat/completions``, over one connection pool per app."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.llm_base_url.rstrip("/") + "/chat/completions"
        self._model = settings.llm_model
        self._api_key = settings.llm_api_key
        self._first_byte_timeout_s = settings.llm_first_byte_timeout_s
        self._read_timeout_s = settings.llm_read_timeout_s
        self._max_messages = settings.llm_history_max_messages
        self._max_chars = settings.llm_history_max_chars
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # Only the connect timeout is httpx's: its read timeout would also bound the wait for the
        # first event, which gets its own, longer limit (a model may think before it speaks).
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(None, connect=settings.llm_connect_timeout_s)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def reply(self, conversation: Conversation) -> AsyncIterator[str]:
        try:
            body = await self.request_body(conversation)
            async with aclosing(self._stream(body)) as pieces:
                async for piece in pieces:
                    yield piece
        except ResponderError as exc:
            # The server's own words may quote the key back (OpenAI's 401 does, partly masked).
            detail = exc.detail.replace(self._api_key, REDACTED) if self._api_key else exc.detail
            logger.warning("model server failure for session %s: %s", conversation.session_id, detail)
            raise ResponderError(detail) from None

    async def request_body(self, conversation: Conversation) -> dict[str, Any]:
        """The chat-completions request for this turn, with the session's overrides applied."""
        metadata = await conversation.session_metadata()
        model = metadata.get("model", self._model)
        if not isinstance(model, str) or not model:
            raise ResponderError("the session's metadata `model` must be a non-empty string")
        system_prompt = metadata.get("system_prompt", "")
        if not isinstance(system_prompt, str):
            raise ResponderError("the session's metadata `system_prompt` must be a string")
        messages = upstream_messages(
            await conversation.history(),
            system_prompt,
            max_messages=self._max_messages,
            max_chars=self._max_chars,
        )
        return {"model": model, "messages": messages, "stream": True}

    async def _stream(self, body: dict[str, Any]) -> AsyncIterator[str]:
        # Until the first event the first-byte budget runs from the request's start; after each
        # event the read budget starts again.
        deadline = anyio.current_time() + self._first_byte_timeout_s
        started = False
        try:
            request = self._client.build_request("POST", self._url, json=body)
            with anyio.fail_after(deadline - anyio.current_time()):
                response = await self._client.send(request, stream=True)
        except TimeoutError:
            raise ResponderError(self._silence_detail(started)) from None
        except httpx.HTTPError as exc:
            raise ResponderError(f"could not reach the model server: {_describe(exc)}") from None
        try:
            if not response.is_success:
                with anyio.fail_after(max(deadline - anyio.current_time(), 0)):
                    detail = await _status_detail(response)
                raise ResponderError(detail)
            finished = False
            async with aclosing(_sse_data(response.aiter_lines())) as events:
                while True:
                    with anyio.fail_after(max(deadline - anyio.current_time(), 0)):
                        data = await anext(events, None)
                    if data is None or data == "[DONE]":
                        break
                    started = True
                    deadline = anyio.current_time() + self._read_timeout_s
                    piece, ends = _parse_chunk(data)
                    finished = finished or ends
                    if piece:
                        yield piece
            # Some servers end with a finish_reason and no [DONE]; an end with neither is a cut.
            if data is None and not finished:
                raise ResponderError("the model server ended the stream before the reply was finished")
        except TimeoutError:
            raise ResponderError(self._silence_detail(started)) from None
        except httpx.HTTPError as exc:
            raise ResponderError(f"the connection to the model server broke: {_describe(exc)}") from None
        finally:
            await response.aclose()

    def _silence_detail(self, started: bool) -> str:
        if started:
            return (
                f"the model server stopped sending for {self._read_timeout_s:g} s in the middle of the reply"
            )
        return f"the model server did not start replying within {self._first_byte_timeout_s:g} s"


def upstream_messages(
    history: Sequence[MessageRead], system_prompt: str, *, max_messages: int, max_chars: int
) -> list[dict[str, str]]:
    """The messages the model is sent for a turn: the rules are in the module's docstring."""
    entries = [("system", system_prompt)] if system_prompt else []
    entries += [(message.role, message.content) for message in history if message.content.strip()]
    messages_left = max_messages or math.inf
    chars_left = max_chars or math.inf
    keep = [role == "system" for role, _ in entries]
    for (_, content), kept in zip(entries, keep, strict=True):
        if kept:
            messages_left -= 1
            chars_left -= len(content)
    newest = True
    for index in reversed(range(len(entries))):
        role, content = entries[index]
        if role == "system":
            continue
        if not newest and (messages_left < 1 or chars_left < len(content)):
            break  # what is older goes too: the model gets a contiguous stretch of the conversation
        keep[index], newest = True, False
        messages_left -= 1
        chars_left -= len(content)
    return [
        {"role": role, "content": content}
        for (role, content), kept in zip(entries, keep, strict=True)
        if kept
    ]


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each Server-Sent Event; an event's ``data`` lines are joined by newlines."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
        # Other fields and comments (": keep-alive") carry nothing a reply needs.
    if data:  # a last event without its blank line
        yield "\n".join(data)


def _parse_chunk(data: str) -> tuple[str, bool]:
    """A chunk's text, and whether it says the reply is finished."""
    try:
        chunk = _decode_chunk(data)
    except msgspec.DecodeError as exc:
        raise ResponderError(f"the model server sent a malformed chunk ({exc}): {_quote(data)}") from None
    if chunk.error is not None:
        message = _error_message(chunk.error) or _quote(data)
        raise ResponderError(f"the model server failed in the middle of the reply: {message}")
    if chunk.choices is None:
        raise ResponderError(f"the model server sent a chunk without choices: {_quote(data)}")
    if not chunk.choices:
        return "", False  # usage and content-filter chunks have an empty list
    choice = chunk.choices[0]
    return choice.delta.content or "", choice.finish_reason is not None


async def _status_detail(response: httpx.Response) -> str:
    body = b""
    async for part in response.aiter_bytes():
        body += part
        if len(body) >= ERROR_BODY_LIMIT:
            break
    detail = f"the model server answered {response.status_code} {response.reason_phrase}".rstrip()
    text = body[:ERROR_BODY_LIMIT].decode("utf-8", "replace")
    try:
        message = _error_message(msgspec.json.decode(body[:ERROR_BODY_LIMIT]))
    except msgspec.DecodeError:
        message = _quote(text) if text.strip() else None
    return f"{detail}: {message}" if message else detail


def _error_message(payload: Any) -> str | None:
    """The message in an error body: OpenAI's and llama.cpp's ``{"error": {"message"}}``, Ollama's
    ``{"error": "…"}``, vLLM's ``{"message"}``, or ``{"detail"}``."""
    if isinstance(payload, str):
        return _quote(payload) if payload.strip() else None
    if isinstance(payload, dict):
        for key in ("error", "message", "detail"):
            message = _error_message(payload.get(key))
            if message:
                return message
    return None


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "…"


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
