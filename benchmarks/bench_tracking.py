"""What a tracking server costs per fold run: MLflow over HTTP against the SQLite store directly.

    python benchmarks/bench_tracking.py [--folds 50] [--rounds 3]

Starts, with the test suite's starters (tests/services.py), two servers on 127.0.0.1 and stops
them at the end: `mlflow server` on SQLite with artifacts proxied into a temporary directory,
and docker-compose.yml's team stack started natively (its `mlflow server` command on
PostgreSQL, artifacts proxied into an S3 bucket of moto's S3 server), one worker each. Each
fold cycle is what the runner does for a fold of a Lightning model: a child run with three
params, 12 scores and two 50-epoch curves in one batch, a confusion-matrix artifact, then the
run's end. Prints ms per fold for each server and for a SQLite file store written directly,
each server's ratio to it (server / direct) and the HTTP requests each fold makes, all
measured in this run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from pipeline.tracking import Tracker

# The test suite's service starters; a benchmark runs as a script, from benchmarks/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services import mlflow_server, team_stack  # noqa: E402

SCORES = {f"{part}_{metric}": 0.5 for part in ("train", "test")
          for metric in ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc")}
CURVES = {"train_loss": [1 / epoch for epoch in range(1, 51)],
          "val_loss": [1.1 / epoch for epoch in range(1, 51)]}


def fold_cycles(tracker: Tracker, parent: str, start: int, count: int) -> float:
    """Seconds for `count` fold runs, as the runner logs them."""
    started = time.perf_counter()
    for i in range(start, start + count):
        params = {"fold": i, "train_size": 120, "test_size": 30}
        with tracker.run(f"fold-{i}", parent=parent, params=params) as child:
            tracker.log_metrics(child, SCORES, curves=CURVES)
            tracker.log_text(child, "a,b\n1,2\n", "confusion_matrix.csv")
    return time.perf_counter() - started


class RequestCounter:
    """Counts the HTTP requests the MLflow client sends (they all go through requests)."""

    def __init__(self) -> None:
        self.count = 0
        self._send = requests.Session.request

    def __enter__(self) -> RequestCounter:
        counter = self

        def request(session, *args, **kwargs):
            counter.count += 1
            return counter._send(session, *args, **kwargs)

        requests.Session.request = request
        return self

    def __exit__(self, *exc: object) -> None:
        requests.Session.request = self._send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=50, help="fold runs per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    args = parser.parse_args()
    # Against a server the client prints two "View run/experiment at" lines per ended run.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

    home = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    servers = {"server, SQLite": home / "sqlite", "server, PG + S3": home / "stack"}
    for directory in servers.values():
        directory.mkdir()
    with ExitStack() as started:
        started.callback(shutil.rmtree, home, ignore_errors=True)  # last, once servers stop
        sqlite = started.enter_context(mlflow_server(
            f"sqlite:///{servers['server, SQLite'] / 'server.db'}", servers["server, SQLite"]))
        stack = started.enter_context(team_stack(servers["server, PG + S3"]))
        trackers = {"direct SQLite": Tracker(f"sqlite:///{home / 'outputs' / 'mlflow.db'}",
                                             "bench"),
                    "server, SQLite": Tracker(sqlite.url, "bench"),
                    "server, PG + S3": Tracker(stack.url, "bench")}
        parents = {}
        for name, tracker in trackers.items():
            with tracker.run("bench") as parent:
                parents[name] = parent
            fold_cycles(tracker, parent, 0, 5)  # warm-up: connections, first artifact dirs
        per_fold = {name: [] for name in trackers}
        for round_ in range(args.rounds):
            for name, tracker in trackers.items():  # alternate, so drift hits all alike
                start = 5 + round_ * args.folds
                per_fold[name].append(
                    fold_cycles(tracker, parents[name], start, args.folds) / args.folds)
        requests_per_fold = {}
        for name in servers:
            with RequestCounter() as counter:
                fold_cycles(trackers[name], parents[name], 10**6, 1)
            requests_per_fold[name] = counter.count

    print(f"MLflow tracking per fold run: create, 3 params, 12 scores + 2 curves x 50 epochs "
          f"in one batch, 1 artifact, end ({args.folds} folds x {args.rounds} rounds, median)")
    median = {name: 1000 * statistics.median(times) for name, times in per_fold.items()}
    for name, ms in median.items():
        spread = ", ".join(f"{1000 * t:.1f}" for t in per_fold[name])
        print(f"  {name:<16} {ms:7.1f} ms per fold   (rounds: {spread})")
    for name in servers:
        print(f"  {name} / direct SQLite: {median[name] / median['direct SQLite']:.2f}x; "
              f"{requests_per_fold[name]} HTTP requests per fold run")


if __name__ == "__main__":
    main()
