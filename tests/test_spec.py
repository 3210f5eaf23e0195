"""The typed job description: read once from the composed config, frozen, and the one place a
config node becomes an object (with the user's mistakes in it said in one line)."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf
from sklearn.neighbors import KNeighborsClassifier

from pipeline.entry import describe
from pipeline.errors import PipelineError
from pipeline.spec import Component, freeze, locate, thaw
from pipeline.tracking import flatten, loggable


def test_the_job_is_frozen_all_the_way_down(make_cfg):
    job, _, _ = describe(make_cfg("model=mlp", "model.hidden_sizes=[8,4]"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        job.model.arguments["lr"] = 1.0  # type: ignore[index]
    assert job.model.arguments["hidden_sizes"] == (8, 4)
    assert thaw(job.model.arguments)["hidden_sizes"] == [8, 4]  # what the estimator gets


def test_each_stage_gets_its_own_typed_part_and_the_logged_params_are_the_resolved_config(
        make_cfg):
    cfg = make_cfg("data=wine", "model=knn", "cv.n_splits=3", "seed=0")
    job, dataset, task = describe(cfg)
    assert (job.task, task.name, dataset.name) == ("classification", "classification", "wine")
    assert (job.model.name, job.model.target) == ("knn",
                                                  "sklearn.neighbors.KNeighborsClassifier")
    assert job.scheme.name == "kfold" and job.scheme.splitter.get("n_splits") == 3
    assert job.scheme.splitter.get("random_state") == 0  # seed=0 is honoured
    assert job.scoring.objective == "accuracy" and "roc_auc" in job.scoring.names
    assert job.options.seed == 0 and job.sweep is None and not job.nested
    # The params a run records: the flattened resolved config, with the decided task.
    expected = OmegaConf.to_container(OmegaConf.merge(cfg, {"data": {"task": task.name}}),
                                      resolve=True)
    assert flatten(loggable(job.config)) == flatten(loggable(expected))


def test_a_component_builds_its_target_with_its_arguments():
    built = Component("model", "knn", "sklearn.neighbors.KNeighborsClassifier",
                      {"n_neighbors": 3}).build()
    assert isinstance(built, KNeighborsClassifier) and built.n_neighbors == 3


@pytest.mark.parametrize(("component", "said"), [
    (Component("model", "knn", "sklearn.neighbors.KNeighborsClassifier", {"n_neighbours": 3}),
     "model.n_neighbours is not an argument of sklearn.neighbors.KNeighborsClassifier"),
    (Component("model", "x", "sklearn.neighbors.NoSuchModel", {}),
     "model._target_=sklearn.neighbors.NoSuchModel cannot be imported"),
    (Component("data", "csv", "pipeline.data.table", {"target": "y"}),
     "missing a required argument: 'path'"),
])
def test_a_config_mistake_is_one_line_naming_the_key(component, said):
    with pytest.raises(PipelineError, match=said):
        component.build()


def test_a_defect_inside_a_target_is_not_dressed_as_a_mistake():
    """A target that fails for its own reasons (here: a TypeError deep inside) raises that
    error, not a PipelineError: the command then reports an internal error."""
    broken = Component("model", "broken", "tests.test_spec.failing_target", {"size": 2})
    with pytest.raises(TypeError, match="unsupported operand"):
        broken.build()


def failing_target(size: int) -> None:
    return size + "rows"  # type: ignore[operator]


def test_locate_finds_classes_and_functions_and_says_what_is_missing():
    assert locate("sklearn.neighbors.KNeighborsClassifier") is KNeighborsClassifier
    assert locate("pipeline.cv.kfold").__name__ == "kfold"  # re-exported by the package
    with pytest.raises(AttributeError):
        locate("sklearn.neighbors.Nope")
    with pytest.raises(ImportError):
        locate("no_such_package.Model")


def test_a_trial_sets_model_and_preprocess_keys_only(make_cfg):
    job, _, _ = describe(make_cfg("model=knn"))
    trial = job.with_trial({"model.n_neighbors": 7, "preprocess.scale": "minmax"})
    assert trial.model.get("n_neighbors") == 7 and trial.preprocess.get("scale") == "minmax"
    assert job.model.get("n_neighbors") == 5  # the job itself is unchanged
    with pytest.raises(PipelineError, match="model.n_neighbours is not a key of the config"):
        job.with_trial({"model.n_neighbours": 7})
    with pytest.raises(PipelineError, match="search model.<key> or preprocess.<key>"):
        job.with_trial({"cv.n_splits": 3})


def test_freeze_and_thaw_are_inverse_on_config_values():
    value = {"a": [1, {"b": [2, 3]}], "c": None}
    assert thaw(freeze(value)) == value
