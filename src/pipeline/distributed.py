"""Where this process stands in a job that torchrun or SLURM started as several copies (one
per rank): each rank runs the whole job, and only rank 0 records and reports."""

from __future__ import annotations

import os

from pipeline.errors import PipelineError


def global_rank() -> int:
    """This process's rank when torchrun or SLURM started several copies of the job, else 0."""
    for variable in ("RANK", "SLURM_PROCID"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    return 0


def world_size() -> int:
    """How many copies of the job torchrun started (1 when it did not)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_processes(devices: int, nodes: int) -> None:
    """Under torchrun, Lightning's DDP expects `trainer.devices` × `trainer.num_nodes` to be
    the ranks torchrun started, and says otherwise only at the first fit, in a traceback per
    rank after the job's run was made: refused here before any run, with the settings that
    match (`devices`: processes per node, `num_nodes`: nodes)."""
    per_node, ranks = os.environ.get("LOCAL_WORLD_SIZE", ""), world_size()
    if not per_node.isdigit() or devices * nodes == ranks:
        return
    machines = max(ranks // int(per_node), 1)
    raise PipelineError(
        f"trainer.devices={devices} trainer.num_nodes={nodes} make {devices * nodes} "
        f"process(es), but torchrun started {ranks} ({machines} node(s) of {per_node}); set "
        f"trainer.devices={per_node} trainer.num_nodes={machines}")
