"""``GET /healthz``: for load balancers and orchestrators, open without a key."""

from typing import Literal

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from chatstore.core.db import Database
from chatstore.services.health import database_problem

__all__ = ["Health", "health"]


class Health(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``ok``, or ``unavailable`` with what is wrong in ``detail`` and, when known, ``reason``."""

    status: Literal["ok", "unavailable"]
    detail: str | None = None
    reason: Literal["unreachable", "busy", "disk_full", "file_deleted"] | None = None


@get(
    "/healthz",
    operation_id="getHealth",
    summary="Check that the service and its database answer",
    description='200 `{"status": "ok"}` when the database answers a read and takes a tiny write; '
    '503 `{"status": "unavailable", "detail": …, "reason"?: …}` when not. `reason` is `unreachable`, '
    "`busy` (no connection free), `disk_full` (reads work, writes fail) or `file_deleted` (the SQLite "
    "file was deleted under the running service). Needs no API key.",
    tags=["health"],
    responses={
        HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
            data_container=Health,
            description="The database does not answer, or does not take writes.",
            generate_examples=False,
        )
    },
)
async def health(db: NamedDependency[Database], state: State) -> Response[Health]:
    problem = await database_problem(db, state.lease)
    if problem is None:
        return Response(Health(status="ok"), status_code=HTTP_200_OK, headers={"Cache-Control": "no-store"})
    return Response(
        Health(status="unavailable", detail=problem.detail, reason=problem.reason),  # type: ignore[arg-type]
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Cache-Control": "no-store"},
    )
