"""Rules a decoded body must still pass: the configured limits, and what the databases cannot store."""

from typing import Any

import msgspec

from chatstore.core.settings import Settings
from chatstore.schemas import MAX_CLIENT_ID_LENGTH, ChatRequest, SessionCreate, SessionExport
from chatstore.services.errors import InvalidInput

__all__ = [
    "check_chat_request",
    "check_metadata",
    "check_session_create",
    "check_session_import",
    "check_text",
]


def check_session_create(data: SessionCreate, settings: Settings) -> None:
    if data.name is not None:
        check_text("name", data.name, settings.max_name_length)
    check_metadata("metadata", data.meta, settings)


def check_chat_request(data: ChatRequest, settings: Settings) -> None:
    if len(data.messages) > settings.max_messages_per_request:
        raise InvalidInput(
            "messages",
            f"at most {settings.max_messages_per_request} messages per request, got {len(data.messages)}",
        )
    for index, message in enumerate(data.messages):
        check_text(f"messages[{index}].content", message.content, settings.max_content_length)
        if message.id is not None:
            check_text(f"messages[{index}].id", message.id, MAX_CLIENT_ID_LENGTH)


def check_session_import(data: SessionExport, settings: Settings) -> None:
    if data.session.name is not None:
        check_text("session.name", data.session.name, settings.max_name_length)
    check_metadata("session.metadata", data.session.meta, settings)
    for index, message in enumerate(data.messages):
        check_text(f"messages[{index}].content", message.content, settings.max_content_length)


def check_text(field: str, value: str, max_length: int) -> None:
    if len(value) > max_length:
        raise InvalidInput(field, f"at most {max_length} characters, got {len(value)}")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain the NUL character (U+0000)")


def check_metadata(field: str, value: dict[str, Any], settings: Settings) -> None:
    size = len(msgspec.json.encode(value))
    if size > settings.max_metadata_bytes:
        raise InvalidInput(field, f"at most {settings.max_metadata_bytes} bytes of JSON, got {size}")
    _check_json(field, value, settings.max_metadata_depth)


def _check_json(path: str, value: Any, depth_left: int) -> None:
    if isinstance(value, dict | list):
        if depth_left == 0:
            raise InvalidInput(path, "nested too deeply")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                raise InvalidInput(path, "keys must not contain the NUL character (U+0000)")
            _check_json(f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]", item, depth_left - 1)
    elif isinstance(value, str) and "\x00" in value:
        raise InvalidInput(path, "must not contain the NUL character (U+0000)")
