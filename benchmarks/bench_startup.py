"""How fast the command answers when it has nothing to train: `--help`, `--cfg job` and a
config mistake, each against `python -c "import hydra"` (the floor any Hydra app pays).

    python benchmarks/bench_startup.py [--repeats 7]

Each command runs `--repeats` times in a fresh interpreter (the order shuffled per round, so
that a burst of load elsewhere spreads over all of them); the median wall time is printed with
its ratio to the reference, and the median CPU time (what the command costs, whatever the
load). Goal: `--help` within 1.5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
REFERENCE = "import hydra"
COMMANDS = {
    REFERENCE: ["-c", "import hydra"],
    "--help": ["-m", "pipeline", "--help"],
    "--cfg job": ["-m", "pipeline", "--cfg", "job", "model=mlp"],
    "mistake (model=nope)": ["-m", "pipeline", "model=nope"],
    "mistake (threads=many)": ["-m", "pipeline", "threads=many"],
}
HELP_GOAL_S = 1.5


def timed(args: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run: on a shared machine the CPU
    time says what the command costs, the wall time what a user waits."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0  # reaped above
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as cwd:  # a mistake's job would leave outputs/ here
        for command in COMMANDS.values():  # warm the file cache once
            timed(command, cwd, env)
        for _ in range(args.repeats):
            for name in random.sample(list(COMMANDS), len(COMMANDS)):
                wall, used = timed(COMMANDS[name], cwd, env)
                times[name].append(wall)
                cpu[name].append(used)
    reference = statistics.median(times[REFERENCE])
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} cores; median of {args.repeats} runs each")
    reference_cpu = statistics.median(cpu[REFERENCE])
    print(f"{'command':<24}{'wall s':>8}{'min s':>7}{'x hydra':>9}{'cpu s':>8}{'x hydra':>9}")
    for name, runs in times.items():
        median, used = statistics.median(runs), statistics.median(cpu[name])
        print(f"{name:<24}{median:>8.2f}{min(runs):>7.2f}{median / reference:>9.2f}"
              f"{used:>8.2f}{used / reference_cpu:>9.2f}")
    help_s = statistics.median(times["--help"])
    print(f"--help: {help_s:.2f} s (goal <= {HELP_GOAL_S} s): "
          f"{'met' if help_s <= HELP_GOAL_S else 'NOT met'}")


if __name__ == "__main__":
    main()
