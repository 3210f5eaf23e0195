"""The entry below the command line: the composed Hydra config read once into the typed job
description (`spec.Job`), its task decided from the data, and the job handed to the runner.
No module below this one sees a `DictConfig`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline import arguments, checks, threads
from pipeline.config import NoTaskForm, config_dir
from pipeline.errors import PipelineError
from pipeline.metrics import check_average
from pipeline.spec import (
    Component,
    Job,
    Options,
    Scheme,
    Scoring,
    Search,
    Sweep,
    Tracking,
    locate,
)

if TYPE_CHECKING:
    from pipeline.data import Dataset
    from pipeline.report import Result
    from pipeline.tasks import Task

log = logging.getLogger("pipeline")

# Keys of every `cv` option (conf/cv_folds.yaml) that say how the folds run, not how to split
# (`outer`, `outer_splits`: nested cross-validation's outer scheme).
RUN_KEYS = ("n_jobs", "batch_folds", "outer", "outer_splits")


def run(cfg: DictConfig) -> Result:
    """Cross-validate `cfg.model` on `cfg.data` under `cfg.cv`, tracked in MLflow (nested, with
    a search in each outer fold, where `cv.outer` is set). Everything that can be checked
    without training is checked before the first fit; `cfg` is left as it is."""
    from pipeline.distributed import global_rank

    level = log.level
    if global_rank() != 0:
        log.setLevel(logging.WARNING)  # under torchrun, rank 0 speaks for the job
    try:
        with threads.for_job(cfg.get("threads", threads.AUTO)):
            job, dataset, task = describe(cfg)
            if job.nested:
                from pipeline import nested

                return nested.run(job, dataset, task)
            from pipeline import runner

            return runner.run(job, dataset, task)
    finally:
        log.setLevel(level)


def describe(cfg: DictConfig) -> tuple[Job, Dataset, Task]:
    """The job `cfg` describes, with its data loaded and its task decided: clustering for a
    model whose class is a clusterer (any data can be clustered), else the data's own task."""
    from pipeline import data, tasks

    checks.seed(cfg.get("seed"))
    described = _component(_resolved(cfg.data, "data"), "data", keep_name=True)
    arguments.check_types(described)  # before the data is read or generated
    dataset = data.load(described)
    task = tasks.decide(dataset, _model_class(cfg, dataset.task))
    return read(cfg, task, dataset), dataset, task


def read(cfg: DictConfig, task: Task, dataset: Dataset) -> Job:
    """The typed job description of `cfg` for `task`: the config resolved with `data.task`
    set to it, so that `${by_task:…}` choices and the logged params follow the decided task."""
    configured = OmegaConf.merge(cfg, {"data": {"task": task.name}})
    try:
        resolved = _resolved(configured, "config")
    except NoTaskForm:
        from pipeline.models import suitable

        raise PipelineError(f"model={cfg.model.get('name')} cannot do {task}; models that can: "
                            + ", ".join(suitable(task.name, len(task.classes(dataset))))
                            ) from None
    arguments.check_options(resolved)
    names = tuple(str(name) for name in resolved["metrics"][task.name])
    objective = str(resolved["objective"])
    task.check_metrics(names, objective)
    cv = resolved["cv"]
    hydra = _hydra()
    job = Job(
        task=task.name,
        data=_component(resolved["data"], "data", keep_name=True),
        model=_component(resolved["model"], "model"),
        preprocess=_component(resolved["preprocess"], "preprocess", label="default"),
        scheme=_scheme(cv),
        scoring=Scoring(names, objective,
                        check_average(resolved["metrics"].get("average", "macro"))),
        tracking=Tracking(resolved["tracking"].get("uri"), resolved["tracking"].get("experiment"),
                          bool(resolved["tracking"].get("migrate", False))),
        options=Options(seed=resolved.get("seed"), refit=resolved.get("refit", "auto"),
                        resume=bool(resolved.get("resume", False)),
                        threads=resolved.get("threads", threads.AUTO),
                        plots=resolved.get("plots", True),
                        trainer=resolved.get("trainer") or {}),
        config=resolved,
        choices=dict(hydra.runtime.choices) if hydra is not None else {},
        sweep=_sweep(hydra),
    )
    if cv.get("outer") not in (None, ""):
        import dataclasses

        job = dataclasses.replace(job, outer=_outer_scheme(configured, cv),
                                  search=_search(hydra, str(cv["outer"])))
    arguments.check_job(job, task)  # every value the job holds, once, before any run exists
    return job


def _resolved(node: DictConfig, what: str) -> dict[str, Any]:
    """`node` as plain containers, every interpolation resolved; a value that does not resolve
    is the user's mistake (a PipelineError behind it comes out as itself)."""
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as error:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, PipelineError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise PipelineError(f"{what}: {' '.join(str(error).split())}") from None


def _component(node: dict[str, Any], group: str, *, keep_name: bool = False,
               label: str = "") -> Component:
    """A group's node as a Component: its `name` labels it (and is an argument of the data
    loaders, which take it), `_target_` names what it builds."""
    given = {k: v for k, v in node.items() if k != "_target_"}
    name = given.get("name") if keep_name else given.pop("name", None)
    if not node.get("_target_"):
        raise PipelineError(f"{group}: the option names no _target_ (the class or function it "
                            "builds); add one, e.g. _target_: sklearn.svm.SVC")
    return Component(group, str(name or label), str(node["_target_"]), given)


def _scheme(cv: dict[str, Any]) -> Scheme:
    splitter = _component({k: v for k, v in cv.items() if k not in RUN_KEYS}, "cv",
                          label="custom")
    return Scheme(splitter, n_jobs=cv.get("n_jobs", 1), batch_folds=cv.get("batch_folds", "auto"))


def _outer_scheme(configured: DictConfig, cv: dict[str, Any]) -> Scheme:
    """The `cv` option that `cv.outer` names, with its own defaults (`${seed}` resolving in the
    job's config) and `cv.outer_splits` as its `n_splits` where given."""
    name = str(cv["outer"])
    options = sorted(path.stem for path in (config_dir() / "cv").glob("*.yaml"))
    if name not in options:
        raise PipelineError(f"cv.outer={name} is not an option of the cv group; use one of "
                            f"{', '.join(options)} (e.g. cv.outer=kfold)")
    if name in ("train_val_test", "resample"):
        why = ("its validation part would go unused: use cv.outer=holdout"
               if name == "train_val_test" else "it is for clustering models")
        raise PipelineError(f"cv.outer={name} cannot be the outer scheme: {why}")
    node = OmegaConf.load(config_dir() / "cv" / f"{name}.yaml")
    node.pop("defaults", None)
    splits = cv.get("outer_splits")
    if splits is not None:
        if "n_splits" not in node:
            raise PipelineError(f"cv.outer_splits={splits}: cv.outer={name} has no n_splits; "
                                f"use cv.outer=kfold")
        node.n_splits = splits
    outer = OmegaConf.create(OmegaConf.to_container(configured, resolve=False))
    OmegaConf.set_struct(outer, False)
    outer.cv = node  # `${seed}` in it resolves against the job's config
    return _scheme(_resolved(outer.cv, "cv.outer"))


def _search(hydra: Any, outer: str) -> Search:
    """The search that `hydra.sweeper` describes (an `hparams_search` preset's Optuna sweeper):
    its `params` parsed into Optuna distributions by the project's sweeper's own parser, as a
    sweep would parse them; a sweeper without params is a one-line error."""
    from hydra.errors import OverrideParseException

    from hydra_plugins.pipeline_optuna_sweeper.params import search_space

    sweeper = hydra.sweeper if hydra is not None else None
    params = sweeper.get("params") if sweeper is not None else None
    if not params or "n_trials" not in sweeper:
        presets = ", ".join(sorted(p.stem for p in (config_dir() / "hparams_search").glob(
            "*.yaml")))
        raise PipelineError(
            f"cv.outer={outer} tunes a model inside each outer fold and needs a search space: "
            f"add hparams_search=<preset> ({presets})")
    written = {str(key): str(value) for key, value in params.items()}
    try:
        space, fixed = search_space([f"{k}={v}" for k, v in written.items()])
    except (OverrideParseException, ValueError) as error:
        raise PipelineError(f"hydra.sweeper.params: {str(error).splitlines()[0]}") from error
    n_trials = sweeper.n_trials
    if not checks.is_int(n_trials) or n_trials < 1:
        raise PipelineError(f"hydra.sweeper.n_trials={n_trials} is not a positive integer")
    sampler = OmegaConf.to_container(sweeper.sampler, resolve=True) if sweeper.get(
        "sampler") else {"_target_": "optuna.samplers.TPESampler", "seed": None}
    if sampler.get("_target_") == "optuna.samplers.GridSampler":
        raise PipelineError("cv.outer: the grid sampler is not supported in nested "
                            "cross-validation; use the preset's sampler (tpe) or random")
    return Search(space, fixed, int(n_trials), sampler, written)


def _model_class(cfg: DictConfig, data_task: str) -> type | None:
    """The class `model._target_` names for `data_task`; None where it names none (no form for
    that task, or not a class: building the model will say what is wrong)."""
    target = OmegaConf.to_container(cfg.model, resolve=False).get("_target_")
    root = OmegaConf.create({"data": {"task": data_task}, "target": target})
    try:
        found = locate(str(root.target))
    except (OmegaConfBaseException, PipelineError, ImportError, AttributeError, ValueError):
        return None
    return found if isinstance(found, type) else None


def _hydra() -> Any:
    """Hydra's own config of this run (None outside a Hydra app, as in a test's compose)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _sweep(hydra: Any) -> Sweep | None:
    if hydra is None or hydra.mode is None or hydra.mode.name != "MULTIRUN":
        return None
    launcher = str(hydra.launcher.get("_target_", ""))
    return Sweep(str(hydra.sweep.dir), int(hydra.job.num), own_process="submitit" in launcher)
