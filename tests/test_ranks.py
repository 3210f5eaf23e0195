"""Many data sets: a sweep's models ranked per data set, Friedman's test, Nemenyi's critical
difference (Demšar 2006) and the Bayesian signed-rank test, checked against scipy directly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import friedmanchisquare, rankdata, studentized_range

from pipeline import compare
from pipeline.compare import across_data, ranks

# Demšar (2006), table 5(a): q_0.05 of the two-tailed Nemenyi test for k = 2..10 models.
DEMSAR_Q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]


def record(uri: str, scores: pd.DataFrame, *, sweep: str = "multirun/a",
           metric: str = "accuracy", experiment: str | None = None) -> None:
    """Jobs as a sweep records them: a parent run per (data set, model) in the data set's
    experiment (or `experiment`), tagged as the runner tags them, with its metric's mean and a
    fold run below it."""
    from pipeline.tracking import connect

    for data_set, row in scores.iterrows():
        tracker = connect(uri, experiment or data_set)
        for job, (model, score) in enumerate(row.items()):
            tags = {"model": model, "data": data_set, "cv": "kfold", "task": "classification",
                    "objective": f"test_{metric}", "sweep": sweep, "job": str(job)}
            with tracker.run(f"{model}-kfold", tags=tags,
                             params={"model.name": model, "seed": 42}) as parent:
                tracker.log_metrics(parent, {f"test_{metric}_mean": score,
                                             f"test_{metric}_std": 0.01})
                with tracker.run("fold-0", parent=parent) as fold:
                    tracker.log_metrics(fold, {f"test_{metric}": score})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[str, pd.DataFrame]:
    """Three models on four data sets, with a tie on wine; an older sweep, and a comparison run
    that carries the sweep's tag, that no listing may count. One store for the module: the
    tests only add comparison runs to it, which every listing leaves out."""
    scores = pd.DataFrame({"knn": [0.95, 0.96, 0.93, 0.97],
                           "random_forest": [0.96, 0.98, 0.96, 0.97],
                           "naive_bayes": [0.94, 0.96, 0.93, 0.80]},
                          index=["iris", "wine", "breast_cancer", "digits"])
    uri = f"sqlite:///{tmp_path_factory.mktemp('ranks') / 'mlflow.db'}"
    record(uri, scores.iloc[:2] * 0.5, sweep="multirun/old")
    record(uri, scores)
    from pipeline.tracking import connect

    tracker = connect(uri, "iris")
    with tracker.run("across-data", tags={"kind": "comparison", "sweep": "multirun/a",
                                          "model": "knn", "data": "iris"}) as run:
        tracker.log_metrics(run, {"test_accuracy_mean": 0.0})
    return uri, scores


def test_ranks_friedman_and_cd_equal_a_direct_scipy_computation(sweep):
    uri, scores = sweep
    result = across_data.across_data(uri, "latest")
    assert result.sweep == "multirun/a"
    assert result.experiments == sorted(scores.index)
    found = result.scores.loc[scores.index, scores.columns]
    assert np.allclose(found, scores, atol=0, rtol=1e-12)  # the newest sweep, no comparison run

    expected_ranks = rankdata(-scores.to_numpy(), axis=1, method="average")
    assert np.array_equal(result.ranks.loc[scores.index, scores.columns], expected_ranks)
    assert result.ranks.loc["wine", "knn"] == result.ranks.loc["wine", "naive_bayes"] == 2.5  # tie
    expected_average = pd.Series(expected_ranks.mean(axis=0), index=scores.columns)
    assert result.average_ranks.to_dict() == pytest.approx(expected_average.to_dict(), abs=1e-12)
    assert list(result.average_ranks.index)[0] == "random_forest"

    statistic, p = friedmanchisquare(*(scores[c] for c in scores.columns))
    assert result.friedman == pytest.approx((statistic, p), rel=1e-12)
    k, n = 3, 4
    q = studentized_range.ppf(0.95, k, np.inf) / math.sqrt(2)
    assert result.critical_difference == pytest.approx(q * math.sqrt(k * (k + 1) / (6 * n)),
                                                       rel=1e-12)
    assert result.bayes is None  # 4 data sets: too few, and said
    assert any("Bayesian signed-rank test not run" in note and "(have 4)" in note
               for note in result.notes)


def test_demsar_critical_difference():
    """CD = q_α · sqrt(k(k+1)/6N), q_α from the studentized range over sqrt(2): Demšar's table."""
    for k, q in enumerate(DEMSAR_Q05, start=2):
        assert ranks.critical_difference(k, 1) / math.sqrt(k * (k + 1) / 6) == pytest.approx(
            q, abs=1e-3)  # the table: 3 decimals
    # Demšar's worked example: 4 algorithms on 14 data sets, CD = 2.569·sqrt(4·5/(6·14)) = 1.25.
    assert ranks.critical_difference(4, 14) == pytest.approx(1.25, abs=5e-3)


def test_lower_is_better_metrics_rank_the_smallest_first():
    scores = pd.DataFrame({"ols": [10.0, 20.0, 30.0], "knn": [12.0, 25.0, 29.0],
                           "svm": [15.0, 30.0, 40.0]}, index=["a", "b", "c"])
    metrics = pd.Series("test_mse", index=scores.index)
    result = ranks.compare(scores, metrics)
    assert np.array_equal(result.ranks, rankdata(scores.to_numpy(), axis=1))
    assert result.friedman == pytest.approx(
        friedmanchisquare(*(scores[c] for c in scores.columns)), rel=1e-12)


def test_bayesian_signed_rank_test_over_enough_data_sets():
    """baycomp's test, oriented so that A is the better model: a model better by 0.05 on each
    of 6 data sets is better; a copy of a model is equivalent to it; for mse, lower wins."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.7, 0.9, size=6)
    scores = pd.DataFrame({"strong": base + 0.05, "weak": base, "copy": base},
                          index=[f"d{i}" for i in range(6)])
    accuracy = pd.Series("test_accuracy", index=scores.index)
    table = ranks.compare(scores, accuracy, samples=2000).bayes.set_index(["A", "B"])
    assert table.loc[("strong", "weak"), "P(A better)"] > 0.95
    pair = table.loc[("weak", "copy")] if ("weak", "copy") in table.index else \
        table.loc[("copy", "weak")]
    assert pair["P(equivalent)"] == 1.0

    mse = pd.Series("test_mse", index=scores.index)
    table = ranks.compare(scores, mse, samples=2000).bayes.set_index(["A", "B"])
    assert table.loc[("weak", "strong"), "P(A better)"] > 0.95  # a lower error is better
    # An error in the data's units has no default rope (as with --against): nothing is
    # "equivalent", not even a copy.
    assert (table["P(equivalent)"] == 0).all()


def test_too_few_models_or_data_sets_for_friedman_is_said():
    two = pd.DataFrame({"a": [0.9, 0.8], "b": [0.7, 0.6], "c": [0.5, 0.4]}, index=["x", "y"])
    result = ranks.compare(two, pd.Series("test_accuracy", index=two.index))
    assert result.friedman is None and result.critical_difference is None
    assert "Friedman's test not run: it needs at least 3 data sets (have 2)" in result.notes
    models = two[["a", "b"]].reindex(["x", "y"])
    result = ranks.compare(models, pd.Series("test_accuracy", index=two.index))
    assert result.friedman is None
    assert any(note.startswith("Friedman's test not run: it needs at least 3 models")
               for note in result.notes)


def test_one_data_set_is_one_clear_line(sweep, capsys):
    """The jobs of one experiment (iris: two sweeps, the newest job of each model counts)."""
    uri, _ = sweep
    assert compare.main(["--uri", uri, "--across-data", "-e", "iris"]) == 1
    printed = capsys.readouterr()
    [line] = printed.err.strip().splitlines()
    assert line.startswith("error: 1 data set (iris); --across-data needs at least 2")
    assert printed.out == ""
    import mlflow

    mlflow.set_tracking_uri(uri)
    logged = mlflow.search_runs(search_all_experiments=True, output_format="pandas",
                                filter_string="tags.comparison = 'across-data'")
    assert logged.empty  # nothing logged for a refused comparison


def test_the_command_prints_the_comparison_and_logs_the_figure(sweep, workdir, capsys):
    uri, scores = sweep
    assert compare.main(["--uri", uri, "--across-data", "--sweep", "multirun/a"]) == 0
    out = capsys.readouterr().out
    statistic, p = friedmanchisquare(*(scores[c] for c in scores.columns))
    assert f"Friedman: chi2={statistic:.4f}, p={p:.4g}" in out
    assert "average rank:" in out and "CD=" in out

    import mlflow

    mlflow.set_tracking_uri(uri)
    logged = mlflow.search_runs(search_all_experiments=True, output_format="pandas",
                                filter_string="tags.comparison = 'across-data'")
    [run_id] = logged["run_id"]
    assert logged["tags.kind"].iloc[0] == "comparison" and logged["status"].iloc[0] == "FINISHED"
    assert logged["metrics.friedman_p"].iloc[0] == pytest.approx(p, rel=1e-12)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"critical_difference.png", "scores.csv", "ranks.csv"} <= artifacts
    saved = list((workdir / "outputs" / "comparisons").glob("critical_difference-*.png"))
    assert len(saved) == 1 and saved[0].read_bytes()[:4] == b"\x89PNG"
    # Comparison runs are no jobs: a second look finds the same 12, and the leaderboard still
    # shows the newest job's experiment without them.
    _, jobs = across_data.sweep_jobs(uri, "latest")
    assert len(jobs) == 12 and "comparison" not in set(jobs.get("tags.kind", pd.Series()))
    experiment, table = compare.leaderboard(uri)
    assert experiment == "digits" and len(table) == 3
    experiment, table = compare.leaderboard(uri, "iris", sweep="latest")
    assert len(table) == 3 and table["accuracy_mean"].min() > 0.5  # not the fake comparison


@pytest.mark.parametrize("fmt", ["csv", "markdown"])
def test_a_leaderboard_format_with_across_data_is_refused(fmt, capsys):
    with pytest.raises(SystemExit) as stopped:
        compare.main(["--across-data", "--format", fmt, "--uri", "sqlite:///unused.db"])
    assert stopped.value.code == 2
    assert f"--format {fmt} is for the leaderboard" in capsys.readouterr().err
