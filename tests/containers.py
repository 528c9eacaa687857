"""A Docker engine and local stand-ins for the registry images the generated files name.

No registry is reachable here, so the images a generated Dockerfile or compose.yaml pulls are
built locally under exactly their names, from Debian's own packages:

- `python:3.X-slim`: a debootstrap'ed Debian (trixie, as the real image) with this machine's
  CPython 3.X (pyenv) in /usr/local, the runtime libraries it links, and the machine's CA
  bundle (`SSL_CERT_FILE`), so that uv reaches PyPI during `docker build`;
- `ghcr.io/astral-sh/uv:V`: the uv binary of version V (this environment's, which must be V)
  at /uv and /uvx, as in the real image;
- `postgres:17`, `redis:8`: Debian trixie's PostgreSQL 17 and Redis 8 with an entrypoint that
  honours POSTGRES_USER/PASSWORD/DB and runs each server as its own user.

Stand-ins stay in the engine's image store between runs (rebuilt when missing).
`ensure_engine()` starts `dockerd` when none answers; `stop_engine()` stops it at the end of the
run, removing the `docker0` bridge and
the iptables chains it leaves behind. Images the tests build, their containers, networks and
volumes are removed by the tests themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness import BIN, tool

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
BASE_TAG = f"chfa-standin/debian:{SUITE}"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "copier-hardened-fastapi"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SOCKET = Path("/var/run/docker.sock")
# Debian trixie ships these majors; a stand-in tag never claims another one.
POSTGRES_MAJOR = "17"
REDIS_MAJOR = "8"


class EngineUnavailable(Exception):
    """No Docker engine can run here (said in one line)."""


def docker(*args: str, check: bool = True, timeout: float = 900, input: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The docker CLI; builds use the classic builder (no buildx plugin on this machine)."""
    full_env = {**os.environ, "DOCKER_BUILDKIT": "0", **(env or {})}
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env=full_env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {shlex.join(args)}: {result.returncode}\n{result.stderr}")
    return result


def compose_binary() -> str:
    return tool("docker-compose")


def _answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


STATE = CACHE / "engine"


# The process that runs the whole test run (pytest's, or xdist's controller): conftest.py sets
# it before the workers start, so that every worker of one run names the same user.
RUN_PID_VARIABLE = "CHFA_TEST_RUN_PID"


def _run_pid() -> int:
    return int(os.environ.get(RUN_PID_VARIABLE, os.getpid()))


def _live_users() -> list[Path]:
    """The runs registered as users of the engine whose process still runs."""
    users = STATE / "users"
    users.mkdir(parents=True, exist_ok=True)
    live = []
    for user in users.iterdir():
        if user.name.isdigit() and Path(f"/proc/{user.name}").exists():
            live.append(user)
        else:
            user.unlink(missing_ok=True)
    return live


def ensure_engine() -> None:
    """A running dockerd: the one that answers, or one started here (once for every xdist
    worker). Each test run that uses it registers as a user; `stop_engine`, called when a
    whole run ends, stops a dockerd the tests started once no other run still uses it."""
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _live_users()
        (STATE / "users" / str(_run_pid())).touch()
        if _answers():
            return
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise EngineUnavailable("dockerd is not installed (apt-get install docker.io)")
        log = STATE / "dockerd.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [dockerd, "--host", f"unix://{SOCKET}"],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (STATE / "dockerd.pid").write_text(str(process.pid))
        deadline = time.monotonic() + 60
        while not _answers():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise EngineUnavailable(f"dockerd did not start:\n{tail}")
            time.sleep(0.5)


def stop_engine() -> None:
    """Stop the dockerd that `ensure_engine` started (if it did) and remove its leftovers,
    unless another test run (of another checkout, say) still uses it: then the last one to
    end stops it."""
    if not STATE.exists():
        return
    with (STATE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (STATE / "users" / str(_run_pid())).unlink(missing_ok=True)
        if not _live_users():
            _stop_started_engine()


def _stop_started_engine() -> None:
    pid_file = STATE / "dockerd.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink()
    remove_engine_leftovers()


def remove_engine_leftovers() -> None:
    """dockerd leaves its bridge and iptables chains behind when it stops: remove them."""
    subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True)
    if shutil.which("iptables") is None:
        return
    for table in ("filter", "nat"):
        rules = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True
        ).stdout.splitlines()
        chains = [line.split()[1] for line in rules if line.startswith("-N DOCKER")]
        for rule in rules:
            words = shlex.split(rule)
            if (
                words[:1] == ["-A"]
                and words[1] not in chains
                and ("docker0" in words or any(w.startswith("DOCKER") for w in words))
            ):
                subprocess.run(["iptables", "-t", table, "-D", *words[1:]], capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)


def has_image(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def _build(tag: str, context: Path, dockerfile: str) -> None:
    (context / "Dockerfile").write_text(dockerfile)
    # The stand-ins install Debian packages: the host's network, like apt on this machine.
    docker("build", "--network", "host", "--quiet", "-t", tag, str(context), timeout=1800)


def base_image() -> str:
    """Debian `SUITE` (minbase) from debootstrap, imported as an image."""
    if has_image(BASE_TAG):
        return BASE_TAG
    if shutil.which("debootstrap") is None:
        raise EngineUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        rootfs = Path(work) / "rootfs"
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            raise EngineUnavailable(f"debootstrap {SUITE} failed:\n{result.stdout[-2000:]}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*.deb"):
                entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-c", 'CMD ["bash"]', "-", BASE_TAG],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.wait()
        if imported.returncode != 0:
            raise AssertionError(f"docker import: {imported.stderr}")
    return BASE_TAG


def _pyenv_python(minor: str) -> Path:
    roots = sorted(Path.home().glob(f".pyenv/versions/{minor}.*"))
    found = [root for root in roots if re.fullmatch(rf"{re.escape(minor)}\.\d+", root.name)]
    if not found:
        raise EngineUnavailable(f"no CPython {minor} in pyenv for the python:{minor}-slim stand-in")
    return found[-1]


def python_image(minor: str) -> str:
    """`python:<minor>-slim`: Debian trixie with this machine's CPython <minor> in /usr/local."""
    tag = f"python:{minor}-slim"
    if has_image(tag):
        return tag
    base = base_image()
    source = _pyenv_python(minor)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        context = Path(work)
        subprocess.run(
            [
                "tar",
                "-C",
                str(source),
                "-c",
                "--exclude=test",
                "--exclude=idlelib",
                "--exclude=tkinter",
                "--exclude=turtledemo",
                "--exclude=*.a",
                "--exclude=*.pth",
                "-f",
                str(context / "python.tar"),
                ".",
            ],
            check=True,
        )
        shutil.copy(CA_BUNDLE, context / "machine-ca.crt")
        _build(
            tag,
            context,
            f"""FROM {base}
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates netbase \\
    tzdata libssl3t64 libffi8 libsqlite3-0 libbz2-1.0 liblzma5 libreadline8t64 libncursesw6 \\
    libuuid1 libexpat1 libnsl2 libtirpc3t64 libcrypt1 zlib1g && rm -rf /var/lib/apt/lists/*
ADD python.tar /usr/local/
COPY machine-ca.crt /usr/local/share/ca-certificates/machine-ca.crt
# pyenv's scripts carry the host's interpreter path: point them at /usr/local.
RUN update-ca-certificates && ldconfig \\
    && sed -i '1s|^#!.*python.*$|#!/usr/local/bin/python{minor}|' /usr/local/bin/pip* \\
        /usr/local/bin/pydoc* /usr/local/bin/python{minor}-config \\
    && ln -sf python3 /usr/local/bin/python && python3 -c 'import ssl, sqlite3, ctypes'
ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PYTHON_VERSION={source.name}
CMD ["python3"]
""",
        )
    return tag


def uv_image(tag: str) -> str:
    """`ghcr.io/astral-sh/uv:<version>`: /uv and /uvx of that version, as in the real image."""
    if has_image(tag):
        return tag
    wanted = tag.rsplit(":", 1)[1]
    have = subprocess.run([tool("uv"), "--version"], capture_output=True, text=True).stdout
    if have.split()[1] != wanted:
        raise AssertionError(
            f"the Dockerfile copies uv {wanted}; this environment has {have.strip()}: "
            "pin the same uv in pyproject.toml and the template's Dockerfile"
        )
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        context = Path(work)
        for name in ("uv", "uvx"):
            shutil.copy(BIN / name, context / name)
        _build(tag, context, "FROM scratch\nCOPY uv uvx /\n")
    return tag


POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# Stand-in for the postgres image's entrypoint: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
    chown postgres /tmp/pwfile
    as_postgres initdb -D "$PGDATA" -U "$user" --pwfile=/tmp/pwfile \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm /tmp/pwfile
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != "postgres" ]; then
        as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
        as_postgres psql -v ON_ERROR_STOP=1 -U "$user" -d postgres \
            -c "CREATE DATABASE \"$db\" OWNER \"$user\"" >/dev/null
        as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$@" -c listen_addresses='*'
"""


def postgres_image() -> str:
    tag = f"postgres:{POSTGRES_MAJOR}"
    if has_image(tag):
        return tag
    base = base_image()
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        context = Path(work)
        (context / "entrypoint.sh").write_text(POSTGRES_ENTRYPOINT)
        _build(
            tag,
            context,
            f"""FROM {base}
RUN mkdir -p /etc/postgresql-common/createcluster.d \\
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/none.conf \\
    && apt-get update && apt-get install -y --no-install-recommends \\
        postgresql-{POSTGRES_MAJOR} && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/{POSTGRES_MAJOR}/bin:$PATH PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
""",
        )
    return tag


def redis_image() -> str:
    tag = f"redis:{REDIS_MAJOR}"
    if has_image(tag):
        return tag
    base = base_image()
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        context = Path(work)
        (context / "entrypoint.sh").write_text(
            "#!/bin/sh\n# Stand-in for the redis image's entrypoint: the server as user redis.\n"
            "set -eu\nchown redis:redis /data\n"
            'if [ "$1" = redis-server ]; then\n    shift\n'
            "    exec setpriv --reuid=redis --regid=redis --init-groups redis-server "
            '--bind "* -::*" --protected-mode no --dir /data "$@"\nfi\nexec "$@"\n'
        )
        _build(
            tag,
            context,
            f"""FROM {base}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* && mkdir /data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
""",
        )
    return tag


def stand_ins_for(dockerfile: Path, compose_images: Sequence[str] = ()) -> list[str]:
    """Build (or find) the stand-in of each image a Dockerfile and compose services use."""
    text = dockerfile.read_text()
    needed: list[str] = []
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", text, re.M | re.I))
    for image in re.findall(r"^FROM (\S+)", text, re.M):
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
        if image not in stages and image != "scratch":
            needed.append(image)
    needed += compose_images
    built = []
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "stand-ins.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for image in dict.fromkeys(needed):
            built.append(_stand_in(image))
    return built


def _stand_in(image: str) -> str:
    if match := re.fullmatch(r"python:(3\.\d+)-slim", image):
        return python_image(match.group(1))
    if image.startswith("ghcr.io/astral-sh/uv:"):
        return uv_image(image)
    if image == f"postgres:{POSTGRES_MAJOR}":
        return postgres_image()
    if image == f"redis:{REDIS_MAJOR}":
        return redis_image()
    raise AssertionError(f"no stand-in for {image}: add one to tests/containers.py")


def image_layers_containing(tag: str, needles: Sequence[str]) -> dict[str, list[str]]:
    """For each needle, the layers of `tag` (from `docker save`) with a file whose content has
    it, and the image config (ENV, labels, history) if that has it."""
    found: dict[str, list[str]] = {needle: [] for needle in needles}
    with tempfile.TemporaryDirectory() as work:
        out = Path(work)
        saved = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-C", str(out), "-x"], stdin=saved.stdout, check=True)
        assert saved.wait() == 0, f"docker save {tag} failed"
        manifest = json.loads((out / "manifest.json").read_text())
        layers = [layer for entry in manifest for layer in entry["Layers"]]
        assert layers, "docker save wrote no layer"
        for layer in layers:
            for needle in needles:
                # Every file's content, streamed through grep (fixed string, binary files too).
                contents = subprocess.Popen(
                    ["tar", "-xOf", str(out / layer)], stdout=subprocess.PIPE
                )
                assert contents.stdout is not None
                grep = subprocess.run(
                    ["grep", "-a", "-q", "-F", "-e", needle], stdin=contents.stdout
                )
                contents.stdout.close()  # tar stops (SIGPIPE) once grep has found it
                contents.wait()
                if grep.returncode == 0:
                    found[needle].append(layer)
        for entry in manifest:
            config = (out / entry["Config"]).read_text()
            for needle in needles:
                if needle in config:
                    found[needle].append(entry["Config"])
    return found
