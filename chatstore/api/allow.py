"""``OPTIONS`` answers with every method of the path in its ``Allow`` header.

Litestar makes a path's ``OPTIONS`` handler when the path's first handler is registered; when more
handlers join the path, it rebuilds the route but keeps that handler, which still lists the first
route's methods: ``OPTIONS /api/sessions`` said ``OPTIONS, POST`` although ``GET`` is there too. The
routes themselves know all their methods, so the header is rewritten from them.
"""

from collections.abc import Iterable

from litestar.routes import BaseRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CompleteAllowHeader"]


class CompleteAllowHeader:
    """Sets the ``Allow`` header of an ``OPTIONS`` answer (CORS preflights have none and stay as they
    are) to the methods of the route that matched."""

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.allowed = {route.path_format: ", ".join(sorted(route.methods)).encode() for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            allowed = self.allowed.get(scope.get("path_template", ""))  # set once a route matched
            if message["type"] == "http.response.start" and allowed is not None:
                headers = list(message.get("headers", []))
                if any(name.lower() == b"allow" for name, _ in headers):
                    kept = [(name, value) for name, value in headers if name.lower() != b"allow"]
                    message = {**message, "headers": [*kept, (b"allow", allowed)]}
            await send(message)

        await self.app(scope, receive, send_with_allow)
