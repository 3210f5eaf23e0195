"""What a job prints: its config, a line per fold as it ends, then the per-fold and mean ± std
table and where the runs are. Styled by `rich` on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pipeline.data import Dataset
    from pipeline.spec import Job

log = logging.getLogger("pipeline")
# Beyond this many folds (leave-one-out, repeated k-fold) the table shows a row per repeat (the
# mean of its folds) where the scheme repeats, then the summary rows.
MAX_FOLD_ROWS = 20
# After the `mlflow ui` line, as a shell comment, so that the line still pastes as it is:
# measured, the UI answers its first request some 20 s after it starts (MLflow 3, 2 cores).
UI_START = "# the UI takes ~20 s to start"


@dataclass
class Result:
    """What a job measured: one row of scores per fold, and where MLflow keeps them."""

    folds: pd.DataFrame
    summary: pd.DataFrame
    objective: str
    experiment: str
    run_id: str
    uri: str
    repeats: int = 1  # rounds of the cv scheme (repeated k-fold), `len(folds) // repeats` each

    @property
    def score(self) -> float:
        return float(self.summary.loc["mean", self.objective])

    @property
    def spread(self) -> float:
        return float(self.summary.loc["std", self.objective])


def brief(row: dict[str, float], objective: str) -> str:
    shown = [k for k in (f"test_{objective}", f"val_{objective}", f"train_{objective}") if k in row]
    return "  ".join(f"{k}={row[k]:.4f}" for k in shown) + f"  fit {row['fit_time']:.2f}s"


def table(folds: pd.DataFrame, summary: pd.DataFrame, objective: str, repeats: int = 1) -> str:
    """Scores as text: a row per fold (up to MAX_FOLD_ROWS; beyond, a row per repeat of a
    repeated scheme), then `mean ± std` across folds. Held-out scores, the training score of
    the objective and the fit time; the rest is in MLflow."""
    train = objective.replace("test_", "train_", 1)
    columns = [c for c in folds.columns if c.startswith(("val_", "test_"))]
    columns += [c for c in (train, "fit_time") if c in folds.columns]
    shown = _rows(folds, repeats)[columns].map(_number)
    spread = pd.DataFrame(
        [[f"{_number(summary.loc['mean', c])}±{_number(summary.loc['std', c])}" for c in columns]],
        index=["mean±std"], columns=columns,
    )
    shown = pd.concat([shown, spread])
    # Two header lines, part over metric, keep the table narrow.
    shown.columns = pd.MultiIndex.from_tuples(
        [tuple(c.split("_", 1)) if c != "fit_time" else ("", c) for c in columns]
    )
    return shown.to_string()


def print_result(result: Result, dataset: Dataset, model: str, scheme: str) -> None:
    """The job's per-fold table and mean ± std, and where MLflow keeps the runs."""
    from pipeline.tracking import redact

    n, repeats = len(result.folds), result.repeats
    notes = [f"{repeats} repeats of {n // repeats}"] if repeats > 1 else []
    if _by_repeat(n, repeats):
        notes.append("a row per repeat: the mean of its folds")
    if n > MAX_FOLD_ROWS:
        notes.append("per-fold rows in the run's folds.csv")
    note = f" ({'; '.join(notes)})" if notes else ""
    heading = f"{model} on {dataset.name}, cv={scheme}, {n} fold(s){note}"
    where = [
        f"{result.objective}: {result.score:.4f} ± {result.spread:.4f}",
        f"MLflow: experiment {result.experiment!r}, parent run {result.run_id}",
        f"  store: {redact(shown_uri(result.uri))}",
        f"  view:  {_ui_command(shown_uri(result.uri))}",
    ]
    if not interactive():
        log.info("\n".join(["", heading, table(result.folds, result.summary, result.objective,
                                                 repeats), "", *where]))
        return
    from rich.text import Text

    console = _console()
    console.print()
    console.print(_rich_table(result.folds, result.summary, result.objective, heading, repeats))
    console.print(Text(where[0], style="bold"))
    for line in where[1:]:
        console.print(line, highlight=False, markup=False)


def interactive() -> bool:
    """Whether stdout is a terminal: styled output and progress bars there, plain lines when
    it is a file or a pipe (logs, CI, tests)."""
    return sys.stdout.isatty()


# Config groups shown at the start of a job, in this order; keys that only wire the tree
# together (`_target_`, the model's copy of `trainer`) are left out.
GROUPS = ("data", "model", "preprocess", "cv", "trainer", "tracking")
TOP_LEVEL = ("seed", "objective", "plots", "refit", "threads", "resume")
_HIDDEN = ("_target_", "name", "trainer")


def config_summary(job: Job) -> list[tuple[str, str, dict[str, Any]]]:
    """`(group, chosen option, {key: value})` for each group the job uses, then the top-level
    settings as a group named `job`. The trainer only for models that have one."""
    from pipeline.spec import thaw
    from pipeline.tracking import redact

    resolved, choices = thaw(job.config), job.choices
    groups = []
    for group in GROUPS:
        node = resolved.get(group)
        unused = group == "trainer" and "trainer" not in resolved.get("model", {})
        if not isinstance(node, dict) or unused:
            continue
        keys = {k: v for k, v in node.items() if k not in _HIDDEN}
        if group == "tracking" and keys.get("uri"):
            keys["uri"] = redact(str(keys["uri"]))
        groups.append((group, str(choices.get(group) or node.get("name", "")), keys))
    groups.append(("job", "", {k: resolved[k] for k in TOP_LEVEL if k in resolved}))
    return groups


def print_config(job: Job) -> None:
    """The job's config, short: each chosen group with its keys (a tree on a terminal)."""
    summary = config_summary(job)
    if not interactive():
        lines = ["config:"]
        for group, option, keys in summary:
            label = f"{group}: {option}" if option else f"{group}:"
            lines.append(f"  {label}  {_keys(keys)}".rstrip())
        log.info("\n".join(lines))
        return
    from rich.text import Text
    from rich.tree import Tree

    tree = Tree(Text("config", style="bold"), guide_style="dim")
    for group, option, keys in summary:
        label = Text.assemble((group, "bold cyan"), (f": {option}" if option else ""))
        node = tree.add(label)
        if keys:
            node.add(Text.assemble(*[part for k, v in keys.items()
                                     for part in ((k, "dim"), f"={_value(v)}  ")]))
    _console().print(tree)


@contextmanager
def progress(total: int, estimator: Any = None) -> Iterator[Callable[[Any], Any]]:
    """A progress bar across folds on a terminal; `step(row)` advances it and returns `row`.

    Log lines (a line per fold) print above the bar. A torch model draws Lightning's own
    per-epoch bar instead, so two live displays never fight over the terminal. Off a
    terminal, or for a single fold, nothing is drawn.
    """
    from pipeline.models import requires

    torch_model = estimator is not None and "torch" in requires(estimator)
    if not interactive() or total < 2 or torch_model:
        yield lambda row: row
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("folds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=_console(), transient=True)
    task = bar.add_task("folds", total=total)

    def step(row: Any) -> Any:
        bar.advance(task)
        return row

    with bar, _log_through(sys.stdout):  # rich's proxy, now that the bar is live
        yield step


@contextmanager
def _log_through(stream: Any) -> Iterator[None]:
    """Point the terminal's logging handlers at `stream` (rich's proxy while a bar shows),
    so that log lines print above the bar instead of through it."""
    terminal = (sys.__stdout__, sys.__stderr__)
    handlers = [h for logger in (logging.getLogger(), log) for h in logger.handlers
                if type(h) is logging.StreamHandler and h.stream in terminal]
    before = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(stream)
    try:
        yield
    finally:
        for handler, original in zip(handlers, before, strict=True):
            handler.setStream(original)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _rich_table(folds: pd.DataFrame, summary: pd.DataFrame, objective: str, title: str,
                repeats: int = 1) -> Any:
    """The plain table's content, narrow enough for 80 columns: part over metric in the
    header, mean and std on rows of their own, the objective in bold."""
    from rich import box
    from rich.table import Table

    train = objective.replace("test_", "train_", 1)
    columns = [c for c in folds.columns if c.startswith(("val_", "test_"))]
    columns += [c for c in (train, "fit_time") if c in folds.columns]
    grid = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                 header_style="bold", pad_edge=False)
    rows = _rows(folds, repeats)
    grid.add_column(rows.index.name or "fold",
                    min_width=max([4, *(len(str(label)) for label in rows.index)]))
    for column in columns:
        header = "\n".join(column.split("_", 1)) if column != "fit_time" else "\nfit_time"
        # Numbers keep their 5 characters; on a narrow terminal the headers fold instead.
        grid.add_column(header, justify="right", overflow="fold", min_width=5,
                        style="bold" if column == objective else None)
    if len(rows):
        for index, row in rows[columns].iterrows():
            grid.add_row(str(index), *(_number(v) for v in row))
        grid.add_section()
    for stat in ("mean", "std"):
        grid.add_row(stat, *(_number(summary.loc[stat, c]) for c in columns), style="bold")
    return grid


def _rows(folds: pd.DataFrame, repeats: int) -> pd.DataFrame:
    """The rows the table shows above its summary: every fold, up to MAX_FOLD_ROWS; beyond, the
    mean of each repeat's folds (`repeat-<r>`) where the scheme repeats, else none."""
    if len(folds) <= MAX_FOLD_ROWS:
        return folds
    if not _by_repeat(len(folds), repeats):
        return folds.iloc[0:0]
    per_repeat = len(folds) // repeats
    means = folds.groupby(np.arange(len(folds)) // per_repeat).mean()  # NaN left out, as in mean
    means.index = pd.Index([f"repeat-{r}" for r in range(1, repeats + 1)], name="repeat")
    return means


def _by_repeat(n_folds: int, repeats: int) -> bool:
    """Whether a table of `n_folds` rows shows a row per repeat instead (see `_rows`)."""
    return n_folds > MAX_FOLD_ROWS and 1 < repeats <= MAX_FOLD_ROWS


def _keys(keys: dict[str, Any]) -> str:
    return "  ".join(f"{k}={_value(v)}" for k, v in keys.items())


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def shown_uri(uri: str, cwd: Path | None = None) -> str:
    """The store's URI as the docs write it: an SQLite file under the working directory
    relative to it (`sqlite:///outputs/mlflow.db`, which MLflow reads from that directory, so
    the printed `mlflow ui` line works pasted there); any other URI as it is."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path, mark, query = uri[len(prefix):].partition("?")
    try:
        relative = Path(path).relative_to(cwd or Path.cwd())
    except ValueError:  # a relative path already, or a file outside the working directory
        return uri
    return f"{prefix}{relative.as_posix()}{mark}{query}"


def _ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}  {UI_START}"


def _number(value: float) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.3f}"
