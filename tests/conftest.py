"""Shared fixtures: the real config composed with Hydra, the real entry point, a private store
(built from a pre-migrated template)."""

from __future__ import annotations

import io
import logging
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pipeline.config import config_dir
from tests.store_template.sitecustomize import TEMPLATE_VARIABLE, from_template

ROOT = Path(__file__).resolve().parents[1]

# pytest-xdist runs a test per core; torch's default of a thread per core in each of them (and
# in the jobs they start, which inherit this) would put two threads on every core, and small
# networks then crawl. Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Where the suite's time goes, by CPU rather than wall clock (a shared machine makes the wall
# clock lie): each test's setup, call and teardown, this process plus the children it waited
# for (the `python -m pipeline` subprocesses). A module-scoped fixture is charged to the test
# that first needs it.
CPU_REPORTED = 25
_cpu_used: dict[str, tuple[float, float]] = {}
_started = pytest.StashKey[tuple[float, float]]()


def _cpu_seconds() -> float:
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    item.stash[_started] = (_cpu_seconds(), time.perf_counter())
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if call.when == "teardown" and _started in item.stash:
        cpu, wall = item.stash[_started]
        report = outcome.get_result()
        # On the report, so that it also reaches the controller under pytest-xdist.
        report.user_properties.append(("cpu_s", _cpu_seconds() - cpu))
        report.user_properties.append(("wall_s", time.perf_counter() - wall))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    spent = dict(report.user_properties)
    if report.when == "teardown" and "cpu_s" in spent:
        _cpu_used[report.nodeid] = (spent["cpu_s"], spent["wall_s"])


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _cpu_used:
        return
    total_cpu = sum(cpu for cpu, _ in _cpu_used.values())
    terminalreporter.section(f"{CPU_REPORTED} tests using the most CPU (this process and its "
                             f"children; all {len(_cpu_used)} tests: {total_cpu:.0f} s)")
    ranked = sorted(_cpu_used.items(), key=lambda item: item[1][0], reverse=True)
    for nodeid, (cpu, wall) in ranked[:CPU_REPORTED]:
        terminalreporter.write_line(f"{cpu:8.2f}s cpu {wall:8.2f}s wall  {nodeid}")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """For a module of tiny torch networks: torch on one thread (fastest for them, and steady on
    shared CPUs), its count put back after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Where MLflow builds a new SQL store's schema (its ~50 migrations, seconds of CPU each time): the
# tracking store calls it through its module, the registry store imported it by name.
SCHEMA_BUILDERS = ("mlflow.store.db.utils._initialize_tables",
                   "mlflow.store.model_registry.sqlalchemy_store._initialize_tables")
TEMPLATE_SITE = Path(__file__).resolve().parent / "store_template"


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the template store lives (one per xdist worker), built when first needed."""
    return tmp_path_factory.getbasetemp() / "template-mlflow.db"


@pytest.fixture(scope="session")
def store_from_template(store_template: Path) -> Callable[[Any], None]:
    """MLflow's schema builder, made to copy the template into each new SQLite store."""
    from mlflow.store.db import utils

    build = utils._initialize_tables  # noqa: SLF001 (the original, before the tests patch it)
    return from_template(build, store_template)


@pytest.fixture(autouse=True)
def template_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new SQLite store a test makes, in this process or in the Python processes it
    starts (through tests/store_template/sitecustomize.py), is a copy of the template (a file
    copy, milliseconds), except in tests marked `store_creation`: those are about building a
    store, and get MLflow's own migrations."""
    if request.node.get_closest_marker("store_creation"):
        monkeypatch.delenv(TEMPLATE_VARIABLE, raising=False)
        return
    initialize = request.getfixturevalue("store_from_template")
    for builder in SCHEMA_BUILDERS:
        monkeypatch.setattr(builder, initialize)
    monkeypatch.setenv(TEMPLATE_VARIABLE, str(request.getfixturevalue("store_template")))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(TEMPLATE_SITE), os.environ.get("PYTHONPATH")])))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory: the default MLflow store lands in its outputs/."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def make_cfg(workdir: Path) -> Callable[..., DictConfig]:
    """Compose the real config tree with command-line style overrides."""

    def make(*overrides: str) -> DictConfig:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose("config", overrides=list(overrides))

    return make


@pytest.fixture
def cli(workdir: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run `python -m pipeline ARGS` in the working directory, as a user would."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args], cwd=workdir, env=env,
            capture_output=True, text=True, timeout=timeout,
        )

    return run


# Python's own warning filters (`python -W` unset, no debug build): what a user's console shows.
PYTHON_WARNING_FILTERS = [("default", DeprecationWarning, "__main__"),
                          ("ignore", DeprecationWarning, ""),
                          ("ignore", PendingDeprecationWarning, ""),
                          ("ignore", ImportWarning, ""), ("ignore", ResourceWarning, "")]


def pipeline_in_process(*args: str) -> subprocess.CompletedProcess:
    """`python -m pipeline ARGS` in this process: the real entry point (`pipeline.__main__.main`
    with `sys.argv`), its exit status, and what it prints to stdout and stderr, as `cli` gives
    them, less the seconds a fresh interpreter spends importing torch, Lightning, MLflow and
    scikit-learn. Tests of process-level behaviour (signals, kills, a fresh interpreter's
    imports, separate processes sharing a store) keep `cli`."""
    from pipeline import __main__ as entry

    return command_in_process(lambda: entry.main(), "pipeline", *args)


def command_in_process(main: Callable[[], object], *argv: str) -> subprocess.CompletedProcess:
    """Runs a command's `main` in this process with `sys.argv` = `argv`, as `python -m` would:
    the exit status (`main`'s return value or `SystemExit`), stdout and stderr. Warnings print
    to stderr as Python's defaults print them, console log handlers (such as Lightning's) write
    to the captured streams, and an exception that escapes prints its traceback and exits 1,
    as in a process of its own. What this process holds afterwards (signal handlers, logging,
    Hydra's global state, `sys.argv`) is restored."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    hydra_config = HydraConfig.instance().cfg  # a job sets it; code outside jobs reads it
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # A command may set its loggers' levels for the rest of its process (the doctor quiets
    # `pipeline`), and Lightning's launchers leave variables in os.environ: none of it may
    # reach the next command run in this process.
    levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    environ = dict(os.environ)
    console = [handler for logger in [root, *logging.root.manager.loggerDict.values()]
               for handler in getattr(logger, "handlers", ())
               if type(handler) is logging.StreamHandler]
    streams = {handler: handler.stream for handler in console}
    handled = {signum: signal.getsignal(signum)
               for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    saved_argv, status = sys.argv, 0
    sys.argv = list(argv)
    try:
        for handler in console:
            to_stdout = handler.stream in (sys.stdout, sys.__stdout__)
            handler.setStream(out if to_stdout else err)
        with warnings.catch_warnings(record=True) as caught, redirect_stdout(out), \
                redirect_stderr(err):
            warnings.resetwarnings()
            for action, category, module in reversed(PYTHON_WARNING_FILTERS):
                warnings.filterwarnings(action, category=category, module=module)
            try:
                returned = main()
                status = returned if isinstance(returned, int) else 0
            except SystemExit as exit_:
                if isinstance(exit_.code, str):
                    print(exit_.code, file=sys.stderr)
                status = 1 if isinstance(exit_.code, str) else exit_.code or 0
            except Exception:
                traceback.print_exc()
                status = 1
            finally:
                for caught_warning in caught:
                    err.write(warnings.formatwarning(
                        caught_warning.message, caught_warning.category,
                        caught_warning.filename, caught_warning.lineno, caught_warning.line))
    finally:
        sys.argv = saved_argv
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in logging.root.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))
        os.environ.clear()
        os.environ.update(environ)
        for handler, stream in streams.items():
            handler.setStream(stream)
        for signum, handler in handled.items():
            signal.signal(signum, handler)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = hydra_config
    return subprocess.CompletedProcess(list(argv), status, out.getvalue(), err.getvalue())


@pytest.fixture
def run_cli(workdir: Path) -> Callable[..., subprocess.CompletedProcess]:
    """`python -m pipeline ARGS` run in this process in the working directory (see
    `pipeline_in_process`): for tests of what the command prints, exits with and records."""
    return pipeline_in_process


def missing_system_package(message: str) -> NoReturn:
    """A program the system must provide (PostgreSQL, Chromium) is absent: in CI (`CI=true`,
    where `.ci/run` installs it) the test fails; on a developer's machine it is skipped with
    the reason, so that the rest of the suite still speaks."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def store_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}"


def all_runs(workdir: Path) -> pd.DataFrame:
    """Every run in the working directory's default store, parents and folds."""
    import mlflow

    if not (workdir / "outputs" / "mlflow.db").exists():
        return pd.DataFrame(columns=["run_id", "status"])
    mlflow.set_tracking_uri(store_uri(workdir))
    return mlflow.search_runs(search_all_experiments=True, output_format="pandas")


def parents(runs: pd.DataFrame) -> pd.DataFrame:
    column = "tags.mlflow.parentRunId"
    return runs[runs[column].isna()] if column in runs else runs


def children(runs: pd.DataFrame, parent_id: str) -> pd.DataFrame:
    return runs[runs["tags.mlflow.parentRunId"] == parent_id].sort_values("params.fold", key=lambda
                                                                          s: s.astype(int))


def assert_refused_before_any_work(done: subprocess.CompletedProcess, workdir: Path,
                                   words: list[str]) -> None:
    """Exit 1, one `error:` line holding every word, and no MLflow run at all."""
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(word in line for word in words), line
    assert all_runs(workdir).empty


def refit_csv_job(folder: Path, frame: pd.DataFrame, *overrides: str) -> dict:
    """One decision-tree job on `frame` (written to `folder`/train.csv, target `label`), refit
    and logged to a store in `folder`: its folder, run id, store URI, the final model logged
    and the rows it was fit on. For tests of what `pipeline.predict` does with that model."""
    from pipeline import tracking
    from pipeline.entry import run

    frame.to_csv(folder / "train.csv", index=False)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    logged: list = []
    log_model = tracking.Tracker.log_model

    def keep(self, run_id, model, X, packages=()):
        logged.append((model, X))
        return log_model(self, run_id, model, X, packages)

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(tracking.Tracker, "log_model", keep)
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose("config", overrides=[
                "data=csv", "data.path=train.csv", "data.target=label", *overrides,
                "model=decision_tree", "cv.n_splits=2", "plots=false", "refit=true",
                f"tracking.uri={uri}"])
        result = run(cfg)
    [(final, X)] = logged
    return {"folder": folder, "run_id": result.run_id, "uri": uri, "final": final, "X": X}
