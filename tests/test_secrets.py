"""Credentials in a tracking URI never reach MLflow (params, tags, artifacts such as
config.yaml) or the console, and environment variables are not logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import tracking
from tests.services import mlflow_server

PASSWORD = "s3cr3t-Pa55"
ENV_SECRET = "env-only-value-4b1d"


def test_redact_and_scrub():
    assert tracking.redact("http://alice:pw@example.org:5000/x") == (
        "http://alice:***@example.org:5000/x")
    assert tracking.redact("sqlite:////tmp/a/mlflow.db") == "sqlite:////tmp/a/mlflow.db"
    assert tracking.redact("http://alice:pw@host:notaport") == "http://alice:***@host:notaport"
    text = "failed on https://bob:hunter2@h/api and postgresql+psycopg2://u:p@db:5432/m"
    assert tracking.scrub(text) == ("failed on https://bob:***@h/api and "
                                    "postgresql+psycopg2://u:***@db:5432/m")
    hydra_listing = r"#0 : model=knn +note=http\://alice\:pw@127.0.0.1\:5000"
    assert tracking.scrub(hydra_listing) == (
        r"#0 : model=knn +note=http\://alice\:***@127.0.0.1\:5000")
    plain = "mail alice@example.org, see a:b@c"
    assert tracking.scrub(plain) == plain


def test_logged_config_has_no_password():
    resolved = {"tracking": {"uri": f"http://alice:{PASSWORD}@h:5000", "experiment": None},
                "model": {"name": "knn", "hidden_sizes": [64, 32]},
                "extra": [f"s3://k:{PASSWORD}@bucket"]}
    logged = tracking.loggable(resolved)
    assert logged["tracking"]["uri"] == "http://alice:***@h:5000"
    assert logged["model"] == {"name": "knn", "hidden_sizes": [64, 32]}
    assert PASSWORD not in str(tracking.flatten(logged))
    # Where a job is recorded does not change what it computes.
    elsewhere = {**resolved, "tracking": {"uri": "sqlite:///x.db", "experiment": "e"}}
    assert tracking.config_hash(resolved) == tracking.config_hash(elsewhere)
    assert tracking.config_hash(resolved) != tracking.config_hash({**resolved, "seed": 1})


def leaks(root: Path) -> list[str]:
    """Files under `root` (the server's store and artifacts) that hold a secret."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.name != "mlflow-server.log":
            data = path.read_bytes()
            found += [f"{path}: {secret}" for secret in (PASSWORD, ENV_SECRET)
                      if secret.encode() in data]
    return found


@pytest.mark.slow
def test_credentials_in_the_uri_reach_neither_mlflow_nor_the_console(workdir, tmp_path_factory,
                                                                      run_cli, monkeypatch):
    from mlflow import MlflowClient

    home = tmp_path_factory.mktemp("mlflow-secrets")
    with mlflow_server(f"sqlite:///{home / 'mlflow.db'}", home) as server:
        with_password = server.url.replace("http://", f"http://alice:{PASSWORD}@")
        commands = [
            # On the command line, one job (it also refits and logs the model and figures).
            ({"PIPELINE_SECRET": ENV_SECRET},
             ["data=iris", "model=knn", "cv.n_splits=2", f"tracking.uri={with_password}"]),
            # From the environment, a sweep: Hydra lists each job's overrides as it starts it.
            ({"MLFLOW_TRACKING_URI": with_password, "PIPELINE_SECRET": ENV_SECRET},
             ["-m", "data=iris", "model=knn,naive_bayes", "cv.n_splits=2", "tracking=server",
              f"+note={with_password}"]),
        ]
        for env, args in commands:
            with monkeypatch.context() as patch:
                for name, value in env.items():
                    patch.setenv(name, value)
                done = run_cli(*args)
            assert done.returncode == 0, done.stderr[-3000:]
            console = done.stdout + done.stderr
            assert PASSWORD not in console and ENV_SECRET not in console
            assert "alice:***@" in console  # where the runs are, still said

        client = MlflowClient(server.url)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
        assert len(parents) == 3 and len(runs) == 3 + 3 * 2
        for run in runs:
            for value in [*run.data.params.values(), *run.data.tags.values()]:
                assert PASSWORD not in value and ENV_SECRET not in value
        assert {run.data.params["tracking.uri"] for run in parents} == {
            with_password.replace(PASSWORD, "***")}
        assert list(server.artifacts.rglob("config.yaml"))
        assert leaks(home) == []
    # Nothing of the environment is logged as such either.
    assert not any(key.startswith(("env.", "PIPELINE_")) for run in runs
                   for key in [*run.data.params, *run.data.tags])
