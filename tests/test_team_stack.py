"""docker-compose.yml's team stack without Docker: PostgreSQL, an S3 store (moto standing in
for MinIO) and the compose file's own `mlflow server --serve-artifacts --artifacts-destination
s3://…` command (tests/services.py: team_stack). One job tracks its runs, figures and model
through it; the leaderboard, `pipeline.predict` and a served model read them back through
it, and the bucket, listed with boto3, holds every artifact. Clients (the job, predict, the
served model) run without any AWS variable: artifacts go through the server's proxy.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn import datasets

from pipeline import compare, predict
from tests.conftest import command_in_process
from tests.services import (
    S3_CLIENT_PREFIXES,
    TeamStack,
    bucket_objects,
    client_env,
    invoke,
    served,
    team_stack,
)
from tests.test_server import parent_run_id

pytestmark = pytest.mark.slow

# Cheap, but every kind of artifact: fold and job figures, the refit model.
JOB = ["data=iris", "model=decision_tree", "cv.n_splits=2", "plots=true", "refit=true",
       "tracking=server"]
# The files of an MLflow model that loading it needs.
MODEL_FILES = {"MLmodel", "model.pkl", "requirements.txt"}


@dataclass
class Job:
    run_id: str
    experiment_id: str
    model_id: str
    workdir: Path


@dataclass
class Predicted:
    rows: pd.DataFrame        # as a client reads them from rows.csv
    predictions: pd.DataFrame  # what `pipeline.predict` wrote


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    with team_stack(tmp_path_factory.mktemp("team-stack")) as stack:
        yield stack


@pytest.fixture(scope="module")
def no_s3_credentials() -> Iterator[None]:
    """This process, as a client, without the AWS variables a developer may have set."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith(S3_CLIENT_PREFIXES)]:
            patch.delenv(name)
        yield


@pytest.fixture(scope="module")
def job(stack: TeamStack, tmp_path_factory: pytest.TempPathFactory) -> Job:
    """The job, run as a user runs it: `MLFLOW_TRACKING_URI=<server> python -m pipeline
    tracking=server`, no S3 endpoint or credentials in its environment."""
    workdir = tmp_path_factory.mktemp("team-job")
    done = subprocess.run([sys.executable, "-m", "pipeline", *JOB], cwd=workdir,
                          env=client_env(stack.url), capture_output=True, text=True,
                          timeout=300)
    run_id = parent_run_id(done)
    run = MlflowClient(tracking_uri=stack.url).get_run(run_id)
    [model] = run.outputs.model_outputs
    return Job(run_id, run.info.experiment_id, model.model_id, workdir)


@pytest.fixture(scope="module")
def predicted(stack: TeamStack, job: Job, no_s3_credentials: None) -> Predicted:
    """`python -m pipeline.predict … tracking_uri=<server>` on 20 iris rows."""
    rows = datasets.load_iris(as_frame=True).data.sample(20, random_state=0)
    rows.to_csv(job.workdir / "rows.csv", index=False)
    output = job.workdir / "predictions.csv"
    done = command_in_process(predict.main, "pipeline.predict", f"run_id={job.run_id}",
                              f"input={job.workdir / 'rows.csv'}", f"output={output}",
                              f"tracking_uri={stack.url}")
    assert done.returncode == 0, done.stderr
    return Predicted(pd.read_csv(job.workdir / "rows.csv"), pd.read_csv(output))


def artifact_sizes(client: MlflowClient, run_id: str, path: str | None = None) -> dict[str, int]:
    """Every artifact file of a run as the tracking server lists it: path -> size."""
    sizes = {}
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            sizes.update(artifact_sizes(client, run_id, item.path))
        else:
            sizes[item.path] = item.file_size
    return sizes


def under(objects: dict[str, int], prefix: str) -> dict[str, int]:
    return {key.removeprefix(prefix): size for key, size in objects.items()
            if key.startswith(prefix)}


def test_every_artifact_of_the_job_is_in_the_bucket_and_none_on_disk(stack: TeamStack,
                                                                      job: Job) -> None:
    client = MlflowClient(tracking_uri=stack.url)
    runs = client.search_runs([job.experiment_id])
    assert {run.info.status for run in runs} == {"FINISHED"} and len(runs) == 3  # job, 2 folds
    objects = bucket_objects(stack)
    listed = set()
    for run in runs:
        prefix = f"{job.experiment_id}/{run.info.run_id}/artifacts/"
        # What the server lists for the run is what its bucket holds, byte counts included.
        assert artifact_sizes(client, run.info.run_id) == under(objects, prefix)
        listed |= {prefix + path for path in under(objects, prefix)}
    job_files = under(objects, f"{job.experiment_id}/{job.run_id}/artifacts/")
    assert {"config.yaml", "folds.csv"} <= set(job_files)
    assert any(path.startswith("plots/") and path.endswith(".png") for path in job_files)

    model_prefix = f"{job.experiment_id}/models/{job.model_id}/artifacts/"
    model_files = under(objects, model_prefix)
    assert set(model_files) >= MODEL_FILES
    assert client.get_logged_model(job.model_id).source_run_id == job.run_id
    # Nothing else in the bucket, and no artifact written beside the server or the job.
    assert set(objects) == listed | {model_prefix + path for path in model_files}
    names = {Path(key).name for key in objects} - {"config.yaml"}  # Hydra keeps its own
    for home in (stack.home, job.workdir):
        assert not [path for path in home.rglob("*") if path.name in names], home


def test_leaderboard_reads_the_job_back_through_the_server(stack: TeamStack, job: Job,
                                                           no_s3_credentials: None) -> None:
    done = command_in_process(compare.main, "pipeline.compare", "--uri", stack.url,
                              "--format", "csv")
    assert done.returncode == 0, done.stderr
    [row] = pd.read_csv(io.StringIO(done.stdout)).to_dict("records")
    # The reference: the job's folds.csv, fetched from the bucket itself.
    folds = pd.read_csv(stack.s3.client().get_object(
        Bucket=stack.bucket, Key=f"{job.experiment_id}/{job.run_id}/artifacts/folds.csv")["Body"])
    assert (row["run_id"], row["model"]) == (job.run_id, "decision_tree")
    assert row["accuracy_mean"] == pytest.approx(folds["test_accuracy"].mean())


def test_predictions_through_the_server_are_the_bucket_models(stack: TeamStack, job: Job,
                                                              predicted: Predicted,
                                                              tmp_path: Path) -> None:
    # The reference: the model's files downloaded from the bucket with boto3, loaded locally.
    s3, prefix = stack.s3.client(), f"{job.experiment_id}/models/{job.model_id}/artifacts/"
    for key in bucket_objects(stack, prefix):
        local = tmp_path / key.removeprefix(prefix)
        local.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(stack.bucket, key, str(local))
    expected = mlflow.pyfunc.load_model(str(tmp_path)).predict(predicted.rows)
    np.testing.assert_array_equal(predicted.predictions["prediction"].to_numpy(),
                                  np.asarray(expected))
    assert set(predicted.predictions["prediction"]) <= set(datasets.load_iris().target_names)


def test_served_model_answers_http_as_predict_does(stack: TeamStack, job: Job,
                                                   predicted: Predicted) -> None:
    with served(f"runs:/{job.run_id}/model", job.workdir, stack.url) as url:
        answer = invoke(url, predicted.rows)
        assert answer.status_code == 200, answer.text
        np.testing.assert_array_equal(np.asarray(answer.json()["predictions"]),
                                      predicted.predictions["prediction"].to_numpy())

        dropped = predicted.rows.columns[-1]
        refused = invoke(url, predicted.rows.drop(columns=[dropped]))
        assert 400 <= refused.status_code < 500
        assert f"missing inputs ['{dropped}']" in refused.json()["message"]
