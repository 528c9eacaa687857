"""The README's first command, `python3 dev.py demo`, as a user runs it: it generates the
default service, installs it, serves it, and stopping the demo stops the server with it."""

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


def test_demo_serves_and_takes_its_server_down_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    # DATABASE_URL as CI exports it for the PostgreSQL variants: the demo must not follow it.
    env = {
        **uv_env(),
        "DEV_DEMO_DIR": str(tmp_path / "demo"),
        "PORT": str(port),
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    }
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "dev.py"), "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600  # renders and installs the service first
        while True:
            assert demo.poll() is None, "".join(lines)
            # Probed only once the demo has started its server: before that, another test's
            # server could have been given the same free port and answer in its place.
            if not any("serving on" in line for line in lines):
                assert time.monotonic() < deadline, "".join(lines)
                time.sleep(0.5)
                continue
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        demo.send_signal(signal.SIGTERM)  # the demo only, not its process group
        # The drain (5 s) and the graceful shutdown, with room for a loaded machine.
        try:
            status = demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError("the demo outlived SIGTERM by 120 s:\n" + "".join(lines)) from None
        assert status == 0, "".join(lines)
        reader.join(timeout=5)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, "the server outlived the demo"
        output = "".join(lines)
        assert f"uv is at {Path(sys.executable).parent / 'uv'}" in output
        assert f"serving on http://127.0.0.1:{port}" in output
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
