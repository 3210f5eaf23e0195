"""`threads`: the thread count chosen from the work and the idle cores, the job's override, the
previous count restored after a fit, and bad values refused before any run."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from threadpoolctl import threadpool_info

from pipeline import entry, threads
from pipeline.errors import PipelineError
from pipeline.models import fitting
from pipeline.models.neural import MLPClassifier

# One optimizer step of the pipeline's MLP on digits: batch 64 x (64x64 + 64x10).
DIGITS_MLP_STEP = 64 * (64 * 64 + 64 * 10)


@pytest.fixture
def four_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0)


def test_the_rule_gives_one_thread_below_parallel_work_then_one_per_share_of_it():
    below, share = threads.PARALLEL_WORK, threads.WORK_PER_THREAD
    assert threads.threads_for_work(0, 8) == 1
    assert threads.threads_for_work(DIGITS_MLP_STEP, 8) == 1
    assert threads.threads_for_work(below - 1, 8) == 1
    assert threads.threads_for_work(below, 8) == below // share == 2
    assert threads.threads_for_work(3 * share, 8) == 3
    assert threads.threads_for_work(3 * share - 1, 8) == 2  # whole shares only
    assert threads.threads_for_work(100 * share, 8) == 8  # never above the free cores
    assert threads.threads_for_work(100 * share, 1) == 1
    assert threads.threads_for_work(100 * share, 0) == 1  # at least one


def test_busy_cores_are_the_least_runnable_count_less_this_thread():
    assert threads.runnable_tasks("0.52 0.41 0.30 3/125 4412\n") == 3
    assert threads.runnable_tasks("11.00 11.10 7.78 12/180 14645") == 12
    with pytest.raises(ValueError):
        threads.runnable_tasks("")
    with pytest.raises(ValueError):
        threads.runnable_tasks("0.52 0.41 0.30 x/125 4412")
    assert threads.others_busy([1, 1, 1]) == 0  # this thread alone
    assert threads.others_busy([4, 2, 3]) == 1  # a task that passed is not counted
    assert threads.others_busy([0, 5, 5]) == 0  # never below none


def test_free_cores_are_the_usable_ones_less_the_busy_ones(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    for busy, free in [(0, 4), (1, 3), (3, 1), (4, 1), (9, 1)]:
        monkeypatch.setattr(threads, "busy_cores", lambda busy=busy: busy)
        assert threads.free_cores() == free


def test_busy_cores_look_at_proc_loadavg_at_most_once_a_second(monkeypatch):
    lines = iter(["0.1 0.1 0.1 5/100 1", "0.1 0.1 0.1 3/100 1", "0.1 0.1 0.1 4/100 1",
                  "0.1 0.1 0.1 1/100 1", "0.1 0.1 0.1 1/100 1", "0.1 0.1 0.1 1/100 1"])
    read = []

    def fake_open(path):
        read.append(path)
        return io.StringIO(next(lines))

    monkeypatch.setattr(threads, "open", fake_open, raising=False)
    monkeypatch.setattr(threads, "_busy", None)
    assert threads.busy_cores() == 2  # least of 5, 3, 4 runnable, less this thread
    assert threads.busy_cores() == 2 and len(read) == 3  # cached: many small fits look once
    monkeypatch.setattr(threads, "_busy", (threads.time.monotonic() - threads.BUSY_TTL_S, 2))
    assert threads.busy_cores() == 0 and read == ["/proc/loadavg"] * 6


def test_busy_cores_are_none_where_the_system_does_not_say(monkeypatch):
    def no_proc(path):
        raise FileNotFoundError(path)

    monkeypatch.setattr(threads, "open", no_proc, raising=False)
    monkeypatch.setattr(threads, "_busy", None)
    assert threads.busy_cores() == 0


def test_auto_gives_small_work_one_thread_and_large_work_the_idle_cores(four_idle_cores):
    assert threads.for_torch(DIGITS_MLP_STEP) == 1
    assert threads.for_torch(threads.PARALLEL_WORK - 1) == 1
    assert threads.for_torch(threads.PARALLEL_WORK) == 2
    assert threads.for_torch(100 * threads.PARALLEL_WORK) == 4  # never above the cores
    assert threads.for_blas() == 4
    assert threads.per_worker(2) == 2 and threads.per_worker(8) == 1


def test_auto_leaves_cores_that_other_processes_keep_busy(four_idle_cores, monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda: 3)
    assert threads.for_torch(100 * threads.PARALLEL_WORK) == 1
    assert threads.for_blas() == 1
    monkeypatch.setattr(threads, "busy_cores", lambda: 9)  # more busy than usable: still one
    assert threads.free_cores() == 1


def test_a_number_overrides_auto(four_idle_cores):
    with threads.policy(3):
        assert threads.setting() == 3
        assert threads.for_torch(DIGITS_MLP_STEP) == 3
        assert threads.for_blas() == 3
        assert threads.per_worker(2) == 3  # N per process
        assert os.environ[threads.ENV] == "3"  # for the processes the job starts
    assert threads.setting() == threads.AUTO
    assert threads.ENV not in os.environ


@pytest.mark.parametrize("value", [0, -2, "many", "", True, 1.5, None])
def test_bad_values_are_refused_in_one_line(value):
    with pytest.raises(PipelineError, match=r"^threads=.* is not auto or a positive integer"
                                            r".*use threads=auto") as caught:
        threads.check(value)
    assert "\n" not in str(caught.value)


def test_good_values_pass():
    assert threads.check("auto") == "auto"
    assert threads.check(2) == 2
    assert threads.check("4") == 4  # as the environment passes it


def test_fit_trains_on_the_chosen_threads_and_restores_the_previous_count(monkeypatch):
    during = []
    fit = fitting.fit_passing_interrupts
    monkeypatch.setattr(fitting, "fit_passing_interrupts",
                        lambda *args: (during.append(torch.get_num_threads()), fit(*args)))
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        MLPClassifier(max_epochs=1, random_state=0).fit(X, y)  # tiny: auto gives one thread
        assert torch.get_num_threads() == 2
        with threads.policy(3):
            MLPClassifier(max_epochs=1, random_state=0).fit(X, y)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert during == [1, 3]


def test_a_job_limits_the_blas_pools_and_restores_them():
    before = {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()}
    with threads.for_job(1):
        assert {pool["num_threads"] for pool in threadpool_info()} == {1}
    assert {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()} == before


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_job_refuses_a_bad_value_before_any_run(make_cfg, workdir, value):
    with pytest.raises(PipelineError, match=f"threads={value} is not auto"):
        entry.run(make_cfg("model=logistic", "data=breast_cancer", f"threads={value}"))
    assert not (workdir / "outputs").exists()  # no store, no run


def test_threads_do_not_change_what_a_job_is(make_cfg):
    """`resume=true` finds a job run on other threads (and runs from before the key existed)."""
    from omegaconf import OmegaConf

    from pipeline import tracking

    digests = {tracking.config_hash(OmegaConf.to_container(make_cfg(f"threads={value}"),
                                                           resolve=True))
               for value in ("auto", "1", "2")}
    assert len(digests) == 1
    assert digests != {tracking.config_hash(OmegaConf.to_container(make_cfg("seed=1"),
                                                                   resolve=True))}
