"""How many threads torch and the BLAS/OpenMP libraries get: chosen from the work and the cores
free for it (`threads: auto`), or the job's `threads: N`.

On a shared or busy machine an intra-op team larger than the idle cores spends its time
waiting for its preempted members (OpenMP threads spin at every barrier): a 64-unit MLP on
`digits` then trains 13-100x slower on two threads than on one. One thread wins until a step's
matrix products are large enough to split, and only where cores are idle.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from pipeline.errors import PipelineError

AUTO = "auto"
# `threads` for processes started during a job (joblib workers): they read it from here.
ENV = "PIPELINE_THREADS"
# Multiply-adds per optimizer step (batch rows x the sum of in x out over the layers) from
# which a second thread may pay for its synchronisation. Set high on purpose: one thread too
# few costs at most the split's gain, one too many 10-100x on a busy machine. On the 2-core
# machine it was tuned on, never idle, one thread won at every size up to 4e9
# (benchmarks/bench_threads.py --sizes measures it where cores are free).
PARALLEL_WORK = 2e7
# Above it, a thread per this much work, at most the free cores (above them the team waits
# for its preempted members).
WORK_PER_THREAD = PARALLEL_WORK / 2

_setting: int | str | None = None  # this process's policy while a job runs (`policy`)
BUSY_TTL_S = 1.0
_busy: tuple[float, int] | None = None  # (when, busy cores) last seen


def check(value: Any) -> int | str:
    """`threads` as the job gives it: `auto` or a positive integer, else one line saying so."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise PipelineError(f"threads={value} is not auto or a positive integer (the threads torch "
                        "and the BLAS libraries use per process); use threads=auto, or e.g. "
                        "threads=1")


@contextlib.contextmanager
def policy(value: Any) -> Iterator[int | str]:
    """For a job's duration: `threads` (checked) is what `setting()` answers in this process
    and in the processes it starts (through the environment); restored after."""
    global _setting
    chosen = check(value)
    previous, previous_env = _setting, os.environ.get(ENV)
    _setting = chosen
    os.environ[ENV] = str(chosen)
    try:
        yield chosen
    finally:
        _setting = previous
        if previous_env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous_env


@contextlib.contextmanager
def for_job(value: Any) -> Iterator[int | str]:
    """A job's threads: its `threads` (checked before anything runs) is the policy, and the
    BLAS/OpenMP pools of scikit-learn and numpy run `for_blas()` threads, for its duration."""
    with policy(value) as chosen, limited(for_blas(), torch=False):
        yield chosen


def setting() -> int | str:
    """The policy in force: a job's `threads`, else `$PIPELINE_THREADS`, else `auto` (an
    estimator used on its own)."""
    if _setting is not None:
        return _setting
    try:
        return check(os.environ.get(ENV, AUTO))
    except PipelineError:
        return AUTO  # a stray variable outside a job: the estimator still fits


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, cgroups' cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores that other tasks keep busy now: the runnable tasks the kernel counts (Linux's
    /proc/loadavg), least of three looks a millisecond apart so that a passing task is not
    counted, less this thread. 0 where the system does not say. Looked at once a second at
    most (a job of many small folds asks per fit)."""
    global _busy
    now = time.monotonic()
    if _busy is not None and now - _busy[0] < BUSY_TTL_S:
        return _busy[1]
    looks = []
    for look in range(3):
        try:
            with open("/proc/loadavg") as file:
                looks.append(int(file.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return 0
        if look < 2:
            time.sleep(0.001)
    _busy = (now, max(0, min(looks) - 1))
    return _busy[1]


def free_cores() -> int:
    """Usable cores that no other task is busy on; at least 1."""
    return max(1, usable_cores() - busy_cores())


def for_torch(work: float) -> int:
    """Intra-op threads for torch training whose optimizer step costs `work` multiply-adds
    (batch rows x sum over layers of in x out features; times the folds for folds trained as
    one batched model). `threads: N` gives N; `auto` gives 1 below `PARALLEL_WORK`, else a
    thread per `WORK_PER_THREAD` of work, at most the free cores."""
    chosen = setting()
    if chosen != AUTO:
        return int(chosen)
    if work < PARALLEL_WORK:
        return 1
    return max(1, min(int(work // WORK_PER_THREAD), free_cores()))


def for_blas() -> int:
    """BLAS/OpenMP threads for scikit-learn fits and numpy: `threads: N` gives N; `auto` the
    free cores (a thread on a busy core only waits)."""
    chosen = setting()
    return int(chosen) if chosen != AUTO else free_cores()


def per_worker(workers: int) -> int:
    """BLAS/OpenMP (and torch) threads for each of `workers` processes working at once (folds
    in joblib workers): `threads: N` gives each N; `auto` shares the free cores among them."""
    chosen = setting()
    return int(chosen) if chosen != AUTO else max(1, free_cores() // max(1, workers))


@contextlib.contextmanager
def limited(n: int, *, torch: bool = True, blas: bool = True) -> Iterator[int]:
    """Within the block: with `torch`, torch's intra-op threads (where torch is loaded: this
    never imports it) and, with `blas`, the BLAS and OpenMP thread pools (threadpoolctl) at
    `n`; the previous counts restored after."""
    module = sys.modules.get("torch") if torch else None
    previous = module.get_num_threads() if module is not None else None
    if previous is not None and previous != n:
        module.set_num_threads(n)
    try:
        if blas:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=n):
                yield n
        else:
            yield n
    finally:
        if previous is not None and module.get_num_threads() != previous:
            module.set_num_threads(previous)
