"""A local OIDC issuer for boot tests: discovery document, JWKS, and a token endpoint.

Run with an interpreter that has PyJWT and cryptography (an oidc variant's own virtual
environment): `python oidc_issuer.py AUDIENCE`. It prints its URL on the first line, then
serves on 127.0.0.1 until it is stopped. `GET /token?sub=..&roles=a,b&kid=..` returns a token
signed with its RSA key (kid "boot-key" unless another is named); `GET /requests` lists the
paths requested so far. `GET /jwks-mode?name=...` makes `/jwks` hostile from then on (one of
BAD_JWKS, or "huge": a valid JWKS of 200 MiB sent chunked), or "good" again; `GET /jwks-sent`
says how many bytes of JWKS bodies went out.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

KID = "boot-key"
BAD_JWKS = {
    "null": b'{"keys": null}',
    "five": b'{"keys": 5}',
    "not-objects": b'{"keys": [1, 2]}',
    "nested": b"[" * 200_000 + b"]" * 200_000,
    "not-json": b"<html>",
}
HUGE_MIB = 200


def serve(audience: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update(kid=KID, alg="RS256", use="sig")
    requests: list[str] = []
    jwks: dict[str, Any] = {"mode": "good", "sent": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            requests.append(url.path)
            query = parse_qs(url.query)
            body: Any
            if url.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
            elif url.path == "/jwks" and jwks["mode"] == "huge":
                self.send_huge_jwks()
                return
            elif url.path == "/jwks" and jwks["mode"] in BAD_JWKS:
                self.send_json(BAD_JWKS[jwks["mode"]])
                return
            elif url.path == "/jwks":
                body = {"keys": [public]}
            elif url.path == "/jwks-mode":
                jwks["mode"] = query["name"][0]
                body = jwks
            elif url.path == "/jwks-sent":
                body = jwks["sent"]
            elif url.path == "/requests":
                body = requests
            elif url.path == "/token":
                now = int(time.time())
                claims = {
                    "iss": issuer,
                    "aud": audience,
                    "sub": query.get("sub", ["boot-user"])[0],
                    "iat": now,
                    "nbf": now,
                    "exp": now + 600,
                    "roles": [r for r in query.get("roles", [""])[0].split(",") if r],
                }
                kid = query.get("kid", [KID])[0]
                body = {"access_token": jwt.encode(claims, key, "RS256", headers={"kid": kid})}
            else:
                self.send_error(404)
                return
            self.send_json(json.dumps(body).encode())

        def send_json(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def send_huge_jwks(self) -> None:
            """A JWKS with a string of HUGE_MIB MiB, chunked: no length says it is large."""
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            padding = b"x" * (1 << 20)
            parts = [b'{"keys": [], "padding": "', *[padding] * HUGE_MIB, b'"}']
            with contextlib.suppress(ConnectionError):
                for part in parts:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    jwks["sent"] += len(part)
                self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    print(issuer, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
