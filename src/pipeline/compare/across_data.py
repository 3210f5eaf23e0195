"""Many data sets, from the store to the reader: a sweep's jobs as a table of scores (a row per
data set, a column per model), the comparison of them (pipeline.compare.ranks), its text and
the comparison run that keeps it; `python -m pipeline.compare --across-data`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.compare.defaults import recorded_objective, tells_jobs_apart
from pipeline.compare.ranks import ALPHA, BAYES_SAMPLES, AcrossData, compare
from pipeline.compare.runs import (
    COMPARISON,
    KIND_TAG,
    experiment_ids,
    finished_runs,
    jobs_only,
    newest_sweep,
    reader,
    sweep_runs,
)
from pipeline.errors import PipelineError

FIGURE = "critical_difference.png"
# Settings that tell two jobs of one model on one data set apart (a model swept over lr).
CONFIGURATION = ("params.model.", "params.preprocess.", "params.cv.", "params.seed", "tags.cv")


def sweep_jobs(uri: str, sweep: str | None = "latest",
               experiments: list[str] | None = None) -> tuple[str | None, pd.DataFrame]:
    """(sweep dir, its finished jobs): the parent runs tagged `sweep` (or `resumed_in`) with that
    directory, `latest` being the sweep of the newest job, in every experiment (a sweep over
    `data=` puts each data set's jobs in the experiment named after it) or in `experiments`.
    No sweep with `experiments`: every finished job of those experiments. Comparison runs
    (`kind=comparison`) are no jobs."""
    from pipeline.tracking.secrets import redact

    client = reader(uri)
    ids, names = experiment_ids(client, uri, experiments)
    if not ids:
        raise PipelineError(f"no experiments in {redact(uri)}; run a sweep first")
    if sweep is None and not experiments:
        sweep = "latest"
    if sweep == "latest":
        sweep = newest_sweep(client, ids)
        if sweep is None:
            raise PipelineError("no sweep's job has finished in "
                                + (", ".join(experiments) if experiments else redact(uri))
                                + "; run one: python -m pipeline -m model=A,B,C "
                                  "data=iris,wine,breast_cancer")
    runs = finished_runs(client, ids) if sweep is None else sweep_runs(client, ids, sweep)
    runs = jobs_only(runs).drop_duplicates("run_id")
    if runs.empty:
        raise PipelineError(f"no finished jobs of sweep {sweep}" if sweep else
                            f"no finished jobs in {', '.join(experiments or [])}")
    runs["experiment"] = runs["experiment_id"].map(names)
    return sweep, runs


def score_table(runs: pd.DataFrame, metric: str | None = None
                ) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """(scores, metric per data set, notes): a row per data set, a column per model, each cell a
    job's `test_<metric>_mean` (the jobs' objective unless `metric`). Data sets of one name that
    differ in their `data.` settings are separate rows, jobs of one model that differ in their
    settings separate columns; of jobs that do not differ, the newest counts. A data set some
    model has no score on is left out (Friedman's test needs every model on every data set)."""
    notes: list[str] = []
    runs = runs.copy()
    runs["data_set"] = _labels(runs, "tags.data", ("params.data.",), group=["tags.data"])
    runs["model_label"] = _labels(runs, "tags.model", CONFIGURATION,
                                  group=["data_set", "tags.model"])
    metrics = {}
    for data_set, jobs in runs.groupby("data_set"):
        name = f"test_{metric.removeprefix('test_')}" if metric else recorded_objective(jobs)
        if f"metrics.{name}_mean" not in jobs or jobs[f"metrics.{name}_mean"].isna().all():
            raise PipelineError(f"no metric {name.removeprefix('test_')!r} on the jobs of "
                                f"{data_set}; pick one with --metric")
        metrics[data_set] = name
    runs["score"] = [row.get(f"metrics.{metrics[row['data_set']]}_mean", np.nan)
                     for _, row in runs.iterrows()]
    newest = runs.sort_values("start_time").groupby(["data_set", "model_label"]).tail(1)
    if len(newest) < len(runs):
        notes.append(f"{len(runs) - len(newest)} older job(s) of the same model, settings and "
                     "data set left out (the newest counts)")
    scores = newest.pivot(index="data_set", columns="model_label", values="score")
    scores.index.name, scores.columns.name = "data set", "model"
    incomplete = scores[scores.isna().any(axis=1)]
    for data_set, row in incomplete.iterrows():
        missing = ", ".join(row.index[row.isna()])
        notes.append(f"{data_set} left out: no score of {missing} on it")
    scores = scores.dropna()
    return scores, pd.Series(metrics).loc[scores.index], notes


def _labels(runs: pd.DataFrame, tag: str, prefixes: tuple[str, ...],
            group: list[str]) -> pd.Series:
    """`tag`'s value, followed by `key=value` for the settings that differ between runs of one
    `group` (the same model on the same data set swept over two learning rates)."""
    keys = [c for c in runs.columns if c.startswith(prefixes) and tells_jobs_apart(c)]
    labels = runs[tag].astype(str).copy()
    for _, jobs in runs.groupby(group):
        differing = [k for k in keys if jobs[k].nunique(dropna=False) > 1]
        for index, job in jobs.iterrows():
            settings = " ".join(f"{_short(k)}={job[k]}" for k in differing)
            labels[index] = f"{job[tag]} {settings}".strip()
    return labels


def _short(key: str) -> str:
    return key.removeprefix("params.").removeprefix("tags.").removeprefix("model.").removeprefix(
        "data.")



def across_data(uri: str, sweep: str | None = "latest", experiments: list[str] | None = None,
                metric: str | None = None, alpha: float = ALPHA, rope: float | None = None,
                samples: int = BAYES_SAMPLES) -> AcrossData:
    """The comparison of a sweep's models over its data sets, read from the store at `uri`."""
    sweep, runs = sweep_jobs(uri, sweep, experiments)
    scores, metrics, notes = score_table(runs, metric)
    return compare(scores, metrics, sweep=sweep, experiments=sorted(runs["experiment"].unique()),
                   alpha=alpha, rope=rope, samples=samples, notes=notes)


def log(uri: str, result: AcrossData, fig: Any | None) -> tuple[str, str]:
    """(experiment, run id) of a comparison run (tag `kind=comparison`) holding the tables, the
    test results and the figure: in the jobs' experiment if they share one, else in
    `comparisons`."""
    from pipeline import tracking

    experiment = result.experiments[0] if len(result.experiments) == 1 else "comparisons"
    tracker = tracking.connect(uri, experiment)
    params = {"comparison": "across-data", "metric": result.metric, "alpha": result.alpha,
              "rope": result.rope, "models": ", ".join(result.scores.columns),
              "data_sets": ", ".join(result.scores.index)}
    tags = {KIND_TAG: COMPARISON, "comparison": "across-data", "compared_sweep": result.sweep or "",
            "compared_experiments": ", ".join(result.experiments)}
    with tracker.run("across-data", params=params, tags=tags) as run_id:
        metrics = {"n_models": len(result.scores.columns), "n_data_sets": len(result.scores)}
        if result.friedman is not None:
            metrics.update({"friedman_statistic": result.friedman[0],
                            "friedman_p": result.friedman[1],
                            "critical_difference": result.critical_difference})
        tracker.log_metrics(run_id, metrics)
        tracker.log_table(run_id, result.scores, "scores.csv")
        tracker.log_table(run_id, result.ranks, "ranks.csv")
        tracker.log_text(run_id, text(result), "comparison.txt")
        if result.bayes is not None:
            tracker.log_table(run_id, result.bayes.set_index(["A", "B"]),
                              "bayesian_signed_rank.csv")
        if fig is not None:
            tracker.log_figure(run_id, fig, FIGURE)
    return experiment, run_id


def text(result: AcrossData) -> str:
    """The comparison as a reader takes it in: scores and ranks per data set, average ranks,
    Friedman, the CD and the Bayesian test's probabilities, then what was not run and why."""
    order = list(result.average_ranks.index)
    shown = result.scores[order].copy()
    for column in order:
        shown[column] = [f"{s:.4f} ({r:g})" for s, r in
                         zip(result.scores[column], result.ranks[column], strict=True)]
    shown.insert(0, "metric", result.metrics.str.removeprefix("test_"))
    lines = [f"{len(order)} models on {len(result.scores)} data sets"
             + (f" (sweep {result.sweep})" if result.sweep else "")
             + "; score (rank) per data set, rank 1 the best:", shown.to_string(), "",
             "average rank:"]
    lines += [f"  {rank:5.2f}  {model}" for model, rank in result.average_ranks.items()]
    if result.friedman is not None:
        statistic, p = result.friedman
        lines += ["", f"Friedman: chi2={statistic:.4f}, p={p:.4g} "
                      f"({len(order)} models, {len(result.scores)} data sets)",
                  f"Nemenyi critical difference (α={result.alpha}): "
                  f"CD={result.critical_difference:.4f}; average ranks further apart than CD "
                  "differ significantly"]
        apart = [f"  {a} vs {b}: Δrank={abs(result.average_ranks[a] - result.average_ranks[b]):.2f}"
                 f", p={result.nemenyi.loc[a, b]:.3g}"
                 for i, a in enumerate(order) for b in order[i + 1:]
                 if result.nemenyi.loc[a, b] < result.alpha]
        lines += apart or ["  no pair differs significantly"]
    if result.bayes is not None:
        lines += ["", f"Bayesian signed-rank test over data sets (rope={result.rope}):",
                  result.bayes.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
    if result.notes:
        lines += [""] + [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def save(fig: Any, folder: Path, run_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"critical_difference-{run_id[:8]}.png"
    fig.savefig(path, dpi=fig.dpi)
    return path

