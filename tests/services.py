"""Services that tests start for real, each on 127.0.0.1, on a free port, with its data in a
temporary directory, and stopped however the test ends: `mlflow server`, a PostgreSQL cluster
from Debian's packages, a Ray cluster of local nodes. Where a system package is missing the
test says so, and fails in CI (`CI=true`) or is skipped elsewhere."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import missing_system_package

INSTALL_HINT = ("`.ci/run` installs it (apt-get install -y --no-install-recommends "
                "postgresql chromium)")


@dataclass
class Server:
    url: str
    artifacts: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@contextmanager
def mlflow_server(backend_uri: str, home: Path) -> Iterator[Server]:
    """`mlflow server` on 127.0.0.1 proxying artifacts to home/artifacts; killed on exit."""
    port = free_port()
    artifacts = home / "artifacts"
    log_path = home / "mlflow-server.log"
    # Job execution (GenAI jobs) would start a runner and seven worker processes that
    # tracking does not use; on a small CI machine they slow every request down. Telemetry
    # off: nothing here talks beyond 127.0.0.1.
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--backend-store-uri", backend_uri,
               "--serve-artifacts", "--artifacts-destination", str(artifacts)]
    with log_path.open("w") as log:
        # Its own session, so that stopping it also stops the uvicorn worker it spawns.
        process = subprocess.Popen(command, cwd=home, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, log_path)
            yield Server(url, artifacts)
        finally:
            stop(process)


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with {process.returncode}:\n{tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"mlflow server at {url} not healthy after {timeout:.0f} s:\n{tail(log_path)}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def postgres_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    if not found:
        missing_system_package("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, "
                               f"pg_ctl) not found: install Debian's postgresql package; "
                               f"{INSTALL_HINT}")
    return found[-1].parent


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1 with a database `mlflow`; its SQLAlchemy URI."""
    bindir = postgres_bindir()
    # PostgreSQL refuses to run as root: as root, run it as the `postgres` user, in a
    # directory that user owns (pytest's own tmp dirs are private to root).
    as_root = os.geteuid() == 0
    as_postgres = ["runuser", "-u", "postgres", "--"] if as_root else []
    home = Path(tempfile.mkdtemp(prefix="pipeline-postgres-"))
    data, log_path, password_file = home / "data", home / "postgres.log", home / "password"
    password = secrets.token_hex(16)
    password_file.write_text(password)
    if as_root:
        for path in (home, password_file):
            shutil.chown(path, "postgres", "postgres")

    def pg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*as_postgres, *args], cwd=home, capture_output=True, text=True,
                              timeout=120)
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}"
                        f"{done.stderr}\n{tail(log_path)}")
        return done

    port = free_port()
    pg(str(bindir / "initdb"), "-D", str(data), "-U", "mlflow", f"--pwfile={password_file}",
       "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
    # Durability off: a throw-away cluster, and this keeps MLflow's schema migration fast.
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")
    try:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log_path), "-o", options,
           "-w", "-t", "60", "start")
        pg(str(bindir / "createdb"), "-h", str(home), "-p", str(port), "-U", "mlflow", "mlflow")
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the dev extra has psycopg2.
        yield f"postgresql+psycopg2://mlflow:{password}@127.0.0.1:{port}/mlflow"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


# Ray's ports that default to fixed numbers (a second cluster on the machine would collide).
RAY_FIXED_PORTS = ("--ray-client-server-port", "--dashboard-port", "--dashboard-agent-listen-port")


@dataclass
class RayCluster:
    address: str  # 127.0.0.1:<port>, for hydra.launcher.ray.init.address
    home: Path  # the nodes' working and temporary directory


@contextmanager
def ray_cluster(nodes: int = 2, cpus: int = 1) -> Iterator[RayCluster]:
    """A Ray cluster of `nodes` nodes on this machine, `cpus` CPUs each, started with `ray start`
    as a user would (a head, then workers joining it), at 127.0.0.1:<port>. Its
    processes run from a temporary directory, not the caller's (as on a real cluster); each
    node's `ray start --block` is stopped with SIGTERM (Ray's own drain and shut-down of that
    node's processes) however the caller ends: nothing else on the machine is touched.
    Ray resolves 127.0.0.1 to the machine's address and binds its servers to every interface:
    it has no loopback-only setting."""
    home = Path(tempfile.mkdtemp(prefix="ray-"))  # short: Ray's socket paths have a limit
    port = free_port()
    address = f"127.0.0.1:{port}"
    src = str(Path(__file__).resolve().parents[1] / "src")
    # Usage statistics off; the workers import this tree's pipeline, as the jobs' driver does.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    common = ["--block", f"--num-cpus={cpus}", "--object-store-memory=78643200",
              "--disable-usage-stats"]
    head = ["--head", "--node-ip-address=127.0.0.1", f"--port={port}",
            "--include-dashboard=false", f"--temp-dir={home}",
            *(f"{flag}={free_port()}" for flag in RAY_FIXED_PORTS)]
    started: list[subprocess.Popen] = []
    try:
        for number in range(nodes):
            node = head if number == 0 else [f"--address={address}",
                                             f"--dashboard-agent-listen-port={free_port()}"]
            log_path = home / f"node-{number}.log"
            with open(log_path, "wb") as log:
                started.append(subprocess.Popen(
                    ["ray", "start", *node, *common], cwd=home, env=env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True))
            _wait_ray_node(started[-1], log_path)
        yield RayCluster(address, home)
    finally:
        for process in reversed(started):  # the workers first, the head last
            _stop_ray_node(process)
        shutil.rmtree(home, ignore_errors=True)


def _wait_ray_node(process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    """Until `ray start --block` says that its node runs (it blocks from then on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ray start exited with {process.returncode}:\n{tail(log_path)}")
        if "block forever" in log_path.read_text(errors="replace"):
            return
        time.sleep(0.25)
    pytest.fail(f"ray node not started after {timeout:.0f} s:\n{tail(log_path)}")


def _stop_ray_node(process: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block`, which drains its node and stops the node's processes;
    SIGKILL to its process group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
