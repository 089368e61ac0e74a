"""The chat page: ``/`` and its files under ``/static``, shipped inside the package and served as they are."""

from pathlib import Path

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import File

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

# The page's files, by name. A fixed set looked up by name means no part of a request path ever
# reaches the file system: no NUL, "..", or directory can turn into an error that names a path.
PAGE_FILES = {
    "app.js": "text/javascript",
    "api.js": "text/javascript",
    "markdown.js": "text/javascript",
    "style.css": "text/css",
}


@get("/", include_in_schema=False, cache_control=REVALIDATE)
async def chat_page() -> File:
    return File(
        WEB_DIR / "index.html",
        filename="index.html",
        content_disposition_type="inline",
        media_type="text/html",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"},
    )


@get("/static/{name:str}", include_in_schema=False, cache_control=REVALIDATE)
async def page_file(name: FromPath[str]) -> File:
    media_type = PAGE_FILES.get(name)
    if media_type is None:
        raise NotFoundException()
    return File(WEB_DIR / name, filename=name, content_disposition_type="inline", media_type=media_type)


web_router = Router(path="/", route_handlers=[chat_page, page_file])
