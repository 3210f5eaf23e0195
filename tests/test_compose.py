"""docker-compose.yml, the team's tracking stack: valid, local-only, healthy in order, and
configured entirely from the variables that .env.example defines."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
LONG_RUNNING = ("postgres", "minio", "mlflow")
# ${VAR}, ${VAR:-default}, ${VAR:?message} or $VAR; `$$` is a literal dollar sign.
VARIABLE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_]\w*)[^}]*\}|([A-Za-z_]\w*))")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def example_env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def strings(node: Any) -> Iterator[str]:
    """Every string in the parsed file, keys included (comments are not part of it)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


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


def published_host(port: str | int | dict[str, Any]) -> str | None:
    """The host address a `ports:` entry binds to; None when it binds every interface."""
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = str(port).split(":")
    return parts[0] if len(parts) == 3 else None


def test_compose_file_is_valid(tmp_path: Path) -> None:
    if docker_compose_available():
        env_file = tmp_path / ".env"
        shutil.copy(ENV_EXAMPLE, env_file)
        done = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--env-file",
                               str(env_file), "config", "-q"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    else:  # no Docker here: at least every service names what it runs
        stack = yaml.safe_load(COMPOSE.read_text())
        assert stack["services"]
        for name, service in stack["services"].items():
            assert "image" in service or "build" in service, name


def test_stack_has_postgres_minio_and_mlflow(services: dict[str, dict[str, Any]]) -> None:
    assert set(LONG_RUNNING) <= set(services)


def test_every_published_port_is_bound_to_localhost(services: dict[str, dict[str, Any]]) -> None:
    published = {name: service.get("ports", []) for name, service in services.items()}
    assert published["mlflow"], "the MLflow server must be reachable from the host"
    for name, ports in published.items():
        for port in ports:
            assert published_host(port) == "127.0.0.1", f"{name} publishes {port!r}"


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_mlflow_starts_after_its_stores_are_healthy(services: dict[str, dict[str, Any]]) -> None:
    depends_on = services["mlflow"]["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["minio"]["condition"] == "service_healthy"
    # The bucket exists before MLflow writes to it: a one-shot mc job that has finished.
    creators = [name for name, service in services.items()
                if "minio/mc" in str(service.get("image", ""))]
    assert creators, "no minio/mc service creates the bucket"
    assert any(depends_on.get(name, {}).get("condition") == "service_completed_successfully"
               for name in creators)
    for name in creators:
        assert services[name]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_mlflow_uses_postgres_and_minio(services: dict[str, dict[str, Any]]) -> None:
    mlflow = services["mlflow"]
    args = command_args(mlflow)
    assert (option(args, "--backend-store-uri") or "").startswith("postgresql")
    assert "@postgres:5432/" in option(args, "--backend-store-uri")
    assert (option(args, "--artifacts-destination") or "").startswith("s3://")
    assert option(args, "--serve-artifacts") == ""
    assert option(args, "--host") == "0.0.0.0"  # inside the container; published on 127.0.0.1
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    # psycopg2 and boto3 come with the official image's -full variant.
    assert re.fullmatch(r"ghcr\.io/mlflow/mlflow:v3\.\d+\.\d+-full", mlflow["image"])


def test_every_variable_is_defined_in_env_example() -> None:
    defined = example_env()
    used = {first or second
            for text in strings(yaml.safe_load(COMPOSE.read_text()))
            for first, second in VARIABLE.findall(text)}
    assert used, "credentials come from .env through ${VAR}"
    assert used <= set(defined), f"not in .env.example: {sorted(used - set(defined))}"
    assert all(defined[name] for name in used), "every variable has an example value"
    assert ".env" in (ROOT / ".gitignore").read_text().split(), ".env must stay git-ignored"


def test_no_credential_is_written_in_the_file(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY|USER", key):
                assert VARIABLE.fullmatch(str(value)), f"{name}: {key} is not taken from .env"
