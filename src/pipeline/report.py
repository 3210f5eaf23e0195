"""What a job prints: a line per fold as it ends, then the per-fold and mean ± std table."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import pandas as pd
from omegaconf import DictConfig

if TYPE_CHECKING:
    from pipeline.data import Dataset
    from pipeline.runner import Result

log = logging.getLogger("pipeline")
# Beyond this many folds (leave-one-out) the table shows the summary rows only.
MAX_FOLD_ROWS = 20


def brief(row: dict[str, float], objective: str) -> str:
    shown = [k for k in (f"test_{objective}", f"val_{objective}", f"train_{objective}") if k in row]
    return "  ".join(f"{k}={row[k]:.4f}" for k in shown) + f"  fit {row['fit_time']:.2f}s"


def table(folds: pd.DataFrame, summary: pd.DataFrame, objective: str) -> str:
    """Scores as text: a row per fold (up to MAX_FOLD_ROWS), then `mean ± std`. Held-out
    scores, the training score of the objective and the fit time; the rest is in MLflow."""
    train = objective.replace("test_", "train_", 1)
    columns = [c for c in folds.columns if c.startswith(("val_", "test_"))]
    columns += [c for c in (train, "fit_time") if c in folds.columns]
    shown = folds[columns].map(_number)
    if len(folds) > MAX_FOLD_ROWS:
        shown = shown.iloc[0:0]
    spread = pd.DataFrame(
        [[f"{_number(summary.loc['mean', c])}±{_number(summary.loc['std', c])}" for c in columns]],
        index=["mean±std"], columns=columns,
    )
    shown = pd.concat([shown, spread])
    # Two header lines, part over metric, keep the table narrow.
    shown.columns = pd.MultiIndex.from_tuples(
        [tuple(c.split("_", 1)) if c != "fit_time" else ("", c) for c in columns]
    )
    return shown.to_string()


def print_result(result: Result, dataset: Dataset, cfg: DictConfig) -> None:
    from pipeline.tracking import redact

    n = len(result.folds)
    note = " (per-fold rows in the run's folds.csv)" if n > MAX_FOLD_ROWS else ""
    lines = [
        "",
        f"{cfg.model.name} on {dataset.name}, cv={cfg.cv.name}, {n} fold(s){note}",
        table(result.folds, result.summary, result.objective),
        "",
        f"{result.objective}: {result.score:.4f} ± {result.spread:.4f}",
        f"MLflow: experiment {result.experiment!r}, parent run {result.run_id}",
        f"  store: {redact(result.uri)}",
        f"  view:  {_ui_command(result.uri)}",
    ]
    log.info("\n".join(lines))


def _ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def _number(value: float) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.3f}"
