#!/usr/bin/env python3
"""Entry point of the template's own development: needs only Python 3.11+ and git.

    python3 dev.py demo     generate the default service into ./my-service and boot it
    python3 dev.py test     run the whole test suite (extra arguments go to pytest)
    python3 dev.py bench    run the benchmarks under bench/ (or: bench NAME ARGS, NAME one of them)
    python3 dev.py render-all DIR
                            render every declared variant into DIR/<variant id>, so linters,
                            duplicate checks and readers can look at real files
    python3 dev.py feature-map
                            write docs/feature-map.md: the files and named conditions each
                            answer of copier.yml switches on
    python3 dev.py tag-releases
                            tag each release of releases.toml in this clone (needs only git)

The first run creates .venv with the pinned tools (uv, copier, pytest, ruff, mypy, ...).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
UV_VERSION = "0.13.9"
# Where `demo` generates the service (DEV_DEMO_DIR overrides it, for the quickstart's test).
DEMO = Path(os.environ.get("DEV_DEMO_DIR", ROOT / "my-service")).resolve()


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def call(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(arg) for arg in args], cwd=cwd, env=env)


def check(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    code = call(*args, cwd=cwd, env=env)
    if code != 0:
        sys.exit(f"dev.py: {' '.join(map(str, args))} failed with exit status {code}")


def bootstrap() -> None:
    """Create .venv with uv, then let uv install the locked dev dependencies into it."""
    if sys.version_info < (3, 11):  # noqa: UP036 (a clear message for older interpreters)
        sys.exit("dev.py: Python 3.11 or newer is needed")
    if shutil.which("git") is None:
        sys.exit("dev.py: git is needed (copier reads the template from this repository)")
    if not (BIN / "uv").exists():
        say("creating .venv and installing uv")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        check(
            BIN / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"uv=={UV_VERSION}",
        )
    say("syncing the template's dev dependencies (uv.lock)")
    check(BIN / "uv", "sync", "--frozen", "--quiet", "--python", BIN / "python")


def demo() -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    from harness import find_python, render

    if DEMO.exists():
        say(f"{DEMO.name} exists: booting it as it is (delete it to generate it again)")
    else:
        say(f"generating the default service into {DEMO}")
        render(DEMO, {})
    say("installing it with uv")
    check(BIN / "uv", "sync", "--quiet", "--python", find_python("3.12"), cwd=DEMO)
    # The demo is the default service as generated: its own .env (SQLite in ./data), whatever
    # database the calling shell points DATABASE_URL at.
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    check(DEMO / ".venv" / "bin" / "my-service", "migrate", cwd=DEMO, env=env)
    say(
        f"uv is at {BIN / 'uv'} (the service's README says `uv ...`: use that path, or "
        "`pip install uv` to have it on PATH)"
    )
    # The API routes need a signed-in user, and the demo creates none: an account with a
    # password printed here would stay in the database of a service that is the user's to keep.
    say(
        f"the API needs a user: `cd {DEMO} && .venv/bin/my-service create-user --role admin "
        "admin` (asks for a password), then sign in with Authorize at /docs"
    )
    port = os.environ.get("PORT", "8000")
    say(f"serving on http://127.0.0.1:{port} (docs: /docs); Ctrl+C stops it")
    return serve_until_stopped([str(DEMO / ".venv" / "bin" / "my-service"), "serve"], DEMO, env)


def serve_until_stopped(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run the server until SIGINT, SIGTERM or SIGHUP reaches this script, then stop it with
    the same signal, so no server is left running on the port after the demo ends.

    The server runs in a process group of its own: Ctrl+C in a terminal sends SIGINT to the
    whole foreground group, and a server in it would get that one and then the forwarded one,
    which uvicorn takes as "force quit" (no graceful shutdown, a traceback). This way it gets
    exactly one per signal; a second Ctrl+C still forces it, as uvicorn says."""
    server = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, process_group=0)

    def forward(signum: int, _frame: object) -> None:
        if server.poll() is None:
            server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)
    return server.wait()


def test(extra: list[str]) -> int:
    say("running the test suite")
    args = (
        ["-n", "2", "--dist", "loadgroup", *extra]
        if not any(a.startswith("-n") for a in extra)
        else extra
    )
    if not any(a.startswith("--durations") for a in args):
        args.append("--durations=10")  # the slowest ten tests, printed after the run
    code = call(BIN / "pytest", *args)
    if code == 5:
        print("dev.py: pytest collected no tests: that is a failure", file=sys.stderr)
        return 1
    return code


# Every benchmark under bench/ (bench/README.md describes each), in the order `bench` runs them;
# items_inprocess.py runs in a generated project's interpreter, and ablations.py and the
# *_app.py files are modules the benchmarks load.
BENCHMARKS = {
    "render": "render_time.py",
    "items-read": "items_read.py",
    "throughput": "throughput.py",
    "instructions": "instructions.py",
    "http-protocol": "http_protocol.py",
    "startup": "startup.py",
    "items-sync": "items_sync_probe.py",
    "rate-limit": "rate_limit.py",
    "observability": "observability.py",
    "breakdown": "breakdown.py",
    "redis-limiter": "redis_limiter.py",
    "speedups": "speedups.py",
    "load-test": "load_test.py",
}


def bench(extra: list[str]) -> int:
    if extra and extra[0] in BENCHMARKS:
        return call(BIN / "python", ROOT / "bench" / BENCHMARKS[extra[0]], *extra[1:])
    if extra:
        print(
            f"dev.py bench: no benchmark {extra[0]!r}; one of {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    failed = []
    for name, script in BENCHMARKS.items():
        say(f"bench {name} ({script})")
        if call(BIN / "python", ROOT / "bench" / script):
            failed.append(name)
    if failed:
        print(f"dev.py bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def render_all(extra: list[str]) -> int:
    if len(extra) != 1:
        print("usage: python3 dev.py render-all DIR", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "tests"))
    from harness import render_variants

    target = Path(extra[0]).resolve()
    for variant_id, path in render_variants(target):
        say(f"{variant_id}: {path}")
    return 0


class ReleaseError(Exception):
    """A release that cannot be tagged; the message is the one line to print."""


RELEASE_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # a final PEP 440 release: 0.3.0
FULL_HASH = re.compile(r"^[0-9a-f]{40}$")


def git_output(*args: str) -> str | None:
    """git's standard output, or None when the command fails."""
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def read_releases(text: str) -> list[dict[str, str]]:
    """The `[[release]]` entries of releases.toml, checked: final versions in increasing order,
    each with a commit except the newest."""
    try:
        releases = tomllib.loads(text).get("release", [])
    except tomllib.TOMLDecodeError as error:
        raise ReleaseError(f"releases.toml is not valid TOML: {error}") from None
    seen: list[tuple[int, ...]] = []
    for index, release in enumerate(releases):
        version = str(release.get("version", ""))
        if not RELEASE_VERSION.match(version):
            raise ReleaseError(f"releases.toml: {version!r} is not a release version like 0.3.0")
        key = tuple(int(part) for part in version.split("."))
        if seen and key <= seen[-1]:
            raise ReleaseError(f"releases.toml: {version} is not newer than the release before it")
        seen.append(key)
        if "commit" not in release and index != len(releases) - 1:
            raise ReleaseError(f"releases.toml: {version} has no commit (only the newest may)")
        if "commit" in release and not FULL_HASH.match(str(release["commit"])):
            raise ReleaseError(f"releases.toml: {version}'s commit is not a full 40-digit hash")
    return releases


def landing_commit(version: str) -> str:
    """The commit a release without a recorded commit is: the first commit of this branch's
    first-parent history whose releases.toml lists it (the commit that lands it on the main
    branch: a merge, a squash or a plain commit). A commit cannot hold its own hash, so the
    entry is written without one; the next release records it."""
    log = git_output(
        "log", "--first-parent", "--reverse", "--format=%H", "HEAD", "--", "releases.toml"
    )
    for commit in (log or "").split():
        text = git_output("show", f"{commit}:releases.toml")
        try:
            versions = [r.get("version") for r in tomllib.loads(text or "").get("release", [])]
        except tomllib.TOMLDecodeError:
            continue
        if version in versions:
            return commit
    raise ReleaseError(
        f"release {version} has no commit and no commit of this branch lists it in "
        "releases.toml: commit releases.toml first"
    )


def tag_releases(extra: list[str]) -> int:
    """Create a git tag for each release of releases.toml at its commit. Every release is checked
    before any tag is made; a tag that exists already must point at the release's commit."""
    if extra:
        print("usage: python3 dev.py tag-releases", file=sys.stderr)
        return 2
    try:
        if shutil.which("git") is None:
            raise ReleaseError("git is needed (the releases are git tags)")
        if git_output("rev-parse", "--is-inside-work-tree") != "true":
            raise ReleaseError(f"{ROOT} is not a git clone: tags need one")
        releases = read_releases((ROOT / "releases.toml").read_text(encoding="utf-8"))
        planned: list[tuple[str, str, bool]] = []  # version, commit, tag exists already
        for release in releases:
            version = release["version"]
            recorded = release.get("commit")
            commit = (
                git_output("rev-parse", "--verify", "--quiet", f"{recorded}^{{commit}}")
                if recorded
                else landing_commit(version)
            )
            if commit is None:
                raise ReleaseError(
                    f"release {version}: commit {recorded} is not in this clone (a shallow "
                    "clone? `git fetch --unshallow`, then run this again)"
                )
            tagged = git_output(
                "rev-parse", "--verify", "--quiet", f"refs/tags/{version}^{{commit}}"
            )
            if tagged is not None and tagged != commit:
                raise ReleaseError(
                    f"tag {version} points at {tagged[:12]}, releases.toml says {commit[:12]}: "
                    f"delete the wrong tag (`git tag -d {version}`) or fix releases.toml"
                )
            planned.append((version, commit, tagged is not None))
    except ReleaseError as error:
        print(f"dev.py tag-releases: {error}", file=sys.stderr)
        return 1
    for version, commit, exists in planned:
        if not exists:
            check("git", "tag", version, commit)
        print(f"{version} -> {commit[:12]} ({'already tagged' if exists else 'tagged'})")
    return 0


def main(argv: list[str]) -> int:
    commands = {"demo", "test", "bench", "render-all", "feature-map", "tag-releases"}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    os.chdir(ROOT)
    if argv[0] == "tag-releases":  # git and the standard library only: no .venv needed
        return tag_releases(argv[1:])
    if Path(sys.prefix).resolve() != VENV.resolve():
        bootstrap()
        # Continue inside .venv, where the template's tools and libraries are installed.
        os.execv(BIN / "python", [str(BIN / "python"), str(Path(__file__).resolve()), *argv])
    if argv[0] == "demo":
        return demo()
    if argv[0] == "bench":
        return bench(argv[1:])
    if argv[0] == "render-all":
        return render_all(argv[1:])
    if argv[0] == "feature-map":
        sys.path.insert(0, str(ROOT / "tests"))
        from feature_map import main as write_feature_map

        return write_feature_map()
    return test(argv[1:])


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl+C while generating or installing: no traceback
        sys.exit(130)
