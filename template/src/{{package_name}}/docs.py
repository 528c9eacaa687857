"""API documentation pages served without any CDN.

The Swagger UI and ReDoc bundles come from the `fastapi-offline` package and the page scripts
from `docs_assets/`, all from this service's own origin. Each of the two pages gets the
narrowest Content Security Policy it works under; every other response keeps the API policy
`default-src 'none'`.
"""

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
_CSP_BASE = [
    "default-src 'none'",
    "script-src 'self'",
    # Both bundles draw some icons from data: URLs.
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
]
SWAGGER_CSP = "; ".join([*_CSP_BASE, "style-src 'self'"])
# ReDoc injects <style> elements at run time and builds its search index in a worker created
# from a blob: URL.
REDOC_CSP = "; ".join([*_CSP_BASE, "style-src 'self' 'unsafe-inline'", "worker-src blob:"])


def _page(title: str, head: str, body: str, csp: str) -> HTMLResponse:
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="icon" type="image/png" href="{ASSETS_PATH}/vendor/favicon.png">
{head}
</head>
<body>
{body}
</body>
</html>
"""
    return HTMLResponse(html, headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc for `openapi_url`."""
    vendor = str(files("fastapi_offline") / "static")
    app.mount(f"{ASSETS_PATH}/vendor", StaticFiles(directory=vendor), name="docs-vendor")
    own = Path(__file__).with_name("docs_assets")
    app.mount(ASSETS_PATH, StaticFiles(directory=own), name="docs-assets")
    title = app.title
    spec = escape(openapi_url, quote=True)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(
            f"{title} - Swagger UI",
            f'<link rel="stylesheet" href="{ASSETS_PATH}/vendor/swagger-ui.css">',
            f'<div id="swagger-ui" data-openapi-url="{spec}"></div>\n'
            f'<script src="{ASSETS_PATH}/vendor/swagger-ui-bundle.js"></script>\n'
            f'<script src="{ASSETS_PATH}/swagger-init.js"></script>',
            SWAGGER_CSP,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page(
            f"{title} - ReDoc",
            "",
            f'<div id="redoc" data-openapi-url="{spec}"></div>\n'
            f'<script src="{ASSETS_PATH}/vendor/redoc.standalone.js"></script>\n'
            f'<script src="{ASSETS_PATH}/redoc-init.js"></script>',
            REDOC_CSP,
        )
