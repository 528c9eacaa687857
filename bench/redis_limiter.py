"""Instructions per request of the Redis limiter's own script against limits' ordinary API.

The Redis store of the generated service asks Redis once per request: a copy of `limits`'
sliding-window script that also answers the window's counts. The ordinary API takes two
calls, `SlidingWindowCounterRateLimiter.hit` then `get_window_stats`, over
`limits.aio.storage.RedisStorage` on the same connection pool. This script renders the
apikey-redis-otel variant (SQLite, API keys, Redis limiter, Prometheus, OpenTelemetry), stores
20 items and an API key, and counts with valgrind, as instructions.py does (two runs of N1
and N2 requests, the difference over N2 - N1), the instructions of one authenticated read:

- `script`: the generated service as it is;
- `limits`: the same service with its store's `hit` doing limits' two calls instead.

Spans are not sampled (OTEL_TRACES_SAMPLER_ARG=0) so that the counts do not depend on a
random draw. It needs valgrind and a Redis (REDIS_URL, else a private redis-server); about
15 minutes.

    .venv/bin/python bench/redis_limiter.py [--path /api/v1/items] [--project PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ANSWERS: dict[str, str | list[str]] = {
    "database": "sqlite",
    "auth": "api_key",
    "rate_limiter": "redis",
    "observability": ["prometheus", "otel"],
    "python_version": "3.12",
}
SERVE = "import sys; from {package}.cli import main; sys.exit(main(['serve']))"


def serve_with_limits_api(package: str) -> None:
    """Run the service with its Redis store's `hit` replaced by limits' ordinary calls."""
    import importlib

    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import SlidingWindowCounterRateLimiter
    from redis.exceptions import RedisError

    store_module = importlib.import_module(f"{package}.rate_limit_redis")
    window_module = importlib.import_module(f"{package}.rate_limit.window")
    store_class = store_module.Store
    script_init = store_class.__init__

    def __init__(self: Any, settings: Any) -> None:
        script_init(self, settings)
        storage = RedisStorage(
            f"async+{settings.redis_url}",
            implementation="redispy",
            key_prefix=store_module.KEY_PREFIX,
            connection_pool=self.redis.connection_pool,
        )
        self.strategy = SlidingWindowCounterRateLimiter(storage)

    async def hit(self: Any, limit: Any, key: str) -> Any:
        if time.monotonic() < self.retry_at:
            return self._unchecked()
        try:
            admitted = await self.strategy.hit(limit, key)
            reset_at, remaining = await self.strategy.get_window_stats(limit, key)
        except (RedisError, OSError) as error:
            self._failed(error)
            return self._unchecked()
        return window_module.Window(admitted, remaining, max(0.0, reset_at - time.time()))

    store_class.__init__ = __init__
    store_class.hit = hit
    main = importlib.import_module(f"{package}.cli").main
    sys.exit(main(["serve"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a rendered and installed apikey-redis-otel")
    parser.add_argument("--path", default="/api/v1/items", help="the authenticated GET")
    parser.add_argument("--n1", type=int, default=200, help="requests of the short run")
    parser.add_argument("--n2", type=int, default=1200, help="requests of the long run")
    parser.add_argument("--serve-limits-api", metavar="PACKAGE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.n1 < args.n2:
        parser.error("need 0 < --n1 < --n2")
    return args


def prepare(project: Path, env: dict[str, str], package: str, slug: str) -> str:
    """Migrate, make an admin API key, store 20 items; the key."""
    command = project / ".venv" / "bin" / slug
    name = f"bench-{time.time_ns()}"  # a project given with --project may hold earlier keys
    for args in (["migrate"], ["create-api-key", "--name", name, "--role", "admin"]):
        result = subprocess.run(
            [command, *args], cwd=project, env=env, capture_output=True, text=True, check=True
        )
    key = result.stdout.split()[-1]
    import harness

    port = harness.free_port()
    python = str(project / ".venv" / "bin" / "python")
    server = subprocess.Popen(
        [python, "-c", SERVE.format(package=package)],
        cwd=project,
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/health/live")
                connection.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for number in range(1, 21):
            body = json.dumps({"name": f"item {number}"})
            headers = {"X-API-Key": key, "Content-Type": "application/json"}
            connection.request("POST", "/api/v1/items", body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 201:
                raise RuntimeError(f"POST /api/v1/items answered {response.status}")
        connection.close()
    finally:
        server.terminate()
        server.wait(30)
    return key


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_limits_api:
        serve_with_limits_api(args.serve_limits_api)
    if not shutil.which("valgrind"):
        raise SystemExit("redis_limiter.py needs valgrind (apt-get install valgrind)")
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, str(BENCH.parent / "tests"))
    import harness
    import instructions
    from servers import redis_server
    from throughput import project_slug

    with tempfile.TemporaryDirectory(prefix="chf-redis-limiter-") as tmp, redis_server() as url:
        project = args.project
        if project is None:
            project = Path(tmp) / "service"
            harness.render(project, ANSWERS)
            harness.install(project, str(ANSWERS["python_version"]))
        project = project.resolve()
        slug = project_slug(project)
        package = slug.replace("-", "_")
        env = harness.service_env(port=8000)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            {
                "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"),
                "PYTHONHASHSEED": "0",
                "REDIS_URL": url,
                "RATE_LIMIT_DEFAULT": "100000000/minute",
                "RATE_LIMIT_AUTHENTICATED": "100000000/minute",
                "OTEL_TRACES_SAMPLER_ARG": "0",
            }
        )
        (project / "data").mkdir(exist_ok=True)
        key = prepare(project, env, package, slug)
        request = (
            f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n"
            f"X-API-Key: {key}\r\n\r\n"
        ).encode()
        python = str(project / ".venv" / "bin" / "python")
        commands = {
            "script": [python, "-c", SERVE.format(package=package)],
            "limits": [python, str(Path(__file__).resolve()), "--serve-limits-api", package],
        }
        print(
            f"redis_limiter: GET {args.path} with an API key, {args.n2 - args.n1} requests "
            f"(runs of {args.n1} and {args.n2}), valgrind cachegrind, user space only"
        )
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {
                name: pool.submit(
                    instructions.instructions, name, command, env, project, args, request
                )
                for name, command in commands.items()
            }
            results = {name: future.result() for name, future in futures.items()}

    saved = 1 - results["script"] / results["limits"]
    print()
    print(f"{'store':<10}{'instructions/request':>22}")
    for name, count in results.items():
        print(f"{name:<10}{count:>22,.0f}")
    print(f"the script saves {saved:.1%} of the limits API's instructions per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
