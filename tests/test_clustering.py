"""Clustering: resampled stability, label agreement used for scoring only, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import all_runs, children

from pipeline.runner import run


def test_kmeans_on_iris_agrees_with_the_species(cli, workdir):
    done = cli("data=iris", "model=kmeans", "model.n_clusters=3")
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
def test_ward_hierarchical_clustering_runs(make_cfg, data):
    result = run(make_cfg(f"data={data}", "model=hierarchical", "model.linkage=ward"))
    assert result.objective == "test_silhouette"
    assert result.folds["test_ari"].mean() > 0.5


def test_labels_score_but_never_fit_the_clusters(make_cfg, workdir, monkeypatch):
    from pipeline import data as data_module

    original = data_module.bundled

    def shuffled_labels(name, task=None):
        dataset = original(name, task)
        labels = dataset.y.sample(frac=1.0, random_state=0).reset_index(drop=True)
        return data_module.Dataset(dataset.X, labels, dataset.task, dataset.name)

    honest = run(make_cfg("data=iris", "model=kmeans"))
    monkeypatch.setattr(data_module, "bundled", shuffled_labels)
    shuffled = run(make_cfg("data=iris", "model=kmeans"))
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
def test_clustering_mistakes_fail_before_any_work(cli, workdir, args, words):
    done = cli(*args)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(word in line for word in words), line
    assert all_runs(workdir).empty
