"""The sweeper's config (`hydra/sweeper=optuna`) and its samplers
(`hydra/sweeper/sampler=tpe|random|grid`), with the Hydra Optuna sweeper's names and defaults
so that its command lines and presets keep working."""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in
# sys.modules, where dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TPESamplerConfig:
    _target_: str = "optuna.samplers.TPESampler"
    # Workers sharing a study need seeds of their own (docs/how-to/sweeps.md).
    seed: int | None = None
    n_startup_trials: int = 10


@dataclass
class RandomSamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = None


@dataclass
class GridSamplerConfig:
    """The grid comes from `params` at sweep time. The seed orders the grid: workers sharing
    a study must have the same one (they tell each other's points apart by position)."""

    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True
    seed: int | None = None


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.pipeline_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: Any = MISSING
    direction: str = "minimize"  # or maximize
    # An Optuna RDB URL (sqlite:///study.db, postgresql+psycopg2://...): the study outlives
    # the sweep, and workers given the same storage and study_name share its trials.
    storage: str | None = None
    study_name: str | None = None
    n_trials: int = 20
    # Trials asked, then launched, together (in parallel with a parallel launcher).
    n_jobs: int = 2
    # The search stops once more than this share of a batch's trials failed; at 1 a failed
    # job never stops it (the failure is reported at the sweep's end, as in any sweep).
    max_failure_rate: float = 1.0
    params: dict[str, str] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf,
                             provider="pipeline")
for name, node in (("tpe", TPESamplerConfig), ("random", RandomSamplerConfig),
                   ("grid", GridSamplerConfig)):
    ConfigStore.instance().store(group="hydra/sweeper/sampler", name=name, node=node,
                                 provider="pipeline")
