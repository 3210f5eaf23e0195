"""`python -m pipeline [overrides]`: one job, or a sweep with `-m`."""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

from pipeline.config import config_dir
from pipeline.errors import PipelineError

# Ctrl-C: the shell's status for a process ended by SIGINT.
INTERRUPTED = 130


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one job; return the mean of `objective` across folds for sweepers.

    A user mistake (PipelineError) prints one `error: ` line and exits 1 (in a sweep the sweep
    goes on and lists it at the end; `HYDRA_FULL_ERROR=1` shows the traceback too). Ctrl-C
    prints where the partial results are and exits 130, a sweep included.
    """
    from pipeline.runner import run

    try:
        return run(cfg).score
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        if _in_sweep() or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        where = str(interrupt) or "no MLflow run was in progress"
        print(f"interrupted: {where}", file=sys.stderr)
        # torch logs cache statistics at exit at INFO, which Hydra's job logging would print.
        logging.getLogger("torch").setLevel(logging.WARNING)
        sys.exit(INTERRUPTED)


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


if __name__ == "__main__":
    main()
