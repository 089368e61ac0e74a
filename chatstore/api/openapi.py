"""What the OpenAPI schema needs beyond what Litestar derives from the handlers."""

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Discriminator,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from chatstore import schemas
from chatstore.core.settings import Settings

__all__ = [
    "ERROR_BODY_REF",
    "ErrorBody",
    "OptionalBodyOperation",
    "complete_openapi",
    "error_response",
]

ERROR_BODY_REF = "#/components/schemas/ErrorBody"


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error response: the status, a readable detail, and for a 400 the offending fields
    (``extra`` is left out when there are none)."""

    status_code: int
    detail: str
    extra: list[dict[str, Any]] | None = None


def error_response(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


@dataclass
class OptionalBodyOperation(Operation):
    """An operation whose request body may be left out, which Litestar always marks as required."""

    def __post_init__(self) -> None:
        if self.request_body is not None and not isinstance(self.request_body, dict):
            self.request_body.required = False


def complete_openapi(openapi: OpenAPI, settings: Settings) -> None:
    """Complete the generated document, in place: what Litestar cannot declare, or declares in a way
    that generators read wrong. The one step after construction."""
    _complete_error_responses(openapi)
    _complete_parameters(openapi, settings.max_page_size)
    _complete_body_schemas(openapi)
    _complete_body_limits(openapi, settings)
    _complete_event_streams(openapi)
    _complete_export(openapi)


def _operations(openapi: OpenAPI) -> list[tuple[str, str, Operation]]:
    found = []
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
            operation: Operation | None = getattr(item, method)
            if operation is not None:
                found.append((path, method, operation))
    return found


# Litestar's stock descriptions ("Bad request syntax or unsupported method", "Nothing matches the given
# URI") say nothing about the operation; these say what happened.
INVALID_REQUEST = (
    "A parameter, header or body field is not valid (a wrong type, a value out of range, an unknown "
    "field): `detail` names it, and nothing was changed."
)
NOT_FOUND = {
    "session_id": "No session has this id.",
    "message_id": "No reply (an assistant message) has this id.",
}
NOT_FOUND_IN_BODY = "No session has the body's `session_id`."


def _complete_error_responses(openapi: OpenAPI) -> None:
    """- Litestar documents the 400 it adds, and the errors in ``raises=``, with an unnamed inline
      schema whose ``extra`` is "null, object or array": generators (openapi-python-client) cannot
      type that and drop the response. Every error leaves through ``chatstore.api.errors`` as an
      ``ErrorBody``, so each points at that one schema, with a description of what happened.
    - Litestar has ``responses=`` on handlers only, not on routers or controllers: the responses
      every ``/api`` operation shares (401 without the key, 503 while the database is unavailable,
      507 on a full disk for those that write) are added here rather than on each handler. The 401 is
      declared whether or not this instance has keys: the schema is the API's, not one deployment's.
    """
    retry_after = OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER),
        description="Seconds to wait before trying again.",
    )

    def error(description: str, *, retry: bool = False) -> OpenAPIResponse:
        return OpenAPIResponse(
            description=description,
            headers={"Retry-After": retry_after} if retry else None,
            content={"application/json": OpenAPIMediaType(schema=Reference(ref=ERROR_BODY_REF))},
        )

    unauthorized = error(
        "The service has API keys (`CHATSTORE_API_KEY`) or takes user tokens (`CHATSTORE_JWT_*`), and "
        "the `Authorization: Bearer <key or token>` header is missing, or the key or the token is not "
        "valid: `WWW-Authenticate` says why (`error_description`: expired, wrong audience, bad "
        "signature, …)."
    )
    unavailable = error(
        "The database is unavailable (unreachable, out of connections, or its file is gone): "
        "nothing was changed; try again after `Retry-After` seconds.",
        retry=True,
    )
    full = error("The database's disk is full: nothing was stored. Reads still work.", retry=True)
    for path, method, operation in _operations(openapi):
        if operation.responses is None:
            continue
        for status, response in operation.responses.items():
            if not status.isdigit() or int(status) < 400 or not isinstance(response, OpenAPIResponse):
                continue
            media = (response.content or {}).get("application/json")
            if media is not None and not isinstance(media.schema, Reference):
                media.schema = Reference(ref=ERROR_BODY_REF)
            if status == "400" and response.description == "Bad request syntax or unsupported method":
                response.description = INVALID_REQUEST
            if status == "404" and response.description == "Nothing matches the given URI":
                named = [text for name, text in NOT_FOUND.items() if f"{{{name}}}" in path]
                response.description = named[0] if named else NOT_FOUND_IN_BODY
        if not path.startswith("/api/"):
            continue
        # Every API operation takes X-Chatstore-User, so every one can refuse it.
        operation.responses.setdefault("400", error(INVALID_REQUEST))
        operation.responses["401"] = unauthorized
        operation.responses["503"] = unavailable
        if method in _WRITING_METHODS:
            operation.responses["507"] = full


_WRITING_METHODS = ("post", "put", "patch", "delete")


def _complete_parameters(openapi: OpenAPI, max_page_size: int) -> None:
    """The bounds the handlers check, which their ``int | None`` annotations cannot carry: a page size
    is 1 to ``CHATSTORE_MAX_PAGE_SIZE`` and a position is a non-negative integer. ``Last-Event-ID`` is
    declared a string by its annotation (a header is text, parsed by the handler), but only a
    non-negative integer is accepted."""
    bounds = {
        ("query", "limit"): (1, max_page_size),
        ("query", "last_event_id"): (0, None),
        ("header", "Last-Event-ID"): (0, None),
    }
    for _path, _method, operation in _operations(openapi):
        for parameter in operation.parameters or []:
            if not isinstance(parameter, Parameter) or (parameter.param_in, parameter.name) not in bounds:
                continue
            minimum, maximum = bounds[(parameter.param_in, parameter.name)]
            description = parameter.description
            parameter.schema = Schema(
                type=OpenAPIType.INTEGER, minimum=minimum, maximum=maximum, description=description
            )


def _complete_body_schemas(openapi: OpenAPI) -> None:
    """Make the body schemas say what the server does with them.

    - A request body's struct forbids unknown fields: its schema has ``additionalProperties: false``.
    - A request field with a default may be left out. Its ``default`` moves into its description:
      openapi-typescript's default mode makes every property with a ``default`` required, also in a
      request body (the same component may be a response), so a client would have to send it.
    - A response struct is encoded with every field, ``null`` included (unless it omits defaults):
      each property is ``required``, nullable where it may be null, so typed clients need no checks
      for a missing field. A schema that is also a request body keeps the request's optional fields.
    """
    components = (openapi.components.schemas or {}) if openapi.components else {}
    requests: set[str] = set()
    responses: set[str] = set()
    for _path, _method, operation in _operations(openapi):
        body = operation.request_body
        for media in (
            (body.content or {}).values() if body is not None and not isinstance(body, Reference) else []
        ):
            requests |= _referenced(media.schema, components)
        for response in (operation.responses or {}).values():
            if isinstance(response, OpenAPIResponse):
                for media in (response.content or {}).values():
                    responses |= _referenced(media.schema, components)
    for name, schema in components.items():
        struct = getattr(schemas, name, None) or (ErrorBody if name == "ErrorBody" else None)
        config = getattr(struct, "__struct_config__", None)
        if name in requests:
            if config is not None and config.forbid_unknown_fields:
                schema.additional_properties = False
            for field in (schema.properties or {}).values():
                if isinstance(field, Schema) and field.default is not None:
                    default = msgspec.json.encode(field.default).decode()
                    field.description = " ".join(filter(None, [field.description, f"Default: `{default}`."]))
                    field.default = None
        elif name in responses and config is not None and not config.omit_defaults:
            schema.required = sorted(schema.properties or {})


# Text the databases store: PostgreSQL cannot store the NUL character in text (``api.limits`` refuses it).
WITHOUT_NUL = "^[^\\x00]*$"


def _complete_body_limits(openapi: OpenAPI, settings: Settings) -> None:
    """The limits ``chatstore.api.limits`` checks, which are settings (``CHATSTORE_MAX_*``) and so
    cannot be in the structs' annotations: the schema served is the one of this configuration.
    ``metadata``'s limits (bytes of JSON, depth, no NUL anywhere in it) have no JSON Schema form."""
    text_limits = {
        ("SessionCreate", "name"): settings.max_name_length,
        ("SessionUpdate", "name"): settings.max_name_length,
        ("ExportedSession", "name"): settings.max_name_length,
        ("MessageIn", "content"): settings.max_content_length,
        ("ExportedMessage", "content"): settings.max_content_length,
        ("ExportedMessage", "error"): settings.max_content_length,
    }
    components = (openapi.components.schemas or {}) if openapi.components else {}
    for (name, field), max_length in text_limits.items():
        for text in _string_schemas((components[name].properties or {})[field]):
            text.max_length = max_length
            text.pattern = WITHOUT_NUL
    for text in _string_schemas((components["MessageIn"].properties or {})["id"]):
        text.pattern = WITHOUT_NUL
    messages = (components["ChatRequest"].properties or {})["messages"]
    if isinstance(messages, Schema):
        messages.max_items = settings.max_messages_per_request


def _string_schemas(schema: Schema | Reference) -> list[Schema]:
    """``schema`` if it is a string's, or its string branches (``str | None`` is a ``oneOf``)."""
    if not isinstance(schema, Schema):
        return []
    if schema.one_of:
        return [
            branch
            for branch in schema.one_of
            if isinstance(branch, Schema) and branch.type == OpenAPIType.STRING
        ]
    return [schema] if schema.type == OpenAPIType.STRING else []


def _referenced(schema: Any, components: dict[str, Schema]) -> set[str]:
    """The names of the component schemas that ``schema`` refers to, directly or through others."""
    names: set[str] = set()
    pending = [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, Reference):
            name = item.ref.rsplit("/", 1)[-1]
            if name not in names and name in components:
                names.add(name)
                pending.append(components[name])
        elif isinstance(item, Schema):
            pending.extend((item.properties or {}).values())
            pending.extend(item.one_of or [])
            pending.extend(item.any_of or [])
            pending.extend(item.all_of or [])
            if isinstance(item.items, Reference | Schema):
                pending.append(item.items)
    return names


def _complete_event_streams(openapi: OpenAPI) -> None:
    """An event stream, described twice, for the two kinds of reader:

    - decoded, for typed clients: Litestar derives the union of the events from the handler's
      ``ResponseSpec`` (``StreamStart``, …, each with its ``data`` as an object); it becomes the
      component ``ReplyEvent``, with the ``event`` name as discriminator, so generators make it a
      tagged union that a client narrows by the event's name once it has parsed the ``data`` line;
    - on the wire, for tools that read an event stream's schema as the schema of each event (as
      OpenAPI 3.2's ``itemSchema`` does, and schemathesis, which checks every event): the body's
      schema has, for each event, its name and ``id`` and a ``data`` string whose ``contentSchema``
      is the decoded data's. The alternative ``string`` is the body as text, which is what
      generators that would otherwise parse the body as JSON (openapi-python-client) hand over.
    """
    components = openapi.components.schemas if openapi.components else None
    for _path, _method, operation in _operations(openapi):
        for response in (operation.responses or {}).values():
            if not isinstance(response, OpenAPIResponse):
                continue
            media = (response.content or {}).get("text/event-stream")
            if components is None or media is None or not isinstance(media.schema, Schema):
                continue
            events = [ref for ref in media.schema.one_of or [] if isinstance(ref, Reference)]
            if not events:
                continue
            if REPLY_EVENT not in components:
                components[REPLY_EVENT] = Schema(
                    one_of=events,
                    discriminator=Discriminator(
                        property_name="event", mapping={_event_name(ref.ref): ref.ref for ref in events}
                    ),
                    title=REPLY_EVENT,
                    description="One event of a reply's stream, its `data` decoded, by its `event` name.",
                )
            on_the_wire = [_event_on_the_wire(components[ref.ref.rsplit("/", 1)[-1]]) for ref in events]
            media.schema = Schema(
                any_of=[Schema(one_of=on_the_wire), Schema(type=OpenAPIType.STRING)],
                description=f"Server-Sent Events; each, decoded, is a `{REPLY_EVENT}`.",
            )


def _event_on_the_wire(decoded: Schema) -> Schema:
    """An event as sent: its ``data`` is a line of JSON, whose schema is the decoded ``data``'s."""
    properties = dict(decoded.properties or {})
    properties["data"] = Schema(
        type=OpenAPIType.STRING, content_media_type="application/json", content_schema=properties["data"]
    )
    return Schema(type=OpenAPIType.OBJECT, properties=properties, required=decoded.required)


REPLY_EVENT = "ReplyEvent"


def _event_name(ref: str) -> str:
    struct = getattr(schemas, ref.rsplit("/", 1)[-1])
    return str(struct.__struct_config__.tag)


def _complete_export(openapi: OpenAPI) -> None:
    """``GET …/export`` answers JSON or, with ``format=markdown``, a Markdown transcript: a
    ``ResponseSpec`` has one media type, so the second is added here."""
    for _path, _method, operation in _operations(openapi):
        if operation.operation_id != "exportSession" or operation.responses is None:
            continue
        ok = operation.responses["200"]
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.description = (
                "The session with its messages: JSON (`format=json`) or Markdown (`format=markdown`)."
            )
            ok.content["text/markdown"] = OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, description="A readable transcript of the session.")
            )
