"""Observability of the generated services, checked with the real tools: promtool and a
Prometheus server scraping a booted service, an OTLP/HTTP receiver getting its spans, and a
Sentry-protocol receiver getting its error events."""

from __future__ import annotations

import gzip
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from auth_helpers import auth_boot_env, credentials
from conftest import Project, unavailable
from harness import free_port, run, running, serving

pytestmark = pytest.mark.variant


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        unavailable("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value in Prometheus' text format (0 when absent)."""
    wanted = sorted(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if (
            match
            and match.group(1) == name
            and sorted((match.group(2) or "").split(",")) == (wanted or [""])
        ):
            return float(match.group(3))
    return 0.0


def wait_for(predicate, timeout: float = 20, step: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    return predicate()


class Receiver:
    """A small HTTP server on 127.0.0.1 that keeps the body of every POST by path."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        received = self.posts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                received.append((self.path, body))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def access_line(service, request_id: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    def find() -> dict[str, object] | None:
        for line in service.logs():
            if line.get("event") == "request" and line.get("request_id") == request_id:
                return line
        return None

    found = wait_for(find, timeout=10)
    assert found, f"no access-log line for {request_id}:\n{service.output[-3000:]}"
    return found


PROMETHEUS = pytest.mark.variants(lambda v: v.named("has_metrics"))


@PROMETHEUS
def test_generated_rules_pass_promtool(project: Project) -> None:
    folder = project.path / "monitoring"
    for command in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ):
        result = subprocess.run(
            [promtool(), *command], cwd=folder, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
    rules = (folder / "alerts.yml").read_text()
    assert ("rate_limit_rejections" in rules) == project.named("has_limiter")
    dashboard = json.loads(next((folder / "grafana" / "dashboards").glob("*.json")).read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert any("http_request_duration_seconds_bucket" in expr for expr in exprs)


@PROMETHEUS
def test_live_metrics_pass_promtool_and_a_prometheus_server_scrapes_them(
    project: Project, database_env: dict[str, str], tmp_path: Path
) -> None:
    prometheus = shutil.which("prometheus")
    if not prometheus:
        unavailable("prometheus is not installed (Debian: apt-get install prometheus)")
    with serving(project.path, project.slug, database_env) as service:
        for _ in range(7):
            assert httpx.get(f"{service.url}/health/live").status_code == 200
        httpx.get(f"{service.url}/no/such/path")
        exposition = httpx.get(f"{service.url}/metrics").text
        checked = subprocess.run(
            [promtool(), "check", "metrics"],
            input=exposition,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr + exposition[:3000]
        assert (
            sample(
                exposition, "http_requests_total", method="GET", route="<unmatched>", status="4xx"
            )
            == 1
        )
        if project.named("has_db"):
            assert sample(exposition, "db_pool_capacity") >= 1

        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            f"scrape_configs:\n  - job_name: {project.slug}\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{service.port}']\n"
        )
        port = free_port()
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            query = (
                f'sum(http_requests_total{{job="{project.slug}",route="/health/live",'
                'status="2xx"})'
            )

            def scraped() -> float:
                try:
                    answer = httpx.get(
                        f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}
                    ).json()
                except (httpx.HTTPError, ValueError):
                    return 0.0
                result = answer.get("data", {}).get("result", [])
                return float(result[0]["value"][1]) if result else 0.0

            # 7 requests above, plus the probes that waited for the service to start.
            assert wait_for(lambda: scraped() >= 7, timeout=30), server.stderr
        finally:
            server.terminate()
            server.wait(30)


@PROMETHEUS
def test_two_workers_report_the_same_totals(project: Project, database_env: dict[str, str]) -> None:
    env = {**database_env, "WORKERS": "2"}
    labels = {"method": "GET", "route": "/health/live", "status": "2xx"}
    with serving(project.path, project.slug, env) as service:

        def workers() -> set[str]:
            return set(re.findall(r"Started server process \[(\d+)\]", service.output))

        assert len(wait_for(lambda: workers() if len(workers()) >= 2 else None)) == 2, (
            service.output
        )
        # Each scrape is answered by one worker, on a new connection each time.
        before = sample(httpx.get(f"{service.url}/metrics").text, "http_requests_total", **labels)
        for _ in range(40):
            with httpx.Client() as client:
                assert client.get(f"{service.url}/health/live").status_code == 200
        totals = set()
        for _ in range(10):
            with httpx.Client() as client:
                text = client.get(f"{service.url}/metrics").text
            totals.add(sample(text, "http_requests_total", **labels) - before)
        assert totals == {40}
        multiproc = [
            path
            for path in Path(tempfile.gettempdir()).glob(f"{project.slug}-metrics-*")
            if path.is_dir()
        ]
        assert multiproc, "serve did not create a PROMETHEUS_MULTIPROC_DIR"
        assert service.stop() == 0, service.output


@pytest.mark.variants(lambda v: v.named("has_backup_metrics"))
def test_backup_gauges_follow_the_target(
    project: Project, database_env: dict[str, str], tmp_path: Path
) -> None:
    """A backup made with the real command shows in the gauges of a running service (two
    workers, multiprocess mode) within the refresh interval, a newer one replaces it without a
    restart; a target that cannot be listed reads `backup_target_up 0`."""
    target = tmp_path / "backups"
    env = {**database_env, "BACKUP_TARGET": str(target), "BACKUP_METRIC_INTERVAL_SECONDS": "0.5"}

    def create_backup() -> float:
        before = set(target.glob("*.manifest.json"))
        created = run(project.path, project.slug, "backup", "create", env=env, timeout=300)
        assert created.returncode == 0, created.stdout + created.stderr
        (manifest,) = set(target.glob("*.manifest.json")) - before
        created_at = json.loads(manifest.read_text())["created_at"]
        return datetime.fromisoformat(created_at).timestamp()

    def gauges(service) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        with httpx.Client() as client:  # a new connection: any worker may answer
            text = client.get(f"{service.url}/metrics").text
        return (
            sample(text, "backup_target_up"),
            sample(text, "backup_last_success_timestamp_seconds"),
        )

    first = create_backup()
    with serving(project.path, project.slug, {**env, "WORKERS": "2"}) as service:
        assert wait_for(lambda: gauges(service) == (1.0, first)), (gauges(service), first)
        second = create_backup()
        assert second > first
        assert wait_for(lambda: gauges(service) == (1.0, second)), (gauges(service), second)
        # Every worker reports the same values, whichever answers the scrape.
        assert {gauges(service) for _ in range(10)} == {(1.0, second)}
        assert service.stop() == 0, service.output

    unreachable = {
        **database_env,
        "BACKUP_TARGET": "s3://backups/service",
        "BACKUP_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "BACKUP_METRIC_INTERVAL_SECONDS": "0.5",
    }
    with serving(project.path, project.slug, unreachable) as service:

        def logged() -> bool:
            return any(line.get("event") == "backup.target_unreachable" for line in service.logs())

        assert wait_for(logged, timeout=60), service.output[-3000:]
        assert gauges(service) == (0.0, 0.0)
        # The service itself is unaffected: no readiness check depends on the backups (an
        # OIDC variant's issuer does not run here, so the checks of its calls may be down).
        ready = httpx.get(f"{service.url}/health/ready")
        checks = ready.json()["checks"]
        down = {name for name, check in checks.items() if check["status"] != "ok"}
        issuer = {"oidc", "outbound"} if project.variant.has("auth", "oidc") else set()
        assert down <= issuer, ready.text
        assert service.stop() == 0, service.output


@pytest.mark.variants(lambda v: v.named("has_tracing"))
def test_spans_reach_an_otlp_receiver_with_the_logged_trace_id(
    project: Project, database_env: dict[str, str], tmp_path: Path
) -> None:
    with Receiver() as receiver:
        env = {
            **database_env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        route = "/api/v1/items" if project.named("has_db") else "/openapi.json"
        with (
            auth_boot_env(project) as auth_env,
            serving(project.path, project.slug, {**env, **auth_env}) as service,
        ):
            headers = credentials(project, service) if project.named("has_db") else {}
            response = httpx.get(
                f"{service.url}{route}", headers={**headers, "X-Request-ID": "otlp-1"}
            )
            assert response.status_code == 200, response.text
            logged = access_line(service, "otlp-1")
            assert wait_for(lambda: any(p == "/v1/traces" for p, _ in receiver.posts))
            assert service.stop() == 0, service.output  # flushes the last spans
        bodies = [body for path, body in receiver.posts if path == "/v1/traces"]
    for index, body in enumerate(bodies):
        (tmp_path / f"{index}.pb").write_bytes(body)
    decode = (
        "import json, sys, pathlib\n"
        "from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import "
        "ExportTraceServiceRequest\n"
        "spans = []\n"
        "for path in sorted(pathlib.Path(sys.argv[1]).glob('*.pb')):\n"
        "    request = ExportTraceServiceRequest.FromString(path.read_bytes())\n"
        "    for resource in request.resource_spans:\n"
        "        service = {a.key: a.value.string_value for a in resource.resource.attributes}\n"
        "        for scope in resource.scope_spans:\n"
        "            for span in scope.spans:\n"
        "                attributes = {a.key: a.value.string_value or a.value.int_value\n"
        "                              for a in span.attributes}\n"
        "                spans.append({'name': span.name, 'trace_id': span.trace_id.hex(),\n"
        "                              'service': service, 'attributes': attributes})\n"
        "print(json.dumps(spans))\n"
    )
    result = run(project.path, "python", "-c", decode, str(tmp_path))
    assert result.returncode == 0, result.stderr
    spans = json.loads(result.stdout)
    server = [s for s in spans if s["attributes"].get("http.route") == route]
    assert server, spans
    assert server[0]["trace_id"] == logged["trace_id"]
    assert server[0]["service"]["service.name"] == project.slug
    assert not [s for s in spans if "/health/" in str(s["attributes"].get("http.route", ""))]
    if project.named("has_db"):
        in_trace = [s for s in spans if s["trace_id"] == logged["trace_id"]]
        assert any("db.system" in s["attributes"] for s in in_trace), in_trace


SENTRY_WRAPPER = '''"""The service plus a route that fails: an unhandled error as Sentry sees it."""

from {package}.main import create_app as create_service


def create_app():
    app = create_service()

    @app.get("/test-only/explode")
    async def explode() -> None:
        raise RuntimeError("exploded on purpose")

    return app
'''


def envelope_events(body: bytes) -> list[dict[str, object]]:
    """The error events of a Sentry envelope (header line, then item header + payload pairs)."""
    lines = body.split(b"\n")
    events = []
    for header, payload in zip(lines[1::2], lines[2::2], strict=False):
        if json.loads(header).get("type") == "event":
            events.append(json.loads(payload))
    return events


@pytest.mark.variants(lambda v: v.named("has_sentry"))
def test_unhandled_errors_reach_sentry_with_the_request_id(
    project: Project, database_env: dict[str, str], tmp_path: Path
) -> None:
    """The generated service has no failing route, and must not get one for a test: a
    wrapper module in a temporary folder builds the real app with `create_app` and adds a
    route that raises, served by uvicorn from the project's environment."""
    (tmp_path / "failing_service.py").write_text(SENTRY_WRAPPER.format(package=project.package))
    python = str(project.path / ".venv" / "bin" / "python")
    command = [
        python, "-m", "uvicorn", "--app-dir", str(tmp_path), "--factory",
        "failing_service:create_app", "--host", "127.0.0.1", "--port", "{port}",
    ]  # fmt: skip
    with Receiver() as receiver:
        env = {**database_env, "SENTRY_DSN": f"http://public@127.0.0.1:{receiver.port}/1"}
        with running(project.path, command, env) as service:
            failed = httpx.get(
                f"{service.url}/test-only/explode", headers={"X-Request-ID": "sentry-500"}
            )
            missing = httpx.get(f"{service.url}/no/such/path", headers={"X-Request-ID": "s-404"})
            assert missing.status_code == 404

            def events() -> list[dict[str, object]]:
                return [
                    event
                    for path, body in list(receiver.posts)
                    if path == "/api/1/envelope/"
                    for event in envelope_events(body)
                ]

            assert wait_for(events), service.output[-3000:]
            time.sleep(1)  # anything else would have arrived by now
            received = events()
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["request_id"] == "sentry-500"
    assert "exploded on purpose" not in failed.text and "Traceback" not in failed.text
    assert len(received) == 1, received
    event = received[0]
    assert event["tags"]["request_id"] == "sentry-500"  # type: ignore[index]
    values = event["exception"]["values"]  # type: ignore[index]
    assert values[-1]["type"] == "RuntimeError"
    assert values[-1]["value"] == "exploded on purpose"
