"""The pages the gateway serves, each with the headers that say who may frame it: the desk
(never framed), the widget (framed by its library's sites), the loader script a library's
pages include, the demo page; and their scripts, styles and images under /static."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from services.gateway import domain
from services.gateway.api.common import Gw

STATIC = Path(__file__).parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/operator")


@router.get("/operator", include_in_schema=False)
async def operator_page() -> FileResponse:
    # Staff pages are never framed (clickjacking).
    headers = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}
    return FileResponse(STATIC / "operator.html", media_type="text/html", headers=headers)


@router.get("/widget", include_in_schema=False)
async def widget_page(gw: Gw, widget: str = "") -> FileResponse:
    # Framed only by the sites the widget is for.
    found = gw.view.widget(widget)
    policy = domain.frame_ancestors(found)
    headers = {"Content-Security-Policy": policy}
    return FileResponse(STATIC / "widget.html", media_type="text/html", headers=headers)


@router.get("/widget.js", include_in_schema=False)
async def widget_loader() -> FileResponse:
    """The one script a library's pages load; cached for an hour by browsers."""
    headers = {"Cache-Control": "public, max-age=3600"}
    return FileResponse(STATIC / "widget.js", media_type="text/javascript", headers=headers)


@router.get("/demo", include_in_schema=False)
async def demo_page() -> FileResponse:
    return FileResponse(STATIC / "demo.html", media_type="text/html")


class Assets(StaticFiles):
    """The pages' scripts, styles and images. The pages themselves are served only at
    their own addresses (/operator, /widget, /demo), each with the headers that say who
    may frame it: under /static they would go without, and any site could frame the desk
    or a widget."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        # `path` is already normalised (`operator.html/`, `./operator.html` arrive here as
        # `operator.html`).
        if path.lower().endswith((".html", ".htm")):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def assets() -> Assets:
    return Assets(directory=STATIC)
