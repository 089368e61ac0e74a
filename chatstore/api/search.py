"""``/api/search``: find messages by their words, across all sessions."""

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from chatstore.api.dependencies import RequestContext
from chatstore.api.openapi import error_response
from chatstore.api.pagination import NEXT_PAGE_HEADERS, next_page_headers, page_size
from chatstore.schemas import SearchPage
from chatstore.services import search
from chatstore.services.owners import MAX_USER_ID_LENGTH, USER_ID_PATTERN
from chatstore.services.search import MAX_QUERY_LENGTH, MAX_QUERY_TERMS

__all__ = ["SearchController"]

QUERY_DESCRIPTION = f"""What to look for, at most {MAX_QUERY_LENGTH} characters and {MAX_QUERY_TERMS} words.
Every word must appear (case and accents do not matter: `cafe` finds `café`); `"quoted words"` must
appear together in that order; `or` between words accepts either side; `-word` excludes. Anything
else (other punctuation, emoji) separates words. A query with no letter or digit to look for gets 400."""

SEARCH_DESCRIPTION = """Messages of the caller's sessions (a user's own; an operator's: every session, or
one owner's with `owner`) whose text matches `q`, best match first, with a
snippet of the text around the matching words. The snippet is HTML: the text is escaped and the
matching words are wrapped in `<mark>`…`</mark>`, so it can be inserted into a page as it is.
When there are more hits, `next_cursor` (also in the `Link` and `X-Next-Cursor` headers) asks for
the next page; paging never repeats or skips a hit, even while messages are being added."""


class SearchController(Controller):
    path = "/search"
    tags = ["search"]

    @get(
        operation_id="searchMessages",
        summary="Search messages",
        description=SEARCH_DESCRIPTION,
        response_headers=NEXT_PAGE_HEADERS,
        responses={
            400: error_response("`q`, `limit` or `cursor` is missing or not valid; `detail` names which.")
        },
    )
    async def search_messages(
        self,
        ctx: NamedDependency[RequestContext],
        request: Request[Any, Any, Any],
        q: Annotated[str, QueryParameter(name="q", description=QUERY_DESCRIPTION)],
        limit: Annotated[
            int | None,
            QueryParameter(
                name="limit",
                description="Hits per page: 1 to CHATSTORE_MAX_PAGE_SIZE "
                "(default CHATSTORE_DEFAULT_PAGE_SIZE).",
            ),
        ] = None,
        cursor: Annotated[
            str | None,
            QueryParameter(
                name="cursor", description="Where to continue: the `next_cursor` of the previous page."
            ),
        ] = None,
        owner: Annotated[
            str | None,
            QueryParameter(
                name="owner",
                description="Only this user's messages, among those the caller sees: for an operator (a "
                "service key without `X-Chatstore-User`) that user's; for a user their own, or none.",
                min_length=1,
                max_length=MAX_USER_ID_LENGTH,
                pattern=USER_ID_PATTERN,
            ),
        ] = None,
    ) -> Response[SearchPage]:
        page = await search.search(
            ctx.db,
            q,
            scope=ctx.caller.scope_for_listing(owner),
            limit=page_size(limit, ctx.settings),
            cursor=cursor,
        )
        return Response(page, headers=next_page_headers(page.next_cursor, request))
