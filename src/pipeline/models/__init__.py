"""Models: every model is a scikit-learn estimator named by a `conf/model/*.yaml` file."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from sklearn.base import BaseEstimator, is_classifier, is_clusterer, is_regressor
from sklearn.utils import get_tags

from pipeline.config import NoTaskForm, config_dir, instantiate_node
from pipeline.data import Dataset
from pipeline.errors import PipelineError


def build(cfg: DictConfig, dataset: Dataset) -> BaseEstimator:
    """The unfitted estimator of the `model` group, checked against the data set's task."""
    try:
        estimator = instantiate_node(cfg)
    except NoTaskForm:
        raise PipelineError(
            f"model={cfg.name} cannot do {dataset.task}; models that can: "
            + ", ".join(suitable(dataset.task, len(dataset.classes)))
        ) from None
    # Any data can be clustered: its labels, where it has them, only score the clusters.
    if not (is_clusterer(estimator) or fits(estimator, dataset.task, len(dataset.classes))):
        raise PipelineError(_mismatch(cfg.name, estimator, dataset))
    _validate_params(cfg.name, estimator)
    return estimator


def fits(estimator: Any, task: str, n_classes: int) -> bool:
    """Whether `estimator` can learn a `task` target with `n_classes` classes."""
    if task == "clustering":
        return is_clusterer(estimator)
    if task == "regression":
        return is_regressor(estimator)
    if not is_classifier(estimator):
        return False
    return n_classes <= 2 or get_tags(estimator).classifier_tags.multi_class


def suitable(task: str, n_classes: int) -> list[str]:
    """The names of the model options that fit a `task` target with `n_classes` classes."""
    names = []
    for file in sorted((config_dir() / "model").glob("*.yaml")):
        option = OmegaConf.load(file)
        option.pop("defaults", None)
        root = OmegaConf.create({"data": {"task": task}, "seed": 0, "trainer": {}, "model": option})
        try:
            if fits(instantiate_node(root.model), task, n_classes):
                names.append(file.stem)
        except PipelineError:
            continue
    return names


def _mismatch(name: str, estimator: Any, dataset: Dataset) -> str:
    n_classes = len(dataset.classes)
    if dataset.task == "clustering":
        target = f"{dataset.name} is to be clustered"
    elif dataset.task == "regression":
        target = f"{dataset.name} has a regression target"
    else:
        target = f"{dataset.name} has a classification target with {n_classes} classes"
    kind = ("a regressor" if is_regressor(estimator) else
            "a classifier" if is_classifier(estimator) and n_classes <= 2 else
            "a binary classifier" if is_classifier(estimator) else "not a supervised model")
    others = ", ".join(suitable(dataset.task, n_classes))
    return f"model={name} is {kind} but {target}; models that fit: {others}"


def _validate_params(name: str, estimator: Any) -> None:
    """Reject an invalid constructor argument now rather than when the first fold is fitted."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        # scikit-learn's estimators declare their constraints; ours check in their own
        # `_validate_params`, raising PipelineError.
        own_check = type(estimator)._validate_params is not BaseEstimator._validate_params
        if own_check or hasattr(estimator, "_parameter_constraints"):
            estimator._validate_params()
    except InvalidParameterError as error:
        message = str(error).replace("The '", "model.").replace("' parameter of ", " of ")
        raise PipelineError(f"model={name}: {message}") from error


def requires(estimator: Any) -> frozenset[str]:
    """What `estimator` needs beyond scikit-learn, as it declares in `pipeline_requires`:
    "torch" (the package, also to load the model), "device" (a Lightning Trainer on an
    accelerator, checked with its `check_trainer()`). A scikit-learn pipeline needs what its
    steps need; scikit-learn's own estimators need nothing."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        return frozenset().union(*(requires(step) for _, step, *_ in steps))
    return frozenset(getattr(estimator, "pipeline_requires", ()))
