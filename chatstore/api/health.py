"""``GET /healthz``: for load balancers and orchestrators, open without a key."""

from typing import Literal

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from chatstore.core.db import Database
from chatstore.services.health import database_answers

__all__ = ["Health", "health"]


class Health(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``ok``, or ``unavailable`` with what is wrong in ``detail``."""

    status: Literal["ok", "unavailable"]
    detail: str | None = None


@get(
    "/healthz",
    operation_id="getHealth",
    summary="Check that the service and its database answer",
    description='200 `{"status": "ok"}` when the database answers a read; 503 '
    '`{"status": "unavailable", "detail": …}` when it does not. Needs no API key.',
    tags=["health"],
    responses={
        HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
            data_container=Health, description="The database does not answer.", generate_examples=False
        )
    },
)
async def health(db: NamedDependency[Database]) -> Response[Health]:
    if await database_answers(db):
        return Response(Health(status="ok"), status_code=HTTP_200_OK, headers={"Cache-Control": "no-store"})
    return Response(
        Health(status="unavailable", detail="the database does not answer"),
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Cache-Control": "no-store"},
    )
