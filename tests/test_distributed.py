"""Lightning's DDP across processes (spawned by the job, or started by torchrun as two nodes):
a job still makes one parent run and one run per fold, tracked by rank 0 alone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import all_runs, assert_refused_before_any_work, children, parents
from tests.services import free_port

EPOCHS = "trainer.max_epochs=10"
# Figures and the refit model are beside the point here (the refit is one more fit of the same
# estimator, which test_neural's ddp_spawn test covers); each would start more processes.
QUICK = ["plots=false", "refit=false"]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(cli, run_cli, workdir):
    # The single-process reference runs here; the DDP job in a process of its own, so that
    # its workers' output is the command's output.
    single = run_cli("data=digits", "model=mlp", "trainer=cpu", "cv.n_splits=3", EPOCHS, *QUICK)
    assert single.returncode == 0, single.stderr
    ddp = cli("data=digits", "model=mlp", "trainer=ddp", "trainer.devices=2",
              "trainer.accelerator=cpu", "cv.n_splits=3", EPOCHS, *QUICK)
    assert ddp.returncode == 0, ddp.stderr
    assert "Initializing distributed" not in ddp.stdout + ddp.stderr  # workers stay quiet

    runs = all_runs(workdir)
    top = parents(runs)
    assert len(top) == 2 and set(top["status"]) == {"FINISHED"}
    by_strategy = top.set_index("params.trainer.strategy")
    ddp_run, single_run = by_strategy.loc["ddp_spawn"], by_strategy.loc["auto"]
    folds = children(runs, ddp_run["run_id"])
    assert len(folds) == 3 and set(folds["status"]) == {"FINISHED"}
    assert folds["metrics.val_loss"].notna().all()  # curves came back from the workers
    # Two ranks each take batches of 128 (the default): twice the effective batch, the same
    # ballpark.
    assert ddp_run["metrics.test_accuracy_mean"] == pytest.approx(
        single_run["metrics.test_accuracy_mean"], abs=0.05)
    assert ddp_run["metrics.test_accuracy_mean"] > 0.85


# Two nodes simulated on this machine: torchrun's agents meet on loopback, a rank each.
IRIS_DDP = ["data=iris", "model=softmax", "cv.n_splits=3", EPOCHS, *QUICK, "trainer=ddp",
            "trainer.strategy=ddp", "trainer.accelerator=cpu", "trainer.devices=1"]


def torchrun_nodes(workdir: Path, *args: str, nodes: int = 2) -> list[tuple[int, str, str]]:
    """`torchrun --nnodes=NODES` with one process per node, each node a torchrun of its own
    meeting the others at 127.0.0.1 (node 0 holds the rendezvous); each node's exit status,
    stdout and stderr."""
    torchrun = shutil.which("torchrun") or pytest.fail("torchrun comes with torch")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    port = free_port()
    logs = [(workdir / f"node{rank}.out", workdir / f"node{rank}.err") for rank in range(nodes)]
    started = []
    try:
        for rank, (out, err) in enumerate(logs):
            with out.open("w") as stdout, err.open("w") as stderr:
                started.append(subprocess.Popen(
                    [torchrun, f"--nnodes={nodes}", "--nproc-per-node=1", f"--node-rank={rank}",
                     "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "pipeline",
                     *args], cwd=workdir, env=env, stdout=stdout, stderr=stderr))
        statuses = [node.wait(timeout=300) for node in started]
    finally:
        for node in started:
            if node.poll() is None:
                node.kill()
    return [(status, out.read_text(), err.read_text())
            for status, (out, err) in zip(statuses, logs, strict=True)]


@pytest.mark.slow
def test_two_nodes_on_loopback_train_one_job(run_cli, workdir):
    single = run_cli("data=iris", "model=softmax", "cv.n_splits=3", EPOCHS, *QUICK,
                     "trainer=cpu")
    assert single.returncode == 0, single.stderr
    (first, out0, err0), (second, out1, err1) = torchrun_nodes(
        workdir, *IRIS_DDP, "trainer.num_nodes=2")
    assert first == 0 and second == 0, err0[-3000:] + err1[-3000:]
    assert out0.count("mean±std") == 1 and out1 == ""  # node 0's rank 0 reports for the job

    runs = all_runs(workdir)
    top = parents(runs).set_index("params.trainer.strategy")
    assert sorted(top.index) == ["auto", "ddp"] and set(top["status"]) == {"FINISHED"}
    assert top.loc["ddp", "params.trainer.num_nodes"] == "2"
    ddp = children(runs, top.loc["ddp", "run_id"])
    alone = children(runs, top.loc["auto", "run_id"])
    assert len(ddp) == 3 and set(ddp["status"]) == {"FINISHED"}
    # softmax trains by full-batch L-BFGS. Each rank takes half of a fold's 90 training rows
    # (100 less the 10% validation part: an even count, so no row is left out), DDP averages
    # the two halves' mean gradients and the ranks average their losses for the line search:
    # the full batch's gradient and loss, the single process's steps, up to float32 rounding
    # of the sums. So the same validation loss to float32's few digits, and the same test
    # predictions but for a row that rounding might tip (1 of a fold's 50 test rows).
    assert ddp["metrics.val_loss"].to_numpy() == pytest.approx(
        alone["metrics.val_loss"].to_numpy(), rel=1e-3)
    assert ddp["metrics.test_accuracy"].to_numpy() == pytest.approx(
        alone["metrics.test_accuracy"].to_numpy(), abs=1 / 50 + 1e-9)


def test_ranks_that_the_trainer_does_not_count_are_refused(run_cli, workdir, monkeypatch):
    # What torchrun tells rank 0 of two nodes of one process each. Lightning would stop at the
    # first fit, a traceback per rank, after the job's run was made; every rank refuses it
    # before any run instead (checked with two real torchrun nodes when this was written).
    for variable, value in {"RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "0",
                            "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1",
                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())
                            }.items():
        monkeypatch.setenv(variable, value)
    done = run_cli(*IRIS_DDP)  # trainer.num_nodes left at 1
    assert_refused_before_any_work(done, workdir, [
        "trainer.devices=1 trainer.num_nodes=1 make 1 process(es), but torchrun started 2 (2 "
        "node(s) of 1); set trainer.devices=1 trainer.num_nodes=2"])
