"""The rule for the main command's arguments: each value checked once, as the job description is
built and before any MLflow run exists, against the type its target's signature gives it, the
project's own settings, MLflow's limits on what the parent run logs, the file system's limits
on the paths it writes, and the sweeper's settings before the sweep's first job."""

from __future__ import annotations

import inspect
import math
import numbers
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.spec import is_int, locate

if TYPE_CHECKING:
    from pipeline.spec import Component, Job, Scheme
    from pipeline.tasks import Task

# MLflow's limit on a param's name (`MAX_ENTITY_KEY_LENGTH` in mlflow.utils.validation, 250 on
# MLflow 3.17; tests/test_arguments.py compares them), and the characters it allows in one.
MAX_PARAM_KEY = 250
PARAM_KEY_CHARACTERS = re.compile(r"^[/\w.\- :]*$")
# The file system's limits (Linux): a name within a path, and a whole path, in bytes.
NAME_MAX = 255
PATH_MAX = 4096
# Optuna's ways to optimise an objective; `${direction:}` gives one of them.
DIRECTIONS = ("minimize", "maximize")
# numpy's range for a seed (as `checks.MAX_SEED`): a sampler's seed is one too.
MAX_SEED = 2**32 - 1


def check_overrides(args: Iterable[str]) -> None:
    """Command-line overrides whose key no job could record, refused before Hydra reads them:
    Hydra looks each key up as a file name (a name over 255 bytes is its traceback), and a
    config key becomes the name of a param of the job's MLflow run."""
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        if len(key) > MAX_PARAM_KEY:
            raise PipelineError(
                f"config key {_shown(key)} is {len(key)} characters long, more than the "
                f"{MAX_PARAM_KEY} MLflow allows in the name of a param; use a shorter key")


def check_job(job: Job, task: Task) -> None:
    """Every value of `job` that needs neither the data nor the folds: the top-level settings,
    each group's arguments against its target's signature, the splitters' ranges (each built
    for `task`, as planning the folds will), and the params the parent run will log within
    MLflow's limits."""
    from pipeline import checks, threads

    options = job.options
    checks.seed(options.seed)
    threads.check(options.threads)
    if options.refit not in (True, False, "auto"):
        raise PipelineError(f"refit={options.refit} is not one of true, false, auto")
    schemes = (job.scheme, *((job.outer,) if job.outer is not None else ()))
    for component in (job.model, job.preprocess, *(scheme.splitter for scheme in schemes)):
        check_types(component)
    for scheme in schemes:
        _splitter_ranges(scheme, task)
    check_params(job.config)


def _splitter_ranges(scheme: Scheme, task: Task) -> None:
    """The splitter built without data: our schemes refuse a count or a fraction out of range
    (`cv.n_splits` under 2, `cv.test_size` outside (0, 1), `cv.n_repeats` under 1) as they are
    built; a scikit-learn splitter named by `cv._target_` refuses its own."""
    try:
        takes_task = "task" in inspect.signature(locate(scheme.splitter.target)).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        takes_task = False  # building it says what is wrong with the target
    try:
        scheme.splitter.build(**({"task": task} if takes_task else {}))
    except (ValueError, TypeError) as error:
        raise PipelineError(f"cv={scheme.name}: {' '.join(str(error).split())}; check the "
                            f"cv.* settings") from None


# The top-level yes/no settings, by their key, and what `true` does.
SWITCHES = {
    "resume": "skip a job whose run already FINISHED with the same config",
    "tracking.migrate": "let this MLflow upgrade a store made by an older one, in place",
}


def check_options(resolved: Mapping[str, Any]) -> None:
    """The yes/no settings as the config gives them (before the job description turns them
    into booleans): each must be true or false, never a word read as either."""
    for key, meaning in SWITCHES.items():
        value: Any = resolved
        for part in key.split("."):
            value = value.get(part, False) if isinstance(value, Mapping) else False
        if not isinstance(value, bool):
            raise PipelineError(f"{key}={value} is not true or false (true: {meaning}); use "
                                f"{key}=true or {key}=false")


def check_types(component: Component) -> None:
    """Each argument of a target that declares no constraints of its own (the project's
    splitters, loaders and preprocessing) against the default its signature gives it: a
    yes/no default takes true or false, a whole-number default an integer, a fractional
    default a finite number (null where the signature allows it). Targets with
    `_parameter_constraints` (scikit-learn's estimators and ours) are checked by those when
    built, which says more."""
    try:
        target = locate(component.target)
        signature = inspect.signature(target)
    except (ImportError, AttributeError, ValueError, TypeError):
        return  # building the component says what is wrong with its target
    if hasattr(target, "_parameter_constraints"):
        return
    for key, value in component.arguments.items():
        parameter = signature.parameters.get(key)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            continue
        if value is None and "None" in str(parameter.annotation):
            continue  # null where the signature takes it (`min_frequency=null`: no grouping)
        problem = _type_problem(parameter.default, value)
        if problem:
            raise PipelineError(
                f"{component.group}.{key}={value} is not {problem} ({component.group}="
                f"{component.name}: {key} defaults to {parameter.default}); set "
                f"{component.group}.{key} to {problem}")


def _type_problem(default: Any, value: Any) -> str | None:
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if is_int(default):
        return None if is_int(value) else "an integer"
    if isinstance(default, float):
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if real and math.isfinite(value) else "a finite number"
    return None


def check_params(config: Mapping[str, Any]) -> None:
    """The params the parent run will log (the resolved config, flattened): each name within
    MLflow's length and characters, and naming no path of its own. Values longer than MLflow
    keeps are logged truncated (the run's config.yaml holds them whole)."""
    from pipeline.tracking import flatten, loggable

    for key in flatten(loggable(dict(config))):
        problem = param_key_problem(key)
        if problem:
            raise PipelineError(f"config key {_shown(key)} {problem}, so the job's MLflow run "
                                "could not record it; rename or remove the key")


def param_key_problem(key: str) -> str | None:
    """Why MLflow would refuse `key` as a param's name, or None."""
    if len(key) > MAX_PARAM_KEY:
        return f"is {len(key)} characters long, more than the {MAX_PARAM_KEY} MLflow allows"
    if not PARAM_KEY_CHARACTERS.match(key):
        return ("holds a character MLflow refuses in a name (it allows letters, digits, "
                "_ - . / : and spaces)")
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith(("..", "/")):
        return "would name another path (MLflow refuses '..', '//' and a leading '/')"
    return None


def path_problem(path: str, key: str) -> str | None:
    """Why the file system cannot hold `path` (set by `key`): a name in it over NAME_MAX bytes
    or the whole over PATH_MAX; None when within both."""
    size = len(str(path).encode())
    if size > PATH_MAX:
        return f"{key} is {size} bytes long, more than the {PATH_MAX} a path may have"
    for name in str(path).split("/"):
        if len(name.encode()) > NAME_MAX:
            return (f"{key} has a name of {len(name.encode())} bytes ({_shown(name)}), more "
                    f"than the {NAME_MAX} a file or directory name may have")
    return None


def sweeper_problem(settings: Mapping[str, Any]) -> str | None:
    """Why the sweeper's settings (`hydra.sweeper`, resolved) cannot run a sweep, or None:
    checked before the sweeper is made and before its first job. The project's Optuna sweeper
    (hparams_search presets) and Hydra's basic sweeper (`-m` over lists)."""
    target = str(settings.get("_target_", ""))
    if target.endswith("BasicSweeper"):
        size = settings.get("max_batch_size")
        if size is not None and not (is_int(size) and size >= 1):
            return (f"hydra.sweeper.max_batch_size={size} is not a positive integer (jobs "
                    "launched at once; null: all)")
        return None
    if not target.endswith("OptunaSweeper"):
        return None  # another plugin's settings: its own to check
    n_trials, n_jobs = settings.get("n_trials"), settings.get("n_jobs")
    if not (is_int(n_trials) and n_trials >= 1):
        return (f"hydra.sweeper.n_trials={n_trials} is not a positive integer (the trials "
                "the search runs); use e.g. hydra.sweeper.n_trials=20")
    if not (is_int(n_jobs) and n_jobs >= 1):
        return (f"hydra.sweeper.n_jobs={n_jobs} is not a positive integer (the trials asked "
                "and launched at once); use e.g. hydra.sweeper.n_jobs=1")
    direction = settings.get("direction")
    if direction not in DIRECTIONS:
        return f"hydra.sweeper.direction={direction} is not one of {', '.join(DIRECTIONS)}"
    rate = settings.get("max_failure_rate")
    real = isinstance(rate, numbers.Real) and not isinstance(rate, bool)
    if not (real and 0 <= rate <= 1):
        return (f"hydra.sweeper.max_failure_rate={rate} is not a number from 0 to 1 (the "
                "share of a batch's trials that may fail before the search stops)")
    sampler = settings.get("sampler") or {}
    seed = sampler.get("seed")
    if seed is not None and not (is_int(seed) and 0 <= seed <= MAX_SEED):
        return (f"hydra.sweeper.sampler.seed={seed} is not null or an integer from 0 to "
                f"{MAX_SEED}")
    startup = sampler.get("n_startup_trials", 0)
    if not (is_int(startup) and startup >= 0):
        return (f"hydra.sweeper.sampler.n_startup_trials={startup} is not an integer of 0 "
                "or more")
    for key in ("storage", "study_name"):
        if settings.get(key) is not None and not isinstance(settings[key], str):
            return f"hydra.sweeper.{key}={settings[key]} is not a name (a string) or null"
    return None


def _shown(text: str) -> str:
    """A long name shortened to its ends for a one-line message."""
    return repr(text) if len(text) <= 60 else repr(f"{text[:40]}...{text[-10:]}")
