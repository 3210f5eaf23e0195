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

SWEEP = ["-m", "data=breast_cancer", "model=knn,decision_tree,svm,random_forest",
         "seed=1,2,3"]  # 4 models x 3 seeds = 12 jobs


def sweep(*launcher: str) -> float:
    workdir = tempfile.mkdtemp(prefix="bench-sweep-")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", *SWEEP, *launcher], cwd=workdir, env=env,
                   check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count() or 2)
    n_jobs = parser.parse_args().n_jobs
    basic = sweep()
    parallel = sweep("hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}")
    print(f"12-job sweep (4 models x 3 seeds, breast_cancer, 5-fold), {os.cpu_count()} cores")
    print(f"  basic launcher            {basic:6.1f} s   {basic / 12:5.2f} s per job")
    print(f"  joblib launcher, n_jobs={n_jobs} {parallel:6.1f} s   {parallel / 12:5.2f} s per job"
          f"   speed-up {basic / parallel:.2f}x")


if __name__ == "__main__":
    main()
