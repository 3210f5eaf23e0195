"""Where the config tree lives, and the resolvers its YAML files use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import PipelineError

TASKS = ("classification", "regression", "clustering")


def config_dir() -> Path:
    """The `conf/` tree: packaged inside a wheel, or at the repository root in a checkout."""
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "conf"


class NoTaskForm(PipelineError):
    """A `${by_task:…}` choice with no value for the job's task (a classifier asked to cluster)."""


def _by_task(classification: Any, regression: Any, clustering: Any = None, *,
             _root_: DictConfig) -> Any:
    """`${by_task:a,b[,c]}` is `a` for a classification task, `b` for regression, `c` for
    clustering (the task a clustering model gives the job)."""
    task = _root_.data.task
    choices = {"classification": classification, "regression": regression,
               "clustering": clustering}
    if task not in choices:
        raise PipelineError(f"data.task={task!r} is not one of {', '.join(TASKS)}")
    if choices[task] is None:
        raise NoTaskForm(f"no {task} form")
    return choices[task]


def _direction(*, _root_: DictConfig) -> str:
    """`${direction:}`: how a sweeper should optimise the objective. Read unresolved, since
    the default objective depends on a task that a CSV's data only tells once loaded."""
    from pipeline.metrics import lower_is_better

    objective = OmegaConf.to_container(_root_, resolve=False).get("objective", "")
    return "minimize" if lower_is_better(str(objective)) else "maximize"


def _class_default(argument: str, *, _parent_: DictConfig) -> Any:
    """`${class_default:lr}`: the default of `lr` in the signature of the node's `_target_`
    class, so that a model's defaults have one home, its class (imported, not instantiated:
    the torch models' modules import neither torch nor Lightning)."""
    import importlib
    import inspect

    target = str(_parent_._target_)
    module, _, name = target.rpartition(".")
    parameter = inspect.signature(getattr(importlib.import_module(module), name)).parameters.get(
        argument)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise PipelineError(f"{target} has no default for {argument}, which "
                            f"${{class_default:{argument}}} reads; set it in the model's file")
    default = parameter.default
    return list(default) if isinstance(default, tuple) else default


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("by_task", _by_task, replace=True)
    OmegaConf.register_new_resolver("direction", _direction, replace=True)
    OmegaConf.register_new_resolver("class_default", _class_default, replace=True)
