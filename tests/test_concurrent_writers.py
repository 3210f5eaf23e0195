"""Eight jobs writing to one fresh SQLite store at once (Hydra's joblib launcher): every run,
metric and artifact arrives, and no job fails on a locked database."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tests.conftest import all_runs, children, parents, store_uri

METRICS = ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc")


@pytest.mark.slow
def test_eight_jobs_at_once_on_one_sqlite_store(cli, workdir):
    done = cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8", "data=iris",
               "model=knn,decision_tree,naive_bayes,random_forest", "seed=1,2", "cv.n_splits=3",
               "++plots=false", "++refit=false")  # set whether or not the keys exist
    assert done.returncode == 0, done.stderr
    assert "locked" not in (done.stdout + done.stderr).lower()

    runs = all_runs(workdir)
    top = parents(runs)
    assert len(top) == 8 and set(top["status"]) == {"FINISHED"}
    assert sorted(top["tags.job"].astype(int)) == list(range(8))
    client = MlflowClient(store_uri(workdir))
    for parent in top.itertuples():
        folds = children(runs, parent.run_id)
        assert len(folds) == 3 and set(folds["status"]) == {"FINISHED"}
        for metric in METRICS:
            assert folds[f"metrics.test_{metric}"].notna().all()
            assert folds[f"metrics.train_{metric}"].notna().all()
            assert runs.loc[runs["run_id"] == parent.run_id,
                            f"metrics.test_{metric}_mean"].notna().all()
        artifacts = {a.path for a in client.list_artifacts(parent.run_id)}
        assert {"config.yaml", "folds.csv"} <= artifacts
    assert len(runs) == 8 + 8 * 3
