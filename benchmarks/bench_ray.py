"""A 4-job sweep on a Ray cluster of 2 local nodes (one CPU each, `hydra/launcher=ray`)
against the same sweep with Hydra's basic launcher (one job after another in the sweep's own
process); both write to a SQLite store of their own (the default outputs/mlflow.db).

    PYTHONPATH=src python benchmarks/bench_ray.py

Starts the cluster on this machine with `ray start` (tests/services.py, as the tests do), and
prints the time it took, each sweep's wall time and their ratio, measured in this run, and the
machine's load average before and after (the nodes share its cores with whatever else runs).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.services: the cluster the tests start

from benchmarks.bench_sweep import sweep  # noqa: E402
from tests.services import ray_cluster  # noqa: E402

JOBS = ["data=breast_cancer", "model=knn,decision_tree,svm,random_forest", "plots=false"]


def load() -> str:
    """The machine's load average over 1, 5 and 15 minutes: how shared its cores were."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    print(f"4-job sweep ({' '.join(JOBS)}), 5-fold CV each, {os.cpu_count()} cores; "
          f"load average (1, 5, 15 min) before: {load()}")
    started = time.perf_counter()
    with ray_cluster(nodes=2, cpus=1) as cluster:
        print(f"  2 Ray nodes started in {time.perf_counter() - started:.1f} s")
        on_ray = sweep(JOBS, "hydra/launcher=ray",
                      f"hydra.launcher.ray.init.address={cluster.address}")
    basic = sweep(JOBS)
    print(f"  basic launcher          {basic:6.1f} s   {basic / 4:5.2f} s per job")
    print(f"  Ray, 2 nodes x 1 CPU    {on_ray:6.1f} s   {on_ray / 4:5.2f} s per job   "
          f"basic / Ray {basic / on_ray:.2f}x")
    print(f"  load average after: {load()}")


if __name__ == "__main__":
    main()
