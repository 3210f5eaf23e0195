"""Services that tests (and benchmarks) start for real, each on 127.0.0.1, on a free port, with
its data in a temporary directory, and stopped however the test ends: `mlflow server`, a
PostgreSQL cluster from Debian's packages, an S3 store (moto), docker-compose.yml's team stack
built from those three, `mlflow models serve`, and a Ray cluster of local nodes. Where a system
package is missing the test says so, and fails in CI (`CI=true`) or is skipped elsewhere."""

from __future__ import annotations

import os
import re
import secrets
import shlex
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
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

from tests.conftest import missing_system_package

INSTALL_HINT = ("`.ci/run` installs it (apt-get install -y --no-install-recommends "
                "postgresql chromium)")
# Job execution (GenAI jobs) would start a runner and seven worker processes that tracking
# does not use; on a small CI machine they slow every request down. Telemetry off: nothing
# here talks beyond 127.0.0.1.
QUIET_SERVER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
# Variables by which an S3 client finds its store and credentials: a client of the team
# stack must need none of them, and a server gets only those it is given.
S3_CLIENT_PREFIXES = ("AWS_", "MLFLOW_S3_")


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
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--backend-store-uri", backend_uri,
               "--serve-artifacts", "--artifacts-destination", str(artifacts)]
    url = f"http://127.0.0.1:{port}"
    with started(command, {**outer_env(), **QUIET_SERVER}, home, "mlflow-server.log", url,
                 "/health", "mlflow server"):
        yield Server(url, artifacts)


@contextmanager
def started(command: list[str], env: dict[str, str], home: Path, log_name: str, url: str,
            health_path: str, name: str, timeout: float = 90) -> Iterator[None]:
    """Runs `command` in `home`, logging to home/log_name, until `url + health_path` answers
    200; stops it however the caller ends."""
    log_path = home / log_name
    with log_path.open("w") as log:
        # Its own session, so that stopping it also stops the workers it spawns.
        process = subprocess.Popen(command, cwd=home, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_healthy(url, process, log_path, timeout, health_path, name)
            yield
        finally:
            stop(process)


def outer_env() -> dict[str, str]:
    """This process's environment less what would point a server or a client elsewhere: the
    tracking URI and any S3 endpoint or AWS credentials of the developer's own."""
    return {key: value for key, value in os.environ.items()
            if key != "MLFLOW_TRACKING_URI" and not key.startswith(S3_CLIENT_PREFIXES)}


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 90,
                 path: str = "/health", name: str = "mlflow server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"{name} at {url} not healthy after {timeout:.0f} s:\n{tail(log_path)}")


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


# docker-compose.yml's stack, started natively. MinIO is on neither PyPI nor Debian: moto's S3
# server stands in for it (same S3 API, different software, so no version can match). The
# other two run what the compose file runs: its `mlflow` service's command and environment,
# with .env's variables filled in and the containers' addresses replaced by loopback ports.
ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# ${VAR}, ${VAR:-default}, ${VAR:?message} or $VAR; `$$` is a literal dollar sign.
VARIABLE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_]\w*)[^}]*\}|([A-Za-z_]\w*))")
# Where the compose file's services reach each other (service name, port in the container).
POSTGRES_ADDRESS, MINIO_ADDRESS = "postgres:5432", "minio:9000"
# Native only: one server worker on a 2-core CI machine (the compose server keeps MLflow's
# default). Everything else comes from the compose file.
NATIVE_ONLY_OPTIONS = ["--workers=1"]


@dataclass
class S3Store:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1")


@dataclass
class TeamStack:
    url: str            # the MLflow server, as clients reach it
    postgres_uri: str   # its backend store
    s3: S3Store         # its artifact store
    bucket: str
    home: Path          # the MLflow server's working directory


def compose_service(name: str) -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"][name]


def example_env() -> dict[str, str]:
    """.env.example's variables and their example values."""
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def option(args: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value`; "" for a bare flag; None if absent."""
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            follows = args[i + 1] if i + 1 < len(args) else ""
            return "" if follows.startswith("--") else follows
    return None


def with_option(args: list[str], name: str, value: str) -> list[str]:
    """`args` with option `name` (which the compose file must give) set to `value`."""
    if option(args, name) is None:
        pytest.fail(f"docker-compose.yml's mlflow command has no {name}; the native stack "
                    "replaces it")
    replaced, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg.startswith(f"{name}="):
            replaced.append(f"{name}={value}")
        elif arg == name:
            replaced.append(f"{name}={value}")
            skip = i + 1 < len(args) and not args[i + 1].startswith("--")
        else:
            replaced.append(arg)
    return replaced


def compose_values(postgres_uri: str, s3: S3Store, bucket: str) -> dict[str, str]:
    """A value for every variable of .env.example, from the services started natively."""
    from sqlalchemy.engine import make_url

    database = make_url(postgres_uri)
    return {"POSTGRES_USER": database.username, "POSTGRES_PASSWORD": database.password,
            "POSTGRES_DB": database.database, "MINIO_ROOT_USER": s3.access_key,
            "MINIO_ROOT_PASSWORD": s3.secret_key, "MINIO_BUCKET": bucket}


def native(text: str, values: dict[str, str], addresses: dict[str, str]) -> str:
    """A string of the compose file with its variables filled in and the containers'
    addresses replaced by the native services' ones."""
    def value(found: re.Match) -> str:
        name = found.group(1) or found.group(2)
        if name not in values:
            pytest.fail(f"docker-compose.yml uses ${name}, which the native stack does not "
                        "set (tests/services.py: compose_values)")
        return values[name]

    text = VARIABLE.sub(value, text).replace("$$", "$")
    for container, loopback in addresses.items():
        text = text.replace(container, loopback)
    return text


def native_mlflow(values: dict[str, str], addresses: dict[str, str],
                  port: int) -> tuple[list[str], dict[str, str]]:
    """The compose file's `mlflow` service as a native process: its command (the installed
    mlflow, on 127.0.0.1:port) and its environment."""
    service = compose_service("mlflow")
    args = [native(arg, values, addresses) for arg in command_args(service)]
    if args[:2] != ["mlflow", "server"]:
        pytest.fail(f"docker-compose.yml's mlflow command is {args[:2]}, not mlflow server")
    args = with_option(with_option(args[1:], "--host", "127.0.0.1"), "--port", str(port))
    environment = {name: native(str(value), values, addresses)
                   for name, value in service.get("environment", {}).items()}
    return ([sys.executable, "-m", "mlflow", *args, *NATIVE_ONLY_OPTIONS],
            {**outer_env(), **environment, **QUIET_SERVER})


@contextmanager
def s3_server(home: Path) -> Iterator[S3Store]:
    """moto's S3 server on 127.0.0.1 (in memory), standing in for MinIO. It takes any
    credentials; the store is given its own, as MinIO's root user."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with started([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                 outer_env(), home, "s3-server.log", endpoint, "/", "moto S3 server"):
        yield S3Store(endpoint, "mlflow", secrets.token_hex(16))


@contextmanager
def team_stack(home: Path) -> Iterator[TeamStack]:
    """docker-compose.yml's three services on this machine: PostgreSQL, an S3 store with the
    bucket made (as the compose file's create-bucket job does) and the compose file's
    `mlflow server` command on them."""
    bucket = example_env()["MINIO_BUCKET"]
    with postgres_cluster() as postgres_uri, s3_server(home) as s3:
        s3.client().create_bucket(Bucket=bucket)
        values = compose_values(postgres_uri, s3, bucket)
        from sqlalchemy.engine import make_url

        addresses = {POSTGRES_ADDRESS: f"127.0.0.1:{make_url(postgres_uri).port}",
                     MINIO_ADDRESS: s3.endpoint.removeprefix("http://")}
        port = free_port()
        command, env = native_mlflow(values, addresses, port)
        url = f"http://127.0.0.1:{port}"
        with started(command, env, home, "mlflow-server.log", url, "/health", "mlflow server"):
            yield TeamStack(url, postgres_uri, s3, bucket, home)


def bucket_objects(stack: TeamStack, prefix: str = "") -> dict[str, int]:
    """Every object under `prefix` in the stack's bucket: key -> size in bytes."""
    pages = stack.s3.client().get_paginator("list_objects_v2").paginate(Bucket=stack.bucket,
                                                                       Prefix=prefix)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def client_env(tracking_uri: str) -> dict[str, str]:
    """The environment of a client of a tracking store (a job, `mlflow models serve`): the
    store's URI and no S3 endpoint or credentials, which proxied artifacts make needless."""
    return {**outer_env(), "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true"}


@contextmanager
def served(model_uri: str, home: Path, tracking_uri: str, timeout: float = 180) -> Iterator[str]:
    """`mlflow models serve` on loopback, as a user would start it, reading the model from
    `tracking_uri`; yields its base URL once /ping answers, and stops it however the test
    ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with started(command, client_env(tracking_uri), home, "serve.log", url, "/ping",
                 "mlflow models serve", timeout):
        yield url


def invoke(url: str, rows: pd.DataFrame) -> requests.Response:
    """POSTs `rows` to a served model, as its documented JSON (dataframe_split)."""
    # pandas writes a blank as null, which JSON has and the server reads back as a blank.
    body = f'{{"dataframe_split": {rows.to_json(orient="split", index=False)}}}'
    return requests.post(f"{url}/invocations", data=body, timeout=60,
                         headers={"Content-Type": "application/json"})


# Ray's ports that default to fixed numbers (a second cluster on the machine would collide).
# The store that the Ray nodes' environment names, in their directory: no sweep may use it.
NODE_STORE = "node-store.db"
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
    # The nodes' own environment names a store of theirs (as a shell on a cluster machine may):
    # a sweep's jobs must still use the sweep's store, never this one (`node_store`).
    env = {**outer_env(), "RAY_USAGE_STATS_ENABLED": "0",
           "MLFLOW_TRACKING_URI": f"sqlite:///{home / NODE_STORE}",
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
