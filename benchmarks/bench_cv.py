"""The pipeline's cross-validation against scikit-learn's `cross_validate`, in one process.

    python benchmarks/bench_cv.py

Prints wall times and ratios (pipeline / reference) measured in this run: a random forest on
breast_cancer with 5-fold CV, one fold after another and with the folds in two worker
processes (`cv.n_jobs=2` against `cross_validate(n_jobs=2)`), what MLflow tracking adds per
fold run, what figures add to a quick job, and leave-one-out on a 500-row synthetic set.
`--forest`: the random forest rows only. The pipeline writes to a throw-away SQLite store;
a warm-up job first pays for the imports and the store's creation, which no timing includes.

What each side of the forest rows does, timed from its specification in hand to its scores:
`cross_validate(Pipeline([StandardScaler, RandomForestClassifier(random_state=42)]), X, y,
cv=StratifiedKFold(5, shuffle=True, random_state=42), scoring=<the same six metrics>,
return_train_score=True, n_jobs=2)` against `pipeline.entry.run(cfg)` on the composed config
of `data=breast_cancer model=random_forest cv.n_jobs=2`: the same splits, pipeline and six
metrics on train and test (its test accuracies are checked equal fold by fold), plus its own
preprocessing (median imputation before the scaling), checks, and the tracking: a parent run
(the config as params, tags, the means and stds, folds.csv, config.yaml) and five fold runs
(params, twelve scores and the fit time, the confusion matrix) in the SQLite store. Hydra's
composition of the config is timed apart and shown beside it (the reference's estimator,
splitter and scorers are likewise built before its clock starts). Both sides use the same two
loky worker processes (joblib keeps one pool and both ask it for the same workers, one thread
each), each runs once untimed first, then they alternate.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, make_scorer, precision_score, recall_score
from sklearn.model_selection import LeaveOneOut, StratifiedKFold, cross_validate
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.config import config_dir
from pipeline.entry import run
from pipeline.tracking import Tracker

REPEATS = 5


def timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def cpu_seconds() -> dict[int, float]:
    """CPU seconds so far of this process and of every process under it (the pool's workers,
    which outlive a call), by process id; empty where /proc is not (Linux only)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, used = {}, {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = entry.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        pid = int(entry.parent.name)
        parents[pid], used[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    family, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent == frontier[-1]]
        frontier.pop()
        family.update(children)
        frontier += children
    return {pid: used[pid] for pid in family if pid in used}


def timed_cpu(work) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds (this process and its workers) and the result of `work()`:
    on a shared machine the CPU it takes varies far less than its wall time."""
    before = cpu_seconds()
    wall, result = timed(work)
    after = cpu_seconds()
    return wall, sum(t - before.get(pid, 0.0) for pid, t in after.items()), result


def composed(*overrides: str):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def pipeline_job(*overrides: str):
    return run(composed(*overrides))


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-cv-"))
    os.chdir(workdir)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    pipeline_job("data=iris", "model=knn")  # warm-up: imports, store creation

    # The data set's own labels, by name (a forest's exact ties go to the first class by
    # name, so codes and names can differ by a row); benign is the positive class, as it was 1.
    cancer = datasets.load_breast_cancer()
    X, y = cancer.data, cancer.target_names[cancer.target]
    reference = Pipeline([("scale", StandardScaler()),
                          ("model", RandomForestClassifier(random_state=42))])
    splitter = StratifiedKFold(5, shuffle=True, random_state=42)
    positive = {"pos_label": "benign"}
    scoring = {"accuracy": "accuracy", "precision": make_scorer(precision_score, **positive),
               "recall": make_scorer(recall_score, **positive),
               "f1": make_scorer(f1_score, **positive), "mcc": "matthews_corrcoef",
               "roc_auc": "roc_auc"}
    def reference_cv(n_jobs: int):
        return cross_validate(reference, X, y, cv=splitter, scoring=scoring,
                              return_train_score=True, n_jobs=n_jobs)

    ref_time, ref = timed(lambda: reference_cv(1))
    ours_time, ours = timed(lambda: pipeline_job("data=breast_cancer", "model=random_forest"))
    assert (ours.folds["test_accuracy"].to_numpy() == ref["test_accuracy"]).all()
    print("random_forest on breast_cancer, 5-fold, same six metrics on train and test:")
    print(f"  cross_validate      {ref_time:7.3f} s")
    print(f"  pipeline (tracked)  {ours_time:7.3f} s   ratio {ours_time / ref_time:.2f}x")

    # Folds in two worker processes, as described at the top. Like for like first: what
    # cross_validate does (fit and score each fold), tracked; then the job at its defaults,
    # which also draws 19 figures and refits and logs the model.
    for what, extra in (("scores tracked, plots=false refit=false", ("plots=false",
                                                                     "refit=false")),
                        ("defaults: + figures, refit and model", ())):
        parallel = ("data=breast_cancer", "model=random_forest", "cv.n_jobs=2", *extra)
        reference_cv(2), pipeline_job(*parallel)
        ref_times, our_times, compose_times, ref_cpus, our_cpus = [], [], [], [], []
        for _ in range(REPEATS):
            ref_time, ref_cpu, ref = timed_cpu(lambda: reference_cv(2))
            compose_time, cfg = timed(lambda parallel=parallel: composed(*parallel))
            ours_time, our_cpu, ours = timed_cpu(lambda cfg=cfg: run(cfg))
            assert (ours.folds["test_accuracy"].to_numpy() == ref["test_accuracy"]).all()
            ref_times.append(ref_time)
            our_times.append(ours_time)
            compose_times.append(compose_time)
            ref_cpus.append(ref_cpu)
            our_cpus.append(our_cpu)
        ref_time, ours_time = statistics.median(ref_times), statistics.median(our_times)
        compose_time = statistics.median(compose_times)
        with_compose = statistics.median(
            (o + c) / r for o, c, r in zip(our_times, compose_times, ref_times, strict=True))
        print(f"same, folds in 2 worker processes, {what} (median of {REPEATS}):")
        print(f"  cross_validate(n_jobs=2)  {ref_time:7.3f} s")
        print(f"  pipeline cv.n_jobs=2      {ours_time:7.3f} s   ratio "
              f"{ours_time / ref_time:.2f}x  (each run: "
              + ", ".join(f"{o / r:.2f}x" for o, r in zip(our_times, ref_times, strict=True))
              + ")")
        print(f"  + Hydra composing its config {compose_time:5.3f} s   ratio with it "
              f"{with_compose:.2f}x")
        if ref_cpus[0] > 0:
            ref_cpu, our_cpu = statistics.median(ref_cpus), statistics.median(our_cpus)
            print(f"  CPU seconds, job's process and workers: cross_validate {ref_cpu:.2f}, "
                  f"pipeline {our_cpu:.2f}   ratio {our_cpu / ref_cpu:.2f}x")
    if sys.argv[1:] == ["--forest"]:
        return

    tracker = Tracker(f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}", "bench-tracking")
    scores = {f"{part}_{m}": 0.5 for part in ("train", "test") for m in scoring}
    n_runs = 50
    with tracker.run("bench") as parent:
        def fold_runs():
            for i in range(n_runs):
                with tracker.run(f"fold-{i}", parent=parent,
                                 params={"fold": i, "train_size": 455, "test_size": 114}) as child:
                    tracker.log_metrics(child, scores)
                    tracker.log_text(child, "a,b\n1,2\n", "confusion_matrix.csv")
        per_run, _ = timed(fold_runs)
    print(f"tracking per fold run (create, params, 12 metrics, 1 artifact, end): "
          f"{1000 * per_run / n_runs:.1f} ms")

    tree = ("data=breast_cancer", "model=decision_tree", "refit=false")
    without, _ = timed(lambda: pipeline_job(*tree, "plots=false"))
    drawn, _ = timed(lambda: pipeline_job(*tree, "plots=true"))
    print("decision_tree on breast_cancer, 5-fold, figures on against off:")
    print(f"  plots=false         {without:7.3f} s")
    print(f"  plots=true          {drawn:7.3f} s   ratio {drawn / without:.2f}x")

    Xs, ys = datasets.make_classification(500, 20, n_informative=10, n_redundant=0, flip_y=0.0,
                                         random_state=42)
    ref_time, ref = timed(lambda: cross_validate(
        Pipeline([("scale", StandardScaler()), ("model", KNeighborsClassifier())]), Xs, ys,
        cv=LeaveOneOut(), scoring=["accuracy"], return_train_score=True))
    lean_time, lean = timed(lambda: pipeline_job("data=synthetic", "model=knn", "cv=loocv",
                                                 "metrics.classification=[accuracy]"))
    ours_time, ours = timed(lambda: pipeline_job("data=synthetic", "model=knn", "cv=loocv"))
    assert ours.score == lean.score == ref["test_accuracy"].mean()
    print("knn, leave-one-out on synthetic (500 rows → 500 fold runs):")
    print(f"  cross_validate, accuracy        {ref_time:7.3f} s")
    print(f"  pipeline, accuracy (tracked)    {lean_time:7.3f} s   "
          f"ratio {lean_time / ref_time:.2f}x,"
          f" {1000 * lean_time / 500:.1f} ms per fold")
    print(f"  pipeline, all six metrics       {ours_time:7.3f} s   "
          f"ratio {ours_time / ref_time:.2f}x,"
          f" {1000 * ours_time / 500:.1f} ms per fold")

    command = [sys.executable, "-m", "pipeline", "data=breast_cancer", "model=random_forest"]
    whole, _ = timed(lambda: subprocess.run(command, check=True, capture_output=True))
    print(f"whole command `python -m pipeline data=breast_cancer model=random_forest`: "
          f"{whole:.2f} s (start-up and imports included)")


if __name__ == "__main__":
    main()
