"""A resolved config as what MLflow records: secrets scrubbed, flattened to params, hashed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pipeline.tracking.secrets import scrub

# MLflow keeps param values up to this length.
MAX_PARAM_LENGTH = 6000
# The settings that say where and how a job ran, not what it computed: a config key is one
# when a part of its dotted path is named here (`cv.n_jobs`, `model.trainer.devices`). The
# comparisons never tell jobs apart by them, nor does the config hash (`resume=true`).
HOW_IT_RAN = ("hydra", "tracking", "resume", "threads", "n_jobs", "batch_folds", "trainer")
# Of those, the ones every config hash has included since hashes were first recorded: left out
# now, they would change every job's digest, and `resume=true` would run again the jobs that
# earlier versions recorded.
HASHED_SINCE_THE_FIRST_DIGEST = ("trainer", "cv.batch_folds")
# Nested CV's `cv` keys while unset, so that a job recorded before they existed is still found
# by `resume=true`.
CV_UNSET_NOT_HASHED = ("outer", "outer_splits")


def how_it_ran(key: str) -> bool:
    """Whether the dotted config key (`cv.n_jobs`, `model.trainer.devices`) says how a job ran
    rather than what it computed."""
    return any(part in HOW_IT_RAN for part in key.split("."))


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
    kept = {key: value for key, value in resolved.items() if _hashed(key)}
    if isinstance(kept.get("cv"), Mapping):
        kept["cv"] = {key: value for key, value in kept["cv"].items()
                      if _hashed(f"cv.{key}")
                      and not (key in CV_UNSET_NOT_HASHED and value is None)}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _hashed(key: str) -> bool:
    return not how_it_ran(key) or key in HASHED_SINCE_THE_FIRST_DIGEST
