"""Trusting what `pipeline.compare` prints: every argument checked before the store, stdout that
holds the table alone (whatever MLflow prints), means over fewer folds than the job ran said
so, and a store the OS refuses said in one line. Stores are written here as jobs write them."""

from __future__ import annotations

import errno
import io
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import compare, doctor, engine
from pipeline.compare import cli
from pipeline.tracking import connect, process_tags

ROOT = Path(__file__).resolve().parents[1]
# Accuracy per fold of three jobs on the same five folds; svm's is undefined (NaN) in two.
NAN = float("nan")
JOBS = {"knn": [0.90, 0.92, 0.94, 0.96, 0.91],
        "svm": [0.95, NAN, 0.97, NAN, 0.96],
        "decision_tree": [0.88, 0.90, 0.91, 0.93, 0.90]}
SWEEP = "multirun/a"


def record(uri: str, jobs: dict[str, list[float]]) -> None:
    """Jobs as the runner records them: a parent run each, tagged and summarised by the
    engine's own `summarise`, and a fold run per fold holding its scores (a NaN score is not
    logged, as the tracker drops it)."""
    tracker = connect(uri, "iris")
    for number, (model, scores) in enumerate(jobs.items()):
        tags = {"model": model, "data": "iris", "cv": "kfold", "task": "classification",
                "objective": "test_accuracy", "folds": "same-folds", "fold_repeats": "1",
                "sweep": SWEEP, "job": str(number)}
        with tracker.run(f"{model}-kfold", tags=tags,
                         params={"model.name": model, "cv.n_splits": len(scores)}) as parent:
            rows = []
            for i, score in enumerate(scores, 1):
                with tracker.run(f"fold-{i}", parent=parent,
                                 params={"fold": i, "train_size": 120, "test_size": 30}) as fold:
                    tracker.log_metrics(fold, {"test_accuracy": score})
                rows.append({"test_accuracy": score})
            engine.summarise(pd.DataFrame(rows), tracker, parent)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recorded")
    record(f"sqlite:///{folder / 'mlflow.db'}", JOBS)
    return folder


@pytest.fixture
def store(recorded: Path, workdir: Path) -> str:
    """This test's copy of the recorded store (the working directory is `workdir`)."""
    shutil.copytree(recorded, workdir / "store")
    return f"sqlite:///{workdir / 'store' / 'mlflow.db'}"


def orphan(uri: str) -> str:
    """A RUNNING run whose process is gone, as a job killed outright leaves it: its id."""
    from mlflow import MlflowClient

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("iris").experiment_id
    tags = {**process_tags(), "pid": ended.stdout.strip(), "model": "knn"}
    return client.create_run(experiment, run_name="knn-kfold", tags=tags).info.run_id


# -- the arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "said"), [
    (["--against", "--rope", "nan"], "--rope: a width of practical equivalence is a finite "
                                     "number, at least 0; got nan"),
    (["--against", "--rope", "inf"], "got inf"),
    (["--across-data", "--rope", "-0.5"], "got -0.5"),
    (["--against", "--rope", "wide"], "--rope: 'wide' is not a number"),
    (["--rope", "0.01"], "--rope is the width of practical equivalence of --against or "
                         "--across-data; without one of them it would not be used"),
    (["--against", "--across-data"], "--across-data: not allowed with argument --against"),
    (["--across-data", "--format", "csv"], "--format csv is for the leaderboard"),
    (["--metric", "acuracy"], "--metric: 'acuracy' is no metric; metrics: accuracy, "),
    (["-e", "iris\tnew"], "holds a control character"),
    (["-e", ""], "--experiment/-e: '' names nothing"),
    (["-e", "x" * 501], "is 501 characters long; MLflow keeps at most 500"),
    (["--across-data", "-e", "iris,,wine"], "--experiment/-e: '' names nothing"),
    (["--sweep", "multirun/a\n"], "--sweep: 'multirun/a\\n' holds a control character"),
    (["--sweep", "it's \"quoted\""], "cannot be searched for in MLflow"),
    (["--sweep", "d" * 8001], "is 8001 characters long; MLflow keeps at most 8000"),
    (["--against", ""], "an empty value names no job"),
    (["--uri", ""], "--uri: an empty URI names no store"),
    (["--uri", "sqlite:///outputs/mlflow.db\n"], "holds a control character"),
])
def test_arguments_are_refused_before_the_store_is_touched(argv, said, workdir, capsys):
    untouched = workdir / "none" / "mlflow.db"
    uri = ["--uri", f"sqlite:///{untouched}"] if "--uri" not in argv else []
    with pytest.raises(SystemExit) as stopped:
        compare.main([*uri, *argv])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m pipeline.compare")
    [line] = [line for line in err.splitlines() if "error:" in line]
    assert said in line
    assert not untouched.parent.exists()  # no store, no lock file, no directory


def test_the_limits_are_mlflows():
    from mlflow.utils import validation

    assert cli.MAX_EXPERIMENT_NAME_LENGTH == validation.MAX_EXPERIMENT_NAME_LENGTH
    assert cli.MAX_TAG_VAL_LENGTH == validation.MAX_TAG_VAL_LENGTH


def test_valid_arguments_are_taken_as_given():
    args = cli.parser().parse_args(["--metric", "test_f1", "--against", "svm", "--rope", "0",
                                    "-e", "x" * 500, "--sweep", "latest"])
    assert (args.metric, args.against, args.rope, args.sweep) == ("test_f1", "svm", 0.0, "latest")
    assert cli.parser().parse_args(["--metric", "neg_log_loss"]).metric == "neg_log_loss"
    across = cli.parser().parse_args(["--across-data", "--rope", "1e-3", "-e", "iris, wine"])
    assert across.rope == 0.001 and across.experiment == "iris, wine"


def test_a_metric_no_job_scored_is_the_stores_answer(store, capsys):
    assert compare.main(["--uri", store, "--metric", "f1"]) == 1
    assert capsys.readouterr().err == "error: no metric 'f1' on these runs; metrics: accuracy\n"


def test_doctor_refuses_an_empty_or_broken_uri(workdir, capsys):
    for uri in ("", " ", "sqlite:///a\nb"):
        with pytest.raises(SystemExit) as stopped:
            doctor.main(["--uri", uri])
        assert stopped.value.code == 2
        assert "python -m pipeline.doctor: error: argument --uri: " in capsys.readouterr().err
    assert not (workdir / "outputs").exists()


@pytest.mark.parametrize("command", ["compare", "doctor"])
def test_the_arguments_table_names_every_argument(command):
    """docs/arguments/<command>.md has a row for each of the parser's options, and no other."""
    parser = {"compare": cli.parser, "doctor": doctor.parser}[command]()
    # Each option's line in --help starts with its spellings: `  --experiment E, -e E  help`.
    invocations = re.findall(r"^  (-\S.*?)(?: {2,}|$)", parser.format_help(), re.MULTILINE)
    options = {spelling.split()[0] for line in invocations for spelling in line.split(", ")}
    assert {"--help", "--uri"} <= options
    table = (ROOT / "docs" / "arguments" / f"{command}.md").read_text()
    named = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            named |= set(re.findall(r"`(-[-\w]*)`", row.split("|")[1]))
    assert named == options


# -- stdout is the table ----------------------------------------------------------------------

def test_csv_is_the_table_alone_while_orphans_are_marked(store, monkeypatch, capsys):
    """Against a server MLflow prints "🏃 View run ..." on stdout for every run it ends, the
    orphans `compare` marks on the way included; here the client prints it as it does there."""
    from mlflow import MlflowClient

    killed = orphan(store)
    ending = MlflowClient.set_terminated

    def set_terminated(self, run_id, status=None, end_time=None):
        sys.stdout.write(f"🏃 View run knn-kfold at: http://127.0.0.1:5000/#/runs/{run_id}\n")
        return ending(self, run_id, status, end_time)

    monkeypatch.setattr(MlflowClient, "set_terminated", set_terminated)
    assert compare.main(["--uri", store, "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == ("model,cv,params,accuracy_mean,accuracy_std,fit_time_mean,"
                                   "folds_scored,folds,run_id")
    table = pd.read_csv(io.StringIO(out))
    assert list(table["model"]) == ["svm", "knn", "decision_tree"]
    assert f"🏃 View run knn-kfold at: http://127.0.0.1:5000/#/runs/{killed}" in err
    assert MlflowClient(store).get_run(killed).info.status == "KILLED"


def test_markdown_against_is_the_table_alone(store, capsys):
    assert compare.main(["--uri", store, "--format", "markdown", "--against", "knn"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 + len(JOBS) and all(line.startswith("|") for line in lines)
    assert "against knn" in err and "not paired: row 1 svm" in err  # svm's NaN folds


@pytest.mark.slow
def test_csv_against_a_server_marking_orphans_is_the_table_alone(recorded, workdir, monkeypatch,
                                                                 capsys):
    from tests.services import mlflow_server

    shutil.copytree(recorded, workdir / "store")
    backend = f"sqlite:///{workdir / 'store' / 'mlflow.db'}"
    killed = orphan(backend)
    # The jobs of this process asked MLflow not to print its links; a user's shell has not.
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    with mlflow_server(backend, workdir) as server:
        assert compare.main(["--uri", server.url, "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    # Ending the orphan would print MLflow's "🏃 View run" link: readers ask MLflow not to, as
    # jobs do, and whatever a library still prints goes to stderr (the fast test above).
    assert "🏃" not in out and "View run" not in err
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns)[0] == "model" and len(table) == len(JOBS)
    assert "🏃" not in out
    from mlflow import MlflowClient

    assert MlflowClient(backend).get_run(killed).info.status == "KILLED"


# -- means over fewer folds -------------------------------------------------------------------

def expected_folds() -> pd.DataFrame:
    rows = [{"model": model, "accuracy_mean": np.nanmean(scores),
             "folds_scored": sum(math.isfinite(s) for s in scores), "folds": len(scores)}
            for model, scores in JOBS.items()]
    return pd.DataFrame(rows).sort_values("accuracy_mean", ascending=False, ignore_index=True)


@pytest.mark.parametrize("sweep", [[], ["--sweep", SWEEP]])
def test_the_leaderboard_says_over_how_many_folds_each_mean_is(store, sweep, capsys):
    assert compare.main(["--uri", store, "--format", "csv", *sweep]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    expected = expected_folds()
    assert list(table["model"]) == list(expected["model"])
    assert np.allclose(table["accuracy_mean"], expected["accuracy_mean"])
    assert list(table["folds_scored"]) == list(expected["folds_scored"])  # svm: 3 of 5
    assert list(table["folds"]) == list(expected["folds"])

    assert compare.main(["--uri", store, *sweep]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[2:2 + len(JOBS)]}
    assert re.search(r"0\.9600 ± 0\.0082 \*\s+nan\s+3/5", rows["svm"])
    assert "*" not in rows["knn"] and " 5/5 " in rows["knn"]
    assert lines[2 + len(JOBS)] == "* mean over fewer folds than the job ran (NaN folds left out)"

    assert compare.main(["--uri", store, "--format", "markdown", *sweep]) == 0
    markdown = capsys.readouterr().out.splitlines()
    assert markdown[0].split(" | ")[-2] == "folds"
    assert "| 3/5 |" in markdown[2] and markdown[2].startswith("| svm |")


def test_against_keeps_the_folds_and_the_note(store, capsys):
    assert compare.main(["--uri", store, "--metric", "accuracy", "--against", "knn"]) == 0
    out = capsys.readouterr().out
    assert "mean over fewer folds" in out  # svm is still in the table
    assert " 3/5 " in out and "not paired: row 1 svm" in out


# -- a store the OS refuses -------------------------------------------------------------------

def test_a_read_only_store_is_one_line_naming_it(store, monkeypatch, capsys):
    import pipeline.tracking.store

    lock = store.removeprefix("sqlite:///") + ".lock"

    def read_only(uri):
        raise OSError(errno.EROFS, "Read-only file system", lock)

    monkeypatch.setattr(pipeline.tracking.store, "reader", read_only)
    assert compare.main(["--uri", store]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"error: the MLflow store {store} cannot be read: Read-only file system "
                   f"({lock})\n")
