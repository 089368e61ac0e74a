"""``/api/sessions``: create, list, read, update and delete chat sessions, and page through messages."""

import re
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, JSONBody, QueryParameter

from chatstore.api.dependencies import RequestContext
from chatstore.api.limits import check_metadata, check_session_create, check_session_import, check_text
from chatstore.api.openapi import OptionalBodyOperation, error_response
from chatstore.api.pagination import NEXT_PAGE_HEADERS, page_response, page_size
from chatstore.schemas import (
    ForkRequest,
    MessageRead,
    SessionCreate,
    SessionDetail,
    SessionExport,
    SessionRead,
    SessionUpdate,
)
from chatstore.services import sessions, transfer
from chatstore.services.owners import MAX_USER_ID_LENGTH, USER_ID_PATTERN

Limit = Annotated[
    int | None,
    QueryParameter(
        name="limit",
        description="Page size: 1 to CHATSTORE_MAX_PAGE_SIZE (default CHATSTORE_DEFAULT_PAGE_SIZE).",
    ),
]
Cursor = Annotated[
    str | None,
    QueryParameter(name="cursor", description="Where to continue: the `X-Next-Cursor` of the previous page."),
]
# An operator's filter (a service key without X-Chatstore-User); a user gets 400 for it.
Owner = Annotated[
    str | None,
    QueryParameter(
        name="owner",
        description="Only this user's sessions, among those the caller sees: for an operator (a service "
        "key without `X-Chatstore-User`) that user's; for a user their own, or none if it names another.",
        min_length=1,
        max_length=MAX_USER_ID_LENGTH,
        pattern=USER_ID_PATTERN,
    ),
]

__all__ = ["SessionController"]

# Where a session is read: this controller's path under the ``/api`` router that ``create_app`` mounts.
SESSIONS_URL = "/api/sessions"

LOCATION_HEADER = ResponseHeader(
    name="Location",
    value=SESSIONS_URL + "/{id}",
    description="Where the new session can be read.",
    documentation_only=True,
)
DISPOSITION_HEADER = ResponseHeader(
    name="Content-Disposition",
    value='attachment; filename="chatstore-name-1234abcd.json"',
    description="A download, with a file name made of the session's name and id.",
    documentation_only=True,
)


class SessionController(Controller):
    path = "/sessions"
    tags = ["sessions"]

    @post(
        status_code=201,
        operation_id="createSession",
        summary="Create a session",
        operation_class=OptionalBodyOperation,
        responses={413: error_response("The body is larger than the configured limit.")},
        response_headers=[LOCATION_HEADER],
    )
    async def create_session(
        self,
        ctx: NamedDependency[RequestContext],
        data: Annotated[
            SessionCreate | None,
            Body(
                description="`name` and `metadata` are optional; an empty body creates an unnamed session.",
                examples=[Example(value={"name": "Trip to Lisbon", "metadata": {"topic": "travel"}})],
            ),
        ] = None,
    ) -> Response[SessionRead]:
        data = data or SessionCreate()
        check_session_create(data, ctx.settings)
        session = await sessions.create_session(ctx.db, data, scope=ctx.scope)
        return Response(session, status_code=201, headers={"Location": f"{SESSIONS_URL}/{session.id}"})

    @get(
        operation_id="listSessions",
        summary="List sessions, newest first",
        description="A page of sessions, newest first: by creation (`order=created`, the default) or by "
        "the time of their last message (`order=activity`, the order of a chat sidebar). When there are "
        "more, the `Link` and `X-Next-Cursor` headers lead to the next page. A session that gets a "
        "message while you page by activity moves to the front.",
        response_headers=NEXT_PAGE_HEADERS,
    )
    async def list_sessions(
        self,
        ctx: NamedDependency[RequestContext],
        request: Request[Any, Any, Any],
        limit: Limit = None,
        cursor: Cursor = None,
        owner: Owner = None,
        order: Annotated[
            Literal["created", "activity"],
            QueryParameter(name="order", description="`created` (default) or `activity`."),
        ] = "created",
    ) -> Response[list[SessionRead]]:
        page = await sessions.list_sessions(
            ctx.db,
            scope=ctx.caller.scope_for_listing(owner),
            limit=page_size(limit, ctx.settings),
            cursor=cursor,
            order=order,
        )
        return page_response(page, request)

    @get(
        "/{session_id:uuid}/messages",
        operation_id="listMessages",
        summary="Page through a session's messages",
        description="Messages in `seq` order, of every branch (each with its `parent_id`, enough to "
        "rebuild the tree). `direction=forward` (the default) starts at the first message; "
        "`direction=backward` starts at the newest page, and each next page holds the messages before "
        "it, as a chat view loads them when scrolling up. With `branch` (`current`, or a message id: "
        "the branch through it down to the newest message below it) the pages follow that branch "
        "instead, root first within a page, each message with its `sibling_ids`; `backward` starts at "
        "the branch's end, and costs the same however large the rest of the tree is.",
        raises=[NotFoundException],
        response_headers=NEXT_PAGE_HEADERS,
    )
    async def list_messages(
        self,
        ctx: NamedDependency[RequestContext],
        request: Request[Any, Any, Any],
        session_id: FromPath[UUID],
        limit: Limit = None,
        cursor: Cursor = None,
        direction: Annotated[
            Literal["forward", "backward"],
            QueryParameter(name="direction", description="`forward` (default) or `backward`."),
        ] = "forward",
        branch: Annotated[
            str | None,
            QueryParameter(
                name="branch", description="`current`, or a message id: page along that branch only."
            ),
        ] = None,
    ) -> Response[list[MessageRead]]:
        size = page_size(limit, ctx.settings)
        if branch is not None:
            along = await sessions.list_branch_messages(
                ctx.db,
                str(session_id),
                branch,
                scope=ctx.scope,
                limit=size,
                cursor=cursor,
                direction=direction,
            )
            return page_response(along, request)  # type: ignore[arg-type]
        page = await sessions.list_messages(
            ctx.db, str(session_id), scope=ctx.scope, limit=size, cursor=cursor, direction=direction
        )
        return page_response(page, request)

    @get(
        "/{session_id:uuid}",
        operation_id="getSession",
        summary="Read a session and its current branch",
        description="The session (with `current_message_id`) and the messages of its current branch, "
        "root first, each with its `sibling_ids`. With `message_id`, the branch through that message "
        "instead, down to the newest message below it (400 if it is not a message of the session).",
        raises=[NotFoundException],
    )
    async def get_session(
        self,
        ctx: NamedDependency[RequestContext],
        session_id: FromPath[UUID],
        message_id: Annotated[
            str | None,
            QueryParameter(name="message_id", description="Read the branch through this message instead."),
        ] = None,
    ) -> SessionDetail:
        return await sessions.get_session_detail(ctx.db, str(session_id), message_id, scope=ctx.scope)

    @get(
        "/{session_id:uuid}/export",
        operation_id="exportSession",
        summary="Download a session with its messages",
        description="`format=json` (the default) gives a document that `POST /api/sessions/import` takes "
        "back; `format=markdown` gives a readable transcript (`text/markdown`).",
        raises=[NotFoundException],
        response_headers=[DISPOSITION_HEADER],
    )
    async def export_session(
        self,
        ctx: NamedDependency[RequestContext],
        session_id: FromPath[UUID],
        format: Annotated[
            Literal["json", "markdown"],
            QueryParameter(name="format", description="`json` (default) or `markdown`."),
        ] = "json",
    ) -> Response[SessionExport]:
        export = await transfer.export_session(ctx.db, str(session_id), scope=ctx.scope)
        stem = _file_stem(export.session.name, str(session_id))
        if format == "markdown":
            return Response(
                transfer.to_markdown(export),  # type: ignore[arg-type]
                media_type="text/markdown",
                headers={"Content-Disposition": f'attachment; filename="{stem}.md"'},
            )
        return Response(export, headers={"Content-Disposition": f'attachment; filename="{stem}.json"'})

    @post(
        "/import",
        status_code=201,
        operation_id="importSession",
        summary="Recreate a session from its JSON export",
        description="Takes what `GET /api/sessions/{id}/export?format=json` gave and creates a new session "
        "(new ids) with the same name, metadata, timestamps and messages in the same order. A reply "
        "exported while it streamed comes in as `incomplete`.",
        response_headers=[LOCATION_HEADER],
        responses={413: error_response("The body is larger than the configured limit.")},
    )
    async def import_session(
        self,
        ctx: NamedDependency[RequestContext],
        data: JSONBody[SessionExport],
    ) -> Response[SessionRead]:
        check_session_import(data, ctx.settings)
        session = await transfer.import_session(ctx.db, data, scope=ctx.scope)
        return Response(session, status_code=201, headers={"Location": f"{SESSIONS_URL}/{session.id}"})

    @post(
        "/{session_id:uuid}/fork",
        status_code=201,
        operation_id="forkSession",
        summary="Copy a branch into a new session",
        description="A new session holding a copy of the branch ending at `message_id`: new ids, the same "
        "roles, contents, statuses and times, parents remapped, `seq` 1 to n, the metadata copied, the name "
        "too unless `name` is given, and `forked_from` naming the original session and message. A reply "
        "still streaming there is copied as `incomplete`. 400 if `message_id` is not a message of the "
        "session.",
        raises=[NotFoundException],
        response_headers=[LOCATION_HEADER],
        responses={413: error_response("The body is larger than the configured limit.")},
    )
    async def fork_session(
        self,
        ctx: NamedDependency[RequestContext],
        session_id: FromPath[UUID],
        data: JSONBody[ForkRequest],
    ) -> Response[SessionRead]:
        if isinstance(data.name, str):
            check_text("name", data.name, ctx.settings.max_name_length)
        fork = await transfer.fork_session(
            ctx.db, str(session_id), data.message_id, data.name, scope=ctx.scope
        )
        return Response(fork, status_code=201, headers={"Location": f"{SESSIONS_URL}/{fork.id}"})

    @patch(
        "/{session_id:uuid}",
        operation_id="updateSession",
        summary="Rename a session, update its metadata, or switch branches",
        description="Fields left out stay as they are. `name` replaces the name (`null` clears it). "
        "`metadata` is a JSON Merge Patch (RFC 7396): keys in it are set, a key set to `null` is "
        "removed, nested objects merge, anything else replaces. `current_message_id` switches the "
        "branch the session shows: a message of the session (else 400), and when messages follow it, "
        "the newest of them. `updated_at` moves to now.",
        raises=[NotFoundException],
        responses={413: error_response("The body is larger than the configured limit.")},
    )
    async def update_session(
        self,
        ctx: NamedDependency[RequestContext],
        session_id: FromPath[UUID],
        data: JSONBody[SessionUpdate],
    ) -> SessionRead:
        if isinstance(data.name, str):
            check_text("name", data.name, ctx.settings.max_name_length)
        return await sessions.update_session(
            ctx.db,
            str(session_id),
            data,
            lambda merged: check_metadata("metadata", merged, ctx.settings),
            scope=ctx.scope,
        )

    @delete(
        "/{session_id:uuid}",
        status_code=204,
        operation_id="deleteSession",
        summary="Delete a session and its messages",
        raises=[NotFoundException],
    )
    async def delete_session(self, ctx: NamedDependency[RequestContext], session_id: FromPath[UUID]) -> None:
        await sessions.delete_session(ctx.db, str(session_id), scope=ctx.scope)


def _file_stem(name: str | None, session_id: str) -> str:
    """``chatstore-<name>-<first 8 of the id>``, with only characters safe in any file name."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name or "").strip("-").lower()[:40] or "session"
    return f"chatstore-{slug}-{session_id[:8]}"
