"""Paged responses: the page size a request may ask for, and the headers that lead to the next page."""

from typing import Any, TypeVar
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.datastructures import ResponseHeader

from chatstore.core.settings import Settings
from chatstore.services.errors import InvalidInput
from chatstore.services.sessions import Page

__all__ = ["NEXT_PAGE_HEADERS", "next_page_headers", "page_response", "page_size"]

T = TypeVar("T")

NEXT_PAGE_HEADERS = [
    ResponseHeader(
        name="Link",
        value='</api/…?cursor=…>; rel="next"',
        description="The URL of the next page, when there is one.",
        documentation_only=True,
    ),
    ResponseHeader(
        name="X-Next-Cursor",
        value="opaque",
        description="The `cursor` value that asks for the next page, when there is one.",
        documentation_only=True,
    ),
]


def page_size(limit: int | None, settings: Settings) -> int:
    if limit is None:
        return settings.default_page_size
    if not 1 <= limit <= settings.max_page_size:
        raise InvalidInput(
            "limit", f"must be between 1 and {settings.max_page_size}, got {limit}", source="query"
        )
    return limit


def next_page_headers(next_cursor: str | None, request: Request[Any, Any, Any]) -> dict[str, str]:
    """``Link: <…>; rel="next"`` and ``X-Next-Cursor``: this request again, at the next cursor."""
    if next_cursor is None:
        return {}
    query = {key: value for key, value in request.query_params.items() if key != "cursor"}
    query["cursor"] = next_cursor
    return {"Link": f'<{request.url.path}?{urlencode(query)}>; rel="next"', "X-Next-Cursor": next_cursor}


def page_response(page: Page[T], request: Request[Any, Any, Any]) -> Response[list[T]]:
    return Response(page.items, headers=next_page_headers(page.next_cursor, request))
