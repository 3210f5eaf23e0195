"""Faults of the machine as one line each, and no helper process left behind: a fold's worker
killed outright, the job itself killed outright, a full disk at start, a store in a read-only
directory, a directory as a store, a tracking server that accepts and never answers."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sklearn.neighbors import KNeighborsClassifier

from pipeline import entry as job_entry
from pipeline.engine import WorkerKilled
from pipeline.errors import PipelineError
from pipeline.tracking import client as tracking_client
from pipeline.tracking import store as tracking_store
from tests.conftest import all_runs, children, command_in_process, parents, pipeline_in_process

QUICK = ("data=iris", "model=knn", "cv.n_splits=3", "++plots=false", "++refit=false")
TEST_PID = "FAULTS_TEST_PID"  # the test's own process, which the estimator below never kills


class KilledInWorker(KNeighborsClassifier):
    """A KNN whose fit, in a fold's worker process, kills that process outright, as the
    out-of-memory killer does."""

    def fit(self, X, y):
        in_worker = os.environ.get("PIPELINE_FOLD_WORKER") == "1"
        if in_worker and os.environ.get(TEST_PID) not in (None, str(os.getpid())):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(X, y)


def loky_workers() -> list[int]:
    """This process's live loky worker processes (not its resource trackers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"popen_loky" in command:
            found.append(int(stat.parent.name))
    return found


def test_a_fold_worker_killed_outright_is_one_line_naming_the_folds_and_memory(
        make_cfg, workdir, monkeypatch):
    """Was loky's TerminatedWorkerError as an internal error (exit 2). A machine's fault the
    user can act on: one line, the awaited fold's run and the parent FAILED, no worker left."""
    monkeypatch.setenv(TEST_PID, str(os.getpid()))
    cfg = make_cfg(*QUICK, "model._target_=tests.test_fault_lines.KilledInWorker", "cv.n_jobs=2")
    with pytest.raises(WorkerKilled) as raised:
        job_entry.run(cfg)
    line = str(raised.value)
    print(line)
    assert isinstance(raised.value, PipelineError) and "\n" not in line  # exit 1, `error:`
    assert line.startswith("a fold's worker process was killed (signal 9, SIGKILL — often the "
                           "out-of-memory killer) while fitting fold-1 or fold-2 (2 folds at a "
                           "time, cv.n_jobs=2); use fewer parallel folds (cv.n_jobs=1) or less "
                           "data")
    runs = all_runs(workdir)
    [parent] = parents(runs).itertuples()
    folds = children(runs, parent.run_id)
    assert parent.status == "FAILED"
    assert list(folds["tags.mlflow.runName"]) == ["fold-1"]
    assert list(folds["status"]) == ["FAILED"]
    assert f"marked FAILED: fold-1 ({folds['run_id'].item()}), knn-kfold ({parent.run_id})" \
        in line
    deadline = time.monotonic() + 10
    while loky_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert loky_workers() == []


SLEEPS_IN_WORKER = '''
import os
import time
from pathlib import Path
from sklearn.neighbors import KNeighborsClassifier

class SleepsInWorker(KNeighborsClassifier):
    def fit(self, X, y):
        if os.environ.get("PIPELINE_FOLD_WORKER") == "1":
            Path(os.environ["FITTING"], str(os.getpid())).touch()
            time.sleep(120)
        return super().fit(X, y)
'''


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow  # a job in a fresh interpreter and two workers
def test_fold_workers_end_with_a_job_killed_outright(workdir):
    """SIGKILL to a job mid-fold (cv.n_jobs=2): its workers went on with their folds and idled
    out loky's 300 s holding the job's stdout and stderr; now they end with it."""
    hook, fitting = workdir / "hook", workdir / "fitting"
    hook.mkdir()
    fitting.mkdir()
    (hook / "sleepy.py").write_text(SLEEPS_IN_WORKER)
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
           "FITTING": str(fitting),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    job = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *QUICK, "model._target_=sleepy.SleepsInWorker",
         "cv.n_jobs=2"], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    helpers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(list(fitting.iterdir())) < 2 and job.poll() is None:
            assert time.monotonic() < deadline, "the folds never started in two workers"
            time.sleep(0.05)
        helpers = _children(job.pid)  # the two workers and the resource trackers
        assert {int(p.name) for p in fitting.iterdir()} <= set(helpers)
        job.kill()
        job.wait(timeout=30)
        deadline = time.monotonic() + 10
        while (alive := [pid for pid in helpers if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, f"processes of the killed job still running: {alive}"
    finally:
        for pid in [job.pid, *helpers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_full_disk_at_start_is_one_line_before_hydra_writes(workdir, monkeypatch):
    """Was Hydra's traceback from saving its config on the full disk."""
    real = shutil.disk_usage
    full = workdir / "full"

    def usage(path):
        counted = real(path)
        return counted._replace(free=0) if Path(path).is_relative_to(full) else counted

    monkeypatch.setattr(shutil, "disk_usage", usage)
    full.mkdir()
    done = pipeline_in_process(*QUICK, f"hydra.run.dir={full / 'run'}")
    print(done.stderr)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: cannot write the job's outputs to {full / 'run'}: no space "
                           f"left on device (0 KiB free on the file system of {full})")
    assert "free space there" in line and "hydra.run.dir=" in line
    assert not (full / "run").exists()
    assert all_runs(workdir).empty  # no run at all, so none left RUNNING


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real full disk: a 64 KiB tmpfs, filled. Mounting needs root (or the test skips; the
    one above covers the check everywhere)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                            str(mount)], capture_output=True).returncode:
        pytest.skip("needs root to mount a tmpfs: run pytest as root (in a container, say)")
    try:
        with open(mount / "filler", "wb") as filler, contextlib.suppress(OSError):
            filler.write(b"\0" * (1 << 20))  # until it is full
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk_is_refused_by_the_same_line(tiny_tmpfs, workdir):
    done = pipeline_in_process(*QUICK, f"hydra.run.dir={tiny_tmpfs / 'run'}")
    assert done.returncode == 1
    assert "no space left on device" in done.stderr and len(done.stderr.splitlines()) == 1


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory) -> Path:
    """A store in write-ahead-log mode (as every job leaves it) holding one finished job, and
    one RUNNING run whose process is gone."""
    import sqlite3

    from pipeline.tracking.processes import process_tags

    here = tmp_path_factory.mktemp("store")
    path = here / "mlflow.db"
    done = pipeline_in_process(*QUICK, f"tracking.uri=sqlite:///{path}",
                               f"hydra.run.dir={here / 'run'}")
    assert done.returncode == 0, done.stderr
    ended = subprocess.Popen(["true"])
    ended.wait()
    client = MlflowClient(f"sqlite:///{path}")
    client.create_run(client.get_experiment_by_name("iris").experiment_id, run_name="orphan",
                      tags={**process_tags(), "pid": str(ended.pid), "pid_start": ""})
    with sqlite3.connect(path) as db:  # all in the file itself, which is what is copied
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert path.read_bytes()[18:20] == b"\x02\x02"  # the header's mark of WAL mode
    return path


def _mount(folder: Path, *options: str) -> None:
    if os.geteuid() != 0 or subprocess.run(["mount", *options, str(folder)],
                                           capture_output=True).returncode:
        pytest.skip("needs root to mount read-only: run pytest as root (in a container, say); "
                    "the chmod case runs everywhere")


@pytest.mark.parametrize("mount", [False, True], ids=["read-only directory", "read-only mount"])
def test_compare_reads_a_store_in_a_read_only_directory_without_a_lock_file(
        finished_store, tmp_path, monkeypatch, caplog, mount):
    """Was `OSError: [Errno 30] Read-only file system` making `mlflow.db.lock`. A read-only
    directory is made with chmod where that binds (not root; as root the writability probe is
    told so), or is a real read-only mount (root); the store, in write-ahead-log mode, is read
    all the same (immutable)."""
    from pipeline.compare.cli import main

    folder = tmp_path / "read-only"
    folder.mkdir()
    if mount:
        _mount(folder, "tmpfs", "-t", "tmpfs", "-o", "size=8m")
    shutil.copy(finished_store, folder / "mlflow.db")
    folder.chmod(0o555)
    if mount:
        _mount(folder, "-o", "remount,ro")
    elif os.access(folder, os.W_OK):  # root: chmod binds no one
        monkeypatch.setattr(tracking_store, "read_only", lambda path: path.parent == folder)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    try:
        done = command_in_process(lambda: main(["--uri", uri]), "pipeline.compare")
        assert sorted(p.name for p in folder.iterdir()) == ["mlflow.db"]  # no lock, -wal, -shm
    finally:
        if mount:
            subprocess.run(["umount", "--lazy", str(folder)], check=False)  # the store is open
        folder.chmod(0o755)
        if mount:
            shutil.copy(finished_store, folder / "mlflow.db")  # what the mount held
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    assert f"experiment 'iris' in {uri}: 1 job(s)" in done.stdout
    assert "knn" in done.stdout
    assert "1 orphaned run(s) left RUNNING: the store is read-only here" in caplog.text
    client = MlflowClient(uri)
    statuses = {run.info.run_name: run.info.status for run in
                client.search_runs([client.get_experiment_by_name("iris").experiment_id])}
    assert statuses["orphan"] == "RUNNING"


def test_a_directory_as_a_store_fails_at_once_in_one_line(workdir):
    """Was about two minutes of MLflow's retries (37 lines) before the line."""
    folder = workdir / "a-folder"
    folder.mkdir()
    started = time.monotonic()
    done = pipeline_in_process(*QUICK, f"tracking.uri=sqlite:///{folder}")
    print(done.stderr, time.monotonic() - started)
    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line == (f"error: tracking.uri=sqlite:///{folder} names a directory, {folder}, not "
                    f"an SQLite file: point it to a file, e.g. sqlite:///{folder / 'mlflow.db'}")
    assert "retried" not in done.stderr
    assert list(folder.iterdir()) == []


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A server on loopback that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in [*held, listener]:
        connection.close()


def test_a_hung_server_is_one_line_saying_how_long_it_was_waited_for(hung_server, monkeypatch):
    """Was `is unreachable (ReadTimeout)`, which does not say that it answered nothing, nor
    after how long."""
    for name in tracking_client.HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking_client, "REACHABLE_TIMEOUT", 0.5)
    with pytest.raises(PipelineError) as raised:
        tracking_client.check_reachable(hung_server)
    assert str(raised.value).startswith(f"tracking server {hung_server} did not answer within "
                                        "0.5 s: it accepts connections but sends nothing")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")  # the user's own setting wins
    with pytest.raises(PipelineError, match=r"within 1 s \(MLFLOW_HTTP_REQUEST_TIMEOUT\)"):
        tracking_client.check_reachable(hung_server)


def test_a_server_that_hangs_during_the_job_fails_in_bounded_time_naming_the_wait(
        hung_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    recorded = tracking_client.RecordedClient(MlflowClient(hung_server), hung_server)
    with pytest.raises(tracking_client.TrackingFailure) as raised:
        recorded.search_experiments()
    assert str(raised.value).startswith(
        f"tracking server {hung_server} stopped answering during the job: no answer in 2 tries "
        "of 1 s each (MLFLOW_HTTP_REQUEST_TIMEOUT=1, MLFLOW_HTTP_REQUEST_MAX_RETRIES=1)")
    with pytest.raises(tracking_client.TrackingFailure):  # at once: the server is known lost
        recorded.search_experiments()


def test_the_job_sets_mlflows_http_waits_only_where_the_user_set_none(monkeypatch):
    """After the check, MLflow's own requests wait 30 s a try and try 3 times, unless the user
    said otherwise."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name in tracking_client.HTTP_DEFAULTS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
        tracking_client.check_reachable(f"http://127.0.0.1:{server.server_port}")
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("uri, words", [
    ("postgresql://bob:hunter2@127.0.0.1:1/db", "needs the psycopg driver"),
    ("mssql://bob:hunter2@127.0.0.1:1/db", "needs the pyodbc driver"),
    ("mysql+nosuchdriver://bob:hunter2@127.0.0.1:1/db", "is not a database URL SQLAlchemy knows"),
])
def test_a_database_store_without_its_driver_is_one_line_naming_it(uri, words):
    """SQLAlchemy picks the driver by the URI; MLflow would fail importing it with a
    traceback. The line names the driver and never shows the password."""
    from pipeline.tracking.store import check_store

    driver = {"psycopg": "psycopg", "pyodbc": "pyodbc"}.get(words.split()[2])
    if driver and importlib.util.find_spec(driver) is not None:
        pytest.skip(f"needs {driver} not installed (pip uninstall {driver}): "
                    "installed, the URI is usable")
    with pytest.raises(PipelineError, match=words) as caught:
        check_store(uri)
    assert "hunter2" not in str(caught.value)


def test_a_sweep_says_once_before_its_first_job_that_its_store_cannot_be_used(tmp_path):
    """The sweep's callback checks the store as each job would: one line, before any job,
    instead of one per job and again in the summary."""
    from omegaconf import OmegaConf

    from pipeline.guards import _store_problem

    bad = OmegaConf.create({"tracking": {"uri": "postgresql://bob:hunter2@127.0.0.1:1/db"}})
    directory = tmp_path / "store"
    directory.mkdir()
    a_directory = OmegaConf.create({"tracking": {"uri": f"sqlite:///{directory}"}})
    fine = OmegaConf.create({"tracking": {"uri": f"sqlite:///{tmp_path / 'm.db'}"}})
    if importlib.util.find_spec("psycopg") is None:
        assert "needs the psycopg driver" in _store_problem(bad)
    assert "names a directory" in _store_problem(a_directory)
    assert _store_problem(fine) is None
    assert not (tmp_path / "m.db").exists()  # checking makes no store
