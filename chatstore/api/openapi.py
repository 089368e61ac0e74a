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
    "document_database_errors",
    "error_response",
    "name_error_bodies",
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


def name_error_bodies(openapi: OpenAPI) -> None:
    """Point every error response at the one ``ErrorBody`` schema, in place.

    Litestar documents the 400 it adds, and the errors in ``raises=``, with an unnamed inline schema
    whose ``extra`` is "null, object or array": generators (openapi-python-client) cannot type that
    and drop the response. Every error leaves through ``chatstore.api.errors`` as an ``ErrorBody``.
    """
    for item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
            operation: Operation | None = getattr(item, method)
            for status, response in ((operation and operation.responses) or {}).items():
                if not status.isdigit() or int(status) < 400 or not isinstance(response, OpenAPIResponse):
                    continue
                media = (response.content or {}).get("application/json")
                if media is not None and not isinstance(media.schema, Reference):
                    media.schema = Reference(ref=ERROR_BODY_REF)


_WRITING_METHODS = ("post", "put", "patch", "delete")


def document_database_errors(openapi: OpenAPI) -> None:
    """Add to every ``/api`` operation the 503 it gets while the database is unavailable, and to
    those that write the 507 of a full disk, in place (Litestar has no layered ``responses``)."""
    retry_after = OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER),
        description="Seconds to wait before trying again.",
    )

    def refusal(description: str) -> OpenAPIResponse:
        return OpenAPIResponse(
            description=description,
            headers={"Retry-After": retry_after},
            content={"application/json": OpenAPIMediaType(schema=Reference(ref=ERROR_BODY_REF))},
        )

    unavailable = refusal(
        "The database is unavailable (unreachable, out of connections, or its file is gone): "
        "nothing was changed; try again after `Retry-After` seconds."
    )
    full = refusal("The database's disk is full: nothing was stored. Reads still work.")
    for path, item in (openapi.paths or {}).items():
        if not path.startswith("/api/"):
            continue
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(item, method)
            if operation is None or operation.responses is None:
                continue
            operation.responses["503"] = unavailable
            if method in _WRITING_METHODS:
                operation.responses["507"] = full
