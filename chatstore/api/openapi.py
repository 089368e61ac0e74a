"""What the OpenAPI schema needs beyond what Litestar derives from the handlers."""

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

__all__ = [
    "ERROR_BODY_REF",
    "ErrorBody",
    "OptionalBodyOperation",
    "complete_error_responses",
    "error_response",
]

ERROR_BODY_REF = "#/components/schemas/ErrorBody"


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error response: the status, a readable detail, and for a 400 the offending fields."""

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


def complete_error_responses(openapi: OpenAPI, *, api_key_required: bool) -> None:
    """Complete the error responses of the generated document, in place: the one step after
    construction, because Litestar cannot declare either part.

    - Litestar documents the 400 it adds, and the errors in ``raises=``, with an unnamed inline
      schema whose ``extra`` is "null, object or array": generators (openapi-python-client) cannot
      type that and drop the response. Every error leaves through ``chatstore.api.errors`` as an
      ``ErrorBody``, so each points at that one schema.
    - Litestar has ``responses=`` on handlers only, not on routers or controllers: the responses
      every ``/api`` operation shares (401 without the key, 503 while the database is unavailable,
      507 on a full disk for those that write) are added here rather than on each handler.
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

    unauthorized = error("The `Authorization: Bearer <key>` header is missing, or the key is not valid.")
    unavailable = error(
        "The database is unavailable (unreachable, out of connections, or its file is gone): "
        "nothing was changed; try again after `Retry-After` seconds.",
        retry=True,
    )
    full = error("The database's disk is full: nothing was stored. Reads still work.", retry=True)
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
            operation: Operation | None = getattr(item, method)
            if operation is None or operation.responses is None:
                continue
            for status, response in operation.responses.items():
                if not status.isdigit() or int(status) < 400 or not isinstance(response, OpenAPIResponse):
                    continue
                media = (response.content or {}).get("application/json")
                if media is not None and not isinstance(media.schema, Reference):
                    media.schema = Reference(ref=ERROR_BODY_REF)
            if not path.startswith("/api/"):
                continue
            operation.responses["503"] = unavailable
            if method in _WRITING_METHODS:
                operation.responses["507"] = full
            if api_key_required:
                operation.responses["401"] = unauthorized


_WRITING_METHODS = ("post", "put", "patch", "delete")
