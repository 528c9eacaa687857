"""What the fault scenarios share: a steady load of authenticated reads and writes, replicas
behind HAProxy, the rollout timing of the generated Kubernetes manifests, and the figures each
scenario reports (tests/test_faults.py, bench/README.md)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from harness import Service, copier_questions, free_port, service_env

ITEMS = "/api/v1/items"


@dataclass(frozen=True)
class Outcome:
    """One request of the load: when it started (time.monotonic), how long it took, and what
    came back (a status, or the name of the exception a client saw)."""

    started: float
    seconds: float
    kind: str  # "read" or "write"
    status: int | None
    error: str | None = None
    content_type: str = ""
    item_id: int | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.status is None or self.status >= 400


class Load(threading.Thread):
    """`workers` keep-alive connections to `url`, each writing an item then reading one back,
    until stop() or `limit` seconds; every request is recorded."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        workers: int = 4,
        limit: float = 55,
        timeout: float = 15,
        pause: float = 0.02,
    ) -> None:
        super().__init__(daemon=True)
        assert url.startswith("http://127.0.0.1:"), url
        self.url, self.headers = url, headers
        self.workers, self.limit, self.timeout, self.pause = workers, limit, timeout, pause
        self.outcomes: list[Outcome] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        async with httpx.AsyncClient(
            base_url=self.url, headers=self.headers, limits=limits, timeout=self.timeout
        ) as client:
            await asyncio.gather(*(self._worker(client, n) for n in range(self.workers)))

    async def _worker(self, client: httpx.AsyncClient, number: int) -> None:
        deadline = time.monotonic() + self.limit
        count = 0
        while not self.stopped.is_set() and time.monotonic() < deadline:
            count += 1
            written = await self._send(
                client, "write", "POST", ITEMS, {"name": f"load {number}-{count}"}
            )
            target = written.item_id or self._acknowledged_id()
            if target is not None:
                await self._send(client, "read", "GET", f"{ITEMS}/{target}", None)
            await asyncio.sleep(self.pause)

    def _acknowledged_id(self) -> int | None:
        for outcome in reversed(self.outcomes):
            if outcome.item_id is not None:
                return outcome.item_id
        return None

    async def _send(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        body: dict[str, str] | None,
    ) -> Outcome:
        started = time.monotonic()
        try:
            response = await client.request(method, path, json=body)
        except httpx.HTTPError as error:
            outcome = Outcome(started, time.monotonic() - started, kind, None, type(error).__name__)
        else:
            item_id = response.json()["id"] if response.status_code == 201 else None
            outcome = Outcome(
                started,
                time.monotonic() - started,
                kind,
                response.status_code,
                content_type=response.headers.get("content-type", ""),
                item_id=item_id,
            )
        self.outcomes.append(outcome)
        return outcome

    def finish(self) -> list[Outcome]:
        self.stopped.set()
        self.join(60)
        assert not self.is_alive(), "the load did not stop"
        return self.outcomes

    def wait_for(self, count: int, timeout: float = 30) -> None:
        """Until `count` more requests have been answered successfully."""
        target = sum(1 for outcome in self.outcomes if not outcome.failed) + count
        deadline = time.monotonic() + timeout
        while sum(1 for outcome in self.outcomes if not outcome.failed) < target:
            assert time.monotonic() < deadline, f"no {count} successful requests in {timeout}s"
            assert self.is_alive(), "the load stopped"
            time.sleep(0.05)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def failures(outcomes: list[Outcome]) -> Counter[str]:
    """Failed requests by kind: "write 503", "read ReadError", ..."""
    return Counter(
        f"{outcome.kind} {outcome.error or outcome.status}"
        for outcome in outcomes
        if outcome.failed
    )


def report(
    outcomes: list[Outcome],
    fault: tuple[float, float],
    *,
    lost: int,
    recovery: float | None = None,
    **extra: object,
) -> dict[str, object]:
    """The scenario's figures: requests, failures by kind, acknowledged writes lost, p50/p99
    (ms) outside and inside the fault window, and the recovery time (s)."""
    inside = [o.seconds for o in outcomes if fault[0] <= o.started <= fault[1]]
    outside = [o.seconds for o in outcomes if not fault[0] <= o.started <= fault[1]]

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    figures: dict[str, object] = {
        "requests": len(outcomes),
        "failed": dict(failures(outcomes)),
        "writes_acknowledged": sum(1 for o in outcomes if o.item_id is not None),
        "writes_lost": lost,
        "p50_ms_quiet": ms(percentile(outside, 0.5)),
        "p99_ms_quiet": ms(percentile(outside, 0.99)),
        "p50_ms_fault": ms(percentile(inside, 0.5)),
        "p99_ms_fault": ms(percentile(inside, 0.99)),
        "fault_seconds": round(fault[1] - fault[0], 2),
    }
    if recovery is not None:
        figures["recovery_seconds"] = round(recovery, 2)
    figures.update(extra)
    return figures


def acknowledged(outcomes: list[Outcome]) -> set[int]:
    return {outcome.item_id for outcome in outcomes if outcome.item_id is not None}


# --- Replicas and HAProxy --------------------------------------------------------------------


class Replica:
    """`<slug> serve` on a fixed port, so that a replacement takes the place of the one
    stopped (as a new pod takes its place behind a Service)."""

    def __init__(self, project: Path, slug: str, env: dict[str, str], port: int | None = None):
        self.project, self.slug, self.env = project, slug, env
        self.port = port or free_port()
        command = [str(project / ".venv" / "bin" / slug), "serve"]
        self.service = Service(project, command, service_env(env, port=self.port), self.port)

    def start(self) -> Replica:
        self.service.start()
        return self

    def replacement(self) -> Replica:
        """A new replica on this one's port, not started."""
        return Replica(self.project, self.slug, self.env, self.port)

    @property
    def pid(self) -> int:
        assert self.service.process is not None
        return self.service.process.pid

    def kill(self) -> None:
        process = self.service.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def replicas(project: Path, slug: str, env: dict[str, str], count: int) -> Iterator[list[Replica]]:
    """`count` replicas; whatever the list holds at the end (replacements too) is killed."""
    started = [Replica(project, slug, env) for _ in range(count)]
    try:
        # Booted together, as the pods of a Deployment are.
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(Replica.start, started))
        yield started
    finally:
        for replica in started:
            replica.kill()


@dataclass
class Timing:
    """How the generated Kubernetes manifests hand traffic over during a rolling update."""

    period: float  # readinessProbe.periodSeconds
    failures: int  # readinessProbe.failureThreshold
    drain: float  # SHUTDOWN_DRAIN_SECONDS
    graceful: float  # GRACEFUL_SHUTDOWN_TIMEOUT
    grace: float  # terminationGracePeriodSeconds
    # The rolling update's bounds; None for a Deployment that recreates its one pod (a SQLite
    # file on a volume): that pod is replaced with a gap by design.
    max_unavailable: object
    max_surge: object
    # Seconds for kube-proxy (or a load balancer) to act on a failed probe (copier.yml).
    endpoint_lag: float = field(
        default_factory=lambda: float(copier_questions()["endpoint_lag_seconds"]["default"])
    )

    @property
    def unready_after(self) -> float:
        """Seconds after SIGTERM by which no new request reaches the pod."""
        return self.period * self.failures + self.endpoint_lag

    def gaps(self) -> list[str]:
        """What would let a request reach a pod that stopped serving, or cut one short."""
        found = []
        if self.drain <= self.unready_after:
            found.append(
                f"SHUTDOWN_DRAIN_SECONDS {self.drain:g} <= readiness periodSeconds {self.period:g}"
                f" x failureThreshold {self.failures} + endpoint lag {self.endpoint_lag:g}"
            )
        if self.grace <= self.drain + self.graceful:
            found.append(
                f"terminationGracePeriodSeconds {self.grace:g} <= SHUTDOWN_DRAIN_SECONDS"
                f" {self.drain:g} + GRACEFUL_SHUTDOWN_TIMEOUT {self.graceful:g}"
            )
        if self.max_unavailable not in (None, 0, "0", "0%"):
            found.append(f"maxUnavailable {self.max_unavailable}: a rollout drops capacity")
        return found


def timing_from(deployment: dict[str, Any], env: dict[str, str]) -> Timing:
    """The Timing of a Deployment and the environment its pods get."""
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (app,) = pod["containers"]
    probe = app["readinessProbe"]
    rolling = spec["strategy"].get("rollingUpdate", {"maxUnavailable": None, "maxSurge": None})
    return Timing(
        period=float(probe.get("periodSeconds", 10)),
        failures=int(probe.get("failureThreshold", 3)),
        drain=float(env["SHUTDOWN_DRAIN_SECONDS"]),
        graceful=float(env["GRACEFUL_SHUTDOWN_TIMEOUT"]),
        grace=float(pod.get("terminationGracePeriodSeconds", 30)),
        max_unavailable=rolling.get("maxUnavailable", "25%"),
        max_surge=rolling.get("maxSurge", "25%"),
    )


def read_env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def project_timing(project: Path) -> Timing:
    """The Timing of a generated project's base manifests."""
    base = project / "deploy" / "kubernetes" / "base"
    deployment = yaml.safe_load((base / "deployment.yaml").read_text())
    return timing_from(deployment, read_env_file(base / "settings.env"))


class HAProxy:
    """Debian's haproxy in front of `ports`, checking /health/ready every `period` seconds and
    taking a server out after `failures` failed checks and in after one good one (as a
    Kubernetes readinessProbe with its default successThreshold)."""

    def __init__(self, ports: list[int], period: float, failures: int) -> None:
        self.port, self.stats_port = free_port(), free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="chf-haproxy-"))
        servers = "\n".join(
            f"    server r{n} 127.0.0.1:{port} check" for n, port in enumerate(ports)
        )
        # retries/redispatch: a connection that cannot be opened goes to another server
        # (HAProxy's defaults for a refused connection); nothing else is retried.
        config = f"""\
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend api
    bind 127.0.0.1:{self.port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter {int(period * 1000)}ms fall {failures} rise 1
{servers}
frontend stats
    bind 127.0.0.1:{self.stats_port}
    stats enable
    stats uri /stats
"""
        (self.folder / "haproxy.cfg").write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(self.folder / "haproxy.cfg")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def states(self) -> dict[str, str]:
        """Each server's status ("UP", "DOWN", "UP 1/2", ...)."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text
        header, *rows = text.splitlines()
        names = header.lstrip("# ").split(",")
        found = {}
        for row in rows:
            values = dict(zip(names, row.split(","), strict=False))
            if values.get("pxname") == "replicas" and values["svname"].startswith("r"):
                found[values["svname"]] = values["status"]
        return found

    def wait_until_up(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                states = self.states()
            except httpx.HTTPError:
                states = {}
            if sum(1 for status in states.values() if status == "UP") >= count:
                return
            time.sleep(0.1)
        raise AssertionError(f"HAProxy: not {count} servers up within {timeout}s: {states}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def haproxy(ports: list[int], period: float, failures: int) -> Iterator[HAProxy]:
    proxy = HAProxy(ports, period, failures)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


# --- Resources of a process ------------------------------------------------------------------


@dataclass
class Usage:
    """Resident memory (kB) and open descriptors of a process, sampled until stop()."""

    pid: int
    interval: float = 0.25
    rss_kb: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        self.rss_kb.append(int(rss.split()[1]))
        self.fds.append(len(os.listdir(f"/proc/{self.pid}/fd")))

    def start(self) -> None:
        def loop() -> None:
            while not self._stopped.wait(self.interval):
                try:
                    self.sample()
                except (OSError, StopIteration):
                    return

        self.sample()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread:
            self._thread.join(5)
