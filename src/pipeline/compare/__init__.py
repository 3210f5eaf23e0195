"""Comparing jobs read back from MLflow (`python -m pipeline.compare`): the leaderboard, paired
tests against a reference job (--against) and ranks over data sets (--across-data).

Modules by job: `runs` (every query of the store), `defaults` (rope, fallback objective, the
settings that tell jobs apart), `table` (the leaderboard), `paired` (--against), `ranks` and
`across_data` (--across-data: the statistics; the store and the text), `figures`, `cli`.
"""

from pipeline.compare.cli import main
from pipeline.compare.defaults import DEFAULT_ROPE, UNITS_METRICS, default_rope
from pipeline.compare.figures import posterior_figure
from pipeline.compare.paired import (
    Paired,
    compare_against,
    fold_scores,
    log_comparison,
    paired_test,
    reference,
    unpaired_reason,
)
from pipeline.compare.runs import COMPARISON, KIND_TAG, jobs_only
from pipeline.compare.table import leaderboard, markdown, readable

__all__ = ["COMPARISON", "DEFAULT_ROPE", "KIND_TAG", "UNITS_METRICS", "Paired", "compare_against",
           "default_rope", "fold_scores", "jobs_only", "leaderboard", "log_comparison", "main",
           "markdown", "paired_test", "posterior_figure", "readable", "reference",
           "unpaired_reason"]
