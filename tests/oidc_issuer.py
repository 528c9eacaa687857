"""A local OIDC issuer for boot tests: discovery document, JWKS, and a token endpoint.

Run with an interpreter that has PyJWT and cryptography (an oidc variant's own virtual
environment): `python oidc_issuer.py AUDIENCE`. It prints its URL on the first line, then
serves on 127.0.0.1 until it is stopped. `GET /token?sub=..&roles=a,b` returns a token signed
with its RSA key (kid "boot-key"); `GET /requests` lists the paths requested so far.
"""

from __future__ import annotations

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


def serve(audience: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update(kid=KID, alg="RS256", use="sig")
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            requests.append(url.path)
            body: Any
            if url.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}
            elif url.path == "/jwks":
                body = {"keys": [public]}
            elif url.path == "/requests":
                body = requests
            elif url.path == "/token":
                query = parse_qs(url.query)
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
                body = {"access_token": jwt.encode(claims, key, "RS256", headers={"kid": KID})}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    print(issuer, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
