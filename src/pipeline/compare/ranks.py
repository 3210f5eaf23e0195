"""Many data sets, the statistics: the models of one sweep ranked on every data set, Friedman's
test, Nemenyi's critical difference (Demšar, JMLR 2006) and the Bayesian signed-rank test
(Benavoli et al., JMLR 2017) for each pair of models."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.compare.defaults import DEFAULT_ROPE, default_rope
from pipeline.errors import PipelineError
from pipeline.metrics import lower_is_better

ALPHA = 0.05
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


def rope_for(metrics: pd.Series) -> float:
    """The default rope of the metric the data sets are scored in (none for an error in the
    data's units); a score's where they are scored in several, which no test then uses."""
    names = metrics.unique()
    return default_rope(names[0]) if len(names) == 1 else DEFAULT_ROPE


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


def bayesian_signed_rank(scores: pd.DataFrame, metrics: pd.Series, rope: float | None = None,
                         samples: int = BAYES_SAMPLES) -> pd.DataFrame:
    """For each pair (A, B) of models, baycomp's Bayesian signed-rank test over the data sets:
    the probabilities that A is better by more than `rope` (by default the metric's), that
    they are equivalent (within `rope`), and that B is better."""
    from baycomp import SignedRankTest

    rope = rope_for(metrics) if rope is None else rope
    better = oriented(scores, metrics)
    order = list(better.mean(axis=0).sort_values(ascending=False).index)
    rows = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            # baycomp's left region is y - x < -rope: x (A) better. With no rope it gives
            # the two sides alone.
            probs = SignedRankTest.probs(better[a].to_numpy(), better[b].to_numpy(), rope,
                                         nsamples=samples, random_state=BAYES_SEED)
            p_a, p_rope, p_b = probs if len(probs) == 3 else (probs[0], 0.0, probs[1])
            rows.append({"A": a, "B": b, "P(A better)": float(p_a),
                         "P(equivalent)": float(p_rope), "P(B better)": float(p_b)})
    return pd.DataFrame(rows, columns=["A", "B", "P(A better)", "P(equivalent)", "P(B better)"])


def compare(scores: pd.DataFrame, metrics: pd.Series, *, sweep: str | None = None,
            experiments: list[str] | None = None, alpha: float = ALPHA,
            rope: float | None = None,
            samples: int = BAYES_SAMPLES, notes: list[str] | None = None) -> AcrossData:
    """Every test that the table's size allows; a note for each that it does not. `rope`: by
    default the metric's (rope_for)."""
    rope = rope_for(metrics) if rope is None else rope
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

