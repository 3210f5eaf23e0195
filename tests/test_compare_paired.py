"""Is A really better than B? The paired tests of `pipeline.stats` against scipy and baycomp,
the fold digest that decides which jobs pair, and `pipeline.compare --against` on real jobs."""

from __future__ import annotations

import io
from types import SimpleNamespace

import baycomp
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from pipeline import compare, cv, entry, stats
from tests.conftest import all_runs, parents, store_uri

# Fixed fold scores: 2 repeats x 5 folds of two classifiers.
A = np.array([0.91, 0.88, 0.93, 0.90, 0.87, 0.92, 0.89, 0.90, 0.94, 0.86])
B = np.array([0.89, 0.88, 0.90, 0.91, 0.85, 0.90, 0.88, 0.87, 0.93, 0.86])


def direct(a: np.ndarray, b: np.ndarray, ratio: float) -> tuple[float, float, int]:
    """Nadeau & Bengio's corrected mean, standard error and degrees of freedom, spelled out."""
    d = a - b
    n = len(d)
    return d.mean(), np.sqrt(np.var(d, ddof=1) * (1 / n + ratio)), n - 1


@pytest.mark.parametrize("runs", [1, 2])
def test_both_tests_equal_scipy_and_baycomp(runs):
    a, b = A, B
    ratio = 1 / (len(a) // runs - 1)  # k-fold's n_test/n_train, as baycomp takes it
    mean, se, df = direct(a, b, ratio)

    test = stats.corrected_t_test(a, b, ratio, runs)
    assert test.df == df and test.statistic == pytest.approx(mean / se, abs=1e-9)
    assert test.p_value == pytest.approx(2 * sps.t.sf(abs(mean / se), df), abs=1e-9)
    # the corrected t is the plain paired t shrunk by sqrt(1 + J * n_test/n_train)
    plain = sps.ttest_rel(a, b).statistic
    assert test.statistic == pytest.approx(plain / np.sqrt(1 + len(a) * ratio), abs=1e-9)
    low, high = sps.t.interval(0.95, df, mean, se)
    assert (test.low, test.high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))
    # baycomp's posterior (rope 0) is the same t: its one-sided masses give the two-sided p,
    # its interval the confidence interval
    left, right = baycomp.two_on_single(b, a, rope=0, runs=runs)
    assert test.p_value == pytest.approx(2 * min(left, right), abs=1e-9)
    reference = baycomp.CorrelatedTTest(b, a, rope=0, runs=runs)
    low, high = sps.t.interval(0.95, reference.df, reference.mean, np.sqrt(reference.var))
    assert (test.low, test.high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))

    for rope in (0.005, 0.01, 0.05):
        posterior = stats.correlated_bayesian_t_test(a, b, rope, ratio, runs)
        expected = (sps.t.cdf(-rope, df, mean, se), sps.t.sf(rope, df, mean, se))
        assert posterior.p_below == pytest.approx(expected[0], abs=1e-9)
        assert posterior.p_above == pytest.approx(expected[1], abs=1e-9)
        got = (posterior.p_below, posterior.p_rope, posterior.p_above)
        assert got == pytest.approx(baycomp.two_on_single(b, a, rope=rope, runs=runs), abs=1e-9)
        # ratio=None is baycomp's own choice of n_test/n_train, 1/(k - 1)
        assert stats.correlated_bayesian_t_test(a, b, rope, runs=runs) == posterior


def test_identical_or_constant_differences_are_said_not_computed():
    for rope in (0.001, 0.01, 0.1):
        same = stats.correlated_bayesian_t_test(A, A.copy(), rope)
        assert same.p_rope == 1 and same.p_below == same.p_above == 0
        assert (same.p_below, same.p_rope, same.p_above) == baycomp.two_on_single(A, A, rope)
    test = stats.corrected_t_test(A, A.copy())
    assert test.p_value is None and test.statistic is None and "identical" in test.note
    shifted = stats.corrected_t_test(A + 0.02, A)  # better by 0.02 on every fold
    assert shifted.p_value is None and "zero variance" in shifted.note
    assert (shifted.low, shifted.high) == pytest.approx((0.02, 0.02))
    posterior = stats.correlated_bayesian_t_test(A + 0.02, A, 0.01)
    assert (posterior.p_below, posterior.p_rope, posterior.p_above) == (0, 0, 1)
    assert baycomp.two_on_single(A, A + 0.02, 0.01) == pytest.approx((0, 0, 1))
    with pytest.raises(stats.PipelineError, match="two folds or more"):
        stats.corrected_t_test(A[:1], B[:1])


def test_fold_digest_names_the_rows_of_every_fold():
    from sklearn.model_selection import StratifiedKFold

    X, y = np.zeros((20, 1)), np.array([0, 1] * 10)

    def planned(seed: int) -> cv.Folds:
        splitter = StratifiedKFold(4, shuffle=True, random_state=seed)
        return cv.Folds([cv.Fold(*parts) for parts in splitter.split(X, y)])

    digest = planned(0).digest("toy", 20)
    assert len(digest) == 16 and digest == planned(0).digest("toy", 20)
    assert planned(1).digest("toy", 20) != digest
    assert planned(0).digest("other", 20) != digest
    assert planned(0).digest("toy", 21) != digest
    swapped = planned(0)
    first, second = swapped[0], swapped[1]
    swapped[0], swapped[1] = second, first  # the same folds in another order
    assert swapped.digest("toy", 20) != digest


def test_unpaired_jobs_are_refused_in_one_line_saying_why():
    def run(run_id: str, params: dict | None = None, **tags: str) -> SimpleNamespace:
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id),
                               data=SimpleNamespace(tags={"model": "knn", **tags},
                                                    params=params or {}))

    reason = compare.unpaired_reason(run("old"), run("new", folds="abc"))
    assert "run old records no fold digest" in reason and "\n" not in reason
    assert compare.unpaired_reason(run("a", folds="abc"), run("b", folds="abc")) is None
    five = {"cv.n_splits": "5", "cv.n_jobs": "1", "seed": "42", "cv.random_state": "42"}
    ten = {**five, "cv.n_splits": "10", "cv.n_jobs": "2"}  # n_jobs: how folds run, not which
    reason = compare.unpaired_reason(run("a", ten, folds="x", data="wine", cv="kfold"),
                                     run("b", five, folds="y", data="iris", cv="kfold"))
    assert "(data wine vs iris, cv.n_splits 10 vs 5)" in reason and "\n" not in reason
    same = compare.unpaired_reason(run("a", five, folds="x"), run("b", five, folds="y"))
    assert "did the data change?" in same


def test_against_a_sweep_tells_a_real_difference_from_noise(make_cfg, workdir, capsys):
    """On iris: a depth-1 tree against a random forest is a real difference; the same forest
    with another model seed (`model.random_state`, the folds kept by `seed`) is not; a job
    on other folds (another `seed`) is refused in one line."""
    quick = ("data=iris", "plots=false", "refit=false")
    forest = ("model=random_forest", "model.n_estimators=10")
    reference = entry.run(make_cfg(*quick, *forest))
    stump = entry.run(make_cfg(*quick, "model=decision_tree", "model.max_depth=1"))
    reseeded = entry.run(make_cfg(*quick, *forest, "model.random_state=7"))
    other_folds = entry.run(make_cfg(*quick, *forest, "seed=7"))
    jobs = parents(all_runs(workdir)).set_index("run_id")
    assert set(jobs["tags.fold_repeats"]) == {"1"}
    assert jobs.loc[stump.run_id, "tags.folds"] == jobs.loc[reference.run_id, "tags.folds"]
    assert jobs.loc[other_folds.run_id, "tags.folds"] != jobs.loc[reference.run_id, "tags.folds"]

    uri = store_uri(workdir)
    assert compare.main(["--uri", uri, "--against", reference.run_id, "--format", "csv"]) == 0
    printed = capsys.readouterr()
    table = pd.read_csv(io.StringIO(printed.out)).set_index("run_id")
    # the stump is worse, and both tests say so; the expected values come from the jobs'
    # own fold scores through scipy
    a, b = stump.folds["test_accuracy"].to_numpy(), reference.folds["test_accuracy"].to_numpy()
    mean, se, df = direct(a, b, 30 / 120)
    row = table.loc[stump.run_id]
    assert row["vs_diff"] == pytest.approx(mean, abs=1e-9) and mean < -0.2
    assert row["vs_p"] == pytest.approx(2 * sps.t.sf(abs(mean / se), df), abs=1e-9)
    assert row["vs_p"] < 0.01 and row["p_worse"] > 0.99 and row["vs_ci_high"] < 0
    # another model seed on the same folds: no test calls it a difference
    row = table.loc[reseeded.run_id]
    assert pd.isna(row["vs_p"]) or row["vs_p"] > 0.05
    assert row["p_better"] < 0.95 and row["p_worse"] < 0.95
    # other folds: refused, in one line that says why
    assert table.loc[other_folds.run_id, "vs_note"] == "not paired"
    assert pd.isna(table.loc[other_folds.run_id, "vs_diff"])
    [refused] = [line for line in printed.err.splitlines() if line.startswith("not paired")]
    assert other_folds.run_id in refused and "seed 7 vs 42" in refused

    # the comparison is logged as its own run, with the figure, and is not a job
    runs = parents(all_runs(workdir))
    [logged] = runs[runs.get("tags.kind") == "comparison"]["run_id"]
    assert runs.set_index("run_id").loc[logged, "tags.against"] == reference.run_id
    import mlflow

    names = {f.path for f in mlflow.MlflowClient(uri).list_artifacts(logged)}
    assert {"posterior.png", "comparison.csv"} <= names
    assert len(compare.leaderboard(uri)[1]) == 4
    assert compare.main(["--uri", uri, "--against", "svm"]) == 1
    assert "no job of that run id or model" in capsys.readouterr().err
    # against the job on other folds nothing pairs: refused, one line, nothing logged
    assert compare.main(["--uri", uri, "--against", other_folds.run_id]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: none of the 3 other jobs pairs") and "seed 42 vs 7" in line
    assert (parents(all_runs(workdir)).get("tags.kind") == "comparison").sum() == 1
