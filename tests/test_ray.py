"""Sweeps on a real Ray cluster (`hydra/launcher=ray`, Hydra's Ray launcher): a head and a
worker node started with `ray start` on this machine, from a directory of their own as on a
real cluster, and `python -m pipeline -m` pointed at them as a user would."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipeline.sweeps import SWEEP_CWD
from pipeline.tracking.processes import PID_START_TAG, PID_TAG, RAY_NODE_TAG, process_start
from tests.conftest import all_runs, children, parents
from tests.services import NODE_STORE, RayCluster, ray_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with ray_cluster(nodes=2, cpus=1) as started:
        yield started


def start_sweep(workdir: Path, cluster: RayCluster, *overrides: str) -> subprocess.Popen:
    """`python -m pipeline -m hydra/launcher=ray` on the cluster, run from `workdir` with the
    default store (no tracking.uri): its own outputs/mlflow.db. Its output goes to files (Ray
    forwards every job's output to it: a pipe that nobody reads would fill and stop it)."""
    with open(workdir / "stdout", "w") as out, open(workdir / "stderr", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "-m", "hydra/launcher=ray",
             f"hydra.launcher.ray.init.address={cluster.address}", *overrides, "plots=false"],
            cwd=workdir, stdout=out, stderr=err, text=True)


def finish(driver: subprocess.Popen, workdir: Path, timeout: float) -> tuple[str, str]:
    """The sweep's exit once it has ended; its stdout and stderr."""
    driver.wait(timeout=timeout)
    return (workdir / "stdout").read_text(), (workdir / "stderr").read_text()


def test_a_sweep_runs_its_jobs_on_both_ray_nodes(workdir, cluster):
    driver = start_sweep(workdir, cluster, "data=iris", "model=knn,naive_bayes,decision_tree,ols")
    out, err = finish(driver, workdir, timeout=600)
    # ols on a classification data set is a user mistake: listed, the others run on.
    assert driver.returncode == 1, err
    assert "error: 1 of 4 jobs failed:\n  #3 data=iris model=ols plots=False: " in err, err
    assert "Traceback" not in err
    runs = all_runs(workdir)  # the store of the directory the sweep was started from
    assert not (cluster.home / "outputs").exists()  # not the nodes' own directory
    assert not (cluster.home / NODE_STORE).exists()  # nor the store their environment names
    assert set(runs["status"]) == {"FINISHED"}
    top = parents(runs)
    assert sorted(top["tags.model"]) == ["decision_tree", "knn", "naive_bayes"]
    for parent_id in top["run_id"]:
        assert len(children(runs, parent_id)) == 5  # kfold's folds, each FINISHED above
    # Every run was made by a Ray worker, not by the sweep's own process, on both nodes.
    assert str(driver.pid) not in set(runs[f"tags.{PID_TAG}"])
    assert runs[f"tags.{RAY_NODE_TAG}"].notna().all()
    assert top[f"tags.{RAY_NODE_TAG}"].nunique() == 2
    # The best job by the sweep's objective, computed here from the store, is the one tagged.
    [objective] = set(top["tags.objective"])
    scores = top.set_index("run_id")[f"metrics.{objective}_mean"]
    [best] = top.loc[top["tags.best_in_sweep"] == "true", "run_id"]
    assert scores[best] == scores.max()
    assert "best of 3 job(s): " in out and best in out
    # Hydra's job directories and the outcomes are in the sweep's directory, under workdir.
    [sweep] = set(top["tags.sweep"])
    assert sorted(path.name for path in (workdir / sweep / ".outcomes").iterdir()) == [
        "0.txt", "1.txt", "2.txt", "3.txt"]
    assert all((workdir / sweep / str(job) / ".hydra" / "config.yaml").exists()
               for job in range(4))


def test_ctrl_c_stops_the_ray_jobs_and_leaves_no_run_running(workdir, cluster):
    # Jobs that take a while (a fold per few seconds), with no torch to import.
    driver = start_sweep(workdir, cluster, "data=digits", "model=random_forest",
                         "model.n_estimators=3000", "seed=1,2")
    running = wait_for_a_running_job(workdir, driver)
    driver.send_signal(signal.SIGINT)
    _, err = finish(driver, workdir, timeout=120)
    assert driver.returncode == 130, err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("interrupted: ")]
    assert "KILLED" in line, line
    stopped = all_runs(workdir)
    assert "RUNNING" not in set(stopped["status"])
    assert running <= set(stopped.loc[stopped["status"] == "KILLED", "run_id"])
    # The jobs' Ray workers are gone: no job finishes, or starts runs, after the driver left.
    for _, run in parents(stopped).iterrows():
        assert process_start(int(run[f"tags.{PID_TAG}"])) != run[f"tags.{PID_START_TAG}"]
    time.sleep(3)
    later = all_runs(workdir)
    assert later.set_index("run_id")["status"].to_dict() == \
        stopped.set_index("run_id")["status"].to_dict()


def wait_for_a_running_job(workdir: Path, driver: subprocess.Popen,
                           timeout: float = 300) -> set[str]:
    """The parent runs RUNNING once a job of the sweep has started one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert driver.poll() is None, finish(driver, workdir, 0)
        try:
            runs = all_runs(workdir)
        except Exception:  # noqa: BLE001 - the first job may be creating the store's tables
            runs = pd.DataFrame(columns=["run_id", "status"])
        running = parents(runs[runs["status"] == "RUNNING"])
        if not running.empty:
            return set(running["run_id"])
        time.sleep(0.5)
    driver.kill()
    pytest.fail(f"no job of the sweep started a run in {timeout:.0f} s: "
                f"{finish(driver, workdir, 60)}")


def test_a_job_on_a_node_without_the_sweeps_directory_is_a_listed_failure(run_cli, workdir,
                                                                          monkeypatch):
    # What a Ray worker on another machine, without a shared file system, is given: the
    # directory the sweep was started from, which it does not have.
    monkeypatch.setenv(SWEEP_CWD, str(workdir / "on-another-machine"))
    done = run_cli("-m", "data=iris", "model=knn", "plots=false")
    assert done.returncode == 1, done.stderr
    assert "error: 1 of 1 jobs failed:\n  #0 data=iris model=knn plots=False: this job runs " \
           f"on host {socket.gethostname()}, which has no directory " in done.stderr
    assert all_runs(workdir).empty  # refused before any run
