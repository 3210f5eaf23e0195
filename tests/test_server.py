"""Jobs tracked through a real MLflow server: SQLite and PostgreSQL backends, and its web UI.

Every service is started by the test on 127.0.0.1 (tests/services.py) and stopped when the
tests end. PostgreSQL and Chromium come from Debian packages that `.ci/run` installs; where one
is missing the test says so, and fails in CI (`CI=true`) or is skipped elsewhere.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import missing_system_package
from tests.services import INSTALL_HINT, Server, mlflow_server, postgres_cluster

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PARENT_TAG = "mlflow.parentRunId"
FOLDS = [f"fold-{i}" for i in range(1, 6)]


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("mlflow-sqlite")
    with mlflow_server(f"sqlite:///{home / 'mlflow.db'}", home) as server:
        yield server


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    with postgres_cluster() as uri:
        yield uri


@pytest.fixture(scope="module")
def postgres_server(postgres_uri: str,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with mlflow_server(postgres_uri, tmp_path_factory.mktemp("mlflow-postgres")) as server:
        yield server


def parent_run_id(job: subprocess.CompletedProcess) -> str:
    assert job.returncode == 0, f"job failed:\n{job.stdout[-2000:]}\n{job.stderr[-3000:]}"
    found = re.search(r"parent run ([0-9a-f]{32})", job.stdout)
    assert found, f"no parent run id in the job's output:\n{job.stdout[-2000:]}"
    return found.group(1)


def assert_job_tracked(server: Server, parent_id: str, experiment: str, name: str) -> None:
    """The parent run, its five fold runs and their artifacts, as the server reports them."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.url)
    parent = client.get_run(parent_id)
    assert parent.info.run_name == name
    assert parent.info.status == "FINISHED"
    assert client.get_experiment(parent.info.experiment_id).name == experiment
    assert 0.8 < parent.data.metrics["test_accuracy_mean"] <= 1.0

    folds = client.search_runs([parent.info.experiment_id],
                               filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'")
    assert sorted(run.info.run_name for run in folds) == FOLDS
    assert {run.info.status for run in folds} == {"FINISHED"}

    assert {item.path for item in client.list_artifacts(parent_id)} >= {"config.yaml",
                                                                         "folds.csv"}
    with tempfile.TemporaryDirectory() as downloads:
        config = yaml.safe_load(Path(client.download_artifacts(
            parent_id, "config.yaml", downloads)).read_text())
        assert config["model"]["name"] == name.split("-")[0]
        scores = pd.read_csv(client.download_artifacts(parent_id, "folds.csv", downloads))
        assert list(scores["fold"]) == FOLDS
        fold_1 = next(run for run in folds if run.info.run_name == "fold-1")
        confusion = pd.read_csv(client.download_artifacts(
            fold_1.info.run_id, "confusion_matrix.csv", downloads), index_col=0)
        assert int(confusion.to_numpy().sum()) == int(fold_1.data.params["test_size"])
    # Uploaded through the server's artifact proxy into its --artifacts-destination.
    assert list(server.artifacts.rglob(f"{parent_id}/artifacts/config.yaml"))


def test_job_tracked_on_server_with_sqlite_backend(cli, sqlite_server: Server) -> None:
    job = cli("data=iris", "model=knn", f"tracking.uri={sqlite_server.url}")
    parent_id = parent_run_id(job)
    assert_job_tracked(sqlite_server, parent_id, "iris", "knn-kfold")

    from pipeline.compare import leaderboard

    experiment, table = leaderboard(sqlite_server.url, experiment="iris")
    assert experiment == "iris" and parent_id in set(table["run_id"])


def test_job_tracked_on_server_with_postgres_backend(cli, postgres_server: Server,
                                                     postgres_uri: str) -> None:
    job = cli("data=iris", "model=knn", "tracking=server", f"tracking.uri={postgres_server.url}")
    parent_id = parent_run_id(job)
    assert_job_tracked(postgres_server, parent_id, "iris", "knn-kfold")

    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_uri)
    try:
        with engine.connect() as connection:
            stored = connection.execute(sqlalchemy.text(
                "SELECT name, status FROM runs WHERE run_uuid = :id"), {"id": parent_id}).one()
    finally:
        engine.dispose()
    assert tuple(stored) == ("knn-kfold", "FINISHED")


def test_ui_shows_the_job_runs(cli, workdir: Path, postgres_server: Server) -> None:
    if not CHROMIUM.exists():
        missing_system_package(f"{CHROMIUM} not found: install Debian's chromium package; "
                               f"{INSTALL_HINT}")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail('playwright is not installed: pip install -e ".[dev]" (as .ci/run does)')

    from mlflow import MlflowClient

    job = cli("data=wine", "model=knn", f"tracking.uri={postgres_server.url}")
    parent_id = parent_run_id(job)
    experiment_id = MlflowClient(tracking_uri=postgres_server.url).get_run(
        parent_id).info.experiment_id
    screenshot = workdir / "outputs" / "mlflow-ui.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # The UI opens experiments in its GenAI view; runs are in the model-training one.
            page.goto(f"{postgres_server.url}/#/experiments/{experiment_id}/runs"
                      "?workflowType=machine_learning")
            parent = page.get_by_role("row").filter(has_text="knn-kfold")
            expect(parent).to_be_visible(timeout=30_000)
            close_assistant = page.get_by_role("button", name="Close")
            if close_assistant.count() == 1:
                close_assistant.click()  # a side panel that would narrow the table
            parent.get_by_role("gridcell").filter(has_text="knn-kfold").get_by_role(
                "button").click()  # expand the parent to show its fold runs
            for fold in FOLDS:
                expect(page.get_by_role("row").filter(has_text=fold)).to_be_visible()
            expect(page.get_by_text("6 matching runs")).to_be_visible()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
