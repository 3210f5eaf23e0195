"""Many data sets: the models of one sweep ranked on every data set, Friedman's test, Nemenyi's
critical difference with its diagram (Demšar, JMLR 2006) and the Bayesian signed-rank test
(Benavoli et al., JMLR 2017) for each pair of models; `python -m pipeline.compare --across-data`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.compare import COMPARISON, KIND_TAG, jobs_only
from pipeline.errors import PipelineError
from pipeline.metrics import lower_is_better

ALPHA = 0.05
# Region of practical equivalence of the Bayesian test, in the metric's units (0.01 accuracy).
ROPE = 0.01
# Fewer data sets than this: nothing is compared across data sets.
MIN_DATA_SETS = 2
# With 2 data sets Friedman's statistic cannot reach α=0.05 whatever the scores (3 models: at
# most 4.0, p=0.135); scipy's test needs 3 models (2 models: the pairwise Bayesian test).
MIN_FRIEDMAN_DATA_SETS = 3
MIN_FRIEDMAN_MODELS = 3
# Benavoli et al. compare over tens of data sets; below 5 the posterior mostly restates its
# prior (one pseudo-observation at 0), and the frequentist signed-rank test cannot reject at
# all before 6.
MIN_BAYES_DATA_SETS = 5
BAYES_SAMPLES = 20_000  # Monte Carlo draws of the posterior: probabilities to about ±0.005
BAYES_SEED = 0          # the same store gives the same probabilities
FIGURE = "critical_difference.png"
# Settings that tell two jobs of one model on one data set apart (a model swept over lr).
CONFIGURATION = ("params.model.", "params.preprocess.", "params.cv.", "params.seed", "tags.cv")
# Model settings that say how a job ran rather than what was fitted.
HOW_IT_RAN = ("_target_", ".name", "random_state", "trainer.", "n_jobs")


@dataclass
class AcrossData:
    """The comparison of the models of one sweep over its data sets; `scores` and `ranks` have a
    row per data set and a column per model; rank 1 is the best."""

    sweep: str | None
    experiments: list[str]
    metrics: pd.Series             # per data set, the metric its scores are (test_<m>_mean)
    scores: pd.DataFrame
    ranks: pd.DataFrame
    alpha: float
    rope: float
    friedman: tuple[float, float] | None = None  # (chi², p)
    critical_difference: float | None = None
    nemenyi: pd.DataFrame | None = None          # p-values, model × model
    bayes: pd.DataFrame | None = None            # one row per pair of models
    notes: list[str] = field(default_factory=list)

    @property
    def average_ranks(self) -> pd.Series:
        return self.ranks.mean().sort_values().rename("average rank")

    @property
    def metric(self) -> str:
        names = self.metrics.unique()
        return names[0] if len(names) == 1 else "/".join(sorted(names))


# --- which jobs -------------------------------------------------------------------------------


def sweep_jobs(uri: str, sweep: str | None = "latest",
               experiments: list[str] | None = None) -> tuple[str | None, pd.DataFrame]:
    """(sweep dir, its finished jobs): the parent runs tagged `sweep` (or `resumed_in`) with that
    directory, `latest` being the sweep of the newest job, in every experiment (a sweep over
    `data=` puts each data set's jobs in the experiment named after it) or in `experiments`.
    No sweep with `experiments`: every finished job of those experiments. Comparison runs
    (`kind=comparison`) are no jobs."""
    import mlflow

    from pipeline.tracking import quoted, reader, redact

    client = reader(uri)
    found = {e.name: e.experiment_id for e in client.search_experiments()}
    if experiments:
        unknown = [name for name in experiments if name not in found]
        if unknown:
            raise PipelineError(f"no experiment {', '.join(map(repr, unknown))} in {redact(uri)}; "
                                f"experiments: {', '.join(found) or 'none'}")
        ids = [found[name] for name in experiments]
    else:
        ids = list(found.values())
    if not ids:
        raise PipelineError(f"no experiments in {redact(uri)}; run a sweep first")
    if sweep is None and not experiments:
        sweep = "latest"
    if sweep == "latest":
        sweep = _newest_sweep(client, ids)
        if sweep is None:
            raise PipelineError("no sweep's job has finished in "
                                + (", ".join(experiments) if experiments else redact(uri))
                                + "; run one: python -m pipeline -m model=A,B,C "
                                  "data=iris,wine,breast_cancer")
    mlflow.set_tracking_uri(uri)
    finished = "attributes.status = 'FINISHED'"
    if sweep is None:
        filters = [finished]
    else:
        filters = [f"tags.{tag} = {quoted(sweep)} and {finished}"
                   for tag in ("sweep", "resumed_in")]
    found_runs = [mlflow.search_runs(ids, filter_string=f, output_format="pandas")
                  for f in filters]
    runs = pd.concat([r for r in found_runs if not r.empty] or found_runs[:1], ignore_index=True)
    runs = jobs_only(runs).drop_duplicates("run_id")
    if runs.empty:
        raise PipelineError(f"no finished jobs of sweep {sweep}" if sweep else
                            f"no finished jobs in {', '.join(experiments or [])}")
    names = {v: k for k, v in found.items()}
    runs["experiment"] = runs["experiment_id"].map(names)
    return sweep, runs


def _newest_sweep(client: Any, experiment_ids: list[str]) -> str | None:
    token = None
    while True:
        page = client.search_runs(experiment_ids, "attributes.status = 'FINISHED'",
                                  max_results=100, page_token=token,
                                  order_by=["attributes.start_time DESC"])
        for run in page:
            tags = run.data.tags
            job = "mlflow.parentRunId" not in tags and tags.get(KIND_TAG) != COMPARISON
            if job and "sweep" in tags:
                return tags["sweep"]
        token = page.token
        if not token:
            return None


# --- the score table --------------------------------------------------------------------------


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
        name = f"test_{metric.removeprefix('test_')}" if metric else _objective(jobs)
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
    keys = [c for c in runs.columns if c.startswith(prefixes)
            and not any(part in c for part in HOW_IT_RAN)]
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


def _objective(jobs: pd.DataFrame) -> str:
    recorded = jobs.get("tags.objective", pd.Series(dtype=str)).dropna()
    if not recorded.empty:
        return recorded.mode().iloc[0]
    return "test_accuracy" if "metrics.test_accuracy_mean" in jobs else "test_r2"


# --- the statistics ---------------------------------------------------------------------------


def oriented(scores: pd.DataFrame, metrics: pd.Series) -> pd.DataFrame:
    """Scores with higher always better: a lower-is-better metric (mse) negated."""
    sign = [(-1.0 if lower_is_better(metrics[d]) else 1.0) for d in scores.index]
    return scores.mul(sign, axis=0)


def rank_models(scores: pd.DataFrame, metrics: pd.Series) -> pd.DataFrame:
    """Per data set, 1 for the best model; tied models share the average of their ranks."""
    from scipy.stats import rankdata

    better = oriented(scores, metrics)
    return pd.DataFrame(rankdata(-better.to_numpy(), axis=1, method="average"),
                        index=scores.index, columns=scores.columns)


def friedman(scores: pd.DataFrame, metrics: pd.Series) -> tuple[float, float]:
    """Friedman's chi² and p over data sets (blocks) and models (treatments), ties corrected."""
    from scipy.stats import friedmanchisquare

    better = oriented(scores, metrics)
    statistic, p = friedmanchisquare(*(better[c].to_numpy() for c in better.columns))
    return float(statistic), float(p)


def critical_difference(models: int, data_sets: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of average ranks (Demšar 2006, eq. 5):
    q_α · sqrt(k(k+1) / 6N), q_α the studentized range quantile over sqrt(2)."""
    from scipy.stats import studentized_range

    q = studentized_range.ppf(1 - alpha, models, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(models * (models + 1) / (6 * data_sets)))


def nemenyi(ranks: pd.DataFrame) -> pd.DataFrame:
    """Nemenyi's p-value of every pair of models, from their ranks per data set."""
    import scikit_posthocs

    return scikit_posthocs.posthoc_nemenyi_friedman(ranks)


def bayesian_signed_rank(scores: pd.DataFrame, metrics: pd.Series, rope: float = ROPE,
                         samples: int = BAYES_SAMPLES) -> pd.DataFrame:
    """For each pair (A, B) of models, baycomp's Bayesian signed-rank test over the data sets:
    the probabilities that A is better by more than `rope`, that they are equivalent (within
    `rope`), and that B is better."""
    from baycomp import SignedRankTest

    better = oriented(scores, metrics)
    order = list(better.mean(axis=0).sort_values(ascending=False).index)
    rows = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            # baycomp's left region is y - x < -rope: x (A) better.
            p_a, p_rope, p_b = SignedRankTest.probs(
                better[a].to_numpy(), better[b].to_numpy(), rope, nsamples=samples,
                random_state=BAYES_SEED)
            rows.append({"A": a, "B": b, "P(A better)": float(p_a),
                         "P(equivalent)": float(p_rope), "P(B better)": float(p_b)})
    return pd.DataFrame(rows, columns=["A", "B", "P(A better)", "P(equivalent)", "P(B better)"])


def compare(scores: pd.DataFrame, metrics: pd.Series, *, sweep: str | None = None,
            experiments: list[str] | None = None, alpha: float = ALPHA, rope: float = ROPE,
            samples: int = BAYES_SAMPLES, notes: list[str] | None = None) -> AcrossData:
    """Every test that the table's size allows; a note for each that it does not."""
    if not 0 <= rope < math.inf:
        raise PipelineError(f"--rope must be 0 or more, in the metric's units (got {rope})")
    if not 0 < alpha < 1:
        raise PipelineError(f"alpha must lie between 0 and 1 (got {alpha})")
    data_sets, models = scores.shape
    if models < 2:
        raise PipelineError(f"only {models} model on the data sets ({', '.join(scores.columns)}); "
                            "comparing needs at least 2: sweep over model=A,B,...")
    if data_sets < MIN_DATA_SETS:
        shown = ", ".join(scores.index) or "none with every model scored"
        raise PipelineError(
            f"{data_sets} data set ({shown}); --across-data needs at least {MIN_DATA_SETS}: "
            "run the models over several, e.g. -m model=A,B,C data=iris,wine,breast_cancer")
    result = AcrossData(sweep, experiments or [], metrics, scores,
                        rank_models(scores, metrics), alpha, rope, notes=list(notes or []))
    if models < MIN_FRIEDMAN_MODELS:
        result.notes.append(f"Friedman's test not run: it needs at least "
                            f"{MIN_FRIEDMAN_MODELS} models (have {models}); for two, read the "
                            "Bayesian signed-rank test")
    elif data_sets < MIN_FRIEDMAN_DATA_SETS:
        result.notes.append(f"Friedman's test not run: it needs at least "
                            f"{MIN_FRIEDMAN_DATA_SETS} data sets (have {data_sets})")
    else:
        result.friedman = friedman(scores, metrics)
        result.critical_difference = critical_difference(models, data_sets, alpha)
        result.nemenyi = nemenyi(result.ranks)
        if result.friedman[1] >= alpha:
            result.notes.append(f"Friedman's test does not reject equal ranks at α={alpha}: no "
                                "difference below is significant, whatever the diagram shows")
    if metrics.nunique() > 1:
        result.notes.append("Bayesian signed-rank test not run: the data sets are scored in "
                            f"different metrics ({', '.join(sorted(metrics.unique()))}); "
                            "pick one with --metric")
    elif data_sets < MIN_BAYES_DATA_SETS:
        result.notes.append(f"Bayesian signed-rank test not run: it needs at least "
                            f"{MIN_BAYES_DATA_SETS} data sets (have {data_sets})")
    else:
        result.bayes = bayesian_signed_rank(scores, metrics, rope, samples)
    return result


def across_data(uri: str, sweep: str | None = "latest", experiments: list[str] | None = None,
                metric: str | None = None, alpha: float = ALPHA, rope: float = ROPE,
                samples: int = BAYES_SAMPLES) -> AcrossData:
    """The comparison of a sweep's models over its data sets, read from the store at `uri`."""
    sweep, runs = sweep_jobs(uri, sweep, experiments)
    scores, metrics, notes = score_table(runs, metric)
    return compare(scores, metrics, sweep=sweep, experiments=sorted(runs["experiment"].unique()),
                   alpha=alpha, rope=rope, samples=samples, notes=notes)


# --- what is shown and kept -------------------------------------------------------------------


def figure(result: AcrossData) -> Any:
    """The critical-difference diagram: average ranks on an axis (1, the best, on the left),
    a bar as long as the CD, and models that Nemenyi's test does not tell apart joined."""
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # headless, also for the pyplot that scikit_posthocs imports
    import scikit_posthocs
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = len(result.scores.columns)
    fig = Figure(figsize=(7, 1.2 + 0.35 * models), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    scikit_posthocs.critical_difference_diagram(
        result.average_ranks, result.nemenyi, alpha=result.alpha, ax=ax,
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}")
    statistic, p = result.friedman
    cd = result.critical_difference
    # Demšar's CD bar, above the rank axis's tick labels (scikit-posthocs draws it on them).
    start = 1.0
    ax.plot([start, start + cd], [1.6, 1.6], color="k", linewidth=2)
    ax.plot([start, start], [1.45, 1.75], color="k", linewidth=1)
    ax.plot([start + cd, start + cd], [1.45, 1.75], color="k", linewidth=1)
    ax.text(start + cd / 2, 1.85, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    ax.set_xlim(min(0.9, ax.get_xlim()[0]), max(len(result.scores.columns) + 0.1,
                                               ax.get_xlim()[1], start + cd + 0.1))
    ax.set_title(f"{result.metric.removeprefix('test_')} over {len(result.scores)} data sets: "
                 f"Friedman χ²={statistic:.2f}, p={p:.3g}; Nemenyi CD={cd:.2f} "
                 f"(α={result.alpha})", fontsize=9, pad=28)
    fig.tight_layout()
    return fig


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


def main(uri: str, sweep: str | None, experiments: list[str] | None, metric: str | None,
         rope: float | None) -> int:
    """`python -m pipeline.compare --across-data`: print the comparison, save the CD diagram
    under outputs/comparisons/ and log both to a comparison run."""
    import sys

    from pipeline.tracking import redact

    try:
        result = across_data(uri, sweep, experiments, metric,
                             rope=ROPE if rope is None else rope)
        fig = figure(result) if result.friedman is not None else None
        experiment, run_id = log(uri, result, fig)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(text(result))
    where = f"experiment {experiment!r} of {redact(uri)}, run {run_id} (kind=comparison)"
    if fig is not None:
        path = save(fig, Path("outputs") / "comparisons", run_id)
        print(f"\ncritical-difference diagram: {path}; logged to {where}")
    else:
        print(f"\nno critical-difference diagram (Friedman's test not run); logged to {where}")
    return 0
