"""What every comparison assumes unless told, one home each: the rope per metric, the
objective of jobs that recorded none, and which recorded settings tell two jobs apart."""

from __future__ import annotations

import pandas as pd

from pipeline.tracking.params import how_it_ran

# Metrics whose differences are in the data's own units (an error such as mse, the inertia of
# clusters): no width of practical equivalence suits every data set (0.01 of a house price's
# squared error is nothing, of a normalised target's a lot), so by default they get no rope,
# both against one reference job (--against) and over data sets (--across-data), where the
# differences of several data sets mix several units. The user says what difference matters.
UNITS_METRICS = ("mse", "mae", "inertia")
# The default rope for the other metrics, scores on a 0-1 (or -1-1) scale: a hundredth, a point
# of accuracy, the width of practical equivalence Benavoli et al. (JMLR 2017) use.
DEFAULT_ROPE = 0.01
# The objective of jobs recorded before they carried one (tag `objective`): accuracy where
# they scored it (the config's default for classification), else r2 (for regression).
FALLBACK_OBJECTIVES = ("test_accuracy", "test_r2")
# Recorded settings that never tell two jobs apart in a comparison (besides those that say how
# a job ran, pipeline.tracking.params.HOW_IT_RAN): the name and the class that the run's tags
# already say (`model`, `data`, `cv`), and the random_state that follows `seed`.
SAID_BY_TAGS = ("name", "_target_")
SAID_ELSEWHERE = (*SAID_BY_TAGS, "random_state")


def default_rope(metric: str) -> float:
    """0.01 for a score on a 0-1 (or -1-1) scale, 0 (no rope) for an error in the data's units."""
    return 0.0 if metric.removeprefix("test_") in UNITS_METRICS else DEFAULT_ROPE


def recorded_objective(runs: pd.DataFrame) -> str:
    """The objective (`test_<metric>`) most of these jobs recorded, else the fallback."""
    recorded = runs.get("tags.objective", pd.Series(dtype=str)).dropna()
    if not recorded.empty:
        return recorded.mode().iloc[0]
    first, otherwise = FALLBACK_OBJECTIVES
    return first if f"metrics.{first}_mean" in runs else otherwise


def tells_jobs_apart(column: str, said_elsewhere: tuple[str, ...] = SAID_ELSEWHERE) -> bool:
    """Whether a run table's column (`params.model.lr`) is a setting that can tell two jobs
    apart, rather than one that says how a job ran or that another column already says."""
    key = column.removeprefix("params.").removeprefix("tags.")
    return not how_it_ran(key) and not any(part in said_elsewhere for part in key.split("."))
