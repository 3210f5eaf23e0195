"""Where this process stands in a job that torchrun or SLURM started as several copies (one
per rank): each rank runs the whole job, and only rank 0 records and reports."""

from __future__ import annotations

import os


def global_rank() -> int:
    """This process's rank when torchrun or SLURM started several copies of the job, else 0."""
    for variable in ("RANK", "SLURM_PROCID"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 0


def world_size() -> int:
    """How many copies of the job torchrun started (1 when it did not)."""
    return int(os.environ.get("WORLD_SIZE", "1"))
