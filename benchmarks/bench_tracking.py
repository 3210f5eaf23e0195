"""What a tracking server costs per fold run: MLflow over HTTP against the SQLite store directly.

    python benchmarks/bench_tracking.py [--folds 50] [--rounds 3]

Starts `mlflow server` on 127.0.0.1 (SQLite backend, artifacts proxied into a temporary
directory, one worker) and stops it at the end. Each fold cycle is what the runner does for
a fold of a Lightning model: a child run with three params, 12 scores and two 50-epoch
curves in one batch, a confusion-matrix artifact, then the run's end. Prints ms per fold
for the server and for a SQLite file store written directly, their ratio (server / direct)
and the HTTP requests each fold makes, all measured in this run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import requests

from pipeline.tracking import Tracker

SCORES = {f"{part}_{metric}": 0.5 for part in ("train", "test")
          for metric in ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc")}
CURVES = {"train_loss": [1 / epoch for epoch in range(1, 51)],
          "val_loss": [1.1 / epoch for epoch in range(1, 51)]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Job execution (GenAI jobs) adds a runner and seven worker processes that tracking does
    # not use; off, so that they do not compete with the client for this machine's cores.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with (home / "server.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{home / 'server.db'}",
             "--serve-artifacts", "--artifacts-destination", str(home / "server-artifacts")],
            cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"mlflow server exited:\n{(home / 'server.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.25)
    stop_server(process)
    sys.exit(f"mlflow server not healthy after 90 s:\n{(home / 'server.log').read_text()[-3000:]}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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
    process, url = start_server(home)
    try:
        trackers = {"direct SQLite": Tracker(f"sqlite:///{home / 'outputs' / 'mlflow.db'}",
                                             "bench"),
                    "mlflow server": Tracker(url, "bench")}
        parents = {}
        for name, tracker in trackers.items():
            with tracker.run("bench") as parent:
                parents[name] = parent
            fold_cycles(tracker, parent, 0, 5)  # warm-up: connections, first artifact dirs
        per_fold = {name: [] for name in trackers}
        for round_ in range(args.rounds):
            for name, tracker in trackers.items():  # alternate, so drift hits both alike
                start = 5 + round_ * args.folds
                per_fold[name].append(
                    fold_cycles(tracker, parents[name], start, args.folds) / args.folds)
        with RequestCounter() as counter:
            fold_cycles(trackers["mlflow server"], parents["mlflow server"], 10**6, 1)
    finally:
        stop_server(process)
        shutil.rmtree(home, ignore_errors=True)

    print(f"MLflow tracking per fold run: create, 3 params, 12 scores + 2 curves x 50 epochs "
          f"in one batch, 1 artifact, end ({args.folds} folds x {args.rounds} rounds, median)")
    median = {name: 1000 * statistics.median(times) for name, times in per_fold.items()}
    for name, ms in median.items():
        spread = ", ".join(f"{1000 * t:.1f}" for t in per_fold[name])
        print(f"  {name:<14} {ms:7.1f} ms per fold   (rounds: {spread})")
    ratio = median["mlflow server"] / median["direct SQLite"]
    print(f"  ratio server / direct: {ratio:.2f}x; {counter.count} HTTP requests per fold run")


if __name__ == "__main__":
    main()
