"""The leaderboard: one row per job (parent run) read back from MLflow, best first, and how it
reads as text (`mean ± std` cells, the paired columns of --against, markdown)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.compare.defaults import recorded_objective, tells_jobs_apart
from pipeline.compare.runs import (
    finished_runs,
    job_folds,
    jobs_only,
    newest_job,
    reader,
    sweep_runs,
)
from pipeline.errors import PipelineError
from pipeline.metrics import lower_is_better

# Under the table (its text form) when a ranked mean covers fewer folds than its job ran.
FEWER_FOLDS_NOTE = "* mean over fewer folds than the job ran (NaN folds left out)"


def leaderboard(uri: str, experiment: str | None = None, sweep: str | None = None,
                metric: str | None = None) -> tuple[str, pd.DataFrame]:
    """(experiment name, table) of finished parent runs sorted by the objective's mean."""
    client = reader(uri)
    found = client.search_experiments(order_by=["last_update_time DESC"])
    if experiment is None:
        if not found:
            raise PipelineError(f"no experiments in {uri}; run a job first")
        experiment = _newest_job_experiment(client, found, sweep)
    chosen = next((e for e in found if e.name == experiment), None)
    if chosen is None:
        names = ", ".join(e.name for e in found) or "none"
        raise PipelineError(f"no experiment {experiment!r} in {uri}; experiments: {names}")
    ids = [chosen.experiment_id]
    if sweep == "latest":
        run = newest_job(client, ids, lambda tags: "sweep" in tags)
        if run is not None:
            sweep = run.data.tags["sweep"]
        elif newest_job(client, ids, lambda tags: True) is not None:
            raise PipelineError(f"no sweep in experiment {experiment!r}")
    finished = None
    if sweep is None:
        finished = finished_runs(client, ids)  # the jobs' fold runs among them
        runs = jobs_only(finished)
    else:
        runs = jobs_only(sweep_runs(client, ids, sweep)).drop_duplicates("run_id")
    if runs.empty:
        raise PipelineError(f"no finished jobs in experiment {experiment!r}"
                            + (f" for sweep {sweep}" if sweep else ""))
    return experiment, _table(runs, metric, job_folds(client, runs, finished))


def _newest_job_experiment(client: Any, experiments: list, sweep: str | None) -> str:
    """The experiment of the newest finished job (of any sweep for `sweep='latest'`, of that
    sweep for a sweep directory). An experiment's `last_update_time` does not change when
    runs are added to it, so it cannot tell which experiment was used last; run start times
    can."""
    names = {e.experiment_id: e.name for e in experiments}
    run = newest_job(client, names, lambda tags: sweep is None or (
        sweep == "latest" and "sweep" in tags) or tags.get("sweep") == sweep)
    if run is None:
        return experiments[0].name  # no finished job anywhere: the error will say so
    return names[run.info.experiment_id]


def _table(runs: pd.DataFrame, metric: str | None, folds: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard of the jobs `runs` (their fold runs `folds`), ranked by `metric`."""
    objective = (metric or recorded_objective(runs)).removeprefix("test_")
    names = [c.removeprefix("metrics.").removesuffix("_mean") for c in runs.columns
             if c.startswith("metrics.test_") and c.endswith("_mean")]
    if f"test_{objective}" not in names:
        raise PipelineError(f"no metric {objective!r} on these runs; metrics: "
                            + ", ".join(n.removeprefix("test_") for n in names))
    names = [f"test_{objective}"] + [n for n in sorted(names) if n != f"test_{objective}"]
    rows = pd.DataFrame({"model": runs["tags.model"], "cv": runs["tags.cv"],
                         "params": _key_params(runs)})
    for name in names:
        for stat in ("mean", "std"):
            rows[f"{name.removeprefix('test_')}_{stat}"] = runs[f"metrics.{name}_{stat}"]
    rows["fit_time_mean"] = runs.get("metrics.fit_time_mean", float("nan"))
    rows["folds_scored"], rows["folds"] = _fold_counts(runs, folds, f"test_{objective}")
    rows["run_id"] = runs["run_id"]
    order = runs[f"metrics.test_{objective}_mean"].sort_values(
        ascending=lower_is_better(objective), na_position="last").index
    return rows.loc[order].reset_index(drop=True)


def _fold_counts(runs: pd.DataFrame, folds: pd.DataFrame,
                 name: str) -> tuple[pd.Series, pd.Series]:
    """Per job, (the folds with a score of `name`, the folds it ran): its mean covers the
    first, a fold where the metric is undefined (NaN, never logged) being left out. Unknown
    (<NA>) for a job whose fold runs are not found."""
    parent = folds.get("tags.mlflow.parentRunId", pd.Series(dtype=object))
    ran = parent.value_counts()
    values = folds.get(f"metrics.{name}", pd.Series(np.nan, index=folds.index))
    scored = np.isfinite(values.astype(float)).groupby(parent).sum()
    return (runs["run_id"].map(scored).where(runs["run_id"].isin(ran.index)).astype("Int64"),
            runs["run_id"].map(ran).astype("Int64"))


def fewer_folds(table: pd.DataFrame) -> pd.Series:
    """Per row, whether its mean covers fewer folds than its job ran (NaN folds left out)."""
    if "folds" not in table:
        return pd.Series(False, index=table.index)
    return (table["folds_scored"] < table["folds"]).fillna(False).astype(bool)


def _key_params(runs: pd.DataFrame) -> pd.Series:
    """Per job, `key=value` for the settings that tell it apart from the other jobs of its
    model (model arguments) or of the table (data, preprocessing and cv settings)."""
    def differing(frame: pd.DataFrame, prefixes: tuple[str, ...]) -> list[str]:
        keys = [c for c in frame.columns if c.startswith(prefixes) and tells_jobs_apart(c)]
        return [k for k in keys if frame[k].notna().any() and frame[k].nunique(dropna=False) > 1]

    shared = differing(runs, ("params.data.", "params.preprocess.", "params.cv."))
    described = pd.Series("", index=runs.index)
    for _, jobs in runs.groupby("tags.model"):
        keys = shared + differing(jobs, ("params.model.",))
        for index, job in jobs.iterrows():
            described[index] = " ".join(f"{_short(k)}={job[k]}" for k in keys)
    return described


def _short(key: str) -> str:
    """`params.model.lr` → `lr`; `params.cv.n_splits` → `cv.n_splits`."""
    key = key.removeprefix("params.")
    return key.removeprefix("model.")


def ranked_metric(table: pd.DataFrame) -> str:
    """The metric the leaderboard is ranked by: its first `_mean` column."""
    return next(c.removesuffix("_mean") for c in table.columns if c.endswith("_mean"))


def readable(table: pd.DataFrame, marked: bool = False) -> pd.DataFrame:
    """Each metric's mean and std columns as one `mean ± std` column, and the folds that the
    ranked metric's mean covers of those the job ran (`3/5`); `marked`: the ranked metric's
    cell of a mean over fewer folds than the job ran ends in `*` (see FEWER_FOLDS_NOTE)."""
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        if column.endswith("_std") or column == "folds_scored":
            continue
        if column == "folds":
            shown[column] = [f"{scored}/{ran}" if pd.notna(ran) else "—" for scored, ran
                             in zip(table["folds_scored"], table[column], strict=True)]
            continue
        if column.endswith("_mean") and column != "fit_time_mean":
            std = table[column.removesuffix("_mean") + "_std"]
            shown[column.removesuffix("_mean")] = [
                "nan" if pd.isna(m) else f"{m:.4f} ± {s:.4f}"
                for m, s in zip(table[column], std, strict=True)]
        elif column == "fit_time_mean":
            shown["fit_time"] = ["nan" if pd.isna(t) else f"{t:.3f}s" for t in table[column]]
        else:
            shown[column] = table[column]
    if marked:
        ranked = ranked_metric(table)
        fewer = fewer_folds(table)
        shown[ranked] = [f"{cell} *" if short else cell
                         for cell, short in zip(shown[ranked], fewer, strict=True)]
    if "vs_diff" in table:
        shown = _readable_paired(table, shown)
    return shown


def markdown(table: pd.DataFrame) -> str:
    table = readable(table)
    cells = [list(map(str, table.columns))] + table.astype(str).values.tolist()
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in table.columns) + "|")
    return "\n".join(lines)


def _readable_paired(table: pd.DataFrame, shown: pd.DataFrame) -> pd.DataFrame:
    """The ranked metric and the paired columns as text (the other metrics would make the
    table too wide to read): no NaN printed as a result, the row's note in its place."""
    ranked = ranked_metric(table)
    shown = shown[[c for c in shown.columns
                   if c in ("model", "cv", "params", ranked, "folds", "run_id")]].copy()

    def cell(i: int, text: str, first: bool = False) -> str:
        note = table.loc[i, "vs_note"]
        if note in ("reference", "not paired"):
            return note if first else ""
        return text

    def number(value: float, fmt: str) -> str:
        return "—" if pd.isna(value) else format(value, fmt)

    shown["diff"] = [cell(i, number(table.loc[i, "vs_diff"], "+.4f"), first=True)
                     for i in table.index]
    shown["p"] = [cell(i, number(table.loc[i, "vs_p"], ".3g")) for i in table.index]
    shown["95% CI"] = [cell(i, f"[{table.loc[i, 'vs_ci_low']:+.4f}, "
                               f"{table.loc[i, 'vs_ci_high']:+.4f}]")
                       for i in table.index]
    shown["P(better/equiv/worse)"] = [
        cell(i, "/".join(f"{table.loc[i, c]:.2f}" for c in ("p_better", "p_equiv", "p_worse")))
        for i in table.index]
    return shown
