"""``/api/sessions``: create, list, read and delete chat sessions."""

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath

from chatstore.api.limits import check_session_create
from chatstore.api.openapi import OptionalBodyOperation, error_response
from chatstore.core.db import Database
from chatstore.core.settings import Settings
from chatstore.schemas import SessionCreate, SessionDetail, SessionRead
from chatstore.services import sessions

__all__ = ["SessionController"]


class SessionController(Controller):
    path = "/api/sessions"
    tags = ["sessions"]

    @post(
        status_code=201,
        operation_id="createSession",
        summary="Create a session",
        operation_class=OptionalBodyOperation,
        responses={413: error_response("The body is larger than the configured limit.")},
        response_headers=[
            ResponseHeader(
                name="Location",
                value="/api/sessions/{id}",
                description="Where the new session can be read.",
                documentation_only=True,
            )
        ],
    )
    async def create_session(
        self,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        data: Annotated[
            SessionCreate | None,
            Body(
                description="`name` and `metadata` are optional; an empty body creates an unnamed session.",
                examples=[Example(value={"name": "Trip to Lisbon", "metadata": {"topic": "travel"}})],
            ),
        ] = None,
    ) -> Response[SessionRead]:
        data = data or SessionCreate()
        check_session_create(data, settings)
        session = await sessions.create_session(db, data)
        return Response(session, status_code=201, headers={"Location": f"{self.path}/{session.id}"})

    @get(operation_id="listSessions", summary="List sessions, newest first")
    async def list_sessions(self, db: NamedDependency[Database]) -> list[SessionRead]:
        return await sessions.list_sessions(db)

    @get(
        "/{session_id:str}",
        operation_id="getSession",
        summary="Read a session and its messages",
        raises=[NotFoundException],
    )
    async def get_session(self, db: NamedDependency[Database], session_id: FromPath[str]) -> SessionDetail:
        return await sessions.get_session_detail(db, session_id)

    @delete(
        "/{session_id:str}",
        status_code=204,
        operation_id="deleteSession",
        summary="Delete a session and its messages",
        raises=[NotFoundException],
    )
    async def delete_session(self, db: NamedDependency[Database], session_id: FromPath[str]) -> None:
        await sessions.delete_session(db, session_id)
