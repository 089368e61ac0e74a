"""Every error leaves as JSON ``{"status_code", "detail", "extra"?}``; a 400's detail names the field."""

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import ClientException, NotFoundException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
    HTTP_507_INSUFFICIENT_STORAGE,
)

from chatstore.core.db import DatabaseUnavailable, DiskFull
from chatstore.services.errors import (
    InvalidInput,
    InvalidToken,
    KeysUnavailable,
    MessageNotFound,
    NothingToRegenerate,
    ReplyNotFound,
    SessionNotFound,
)

__all__ = ["exception_handlers"]

logger = logging.getLogger("chatstore.api")

# How long a client should wait before sending a token again while the JWKS cannot be fetched.
KEYS_RETRY_AFTER_S = 5
_MISSING_PARAMETER = re.compile(r"Missing required \w+ parameter '(?P<name>[^']+)'")


def _error(
    status_code: int,
    detail: str,
    extra: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body: dict[str, Any] = {"status_code": status_code, "detail": detail}
    if extra:
        body["extra"] = extra
    return Response(body, status_code=status_code, media_type=MediaType.JSON, headers=headers)


def not_found(
    _: Request[Any, Any, Any], exc: SessionNotFound | ReplyNotFound | MessageNotFound
) -> Response[Any]:
    return _error(HTTP_404_NOT_FOUND, str(exc))


# What the first segment after /api/ names, for a malformed id in a typed path parameter.
_ID_IN_PATH = {"sessions": SessionNotFound, "messages": ReplyNotFound}


def route_not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
    """404 for a path no route takes. Litestar answers an id that fails its ``{…:uuid}`` parameter
    so too, before any handler runs; that 404 names the session or reply, like an unknown id's."""
    segments = request.scope["path"].split("/")
    # The parser's ValueError; Litestar's own "no such route" is a NotFoundException (a ValueError too).
    failed_type = isinstance(exc.__cause__, ValueError) and not isinstance(exc.__cause__, NotFoundException)
    if failed_type and len(segments) > 3 and segments[1] == "api":
        not_found_error = _ID_IN_PATH.get(segments[2])
        if not_found_error is not None:
            return not_found(request, not_found_error(segments[3]))
    return client_error(request, exc)


def conflict(_: Request[Any, Any, Any], exc: NothingToRegenerate) -> Response[Any]:
    return _error(HTTP_409_CONFLICT, str(exc))


def invalid_input(_: Request[Any, Any, Any], exc: InvalidInput) -> Response[Any]:
    return _error(
        HTTP_400_BAD_REQUEST, str(exc), [{"key": exc.field, "message": exc.message, "source": exc.source}]
    )


def client_error(_: Request[Any, Any, Any], exc: ClientException) -> Response[Any]:
    """Litestar's decoding errors keep the field only in ``extra``; a 400 names it in ``detail`` too."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    if exc.status_code != HTTP_400_BAD_REQUEST:
        # The exception's headers matter here: WWW-Authenticate on a 401, Allow on a 405.
        return _error(exc.status_code, exc.detail, extra or None, exc.headers)
    problems = [_describe(item) for item in extra if isinstance(item, dict)]
    missing = _MISSING_PARAMETER.match(exc.detail)
    if missing:  # Litestar names a missing query parameter only in its message
        problems = [f"{missing['name']}: {exc.detail}"]
    detail = "; ".join(problems) if problems else f"body: {exc.detail}"
    return _error(HTTP_400_BAD_REQUEST, detail, extra or None)


def _describe(item: dict[str, Any]) -> str:
    key, message = item.get("key"), str(item.get("message", "invalid value"))
    if key in (None, "", "data", "body"):
        key = "body"
    return f"{key}: {message}"


def undecodable_body(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    # Litestar lets this one through from its JSON decoder instead of making it a 400.
    return _error(HTTP_400_BAD_REQUEST, f"body: not valid UTF-8 ({exc.reason} at byte {exc.start})")


def database_unavailable(_: Request[Any, Any, Any], exc: DatabaseUnavailable) -> Response[Any]:
    """503 while the database is away, 507 when its disk is full; the database layer logs the cause."""
    status = HTTP_507_INSUFFICIENT_STORAGE if isinstance(exc, DiskFull) else HTTP_503_SERVICE_UNAVAILABLE
    return _error(status, str(exc), headers={"Retry-After": str(exc.retry_after_s)})


def invalid_token(_: Request[Any, Any, Any], exc: InvalidToken) -> Response[Any]:
    """401 naming the reason in the detail and in ``WWW-Authenticate`` (RFC 6750 section 3)."""
    challenge = f'Bearer realm="chatstore", error="invalid_token", error_description="{exc.reason}"'
    return _error(
        HTTP_401_UNAUTHORIZED,
        f"the token is not valid: {exc.reason}",
        headers={"WWW-Authenticate": challenge},
    )


def keys_unavailable(_: Request[Any, Any, Any], exc: KeysUnavailable) -> Response[Any]:
    return _error(HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": str(KEYS_RETRY_AFTER_S)})


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The path is the client's: %r escapes newlines and control characters, so it cannot forge a line.
    logger.error("unhandled error on %s %r", request.method, request.url.path, exc_info=exc)
    return _error(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error")


exception_handlers: dict[Any, Any] = {
    SessionNotFound: not_found,
    ReplyNotFound: not_found,
    MessageNotFound: not_found,
    NotFoundException: route_not_found,
    NothingToRegenerate: conflict,
    InvalidInput: invalid_input,
    ClientException: client_error,
    UnicodeDecodeError: undecodable_body,
    DatabaseUnavailable: database_unavailable,
    InvalidToken: invalid_token,
    KeysUnavailable: keys_unavailable,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error,
}
