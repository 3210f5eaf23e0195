"""The typed, frozen job description: what the entry reads the Hydra config into once, and all
that the stages below it ever see of the config (each stage its own part)."""

from __future__ import annotations

import dataclasses
import inspect
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pipeline.errors import PipelineError


def is_int(value: Any) -> bool:
    """An integer (numpy's too), not a bool: what a count or a seed in the config must be."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def locate(path: str) -> Any:
    """The class or function that a dotted `_target_` names (as Hydra's instantiate finds it,
    without its error log): ImportError or AttributeError where there is none."""
    import importlib

    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        module = ".".join(parts[:split])
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name is not None and module.startswith(error.name):
                continue  # not a module: the rest of the path may be attributes
            raise  # the module exists and needs another that is missing
        for name in parts[split:]:
            found = getattr(found, name)
        return found
    raise ImportError(f"No module named {parts[0]!r}")


def freeze(value: Any) -> Any:
    """`value` with every dict made a read-only mapping and every list a tuple, recursively."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The plain dicts and lists that `freeze` made read-only, for a constructor to own."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


@dataclass(frozen=True)
class Component:
    """A config group's choice that names a class or function: the option's label (`name`, for
    run names, tags and messages), its `_target_` and the arguments the target is called with."""

    group: str
    name: str
    target: str
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", freeze(dict(self.arguments)))

    def get(self, key: str, default: Any = None) -> Any:
        return self.arguments.get(key, default)

    def with_arguments(self, changes: Mapping[str, Any]) -> Component:
        """The same component with some arguments set anew (a search trial's values)."""
        return dataclasses.replace(self, arguments={**self.arguments, **changes})

    def build(self, **objects: Any) -> Any:
        """The target called with the arguments (nested `_target_` nodes built first, by
        Hydra) and `objects` passed as they are. An argument the target does not take, or a
        target that cannot be imported, is the user's mistake: one line naming the key."""
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        try:
            target = locate(self.target)
        except (ImportError, AttributeError, ValueError) as error:
            raise PipelineError(f"{self.group}._target_={self.target} cannot be imported "
                                f"({type(error).__name__}: {str(error).splitlines()[0]}); "
                                "name an importable class or function") from None
        arguments = thaw(self.arguments)
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):  # a builtin without a signature: the call will tell
            signature = None
        if signature is not None:
            self._check_arguments(signature, arguments, objects)
        try:
            made = instantiate({"_target_": self.target, **arguments}, _convert_="all",
                               _partial_=bool(objects))
            return made(**objects) if objects else made
        except (InstantiationException, TypeError) as error:
            mistake = self._mistake(error)
            if mistake is not None:
                raise mistake from error
            # A defect, raised as the target raised it (not as Hydra's wrapper of it).
            cause = error.__cause__ if isinstance(error, InstantiationException) else None
            raise (cause or error) from None

    def _check_arguments(self, signature: inspect.Signature, arguments: dict[str, Any],
                         objects: dict[str, Any]) -> None:
        """The config's keys against the target's signature: a key it does not take, or an
        argument it needs and nobody gives, is one line naming the key."""
        takes = signature.parameters
        if not any(p.kind is p.VAR_KEYWORD for p in takes.values()):
            unknown = [key for key in arguments if key not in takes]
            if unknown:
                shown = ", ".join(f"{self.group}.{key}" for key in unknown)
                raise PipelineError(
                    f"{shown} is not an argument of {self.target} ({self.group}={self.name}); "
                    f"remove it or check its spelling: it takes "
                    f"{', '.join(name for name in takes if name not in objects)}")
        try:
            signature.bind(**arguments, **objects)
        except TypeError as error:
            raise PipelineError(f"{self.group}={self.name}: {error} for {self.target}; set it "
                                f"under {self.group}.") from None

    def _mistake(self, error: Exception) -> PipelineError | None:
        """What the target raised, as the user's mistake where it is one: a PipelineError
        (Hydra wraps it), a nested `_target_` that cannot be imported, or a key of this
        component that the class behind a `**kwargs` target does not take; else None."""
        chain: list[BaseException] = [error]
        while chain[-1].__cause__ is not None:
            chain.append(chain[-1].__cause__)
        ours = next((cause for cause in chain if isinstance(cause, PipelineError)), None)
        if ours is not None:
            return ours
        innermost = chain[-1]
        if isinstance(innermost, ImportError):
            return PipelineError(f"{self.group}={self.name}: "
                                 f"{' '.join(str(innermost).split())}")
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(innermost))
        if (isinstance(innermost, TypeError) and unexpected
                and unexpected.group(1) in self.arguments):
            return PipelineError(f"{innermost}; remove {self.group}.{unexpected.group(1)} from "
                                 "the config")
        return None


@dataclass(frozen=True)
class Scheme:
    """The `cv` group: the splitter, and the settings of how its folds run."""

    splitter: Component
    n_jobs: Any = 1
    batch_folds: Any = "auto"

    @property
    def name(self) -> str:
        return self.splitter.name


@dataclass(frozen=True)
class Scoring:
    """The metrics each fold is scored by (the task's), the objective among them, and the
    averaging of the multiclass ones."""

    names: tuple[str, ...]
    objective: str
    average: str = "macro"


@dataclass(frozen=True)
class Tracking:
    """Where runs go: the tracking URI (None: the environment's, else the project's store) and
    the experiment (None: the data set's name)."""

    uri: str | None = None
    experiment: str | None = None
    migrate: bool = False  # a store of an older MLflow migrated in place rather than refused


@dataclass(frozen=True)
class Sweep:
    """The sweep a job belongs to, as its launcher started it."""

    dir: str
    job: int
    own_process: bool = False  # each job a process of its own (submitit)


@dataclass(frozen=True)
class Search:
    """A nested job's search: Optuna distributions by config key, the values every trial sets,
    how many trials, the sampler's config, and the preset's params as written."""

    space: Mapping[str, Any]
    fixed: Mapping[str, str]
    n_trials: int
    sampler: Mapping[str, Any]
    written: Mapping[str, str]


@dataclass(frozen=True)
class Options:
    """The top-level settings of how the job runs."""

    seed: int = 42
    refit: bool | str = "auto"
    resume: bool = False
    threads: int | str = "auto"
    plots: Any = True
    trainer: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plots", freeze(self.plots))
        object.__setattr__(self, "trainer", freeze(dict(self.trainer)))


@dataclass(frozen=True)
class Job:
    """One job, decided for its task: what each stage of the picture gets.

    `config` is the resolved config as composed, flattened into the parent run's params and
    saved as its `config.yaml`; `choices` are the options chosen per group (for the printout).
    A nested job has an `outer` scheme (its `scheme` splits each outer training part) and a
    `search`; a sweep's job knows its `sweep`.
    """

    task: str
    data: Component
    model: Component
    preprocess: Component
    scheme: Scheme
    scoring: Scoring
    tracking: Tracking
    options: Options
    config: Mapping[str, Any]
    choices: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sweep: Sweep | None = None
    outer: Scheme | None = None
    search: Search | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", freeze(dict(self.config)))
        object.__setattr__(self, "choices", freeze(dict(self.choices)))

    @property
    def nested(self) -> bool:
        return self.outer is not None

    def with_trial(self, values: Mapping[str, Any]) -> Job:
        """The job with a search trial's values set (`model.<key>` and `preprocess.<key>`
        keys, each of which the job's config has)."""
        parts: dict[str, dict[str, Any]] = {"model": {}, "preprocess": {}}
        for key, value in values.items():
            group, _, name = key.partition(".")
            if group not in parts or not name or "." in name:
                raise PipelineError(f"hydra.sweeper.params: {key} is not a key a search can "
                                    "set; search model.<key> or preprocess.<key>")
            if name not in self.config.get(group, {}):
                raise PipelineError(f"hydra.sweeper.params: {key} is not a key of the config")
            parts[group][name] = value
        return dataclasses.replace(self, model=self.model.with_arguments(parts["model"]),
                                   preprocess=self.preprocess.with_arguments(
                                       parts["preprocess"]))
