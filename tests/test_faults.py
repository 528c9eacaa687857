"""Faults under load: booted services, behind a real load balancer or alone, while a steady
load of authenticated reads and writes runs and a replica is replaced or a dependency stops,
slows down or fills up. What a client sees is asserted; each scenario's figures (requests,
failures by kind, acknowledged writes lost, p50/p99 outside and inside the fault, recovery
time) are recorded and printed at the end of the run.

Run for the default variant (SQLite, in-memory limiter) and all-on-pg (PostgreSQL, Redis);
`-m "not faults"` leaves them out of a fast run.
"""

from __future__ import annotations

import resource
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from auth_helpers import credentials
from conftest import Project, migrate, unavailable
from faults import (
    HAProxy,
    Load,
    Outcome,
    Replica,
    Timing,
    Usage,
    acknowledged,
    failures,
    haproxy,
    project_timing,
    replicas,
    report,
)
from servers import (
    PrivatePostgres,
    Unavailable,
    fresh_database,
    private_redis,
    psql,
    restartable_postgres,
)

FAULT_VARIANTS = {"default", "all-on-pg"}

pytestmark = [
    pytest.mark.variant,
    pytest.mark.faults,
    pytest.mark.variants(lambda v: v.id in FAULT_VARIANTS),
]

Record = Callable[[str, object], None]

# Quotas out of reach: the load is one client.
UNLIMITED = {
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_AUTHENTICATED": "1000000/minute",
    "RATE_LIMIT_LOGIN": "1000000/minute",
    "WORKERS": "1",
}
PROBLEM = "application/problem+json"


@pytest.fixture
def fault_env(
    project: Project, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """A migrated database of the test's own (its thousands of items stay out of the variant's
    shared one), unlimited quotas, and a private Redis for the Redis limiter."""
    with ExitStack() as stack:
        if project["database"] == "sqlite":
            url = f"sqlite:///{tmp_path / 'faults.db'}"
        else:
            admin = request.getfixturevalue("postgres_admin")
            url = stack.enter_context(fresh_database(admin, f"{project.variant.id}-faults"))
        env = {"DATABASE_URL": url, **UNLIMITED}
        migrate(project, env)
        if project["rate_limiter"] == "redis":
            try:
                redis = stack.enter_context(private_redis())
            except Unavailable as error:
                unavailable(f"Redis: {error}")
            env["REDIS_URL"] = redis.url
        yield env


def stored_ids(env: dict[str, str]) -> set[int]:
    """The ids of every item in the database, read directly."""
    url = env["DATABASE_URL"]
    if url.startswith("sqlite"):
        path = urlsplit(url).path.removeprefix("/")
        with sqlite3.connect(path) as connection:
            return {row[0] for row in connection.execute("SELECT id FROM items")}
    return {int(line) for line in psql(url, "SELECT id FROM items").splitlines() if line}


def lost_writes(outcomes: list[Outcome], env: dict[str, str]) -> int:
    return len(acknowledged(outcomes) - stored_ids(env))


def server_errors(outcomes: list[Outcome]) -> Counter[str]:
    """Failures that are not a 503/507 problem+json: 500s, resets, time-outs..."""
    return failures(
        [
            outcome
            for outcome in outcomes
            if outcome.failed
            and not (outcome.status in (503, 507) and outcome.content_type == PROBLEM)
        ]
    )


def first_success_after(outcomes: list[Outcome], moment: float, kind: str = "write") -> float:
    """Seconds from `moment` until a request of `kind` started after it succeeded."""
    return min(
        o.started + o.seconds - moment
        for o in outcomes
        if o.kind == kind and o.started >= moment and not o.failed
    )


def test_rollout_timing_names_each_gap() -> None:
    sound = Timing(
        period=2, failures=2, drain=6, graceful=20, grace=40, max_unavailable=0, max_surge=1
    )
    assert sound.gaps() == []
    short_drain = Timing(**{**vars(sound), "drain": 5})
    assert [gap.split()[0] for gap in short_drain.gaps()] == ["SHUTDOWN_DRAIN_SECONDS"]
    slow_probe = Timing(**{**vars(sound), "period": 5})
    assert [gap.split()[0] for gap in slow_probe.gaps()] == ["SHUTDOWN_DRAIN_SECONDS"]
    short_grace = Timing(**{**vars(sound), "grace": 26})
    assert [gap.split()[0] for gap in short_grace.gaps()] == ["terminationGracePeriodSeconds"]
    unavailable_pod = Timing(**{**vars(sound), "max_unavailable": 1})
    assert [gap.split()[0] for gap in unavailable_pod.gaps()] == ["maxUnavailable"]


def test_rolling_restart_behind_haproxy_fails_no_request(
    project: Project, fault_env: dict[str, str], record_property: Record
) -> None:
    """Two replicas behind HAProxy checking /health/ready as the generated readinessProbe
    does; each in turn gets SIGTERM, exits, and is replaced by one that is up before the next
    stops. The drain is the generated one: the manifests' values are what is proven."""
    timing = project_timing(project.path)
    assert timing.gaps() == []
    env = {**fault_env, "SHUTDOWN_DRAIN_SECONDS": f"{timing.drain:g}"}
    with (
        replicas(project.path, project.slug, env, 2) as running,
        haproxy([replica.port for replica in running], timing.period, timing.failures) as proxy,
    ):
        proxy.wait_until_up(2)
        # A steady load that leaves the machine's CPU to the replicas that boot meanwhile.
        load = Load(proxy.url, credentials(project, running[0].service), pause=0.05)
        load.start()
        try:
            load.wait_for(60)
            fault_start = time.monotonic()
            exit_codes = [restart(proxy, running, index) for index in range(len(running))]
            fault_end = time.monotonic()
            load.wait_for(60)
        finally:
            outcomes = load.finish()
        figures = report(
            outcomes, (fault_start, fault_end), lost=lost_writes(outcomes, env), replaced=2
        )
    record_property("faults: rolling restart", figures)
    assert exit_codes == [0, 0]
    assert failures(outcomes) == Counter(), figures
    assert figures["writes_lost"] == 0
    assert sum(1 for o in outcomes if fault_start <= o.started <= fault_end) > 50, figures


def restart(proxy: HAProxy, running: list[Replica], index: int) -> int:
    """SIGTERM a replica, start its replacement on its port, wait until HAProxy has all up."""
    code = running[index].service.stop(signal.SIGTERM)
    running[index] = running[index].replacement().start()
    proxy.wait_until_up(len(running))
    return code


@pytest.mark.variants(lambda v: v.id == "all-on-pg")
def test_postgresql_restart_answers_503_then_recovers_alone(
    project: Project, fault_env: dict[str, str], record_property: Record
) -> None:
    """The database server (one this test owns) stops for three seconds under load."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(restartable_postgres())
        except Unavailable as error:
            unavailable(f"PostgreSQL: {error}")
        url = stack.enter_context(fresh_database(server.url, "faults"))
        env = {
            **fault_env,
            "DATABASE_URL": url,
            "DATABASE_POOL_TIMEOUT": "2",
            "READINESS_TIMEOUT_SECONDS": "1",
        }
        migrate(project, env)
        figures, outcomes, ready, ready_seconds = postgres_outage(project, env, server)
    record_property("faults: postgresql restart", figures)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["status"] == "down"
    assert ready_seconds < 1 + 1  # READINESS_TIMEOUT_SECONDS, and the answer's own time
    assert server_errors(outcomes) == Counter(), figures
    refused = [o for o in outcomes if o.failed]
    assert refused, "the outage was not seen"
    # Fail fast: no request waits longer than the pool's time-out for a connection.
    assert max(o.seconds for o in refused) < 2 + 1, figures
    assert figures["writes_lost"] == 0


def postgres_outage(
    project: Project, env: dict[str, str], server: PrivatePostgres
) -> tuple[dict[str, object], list[Outcome], httpx.Response, float]:
    with replicas(project.path, project.slug, env, 1) as (replica,):
        load = Load(replica.service.url, credentials(project, replica.service))
        load.start()
        try:
            load.wait_for(60)
            stopped_at = time.monotonic()
            server.stop("fast")
            time.sleep(0.5)
            asked = time.monotonic()
            ready = httpx.get(f"{replica.service.url}/health/ready", timeout=10)
            ready_seconds = time.monotonic() - asked
            time.sleep(2.5)
            server.start()
            back_at = time.monotonic()
            load.wait_for(60)
        finally:
            outcomes = load.finish()
        assert replica.service.stop() == 0, replica.service.output
    failed = [o for o in outcomes if o.failed]
    figures = report(
        outcomes,
        (stopped_at, back_at),
        lost=lost_writes(outcomes, env),
        recovery=first_success_after(outcomes, back_at),
        outage_seconds=round(back_at - stopped_at, 2),
        error_window_seconds=round(
            max(o.started + o.seconds for o in failed) - min(o.started for o in failed), 2
        )
        if failed
        else 0,
    )
    return figures, outcomes, ready, ready_seconds


@pytest.mark.variants(lambda v: v.id == "all-on-pg")
def test_redis_outage_with_two_replicas(
    project: Project, database_env: dict[str, str], record_property: Record
) -> None:
    """Both replicas fail open (or, when asked, closed) while Redis is down, and after it
    returns the quota is exact across both."""
    quota = 30
    env = {
        **database_env,
        "RATE_LIMIT_DEFAULT": f"{quota}/minute",
        "REDIS_TIMEOUT_SECONDS": "0.2",
        "WORKERS": "1",
    }
    with ExitStack() as stack:
        try:
            redis = stack.enter_context(private_redis())
        except Unavailable as error:
            unavailable(f"Redis: {error}")
        env["REDIS_URL"] = redis.url
        with replicas(project.path, project.slug, env, 2) as pair:
            clients = [stack.enter_context(httpx.Client(base_url=r.service.url)) for r in pair]
            before = alternate(clients, 10)
            redis.kill()
            during = alternate(clients, 2 * quota)
            redis.start()  # same port, empty
            settling = settle(clients)
            counted = sum(1 for response in settling if limited(response))
            after = alternate(clients, quota - counted + 10)
        closed_env = {**env, "RATE_LIMIT_FAIL_CLOSED": "true"}
        with replicas(project.path, project.slug, closed_env, 2) as pair:
            clients = [stack.enter_context(httpx.Client(base_url=r.service.url)) for r in pair]
            redis.kill()
            refused = alternate(clients, 10)
            redis.start()
            back = settle(clients)
    figures = {
        "requests": len(before)
        + len(during)
        + len(settling)
        + len(after)
        + len(refused)
        + len(back),
        "fail_open_statuses": dict(Counter(r.status_code for r in during)),
        "fail_closed_statuses": dict(Counter(r.status_code for r in refused)),
        "after_recovery_statuses": dict(Counter(r.status_code for r in after)),
    }
    record_property("faults: redis outage, two replicas", figures)
    assert all(limited(response) for response in before)
    # Fail open: both replicas serve, unchecked.
    assert {r.status_code for r in during} == {200}
    assert not any("ratelimit" in r.headers for r in during)
    # Exact again across both: `quota` admitted in all since Redis came back, then 429.
    statuses = [r.status_code for r in after]
    assert statuses == [200] * (quota - counted) + [429] * 10, statuses
    assert all("ratelimit" in r.headers for r in after)
    # Fail closed: both replicas refuse with 503 problem+json, then serve again.
    assert {r.status_code for r in refused} == {503}
    assert {r.headers["content-type"] for r in refused} == {PROBLEM}
    assert all("retry-after" in r.headers for r in refused)
    # ... until each replica reaches Redis again: then it serves, counted.
    assert {r.status_code for r in back} <= {200, 503}


def alternate(clients: list[httpx.Client], count: int) -> list[httpx.Response]:
    """`count` anonymous requests, to each replica in turn."""
    return [clients[n % len(clients)].get("/api/v1/info") for n in range(count)]


def settle(clients: list[httpx.Client], timeout: float = 15) -> list[httpx.Response]:
    """Requests to each replica in turn until every one of them counts again in Redis."""
    responses: list[httpx.Response] = []
    resumed: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(resumed) < len(clients):
        assert time.monotonic() < deadline, f"limiting did not resume within {timeout}s"
        for number, client in enumerate(clients):
            responses.append(client.get("/api/v1/info"))
            if limited(responses[-1]):
                resumed.add(number)
        time.sleep(0.1)
    return responses


def limited(response: httpx.Response) -> bool:
    return response.status_code == 200 and "ratelimit" in response.headers


@pytest.mark.variants(lambda v: v.id == "all-on-pg")
def test_slow_database_bounds_requests_memory_and_descriptors(
    project: Project, fault_env: dict[str, str], record_property: Record
) -> None:
    """A transaction holds an exclusive lock on the items table for six seconds while eight
    clients write and read: the statement time-out and the pool's time-out answer 503 in
    bounded time; memory and open descriptors stay bounded; no acknowledged write is lost."""
    statement_timeout, pool_timeout, pool_size = 1, 1, 2
    env = {
        **fault_env,
        "DATABASE_STATEMENT_TIMEOUT_SECONDS": str(statement_timeout),
        "DATABASE_POOL_SIZE": str(pool_size),
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": str(pool_timeout),
        "READINESS_TIMEOUT_SECONDS": "1",
    }
    url = env["DATABASE_URL"]
    with replicas(project.path, project.slug, env, 1) as (replica,):
        usage = Usage(replica.pid)
        load = Load(replica.service.url, credentials(project, replica.service), workers=8)
        load.start()
        try:
            load.wait_for(40)
            usage.start()
            locked_at = time.monotonic()
            psql(url, "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6)")
            released_at = time.monotonic()
            load.wait_for(40)
        finally:
            outcomes = load.finish()
            usage.stop()
        asked = time.monotonic()
        ready = httpx.get(f"{replica.service.url}/health/ready", timeout=10)
        ready_seconds = time.monotonic() - asked
        assert ready.status_code == 200, ready.text
        assert replica.service.stop() == 0, replica.service.output
    figures = report(
        outcomes,
        (locked_at, released_at),
        lost=lost_writes(outcomes, env),
        recovery=first_success_after(outcomes, released_at),
        rss_mb_min_max=[round(min(usage.rss_kb) / 1024), round(max(usage.rss_kb) / 1024)],
        fds_min_max=[min(usage.fds), max(usage.fds)],
        ready_seconds_after=round(ready_seconds, 3),
    )
    record_property("faults: slow database", figures)
    assert server_errors(outcomes) == Counter(), figures
    refused = [o for o in outcomes if o.failed]
    assert refused, "the lock was not felt"
    # The pool's wait, then the statement's, each bounded; no request waits for the lock.
    assert max(o.seconds for o in outcomes) < pool_timeout + statement_timeout + 1.5, figures
    assert max(usage.fds) - min(usage.fds) <= 2 * 8 + pool_size, figures
    assert max(usage.rss_kb) - min(usage.rss_kb) < 64 * 1024, figures
    assert figures["writes_lost"] == 0


@pytest.mark.variants(lambda v: v.id == "default")
def test_sqlite_disk_full_answers_507_keeps_reads_and_recovers(
    project: Project,
    fault_env: dict[str, str],
    record_property: Record,
    tmp_path: Path,
) -> None:
    """The service's file size limit (RLIMIT_FSIZE) is lowered to just above its database
    files while it writes, then raised again."""
    database = tmp_path / "full.db"
    env = {**fault_env, "DATABASE_URL": f"sqlite:///{database}"}
    migrate(project, env)
    with replicas(project.path, project.slug, env, 1) as (replica,):
        load = Load(replica.service.url, credentials(project, replica.service))
        load.start()
        try:
            load.wait_for(60)
            files = [database, database.with_name(database.name + "-wal")]
            ceiling = max(path.stat().st_size for path in files if path.exists()) + 64 * 1024
            # Inside a page, so that a write straddles the limit: SQLite reports "full".
            ceiling += 1000
            unlimited = resource.RLIM_INFINITY
            resource.prlimit(replica.pid, resource.RLIMIT_FSIZE, (ceiling, unlimited))
            full_at = time.monotonic()
            wait_until(lambda: any(o.status == 507 for o in load.outcomes), 20)
            load.wait_for(60)  # reads keep working
            resource.prlimit(replica.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
            freed_at = time.monotonic()
            wait_until(lambda: any_write_after(load.outcomes, freed_at), 20)
            load.wait_for(20)
        finally:
            outcomes = load.finish()
        assert replica.service.stop() == 0, replica.service.output
    during = [o for o in outcomes if full_at <= o.started <= freed_at]
    figures = report(
        outcomes,
        (full_at, freed_at),
        lost=lost_writes(outcomes, env),
        recovery=first_success_after(outcomes, freed_at),
        reads_during_fault=dict(Counter(o.status for o in during if o.kind == "read")),
    )
    record_property("faults: sqlite disk full", figures)
    assert server_errors(outcomes) == Counter(), figures
    refused = [o for o in outcomes if o.failed]
    assert {o.kind for o in refused} == {"write"}, figures
    assert any(o.status == 507 for o in refused)
    assert any(o.kind == "read" and not o.failed for o in during), figures
    assert figures["writes_lost"] == 0


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s"
        time.sleep(0.05)


def any_write_after(outcomes: list[Outcome], moment: float) -> bool:
    return any(o.kind == "write" and o.started >= moment and not o.failed for o in outcomes)
