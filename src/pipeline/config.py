"""Where the config tree lives, and the resolvers its YAML files use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import PipelineError

TASKS = ("classification", "regression")


def config_dir() -> Path:
    """The `conf/` tree: packaged inside a wheel, or at the repository root in a checkout."""
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "conf"


def _by_task(classification: Any, regression: Any, *, _root_: DictConfig) -> Any:
    """`${by_task:a,b}` is `a` for a classification data set and `b` for a regression one."""
    task = _root_.data.task
    if task == "classification":
        return classification
    if task == "regression":
        return regression
    raise PipelineError(f"data.task={task!r} is not one of {', '.join(TASKS)}")


def _direction(*, _root_: DictConfig) -> str:
    """`${direction:}`: how a sweeper should optimise the objective. Read unresolved, since
    the default objective depends on a task that a CSV's data only tells once loaded."""
    from pipeline.metrics import lower_is_better

    objective = OmegaConf.to_container(_root_, resolve=False).get("objective", "")
    return "minimize" if lower_is_better(str(objective)) else "maximize"


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("by_task", _by_task, replace=True)
    OmegaConf.register_new_resolver("direction", _direction, replace=True)


def instantiate_node(node: DictConfig, *, label: str | None = "name", **kwargs: Any) -> Any:
    """Instantiate a config group's node. Its `label` key names the option in run names and
    tags and is not passed on (data loaders take their `name`: `label=None`)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    spec = OmegaConf.to_container(node, resolve=True)
    if label:
        spec.pop(label, None)
    try:
        # Objects such as a Dataset must reach the target as they are, not as configs.
        return instantiate(spec, _convert_="all", _partial_=True)(**kwargs)
    except InstantiationException as error:
        raise PipelineError(_first_cause(error)) from error


def _first_cause(error: BaseException) -> str:
    """Hydra wraps the real error; users want the innermost message, on one line."""
    while error.__cause__ is not None:
        if isinstance(error.__cause__, PipelineError):
            return str(error.__cause__)
        error = error.__cause__
    return " ".join(str(error).split())
