"""Infrastructure faults in one line: a full disk, a tracking server that dies mid-job, a store
that is not MLflow's or is a newer MLflow's; and readers that never break a job creating the
store. Each fault ends the job with one `error:` line that says what failed and what is kept."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

from pipeline import compare, tracking
from pipeline import entry as job_entry
from pipeline.errors import PipelineError
from tests.conftest import all_runs, children, parents, store_uri
from tests.services import mlflow_server

QUICK = ("data=iris", "model=knn", "cv.n_splits=3", "++plots=false", "++refit=false")


def runs_of(uri: str):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True, output_format="pandas")


def test_disk_full_while_writing_artifacts_keeps_finished_folds(make_cfg, workdir, monkeypatch):
    """The second fold's artifact write meets ENOSPC as on a full disk (a tmpfs that fills up
    raises this OSError, with no file name, from MLflow's copy of the artifact)."""
    cfg = make_cfg(*QUICK)
    real = LocalArtifactRepository.log_artifact
    writes = []

    def log_artifact(self, local_file, artifact_path=None):
        if os.path.basename(local_file) != "config.yaml":  # the job's, written before the folds
            writes.append(local_file)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, local_file, artifact_path)

    monkeypatch.setattr(LocalArtifactRepository, "log_artifact", log_artifact)
    with pytest.raises(tracking.TrackingFailure) as raised:
        job_entry.run(cfg)
    line = str(raised.value)
    print(line)
    assert "\n" not in line
    artifacts = workdir / "outputs" / "mlartifacts" / "iris"
    assert line.startswith(f"no space left on device writing the run's artifacts under {artifacts}")
    assert "free space" in line and "tracking.uri=" in line
    assert "fold-1 finished and is kept in experiment 'iris'" in line

    runs = all_runs(workdir)
    [parent] = parents(runs).itertuples()
    folds = children(runs, parent.run_id)
    assert parent.status == "FAILED" and list(folds["status"]) == ["FINISHED", "FAILED"]
    assert f"marked FAILED: fold-2 ({folds['run_id'].iloc[1]}), knn-kfold ({parent.run_id})" \
        in line
    assert "left RUNNING" not in line


def server_leader(backend: Path) -> int:
    """The process id of the `mlflow server` on `backend`: it leads its own process group,
    with the worker that it started."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().decode().split("\0")
            leads = os.getpgid(int(entry.name)) == int(entry.name)
        except (OSError, ValueError):
            continue
        if "server" in command and f"sqlite:///{backend}" in command and leads:
            return int(entry.name)
    raise AssertionError(f"no mlflow server process on {backend}")


KILL_AT_FOLD_3 = textwrap.dedent("""
    import os, signal, sys, time
    from pipeline import engine
    fold = engine._fold

    def killing(i, *args, **kwargs):
        if i == 3:  # the server dies between fold 2 and fold 3
            os.killpg(int(os.environ["SERVER_PID"]), signal.SIGKILL)
            print(f"killed at {time.time()}", flush=True)
        return fold(i, *args, **kwargs)

    engine._fold = killing
    from pipeline.__main__ import main
    sys.argv = ["pipeline", *sys.argv[1:]]
    main()
""")


@pytest.mark.slow
def test_server_that_dies_mid_job_is_one_line_saying_what_stays_running(workdir, monkeypatch):
    backend = workdir / "server.db"
    server_log = workdir / "mlflow-server.log"
    with mlflow_server(f"sqlite:///{backend}", workdir) as server:
        env = {**os.environ, "SERVER_PID": str(server_leader(backend)),
               "MLFLOW_TRACKING_URI": server.url}
        done = subprocess.run(
            [sys.executable, "-c", KILL_AT_FOLD_3, *QUICK[:2], "cv.n_splits=4", *QUICK[3:]],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        ended = time.time()
    assert "killed at" in done.stdout, done.stdout + done.stderr
    killed = float(done.stdout.split("killed at ")[1].split()[0])
    print(f"server killed -> job exited in {ended - killed:.1f} s")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [text for text in done.stderr.splitlines() if text.strip()]
    print(line)
    assert line.startswith(f"error: tracking server {server.url} stopped answering")
    assert "python -m pipeline.doctor" in line and "once the server is back" in line

    # The server's own store, read directly: what was ended before it died is kept.
    runs = runs_of(f"sqlite:///{backend}")
    [parent] = parents(runs).itertuples()
    folds = children(runs, parent.run_id)
    assert list(folds["status"]) == ["FINISHED", "FINISHED"]
    assert parent.status == "RUNNING"
    assert f"left RUNNING: knn-kfold ({parent.run_id})" in line
    assert "fold-1, fold-2 finished and are kept" in line
    assert server_log.exists()


def other_apps_database(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO customers (name) VALUES ('Ada')")
    return f"sqlite:///{path}"


def random_file(path: Path) -> str:
    path.write_bytes(os.urandom(5000))
    return f"sqlite:///{path}"


def project_directory(path: Path) -> str:
    path.mkdir()
    (path / "notes.txt").write_text("my own files")
    (path / "data").mkdir()
    return path.as_uri()


def files(directory: Path) -> dict[Path, bytes]:
    """Every file's bytes, but the job's lock file (made beside a SQLite store, never in it)."""
    return {p: p.read_bytes() for p in directory.rglob("*") if p.is_file() and p.suffix != ".lock"}


@pytest.mark.parametrize(("make", "words"), [
    (other_apps_database, ["is another application's SQLite database (tables: customers)"]),
    (random_file, ["is not an SQLite database"]),
    (project_directory, ["is a directory of other files"]),
])
def test_a_store_that_is_not_mlflows_is_refused_and_left_untouched(make_cfg, workdir, make,
                                                                     words):
    target = workdir / "mine.db"
    uri = make(target)
    before = files(workdir)
    with pytest.raises(PipelineError) as raised:
        job_entry.run(make_cfg(*QUICK, f"tracking.uri={uri}"))
    line = str(raised.value)
    print(line)
    assert "\n" not in line and "is not an MLflow store" in line and "left untouched" in line
    assert all(word in line for word in words)
    assert files(workdir) == before


@pytest.fixture(scope="module")
def newer_store(tmp_path_factory) -> Path:
    """An MLflow store whose schema revision this MLflow has never heard of."""
    path = tmp_path_factory.mktemp("newer") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    return path


def test_a_store_written_by_a_newer_mlflow_is_refused_not_migrated(make_cfg, newer_store, capsys):
    uri = f"sqlite:///{newer_store}"
    with pytest.raises(PipelineError) as raised:
        job_entry.run(make_cfg(*QUICK, f"tracking.uri={uri}"))
    line = str(raised.value)
    print(line)
    assert "written by a newer MLflow (schema revision f00dfeedbeef" in line
    assert "upgrade mlflow" in line and "another store" in line
    assert compare.main(["--uri", uri]) == 1
    assert "written by a newer MLflow" in capsys.readouterr().err
    with sqlite3.connect(newer_store) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("f00dfeedbeef",)]
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_compare_on_a_missing_store_says_so_and_creates_nothing(workdir, capsys):
    assert compare.main(["--uri", store_uri(workdir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no MLflow store at ") and "run a job first" in err
    assert not (workdir / "outputs").exists()


READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import mlflow
    import mlflow.store.tracking.sqlalchemy_store  # loaded before, as in an open notebook
    from pipeline import compare
    store = Path(sys.argv[1])
    while not store.exists():  # open it the moment the job starts creating it
        time.sleep(0.001)
    if sys.argv[2] == "compare":
        sys.exit(compare.main(["--uri", f"sqlite:///{store}"]))
    mlflow.set_tracking_uri(f"sqlite:///{store}")  # as MLflow's UI or a notebook would
    print(len(mlflow.search_runs(search_all_experiments=True)))
""")


@pytest.mark.slow
@pytest.mark.store_creation  # the job's own migrations, which readers must not race
def test_readers_while_a_job_creates_the_store_break_nothing(cli, workdir):
    store = workdir / "outputs" / "mlflow.db"
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(store), kind], cwd=workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for kind in ("compare", "compare", "mlflow")]
    done = cli(*QUICK)
    assert done.returncode == 0, done.stderr
    assert "locked" not in done.stdout + done.stderr
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        print(reader.returncode, err.strip()[-300:])
        assert "Traceback" not in err, err
        # Before the job's parent run ends there is no finished job to show; after, a table.
        assert reader.returncode == 0 or err.startswith(("error: no finished jobs",
                                                          "error: no experiments")), err
    assert set(all_runs(workdir)["status"]) == {"FINISHED"}


def test_a_store_locked_for_a_moment_is_tried_again(workdir, monkeypatch):
    """SQLite's "database is locked" (another process's write) is transient: the call is
    tried again after a pause; a lock that outlasts every try is the one line."""
    from sqlalchemy.exc import OperationalError

    from pipeline import tracking

    monkeypatch.setattr(tracking.client, "LOCKED_RETRY_PAUSES", (0.0, 0.0))
    tracker = tracking.Tracker(store_uri(workdir), "locked")
    calls = []
    real = tracker.client.wrapped.set_tag

    def locked_then_free(run_id, key, value, fail_times):
        calls.append(key)
        if len(calls) <= fail_times:
            raise OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
        return real(run_id, key, value)

    with tracker.run("r") as run_id:
        monkeypatch.setattr(tracker.client.wrapped, "set_tag",
                            lambda r, k, v: locked_then_free(r, k, v, fail_times=2))
        tracker.client.set_tag(run_id, "k", "v")
        assert len(calls) == 3
        calls.clear()
        monkeypatch.setattr(tracker.client.wrapped, "set_tag",
                            lambda r, k, v: locked_then_free(r, k, v, fail_times=9))
        with pytest.raises(tracking.TrackingFailure, match="database is locked"):
            tracker.client.set_tag(run_id, "k", "v")
        assert len(calls) == 3  # the first try and one per pause
        monkeypatch.setattr(tracker.client.wrapped, "set_tag", real)  # the run ends as usual
