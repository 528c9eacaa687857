"""Each declared variant: rendered cleanly, lint- and type-clean, its own tests pass, and it
boots as a real process that answers over HTTP and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from auth_helpers import auth_boot_env, credentials
from conftest import Project, unavailable
from harness import BIN, Service, run, serving, uv_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from servers import Unavailable, redis_server
from variants import VARIANTS, Variant

pytestmark = pytest.mark.variant

TEXT_SUFFIXES = {
    ".py",
    ".toml",
    ".md",
    ".ini",
    ".yml",
    ".yaml",
    ".js",
    ".mako",
    ".example",
    ".cfg",
    "",
}
# Patterns that only another answer may leave in a generated project, by (question, answer);
# a multiselect option is ("question:option", "no") (case-insensitive unless the pattern has
# a capital letter).
TRACES: dict[tuple[str, str], tuple[str, ...]] = {
    ("database", "none"): (
        "database(?!=None)",  # Hypothesis's `database=None` is its (absent) example store
        "sqlalchemy",
        "alembic",
        "sqlite",
        "postgres",
        "asyncpg",
        "/items",
        r"\bItem",
    ),
    ("database", "sqlite"): ("asyncpg", "postgres", "pool_size"),
    ("database", "postgresql"): ("aiosqlite", "sqlite"),
    # Secret names in the log redaction list (api_key, refresh_token, X-API-Key) and the
    # metrics token's WWW-Authenticate challenge belong to every variant: the patterns name
    # the code of each scheme instead.
    ("auth", "none"): (
        "jwt",
        "argon2",
        "pwdlib",
        "APIKeyHeader",
        "create-api-key",
        "oidc",
        "jwks",
        r"from \.auth\b",
        "require_role",
        "require_identity",
        "create-user",
    ),
    ("auth", "api_key"): (
        "jwt",
        "pwdlib",
        "argon2",
        "oidc",
        "jwks",
        "RefreshToken",
        "/auth/refresh",
        "create-user",
    ),
    ("ci", "github"): ("gitlab",),
    ("ci", "gitlab"): ("dependabot", "GITHUB_", r"\.github"),
    ("ci", "none"): ("dependabot", "gitlab", r"\.github", "GITHUB_"),
    ("auth", "jwt"): ("APIKeyHeader", "create-api-key", "ApiKey", "oidc", "jwks", r"\bhttpx\b"),
    ("auth", "jwt_api_key"): ("oidc", "jwks", r"\bhttpx\b"),
    ("auth", "oidc"): (
        "pwdlib",
        "argon2",
        "APIKeyHeader",
        "create-api-key",
        "RefreshToken",
        "/auth/refresh",
        "JWT_SECRET",
        "create-user",
        # The form parser of the token endpoint (not S3's multipart uploads of the backups).
        r"python.multipart",
    ),
    ("rate_limiter", "none"): (
        # The `limits` library (not httpx's connection limits of the outbound client).
        r"\b(?:from|import) limits\b",
        r'"limits[<>=]',
        r"rate.?limit",
        "ratelimit",
        "Too many requests",
        "redis",
        "sliding window",
    ),
    ("rate_limiter", "memory"): ("redis", "fail_closed", "fails open"),
    ("rate_limiter", "redis"): ("MemoryStorage", "memory of each process"),
    ("observability:prometheus", "no"): (
        "prometheus",
        "/metrics",
        "metrics_token",
        "grafana",
        "http_requests",
    ),
    ("observability:otel", "no"): (
        "opentelemetry",
        r"\botel",
        "trace_id",
        r"\.tracing\b",
        "TracingSettings",
        "otlp",
    ),
    ("observability:sentry", "no"): ("sentry",),
}


def project_files(root: Path) -> list[Path]:
    skip = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__", "data"}
    return [
        path
        for path in root.rglob("*")
        if path.is_file()
        and not skip.intersection(path.relative_to(root).parts)
        and path.name not in {"uv.lock", ".env"}
    ]


def read_texts(root: Path) -> dict[Path, str]:
    texts = {}
    for path in project_files(root):
        if path.suffix in TEXT_SUFFIXES or path.name.startswith("."):
            texts[path] = path.read_text(encoding="utf-8")
    return texts


# GitHub Actions expressions (`${{ github.ref }}`) and metadata-action's tag patterns
# (`pattern={{version}}`) are the workflow files' own syntax.
WORKFLOW_EXPRESSION = re.compile(r"\$\{\{.*?\}\}|pattern=\{\{[a-z.}{]*\}\}")


def without_workflow_expressions(path: Path, text: str) -> str:
    return WORKFLOW_EXPRESSION.sub("", text) if ".github" in path.parts else text


BY_VARIANT = pytest.mark.parametrize("variant", VARIANTS, ids=lambda variant: variant.id)


@pytest.mark.fast
@pytest.mark.xdist_group("rendered")  # with the other users of `rendered`: one render a run
class TestRendering:
    """The files of each variant as copier renders them (the `rendered` fixture): no install."""

    @BY_VARIANT
    def test_no_template_leftovers(self, rendered: dict[str, Path], variant: Variant) -> None:
        root = rendered[variant.id]
        leftovers = [
            f"{path.relative_to(root)}: {marker}"
            for path, text in read_texts(root).items()
            for marker in ("{{", "{%", "{#", "%}", "}}")
            if marker in without_workflow_expressions(path, text)
            and not path.name.endswith(".mako")
        ]
        names = [p for p in root.rglob("*") if "{" in p.name or p.name.endswith(".jinja")]
        assert leftovers == []
        assert names == []

    @BY_VARIANT
    def test_unchosen_options_leave_no_trace(
        self, rendered: dict[str, Path], variant: Variant
    ) -> None:
        root = rendered[variant.id]
        words = [
            word
            for (question, answer), patterns in TRACES.items()
            if variant.resolved[question] == answer
            for word in patterns
        ]
        found = [
            f"{path.relative_to(root)}: {word}"
            for path, text in read_texts(root).items()
            if path.name != ".copier-answers.yml"
            for word in words
            if re.search(word, text, 0 if word.lower() != word else re.IGNORECASE)
        ]
        assert found == []


class TestCopy:
    """What the copy-time tasks write, and the installed package's settings."""

    def test_secrets_stay_out_of_git_and_answers(self, project: Project) -> None:
        env_file = project.path / ".env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        example = (project.path / ".env.example").read_text()
        env_lines, example_lines = env_file.read_text().splitlines(), example.splitlines()
        # .env is .env.example with the secrets filled in, then the Compose stack's own
        # secrets (read by compose.yaml, not by the service) in a block of their own.
        service_lines, stack_lines = (
            env_lines[: len(example_lines)],
            env_lines[len(example_lines) :],
        )
        generated = {
            line.split("=", 1)[0]: line.split("=", 1)[1]
            for line, template in zip(service_lines, example_lines, strict=True)
            if line != template
        }
        generated |= dict(line.split("=", 1) for line in stack_lines if "=" in line)
        secrets = ["JWT_SECRET_KEY"] if project.named("has_users") else []
        if project.named("has_backups"):
            secrets.append("BACKUP_SIGNING_KEY")
        if project.named("has_compose") and project["database"] == "postgresql":
            secrets.append("POSTGRES_PASSWORD")
        assert sorted(generated) == sorted(secrets)
        answers = (project.path / ".copier-answers.yml").read_text()
        for value in generated.values():
            assert len(value) >= 43
            assert value not in answers
        subprocess.run(["git", "init", "-q"], cwd=project.path, check=True)
        ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=project.path)
        assert ignored.returncode == 0, ".env must be git-ignored"
        kept = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=project.path)
        assert kept.returncode == 1, ".env.example must be committed"
        if project.named("has_backups"):
            # The default BACKUP_TARGET: dumps of every table, never committed nor built in.
            dump = "backups/x-20261130T231500Z.dump"
            ignored = subprocess.run(["git", "check-ignore", "-q", dump], cwd=project.path)
            assert ignored.returncode == 0, "backups/ must be git-ignored"
            assert "\nbackups\n" in (project.path / ".dockerignore").read_text()

    def test_env_example_lists_every_setting(self, project: Project) -> None:
        listed = {
            line.split("=", 1)[0]
            for line in (project.path / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")
        }
        code = (
            f"from {project.package}.settings import Settings;"
            "print(' '.join(sorted(n.upper() for n in Settings.model_fields)))"
        )
        result = run(project.path, "python", "-c", code)
        assert result.returncode == 0, result.stderr
        assert listed == set(result.stdout.split())


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for every variant (and every xdist worker) of the run.

    mypy checks each cached module against its file's size and hash, so a variant reuses
    what another one already analysed (the dependencies, mostly) and rechecks the rest; its
    cache files are replaced atomically, so workers can share the directory.
    """
    return tmp_path_factory.getbasetemp().parent / "mypy-cache"


class TestQuality:
    """The Makefile's `check` and `test`: the commands of the variant's CI pipeline
    (test_ci.py checks that the pipeline runs exactly these), run here for every variant."""

    def test_make_check(self, project: Project, mypy_cache: Path) -> None:
        result = make(project, "check", {"MYPY_CACHE_DIR": str(mypy_cache)})
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert "Success: no issues found" in result.stdout
        if project.named("has_metrics"):
            if os.environ.get("CI") or shutil.which("promtool"):
                assert "SUCCESS" in result.stdout  # promtool test rules
            else:
                assert "alert-rule tests skipped" in result.stderr

    @pytest.mark.variants(lambda v: v.id == "default")
    def test_make_check_without_promtool(
        self, project: Project, mypy_cache: Path, tmp_path: Path
    ) -> None:
        """A new machine: no promtool on PATH. On a workstation one line says what to install
        and only the alert rules' tests are skipped; in CI (`CI` set) the check fails."""
        path = path_without("promtool", tmp_path / "path")
        env = {"MYPY_CACHE_DIR": str(mypy_cache), "PATH": path}
        local = make(project, "check", env, unset=("CI",))
        assert local.returncode == 0, local.stdout[-6000:] + local.stderr[-3000:]
        assert "Success: no issues found" in local.stdout  # the other steps all ran
        [line] = [line for line in local.stderr.splitlines() if "promtool" in line]
        assert line.startswith("make check: promtool not found, alert-rule tests skipped")
        assert "apt-get install prometheus" in line
        assert "No such file" not in local.stderr

        ci = make(project, "check", {**env, "CI": "true"})
        assert ci.returncode != 0, ci.stdout[-3000:]
        assert "make check: promtool not found (install the prometheus package); CI needs it" in (
            ci.stderr
        )

    @pytest.mark.variants(lambda v: v.id in {"default", "open-pg-redis", "oidc-sqlite"})
    def test_make_check_deploy(self, project: Project) -> None:
        # hadolint, and each overlay through kubectl kustomize and kubernetes-validate, from
        # the project's deploy-checks dependency group (tests/test_kubernetes.py and
        # test_container.py hold every variant's deeper checks).
        result = make(project, "check-deploy", {})
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        overlays = 2 if project.named("has_kubernetes") else 0
        assert result.stdout.count("==> deploy/kubernetes/overlays/") == overlays

    def test_make_test(self, project: Project, service_env: dict[str, str]) -> None:
        # service_env: TEST_DATABASE_URL and REDIS_URL, which the pipeline sets, where chosen.
        result = make(project, "test", {**service_env, "PYTEST_ADDOPTS": "-q -p no:cacheprovider"})
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert re.search(r"\d+ passed", result.stdout)
        assert "skipped" not in result.stdout.splitlines()[-1]


def make(
    project: Project, target: str, env: dict[str, str], unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`make TARGET` in the project, as CI runs it: uv (the template's own) on PATH (before
    `env`'s PATH, when it gives one), without the variables named in `unset`."""
    path = f"{BIN}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"
    full_env = {**uv_env(), **env, "PATH": path}
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=900,
    )


def path_without(program: str, shadows: Path) -> str:
    """PATH with `program` taken out: each directory that holds it is replaced by a directory
    of links to everything else in it."""
    directories = []
    for index, directory in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        if not (Path(directory) / program).exists():
            directories.append(directory)
            continue
        shadow = shadows / str(index)
        shadow.mkdir(parents=True)
        for entry in Path(directory).iterdir():
            if entry.name != program:
                (shadow / entry.name).symlink_to(entry)
        directories.append(str(shadow))
    return os.pathsep.join(directories)


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def raw_request(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head)
    return sock


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            match = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
            if match and len(body) >= int(match.group(1)):
                break
    return data


BOOT_ENV = {"MAX_REQUEST_BODY_BYTES": "1000", "SHUTDOWN_DRAIN_SECONDS": "1.5"}
# Quotas out of reach, so that Schemathesis reaches the routes rather than 429.
UNLIMITED_ENV = {
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_AUTHENTICATED": "1000000/minute",
    "RATE_LIMIT_LOGIN": "1000000/minute",
}
# A body not complete 2 s after its head is answered 408 (check_slow_body).
BODY_TIMEOUT_ENV = {"REQUEST_BODY_TIMEOUT_SECONDS": "2"}
# Generated requests per operation and caller (anonymous, and an admin where there is one).
SCHEMATHESIS_EXAMPLES = 5


@pytest.fixture(scope="session")
def service_env(project: Project, database_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """database_env, and REDIS_URL (REDIS_URL or a private server) for the Redis limiter."""
    if project["rate_limiter"] != "redis":
        yield database_env
        return
    try:
        with redis_server() as url:
            yield {**database_env, "REDIS_URL": url}
    except Unavailable as error:
        unavailable(f"Redis: {error}")


@dataclass
class Served:
    """One variant's service, booted once for TestServing, with an admin's request headers
    (none without a database) and a client sending its request head slowly since the boot."""

    service: Service
    headers: dict[str, str]
    slow_head: SlowHead


class TestServing:
    """The booted service over HTTP and raw sockets: one process per variant for the whole
    class (its tests run in this order; the last one stops it)."""

    @pytest.fixture(scope="class")
    def served(self, project: Project, service_env: dict[str, str]) -> Iterator[Served]:
        env = {**service_env, **BOOT_ENV, **UNLIMITED_ENV, **BODY_TIMEOUT_ENV}
        with (
            auth_boot_env(project) as auth_env,
            serving(project.path, project.slug, {**env, **auth_env}) as service,
        ):
            slow_head = SlowHead(service)
            slow_head.start()
            headers = credentials(project, service) if project.named("has_db") else {}
            yield Served(service, headers, slow_head)

    def test_probes_headers_and_problems(self, project: Project, served: Served) -> None:
        check_probes(served.service, project)

    @pytest.mark.variants(lambda v: v.named("has_db"))
    def test_items_over_http(self, served: Served) -> None:
        check_items(served.service, served.headers)

    @pytest.mark.variants(lambda v: v.named("has_db"))
    def test_a_slow_body_is_answered_408(self, served: Served) -> None:
        check_slow_body(served.service, served.headers)

    def test_no_operation_answers_a_server_error(
        self, served: Served, record_property: Callable[[str, object], None]
    ) -> None:
        record_property("schemathesis", check_no_server_error(served.service, served.headers))

    def test_request_heads_are_bounded(self, served: Served) -> None:
        check_head_bounds(served.service)

    def test_malformed_and_unusual_requests_are_answered(self, served: Served) -> None:
        check_protocol_answers(served.service)

    def test_a_slow_head_is_cut_off_with_408(self, served: Served) -> None:
        """A head still incomplete 10 s after the connection opened is cut off with 408."""
        served.slow_head.join(20)
        answer, elapsed = served.slow_head.answer, served.slow_head.elapsed
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert 9.5 <= elapsed <= 13, elapsed

    def test_sigterm_stops_it_cleanly(self, served: Served) -> None:
        code = served.service.stop(signal.SIGTERM)
        assert code == 0, served.service.output
        assert "Traceback" not in served.service.output


class TestBoot:
    def test_sigterm_drains_then_finishes_the_in_flight_request(
        self, project: Project, service_env: dict[str, str]
    ) -> None:
        env = {**service_env, **BOOT_ENV, "TRUSTED_PROXIES": "127.0.0.1"}
        with (
            auth_boot_env(project) as auth_env,
            serving(project.path, project.slug, {**env, **auth_env}) as service,
        ):
            assert client_seen(service, forwarded_for="203.0.113.9") == "203.0.113.9"
            headers = credentials(project, service) if project.named("has_db") else {}
            slow = SlowRequest(service, project, headers)
            slow.start()
            slow.in_flight.wait(10)
            time.sleep(0.3)
            assert slow.outcome is None, "the slow request finished before SIGTERM"
            sent_at = time.monotonic()
            assert service.process is not None
            service.process.send_signal(signal.SIGTERM)
            time.sleep(0.4)
            # Draining: still serving, but no longer ready.
            draining = httpx.get(f"{service.url}/health/ready", timeout=5)
            assert_problem(draining, 503)
            assert draining.json()["detail"] == "The service is shutting down"
            assert httpx.get(f"{service.url}/health/live", timeout=5).status_code == 200
            slow.join(30)
            code = service.process.wait(60)
            elapsed = time.monotonic() - sent_at
        assert slow.outcome is not None and slow.outcome.startswith(slow.expected), slow.outcome
        assert code == 0, service.output
        events = [line.get("event") for line in service.logs()]
        assert "shutdown.draining" in events
        assert events.index("shutdown.draining") < events.index("shutdown.complete")
        if project.named("has_db"):
            assert events.index("database.closed") < events.index("shutdown.complete")
        assert elapsed >= 1.5, "the drain period was skipped"


class SlowHead(threading.Thread):
    """A client that sends its request head one header a second, until the server hangs up."""

    def __init__(self, service: Service) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.answer = b""
        self.elapsed = 0.0

    def run(self) -> None:
        started = time.monotonic()
        with raw_request(self.service.port, b"GET /health/live HTTP/1.1\r\nHost: x\r\n") as sock:
            sock.settimeout(1)
            try:
                while not self.answer:
                    try:
                        self.answer = sock.recv(65536) or b"closed"
                    except TimeoutError:
                        sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.answer = b"reset"
            self.answer += read_response(sock) if self.answer.startswith(b"HTTP") else b""
        self.elapsed = time.monotonic() - started


class SlowRequest(threading.Thread):
    """A request that is still being transferred when SIGTERM arrives.

    With a database it uploads an item body slowly; without one it downloads the Swagger UI
    bundle through a small receive window, so the server's response waits on the client.
    """

    def __init__(self, service: Service, project: Project, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.upload = project.named("has_db")
        self.expected = "HTTP/1.1 201" if self.upload else "HTTP/1.1 200"
        self.in_flight = threading.Event()
        self.outcome: str | None = None

    def run(self) -> None:
        try:
            self.outcome = self._upload() if self.upload else self._download()
        except Exception as error:  # reported through the outcome
            self.outcome = f"error: {error!r}"

    def _upload(self) -> str:
        body = b'{"name": "written during shutdown", "description": "' + b"x" * 200 + b'"}'
        head = (
            f"POST /api/v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{self.headers}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        sock = raw_request(self.service.port, head)
        with sock:
            for start in range(0, len(body), 20):
                sock.sendall(body[start : start + 20])
                self.in_flight.set()
                time.sleep(0.25)
            return read_response(sock).decode(errors="replace")

    def _download(self) -> str:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", self.service.port))
        with sock:
            sock.sendall(
                b"GET /docs-assets/vendor/swagger-ui-bundle.js HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Connection: close\r\n\r\n"
            )
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
                self.in_flight.set()
                time.sleep(0.004)
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            status = head.split(b"\r\n", 1)[0].decode()
            return status if len(body) == length else f"{status} (truncated {len(body)}/{length})"


def check_probes(service: Service, project: Project) -> None:
    base = service.url
    live = httpx.get(f"{base}/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert re.fullmatch(r"[0-9a-f]{32}", live.headers["x-request-id"])
    assert live.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert live.headers["x-content-type-options"] == "nosniff"
    assert live.headers["cache-control"] == "no-store"
    assert "server" not in live.headers

    ready = httpx.get(f"{base}/health/ready").json()
    assert ready["status"] == "ok"
    if project.named("has_db"):
        assert ready["checks"]["database"]["status"] == "ok"
    if project["rate_limiter"] == "redis":
        assert ready["checks"]["redis"]["status"] == "ok"
    assert httpx.get(f"{base}/health/startup").json() == {"status": "ok"}

    info = httpx.get(f"{base}/api/v1/info")
    assert info.status_code == 200 and info.json()["version"], info.text
    limited = project.named("has_limiter")
    assert ("ratelimit-policy" in info.headers) == limited
    assert ("ratelimit" in live.headers) is False

    kept = httpx.get(f"{base}/health/live", headers={"X-Request-ID": "probe-1234"})
    assert kept.headers["x-request-id"] == "probe-1234"

    missing = assert_problem(httpx.get(f"{base}/no/such/path"), 404)
    assert missing["title"] == "Not Found"

    too_large = httpx.post(f"{base}/health/live", content=b"x" * 5000)
    assert "1000 bytes" in str(assert_problem(too_large, 413)["detail"])

    access = access_log(service, "probe-1234")
    assert access["route"] == "/health/live" and access["status"] == 200
    # X-Forwarded-For is ignored unless the peer is one of TRUSTED_PROXIES (none here).
    assert client_seen(service, forwarded_for="203.0.113.9") == "127.0.0.1"


def check_no_server_error(service: Service, headers: dict[str, str]) -> str:
    """Schemathesis over HTTP: requests that the OpenAPI document allows, and requests that
    it refuses, for every operation, anonymously and with `headers`; none may get a 5xx."""
    sent = operations = 0
    for caller in [{}, headers] if headers else [{}]:
        schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
        # Sent with every request, never mutated; only this caller's (the loaded schemas share
        # one config, and update() adds to its headers).
        schema.config.headers = None
        schema.config.update(headers=caller)
        for path in schema:
            for method in schema[path]:
                operation = schema[path][method]
                operations += 1
                cases = st.one_of([operation.as_strategy(mode) for mode in GenerationMode])

                @given(case=cases)
                @settings(
                    max_examples=SCHEMATHESIS_EXAMPLES,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def answered_without_server_error(case: schemathesis.Case) -> None:
                    nonlocal sent
                    case.call_and_validate(checks=[not_a_server_error], timeout=10)
                    sent += 1

                answered_without_server_error()
    return f"{operations} operation runs, {sent} requests, no 5xx"


def assert_raw_problem(answer: bytes, status: int) -> dict[str, object]:
    """`answer`, raw bytes, is a problem+json response naming its X-Request-ID."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:300]
    assert b"content-type: application/problem+json" in head.lower(), head
    found = re.search(rb"x-request-id: ([0-9a-f]{32})", head, re.IGNORECASE)
    assert found, head
    problem: dict[str, object] = json.loads(body)
    assert problem["request_id"] == found[1].decode()
    return problem


def check_head_bounds(service: Service) -> None:
    """`serve` bounds each request head: over 32 KiB or over 100 headers is 431. Each head is
    counted alone: a head completed in the read that carries its body, and a kept-alive
    request after a body the service answered unread, are served."""
    large = f"X-Large: {'a' * 32 * 1024}\r\n"
    many = "".join(f"X-{n}: 1\r\n" for n in range(100))
    for extra in (large, many):
        head = f"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"
        with raw_request(service.port, head.encode()) as sock:
            answer = read_response(sock)
        assert_raw_problem(answer, 431)
    # 99 headers and a head just under 32 KiB, its last byte sent with a body of raw newlines.
    filler = "".join(f"X-{n}: 1\r\n" for n in range(95))
    body = b"\n" * 30_000
    head = (
        f"POST /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n{filler}"
        f"Content-Length: {len(body)}\r\nX-Pad: \r\nConnection: close\r\n\r\n"
    ).encode()
    head = head.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (32 * 1024 - len(head)))
    with raw_request(service.port, head[:-1]) as sock:
        time.sleep(0.2)
        sock.sendall(head[-1:] + body)
        answer = read_response(sock)
    assert_raw_problem(answer, 413)  # over MAX_REQUEST_BODY_BYTES: answered without reading it
    with httpx.Client(base_url=service.url) as client:
        for _ in range(20):
            assert client.post("/no-such-path", content=b"x\r\n" * 70_000).status_code in (404, 413)
            assert client.get("/health/live").status_code == 200


def check_protocol_answers(service: Service) -> None:
    """A malformed request, an absolute-form target naming another host and a WebSocket
    upgrade are answered like any request: problem+json with a request id, or served."""
    with raw_request(service.port, b"GET /health/live HTTP/1.1\nHost: 127.0.0.1\n\n") as sock:
        assert_raw_problem(read_response(sock), 400)
    evil = b"GET http://evil.example/api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with raw_request(service.port, evil) as sock:
        assert_raw_problem(read_response(sock), 400)
    upgrade = (
        b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with raw_request(service.port, upgrade) as sock:
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]


def check_slow_body(service: Service, headers: dict[str, str]) -> None:
    """A body still incomplete REQUEST_BODY_TIMEOUT_SECONDS after its head: 408, closed."""
    credential_lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = (
        "POST /api/v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{credential_lines}Content-Length: 100\r\n\r\n"
    )
    with raw_request(service.port, head.encode() + b'{"name": ') as sock:
        answer = read_response(sock)
        assert sock.recv(1) == b""  # closed
    problem = assert_raw_problem(answer, 408)
    assert problem["detail"] == "The request body did not arrive within 2 seconds"


def access_log(service: Service, request_id: str) -> dict[str, object]:
    """The access-log line of one request (it is written once the response is sent)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in service.logs():
            if line.get("event") == "request" and line.get("request_id") == request_id:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {request_id}:\n{service.output[-3000:]}")


def client_seen(service: Service, *, forwarded_for: str) -> object:
    request_id = f"xff-{time.monotonic_ns()}"
    headers = {"X-Forwarded-For": forwarded_for, "X-Request-ID": request_id}
    assert httpx.get(f"{service.url}/health/live", headers=headers).status_code == 200
    return access_log(service, request_id)["client"]


def check_items(service: Service, headers: dict[str, str]) -> None:
    """The example resource over HTTP, with the credentials of an admin (when auth is on)."""
    base = f"{service.url}/api/v1/items"
    client = httpx.Client(headers=headers)
    if headers:
        refused = httpx.post(base, json={"name": "anonymous"})
        assert_problem(refused, 401)
        assert refused.headers["www-authenticate"]
    created = client.post(base, json={"name": "booted", "description": "over a real socket"})
    assert created.status_code == 201, created.text
    item = created.json()
    url = f"{service.url}{created.headers['location']}"
    assert client.get(url, headers={"X-Request-ID": "item-read-1"}).json() == item
    assert client.patch(url, json={"name": "renamed"}).json()["name"] == "renamed"
    listing = client.get(base, params={"limit": 100}).json()
    assert item["id"] in [entry["id"] for entry in listing["items"]]
    errors = assert_problem(client.post(base, json={"name": ""}), 422)["errors"]
    assert errors and errors[0]["loc"] == ["body", "name"]  # type: ignore[index]
    assert client.delete(url).status_code == 204
    assert_problem(client.get(url), 404)

    # The access log names the route template, not the raw path.
    assert access_log(service, "item-read-1")["route"] == "/api/v1/items/{item_id}"

    # A chunked body is refused as soon as it crosses the limit, before it is all sent.
    credential_lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock = raw_request(
        service.port,
        b"POST /api/v1/items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + credential_lines.encode()
        + b"Transfer-Encoding: chunked\r\n\r\n",
    )
    with sock:
        for _ in range(3):
            sock.sendall(b"1f4\r\n" + b"y" * 500 + b"\r\n")
        # The terminating chunk is never sent: the answer must come anyway.
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"application/problem+json" in response
