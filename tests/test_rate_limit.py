"""The rate limiter of booted services: exact under concurrency, shared by workers through
Redis, and serving through a Redis outage (fail open) or refusing with 503 (fail closed)
until Redis is back."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from auth_helpers import auth_boot_env
from conftest import Project, unavailable
from harness import Service, run, serving
from servers import PrivateRedis, Unavailable, private_redis, redis_server

pytestmark = pytest.mark.variant

API = "/api/v1/info"


def burst(service: Service, count: int) -> Counter[int]:
    """`count` requests at once, each on its own connection; their status codes."""

    async def send_all() -> list[int]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=service.url, limits=limits, timeout=30) as client:
            responses = await asyncio.gather(*(client.get(API) for _ in range(count)))
        return [response.status_code for response in responses]

    return Counter(asyncio.run(send_all()))


def forget_counts(project: Project, redis_url: str) -> None:
    """Delete this service's counters from a Redis that may have served an earlier run."""
    code = (
        "import sys; from redis import Redis\n"
        "r = Redis.from_url(sys.argv[1])\n"
        "for key in r.scan_iter(match=sys.argv[2] + ':*'): r.delete(key)\n"
    )
    result = run(project.path, "python", "-c", code, redis_url, project.package)
    assert result.returncode == 0, result.stderr


@contextmanager
def boot(project: Project, env: dict[str, str]) -> Iterator[Service]:
    """The variant served with `env` (and, for oidc, a local issuer so it is ready)."""
    with (
        auth_boot_env(project) as auth_env,
        serving(project.path, project.slug, {**env, **auth_env}) as service,
    ):
        yield service


@pytest.fixture
def redis_url(project: Project) -> Iterator[str]:
    try:
        with redis_server() as url:
            forget_counts(project, url)
            yield url
    except Unavailable as error:
        unavailable(f"Redis: {error}")


@pytest.fixture
def private(project: Project) -> Iterator[PrivateRedis]:
    try:
        with private_redis() as server:
            yield server
    except Unavailable as error:
        unavailable(f"Redis: {error}")


@pytest.mark.variants(lambda v: v.has("rate_limiter", "memory"))
def test_memory_admits_exactly_the_limit_under_concurrency(
    project: Project, database_env: dict[str, str]
) -> None:
    env = {**database_env, "RATE_LIMIT_DEFAULT": "20/minute"}
    with boot(project, env) as service:
        statuses = burst(service, 60)
        assert service.stop() == 0, service.output
    assert statuses == Counter({200: 20, 429: 40})


@pytest.mark.variants(lambda v: v.has("rate_limiter", "redis"))
def test_redis_workers_share_one_exact_limit(
    project: Project, database_env: dict[str, str], redis_url: str
) -> None:
    env = {**database_env, "RATE_LIMIT_DEFAULT": "20/minute", "WORKERS": "2"}
    env["REDIS_URL"] = redis_url
    # Exactness is tested, not the time-out: a loaded machine must not make a Redis call time
    # out, which would let the limiter fail open and admit more than 20.
    env["REDIS_TIMEOUT_SECONDS"] = "10"
    # uvicorn restarts a worker that does not answer its supervisor within 5 s: without
    # bytecode (PYTHONDONTWRITEBYTECODE) a loaded machine can take longer to import the app.
    compiled = run(project.path, "python", "-m", "compileall", "-q", "-j", "0", ".venv", "src")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    with boot(project, env) as service:
        wait_for_event(service, "rate_limit.opened", 2)  # both workers are serving
        statuses = burst(service, 60)
        assert service.stop() == 0, service.output
    events = [line for line in service.logs() if str(line.get("event")).startswith("rate_limit")]
    assert statuses == Counter({200: 20, 429: 40}), "\n".join(map(str, events))


def wait_for_event(service: Service, event: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for line in service.logs() if line.get("event") == event) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {event}:\n{service.output}"
        time.sleep(0.1)


class Traffic(threading.Thread):
    """Requests one after another until stopped (at most `limit` of them)."""

    def __init__(self, service: Service, limit: int = 20_000) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.limit = limit
        self.stopped = threading.Event()
        self.responses: list[httpx.Response] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.service.url, timeout=10) as client:
            while not self.stopped.is_set() and len(self.responses) < self.limit:
                try:
                    self.responses.append(client.get(API))
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))
                time.sleep(0.005)

    def since(self, start: int) -> list[httpx.Response]:
        return self.responses[start:]

    def wait_for(
        self, predicate: Callable[[httpx.Response], bool], timeout: float = 15
    ) -> httpx.Response:
        """The first response from now on that satisfies `predicate`."""
        start = len(self.responses)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for response in self.since(start):
                if predicate(response):
                    return response
            time.sleep(0.05)
        raise AssertionError(f"no matching response within {timeout}s")

    def finish(self) -> None:
        self.stopped.set()
        self.join(30)


def outage_env(database_env: dict[str, str], redis: PrivateRedis) -> dict[str, str]:
    return {
        **database_env,
        "REDIS_URL": redis.url,
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "REDIS_TIMEOUT_SECONDS": "0.2",
    }


def limited(response: httpx.Response) -> bool:
    return response.status_code == 200 and "ratelimit" in response.headers


@pytest.mark.variants(lambda v: v.has("rate_limiter", "redis"))
def test_redis_outage_fails_open_then_limiting_resumes(
    project: Project, database_env: dict[str, str], private: PrivateRedis
) -> None:
    with boot(project, outage_env(database_env, private)) as service:
        traffic = Traffic(service)
        traffic.start()
        try:
            traffic.wait_for(limited)
            private.kill()
            traffic.wait_for(lambda response: "ratelimit" not in response.headers)
            ready = httpx.get(f"{service.url}/health/ready", timeout=10)
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"]["status"] == "down"
            time.sleep(2)
            private.start()  # same port, empty
            back = time.monotonic()
            traffic.wait_for(limited, timeout=10)
            resumed_after = time.monotonic() - back
            assert httpx.get(f"{service.url}/health/ready", timeout=10).status_code == 200
        finally:
            traffic.finish()
        assert service.stop() == 0, service.output
    statuses = Counter(response.status_code for response in traffic.responses)
    assert traffic.errors == []
    assert set(statuses) == {200}, statuses
    assert resumed_after < 5
    unchecked = sum(1 for r in traffic.responses if "ratelimit" not in r.headers)
    assert unchecked > 0
    events = [line.get("event") for line in service.logs()]
    # Rate-limited warnings: one for the whole outage of a few seconds, not one per request.
    assert 1 <= events.count("rate_limit.redis_unavailable") <= 2
    assert "Traceback" not in service.output


@pytest.mark.variants(lambda v: v.has("rate_limiter", "redis"))
def test_redis_outage_fails_closed_with_503_when_asked(
    project: Project, database_env: dict[str, str], private: PrivateRedis
) -> None:
    env = {**outage_env(database_env, private), "RATE_LIMIT_FAIL_CLOSED": "true"}
    with boot(project, env) as service:
        traffic = Traffic(service)
        traffic.start()
        try:
            traffic.wait_for(limited)
            private.kill()
            refused = traffic.wait_for(lambda response: response.status_code != 200)
            time.sleep(1)
            private.start()
            traffic.wait_for(limited, timeout=10)
        finally:
            traffic.finish()
        assert service.stop() == 0, service.output
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    statuses = Counter(response.status_code for response in traffic.responses)
    assert set(statuses) == {200, 503}, statuses
    assert traffic.errors == []
    assert "Traceback" not in service.output


@pytest.mark.variants(lambda v: v.named("has_users") and v.named("has_limiter"))
def test_the_sixth_bad_password_is_refused_even_from_a_new_client_port(
    project: Project, database_env: dict[str, str]
) -> None:
    env = {**database_env, "RATE_LIMIT_LOGIN": "5/15 minutes"}
    # Fresh user names: a shared Redis may still hold counts of an earlier run.
    run_id = uuid.uuid4().hex[:8]
    form = {"username": f"target-{run_id}", "password": "not the password"}
    with boot(project, env) as service:
        statuses = []
        for _ in range(6):
            # A fresh client per attempt: a new connection from a new client port.
            with httpx.Client(base_url=service.url, timeout=10) as client:
                response = client.post("/api/v1/auth/token", data=form)
            statuses.append(response.status_code)
        other = httpx.post(
            f"{service.url}/api/v1/auth/token", data={**form, "username": f"other-{run_id}"}
        )
        if project.named("has_metrics"):
            exposition = httpx.get(f"{service.url}/metrics").text
            assert 'rate_limit_rejections_total{limit="login"} 1.0' in exposition
            failures = 'auth_failures_total{reason="bad_credentials",scheme="password"} 6.0'
            assert failures in exposition, exposition
        assert service.stop() == 0, service.output
    assert statuses == [401] * 5 + [429], statuses
    assert response.headers["content-type"] == "application/problem+json"
    assert 1 <= int(response.headers["retry-after"]) <= 900
    assert response.headers["ratelimit-policy"] == '"login";q=5;w=900'
    assert other.status_code == 401, "the limit is per user name: another one is not refused"


# Each group: spellings of one client (or, last, values that are no address at all), sent by a
# trusted proxy; only the first of each group finds a quota left.
SPELLINGS = [
    ["2001:DB8::1", "2001:db8:0:0:0:0:0:1", "2001:db8::ffff:2"],
    ["::ffff:198.51.100.7", "198.51.100.7"],
    ["not-an-address", "another", "1.2.3.4.5"],
]


@pytest.mark.variants(lambda v: v.named("has_limiter"))
def test_no_spelling_of_an_address_buys_a_second_quota(
    project: Project, database_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    env = {**database_env, "TRUSTED_PROXIES": "127.0.0.1", "RATE_LIMIT_DEFAULT": "1/minute"}
    env["RATE_LIMIT_LOGIN_ACCOUNT"] = "3/minute"
    if project.variant.has("rate_limiter", "redis"):
        env["REDIS_URL"] = request.getfixturevalue("private").url
    users = project.named("has_users")
    with boot(project, env) as service, httpx.Client(base_url=service.url) as client:
        answers = [
            [client.get(API, headers={"X-Forwarded-For": value}).status_code for value in group]
            for group in SPELLINGS
        ]
        # Guesses at one account from four addresses: the account's own quota stops the last.
        form = {"username": f"target-{uuid.uuid4().hex[:8]}", "password": "not the password"}
        log_ins = [
            client.post(
                "/api/v1/auth/token", data=form, headers={"X-Forwarded-For": f"192.0.2.{n}"}
            )
            for n in range(1, 5 if users else 1)
        ]
        assert service.stop() == 0, service.output
    assert answers == [[200] + [429] * (len(group) - 1) for group in SPELLINGS]
    if users:
        assert [answer.status_code for answer in log_ins] == [401, 401, 401, 429]
        assert log_ins[-1].headers["ratelimit-policy"] == '"login_account";q=3;w=60'
