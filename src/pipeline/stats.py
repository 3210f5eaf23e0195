"""Is the difference between two jobs real? Paired tests on the fold scores of two jobs that
were cross-validated on the same folds.

Fold scores of one data set are not independent (training parts overlap), so the plain paired
t-test is over-confident. Both tests here inflate the variance of the per-fold differences by
Nadeau & Bengio's (2003) factor (1/J + n_test/n_train), J the number of folds (all repeats):

- `corrected_t_test`: the corrected resampled t-test, J - 1 degrees of freedom: a two-sided
  p-value and a confidence interval of the mean difference.
- `correlated_bayesian_t_test`: the Bayesian correlated t-test of Benavoli, Corani, Demšar &
  Zaffalon (JMLR 2017): the posterior of the mean difference is Student's t (J - 1 degrees of
  freedom, the mean difference, the same corrected scale), read against a region of practical
  equivalence (rope). `baycomp.CorrelatedTTest` computes the same; it takes n_test/n_train as
  1/(k - 1) for k folds a repeat, which is what `ratio=None` does here.

Differences are `a - b`, in the metric's units; which side is "better" is the caller's to say
(it depends on the metric's direction).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from pipeline.errors import PipelineError


class TTest(NamedTuple):
    """The corrected resampled t-test of `a - b`. With differences equal on every fold (zero
    variance) there is no test: `statistic`, `p_value` are None and `note` says why; the
    interval is then the single value `mean`."""

    mean: float
    std_error: float  # sqrt((1/J + n_test/n_train) * sample variance of the differences)
    statistic: float | None
    df: int
    p_value: float | None
    low: float
    high: float
    confidence: float
    note: str = ""


class Posterior(NamedTuple):
    """The Bayesian correlated t-test of `a - b`: P(a - b < -rope), P(|a - b| <= rope),
    P(a - b > rope). With zero variance the posterior is a point mass at `mean` (as baycomp
    takes it) and `note` says so."""

    mean: float
    scale: float
    df: int
    rope: float
    p_below: float
    p_rope: float
    p_above: float
    note: str = ""

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """The posterior density of the mean difference at `x` (zero variance: no density)."""
        from scipy import stats

        if self.scale == 0:
            return np.zeros_like(np.asarray(x, dtype=float))
        return stats.t.pdf(x, self.df, self.mean, self.scale)

    def interval(self, mass: float = 0.99) -> tuple[float, float]:
        """The central interval holding `mass` of the posterior."""
        from scipy import stats

        if self.scale == 0:
            return self.mean, self.mean
        return tuple(stats.t.interval(mass, self.df, self.mean, self.scale))


def differences(a: np.ndarray, b: np.ndarray, runs: int = 1) -> np.ndarray:
    """`a - b` fold by fold, checked: equal lengths, two folds or more, finite, and a whole
    number of folds per repeat."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise PipelineError(f"paired scores must be two equal-length lists, got shapes "
                            f"{a.shape} and {b.shape}")
    if len(a) < 2:
        raise PipelineError(f"{len(a)} fold(s): a paired test needs two folds or more "
                            "(use cv=kfold or cv=repeated_kfold)")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise PipelineError("a fold score is NaN or infinite; a paired test needs a score on "
                            "every fold of both jobs")
    if runs < 1 or len(a) % runs:
        raise PipelineError(f"{len(a)} folds do not split into {runs} repeat(s)")
    return a - b


def _ratio(n_folds: int, runs: int, ratio: float | None) -> float:
    """n_test/n_train; None: 1/(k - 1) for k folds a repeat (k-fold's ratio, baycomp's)."""
    if ratio is None:
        per_repeat = n_folds // runs
        if per_repeat < 2:
            raise PipelineError(f"one fold a repeat ({runs} repeats): give n_test/n_train "
                                "(the folds' sizes) for a corrected test")
        return 1 / (per_repeat - 1)
    if not ratio > 0:
        raise PipelineError(f"n_test/n_train must be positive, got {ratio}")
    return float(ratio)


def _corrected(d: np.ndarray, runs: int, ratio: float | None) -> tuple[float, float, int]:
    """(mean, corrected variance of the mean, degrees of freedom) of the differences `d`."""
    n = len(d)
    variance = float(np.var(d, ddof=1)) * (1 / n + _ratio(n, runs, ratio))
    return float(np.mean(d)), variance, n - 1


def corrected_t_test(a: np.ndarray, b: np.ndarray, ratio: float | None = None, runs: int = 1,
                     confidence: float = 0.95) -> TTest:
    """Nadeau & Bengio's corrected resampled t-test of the fold scores `a` against `b` (same
    folds, same order): t = mean(d) / sqrt((1/J + ratio) * var(d)), J - 1 degrees of freedom,
    two-sided. `ratio` is n_test/n_train (None: 1/(k - 1), k = folds per repeat)."""
    from scipy import stats

    d = differences(a, b, runs)
    mean, variance, df = _corrected(d, runs, ratio)
    if variance == 0:
        return TTest(mean, 0.0, None, df, None, mean, mean, confidence, _constant(mean))
    se = math.sqrt(variance)
    t = mean / se
    p = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return TTest(mean, se, t, df, p, mean - half, mean + half, confidence)


def correlated_bayesian_t_test(a: np.ndarray, b: np.ndarray, rope: float = 0.0,
                               ratio: float | None = None, runs: int = 1) -> Posterior:
    """Benavoli et al.'s Bayesian correlated t-test of the fold scores `a` against `b`: the
    posterior of the mean difference is t(J - 1, mean(d), sqrt((1/J + ratio) * var(d))).
    Equals `baycomp.CorrelatedTTest(b, a, rope, runs)` (baycomp's difference is its second
    argument minus its first) when `ratio` is None."""
    from scipy import stats

    if rope < 0:
        raise PipelineError(f"the rope is a width, at least 0; got {rope}")
    d = differences(a, b, runs)
    mean, variance, df = _corrected(d, runs, ratio)
    if variance == 0:
        below, above = float(mean < -rope), float(mean > rope)
        return Posterior(mean, 0.0, df, rope, below, 1 - below - above, above, _constant(mean))
    scale = math.sqrt(variance)
    below = float(stats.t.cdf(-rope, df, mean, scale))
    above = float(stats.t.sf(rope, df, mean, scale))
    return Posterior(mean, scale, df, rope, below, max(0.0, 1 - below - above), above)


def _constant(mean: float) -> str:
    if mean == 0:
        return "the fold scores are identical: no test, no difference"
    return (f"the difference is {mean:+.6g} on every fold (zero variance): no t-test; the "
            "posterior is that single value")
