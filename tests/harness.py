"""Render, install and boot generated services: shared by the tests and the benchmarks.

Everything runs the real tools a user runs: the `copier` CLI, `uv`, and the generated
service's own console script as a separate process on a free 127.0.0.1 port.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# checkov pins an older `packaging` than pytest, so it runs in an environment of its own (uv's
# cache keeps it between runs); --skip-download: no call to its vendor's API.
CHECKOV_VERSION = "3.3.30"


def checkov_command() -> list[str]:
    return [
        tool("uv"),
        "tool",
        "run",
        "--quiet",
        "--from",
        f"checkov=={CHECKOV_VERSION}",
        "checkov",
        "--quiet",
        "--compact",
        "--skip-download",
    ]


def tool(name: str) -> str:
    """A tool installed next to this interpreter (the template's own environment)."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: run the README's test command")
    return found


@functools.cache
def copier_questions() -> dict[str, Any]:
    """copier.yml's questions and computed values (read once per process)."""
    data = yaml.safe_load((ROOT / "copier.yml").read_text())
    return {key: value for key, value in data.items() if not key.startswith("_")}


def choices(question: str) -> list[str]:
    """The values of a multiple-choice question (a choice may carry its own validator)."""
    spec = copier_questions()[question]["choices"]
    values = spec.values() if isinstance(spec, dict) else spec
    return [value["value"] if isinstance(value, dict) else value for value in values]


def named_conditions() -> dict[str, str]:
    """copier.yml's computed yes/no values (`has_db`, ...) and the expression of each."""
    return {
        key: spec["default"]
        for key, spec in copier_questions().items()
        if spec.get("when") is False and spec.get("type") == "bool"
    }


def render(
    dest: Path, answers: Mapping[str, str | list[str]], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`copier copy` this template with `answers` and defaults for the rest.

    The template is taken as it is in this checkout (`--vcs-ref HEAD`, uncommitted changes
    included), not at its newest release tag."""
    command = [tool("copier"), "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "HEAD"]
    for key, value in answers.items():
        text = f"[{', '.join(value)}]" if isinstance(value, list) else value
        command += ["--data", f"{key}={text}"]
    command += [str(ROOT), str(dest)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(
            f"copier failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def copy_in_process(dest: Path, answers: Mapping[str, Any]) -> None:
    """`copier copy` this checkout in this process (copier's `run_copy`), with `answers` and
    defaults for the rest, copy-time tasks skipped: the files are the template's, `.env` and
    `uv.lock` are not written. A refused answer raises copier's ValueError, whose message is
    the last line the CLI prints."""
    import copier

    with warnings.catch_warnings():
        # Uncommitted template changes are what a reader of the renders wants to see.
        warnings.simplefilter("ignore", copier.errors.DirtyLocalWarning)
        copier.run_copy(
            str(ROOT),
            dest,
            data=dict(answers),
            defaults=True,
            unsafe=True,
            quiet=True,
            skip_tasks=True,
            vcs_ref="HEAD",
        )


def render_variants(target: Path) -> Iterator[tuple[str, Path]]:
    """Render every declared variant into `target/<variant id>` (replacing an earlier render)
    with `copy_in_process`."""
    from variants import VARIANTS

    target.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS:
        dest = target / variant.id
        if dest.exists():
            shutil.rmtree(dest)
        copy_in_process(dest, variant.answers)
        yield variant.id, dest


def find_python(version: str) -> str:
    """An interpreter for `version`: on PATH, in pyenv, or let uv find or fetch one."""
    for candidate in (
        shutil.which(f"python{version}"),
        *sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}")),
    ):
        if (
            candidate
            and subprocess.run([str(candidate), "--version"], capture_output=True).returncode == 0
        ):
            return str(candidate)
    return version


def uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env.setdefault("UV_LINK_MODE", "copy")
    return env


def install(project: Path, python_version: str) -> None:
    """`uv sync` the generated project (dev group included) with the shared uv cache."""
    result = subprocess.run(
        [tool("uv"), "sync", "--quiet", "--python", find_python(python_version)],
        cwd=project,
        capture_output=True,
        text=True,
        env=uv_env(),
        timeout=900,
    )
    if result.returncode != 0:
        raise AssertionError(f"uv sync failed in {project}:\n{result.stdout}\n{result.stderr}")


def install_default(project: Path) -> Path:
    """Render the default answers into `project` and install it (the benchmarks' subject)."""
    render(project, {})
    install(project, str(copier_questions()["python_version"]["default"]))
    return project


def run(
    project: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command from the project's own virtual environment."""
    executable = project / ".venv" / "bin" / args[0]
    full_env = {**uv_env(), **(env or {})}
    full_env["PATH"] = f"{project / '.venv' / 'bin'}{os.pathsep}{full_env.get('PATH', '')}"
    return subprocess.run(
        [str(executable), *args[1:]],
        cwd=project,
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` (or one of its children) holds the socket listening on 127.0.0.1's
    `port`, read from /proc (a service whose bind failed exits, but another may answer)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    for owner in pids:
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{owner}/fd").iterdir()}
        except OSError:  # gone, or not ours to read
            continue
        if links & inodes:
            return True
    return False


@dataclass
class Service:
    """A generated service running as its own process: `<slug> serve`."""

    project: Path
    command: list[str]
    env: dict[str, str]
    port: int
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen(
            self.command,
            cwd=self.project,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"service exited with {self.process.returncode}:\n{self.output}"
                )
            try:
                answered = httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                answered = False
            # Between free_port() and the bind another process may take the port: the answer
            # counts only once this process's own socket listens on it.
            if answered and listens_on(self.process.pid, self.port):
                return
            time.sleep(0.1)
        raise AssertionError(f"service did not answer within {timeout}s:\n{self.output}")

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line the service printed so far."""
        parsed = []
        for line in list(self.lines):
            try:
                parsed.append(json.loads(line))
            except ValueError:
                continue
        return parsed

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(
                f"service ignored signal {sig} for {timeout}s:\n{self.output}"
            ) from None
        if self._reader:
            self._reader.join(timeout=5)
        return code


def service_env(extra: Mapping[str, str] | None = None, *, port: int) -> dict[str, str]:
    env = uv_env()
    env.update(
        {
            "APP_ENV": "development",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@contextmanager
def running(
    project: Path, command: list[str], extra_env: Mapping[str, str] | None = None
) -> Iterator[Service]:
    """Run `command` ("{port}" in it becomes a free port) until /health/live answers;
    SIGKILL it on the way out if it is still running."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    service = Service(project, command, service_env(extra_env, port=port), port)
    service.start()
    try:
        yield service
    finally:
        if service.process and service.process.poll() is None:
            os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait()


@contextmanager
def serving(
    project: Path, slug: str, extra_env: Mapping[str, str] | None = None
) -> Iterator[Service]:
    """Boot the generated service's own `<slug> serve`."""
    with running(project, [str(project / ".venv" / "bin" / slug), "serve"], extra_env) as service:
        yield service
