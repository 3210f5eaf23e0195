"""What a served model answers in: `mlflow models serve` on a job's model, logged through the
team stack, for one row and for 1,000 rows.

    python benchmarks/bench_serve.py [--requests 30]

Starts docker-compose.yml's team stack natively with the test suite's starter
(tests/services.py: PostgreSQL, moto's S3 server, the compose file's `mlflow server` command),
runs one cheap job per model through it (no AWS variable in the job's environment), serves
each job's model with `mlflow models serve -m runs:/<id>/model` from the server, and times
HTTP requests from `requests`: the median and the fastest of N, for 1 row and for 1,000 rows
sampled from the data. Beside them, the same model loaded in this process with
`mlflow.pyfunc.load_model` and called directly (what HTTP and JSON add), and the seconds from
starting `mlflow models serve` to its first /ping answer (the model fetched through the
server's proxy). All measured in this run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sklearn import datasets

# The test suite's service starters; a benchmark runs as a script, from benchmarks/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services import TeamStack, client_env, invoke, served, team_stack  # noqa: E402
from tests.test_server import parent_run_id  # noqa: E402

# Per model: the job's overrides and the table its rows come from.
MODELS = {
    "decision_tree": (["data=iris"], lambda: datasets.load_iris(as_frame=True).data),
    "logistic": (["data=breast_cancer", "trainer.max_epochs=2"],
                 lambda: datasets.load_breast_cancer(as_frame=True).data),
}


def run_job(stack: TeamStack, home: Path, overrides: list[str]) -> str:
    """A job through the stack, as a user runs it; its parent run id."""
    done = subprocess.run([sys.executable, "-m", "pipeline", *overrides, "cv.n_splits=2",
                           "plots=false", "refit=true", "tracking=server"], cwd=home,
                          env=client_env(stack.url), capture_output=True, text=True,
                          timeout=600)
    return parent_run_id(done)


def timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, fastest) milliseconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times), min(times)


def answered(url: str, rows: pd.DataFrame) -> None:
    response = invoke(url, rows)
    if response.status_code != 200:
        sys.exit(f"served model refused {len(rows)} row(s): {response.text[:500]}")


def latencies(url: str, loaded: object, rows: pd.DataFrame, repeats: int) -> str:
    """One line: the served model's and the loaded model's median and fastest times."""
    answered(url, rows)  # warm-up
    http = timed(lambda: answered(url, rows), repeats)
    direct = timed(lambda: loaded.predict(rows), repeats)
    return (f"HTTP median {http[0]:6.1f} ms, fastest {http[1]:6.1f} ms;  in process median "
            f"{direct[0]:6.1f} ms, fastest {direct[1]:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="requests per row count")
    args = parser.parse_args()
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # loading the model in process
    import mlflow

    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        home = Path(scratch)
        with team_stack(home) as stack:
            mlflow.set_tracking_uri(stack.url)
            for model, (overrides, table) in MODELS.items():
                run_id = run_job(stack, home, [f"model={model}", *overrides])
                data = table()
                batches = {"1 row": data.sample(1, random_state=0),
                           "1,000 rows": data.sample(1000, replace=True, random_state=0)}
                loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
                started = time.perf_counter()
                with served(f"runs:/{run_id}/model", home, stack.url) as url:
                    start_s = time.perf_counter() - started
                    lines.append(f"{model} ({overrides[0]}): serve started in {start_s:.1f} s")
                    lines += [f"  {label:<10} {latencies(url, loaded, rows, args.requests)}"
                              for label, rows in batches.items()]
    print(f"Served model latency ({args.requests} requests per row count, after one warm-up)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
