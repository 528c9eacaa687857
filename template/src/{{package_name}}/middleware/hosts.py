"""Trusted hosts: refuse a request whose Host header is not one of the service's names.

Health probes are exempt: an orchestrator calls them by the pod's address, not its name.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from ..problems import send_problem


def _host_name(host: bytes) -> bytes:
    if host.startswith(b"["):  # [::1]:8000
        return host[1:].split(b"]", 1)[0]
    return host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host


class TrustedHostMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        names = [host.lower() for host in allowed_hosts]
        self.exact = frozenset(name.encode("idna") for name in names if not name.startswith("*."))
        wildcards = [name[1:] for name in names if name.startswith("*.")]
        self.suffixes = tuple(b"." + suffix[1:].encode("idna") for suffix in wildcards)

    def _allowed(self, host: bytes) -> bool:
        name = _host_name(host).lower()
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith("/health/"):
            await self.app(scope, receive, send)
            return
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        if self._allowed(host):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            await send_problem(send, 400, "The Host header does not name this service")
        else:
            await send({"type": "websocket.close", "code": 1008})
