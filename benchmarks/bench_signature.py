"""The cost of a model's input signature on a big table: the pipeline's schema from dtypes
against `mlflow.models.infer_signature`, which reads every value.

    python benchmarks/bench_signature.py [rows]

Prints both wall times for a table of 20 float columns, one integer and two text columns
(100,000 rows by default) and their ratio, measured in this run.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from pipeline.tracking.signature import input_schema


def table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(20)})
    X["count"] = rng.integers(0, 5, rows)
    X["colour"] = pd.Series(rng.choice(["red", "green", "blue"], rows), dtype=object)
    X["size"] = pd.Series(rng.choice(["s", "m", None], rows), dtype=object)
    return X


def seconds(function, X: pd.DataFrame) -> float:
    started = time.perf_counter()
    function(X)
    return time.perf_counter() - started


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    X = table(rows)
    warnings.filterwarnings("ignore")  # infer_signature's hint on integer columns
    ours, mlflow = seconds(input_schema, X), seconds(infer_signature, X)
    print(f"{rows} rows x {X.shape[1]} columns: input_schema {ours * 1000:.1f} ms, "
          f"infer_signature {mlflow * 1000:.0f} ms ({mlflow / ours:.0f}x)")


if __name__ == "__main__":
    main()
