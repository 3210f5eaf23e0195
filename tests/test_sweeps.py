"""Sweeps and the leaderboard that ranks their jobs."""

from __future__ import annotations

import pandas as pd
from tests.conftest import all_runs, parents, store_uri

from pipeline import compare


def test_grid_sweep_and_leaderboard(cli, workdir):
    done = cli("-m", "data=wine", "model=knn,decision_tree", "cv.n_splits=3,4")
    assert done.returncode == 0, done.stderr
    top = parents(all_runs(workdir))
    assert len(top) == 4 and set(top["status"]) == {"FINISHED"}
    assert top["tags.sweep"].nunique() == 1
    assert sorted(top["tags.job"].astype(int)) == [0, 1, 2, 3]

    experiment, table = compare.leaderboard(store_uri(workdir), sweep="latest")
    assert experiment == "wine" and len(table) == 4
    means = table["accuracy_mean"].tolist()
    assert means == sorted(means, reverse=True)
    assert set(table["params"]) == {"cv.n_splits=3", "cv.n_splits=4"}
    expected_best = top["metrics.test_accuracy_mean"].max()
    assert table.iloc[0]["accuracy_mean"] == expected_best

    printed = compare.main(["--uri", store_uri(workdir), "--format", "csv"])
    assert printed == 0


def test_leaderboard_command_formats(cli, workdir, capsys):
    assert cli("data=diabetes", "model=ols").returncode == 0
    assert cli("data=diabetes", "model=knn").returncode == 0
    assert compare.main(["--uri", store_uri(workdir), "-e", "diabetes",
                         "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | cv | params | r2 |")
    assert lines[2].startswith("| ols |")  # OLS beats KNN on diabetes' R²
    assert compare.main(["--uri", store_uri(workdir), "-e", "diabetes", "--metric", "mse",
                         "--format", "csv"]) == 0
    from io import StringIO

    table = pd.read_csv(StringIO(capsys.readouterr().out))
    assert table["mse_mean"].is_monotonic_increasing  # lower error first
    assert compare.main(["--uri", store_uri(workdir), "-e", "nope"]) == 1
    assert "no experiment 'nope'" in capsys.readouterr().err
