"""How many threads torch and the BLAS/OpenMP libraries get: chosen from the work and the cores
free for it (`threads: auto`), or the job's `threads: N`.

The rule (`auto`): torch gets 1 thread below `PARALLEL_WORK` multiply-adds per step, else one
per `WORK_PER_THREAD`, at most the free cores; the BLAS/OpenMP pools get the free cores; folds
in N workers share them. Free cores are the usable ones (CPU affinity) less those that
/proc/loadavg shows other tasks running on. Why /proc: a thread team larger than the idle cores
waits at every barrier for its preempted members.
`benchmarks/bench_threads.py --rules` measured it against the rule that needs no /proc (every
usable core counted free) on 2 cores shared with other work (3 runs, medians of 3 each):
beside a CPU-bound neighbour, or at load average 8-11 without it, the free-cores rule gave 1
thread where the other gave 2 and ran 2.5-8x faster on steps of 7e7 multiply-adds and 20-70x
on scikit-learn's LogisticRegression CV on digits; at load average 2 without the neighbour it
sometimes caught a busy moment, gave 1, and took 1.7x as long on those steps. The MLP job on
digits (1 torch thread under both) took 0.7-1.2x as long under the no-/proc rule, a gap
outside its fits (under 1.5 s of 5-47 s), not explained.
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
# few costs at most the split's gain, one too many 10-100x on a busy machine. On 2 cores at
# load average 0.6, two threads took 0.8x one's time at 1.7e7 and 0.6-0.7x at 7e7 and above;
# beside a CPU-bound neighbour 1.2-4.3x at every size (benchmarks/bench_threads.py --sizes).
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


def runnable_tasks(loadavg: str) -> int:
    """The tasks running or ready to run now, from a /proc/loadavg line
    (`0.52 0.41 0.30 3/125 4412`: the 3); ValueError where the line is not one."""
    try:
        return int(loadavg.split()[3].split("/")[0])
    except IndexError:
        raise ValueError(f"not a /proc/loadavg line: {loadavg!r}") from None


def others_busy(runnable_looks: list[int]) -> int:
    """Cores other tasks keep busy, from runnable-task counts taken a moment apart: the least
    (a passing task is not counted), less this thread."""
    return max(0, min(runnable_looks) - 1)


def busy_cores() -> int:
    """Cores that other tasks keep busy now (`others_busy` of three looks at Linux's
    /proc/loadavg a millisecond apart); 0 where the system does not say. Looked at once a
    second at most (a job of many small folds asks per fit)."""
    global _busy
    now = time.monotonic()
    if _busy is not None and now - _busy[0] < BUSY_TTL_S:
        return _busy[1]
    looks = []
    for look in range(3):
        try:
            with open("/proc/loadavg") as file:
                looks.append(runnable_tasks(file.read()))
        except (OSError, ValueError):
            return 0
        if look < 2:
            time.sleep(0.001)
    _busy = (now, others_busy(looks))
    return _busy[1]


def free_cores() -> int:
    """Usable cores that no other task is busy on; at least 1."""
    return max(1, usable_cores() - busy_cores())


def threads_for_work(work: float, free: int) -> int:
    """`auto`'s torch threads for a step of `work` multiply-adds with `free` cores: 1 below
    `PARALLEL_WORK`, else one per `WORK_PER_THREAD` of work, at most `free` (and at least 1)."""
    if work < PARALLEL_WORK:
        return 1
    return max(1, min(int(work // WORK_PER_THREAD), free))


def for_torch(work: float) -> int:
    """Intra-op threads for torch training whose optimizer step costs `work` multiply-adds
    (batch rows x sum over layers of in x out features; times the folds for folds trained as
    one batched model). `threads: N` gives N; `auto` gives `threads_for_work` on the free
    cores (the free cores are not looked at below `PARALLEL_WORK`)."""
    chosen = setting()
    if chosen != AUTO:
        return int(chosen)
    if work < PARALLEL_WORK:
        return 1
    return threads_for_work(work, free_cores())


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
