"""Paired tests against a reference job (--against): which jobs pair (the same folds), their
fold scores, the corrected t-test and the Bayesian correlated t-test, and the comparison run
that keeps the table and the posterior figure."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pipeline.compare.defaults import SAID_BY_TAGS, default_rope, tells_jobs_apart
from pipeline.compare.figures import posterior_figure
from pipeline.compare.runs import COMPARISON, KIND_TAG, fold_runs, reader
from pipeline.compare.table import ranked_metric
from pipeline.errors import PipelineError
from pipeline.metrics import lower_is_better

# The parent-run keys that say which folds a job planned: what a refusal names when the
# fold digests of two jobs differ (not the names and classes the tags say, nor how it ran).
FOLD_PARAMS = ("params.data.", "params.cv.")
# Differences named in a refusal, at most.
SHOWN_DIFFERENCES = 5


class Paired(NamedTuple):
    """The fold scores of one job on `metric`, by fold number, and its folds' n_test/n_train."""

    folds: list[int]
    scores: np.ndarray
    ratio: float


def reference(table: pd.DataFrame, against: str) -> int:
    """The row of the leaderboard to compare every job with: 'best' (the first row), a run id
    (or its unique prefix), or a model name (its best job)."""
    if against == "best":
        return 0
    by_id = table.index[table["run_id"].str.startswith(against)]
    if len(by_id) == 1:
        return int(by_id[0])
    by_model = table.index[table["model"] == against]
    if len(by_model):
        return int(by_model[0])  # best first
    raise PipelineError(
        f"--against {against!r}: no job of that run id or model in this table; models: "
        + ", ".join(dict.fromkeys(table["model"])) + " (or a run id, or 'best')")


def fold_scores(client: Any, run: Any, metric: str) -> Paired:
    """A job's `test_<metric>` per fold, in fold order, from its finished child runs."""
    children = fold_runs(client, run)
    name = f"test_{metric.removeprefix('test_')}"
    scores = np.array([c.data.metrics.get(name, np.nan) for c in children], dtype=float)
    sizes = np.array([[float(c.data.params.get(k, "nan")) for k in ("test_size", "train_size")]
                      for c in children]).reshape(-1, 2)
    ratio = float(sizes[:, 0].mean() / sizes[:, 1].mean()) if len(sizes) else float("nan")
    return Paired([int(c.data.params["fold"]) for c in children], scores, ratio)


def unpaired_reason(run: Any, ref: Any) -> str | None:
    """Why `run` cannot be paired with `ref` (one line), or None when both were scored on the
    same folds (the same `folds` digest, which the jobs record)."""
    mine, theirs = run.data.tags.get("folds"), ref.data.tags.get("folds")
    if mine and mine == theirs:
        return None
    if not mine or not theirs:
        old = run if not mine else ref
        return (f"run {old.info.run_id} records no fold digest (its job ran before jobs "
                "recorded one); run it again to compare it")
    differ = []
    for key in ("data", "cv"):
        a, b = run.data.tags.get(key), ref.data.tags.get(key)
        if a != b:
            differ.append(f"{key} {a} vs {b}")
    flat_a, flat_b = ({f"params.{k}": v for k, v in r.data.params.items()} for r in (run, ref))
    keys = sorted(k for k in {*flat_a, *flat_b} if k.startswith(FOLD_PARAMS)
                  and tells_jobs_apart(k, SAID_BY_TAGS))  # a random_state decides folds
    for key in keys:
        if flat_a.get(key) != flat_b.get(key):
            if key == "params.cv.random_state" and flat_a.get("params.seed") != flat_b.get(
                    "params.seed"):
                key = "params.seed"
            differ.append(f"{key.removeprefix('params.')} {flat_a.get(key)} vs "
                          f"{flat_b.get(key)}")
    if len(differ) > SHOWN_DIFFERENCES:
        differ = [*differ[:SHOWN_DIFFERENCES], f"and {len(differ) - SHOWN_DIFFERENCES} more"]
    what = (", ".join(differ) if differ else
            "same data, cv and seed settings, yet other rows in the folds: did the data change?")
    return (f"{run.data.tags.get('model')} ({run.info.run_id}) and the reference "
            f"{ref.data.tags.get('model')} ({ref.info.run_id}) were not cross-validated on the "
            f"same folds ({what}); pair jobs of the same data, cv and seed")


def paired_test(row: Paired, ref: Paired, rope: float, runs: int) -> tuple[Any, Any]:
    """(corrected t-test, Bayesian posterior) of row - reference on their common folds."""
    from pipeline import stats

    if row.folds != ref.folds:
        raise PipelineError(f"the jobs finished different folds ({len(row.folds)} vs "
                            f"{len(ref.folds)}); a paired test needs every fold of both")
    ratio = ref.ratio if np.isfinite(ref.ratio) else None
    return (stats.corrected_t_test(row.scores, ref.scores, ratio, runs),
            stats.correlated_bayesian_t_test(row.scores, ref.scores, rope, ratio, runs))


def compare_against(uri: str, table: pd.DataFrame, against: str = "best",
                    rope: float | None = None,
                    metric: str | None = None) -> tuple[pd.DataFrame, list[str], dict]:
    """The leaderboard `table` with, for each job against the reference job: the mean
    difference (row - reference) of the metric, the corrected t-test's p-value and 95%
    interval, and P(better), P(equivalent), P(worse) from the Bayesian correlated t-test.
    Also the lines to print under the table (how to read it, rows left unpaired and why) and
    the posteriors (row index → Posterior) for the figure."""
    metric = (metric or ranked_metric(table)).removeprefix("test_")
    rope = default_rope(metric) if rope is None else rope
    if rope < 0:
        raise PipelineError(f"--rope is a width, at least 0; got {rope}")
    client = reader(uri)
    ref_row = reference(table, against)
    runs = {i: client.get_run(run_id) for i, run_id in table["run_id"].items()}
    ref_run = runs[ref_row]
    ref_scores = fold_scores(client, ref_run, metric)
    repeats = int(ref_run.data.tags.get("fold_repeats", "1"))
    lower = lower_is_better(metric)
    columns = ("vs_diff", "vs_p", "vs_ci_low", "vs_ci_high", "p_better", "p_equiv", "p_worse")
    out = table.copy()
    for column in columns:
        out[column] = np.nan
    out["vs_note"] = ""
    out.loc[ref_row, "vs_note"] = "reference"
    posteriors, notes, reasons = {}, [], []
    for i, run in runs.items():
        if i == ref_row:
            continue
        label = f"row {i + 1} {table.loc[i, 'model']} ({table.loc[i, 'run_id'][:8]})"
        try:
            reason = unpaired_reason(run, ref_run)
            if reason:
                raise PipelineError(reason)
            test, posterior = paired_test(fold_scores(client, run, metric), ref_scores, rope,
                                          repeats)
        except PipelineError as error:
            out.loc[i, "vs_note"] = "not paired"
            notes.append(f"not paired: {label}: {error}")
            reasons.append(str(error))
            continue
        better, worse = ((posterior.p_below, posterior.p_above) if lower else
                         (posterior.p_above, posterior.p_below))
        out.loc[i, list(columns)] = [test.mean, test.p_value, test.low, test.high,
                                     better, posterior.p_rope, worse]
        if test.note:
            out.loc[i, "vs_note"] = "identical" if test.mean == 0 else "constant difference"
            notes.append(f"{label}: {test.note}")
        posteriors[i] = posterior
    ref_label = f"{table.loc[ref_row, 'model']} ({table.loc[ref_row, 'run_id']})"
    if not posteriors:  # nothing to show: the one reason is the answer
        if len(table) == 1:
            raise PipelineError(f"{ref_label} is the only job here: nothing to compare it with")
        if len(reasons) == 1:
            raise PipelineError(reasons[0])
        raise PipelineError(f"none of the {len(reasons)} other jobs pairs with {ref_label}; "
                            f"the first: {reasons[0]}")
    rope_line = (f"rope ±{rope:g}" if rope else
                 f"no rope (--rope 0: {metric} is in the data's units; set --rope to a "
                 "difference too small to matter)")
    head = [f"against {ref_label}, on test_{metric}, {len(ref_scores.folds)} folds"
            + (f" ({repeats} repeats)" if repeats > 1 else "")
            + f", n_test/n_train {ref_scores.ratio:.3g}: diff = row - reference; p and 95% CI: "
            "Nadeau-Bengio corrected t-test; P(better/equiv/worse): Bayesian correlated t-test, "
            + rope_line]
    meta = {"reference": ref_row, "posteriors": posteriors, "metric": metric, "rope": rope,
            "lower": lower, "repeats": repeats}
    return out, head + notes, meta


def log_comparison(uri: str, experiment: str, table: pd.DataFrame, lines: list[str],
                   meta: dict) -> str:
    """A run tagged kind=comparison in `experiment` holding the figure, the table and the
    lines printed with it; its id. Leaderboards skip such runs."""
    from pipeline import tracking

    tracker = tracking.connect(uri, experiment)
    ref = meta["reference"]
    tags = {KIND_TAG: COMPARISON, "against": table.loc[ref, "run_id"],
            "metric": f"test_{meta['metric']}", "rope": str(meta["rope"])}
    with tracker.run(f"compare-vs-{table.loc[ref, 'model']}", tags=tags) as run_id:
        tracker.log_table(run_id, table, "comparison.csv")
        tracker.log_text(run_id, "\n".join(lines) + "\n", "comparison.txt")
        tracker.log_figure(run_id, posterior_figure(table, meta), "posterior.png")
    return run_id
