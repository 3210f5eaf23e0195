"""Lightning's DDP across processes: a job still makes one parent run and one run per fold."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import all_runs, children, parents

EPOCHS = "trainer.max_epochs=10"
# Figures and the refit model are beside the point here (the refit is one more fit of the same
# estimator, which test_neural's ddp_spawn test covers); each would start more processes.
QUICK = ["plots=false", "refit=false"]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(cli, run_cli, workdir):
    # The single-process reference runs here; the DDP job in a process of its own, so that
    # its workers' output is the command's output.
    single = run_cli("data=digits", "model=mlp", "trainer=cpu", EPOCHS, *QUICK)
    assert single.returncode == 0, single.stderr
    ddp = cli("data=digits", "model=mlp", "trainer=ddp", "trainer.devices=2",
              "trainer.accelerator=cpu", EPOCHS, *QUICK)
    assert ddp.returncode == 0, ddp.stderr
    assert "Initializing distributed" not in ddp.stdout + ddp.stderr  # workers stay quiet

    runs = all_runs(workdir)
    top = parents(runs)
    assert len(top) == 2 and set(top["status"]) == {"FINISHED"}
    by_strategy = top.set_index("params.trainer.strategy")
    ddp_run, single_run = by_strategy.loc["ddp_spawn"], by_strategy.loc["auto"]
    folds = children(runs, ddp_run["run_id"])
    assert len(folds) == 5 and set(folds["status"]) == {"FINISHED"}
    assert folds["metrics.val_loss"].notna().all()  # curves came back from the workers
    # Two ranks each take batches of 128 (the default): twice the effective batch, the same
    # ballpark.
    assert ddp_run["metrics.test_accuracy_mean"] == pytest.approx(
        single_run["metrics.test_accuracy_mean"], abs=0.05)
    assert ddp_run["metrics.test_accuracy_mean"] > 0.85


@pytest.mark.slow
def test_torchrun_ranks_share_one_parent_run(workdir):
    torchrun = shutil.which("torchrun") or pytest.fail("torchrun comes with torch")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "pipeline", "data=iris",
         "model=softmax", "trainer=ddp", "trainer.strategy=ddp", "trainer.accelerator=cpu",
         "cv.n_splits=3", EPOCHS],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("mean±std") == 1  # rank 0 reports for the job
    runs = all_runs(workdir)
    [parent_id] = parents(runs)["run_id"]
    assert len(children(runs, parent_id)) == 3
