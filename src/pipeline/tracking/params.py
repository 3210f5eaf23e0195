"""A resolved config as what MLflow records: secrets scrubbed, flattened to params, hashed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pipeline.tracking.secrets import scrub

# MLflow keeps param values up to this length.
MAX_PARAM_LENGTH = 6000
# Config keys that say where and how a job is recorded or run, not what it computes.
NOT_HASHED = ("hydra", "tracking", "resume", "threads")
# `cv` keys likewise: how many folds run at once, and nested CV's keys while unset (so a job
# recorded before they existed is still found by `resume=true`).
CV_NOT_HASHED = ("n_jobs",)
CV_UNSET_NOT_HASHED = ("outer", "outer_splits")


def loggable(tree: Any) -> Any:
    """A resolved config fit to record or print: the password of every URI in it (the
    `tracking.uri`, whether typed or read from MLFLOW_TRACKING_URI, or any other) redacted."""
    if isinstance(tree, Mapping):
        return {key: loggable(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [loggable(value) for value in tree]
    return scrub(tree) if isinstance(tree, str) else tree


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model": {"lr": 0.1}}` → `{"model.lr": "0.1"}`, as MLflow params."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def config_hash(resolved: Mapping[str, Any]) -> str:
    """A digest of what a job computes: its resolved config minus where it is recorded."""
    kept = {key: value for key, value in resolved.items() if key not in NOT_HASHED}
    if isinstance(kept.get("cv"), Mapping):
        kept["cv"] = {key: value for key, value in kept["cv"].items()
                      if key not in CV_NOT_HASHED
                      and not (key in CV_UNSET_NOT_HASHED and value is None)}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
