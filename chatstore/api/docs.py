"""The interactive API docs under ``/schema``: Swagger UI, served from an installed package.

Nothing is loaded from elsewhere, so the docs work offline, as the page does. Swagger UI's files come
from ``openapi-ui-bundles``; the page that starts it has no inline script or style, so the docs have
the chat page's Content Security Policy (only the server's own files run). Scalar, which
``/schema`` showed before, is in no package that would not bring a web framework of its own, so it
is gone.
"""

from html import escape
from typing import Any

from litestar import Request, Router, get
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath
from litestar.response import File
from openapi_ui_bundles import swagger_ui

from chatstore.api.web import CONTENT_SECURITY_POLICY, REVALIDATE, WEB_DIR

__all__ = ["SwaggerDocs", "docs_router"]

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"

# The docs' files, by name (as for the page: no part of a request path reaches the file system).
ASSETS = {
    "swagger-ui.css": (swagger_ui.static_path / "swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": (swagger_ui.static_path / "swagger-ui-bundle.js", "text/javascript"),
    "favicon-32x32.png": (swagger_ui.static_path / "favicon-32x32.png", "image/png"),
    "docs.js": (WEB_DIR / "docs.js", "text/javascript"),
}


class SwaggerDocs(OpenAPIRenderPlugin):
    """Swagger UI at ``/schema`` and ``/schema/swagger``, reading ``/schema/openapi.json``."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"], favicon="", style="")

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema["info"]["title"]))
        schema_url = escape(self.get_openapi_json_route(request))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API</title>
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<script src="{ASSETS_PATH}/swagger-ui-bundle.js" defer></script>
<script src="{ASSETS_PATH}/docs.js" defer></script>
</head>
<body>
<div id="swagger-ui" data-schema-url="{schema_url}"></div>
</body>
</html>
""".encode()


@get("/assets/{name:str}", include_in_schema=False, cache_control=REVALIDATE)
async def docs_asset(name: FromPath[str]) -> File:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFoundException()
    path, media_type = asset
    return File(path, filename=name, content_disposition_type="inline", media_type=media_type)


def docs_router() -> Router:
    """The router Litestar serves the schema and its docs on, with the docs' own policy."""
    return Router(
        path=SCHEMA_PATH,
        route_handlers=[docs_asset],
        include_in_schema=False,
        response_headers=[
            ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
            ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
        ],
    )
