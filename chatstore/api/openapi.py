"""What the OpenAPI schema needs beyond what Litestar derives from the handlers."""

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation

__all__ = ["ErrorBody", "OptionalBodyOperation", "error_response"]


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
