"""`python -m pipeline [overrides]`: one job, or a sweep with `-m`."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from pipeline.config import config_dir
from pipeline.errors import PipelineError


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one job; return the mean of `objective` across folds for sweepers."""
    from pipeline.runner import run

    try:
        return run(cfg).score
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        if _in_sweep():
            raise
        sys.exit(1)


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


if __name__ == "__main__":
    main()
