"""The application: ``create_app()`` assembles it; ``python -m chatstore`` serves it through that factory.

``chatstore.app:app`` is still there for ``uvicorn chatstore.app:app``: it is built on first access,
so that importing this module reads no environment.
"""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components

from chatstore import __version__
from chatstore.api import ChatController, MessageController, SessionController, UIChatController
from chatstore.api.access_log import AccessLog
from chatstore.api.allow import CompleteAllowHeader
from chatstore.api.auth import api_security, cors_config, security_schemes
from chatstore.api.callers import USER_PARAMETER, caller_guard
from chatstore.api.dependencies import provide_context, provide_db
from chatstore.api.docs import SCHEMA_PATH, SwaggerDocs, docs_router
from chatstore.api.errors import exception_handlers
from chatstore.api.health import health
from chatstore.api.limits import StrictJSONRequest, strict_query_integers
from chatstore.api.openapi import complete_openapi
from chatstore.api.request_limits import RequestLimits
from chatstore.api.search import SearchController
from chatstore.api.web import web_router
from chatstore.core.db import open_database
from chatstore.core.logs import write_out_queued_logs
from chatstore.core.settings import Settings
from chatstore.services.replies import Replies
from chatstore.services.responders import MockResponder, Responder
from chatstore.services.tokens import TokenVerifier
from chatstore.services.upstream import OpenAIResponder
from chatstore.services.workers import WorkerLease

__all__ = ["app", "create_app"]

app: Litestar  # built by the module's ``__getattr__`` on first access


def _make_responder(settings: Settings) -> Responder:
    """The responder ``CHATSTORE_RESPONDER`` names."""
    if settings.responder == "openai":
        return OpenAIResponder(settings)
    return MockResponder(settings.mock_delay_ms)


def create_app(settings: Settings | None = None, *, responder: Responder | None = None) -> Litestar:
    """Build the app. Nothing connects until the lifespan starts; ``responder`` overrides the setting."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = await open_database(settings)
        lease = WorkerLease(db, settings.worker_lease_s, settings.heartbeat_interval_s)
        # A responder passed in is the caller's to close; one made here is closed here.
        own_responder = _make_responder(settings) if responder is None else None
        try:
            await lease.start()
            app.state.db = db
            app.state.lease = lease
            app.state.replies = Replies(
                db=db,
                responder=responder or own_responder,
                worker_id=lease.id,
                progress_interval_s=settings.progress_interval_ms / 1000,
                poll_interval_s=settings.progress_interval_ms / 1000,
            )
            await app.state.replies.start()
            # What start-up made (modules, routes, schemas: over 100,000 objects) lives as long as the
            # process, and is no garbage. Left to the collector, each full collection walks all of it,
            # which takes longer than reading a 10,000-message session, and such a read allocates
            # enough to set one off every few requests. Frozen, it is skipped.
            gc.freeze()
            yield
        finally:
            gc.unfreeze()  # the collector's again: a process that makes many apps (tests) frees them
            if "replies" in app.state:
                await app.state.replies.close()
            await lease.stop()
            if own_responder is not None:
                await own_responder.aclose()
            await db.close()
            write_out_queued_logs()  # the process may end right after, without atexit hooks

    # The API, behind the keys and tokens when there are any; the page, its files and /healthz stay
    # open. The guard resolves every API request's caller, in open mode too.
    verifier = TokenVerifier(settings) if settings.tokens_enabled else None
    api = Router(
        path="/api",
        route_handlers=[
            SessionController,
            ChatController,
            MessageController,
            SearchController,
            UIChatController,
        ],
        guards=[caller_guard(settings, verifier)],
        security=api_security(required=bool(settings.api_keys) or verifier is not None),
        dependencies={"ctx": Provide(provide_context, sync_to_thread=False)},
        parameters={"chatstore_user": USER_PARAMETER},
        before_request=strict_query_integers,
    )
    application = Litestar(
        route_handlers=[api, web_router, health],
        lifespan=[lifespan],
        state=State({"settings": settings}),
        dependencies={"db": Provide(provide_db, sync_to_thread=False)},  # for /healthz
        exception_handlers=exception_handlers,
        request_class=StrictJSONRequest,
        request_max_body_size=settings.max_request_body_bytes,
        cors_config=cors_config(settings.cors_origin_list),
        openapi_config=OpenAPIConfig(
            title="chatstore",
            version=__version__,
            description="Chat sessions and their messages, with replies streamed as Server-Sent Events.",
            path=SCHEMA_PATH,
            # Swagger UI from an installed package, so that the docs work offline.
            render_plugins=[SwaggerDocs()],
            openapi_router=docs_router(),
            components=Components(security_schemes=security_schemes()),
        ),
        logging_config=LoggingConfig(
            loggers={
                "chatstore": {"level": settings.log_level.upper(), "propagate": True},
                # chatstore logs what an upgrade did in one line; Alembic's own lines add nothing.
                "alembic": {"level": "WARNING", "propagate": True},
            },
        ),
    )
    complete_openapi(application.openapi_schema, settings)
    # Around Litestar's own handler, not in ``middleware=``: Litestar runs its middleware only once a
    # route has matched, inside its CORS handling, so requests no route matches (404, 405) and CORS
    # preflights would go unlogged and unlimited. The access log is outermost, so that it also logs
    # what the limits refuse.
    application.asgi_handler = AccessLog(
        RequestLimits(
            CompleteAllowHeader(application.asgi_handler, application.routes),
            max_requests=settings.max_connections,
        )
    )
    return application


def __getattr__(name: str) -> Litestar:
    """``app``: an app from the environment's settings, built on first access and kept."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    application = create_app()
    globals()["app"] = application
    return application
