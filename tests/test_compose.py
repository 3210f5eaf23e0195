"""docker-compose.yml, the team's tracking stack: valid, local-only, healthy in order,
configured entirely from the variables that .env.example defines, and on the versions that
tests/test_team_stack.py runs natively."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.services import (
    COMPOSE,
    ENV_EXAMPLE,
    MINIO_ADDRESS,
    POSTGRES_ADDRESS,
    ROOT,
    VARIABLE,
    S3Store,
    command_args,
    compose_values,
    example_env,
    native_mlflow,
    option,
    postgres_bindir,
)

LONG_RUNNING = ("postgres", "minio", "mlflow")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


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


def image_tag(service: dict[str, Any]) -> str:
    return service["image"].rsplit(":", 1)[1]


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


# What the native stack (tests/services.py: team_stack, run by tests/test_team_stack.py) runs,
# held against what the compose file pulls. MinIO has no native counterpart to compare: moto's
# S3 server stands in for it.


def test_postgres_image_is_the_major_the_native_stack_runs(
        services: dict[str, dict[str, Any]]) -> None:
    native_major = postgres_bindir().parts[-2]
    assert image_tag(services["postgres"]).split(".")[0] == native_major, (
        f"docker-compose.yml runs postgres:{image_tag(services['postgres'])}, the native test "
        f"PostgreSQL {native_major}")


def test_mlflow_image_is_the_installed_mlflow_minor(services: dict[str, dict[str, Any]]) -> None:
    # Major.minor, not the patch: MLflow's schema migrations and REST changes come with minor
    # releases; pyproject.toml holds mlflow to that minor line, whose patch releases CI may
    # install between two bumps of the image.
    installed = version("mlflow").split(".")[:2]
    tag = re.fullmatch(r"v(\d+)\.(\d+)\.\d+-full", image_tag(services["mlflow"]))
    assert tag and list(tag.groups()) == installed, (
        f"docker-compose.yml runs mlflow {image_tag(services['mlflow'])}, the native test "
        f"mlflow {version('mlflow')}")


def test_native_stack_fills_every_variable_and_address_of_the_mlflow_service() -> None:
    s3 = S3Store("http://127.0.0.1:9100", "s3-user", "s3-secret")
    values = compose_values("postgresql+psycopg2://pg-user:pg-secret@127.0.0.1:5433/pg-db", s3,
                            "a-bucket")
    assert set(values) == set(example_env()), "the native stack sets .env.example's variables"
    addresses = {POSTGRES_ADDRESS: "127.0.0.1:5433", MINIO_ADDRESS: "127.0.0.1:9100"}
    command, env = native_mlflow(values, addresses, 5001)
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert option(command, "--host") == "127.0.0.1" and option(command, "--port") == "5001"
    assert option(command, "--backend-store-uri") == (
        "postgresql+psycopg2://pg-user:pg-secret@127.0.0.1:5433/pg-db")
    assert option(command, "--artifacts-destination") == "s3://a-bucket"
    assert (env["MLFLOW_S3_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"]) == ("http://127.0.0.1:9100", "s3-user", "s3-secret")
