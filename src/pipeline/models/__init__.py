"""Models: every model is a scikit-learn estimator named by a `conf/model/*.yaml` file."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from sklearn.base import BaseEstimator, is_classifier, is_regressor

from pipeline import tasks
from pipeline.config import config_dir
from pipeline.data import Dataset
from pipeline.errors import PipelineError
from pipeline.spec import Component
from pipeline.tasks import Task


def build(model: Component, dataset: Dataset, task: Task | None = None) -> BaseEstimator:
    """The unfitted estimator of the `model` group (resolved for the job's task), checked
    against that task (the data set's own if not given)."""
    task = task or tasks.of(dataset.task)
    n_classes = len(task.classes(dataset))
    estimator = model.build()
    if not task.fits(estimator, n_classes):
        raise PipelineError(_mismatch(model.name, estimator, dataset, task))
    _validate_params(model.name, estimator)
    return estimator


def suitable(task: str, n_classes: int) -> list[str]:
    """The names of the model options that fit a `task` target with `n_classes` classes."""
    names, learner = [], tasks.of(task)
    for file in sorted((config_dir() / "model").glob("*.yaml")):
        option = OmegaConf.load(file)
        option.pop("defaults", None)
        root = OmegaConf.create({"data": {"task": task}, "seed": 0, "trainer": {}, "model": option})
        try:
            node = OmegaConf.to_container(root.model, resolve=True)
            candidate = Component("model", file.stem, str(node.pop("_target_")),
                                  {k: v for k, v in node.items() if k != "name"})
            if learner.fits(candidate.build(), n_classes):
                names.append(file.stem)
        except (PipelineError, OmegaConfBaseException):  # no form for the task
            continue
    return names


def _mismatch(name: str, estimator: Any, dataset: Dataset, task: Task) -> str:
    n_classes = len(task.classes(dataset))
    kind = ("a regressor" if is_regressor(estimator) else
            "a classifier" if is_classifier(estimator) and n_classes <= 2 else
            "a binary classifier" if is_classifier(estimator) else "not a supervised model")
    others = ", ".join(suitable(task.name, n_classes))
    return f"model={name} is {kind} but {task.describe(dataset)}; models that fit: {others}"


def _validate_params(name: str, estimator: Any) -> None:
    """Reject an invalid constructor argument now rather than when the first fold is fitted.
    scikit-learn's estimators declare their constraints; ours check in their own
    `_validate_params`, raising PipelineError."""
    from pipeline.compat.sklearn import parameter_error

    if (message := parameter_error(estimator)) is not None:
        message = message.replace("The '", "model.").replace("' parameter of ", " of ")
        raise PipelineError(f"model={name}: {message}")


def requires(estimator: Any) -> frozenset[str]:
    """What `estimator` needs beyond scikit-learn, as it declares in `pipeline_requires`:
    "torch" (the package, also to load the model), "device" (a Lightning Trainer on an
    accelerator, checked with its `check_trainer()`). A scikit-learn pipeline needs what its
    steps need; scikit-learn's own estimators need nothing."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        return frozenset().union(*(requires(step) for _, step, *_ in steps))
    return frozenset(getattr(estimator, "pipeline_requires", ()))
