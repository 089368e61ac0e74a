"""``/api/messages/{id}``: delete a message and what follows it (its replies have their own routes in
``chat.py``)."""

from uuid import UUID

from litestar import Controller, delete
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from chatstore.api.dependencies import RequestContext
from chatstore.services.messages import delete_message

__all__ = ["MessageController"]


class MessageController(Controller):
    path = "/messages"
    tags = ["messages"]

    @delete(
        "/{message_id:uuid}",
        status_code=204,
        operation_id="deleteMessage",
        summary="Delete a message and everything below it",
        description="Deletes the message and every message that follows it, on every branch below it, in "
        "one transaction (by the foreign key on `parent_id`, in the database). A reply among them that is "
        "still streaming stops, and its stream ends with an `error` event saying it was deleted. If the "
        "session's current branch went through the message, `current_message_id` moves to its parent.",
        raises=[NotFoundException],
    )
    async def delete_message(self, ctx: NamedDependency[RequestContext], message_id: FromPath[UUID]) -> None:
        await delete_message(ctx.db, str(message_id), scope=ctx.scope)
