"""Figures a person looks at: per-fold and parent-run PNGs that open and show something."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image
from sklearn import datasets

from pipeline import plots, tracking
from pipeline.entry import run
from pipeline.errors import PipelineError
from tests.conftest import all_runs, children, store_uri


def assert_picture(path: Path) -> None:
    """A PNG that opens, has a real size and is not one flat colour."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert min(pixels.shape) >= 200, f"{path.name} is only {pixels.shape}"
    assert pixels.std() > 10, f"{path.name} looks blank"


def logged_plots(workdir: Path, run_id: str) -> dict[str, Path]:
    """The run's `plots/*.png`, downloaded: {file name: local path}."""
    client = MlflowClient(store_uri(workdir))
    names = [a.path for a in client.list_artifacts(run_id, "plots")]
    if not names:
        return {}
    local = Path(client.download_artifacts(run_id, "plots", str(workdir / "downloads" / run_id)))
    return {path.name: path for path in local.glob("*.png")}


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Every figure a job logs, by artifact path, while still logging it."""
    figures: dict[str, list] = {}
    log_figure = tracking.Tracker.log_figure

    def keep(self, run_id, figure, path):
        figures.setdefault(path, []).append(figure)
        log_figure(self, run_id, figure, path)

    monkeypatch.setattr(tracking.Tracker, "log_figure", keep)
    return figures


def test_decision_tree_job_logs_fold_and_parent_figures(make_cfg, workdir):
    result = run(make_cfg("data=breast_cancer", "model=decision_tree", "refit=false"))
    folds = children(all_runs(workdir), result.run_id)
    assert len(folds) == 5
    for run_id in folds["run_id"]:
        figures = logged_plots(workdir, run_id)
        assert set(figures) == {"confusion_matrix.png", "roc.png", "pr.png"}
        for path in figures.values():
            assert_picture(path)

    figures = logged_plots(workdir, result.run_id)
    assert {"confusion_matrix.png", "feature_importance.png", "tree.png", "roc.png",
            "scores.png"} <= set(figures)
    for path in figures.values():
        assert_picture(path)
    # Importance by the data set's own feature names, every fold's value kept.
    client = MlflowClient(store_uri(workdir))
    importance = pd.read_csv(client.download_artifacts(
        result.run_id, "feature_importance.csv", str(workdir)), index_col="feature")
    names = datasets.load_breast_cancer().feature_names
    assert set(importance.index) == set(names)
    assert list(importance.columns) == [f"fold-{i}" for i in range(1, 6)]
    assert importance.sum().to_numpy() == pytest.approx(np.ones(5))  # impurity sums to 1


@pytest.mark.slow
def test_mlp_learning_curves_have_one_line_per_fold(make_cfg, workdir, drawn):
    result = run(make_cfg("data=iris", "model=mlp", "cv.n_splits=3", "trainer.max_epochs=5",
                          "refit=false"))
    [figure] = drawn["plots/learning_curves.png"]
    panels = {ax.get_title(): ax for ax in figure.axes}
    assert set(panels) == {"train_loss", "val_loss"}
    for ax in panels.values():
        assert len(ax.lines) == 3  # one per fold
        assert all(len(line.get_xdata()) == 5 for line in ax.lines)  # one point per epoch
    assert_picture(logged_plots(workdir, result.run_id)["learning_curves.png"])


def test_regression_job_logs_predicted_vs_actual_and_residuals(make_cfg, workdir):
    result = run(make_cfg("data=diabetes", "model=random_forest", "model.n_estimators=20",
                          "cv.n_splits=3", "refit=false"))
    for run_id in children(all_runs(workdir), result.run_id)["run_id"]:
        figures = logged_plots(workdir, run_id)
        assert set(figures) == {"predicted_vs_actual.png", "residuals.png"}
        for path in figures.values():
            assert_picture(path)
    parent = logged_plots(workdir, result.run_id)
    assert {"feature_importance.png", "scores.png"} <= set(parent)
    assert "confusion_matrix.png" not in parent and "roc.png" not in parent


def test_plots_false_logs_no_images(make_cfg, workdir):
    """What figures cost is measured in benchmarks/bench_cv.py, not asserted here."""
    result = run(make_cfg("data=breast_cancer", "model=decision_tree", "refit=false",
                          "plots=false"))
    client = MlflowClient(store_uri(workdir))
    for run_id in [result.run_id, *children(all_runs(workdir), result.run_id)["run_id"]]:
        assert not client.list_artifacts(run_id, "plots")
        assert not [a for a in client.list_artifacts(run_id) if a.path.endswith(".png")]


def test_plots_list_picks_the_figures(make_cfg, workdir):
    result = run(make_cfg("data=iris", "model=knn", "refit=false", "plots=[confusion_matrix]"))
    assert set(logged_plots(workdir, result.run_id)) == {"confusion_matrix.png"}
    fold_1 = children(all_runs(workdir), result.run_id)["run_id"].iloc[0]
    assert set(logged_plots(workdir, fold_1)) == {"confusion_matrix.png"}
    with pytest.raises(PipelineError, match="plots names unknown figure.*confusion_matrix"):
        plots.selected(["confusion", "roc"])


def test_permutation_importance_by_original_column(make_cfg, workdir):
    """A model without impurity importance: permutation importance on the test part, one-hot
    columns of a text column reported as that column."""
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({"size": rng.normal(0, 1, n), "noise": rng.normal(0, 1, n),
                          "city": rng.choice(["paris", "lyon", "nice"], n)})
    frame["label"] = np.where(frame["size"] + (frame["city"] == "lyon") * 2 > 0.5, "yes", "no")
    frame.to_csv(workdir / "towns.csv", index=False)
    result = run(make_cfg("data=csv", "data.path=towns.csv", "data.target=label", "model=knn",
                          "cv.n_splits=3", "refit=false", "plots=[importance]"))
    client = MlflowClient(store_uri(workdir))
    importance = pd.read_csv(client.download_artifacts(
        result.run_id, "feature_importance.csv", str(workdir)), index_col="feature")
    assert set(importance.index) == {"size", "noise", "city"}
    mean = importance.mean(axis=1)
    assert mean["size"] > mean["noise"] and mean["city"] > mean["noise"]
    assert set(logged_plots(workdir, result.run_id)) == {"feature_importance.png"}


def test_one_hot_names_map_back_to_their_column():
    names = ["age", "city_paris", "city_code_7", "city_infrequent_sklearn", "zip"]
    assert plots.original_columns(names, ["age", "city", "city_code", "zip"]) == [
        "age", "city", "city_code", "city", "zip"]
