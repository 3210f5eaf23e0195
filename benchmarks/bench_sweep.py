"""A 12-job sweep with Hydra's basic launcher (one job after another) and with the joblib
launcher (jobs in parallel processes), both writing to one SQLite store.

    python benchmarks/bench_sweep.py [--n-jobs 2]

Prints the wall time per job of each and their ratio, measured in this run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

SWEEPS = {  # 12 jobs each: 4 values x 3 seeds
    "light: knn, tree, svm, forest on breast_cancer": [
        "data=breast_cancer", "model=knn,decision_tree,svm,random_forest", "seed=1,2,3"],
    "heavy: mlp on digits, 4 learning rates, 30 epochs": [
        "data=digits", "model=mlp", "model.lr=0.0003,0.001,0.003,0.01", "seed=1,2,3",
        "trainer=cpu", "trainer.max_epochs=30"],
}


def sweep(overrides: list[str], *launcher: str) -> float:
    workdir = tempfile.mkdtemp(prefix="bench-sweep-")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "-m", *overrides, *launcher], cwd=workdir,
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count() or 2)
    n_jobs = parser.parse_args().n_jobs
    print(f"12-job sweeps, 5-fold CV each, {os.cpu_count()} cores")
    for name, overrides in SWEEPS.items():
        basic = sweep(overrides)
        parallel = sweep(overrides, "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}")
        print(f"{name}")
        print(f"  basic launcher             {basic:6.1f} s   {basic / 12:5.2f} s per job")
        print(f"  joblib launcher, n_jobs={n_jobs}  {parallel:6.1f} s   {parallel / 12:5.2f} s per "
              f"job   speed-up {basic / parallel:.2f}x")


if __name__ == "__main__":
    main()
