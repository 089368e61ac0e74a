"""The chat page: ``/`` and its files under ``/static``, shipped inside the package and served as they are."""

from pathlib import Path

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.response import File
from litestar.static_files import create_static_files_router

__all__ = ["WEB_DIR", "web_router"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# The page runs only its own script and style files, so even HTML that reached the DOM from a message
# could run nothing; the page itself never inserts message text as HTML.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# Browsers check for a newer file on every load (cheap, with the ETag), so an upgrade shows at once.
REVALIDATE = CacheControlHeader(no_cache=True)


@get("/", include_in_schema=False, cache_control=REVALIDATE)
async def chat_page() -> File:
    return File(
        WEB_DIR / "index.html",
        filename="index.html",
        content_disposition_type="inline",
        media_type="text/html",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"},
    )


web_router = Router(
    path="/",
    route_handlers=[
        chat_page,
        create_static_files_router(
            path="/static",
            directories=[WEB_DIR],
            name="web",
            cache_control=REVALIDATE,
            include_in_schema=False,
        ),
    ],
)
