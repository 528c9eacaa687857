"""App factories that add the generated service's layers one at a time (for the breakdown).

Each factory returns the generated service's routes and problem handlers (no docs) behind
some middleware only, built from the generated project's own modules: its health probes
(`install_health(app)`, or `include_router(health.router)` in older versions) and the
layers of its `main._middleware(settings)`, so the list follows the template as it changes.
The cost of one layer is the difference to `routes`.

Import it with the generated project's interpreter, the project as working directory:

    <project>/.venv/bin/python -m uvicorn --app-dir bench --factory ablations:routes
    <project>/.venv/bin/python -m uvicorn --app-dir bench --factory ablations:layer_3

`python bench/ablations.py` (same interpreter and directory) prints the factory names.
A benchmark aid only: the template never uses this file.
"""

import sys
from collections.abc import Callable
from functools import cache
from importlib import import_module
from pathlib import Path
from types import ModuleType

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Factory = Callable[[], FastAPI]


@cache
def _package() -> str:
    """The generated package: the one directory of src/ with a main.py (cwd = the project)."""
    return next(p.name for p in (Path.cwd() / "src").iterdir() if (p / "main.py").is_file())


def _module(name: str) -> ModuleType:
    return import_module(f"{_package()}.{name}")


def _stack(**settings: object) -> list[Middleware]:
    """The generated service's middleware, outermost first, for its settings (+ overrides)."""
    return list(_module("main")._middleware(_module("settings").Settings(**settings)))


def _layer(name: str, **settings: object) -> Middleware:
    layers = _stack(**settings)
    return next(layer for layer in layers if layer.cls.__name__ == name)  # type: ignore[attr-defined]


def _routes(middleware: list[Middleware], log_level: str = "info") -> FastAPI:
    _module("log").configure_logging(log_level, "json")
    app = FastAPI(middleware=middleware, docs_url=None, redoc_url=None)
    _module("problems").install_problem_handlers(app)
    health = _module("health")
    if hasattr(health, "install_health"):
        health.install_health(app)
    else:
        app.include_router(health.router)
    return app


class Passthrough:
    """A pure ASGI layer that wraps `send` and does nothing else: the price of a layer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Message) -> None:
            await send(message)

        await self.app(scope, receive, wrapped)


class HeadersOnly:
    """Adds the request-context layer's response headers (a fixed X-Request-ID), nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        context = _module("middleware.context")
        self.extra = [(b"x-request-id", b"0" * 32), *context.security_headers(hsts=False)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def routes() -> FastAPI:
    return _routes([])


def passthrough() -> FastAPI:
    return _routes([Middleware(Passthrough)])


def headers() -> FastAPI:
    return _routes([Middleware(HeadersOnly)])


def context_quiet() -> FastAPI:
    # LOG_LEVEL=warning filters the access-log line out, wherever the service decides it:
    # in the settings its middleware is made with, or in the logging set-up.
    layer = _layer("RequestContextMiddleware", log_level="warning")
    return _routes([layer], log_level="warning")


def all_layers() -> FastAPI:
    return _routes(_stack())


def __getattr__(name: str) -> Factory:
    """`layer_<i>`: the routes behind the i-th layer of the service's stack only."""
    if name.startswith("layer_") and name[6:].isdigit():
        index = int(name[6:])
        return lambda: _routes([_stack()[index]])
    raise AttributeError(name)


def ablations() -> list[tuple[str, Factory, str]]:
    """(factory name, factory, what it adds to `routes`), in the breakdown's order."""
    count = 1 + len(_module("middleware.context").security_headers(hsts=False))
    items: list[tuple[str, Factory, str]] = [
        ("routes", routes, "generated routes + problem handlers, no middleware"),
        ("passthrough", passthrough, "+ an empty pure ASGI layer (wraps send)"),
        ("headers", headers, f"+ just its {count} response headers (id + security)"),
        ("context_quiet", context_quiet, "+ RequestContextMiddleware, access log filtered"),
    ]
    for index, layer in enumerate(_stack()):
        name = layer.cls.__name__  # type: ignore[attr-defined]
        items.append((f"layer_{index}", __getattr__(f"layer_{index}"), f"+ {name}"))
    items.append(("all_layers", all_layers, "+ all of them, in create_app()'s order"))
    return items


if __name__ == "__main__":
    for factory_name, _, label in ablations():
        print(f"{factory_name}\t{label}")
    sys.exit(0)
