"""Where the config tree lives, and the resolvers its YAML files use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

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


def instantiate_node(node: DictConfig, *, label: str | None = "name", drop: tuple[str, ...] = (),
                     **kwargs: Any) -> Any:
    """Instantiate a config group's node. Its `label` key names the option in run names and
    tags and is not passed on (data loaders take their `name`: `label=None`), nor are the keys
    in `drop` (settings of the job, not arguments of the target)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        spec = OmegaConf.to_container(node, resolve=True)
    except InterpolationResolutionError as error:
        # OmegaConf drops the cause (unless OC_CAUSE=1) but keeps it down the context chain.
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, PipelineError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from None
    for key in (label, *drop) if label else drop:
        spec.pop(key, None)
    try:
        if not kwargs:
            return instantiate(spec, _convert_="all")
        # Objects such as a Dataset must reach the target as they are, not as configs.
        target = instantiate(spec, _convert_="all", _partial_=True)
    except InstantiationException as error:
        chain = _causes(error)
        if not kwargs and not (any(isinstance(cause, PipelineError) for cause in chain)
                               or isinstance(chain[-1], TypeError)):
            raise  # not a mistake in the config: the traceback shows where it is
        raise PipelineError(_first_cause(error)) from error
    try:
        return target(**kwargs)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise PipelineError(f"{error}; remove that key from the config") from error


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and its causes, outermost first (a PipelineError may itself have a cause)."""
    chain = [error]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    return chain


def _first_cause(error: BaseException) -> str:
    """Hydra wraps the real error; users want the first PipelineError among its causes, else
    the innermost message, on one line."""
    causes = _causes(error)
    ours = next((cause for cause in causes[1:] if isinstance(cause, PipelineError)), None)
    return str(ours) if ours is not None else " ".join(str(causes[-1]).split())
