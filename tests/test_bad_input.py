"""The bad-input matrix: every user mistake ends the real command with one `error: ` line that
names the problem and its fix, a non-zero exit, no traceback, no MLflow run left RUNNING, and
(all of these can be known early) before any run is created, so before any training.

Each case runs the real entry point (`python -m pipeline`'s `main`, see `pipeline_in_process`) in
its own working directory; a fresh interpreter per case would cost seconds of imports each.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import all_runs, pipeline_in_process


def write(name: str, frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda workdir: frame.to_csv(workdir / name, index=False)


def write_text(name: str, text: str | bytes) -> Callable[[Path], None]:
    def make(workdir: Path) -> None:
        path = workdir / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)

    return make


def small(**changes: object) -> pd.DataFrame:
    """20 rows: a numeric and a text feature, a two-class label; `changes` replace columns."""
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "b": ["x", "y"] * 10,
                          "label": ["p", "q"] * 10})
    for column, values in changes.items():
        frame[column] = values
    return frame


def identifiers(workdir: Path) -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    pd.DataFrame({"user": [f"u{i:06d}" for i in range(n)], "a": rng.normal(size=n),
                  "label": rng.choice(["p", "q"], n)}).to_csv(workdir / "users.csv", index=False)


def outputs_is_a_file(workdir: Path) -> None:
    (workdir / "outputs").write_text("not a directory\n")


def regular_file(workdir: Path) -> None:
    (workdir / "file.txt").write_text("not a directory\n")


@dataclass
class Mistake:
    args: list[str]
    words: list[str]  # each must appear in the error line: the problem and the fix
    setup: Callable[[Path], None] | None = None
    needs_no_gpu: bool = False
    outcome: dict = field(default_factory=dict)


CSV = ["data=csv", "data.target=label"]
MLP = ["model=mlp", "trainer.max_epochs=2"]

MISTAKES: dict[str, Mistake] = {
    # The file
    "missing file": Mistake(CSV + ["data.path=nope.csv"], ["nope.csv", "does not exist"]),
    "directory for a file": Mistake(CSV + ["data.path=."], ["is a directory", "CSV or Parquet"]),
    "binary file": Mistake(CSV + ["data.path=blob.csv"], ["blob.csv", "binary", "CSV"],
                           write_text("blob.csv", bytes(range(256)) * 8)),
    "not UTF-8": Mistake(CSV + ["data.path=latin.csv"], ["latin.csv", "UTF-8"],
                         write_text("latin.csv", "a,label\n1,caf\xe9\n".encode("latin-1"))),
    "empty file": Mistake(CSV + ["data.path=empty.csv"], ["empty.csv", "is empty", "header"],
                          write_text("empty.csv", "")),
    "header only": Mistake(CSV + ["data.path=head.csv"], ["head.csv", "no rows", "add"],
                           write_text("head.csv", "a,b,label\n")),
    "duplicate column names": Mistake(CSV + ["data.path=dup.csv"],
                                      ["dup.csv", "'a' (2 times)", "unique"],
                                      write_text("dup.csv", "a,b,a,label\n" + "1,2,3,p\n4,5,6,q\n"
                                                 * 10)),
    # The target
    "target column missing": Mistake(["data=csv", "data.path=s.csv", "data.target=price"],
                                     ["'price'", "columns are: a, b, label"],
                                     write("s.csv", small())),
    "target all missing": Mistake(CSV + ["data.path=s.csv"],
                                  ["'label'", "no values", "data.target"],
                                  write("s.csv", small(label=np.nan))),
    "single class": Mistake(CSV + ["data.path=s.csv"], ["'label'", "single class", "two or more"],
                            write("s.csv", small(label="p"))),
    "class smaller than folds": Mistake(
        CSV + ["data.path=s.csv", "cv.n_splits=5"],
        ["'q' (2 rows)", "cv.n_splits=5", "cv.n_splits=2 or fewer", "cv.stratify=false"],
        write("s.csv", small(label=["p"] * 18 + ["q"] * 2))),
    # The features
    "all features constant": Mistake(CSV + ["data.path=s.csv"],
                                     ["single value", "nothing to learn"],
                                     write("s.csv", small(a=1.0, b="x"))),
    "feature of all NaN": Mistake(CSV + ["data.path=s.csv"],
                                  ["'gone'", "no values", "data.features=[a,b]"],
                                  write("s.csv", small(gone=np.nan))),
    "+inf value": Mistake(CSV + ["data.path=s.csv"], ["'a'", "infinite", "data row 4", "blank"],
                          write("s.csv", small(a=[1.0, 2.0, 3.0, np.inf] * 5))),
    "-inf value": Mistake(CSV + ["data.path=s.csv"], ["'a'", "infinite", "blank"],
                          write("s.csv", small(a=[-np.inf] + [1.0, 2.0] * 9 + [3.0]))),
    "numbers mixed with text": Mistake(
        CSV + ["data.path=s.csv"], ["'a'", "mixes numbers and text", "'?'", "data.categorical"],
        write("s.csv", small(a=[1.0, 2.0, 3.0, "?"] * 5))),
    "100k-category column": Mistake(CSV + ["data.path=users.csv"],
                                    ["'user'", "100000", "identifier", "data.features"],
                                    identifiers),
    "features not in the file": Mistake(CSV + ["data.path=s.csv", "data.features=[a,zzz]"],
                                        ["'zzz'", "columns are: a, b, label"],
                                        write("s.csv", small())),
    # Model and task
    "classifier on a regression target": Mistake(["model=naive_bayes", "data=diabetes"],
                                                 ["model=naive_bayes", "regression", "ols"]),
    "binary model on three classes": Mistake(["model=logistic", "data=iris"],
                                             ["model=logistic", "3 classes", "softmax"]),
    # Cross-validation
    "n_splits < 2": Mistake(["cv.n_splits=1"], ["cv.n_splits", "at least 2"]),
    "n_splits > samples": Mistake(["cv.n_splits=200", "cv.stratify=false"],
                                  ["n_splits=200", "n_samples=150", "iris"]),
    "test_size above 1": Mistake(["cv=holdout", "cv.test_size=1.5"],
                                 ["cv.test_size", "between 0 and 1", "1.5"]),
    "test_size 0": Mistake(["cv=holdout", "cv.test_size=0"], ["cv.test_size", "between 0 and 1"]),
    # Torch model arguments
    "negative lr": Mistake(MLP + ["model.lr=-1"], ["model.lr must be null or > 0", "-1"]),
    "zero lr": Mistake(MLP + ["model.lr=0"], ["model.lr must be null or > 0", "got 0"]),
    "empty hidden_sizes": Mistake(MLP + ["model.hidden_sizes=[]"],
                                  ["model.hidden_sizes", "non-empty list", "[64, 32]"]),
    "negative hidden size": Mistake(MLP + ["model.hidden_sizes=[8,-4]"],
                                    ["model.hidden_sizes", "positive integers", "-4"]),
    "unknown optimizer": Mistake(MLP + ["model.optimizer=nadam"],
                                 ["model.optimizer='nadam'", "sgd, adam"]),
    "unknown activation": Mistake(MLP + ["model.activation=swish"],
                                  ["model.activation='swish'", "relu, tanh"]),
    "batch_size 0": Mistake(MLP + ["model.batch_size=0"], ["model.batch_size", "positive integer"]),
    "bad sklearn model argument": Mistake(["model=decision_tree", "model.criterion=purity"],
                                          ["model.criterion", "purity"]),
    "trainer=gpu without a GPU": Mistake(MLP + ["trainer=gpu"],
                                         ["no CUDA GPU", "trainer=cpu"], needs_no_gpu=True),
    # Where results go
    "outputs/ is not writable": Mistake(["model=knn"],
                                        ["outputs", "is a file, not a directory", "hydra.run.dir"],
                                        outputs_is_a_file),
    "tracking store not writable": Mistake(
        ["model=knn", "tracking.uri=sqlite:///{workdir}/file.txt/mlflow.db"],
        ["file.txt", "is a file, not a directory", "tracking.uri=sqlite:///<writable dir>"],
        regular_file),
    "closed tracking server port": Mistake(["tracking.uri=http://127.0.0.1:9"],
                                           ["http://127.0.0.1:9", "unreachable"]),
    "unknown tracking URI scheme": Mistake(["tracking.uri=foo://bar"],
                                           ["tracking.uri=foo://bar", "cannot be used", "foo"]),
}


def run_mistake(mistake: Mistake, workdir: Path) -> None:
    workdir.mkdir(parents=True)
    if mistake.setup:
        mistake.setup(workdir)
    args = [arg.format(workdir=workdir) for arg in mistake.args]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("HYDRA_FULL_ERROR", raising=False)
        done = pipeline_in_process(*args)
    runs = all_runs(workdir) if (workdir / "outputs").is_dir() else pd.DataFrame(
        columns=["run_id", "status"])
    mistake.outcome.update(done=done, runs=runs)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Runs every selected case once."""
    selected = [item.callspec.params["name"] for item in request.session.items
                if getattr(item, "module", None) is request.module
                and getattr(item, "originalname", "") == "test_bad_input_is_one_clear_line"]
    root = tmp_path_factory.mktemp("mistakes")
    for number, name in enumerate(selected):
        run_mistake(MISTAKES[name], root / str(number))
    return {name: MISTAKES[name].outcome for name in selected}


@pytest.mark.parametrize("name", MISTAKES)
def test_bad_input_is_one_clear_line(outcomes, name):
    mistake = MISTAKES[name]
    if mistake.needs_no_gpu and shutil.which("nvidia-smi"):
        pytest.skip("needs a machine without a CUDA GPU: the mistake here is asking for one")
    done, runs = outcomes[name]["done"], outcomes[name]["runs"]
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for word in mistake.words:
        assert word in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert "RUNNING" not in set(runs["status"])
    # Caught before any training: not even a parent run was created.
    assert runs.empty, runs[["run_id", "status"]]


def test_matrix_covers_the_issue():
    """At least the 26 mistakes of issue 6 (some in two forms)."""
    assert len(MISTAKES) >= 26


def test_unknown_config_option_is_hydras_message(cli, workdir):
    # In a process of its own: in a process that ran other commands, Hydra's search path holds
    # what they registered, and its message for an unknown option is then a traceback.
    done = cli("model=xgboost")
    assert done.returncode != 0
    assert "Could not find 'model/xgboost'" in done.stderr
    assert "Traceback" not in done.stderr


def test_full_error_shows_the_traceback(run_cli, workdir, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    done = run_cli("cv.n_splits=1")
    assert done.returncode == 1
    assert "error: cv.n_splits must be an integer of at least 2" in done.stderr
    assert "Traceback" in done.stderr and "PipelineError" in done.stderr


def test_many_categories_are_grouped_not_exploded(workdir):
    """A text column of 20 000 categories (not an identifier: each appears 3 times) is grouped
    into at most `max_categories` one-hot columns."""
    from pipeline import preprocessing
    from pipeline.data import table

    n = 60_000
    rng = np.random.default_rng(0)
    pd.DataFrame({"city": [f"c{i % 20_000}" for i in range(n)], "a": rng.normal(size=n),
                  "label": rng.choice(["p", "q"], n)}).to_csv(workdir / "c.csv", index=False)
    dataset = table("c.csv", "label")
    design = preprocessing.build(dataset, min_frequency=None,
                                 max_categories=50).fit_transform(dataset.X)
    assert design.shape == (n, 1 + 50)
    assert np.isfinite(design).all()


def test_unbounded_one_hot_is_refused_with_advice(workdir):
    from pipeline import preprocessing
    from pipeline.data import table
    from pipeline.errors import PipelineError

    n = 60_000
    pd.DataFrame({"city": [f"c{i % 20_000}" for i in range(n)], "a": np.arange(n) % 7,
                  "label": ["p", "q"] * (n // 2)}).to_csv(workdir / "c.csv", index=False)
    with pytest.raises(PipelineError, match="20000 columns .* preprocess.max_categories=50"):
        preprocessing.build(table("c.csv", "label"), min_frequency=None, max_categories=None)
