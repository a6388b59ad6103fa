"""The API reference pages, /docs (Swagger UI) and /redoc (ReDoc), served entirely from this
server: no script, style or font is fetched from another host, so they work offline."""

from __future__ import annotations

from importlib import resources
from importlib.metadata import version
from importlib.resources.abc import Traversable

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response

from crm import __version__
from crm.errors import RouteNotFound

STATIC_PREFIX = "/docs/static"
# The bundles change only with the installed package, and their URLs carry its version, so a
# browser may keep them; the pages themselves are small and stay uncached.
_LONG_CACHE = "public, max-age=31536000, immutable"

# The pages run only scripts from this server (Swagger UI's start-up code is a static file, not
# inline) and may talk only to it. Inline styles are allowed because both bundles set element
# styles at run time; ReDoc renders in a worker it creates from a blob.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_PAGE_HEADERS = {"content-security-policy": _CSP, "referrer-policy": "no-referrer"}

# Swagger UI's start-up, as a file so the policy above needs no 'unsafe-inline' for scripts.
_SWAGGER_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    displayOperationId: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});
"""

_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}


def _bundled() -> Traversable:
    # Swagger UI (Apache-2.0) and ReDoc (MIT), as shipped by the fastapi-offline package.
    return resources.files("fastapi_offline") / "static"


def _asset_version() -> str:
    """A tag for the asset URLs that changes when crm or the installed bundles change."""
    return f"{__version__}-{version('fastapi-offline')}"


def _swagger_page(title: str, openapi_url: str, static: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{static}/favicon.png">
<link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body data-openapi="{openapi_url}">
<div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-init.js"></script>
</body>
</html>
"""


def _redoc_page(title: str, openapi_url: str, static: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - ReDoc</title>
<link rel="icon" type="image/png" href="{static}/favicon.png">
</head>
<body>
<redoc spec-url="{openapi_url}"></redoc>
<script src="{static}/redoc.standalone.js"></script>
</body>
</html>
"""


def install(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Add /docs, /redoc and their static files; left out of the OpenAPI document itself."""
    router = APIRouter(include_in_schema=False)
    tag = _asset_version()
    static = f"{STATIC_PREFIX}/{tag}"
    assets = _read_assets()
    swagger = _swagger_page(app.title, openapi_url, static)
    redoc = _redoc_page(app.title, openapi_url, static)

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger, headers=_PAGE_HEADERS)

    @router.get("/redoc")
    async def redoc_ui() -> HTMLResponse:
        return HTMLResponse(redoc, headers=_PAGE_HEADERS)

    @router.get(STATIC_PREFIX + "/{version}/{name}")
    async def asset(version: str, name: str) -> Response:
        if version != tag:
            # A version from an earlier install is answered like any unknown path.
            raise RouteNotFound()
        if name == "swagger-init.js":
            body = _SWAGGER_INIT.encode()
            media_type = "text/javascript; charset=utf-8"
        elif name in _TYPES:
            # Only the four known names are ever served: no path from the request reaches
            # the filesystem, and the files were read at start-up, not in the event loop.
            body = assets[name]
            media_type = _TYPES[name]
        else:
            raise RouteNotFound()
        return Response(body, media_type=media_type, headers={"cache-control": _LONG_CACHE})

    app.include_router(router)


_CACHE: dict[str, bytes] = {}


def _read_assets() -> dict[str, bytes]:
    """The bundled files, read once per process (a few MB) when the first app is built."""
    if not _CACHE:
        _CACHE.update({name: (_bundled() / name).read_bytes() for name in _TYPES})
    return _CACHE
