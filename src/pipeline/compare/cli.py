"""The command: `python -m pipeline.compare`, its arguments, and what each of its three forms
prints (the leaderboard, --against, --across-data).

    python -m pipeline.compare [--experiment iris] [--sweep latest|DIR] [--format markdown]
    python -m pipeline.compare --against [best|MODEL|RUN_ID] [--rope 0.01]   # paired tests
    python -m pipeline.compare --across-data [--sweep latest|DIR] [--metric M] [--rope 0.01]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.compare.defaults import DEFAULT_ROPE, UNITS_METRICS
from pipeline.errors import PipelineError
from pipeline.tracking.orphans import mark_store


def main(argv: list[str] | None = None) -> int:
    from pipeline.compare.paired import compare_against, log_comparison
    from pipeline.compare.table import leaderboard, markdown, readable
    from pipeline.tracking import default_uri, redact

    parser = argparse.ArgumentParser(
        prog="python -m pipeline.compare",
        description="Rank the jobs of an experiment by their objective's mean across folds.")
    parser.add_argument("--uri", default=None,
                        help="tracking URI (default: $MLFLOW_TRACKING_URI or outputs/mlflow.db)")
    parser.add_argument("--experiment", "-e",
                        help="experiment (default: the one with the newest finished job)")
    parser.add_argument("--sweep", help="only this multirun's jobs: its directory, or 'latest'")
    parser.add_argument("--metric", help="rank by this metric (default: the jobs' objective)")
    parser.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    parser.add_argument(
        "--against", nargs="?", const="best", metavar="RUN_ID|MODEL|best",
        help="compare every job with this one, fold by fold (jobs on the same folds only): "
             "corrected t-test and Bayesian correlated t-test; a figure is logged to MLflow "
             "(default without a value: best)")
    parser.add_argument(
        "--rope", type=float, default=None,
        help=f"with --against or --across-data: differences within ±ROPE count as equivalent "
             f"(default {DEFAULT_ROPE} for scores such as accuracy, 0 for "
             f"{', '.join(UNITS_METRICS)})")
    _add_across_data_arguments(parser)
    args = parser.parse_args(argv)
    uri = args.uri or default_uri()
    if args.across_data:
        if args.format != "table":  # its several tables, tests and figure are not one table
            parser.error(f"--format {args.format} is for the leaderboard; --across-data prints "
                         "its tables as text and logs them (ranks.csv) to its comparison run")
        return _across_data(uri, args)
    lines: list[str] = []
    try:
        mark_store(uri)  # runs left RUNNING by jobs killed outright: KILLED, with the reason
        experiment, table = leaderboard(uri, args.experiment, args.sweep, args.metric)
        if args.against is not None:
            table, lines, meta = compare_against(uri, table, args.against, args.rope,
                                                 args.metric)
            run_id = log_comparison(uri, experiment, table, lines, meta)
            lines.append(f"posterior figure: posterior.png of MLflow run {run_id} "
                         f"(kind=comparison) in experiment {experiment!r}")
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "markdown":
        print(markdown(table))
    else:
        print(f"experiment {experiment!r} in {redact(uri)}: {len(table)} job(s), best first")
        print(readable(table).to_string(index=False))
    for line in lines:  # stderr under csv, so that the table stays a clean file
        print(line, file=sys.stderr if args.format == "csv" else sys.stdout)
    return 0


def _add_across_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--across-data", action="store_true",
        help="rank a sweep's models on each of its data sets: Friedman, Nemenyi's critical "
             "difference diagram, Bayesian signed-rank test (the sweep's jobs are found in every "
             "experiment; -e A,B,C limits them to those)")


def _across_data(uri: str, args: argparse.Namespace) -> int:
    """`--across-data`: print the comparison, save the CD diagram under outputs/comparisons/
    and log both to a comparison run."""
    from pipeline.compare.across_data import across_data, log, save, text
    from pipeline.compare.figures import critical_difference_figure
    from pipeline.tracking import redact

    experiments = [e.strip() for e in args.experiment.split(",")] if args.experiment else None
    try:
        mark_store(uri)
        result = across_data(uri, args.sweep, experiments, args.metric, rope=args.rope)
        fig = critical_difference_figure(result) if result.friedman is not None else None
        experiment, run_id = log(uri, result, fig)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(text(result))
    where = f"experiment {experiment!r} of {redact(uri)}, run {run_id} (kind=comparison)"
    if fig is not None:
        path = save(fig, Path("outputs") / "comparisons", run_id)
        print(f"\ncritical-difference diagram: {path}; logged to {where}")
    else:
        print(f"\nno critical-difference diagram (Friedman's test not run); logged to {where}")
    return 0
