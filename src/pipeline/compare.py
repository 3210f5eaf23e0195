"""The leaderboard: one row per job (parent run) read back from MLflow, best first.

    python -m pipeline.compare [--experiment iris] [--sweep latest|DIR] [--format markdown]
    python -m pipeline.compare --against [best|MODEL|RUN_ID] [--rope 0.01]   # paired tests
    python -m pipeline.compare --across-data [--sweep latest|DIR] [--metric M] [--rope 0.01]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pipeline.doctor import mark_store
from pipeline.errors import PipelineError
from pipeline.metrics import lower_is_better

# Model keys that say how a job was run rather than what was fitted.
UNINTERESTING = ("_target_", "name", "random_state", "trainer.")
# Runs read per request while looking for the newest job (its folds come first).
NEWEST_PAGE = 100
# The tag that marks a run which is not a job (a comparison's figure and table): whatever
# lists jobs skips runs tagged kind=comparison.
KIND_TAG, COMPARISON = "kind", "comparison"


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
    runs = jobs_only(runs)
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


def jobs_only(runs: pd.DataFrame) -> pd.DataFrame:
    """Parent runs of jobs: no fold runs, no comparison runs (--against, --across-data)."""
    if "tags.mlflow.parentRunId" in runs:
        runs = runs[runs["tags.mlflow.parentRunId"].isna()]
    if f"tags.{KIND_TAG}" in runs:
        runs = runs[runs[f"tags.{KIND_TAG}"] != COMPARISON]
    return runs


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
            if "mlflow.parentRunId" not in tags and wanted and tags.get(KIND_TAG) != COMPARISON:
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
    if "vs_diff" in table:
        shown = _readable_paired(table, shown)
    return shown


def markdown(table: pd.DataFrame) -> str:
    table = readable(table)
    cells = [list(map(str, table.columns))] + table.astype(str).values.tolist()
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in table.columns) + "|")
    return "\n".join(lines)


# -- paired comparison against a reference job (--against) -----------------------------------

# Metrics whose differences are in the data's own units (no default region of equivalence).
UNITS_METRICS = ("mse", "mae", "inertia")
# The default rope for the other metrics (scores on a 0-1 or -1-1 scale): a hundredth.
DEFAULT_ROPE = 0.01
# The parent-run keys that say which folds a job planned: what a refusal names when the
# fold digests of two jobs differ.
FOLD_PARAMS = ("params.data.", "params.cv.")
NOT_FOLD_PARAMS = ("params.cv.n_jobs", "params.cv.batch_folds", "params.cv._target_")
# Rows drawn in the posterior figure (the best ones), so that their curves stay readable.
FIGURE_ROWS = 8


class Paired(NamedTuple):
    """The fold scores of one job on `metric`, by fold number, and its folds' n_test/n_train."""

    folds: list[int]
    scores: np.ndarray
    ratio: float


def default_rope(metric: str) -> float:
    """0.01 for a score on a 0-1 (or -1-1) scale, 0 (no rope) for an error in the data's units."""
    return 0.0 if metric.removeprefix("test_") in UNITS_METRICS else DEFAULT_ROPE


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
    from pipeline.tracking.client import quoted

    children, token = [], None
    while True:
        page = client.search_runs(
            [run.info.experiment_id],
            f"tags.mlflow.parentRunId = {quoted(run.info.run_id)} and "
            "attributes.status = 'FINISHED'", max_results=1000, page_token=token)
        children += [c for c in page if "fold" in c.data.params]
        token = page.token
        if not token:
            break
    children.sort(key=lambda c: int(c.data.params["fold"]))
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
                  and not k.startswith(NOT_FOLD_PARAMS)
                  and k not in ("params.cv.name", "params.data.name"))  # the tags said those
    for key in keys:
        if flat_a.get(key) != flat_b.get(key):
            if key == "params.cv.random_state" and flat_a.get("params.seed") != flat_b.get(
                    "params.seed"):
                key = "params.seed"
            differ.append(f"{key.removeprefix('params.')} {flat_a.get(key)} vs "
                          f"{flat_b.get(key)}")
    if len(differ) > 5:
        differ = [*differ[:5], f"and {len(differ) - 5} more"]
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
    from pipeline.metrics import lower_is_better
    from pipeline.tracking import reader

    metric = (metric or _ranked_metric(table)).removeprefix("test_")
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


def _ranked_metric(table: pd.DataFrame) -> str:
    """The metric the leaderboard is ranked by: its first `_mean` column."""
    return next(c.removesuffix("_mean") for c in table.columns if c.endswith("_mean"))


def _readable_paired(table: pd.DataFrame, shown: pd.DataFrame) -> pd.DataFrame:
    """The ranked metric and the paired columns as text (the other metrics would make the
    table too wide to read): no NaN printed as a result, the row's note in its place."""
    ranked = _ranked_metric(table)
    shown = shown[[c for c in shown.columns
                   if c in ("model", "cv", "params", ranked, "run_id")]].copy()

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


def posterior_figure(table: pd.DataFrame, meta: dict) -> Any:
    """The posterior of the mean difference (row - reference) of each paired job, with the
    rope, and a bar of P(worse)/P(equivalent)/P(better) per job."""
    from pipeline.plots import new_figure

    posteriors = dict(list(meta["posteriors"].items())[:FIGURE_ROWS])
    figure = new_figure(9.0, 3.2 + 0.25 * len(posteriors))
    density, bars = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    rope, metric = meta["rope"], meta["metric"]
    ends = [p.interval(0.998) for p in posteriors.values()] or [(-1.0, 1.0)]
    low = min(min(e[0] for e in ends), -1.5 * rope)
    high = max(max(e[1] for e in ends), 1.5 * rope)
    x = np.linspace(low, high, 400)
    if rope:
        density.axvspan(-rope, rope, color="0.85", label=f"rope ±{rope:g}")
    density.axvline(0, color="0.4", linewidth=0.8)
    labels = []
    for i, posterior in posteriors.items():
        label = f"{i + 1}. {table.loc[i, 'model']}"
        labels.append(label)
        if posterior.scale:
            density.plot(x, posterior.pdf(x), label=label)
        else:
            density.axvline(posterior.mean, linestyle="--", label=f"{label} (constant)")
    ref = meta["reference"]
    density.set_xlabel(f"test_{metric}: row - {table.loc[ref, 'model']} "
                       f"({'lower' if meta['lower'] else 'higher'} is better)")
    density.set_yticks([])
    density.set_title("posterior of the mean difference", fontsize=9)
    density.legend(fontsize=7, loc="upper right")
    rows = list(posteriors)
    worse = np.array([table.loc[i, "p_worse"] for i in rows])
    equiv = np.array([table.loc[i, "p_equiv"] for i in rows])
    better = np.array([table.loc[i, "p_better"] for i in rows])
    where = np.arange(len(rows))[::-1]
    bars.barh(where, worse, color="#c44e52", label="P(worse)")
    bars.barh(where, equiv, left=worse, color="0.7", label="P(equivalent)")
    bars.barh(where, better, left=worse + equiv, color="#55a868", label="P(better)")
    bars.set_yticks(where, labels, fontsize=7)
    bars.set_xlim(0, 1)
    bars.set_title("vs the reference", fontsize=9)
    bars.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1, 1.08), ncol=3,
                frameon=False)
    figure.tight_layout()
    return figure


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
    parser.add_argument(
        "--against", nargs="?", const="best", metavar="RUN_ID|MODEL|best",
        help="compare every job with this one, fold by fold (jobs on the same folds only): "
             "corrected t-test and Bayesian correlated t-test; a figure is logged to MLflow "
             "(default without a value: best)")
    parser.add_argument(
        "--rope", type=float, default=None,
        help=f"with --against or --across-data: differences within ±ROPE count as equivalent "
             f"(default {DEFAULT_ROPE} for scores such as accuracy, 0 with --against for "
             f"{', '.join(UNITS_METRICS)})")
    _add_across_data_arguments(parser)
    args = parser.parse_args(argv)
    uri = args.uri or default_uri()
    if args.across_data:
        if args.format != "table":  # its several tables, tests and figure are not one table
            parser.error(f"--format {args.format} is for the leaderboard; --across-data prints "
                         "its tables as text and logs them (ranks.csv) to its comparison run")
        return _across_data(uri, args)
    lines: list[str] = []
    try:
        mark_store(uri)  # runs left RUNNING by jobs killed outright: KILLED, with the reason
        experiment, table = leaderboard(uri, args.experiment, args.sweep, args.metric)
        if args.against is not None:
            table, lines, meta = compare_against(uri, table, args.against, args.rope,
                                                 args.metric)
            run_id = log_comparison(uri, experiment, table, lines, meta)
            lines.append(f"posterior figure: posterior.png of MLflow run {run_id} "
                         f"(kind=comparison) in experiment {experiment!r}")
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
    for line in lines:  # stderr under csv, so that the table stays a clean file
        print(line, file=sys.stderr if args.format == "csv" else sys.stdout)
    return 0


def _add_across_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--across-data", action="store_true",
        help="rank a sweep's models on each of its data sets: Friedman, Nemenyi's critical "
             "difference diagram, Bayesian signed-rank test (the sweep's jobs are found in every "
             "experiment; -e A,B,C limits them to those)")


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
