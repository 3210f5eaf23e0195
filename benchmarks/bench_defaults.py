"""The torch models at their defaults against scikit-learn, on bundled and generated tables.

    OMP_NUM_THREADS=1 python benchmarks/bench_defaults.py [--only NAME ...] [--set KEY=VALUE ...]

For every data set and every torch model that fits its task, one 5-fold job through the real
pipeline (the config composed with Hydra's compose API, `pipeline.entry.run`, `plots=false
refit=false`, MLflow tracking into a temporary SQLite store, `trainer=cpu`) and the scikit-learn
reference cross-validated on the same folds: `cross_validate(Pipeline([StandardScaler(), ref]),
X, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed))` (`KFold` for regression), as
DESIGN.md says the pipeline's folds are.

References: `logistic` and `softmax` against `LogisticRegression()`, `linear` against
`LinearRegression()`, `mlp` against the better score of `MLPClassifier()` and
`LogisticRegression()` (`MLPRegressor()` and `LinearRegression()` for regression), all at
scikit-learn's defaults with `random_state=seed` where they take one; the time of `mlp` is
compared with scikit-learn's MLP.

Goals (issue 12): the mean test accuracy within 1 point of the reference's (R² within 0.01), in
at most 10x its time. Time is the sum of the folds' fit times (preprocessing and model, as each
side measures it: the pipeline's `fit_time` per fold, `cross_validate`'s `fit_time`), which is
what the model's defaults decide; the wall time of the whole job (config already composed; data
loading, checks, splitting, scoring and the MLflow runs of the job and its folds included) and
of `cross_validate` are shown beside it, and so is the floor: the fit time of the same job cut
to one epoch (`trainer.max_epochs=1`; one L-BFGS iteration for the linear models), the cost of
a fit before any training (Lightning's Trainer, moving the data, one epoch's hooks). A row that
misses a goal is marked.

Threads: torch runs on one thread (`torch.set_num_threads(1)`, `OMP_NUM_THREADS=1` set before
torch is imported) and so does scikit-learn (the same variable bounds its BLAS).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from pipeline.config import config_dir  # noqa: E402
from pipeline.entry import (
    describe,  # noqa: E402
    run,  # noqa: E402
)

SEED = 42
N_SPLITS = 5
SCORE_GOAL = {"classification": 0.01, "regression": 0.01}
TIME_GOAL = 10.0


@dataclass
class Case:
    name: str
    overrides: list[str]
    task: str
    models: tuple[str, ...]
    files: dict[str, pd.DataFrame] = field(default_factory=dict)


def generated_tables() -> dict[str, pd.DataFrame]:
    """Tables scikit-learn generates (fixed seed) that `data=synthetic` cannot: an imbalanced
    binary target and a non-linear regression, read back through `data=csv`."""
    X, y = datasets.make_classification(n_samples=8000, n_features=10, n_informative=5,
                                        n_redundant=2, weights=[0.9], flip_y=0.02,
                                        random_state=SEED)
    imbalanced = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(y=y)
    X, y = datasets.make_friedman1(n_samples=4000, n_features=10, noise=1.0, random_state=SEED)
    friedman = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(y=y)
    return {"imbalanced.csv": imbalanced, "friedman1.csv": friedman}


def cases(tables: Path) -> list[Case]:
    csv = ["data=csv", "data.target=y"]
    synthetic = ["data=synthetic"]
    return [
        Case("iris", ["data=iris"], "classification", ("softmax", "mlp")),
        Case("wine", ["data=wine"], "classification", ("softmax", "mlp")),
        Case("breast_cancer", ["data=breast_cancer"], "classification", ("logistic", "mlp")),
        Case("digits", ["data=digits"], "classification", ("softmax", "mlp")),
        Case("diabetes", ["data=diabetes"], "regression", ("linear", "mlp")),
        Case("synth-10k-x4", [*synthetic, "data.n_samples=10000", "data.n_features=4",
                              "data.n_informative=4"], "classification", ("logistic", "mlp")),
        Case("synth-5k-3cls-noisy", [*synthetic, "data.n_samples=5000", "data.n_features=20",
                                     "data.n_informative=10", "data.n_classes=3",
                                     "data.noise=0.1"], "classification", ("softmax", "mlp")),
        Case("imbalanced-8k", [*csv, f"data.path={tables / 'imbalanced.csv'}"],
             "classification", ("logistic", "mlp")),
        Case("synth-reg-5k", [*synthetic, "data.task=regression", "data.n_samples=5000",
                              "data.n_features=20", "data.n_informative=10", "data.noise=10"],
             "regression", ("linear", "mlp")),
        Case("friedman1-4k", [*csv, f"data.path={tables / 'friedman1.csv'}"], "regression",
             ("linear", "mlp")),
    ]


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("config", overrides=overrides)


def references(task: str, model: str) -> dict[str, object]:
    if task == "classification":
        linear = LogisticRegression()
        mlp = MLPClassifier(random_state=SEED)
    else:
        linear = LinearRegression()
        mlp = MLPRegressor(random_state=SEED)
    if model == "mlp":
        return {"MLP": mlp, "linear": linear}
    return {"linear": linear}


def cross_validated(reference, X, y, task: str) -> tuple[float, float, float]:
    """Mean test score, summed fit time and wall time of `reference` on the pipeline's folds."""
    splitter = (StratifiedKFold if task == "classification" else KFold)(
        N_SPLITS, shuffle=True, random_state=SEED)
    scoring = "accuracy" if task == "classification" else "r2"
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = Pipeline([("scale", StandardScaler()), ("model", clone(reference))])
        scores = cross_validate(estimator, X, y, cv=splitter, scoring=scoring)
    wall = time.perf_counter() - started
    return float(scores["test_score"].mean()), float(scores["fit_time"].sum()), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="data set names to run")
    parser.add_argument("--models", nargs="*", default=None, help="torch models to run")
    parser.add_argument("--set", nargs="*", default=[], dest="extra",
                        help="overrides for every torch job, e.g. model.batch_size=256")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="bench_defaults_"))
    tables = workdir / "tables"
    tables.mkdir()
    for file, frame in generated_tables().items():
        frame.to_csv(tables / file, index=False)
    tracking = [f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}"]
    common = ["cv=kfold", f"cv.n_splits={N_SPLITS}", f"seed={SEED}", "trainer=cpu",
              "plots=false", "refit=false", *tracking]
    # Imports, the store's creation and its schema are paid once, before anything is timed.
    run(compose_cfg(["data=iris", "model=softmax", "trainer.max_epochs=1", *common]))

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.2f}"
          + (f", overrides {' '.join(args.extra)}" if args.extra else ""))
    header = (f"{'data':<20} {'rows x cols':>11} {'model':<8} {'ref':<6} {'ref':>7} {'torch':>7} "
              f"{'diff':>6} {'ref fit':>8} {'torch fit':>9} {'ratio':>6} {'ref wall':>8} "
              f"{'job wall':>8} {'floor':>6}  goals")
    print(header)
    print("-" * len(header))
    missed = 0
    for case in cases(tables):
        if args.only and case.name not in args.only:
            continue
        _, dataset, _ = describe(compose_cfg([*case.overrides, *common]))
        X, y = dataset.X.to_numpy(dtype=float), dataset.y.to_numpy()
        shape = f"{X.shape[0]}x{X.shape[1]}"
        for model in case.models:
            if args.models and model not in args.models:
                continue
            measured = {name: cross_validated(ref, X, y, case.task)
                        for name, ref in references(case.task, model).items()}
            best = max(measured, key=lambda name: measured[name][0])
            ref_score = measured[best][0]
            timed = measured["MLP" if model == "mlp" else "linear"]
            ref_fit, ref_wall = timed[1], timed[2]
            cfg = compose_cfg([*case.overrides, f"model={model}", *common, *args.extra])
            started = time.perf_counter()
            result = run(cfg)
            job_wall = time.perf_counter() - started
            score, fit = result.score, float(result.folds["fit_time"].sum())
            one_epoch = run(compose_cfg([*case.overrides, f"model={model}", *common, *args.extra,
                                         "trainer.max_epochs=1", "model.max_epochs=null"]))
            floor = float(one_epoch.folds["fit_time"].sum())
            diff = score - ref_score
            ratio = fit / ref_fit
            goals = []
            if diff < -SCORE_GOAL[case.task]:
                goals.append("MISS score")
            if ratio > TIME_GOAL:
                goals.append("MISS time")
            missed += bool(goals)
            shown_diff = f"{100 * diff:+6.2f}" if case.task == "classification" else f"{diff:+6.3f}"
            print(f"{case.name:<20} {shape:>11} {model:<8} {best:<6} {ref_score:7.4f} "
                  f"{score:7.4f} {shown_diff} {ref_fit:7.2f}s {fit:8.2f}s {ratio:5.1f}x "
                  f"{ref_wall:7.2f}s {job_wall:7.2f}s {floor:5.2f}s  {', '.join(goals) or 'ok'}",
                  flush=True)
    print(f"diff: accuracy in points, R² as is; ratio: torch fit / reference fit "
          f"(the MLP reference's time for mlp); floor: torch fit at 1 epoch; "
          f"rows missing a goal: {missed}; "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
