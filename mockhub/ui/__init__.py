"""The web UI: static files shipped in this package, served at `GET /ui` (docs/ui.md).

No build step: index.html, app.js and style.css are read once at startup and served with a strict
Content-Security-Policy. Only app.js runs; call data is rendered as text, and an email's HTML only
inside a sandboxed iframe that may load nothing.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import Response

__all__ = ["ASSETS", "CSP", "load_assets", "ui_router"]

# name -> content type: the whole UI. Anything else under /ui is a 404.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# Scripts only from app.js. Inline styles are allowed because an email's HTML (rendered in a srcdoc
# iframe, which inherits this policy) is styled inline; the iframe adds its own policy that loads nothing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}


def load_assets() -> dict[str, bytes]:
    """The UI's files, read from the installed package."""
    root = files(__name__)
    return {name: root.joinpath(name).read_bytes() for name in ASSETS}


def ui_router() -> APIRouter:
    """`GET /ui` (the page) and `GET /ui/{file}` (its script and style sheet)."""
    assets = load_assets()
    router = APIRouter(include_in_schema=False)

    def serve(name: str) -> Response:
        if name not in assets:
            raise HTTPException(404, f"no UI file {name}")
        return Response(assets[name], media_type=ASSETS[name], headers=_HEADERS)

    @router.get("/ui")
    @router.get("/ui/")
    async def page() -> Response:
        return serve("index.html")

    @router.get("/ui/{name}")
    async def asset(name: str) -> Response:
        return serve(name)

    return router
