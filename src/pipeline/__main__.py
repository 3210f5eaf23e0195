"""`python -m pipeline [overrides]`: one job, or a sweep with `-m`."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

import hydra
from omegaconf import DictConfig

from pipeline.compat.hydra import quick_help
from pipeline.config import config_dir
from pipeline.errors import JobStopped, PipelineError, exit_status, stop_on_signals

HELP = {"--help", "-h", "--hydra-help"}


def main() -> None:
    """The command line: a job or a sweep (`job`), stopped cleanly by a stop signal.

    Ctrl-C (SIGINT), SIGTERM or SIGHUP mark the runs in progress KILLED (the finished folds
    stay FINISHED), print where the partial results are, and exit with the shell's status
    for the signal: 130, 143, 129. In a sweep whose launcher ran the jobs in other processes
    (joblib), the runs those processes could not end are marked KILLED here; submitit_local's
    jobs, which would outlive this process, are stopped first.
    """
    stop_on_signals()
    # conf/hydra/launcher/ray.yaml sets two of the Ray launcher's settings; Hydra merges it with
    # the plugin's schema of the same name, as meant, and warns that it would rather not.
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against "
                            "ConfigStore schema", category=UserWarning)
    try:
        from pipeline.arguments import check_overrides

        check_overrides(sys.argv[1:])  # a key Hydra would stumble on, said before it reads any
        sys.argv[1:] = _nested_as_one_job(sys.argv[1:])
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    try:
        with quick_help() if HELP.intersection(sys.argv[1:]) else contextlib.nullcontext():
            job()
    except KeyboardInterrupt as interrupt:
        from pipeline import sweeps

        told = [getattr(interrupt, "where", ""), sweeps.end_interrupted_sweep()]
        where = "; ".join(filter(None, told)) or "no MLflow run was in progress"
        print(f"interrupted: {where}", file=sys.stderr)
        # torch logs cache statistics at exit at INFO, which Hydra's job logging would print.
        logging.getLogger("torch").setLevel(logging.WARNING)
        sys.exit(exit_status(interrupt))


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def job(cfg: DictConfig) -> float:
    """Run one job; return the mean of `objective` across folds for sweepers.

    A user mistake (PipelineError) prints one `error: ` line and exits 1 (in a sweep the sweep
    goes on and lists it at the end; `HYDRA_FULL_ERROR=1` shows the traceback too). A stop
    signal ends the job's runs and stops the sweep too (see `main`), except where the launcher
    gave the job a process of its own (submitit): there it is that job's failure (`JobStopped`),
    listed in the sweep's summary, and the other jobs go on.
    """
    stop_on_signals()  # again: a joblib launcher runs the job in a worker process
    try:
        _check_settings(cfg)
        if _in_sweep():
            from pipeline.sweeps import check_sweep_cwd

            check_sweep_cwd()
        if cfg.cv.get("outer") and _in_sweep():  # set in a config file rather than typed
            raise PipelineError(f"cv.outer={cfg.cv.outer} runs its search inside one job, not "
                                "in a sweep: set it on the command line, without -m")
        from pipeline.entry import run  # scikit-learn, pandas: after the quick checks

        return run(cfg).score
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        if _in_sweep() or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        if _in_sweep() and _own_process_per_job():
            raise JobStopped.by(interrupt) from None
        raise
    except Exception as error:  # noqa: BLE001 - the process boundary: a defect of ours, reported
        kept = _keep_traceback(error)
        print(f"internal error: {type(error).__name__}: {' '.join(str(error).split())}\n"
              f"  this is a defect of pipeline, not a mistake in your config or data; the "
              f"traceback is in {kept}", file=sys.stderr)
        if _in_sweep() or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(2)


def _keep_traceback(error: BaseException) -> str:
    """The full traceback written beside the job's run (Hydra's output directory for it, else
    the working directory); where it went."""
    import traceback
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    where = (Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized()
             else Path.cwd())
    from pipeline.tracking.secrets import scrub

    text = scrub("".join(traceback.format_exception(error)))  # kept on disk: no password
    try:
        where.mkdir(parents=True, exist_ok=True)
        (where / "traceback.txt").write_text(text)
    except OSError:
        print(text, file=sys.stderr, end="")  # nowhere to keep it: shown instead
        return "the lines above"
    return str(where / "traceback.txt")


def _nested_as_one_job(args: list[str]) -> list[str]:
    """`cv.outer=<option>` (nested cross-validation) runs the `hparams_search` preset's search
    inside one job, a study per outer fold: the preset's `hydra.mode: MULTIRUN` gives way to a
    single run. A sweep of such jobs (`-m`) or a list of outer schemes is refused."""
    typed = [arg.split("=", 1)[1] for arg in args
             if "=" in arg and arg.split("=", 1)[0].lstrip("+~") == "cv.outer"]
    if not typed or typed[-1].strip() in ("", "null"):
        return args
    outer = typed[-1]
    if "," in outer:
        raise PipelineError(f"cv.outer={outer}: name one cv option for the outer folds, "
                            "e.g. cv.outer=kfold")
    if {"-m", "--multirun"} & set(args):
        raise PipelineError(f"cv.outer={outer} runs the search inside one job (a study per "
                            "outer fold), not as a sweep: drop -m/--multirun")
    return [*args, "hydra.mode=RUN"]


def _check_settings(cfg: DictConfig) -> None:
    """The top-level settings that need no data, checked before the runner and the libraries
    it needs load, so that such a mistake answers at once (the runner checks them too)."""
    from pipeline import checks, threads

    checks.seed(cfg.get("seed"))
    threads.check(cfg.get("threads", threads.AUTO))


def _own_process_per_job() -> bool:
    """Whether the sweep's launcher runs each job as a process of its own that hands back a
    result (submitit, locally or on SLURM): an interrupt escaping the job would leave no result,
    and the launcher would end the sweep with its traceback."""
    from hydra.core.hydra_config import HydraConfig

    return "submitit" in str(HydraConfig.get().launcher.get("_target_", ""))


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


if __name__ == "__main__":
    main()
