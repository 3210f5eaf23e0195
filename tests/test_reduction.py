"""Dimensionality reduction inside each fold: PCA and LDA after scaling, never seeing test rows."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from pipeline import cv, preprocessing
from pipeline.entry import describe, run
from tests.conftest import all_runs, assert_refused_before_any_work, children, store_uri


@pytest.mark.slow
def test_pca_keeping_95_percent_keeps_softmax_accuracy_on_digits(make_cfg, workdir):
    plain = run(make_cfg("data=digits", "model=softmax", "plots=false", "refit=false"))
    reduced = run(make_cfg("data=digits", "model=softmax", "preprocess.reduce=pca",
                           "preprocess.n_components=0.95", "plots=false", "refit=false"))
    assert abs(reduced.score - plain.score) <= 0.02
    kept = reduced.folds["n_components"]
    assert (kept < 64).all() and (kept > 10).all()  # digits' 64 pixels → a few dozen components
    assert (reduced.folds["explained_variance"] >= 0.95).all()
    assert (reduced.folds["test_reconstruction_mse"] > 0).all()
    assert (reduced.folds["test_reconstruction_mae"] > 0).all()
    [fold_id, *_] = children(all_runs(workdir), reduced.run_id)["run_id"]
    curve = MlflowClient(store_uri(workdir)).get_metric_history(fold_id,
                                                               "explained_variance_ratio")
    assert len(curve) == int(kept.iloc[0])
    assert sorted(m.step for m in curve) == list(range(1, len(curve) + 1))


def test_lda_with_knn_on_wine_runs(make_cfg):
    result = run(make_cfg("data=wine", "model=knn", "preprocess.reduce=lda", "plots=false"))
    assert (result.folds["n_components"] == 2).all()  # three classes: at most two directions
    assert result.score > 0.9


@pytest.mark.parametrize("reduce", ["pca", "lda"])
def test_reduction_never_sees_the_test_fold(make_cfg, reduce):
    """The fitted components are those of a fit on the fold's training part alone."""
    from sklearn.base import clone

    cfg = make_cfg("data=wine", f"preprocess.reduce={reduce}", "preprocess.n_components=2")
    job, dataset, _ = describe(cfg)
    template = preprocessing.build(dataset, reduce=reduce, n_components=2)
    for fold in cv.split(job.scheme, dataset)[:2]:
        X_train, y_train = dataset.X.iloc[fold.train], dataset.y.iloc[fold.train]
        fitted = clone(template).fit(X_train, y_train)
        scaled = fitted.named_steps["columns"].transform(X_train)
        alone = (PCA(2, random_state=0) if reduce == "pca"
                 else LinearDiscriminantAnalysis(n_components=2)).fit(scaled, y_train)
        test_rows = dataset.X.iloc[fold.test]
        np.testing.assert_allclose(fitted.transform(test_rows),
                                   alone.transform(fitted.named_steps["columns"]
                                                   .transform(test_rows)), atol=1e-10)


@pytest.mark.parametrize(("args", "words"), [
    (["data=wine", "preprocess.reduce=lda", "preprocess.n_components=3"],
     ["preprocess.n_components=3", "classes - 1 = 2"]),
    (["data=diabetes", "preprocess.reduce=lda"], ["reduce=lda", "regression", "reduce=pca"]),
    (["data=iris", "model=kmeans", "preprocess.reduce=lda"], ["reduce=lda", "clustering"]),
    (["preprocess.reduce=pca", "preprocess.n_components=-1"], ["preprocess.n_components"]),
    (["preprocess.reduce=umap"], ["preprocess.reduce='umap'", "pca"]),
])
def test_reduction_mistakes_fail_before_any_work(run_cli, workdir, args, words):
    assert_refused_before_any_work(run_cli(*args), workdir, words)
