"""Rules a request must pass: values taken as sent (no coercion between JSON types, integers in
digits), a depth any JSON body stays within, the configured limits, and what the databases cannot
store."""

import re
from datetime import UTC, datetime
from typing import Any, get_args

import msgspec
from litestar import Request
from litestar.params import ParameterKwarg
from litestar.typing import FieldDefinition

from chatstore.core.settings import Settings
from chatstore.schemas import ChatRequest, SessionCreate, SessionExport
from chatstore.services.errors import InvalidInput

__all__ = [
    "MAX_BODY_DEPTH",
    "StrictJSONRequest",
    "check_chat_request",
    "check_metadata",
    "check_session_create",
    "check_session_import",
    "check_text",
    "check_time",
    "strict_query_integers",
]

# The deepest nesting of arrays and objects in any JSON body. Everything that walks a body (the
# metadata checks, the merge patch) recurses, so without a bound a deep body would exhaust Python's
# stack. Far above what any body needs (metadata is at most CHATSTORE_MAX_METADATA_DEPTH deep inside).
MAX_BODY_DEPTH = 64


class StrictJSONRequest(Request[Any, Any, Any]):
    """A request whose JSON body is taken as it was sent. It is refused with a 400:

    - naming ``body``, when it nests deeper than ``MAX_BODY_DEPTH``, including when it is too deep
      for the decoder itself (a ``RecursionError``);
    - naming the field, when a value has another JSON type than its field's, although Litestar's
      lax conversion would coerce it (``"true"`` to a boolean, ``0`` to a time, ``"5"`` to a
      number): the schema says what each field is, and a client that sends something else has a bug
      that a coercion would hide.
    """

    async def json(self) -> Any:
        too_deep = InvalidInput("body", f"nested more than {MAX_BODY_DEPTH} levels deep")
        try:
            value = await super().json()
        except RecursionError:
            raise too_deep from None
        if _nests_deeper_than(value, MAX_BODY_DEPTH):
            raise too_deep
        _check_json_types(value, self.route_handler.parsed_fn_signature.parameters.get("data"))
        return value


def _check_json_types(value: Any, body: FieldDefinition | None) -> None:
    if body is None:
        return
    try:
        msgspec.convert(value, body.annotation, strict=True)
    except msgspec.ValidationError as strict_error:
        try:
            msgspec.convert(value, body.annotation, strict=False)
        except msgspec.ValidationError:
            return  # not a matter of coercion: Litestar's own decoding reports it, as it always has
        message, _, path = str(strict_error).partition(" - at `$")
        raise InvalidInput(path.rstrip("`").lstrip(".") or "body", message) from None


async def strict_query_integers(request: Request[Any, Any, Any]) -> None:
    """A ``before_request`` hook: an integer query parameter is refused (400 naming it) unless it is
    written as one. Litestar's lax parsing would read ``1e3`` as 1000, ``5.0`` as 5 and ``null`` as
    no value; values it refuses anyway keep its own message.

    Async although it never waits: Litestar runs a sync hook in a worker thread, a hop per request."""
    for name, parameter in request.route_handler.parsed_fn_signature.parameters.items():
        if not _is_integer_query(parameter):
            continue
        key = getattr(parameter.kwarg_definition, "query", None) or name
        raw = request.query_params.get(key)
        if raw is None or INTEGER.fullmatch(raw):
            continue
        try:
            msgspec.convert(raw, parameter.annotation, strict=False)
        except msgspec.ValidationError:
            continue
        raise InvalidInput(key, f"must be an integer written in digits, got {raw!r}", source="query")


INTEGER = re.compile(r"-?[0-9]+")


def _is_integer_query(parameter: FieldDefinition) -> bool:
    if not isinstance(parameter.kwarg_definition, ParameterKwarg) or parameter.kwarg_definition.header:
        return False
    types = [t for t in (parameter.annotation, *get_args(parameter.annotation)) if t is not type(None)]
    return int in types and bool not in types


def _nests_deeper_than(value: Any, limit: int) -> bool:
    # A loop, not recursion: this is what keeps a deep body from reaching code that recurses.
    pending = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


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
        if message.id is not None:  # its length is the wire shape's rule (``MessageIn``)
            check_text(f"messages[{index}].id", message.id)


def check_session_import(data: SessionExport, settings: Settings) -> None:
    if data.session.name is not None:
        check_text("session.name", data.session.name, settings.max_name_length)
    check_metadata("session.metadata", data.session.meta, settings)
    check_time("exported_at", data.exported_at)
    check_time("session.created_at", data.session.created_at)
    check_time("session.updated_at", data.session.updated_at)
    for index, message in enumerate(data.messages):
        check_text(f"messages[{index}].content", message.content, settings.max_content_length)
        if message.error is not None:
            check_text(f"messages[{index}].error", message.error, settings.max_content_length)
        check_time(f"messages[{index}].created_at", message.created_at)


def check_text(field: str, value: str, max_length: int | None = None) -> None:
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(field, f"at most {max_length} characters, got {len(value)}")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain the NUL character (U+0000)")


def check_time(field: str, value: datetime) -> None:
    """Times are stored in UTC; one that leaves years 1 to 9999 on the way cannot be stored."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(field, "falls outside years 1 to 9999 once converted to UTC") from None


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
