"""A job killed outright (SIGKILL, the OOM killer, a power cut) cannot end its runs. The doctor,
the next job on the store and `pipeline.compare` find those orphans and mark them KILLED with
the reason; `resume=true` does not count them as done. One real job is SIGKILLed during fold 3;
each test works on its own copy of that store."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline import compare, doctor, tracking
from pipeline.tracking import orphans
from tests.conftest import all_runs, children, parents, store_uri
from tests.test_interrupts import CHEAP, cheap_env, interrupt_during_fold_3


@pytest.fixture(scope="module")
def killed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs/ of a job SIGKILLed during fold 3."""
    workdir = tmp_path_factory.mktemp("killed")
    status, stderr, _ = interrupt_during_fold_3(workdir, CHEAP, signal.SIGKILL,
                                                cheap_env(workdir))
    assert status == -signal.SIGKILL, stderr
    return workdir / "outputs"


@pytest.fixture
def orphaned(killed_store: Path, workdir: Path) -> pd.DataFrame:
    """This test's copy of the killed job's store: its parent and fold 3 left RUNNING."""
    shutil.copytree(killed_store, workdir / "outputs")
    runs = all_runs(workdir)
    assert sorted(runs["status"]) == ["FINISHED", "FINISHED", "RUNNING", "RUNNING"]
    return runs[runs["status"] == "RUNNING"]


def assert_marked(workdir: Path, orphans: pd.DataFrame) -> None:
    """The orphans KILLED, saying which process is gone; nothing else touched."""
    runs = all_runs(workdir).set_index("run_id")
    [pid] = set(orphans["tags.pid"])
    for run_id in orphans["run_id"]:
        assert runs.loc[run_id, "status"] == "KILLED"
        assert runs.loc[run_id, "tags.killed_reason"] == (
            f"process {pid} on host {socket.gethostname()} is gone")
    assert "RUNNING" not in set(runs["status"])
    [parent] = parents(orphans)["run_id"]
    folds = children(runs.reset_index(), parent)
    assert list(folds["status"]) == ["FINISHED", "FINISHED", "KILLED"]  # finished folds kept


def test_doctor_marks_the_orphans_killed_with_the_reason(orphaned, workdir, capsys):
    assert doctor.main(["--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "would mark 2 orphaned run(s) KILLED" in listed
    assert all(run_id in listed for run_id in orphaned["run_id"])
    assert sorted(all_runs(workdir)["status"]).count("RUNNING") == 2  # a dry run changes nothing

    assert doctor.main([]) == 0
    assert "marked 2 orphaned run(s) KILLED" in capsys.readouterr().out
    assert_marked(workdir, orphaned)
    assert doctor.main([]) == 0
    assert "marked 0 orphaned run(s) KILLED" in capsys.readouterr().out


def test_next_job_marks_them_and_resume_does_not_count_them_done(orphaned, workdir, make_cfg):
    from pipeline.entry import run

    run(make_cfg("data=digits", "model=knn", "cv.n_splits=2", "resume=true",
                 "++plots=false", "++refit=false"))
    assert_marked(workdir, orphaned)
    tracker = tracking.connect(store_uri(workdir), "digits")
    [digest] = set(orphaned["tags.config_hash"].dropna())
    assert tracker.finished_run(digest) is None  # resume=true runs it again


def test_compare_marks_them(orphaned, workdir, capsys):
    assert compare.main([]) == 1  # the store holds no finished job to rank
    assert "no finished jobs" in capsys.readouterr().err
    assert_marked(workdir, orphaned)


def test_the_rule_for_a_process_of_this_host():
    here = socket.gethostname()
    me = tracking.process_tags()
    assert orphans.judge(me) == (False, "")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    pid = ended.stdout.strip()
    assert orphans.judge({**me, "pid": pid}) == (True, f"process {pid} on host {here} is gone")
    # This process's id, recorded with another start time: the id was reused since.
    reused = {**me, "pid_start": me["pid_start"] + "0"}
    assert orphans.judge(reused) == (
        True, f"process {os.getpid()} on host {here} is gone (its id now belongs to a later "
              "process)")
    elsewhere, why = orphans.judge({**me, "host": "another-host"})
    assert elsewhere is None and "made on host another-host" in why
    container, why = orphans.judge({**me, "pid_namespace": "pid:[1]", "pid": pid})
    assert container is None and "made in another container" in why
    assert orphans.judge({})[0] is None
