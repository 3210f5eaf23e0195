"""The command: `python -m pipeline.compare`, its arguments (each checked before the store is
touched), and what each of its three forms prints (the leaderboard, --against, --across-data).

    python -m pipeline.compare [--experiment iris] [--sweep latest|DIR] [--format markdown]
    python -m pipeline.compare --against [best|MODEL|RUN_ID] [--rope 0.01]   # paired tests
    python -m pipeline.compare --across-data [--sweep latest|DIR] [--metric M] [--rope 0.01]

A malformed argument, or two that do not go together, is argparse's refusal (its usage, one
`error:` line, exit 2), as for an argument that is not a number; what only the store can say
(no such experiment, no such metric on its jobs) is one `error:` line, exit 1. Nothing but the
table (or the comparison) goes to stdout: whatever a library prints meanwhile goes to stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
import unicodedata
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

from pipeline.compare.defaults import DEFAULT_ROPE, UNITS_METRICS
from pipeline.doctor import uri_argument
from pipeline.errors import PipelineError
from pipeline.tracking.orphans import mark_store

# MLflow's own limits (mlflow.utils.validation): no experiment has a longer name, no run a
# longer tag value (a sweep's directory is its jobs' `sweep` tag).
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_TAG_VAL_LENGTH = 8000


def parser() -> argparse.ArgumentParser:
    """The command's arguments (docs/arguments/compare.md lists what each refuses)."""
    command = argparse.ArgumentParser(
        prog="python -m pipeline.compare",
        description="Rank the jobs of an experiment by their objective's mean across folds.")
    command.add_argument("--uri", default=None, type=uri_argument,
                         help="tracking URI (default: $MLFLOW_TRACKING_URI or outputs/mlflow.db)")
    command.add_argument("--experiment", "-e", type=_experiments,
                         help="experiment (default: the one with the newest finished job)")
    command.add_argument("--sweep", type=_sweep,
                         help="only this multirun's jobs: its directory, or 'latest'")
    command.add_argument("--metric", type=_metric,
                         help="rank by this metric (default: the jobs' objective)")
    command.add_argument("--format", choices=("table", "markdown", "csv"), default="table",
                         help="how the leaderboard is printed (default: table); under markdown "
                              "and csv stdout holds the table alone")
    comparisons = command.add_mutually_exclusive_group()
    comparisons.add_argument(
        "--against", nargs="?", const="best", metavar="RUN_ID|MODEL|best", type=_against,
        help="compare every job with this one, fold by fold (jobs on the same folds only): "
             "corrected t-test and Bayesian correlated t-test; a figure is logged to MLflow "
             "(default without a value: best)")
    comparisons.add_argument(
        "--across-data", action="store_true",
        help="rank a sweep's models on each of its data sets: Friedman, Nemenyi's critical "
             "difference diagram, Bayesian signed-rank test (the sweep's jobs are found in every "
             "experiment; -e A,B,C limits them to those)")
    command.add_argument(
        "--rope", type=_rope, default=None,
        help=f"with --against or --across-data: differences within ±ROPE count as equivalent "
             f"(default {DEFAULT_ROPE} for scores such as accuracy, 0 for "
             f"{', '.join(UNITS_METRICS)})")
    return command


def main(argv: list[str] | None = None) -> int:
    from pipeline.tracking import default_uri

    command = parser()
    args = command.parse_args(argv)
    _check_together(command, args)
    uri = args.uri or default_uri()
    # Whatever MLflow (or any library) prints while the store is read and written, such as
    # its "🏃 View run" lines when orphans are marked on a server, goes to stderr: stdout
    # holds the table and nothing else, in every format.
    with redirect_stdout(sys.stderr):
        found = _from_store(uri, args, _across_data if args.across_data else _leaderboard)
    if found is None:
        return 1
    print(found)
    return 0


# -- the arguments ----------------------------------------------------------------------------

def _rope(text: str) -> float:
    try:
        width = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(width) or width < 0:
        raise argparse.ArgumentTypeError(
            f"a width of practical equivalence is a finite number, at least 0; got {text} "
            f"(e.g. --rope {DEFAULT_ROPE}, or 0 for none)")
    return width


def _metric(text: str) -> str:
    from pipeline import metrics

    try:
        metrics.get(text.removeprefix("test_"))
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is no metric; metrics: {', '.join(metrics.REGISTRY)}, or a scikit-learn "
            "scorer's name (sklearn.metrics.get_scorer_names())") from None
    return text


def _experiments(text: str) -> str:
    """One experiment's name (the leaderboard), or several separated by commas
    (--across-data): their lengths are checked with the other arguments, which say which."""
    if problem := _name_problem(text):
        raise argparse.ArgumentTypeError(f"{_shown(text)} {problem}")
    return text


def _sweep(text: str) -> str:
    from pipeline.tracking.client import quoted

    if problem := _name_problem(text, MAX_TAG_VAL_LENGTH):
        raise argparse.ArgumentTypeError(f"{_shown(text)} {problem}")
    try:
        quoted(text)
    except PipelineError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _against(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty value names no job; give a run id, a model, or best (or no value)")
    return text


def _name_problem(name: str, longest: int | None = None) -> str | None:
    """Why `name` cannot be an experiment's name or a sweep's directory (as the jobs refuse
    them, pipeline.checks), or one longer than MLflow keeps; None if it can."""
    if not name.strip():
        return "names nothing"
    if any(unicodedata.category(character).startswith("C") for character in name):
        return "holds a control character (a line break or a tab)"
    if longest is not None and len(name) > longest:
        return f"is {len(name)} characters long; MLflow keeps at most {longest}"
    return None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else f"{text[:40]}...{text[-10:]}")


def _check_together(command: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What the arguments mean together: refused (exit 2) where one would go unused."""
    if args.rope is not None and args.against is None and not args.across_data:
        command.error("--rope is the width of practical equivalence of --against or "
                      "--across-data; without one of them it would not be used")
    if args.across_data and args.format != "table":  # several tables, tests and a figure
        command.error(f"--format {args.format} is for the leaderboard; --across-data prints "
                      "its tables as text and logs them (ranks.csv) to its comparison run")
    names = ([name.strip() for name in args.experiment.split(",")] if args.across_data
             else [args.experiment]) if args.experiment else []
    for name in names:
        if problem := _name_problem(name, MAX_EXPERIMENT_NAME_LENGTH):
            command.error(f"argument --experiment/-e: {_shown(name)} {problem}")


# -- the store --------------------------------------------------------------------------------

def _from_store(uri: str, args: argparse.Namespace,
                read: Callable[[str, argparse.Namespace], str]) -> str | None:
    """What `read` makes of the store, or None once one line said why the store refused it:
    our refusals, MLflow's (a scheme it does not know, a server's answer) and the operating
    system's (a read-only or missing directory, a file that cannot be read)."""
    from mlflow.exceptions import MlflowException

    from pipeline.tracking.client import check_reachable
    from pipeline.tracking.secrets import redact, scrub

    try:
        if uri.startswith(("http://", "https://")):
            check_reachable(uri)  # seconds, not MLflow's minutes of retries
        return read(uri, args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
    except MlflowException as error:
        print(f"error: the MLflow store {redact(uri)} cannot be used: "
              f"{scrub(' '.join(str(error).split()))[:300]}", file=sys.stderr)
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: the MLflow store {redact(uri)} cannot be read: "
              f"{error.strerror or error}{where}", file=sys.stderr)
    return None


def _leaderboard(uri: str, args: argparse.Namespace) -> str:
    """The leaderboard (with the paired tests of --against) as the format asks; the lines
    under it go to stderr under csv and markdown, so that stdout stays one table."""
    from pipeline.compare.paired import compare_against, log_comparison
    from pipeline.compare.table import (
        FEWER_FOLDS_NOTE,
        fewer_folds,
        leaderboard,
        markdown,
        readable,
    )
    from pipeline.tracking import redact

    mark_store(uri)  # runs left RUNNING by jobs killed outright: KILLED, with the reason
    experiment, table = leaderboard(uri, args.experiment, args.sweep, args.metric)
    lines: list[str] = []
    if args.against is not None:
        table, lines, meta = compare_against(uri, table, args.against, args.rope, args.metric)
        run_id = log_comparison(uri, experiment, table, lines, meta)
        lines.append(f"posterior figure: posterior.png of MLflow run {run_id} "
                     f"(kind=comparison) in experiment {experiment!r}")
    if args.format == "csv":
        shown = table.to_csv(index=False).removesuffix("\n")
    elif args.format == "markdown":
        shown = markdown(table)
    else:
        shown = "\n".join([
            f"experiment {experiment!r} in {redact(uri)}: {len(table)} job(s), best first",
            readable(table, marked=True).to_string(index=False),
            *([FEWER_FOLDS_NOTE] if fewer_folds(table).any() else []), *lines])
        lines = []
    for line in lines:
        print(line)  # stderr: this runs with stdout sent there
    return shown


def _across_data(uri: str, args: argparse.Namespace) -> str:
    """`--across-data`: the comparison as text; the CD diagram saved under
    outputs/comparisons/ and both logged to a comparison run."""
    from pipeline.compare.across_data import across_data, log, save, text
    from pipeline.compare.figures import critical_difference_figure
    from pipeline.tracking import redact

    experiments = [e.strip() for e in args.experiment.split(",")] if args.experiment else None
    mark_store(uri)
    result = across_data(uri, args.sweep, experiments, args.metric, rope=args.rope)
    fig = critical_difference_figure(result) if result.friedman is not None else None
    experiment, run_id = log(uri, result, fig)
    where = f"experiment {experiment!r} of {redact(uri)}, run {run_id} (kind=comparison)"
    if fig is not None:
        folder = Path("outputs") / "comparisons"
        try:
            path = save(fig, folder, run_id)
        except OSError as error:  # the store took it: this is not the store's refusal
            raise PipelineError(f"the comparison is logged to {where}, but its diagram cannot "
                                f"be saved under {folder}: {error.strerror or error}") from error
        return f"{text(result)}\n\ncritical-difference diagram: {path}; logged to {where}"
    return (f"{text(result)}\n\nno critical-difference diagram (Friedman's test not run); "
            f"logged to {where}")
