"""Process identity: the tags by which a run names the process that made it, so that an
orphan (its process killed outright) can be told later (`pipeline.doctor`)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

# Tags of every run naming the process that made it (see `process_tags`).
HOST_TAG, PID_TAG, PID_START_TAG, PID_SPACE_TAG = "host", "pid", "pid_start", "pid_namespace"


# In a job that a Ray worker runs (hydra/launcher=ray): the Ray node it ran on.
RAY_NODE_TAG = "ray_node"


def process_tags() -> dict[str, str]:
    """What tells, later, whether the process making a run still lives: the host, the process
    id, and when the process started (a pid alone may since belong to another process); in a
    Ray worker, its Ray node too (several nodes may share a host)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            PID_START_TAG: process_start(os.getpid()) or "", PID_SPACE_TAG: pid_namespace(),
            **_ray_node()}


def _ray_node() -> dict[str, str]:
    """{RAY_NODE_TAG: node id} in a process connected to Ray; Ray is never imported here (a
    second's import for every job that does not use it)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return {}
    return {RAY_NODE_TAG: ray.get_runtime_context().get_node_id()}


def pid_namespace() -> str:
    """Which process ids this process sees: containers sharing a host name may each have
    their own (Linux; "" elsewhere)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """When process `pid` of this host started, as `<boot id>:<clock ticks since boot>`; None
    if no such process lives. Without /proc (not Linux) only liveness is known: "" if alive."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, someone else's
        return ""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: fields are counted after it.
    state, *fields = stat[stat.rindex(")") + 2:].split()
    if state in ("Z", "X"):
        return None  # ended, not yet reaped by its parent
    return f"{_boot_id()}:{fields[22 - 4]}"  # field 22 of proc(5), `starttime`


def _boot_id() -> str:
    """Tells this boot of the machine from the others: start ticks restart at each boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
