"""Access control: with ``CHATSTORE_API_KEY`` set, an ``/api`` request needs ``Authorization: Bearer <key>``.

The page at ``/``, its static files, ``/healthz`` and the schema under ``/schema`` stay open: they hold
no data, and a browser must load the page before it can ask for the key.
"""

import hmac
from collections.abc import Sequence
from typing import Any

from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    Reference,
    SecurityRequirement,
    SecurityScheme,
)
from litestar.types import Guard

from chatstore.api.openapi import ERROR_BODY_REF

__all__ = ["BEARER_SCHEME", "api_key_guard", "cors_config", "document_api_key", "is_api_path"]

BEARER_SCHEME = "bearer"

MISSING_KEY = "this API needs a key: send the header `Authorization: Bearer <key>`"
WRONG_KEY = "the API key is not valid"


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def api_key_guard(keys: Sequence[str]) -> Guard:
    """A guard that lets an ``/api`` request through only with one of ``keys`` as its bearer token."""
    encoded_keys = [key.encode() for key in keys]

    def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        # The route's template, not the raw path: whatever spelling of a path reached an /api handler.
        if not is_api_path(connection.scope.get("path_template", connection.scope["path"])):
            return
        scheme, _separator, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException(
                MISSING_KEY, headers={"WWW-Authenticate": 'Bearer realm="chatstore"'}
            )
        presented = token.strip().encode()
        # Compare with every key, without stopping at a match: the time taken says nothing about
        # which key, or how much of one, was right.
        matched = False
        for key in encoded_keys:
            matched |= hmac.compare_digest(presented, key)
        if not matched:
            raise NotAuthorizedException(
                WRONG_KEY, headers={"WWW-Authenticate": 'Bearer realm="chatstore", error="invalid_token"'}
            )

    return require_api_key


def document_api_key(openapi: OpenAPI, *, required: bool) -> None:
    """Declare the bearer scheme, and on each ``/api`` operation whether it needs the key and its 401.

    Litestar has no layered ``responses``, so this completes the generated document once, in place.
    """
    components = openapi.components if isinstance(openapi.components, Components) else Components()
    openapi.components = components
    components.security_schemes = {
        **(components.security_schemes or {}),
        BEARER_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            description="One of the keys in `CHATSTORE_API_KEY`, when the service is configured with any.",
        ),
    }
    # An empty requirement makes the key optional: the service runs open without CHATSTORE_API_KEY.
    security: list[SecurityRequirement] = [{BEARER_SCHEME: []}] if required else [{}, {BEARER_SCHEME: []}]
    unauthorized = OpenAPIResponse(
        description="The `Authorization: Bearer <key>` header is missing, or the key is not valid.",
        content={"application/json": OpenAPIMediaType(schema=Reference(ref=ERROR_BODY_REF))},
    )
    for path, item in (openapi.paths or {}).items():
        if not is_api_path(path):
            continue
        for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
            operation = getattr(item, method)
            if operation is None:
                continue
            operation.security = security
            if required and operation.responses is not None:
                operation.responses["401"] = unauthorized


def cors_config(origins: Sequence[str]) -> CORSConfig | None:
    """Let pages on ``origins`` call the API, the chat stream included; ``None`` (no CORS) without any."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        expose_headers=["Location", "Link", "X-Next-Cursor", "Content-Disposition"],
        # The key travels in a header, never in a cookie: no credentials mode needed.
        allow_credentials=False,
        max_age=600,
    )
