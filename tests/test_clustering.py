"""Clustering: resampled stability, label agreement used for scoring only, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

from pipeline.entry import run
from tests.conftest import all_runs, assert_refused_before_any_work, children, store_uri


def test_kmeans_on_iris_agrees_with_the_species(run_cli, workdir):
    done = run_cli("data=iris", "model=kmeans", "model.n_clusters=3")
    assert done.returncode == 0, done.stderr
    assert "test_silhouette:" in done.stdout and "±" in done.stdout
    runs = all_runs(workdir)
    parent = runs[runs["tags.mlflow.runName"] == "kmeans-resample"].iloc[0]
    assert parent["tags.task"] == "clustering"
    assert parent["metrics.test_ari_mean"] >= 0.6
    assert 0.3 < parent["metrics.test_silhouette_mean"] < 1
    assert parent["metrics.test_silhouette_std"] > 0  # a spread over the resamples
    folds = children(runs, parent["run_id"])
    assert len(folds) == 10 and set(folds["status"]) == {"FINISHED"}
    assert folds["metrics.test_stability"].between(0, 1).all()


@pytest.mark.parametrize("data", ["iris", "wine"])
def test_ward_hierarchical_clustering_runs_and_draws(make_cfg, workdir, data):
    from PIL import Image

    result = run(make_cfg(f"data={data}", "model=hierarchical", "model.linkage=ward"))
    assert result.objective == "test_silhouette"
    assert result.folds["test_ari"].mean() > 0.5
    client = MlflowClient(store_uri(workdir))
    logged = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/dendrogram.png", "plots/clusters_pca.png", "plots/scree.png"} <= logged
    for name in ("dendrogram", "clusters_pca"):
        image = Image.open(client.download_artifacts(result.run_id, f"plots/{name}.png",
                                                     str(workdir))).convert("L")
        assert np.asarray(image).std() > 10  # drawn, not blank


def test_choose_k_preset_ranks_k_by_silhouette(run_cli, workdir):
    from pipeline.compare import leaderboard

    done = run_cli("experiment=choose_k", "model.n_clusters=2,3,4", "plots=false")
    assert done.returncode == 0, done.stderr
    _, table = leaderboard(store_uri(workdir), sweep="latest")
    assert sorted(table["params"]) == ["n_clusters=2", "n_clusters=3", "n_clusters=4"]
    assert table["silhouette_mean"].is_monotonic_decreasing
    by_k = table.set_index("params")["inertia_mean"]
    assert by_k["n_clusters=2"] > by_k["n_clusters=3"] > by_k["n_clusters=4"]  # the elbow's curve


def test_labels_score_but_never_fit_the_clusters(make_cfg, workdir, monkeypatch):
    from pipeline import data as data_module

    original = data_module.bundled

    def shuffled_labels(name, task=None):
        dataset = original(name, task)
        labels = dataset.y.sample(frac=1.0, random_state=0).reset_index(drop=True)
        return data_module.Dataset(dataset.X, labels, dataset.task, dataset.name)

    quick = ["data=iris", "model=kmeans", "plots=false", "refit=false"]
    honest = run(make_cfg(*quick))
    monkeypatch.setattr(data_module, "bundled", shuffled_labels)
    shuffled = run(make_cfg(*quick))
    np.testing.assert_array_equal(honest.folds["test_silhouette"],
                                  shuffled.folds["test_silhouette"])
    assert shuffled.folds["test_ari"].mean() < 0.05 < honest.folds["test_ari"].mean()


@pytest.mark.parametrize(("args", "words"), [
    (["model=kmeans", "cv=kfold"], ["cv=kfold", "cv=resample"]),
    (["model=kmeans", "objective=accuracy"], ["objective=accuracy", "metrics.clustering"]),
    (["model=kmeans", "metrics.clustering=[silhouette,accuracy]"], ["accuracy", "silhouette"]),
    (["model=knn", "data.task=clustering"], ["clustering", "kmeans", "hierarchical"]),
    (["model=random_forest", "cv=resample"], ["cv=resample", "clustering"]),
])
def test_clustering_mistakes_fail_before_any_work(run_cli, workdir, args, words):
    assert_refused_before_any_work(run_cli(*args), workdir, words)


def test_unlabelled_csv_is_clustered_without_label_scores(run_cli, workdir):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(240, 4, centers=4, random_state=0)
    import pandas as pd

    pd.DataFrame(X, columns=list("abcd")).to_csv(workdir / "blobs.csv", index=False)
    done = run_cli("data=csv", "data.path=blobs.csv", "data.task=clustering", "model=kmeans",
               "model.n_clusters=4")
    assert done.returncode == 0, done.stderr
    runs = all_runs(workdir)
    parent = runs[runs["tags.mlflow.runName"] == "kmeans-resample"].iloc[0]
    assert parent["metrics.test_silhouette_mean"] > 0.6
    assert parent["metrics.test_stability_mean"] > 0.9
    assert "metrics.test_ari_mean" not in runs or pd.isna(parent["metrics.test_ari_mean"])
