"""Render time of each template variant: the real `copier copy` CLI, and in process.

In process is how the template's test suite renders (pytest-copie calls copier's `run_copy`,
copy-time tasks included): the difference is the CLI start-up each render saves there.

Each variant of tests/variants.py is rendered `--runs` times into a fresh temporary directory,
interleaved (default, variant 2, variant 3, default, ...) so that a noisy moment on the machine
is spread over the variants instead of falling on one of them. The time is the wall time of
the whole command as a user runs it: the copier process start-up, the questions, the
rendering and the `_tasks` (write_env.py). A benchmark prints what it measured; it asserts
nothing about time.

Bytecode: by default the copier processes get a private bytecode cache (PYTHONPYCACHEPREFIX
in a temporary directory, filled by the warm-up render), as a user's installed copier has
after its first run. Without one (PYTHONDONTWRITEBYTECODE=1 and no .pyc files in the
environment, as on some CI machines) every render recompiles copier and its libraries from
source, which costs seconds: `--no-bytecode-cache` measures that case, with the environment
as it is.

Run with the template's environment:

    .venv/bin/python bench/render_time.py [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import copier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness import render, tool  # noqa: E402
from variants import VARIANTS  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="renders per variant (default: 5)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed renders of the first variant before measuring (default: 1)",
    )
    parser.add_argument(
        "--no-bytecode-cache",
        dest="bytecode_cache",
        action="store_false",
        help="run copier with the environment as it is, without a private bytecode cache",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    return args


def timed_render(dest: Path, answers: dict[str, str]) -> float:
    started = time.perf_counter()
    render(dest, answers)
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


def timed_render_in_process(dest: Path, answers: dict[str, str]) -> float:
    """The render as pytest-copie's `copie.copy(extra_answers=...)` does it."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(ROOT),
            dest,
            user_defaults=dict(answers),
            defaults=True,
            unsafe=True,
            quiet=True,
            vcs_ref="HEAD",
        )
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


def copier_startup(runs: int) -> list[float]:
    """`copier --version`: the part of each render that is only the CLI starting."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([tool("copier"), "--version"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chf-render-pycache-") as pycache:
        if args.bytecode_cache:
            # Inherited by every copier process that harness.render and this script start.
            os.environ["PYTHONPYCACHEPREFIX"] = pycache
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    if args.bytecode_cache:
        bytecode = "private bytecode cache (warmed by the warm-up render)"
    elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
        bytecode = "environment as is: PYTHONDONTWRITEBYTECODE is set, no bytecode cache written"
    else:
        bytecode = "environment as is"
    copier_version = subprocess.run(
        [tool("copier"), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"render_time: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(
        f"  {copier_version}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{args.runs} runs per variant (interleaved), {args.warmup} warm-up render(s)"
    )
    print(f"  bytecode: {bytecode}")

    times: dict[str, list[float]] = {variant.id: [] for variant in VARIANTS}
    in_process: dict[str, list[float]] = {variant.id: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="chf-render-bench-") as tmp:
        base = Path(tmp)
        for index in range(args.warmup):
            timed_render(base / f"warmup-{index}", VARIANTS[0].answers)
        for run in range(args.runs):
            for variant in VARIANTS:
                dest = base / f"{variant.id}-{run}"
                times[variant.id].append(timed_render(dest, variant.answers))
                in_process[variant.id].append(
                    timed_render_in_process(base / f"{variant.id}-{run}-p", variant.answers)
                )
            done = ", ".join(f"{v.id} {times[v.id][-1]:.2f}s" for v in VARIANTS)
            print(f"  run {run + 1}/{args.runs}: {done}", flush=True)
    startup = copier_startup(args.runs)

    width = max(len(variant.id) for variant in VARIANTS) + 2
    print()
    print(f"{'variant':<{width}}{'CLI median s':>14}{'min s':>8}{'in process s':>14}{'min s':>8}")
    print("-" * (width + 44))
    for variant in VARIANTS:
        cli, inproc = times[variant.id], in_process[variant.id]
        print(
            f"{variant.id:<{width}}{statistics.median(cli):>14.3f}{min(cli):>8.3f}"
            f"{statistics.median(inproc):>14.3f}{min(inproc):>8.3f}"
        )
    print("-" * (width + 44))
    cli_total = sum(statistics.median(times[v.id]) for v in VARIANTS)
    inproc_total = sum(statistics.median(in_process[v.id]) for v in VARIANTS)
    print(f"{'all variants':<{width}}{cli_total:>14.3f}{'':>8}{inproc_total:>14.3f}")
    print(f"{'(copier --version)':<{width}}{statistics.median(startup):>14.3f}{min(startup):>8.3f}")
    print(
        "\nThe last row is the CLI start-up alone, included in every CLI render time above."
        f"\nIn process / CLI for the whole matrix: {inproc_total / cli_total:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
