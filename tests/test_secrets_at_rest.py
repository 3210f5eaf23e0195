"""No password of a tracking URI stays at rest beside a job: the files Hydra keeps for a job and
a sweep (`.hydra/*.yaml`, `multirun.yaml`), the job's log and a kept traceback show it as
`***`."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.tracking.secrets import scrub_files

PASSWORD = "s3cret-At-Rest"


def closed_port() -> int:
    """A loopback port nothing listens on: the job fails to reach its server at once, after
    Hydra saved its files."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def uri_with_password() -> str:
    return f"http://alice:{PASSWORD}@127.0.0.1:{closed_port()}"


def files_holding_the_password(root: Path) -> list[Path]:
    return [path for path in root.rglob("*")
            if path.is_file() and PASSWORD.encode() in path.read_bytes()]


def test_scrub_files_rewrites_only_files_with_a_password(tmp_path):
    secret = tmp_path / "config.yaml"
    secret.write_text(f"tracking:\n  uri: http://alice:{PASSWORD}@h:5000\n")
    secret.chmod(0o640)
    clean = tmp_path / "overrides.yaml"
    clean.write_text("- model=knn\n")
    before = clean.stat()

    rewritten = scrub_files([secret, clean, tmp_path / "not-there.yaml"])

    assert rewritten == [secret]
    assert secret.read_text() == "tracking:\n  uri: http://alice:***@h:5000\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o640  # as readable as before
    assert clean.stat().st_ino == before.st_ino and clean.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.yaml", "overrides.yaml"]


def test_a_job_keeps_no_password_in_its_output_directory(workdir, run_cli):
    uri = uri_with_password()
    done = run_cli("data=iris", "model=knn", f"tracking.uri={uri}", "hydra.run.dir=run")

    assert done.returncode == 1 and "unreachable" in done.stderr, done.stderr
    kept = workdir / "run" / ".hydra"
    assert {path.name for path in kept.iterdir()} == {"config.yaml", "hydra.yaml",
                                                      "overrides.yaml"}
    assert files_holding_the_password(workdir / "run") == []
    # What the job was given is still said, without the password.
    redacted = uri.replace(PASSWORD, "***")
    assert f"uri: {redacted}" in (kept / "config.yaml").read_text()
    assert f"- tracking.uri={redacted}\n" in (kept / "overrides.yaml").read_text()


def test_a_sweep_keeps_no_password_in_its_directory(workdir, run_cli, monkeypatch):
    uri = uri_with_password()
    # The sweep's end asks the server for its best job: refused at once, not after retries.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    done = run_cli("-m", "data=iris", "model=knn,naive_bayes", f"tracking.uri={uri}",
                   "hydra.sweep.dir=sweep")

    assert done.returncode == 1 and "2 of 2 jobs failed" in done.stderr, done.stderr
    assert "best job could not be tagged" in done.stderr and PASSWORD not in done.stderr
    sweep = workdir / "sweep"
    assert (sweep / "multirun.yaml").is_file()
    assert all((sweep / job / ".hydra" / "hydra.yaml").is_file() for job in ("0", "1"))
    assert files_holding_the_password(sweep) == []
    assert "alice:***@" in (sweep / "multirun.yaml").read_text()


def test_a_kept_traceback_has_no_password(workdir):
    from pipeline.__main__ import _keep_traceback

    where = Path(_keep_traceback(RuntimeError(f"could not reach http://alice:{PASSWORD}@h")))

    assert where.name == "traceback.txt"
    text = where.read_text()
    assert "RuntimeError: could not reach http://alice:***@h" in text and PASSWORD not in text


@pytest.mark.slow
def test_a_sweep_that_stops_before_its_first_job_keeps_no_password(workdir):
    """Hydra's sweeper saves `multirun.yaml`, then refuses a job's config before any job
    starts: the sweep's process scrubs it as it exits."""
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "-m", "model=knn,no_such_model",
         f"tracking.uri={uri_with_password()}", "hydra.sweep.dir=sweep"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 1 and "no_such_model" in done.stderr, done.stderr
    assert (workdir / "sweep" / "multirun.yaml").is_file()
    assert not (workdir / "sweep" / "0").exists()
    assert files_holding_the_password(workdir / "sweep") == []
