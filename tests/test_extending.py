"""The "Extending" recipes (docs/how-to/extending.md), each run as a real job: a scikit-learn
model, a CV scheme (one YAML each, in a config directory of their own) and a metric (one
registry entry). Also the task decided once, without touching the user's config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sklearn import datasets
from sklearn import metrics as skm
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.model_selection import ShuffleSplit, StratifiedKFold, cross_validate
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline import metrics
from pipeline.config import config_dir
from pipeline.entry import describe, run
from pipeline.errors import PipelineError
from tests.conftest import all_runs, children, parents

QUIET = ["plots=false", "refit=false"]


def compose_with(extra: Path, *overrides: str):
    """The real config tree plus the option files in `extra` (Hydra's search path)."""
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("config", overrides=[f"hydra.searchpath=[file://{extra}]", *overrides])


def option(conf: Path, group: str, name: str, text: str) -> Path:
    """`conf/<group>/<name>.yaml` holding `text`: one option file in a config directory of
    the user's own; returns `conf`, for `compose_with`."""
    (conf / group).mkdir(parents=True, exist_ok=True)
    (conf / group / f"{name}.yaml").write_text(text)
    return conf


def iris_reference(model, cv, scoring="accuracy") -> np.ndarray:
    X, y = datasets.load_iris(return_X_y=True)
    return cross_validate(Pipeline([("scale", StandardScaler()), ("model", model)]), X, y,
                          cv=cv, scoring=scoring)["test_score"]


def test_a_new_sklearn_model_is_one_yaml(workdir):
    conf = option(workdir / "conf", "model", "extra_trees",
                  "_target_: ${by_task:sklearn.ensemble.ExtraTreesClassifier,"
                  "sklearn.ensemble.ExtraTreesRegressor}\n"
                  "name: extra_trees\n"
                  "n_estimators: 50\n"
                  "random_state: ${seed}\n")
    result = run(compose_with(conf, "data=iris", "model=extra_trees", *QUIET))
    expected = iris_reference(ExtraTreesClassifier(n_estimators=50, random_state=42),
                              StratifiedKFold(5, shuffle=True, random_state=42))
    np.testing.assert_array_equal(result.folds["test_accuracy"].to_numpy(), expected)
    parent = parents(all_runs(workdir)).iloc[0]
    assert parent["tags.mlflow.runName"] == "extra_trees-kfold"
    assert parent["params.model._target_"] == "sklearn.ensemble.ExtraTreesClassifier"


def test_a_new_cv_scheme_from_sklearn_is_one_yaml(workdir):
    conf = option(workdir / "conf", "cv", "shuffle",
                  "_target_: sklearn.model_selection.ShuffleSplit\n"
                  "name: shuffle\n"
                  "n_splits: 4\n"
                  "test_size: 0.25\n"
                  "random_state: ${seed}\n")
    result = run(compose_with(conf, "data=iris", "model=knn", "cv=shuffle", *QUIET))
    expected = iris_reference(KNeighborsClassifier(),
                              ShuffleSplit(4, test_size=0.25, random_state=42))
    np.testing.assert_array_equal(result.folds["test_accuracy"].to_numpy(), expected)
    runs = all_runs(workdir)
    parent = parents(runs).iloc[0]
    assert parent["tags.mlflow.runName"] == "knn-shuffle"
    assert list(children(runs, parent["run_id"])["params.test_size"]) == ["38"] * 4


def test_a_stratified_sklearn_splitter_on_a_regression_target_is_one_line(workdir):
    """StratifiedKFold would take every distinct target value for a class: refused, not a
    list of hundreds of 'classes' too small to stratify."""
    conf = option(workdir / "conf", "cv", "skf",
                  "_target_: sklearn.model_selection.StratifiedKFold\n"
                  "name: skf\n"
                  "n_splits: 4\n")
    with pytest.raises(PipelineError) as refused:
        run(compose_with(conf, "data=diabetes", "model=knn", "cv=skf", *QUIET))
    assert str(refused.value) == (
        "cv=skf (StratifiedKFold) stratifies on classes, and diabetes has a regression target; "
        "use a splitter that does not stratify (e.g. KFold)")
    assert all_runs(workdir).empty


def test_a_new_metric_is_one_registry_entry(make_cfg, workdir, monkeypatch):
    monkeypatch.setitem(metrics.REGISTRY, "balanced_accuracy", metrics.Metric(
        "balanced_accuracy", "classification", metrics.LABELS, True,
        skm.balanced_accuracy_score))
    cfg = make_cfg("data=wine", "model=knn", "metrics.classification=[accuracy,balanced_accuracy]",
                   "objective=balanced_accuracy", *QUIET)
    result = run(cfg)
    X, y = datasets.load_wine(return_X_y=True)
    expected = cross_validate(Pipeline([("scale", StandardScaler()),
                                        ("model", KNeighborsClassifier())]), X, y,
                              cv=StratifiedKFold(5, shuffle=True, random_state=42),
                              scoring="balanced_accuracy")["test_score"]
    assert result.objective == "test_balanced_accuracy"
    np.testing.assert_allclose(result.folds["test_balanced_accuracy"], expected, rtol=1e-12)
    assert result.score == pytest.approx(expected.mean())
    assert metrics.get("balanced_accuracy").response == metrics.LABELS  # the entry, used


def test_a_lower_is_better_entry_sets_the_direction_everywhere(monkeypatch):
    from pipeline.config import _direction

    with pytest.raises(PipelineError, match="unknown metric.*hamming"):
        metrics.check_names("classification", ["accuracy", "hamming"])
    monkeypatch.setitem(metrics.REGISTRY, "hamming", metrics.Metric(
        "hamming", "classification", metrics.LABELS, False, skm.hamming_loss))
    metrics.check_names("classification", ["accuracy", "hamming"])
    assert metrics.lower_is_better("test_hamming") and not metrics.lower_is_better("accuracy")
    assert _direction(_root_=OmegaConf.create({"objective": "hamming"})) == "minimize"
    assert _direction(_root_=OmegaConf.create({"objective": "mcc"})) == "maximize"


def test_any_sklearn_scorer_name_is_a_metric(make_cfg, workdir):
    result = run(make_cfg("data=iris", "model=knn", "cv.n_splits=3",
                          "metrics.classification=[accuracy,f1_weighted,neg_log_loss]", *QUIET))
    cv = StratifiedKFold(3, shuffle=True, random_state=42)
    for name in ("f1_weighted", "neg_log_loss"):
        np.testing.assert_allclose(result.folds[f"test_{name}"],
                                   iris_reference(KNeighborsClassifier(), cv, name), rtol=1e-12)


def test_a_binary_scorer_scores_the_datas_positive_class(make_cfg, workdir):
    """scikit-learn's binary scorers default to pos_label=1, which named labels do not hold:
    the job scores the data's positive class, as its own metrics do."""
    result = run(make_cfg("data=breast_cancer", "model=decision_tree", "cv.n_splits=3",
                          "metrics.classification=[accuracy,average_precision]", *QUIET))
    data = datasets.load_breast_cancer()
    y = data.target_names[data.target]  # the labels the job reads: 'malignant', 'benign'
    scorer = skm.make_scorer(skm.average_precision_score, pos_label="benign",
                             response_method=("decision_function", "predict_proba"))
    from sklearn.tree import DecisionTreeClassifier

    expected = cross_validate(
        Pipeline([("scale", StandardScaler()), ("model", DecisionTreeClassifier(random_state=42))]),
        data.data, y, cv=StratifiedKFold(3, shuffle=True, random_state=42),
        scoring=scorer)["test_score"]
    np.testing.assert_allclose(result.folds["test_average_precision"], expected, rtol=1e-12)


def test_a_scorer_the_model_cannot_answer_is_refused_before_any_run(make_cfg, workdir):
    with pytest.raises(PipelineError, match=r"metric neg_log_loss reads the model's "
                                            r"predict_proba, which model=svm does not give"):
        run(make_cfg("data=iris", "model=svm", *QUIET,
                     "metrics.classification=[accuracy,neg_log_loss]"))
    assert all_runs(workdir).empty


def test_the_registry_knows_every_configured_metric_and_its_direction(make_cfg):
    cfg = make_cfg()
    for task in ("classification", "regression", "clustering"):
        metrics.check_names(task, list(cfg.metrics[task]))
        for name in cfg.metrics[task]:
            assert metrics.REGISTRY[name].task == task
    assert [n for n, m in metrics.REGISTRY.items() if not m.greater_is_better] == [
        "mse", "mae", "inertia"]
    assert metrics.needs_scores(["accuracy", "roc_auc"]) and not metrics.needs_scores(["f1"])
    with pytest.raises(PipelineError, match="metrics.regression names unknown metric.*accuracy"):
        metrics.check_names("regression", ["mse", "accuracy"])  # no fall-through to r2
    with pytest.raises(PipelineError, match="metrics.clustering names unknown.*f1_weighted"):
        metrics.check_names("clustering", ["silhouette", "f1_weighted"])


@pytest.mark.parametrize(("overrides", "task"), [
    (["data=iris", "model=knn"], "classification"),
    (["data=diabetes", "model=random_forest"], "regression"),
    (["data=iris", "model=kmeans"], "clustering"),
    (["data=wine", "model=hierarchical"], "clustering"),
])
def test_the_task_is_decided_from_data_and_model_family(make_cfg, overrides, task):
    job, _, decided = describe(make_cfg(*overrides))
    assert decided.name == task and job.task == task
    assert job.config["data"]["task"] == task  # the logged params follow the decided task


def test_a_model_without_a_form_for_the_datas_task_is_refused_naming_those_that_fit(make_cfg):
    with pytest.raises(PipelineError, match="model=knn cannot do clustering; models that can: "
                                            "hierarchical, kmeans"):
        describe(make_cfg("data=iris", "model=knn", "data.task=clustering"))


def test_a_job_never_writes_into_the_users_config(make_cfg, workdir):
    cfg = make_cfg("data=iris", "model=kmeans", "cv.n_repeats=2", "plots=false")
    before = OmegaConf.to_yaml(cfg)
    result = run(cfg)
    assert OmegaConf.to_yaml(cfg) == before
    assert cfg.data.task == "classification"  # the data's; the job's task is clustering
    parent = parents(all_runs(workdir)).iloc[0]
    assert parent["params.data.task"] == "clustering" and parent["tags.task"] == "clustering"
    assert result.objective == "test_silhouette"
