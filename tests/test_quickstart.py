"""The README's first command, `python3 dev.py demo`, as a user runs it: it generates the
default service, installs it, serves it, and stopping the demo stops the server with it:
Ctrl+C in a terminal (SIGINT to the whole foreground process group) and SIGTERM to the demo
alone (a supervisor's `kill`) both end in a complete graceful shutdown and exit status 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from harness import ROOT, free_port, uv_env


class Demo:
    """`python3 dev.py demo` in a session of its own, as a shell starts a foreground job."""

    def __init__(self, demo_dir: Path, port: int) -> None:
        self.port = port
        # DATABASE_URL as CI exports it for the PostgreSQL variants: the demo must not follow it.
        env = {
            **uv_env(),
            "DEV_DEMO_DIR": str(demo_dir),
            "PORT": str(port),
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
        }
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "dev.py"), "demo"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its process group is the job a terminal signals
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(self.process.stdout or []), daemon=True
        )
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + 600  # renders and installs the service first
        while True:
            assert self.process.poll() is None, self.output
            # Probed only once the demo has started its server: before that, another test's
            # server could have been given the same free port and answer in its place.
            if any("serving on" in line for line in self.lines):
                try:
                    url = f"http://127.0.0.1:{self.port}/health/live"
                    if httpx.get(url, timeout=2).is_success:
                        return
                except httpx.HTTPError:
                    pass
            assert time.monotonic() < deadline, self.output
            time.sleep(0.5)

    def stopped(self) -> int:
        # The drain (5 s) and the graceful shutdown, with room for a loaded machine.
        try:
            status = self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError("the demo outlived its stop by 120 s:\n" + self.output) from None
        self.reader.join(timeout=5)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", self.port)) != 0, "the server outlived the demo"
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def assert_clean_shutdown(status: int, output: str) -> None:
    assert status == 0, output
    assert "Traceback" not in output and "CancelledError" not in output, output
    assert "shutdown.complete" in output, output
    assert "rate_limit.closed" in output, output  # the last resource the lifespan closes


def test_demo_stops_cleanly_on_ctrl_c_and_on_sigterm(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    port = free_port()
    demo = Demo(demo_dir, port)
    try:
        demo.wait_until_serving()
        os.killpg(demo.process.pid, signal.SIGINT)  # what Ctrl+C in a terminal does
        assert_clean_shutdown(demo.stopped(), demo.output)
    finally:
        demo.kill()
    output = demo.output
    assert f"uv is at {Path(sys.executable).parent / 'uv'}" in output
    assert f"serving on http://127.0.0.1:{port}" in output
    assert f"`cd {demo_dir} && .venv/bin/my-service create-user --role admin admin`" in output

    # Started again (the service exists: booted as it is), stopped by SIGTERM to the demo alone.
    demo = Demo(demo_dir, free_port())
    try:
        demo.wait_until_serving()
        demo.process.send_signal(signal.SIGTERM)  # the demo only, not its process group
        assert_clean_shutdown(demo.stopped(), demo.output)
    finally:
        demo.kill()
    assert "exists: booting it as it is" in demo.output
