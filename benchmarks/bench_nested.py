"""Nested cross-validation's score against the search's own (inner best) score, on the bundled
data sets: the literature (Cawley & Talbot 2010, Varma & Simon 2006) expects the inner best,
which picked the configuration on the same folds that score it, to be optimistic.

    python benchmarks/bench_nested.py [--presets svm_optuna random_forest_optuna]
        [--data iris wine breast_cancer] [--trials 10] [--outer 5] [--inner 3] [--seeds 42]

Each (preset, data set, seed) is one `python -m pipeline hparams_search=<preset> cv.outer=kfold`
job; the figures are read back from its MLflow parent run. Prints, per job, the nested score
(mean ± std over outer folds), the inner best (mean over outer folds of the best trial's inner
mean), their gap, and the mean gap over all jobs; with the wall time of each job.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time


def nested_job(preset: str, data: str, seed: int, trials: int, outer: int, inner: int,
               workdir: str) -> tuple[dict[str, float], float]:
    """The parent run's metrics of one nested job, and its wall seconds."""
    import mlflow

    uri = f"sqlite:///{workdir}/mlflow.db"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    experiment = f"nested-{preset}-{data}-{seed}"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", f"hparams_search={preset}", f"data={data}",
         "cv.outer=kfold", f"cv.outer_splits={outer}", f"cv.n_splits={inner}",
         f"hydra.sweeper.n_trials={trials}", f"seed={seed}", "plots=false",
         f"tracking.uri={uri}", f"tracking.experiment={experiment}"],
        cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{preset} on {data} (seed {seed}) failed:\n{done.stderr[-2000:]}")
    mlflow.set_tracking_uri(uri)
    [run] = mlflow.search_runs(experiment_names=[experiment],
                               filter_string="tags.nested = 'true'", output_format="list")
    return run.data.metrics, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["svm_optuna", "random_forest_optuna"])
    parser.add_argument("--data", nargs="+", default=["iris", "wine", "breast_cancer"])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--outer", type=int, default=5)
    parser.add_argument("--inner", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-nested-")
    print(f"nested CV: {args.outer} outer folds x {args.trials} trials x {args.inner} inner "
          f"folds, objective accuracy; {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'preset':22} {'data':14} {'seed':>4} {'nested':>15} {'inner best':>11} "
          f"{'gap':>8} {'wall':>7}")
    gaps = []
    for preset, data, seed in itertools.product(args.presets, args.data, args.seeds):
        scores, wall = nested_job(preset, data, seed, args.trials, args.outer, args.inner,
                                  workdir)
        nested, spread = scores["test_accuracy_mean"], scores["test_accuracy_std"]
        inner = scores["inner_best_accuracy_mean"]
        gaps.append(inner - nested)
        print(f"{preset:22} {data:14} {seed:4d} {nested:8.4f}±{spread:.4f} {inner:11.4f} "
              f"{inner - nested:+8.4f} {wall:6.0f}s")
    below = sum(gap > 0 for gap in gaps)
    print(f"mean gap (inner best - nested) over {len(gaps)} jobs: {sum(gaps) / len(gaps):+.4f}; "
          f"nested below inner best in {below} of {len(gaps)}")


if __name__ == "__main__":
    main()
