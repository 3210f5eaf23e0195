"""The leaderboard: one row per job (parent run) read back from MLflow, best first.

    python -m pipeline.compare [--experiment iris] [--sweep latest|DIR] [--format markdown]
    python -m pipeline.compare --across-data [--sweep latest|DIR] [--metric M] [--rope 0.01]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pandas as pd

from pipeline.doctor import mark_store
from pipeline.errors import PipelineError
from pipeline.metrics import lower_is_better

# Model keys that say how a job was run rather than what was fitted.
UNINTERESTING = ("_target_", "name", "random_state", "trainer.")
# Runs read per request while looking for the newest job (its folds come first).
NEWEST_PAGE = 100


def leaderboard(uri: str, experiment: str | None = None, sweep: str | None = None,
                metric: str | None = None) -> tuple[str, pd.DataFrame]:
    """(experiment name, table) of finished parent runs sorted by the objective's mean."""
    from pipeline.tracking import reader

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
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs([chosen.experiment_id], filter_string="attributes.status = "
                              "'FINISHED'", output_format="pandas")
    if "tags.mlflow.parentRunId" in runs:
        runs = runs[runs["tags.mlflow.parentRunId"].isna()]
    if "tags.kind" in runs:  # comparison runs (compare --across-data, --against) are no jobs
        runs = runs[runs["tags.kind"] != "comparison"]
    if sweep is not None and not runs.empty:
        sweeps = runs.get("tags.sweep", pd.Series(dtype=str)).dropna()
        if sweep == "latest":
            if sweeps.empty:
                raise PipelineError(f"no sweep in experiment {experiment!r}")
            sweep = runs.loc[sweeps.index].sort_values("start_time")["tags.sweep"].iloc[-1]
        runs = runs[runs.get("tags.sweep") == sweep]
    if runs.empty:
        raise PipelineError(f"no finished jobs in experiment {experiment!r}"
                            + (f" for sweep {sweep}" if sweep else ""))
    return experiment, _table(runs, metric)


def _newest_job_experiment(client: Any, experiments: list, sweep: str | None) -> str:
    """The experiment of the newest finished job (of any sweep for `sweep='latest'`, of that
    sweep for a sweep directory). An experiment's `last_update_time` does not change when
    runs are added to it, so it cannot tell which experiment was used last; run start times
    can."""
    names = {e.experiment_id: e.name for e in experiments}
    token = None
    while True:
        # Newest first: a job's fold runs start after it, so its parent is a few runs down.
        page = client.search_runs(list(names), "attributes.status = 'FINISHED'",
                                  max_results=NEWEST_PAGE, page_token=token,
                                  order_by=["attributes.start_time DESC"])
        for run in page:
            tags = run.data.tags
            wanted = sweep is None or (sweep == "latest" and "sweep" in tags) or (
                tags.get("sweep") == sweep)
            if "mlflow.parentRunId" not in tags and tags.get("kind") != "comparison" and wanted:
                return names[run.info.experiment_id]
        token = page.token
        if not token:
            return experiments[0].name  # no finished job anywhere: the error will say so


def _table(runs: pd.DataFrame, metric: str | None) -> pd.DataFrame:
    objective = (metric or _recorded_objective(runs)).removeprefix("test_")
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
    rows["run_id"] = runs["run_id"]
    order = runs[f"metrics.test_{objective}_mean"].sort_values(
        ascending=lower_is_better(objective), na_position="last").index
    return rows.loc[order].reset_index(drop=True)


def _recorded_objective(runs: pd.DataFrame) -> str:
    recorded = runs.get("tags.objective", pd.Series(dtype=str)).dropna()
    if not recorded.empty:
        return recorded.mode().iloc[0]
    return "accuracy" if "metrics.test_accuracy_mean" in runs else "r2"


def _key_params(runs: pd.DataFrame) -> pd.Series:
    """Per job, `key=value` for the settings that tell it apart from the other jobs of its
    model (model arguments) or of the table (data, preprocessing and cv settings)."""
    def differing(frame: pd.DataFrame, prefixes: tuple[str, ...]) -> list[str]:
        keys = [c for c in frame.columns if c.startswith(prefixes)
                and not any(part in c for part in UNINTERESTING)]
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


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """Each metric's mean and std columns as one `mean ± std` column."""
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        if column.endswith("_std"):
            continue
        if column.endswith("_mean") and column != "fit_time_mean":
            std = table[column.removesuffix("_mean") + "_std"]
            shown[column.removesuffix("_mean")] = [
                "nan" if pd.isna(m) else f"{m:.4f} ± {s:.4f}"
                for m, s in zip(table[column], std, strict=True)]
        elif column == "fit_time_mean":
            shown["fit_time"] = [f"{t:.3f}s" for t in table[column]]
        else:
            shown[column] = table[column]
    return shown


def markdown(table: pd.DataFrame) -> str:
    table = readable(table)
    cells = [list(map(str, table.columns))] + table.astype(str).values.tolist()
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in table.columns) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from pipeline.tracking import default_uri, redact

    parser = argparse.ArgumentParser(
        prog="python -m pipeline.compare",
        description="Rank the jobs of an experiment by their objective's mean across folds.")
    parser.add_argument("--uri", default=None,
                        help="tracking URI (default: $MLFLOW_TRACKING_URI or outputs/mlflow.db)")
    parser.add_argument("--experiment", "-e",
                        help="experiment (default: the one with the newest finished job)")
    parser.add_argument("--sweep", help="only this multirun's jobs: its directory, or 'latest'")
    parser.add_argument("--metric", help="rank by this metric (default: the jobs' objective)")
    parser.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    _add_across_data_arguments(parser)
    args = parser.parse_args(argv)
    uri = args.uri or default_uri()
    if args.across_data:
        return _across_data(uri, args)
    try:
        mark_store(uri)  # runs left RUNNING by jobs killed outright: KILLED, with the reason
        experiment, table = leaderboard(uri, args.experiment, args.sweep, args.metric)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "markdown":
        print(markdown(table))
    else:
        print(f"experiment {experiment!r} in {redact(uri)}: {len(table)} job(s), best first")
        print(readable(table).to_string(index=False))
    return 0


def _add_across_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--across-data", action="store_true",
        help="rank a sweep's models on each of its data sets: Friedman, Nemenyi's critical "
             "difference diagram, Bayesian signed-rank test (the sweep's jobs are found in every "
             "experiment; -e A,B,C limits them to those)")
    parser.add_argument("--rope", type=float, default=None,
                        help="region of practical equivalence of the Bayesian tests, in the "
                             "metric's units (default 0.01)")


def _across_data(uri: str, args: argparse.Namespace) -> int:
    from pipeline import ranks

    try:
        mark_store(uri)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    experiments = [e.strip() for e in args.experiment.split(",")] if args.experiment else None
    return ranks.main(uri, args.sweep, experiments, args.metric, args.rope)


if __name__ == "__main__":
    sys.exit(main())
