"""What a job prints: plain lines off a terminal, rich tables and a config tree on one."""

from __future__ import annotations

import os
import pty
import re
import sys
from pathlib import Path

import pytest

from pipeline import report
from pipeline.entry import describe

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FOLD_ROW = re.compile(r"^fold-(\d)\s+(\d\.\d{3}\s+){6}\d\.\d{3}\s+\d\.\d{3}$", re.MULTILINE)


def test_output_off_a_terminal_is_plain_lines(run_cli):
    done = run_cli("data=iris", "model=knn", "plots=false", "refit=false")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert not ANSI.search(out + done.stderr)
    assert "config:\n  data: iris  task=classification\n  model: knn  n_neighbors=5" in out
    assert ("  job:  seed=42  objective=accuracy  plots=False  refit=False  threads=auto  "
            "resume=False") in out
    assert [int(m.group(1)) for m in FOLD_ROW.finditer(out)] == [1, 2, 3, 4, 5]
    assert re.search(r"^mean±std\s+0\.\d{3}±0\.\d{3}", out, re.MULTILINE)
    assert re.search(r"parent run [0-9a-f]{32}$", out, re.MULTILINE)


def run_in_terminal(args: list[str], cwd: Path, columns: int = 160) -> str:
    """`python -m pipeline ARGS` on a pseudo-terminal: what a person at a terminal sees."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdout and stderr are the terminal
        os.chdir(cwd)
        os.environ["COLUMNS"] = str(columns)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.execv(sys.executable, [sys.executable, "-m", "pipeline", *args])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")[-3000:]
    return output.decode(errors="replace")


@pytest.mark.slow
def test_terminal_gets_a_config_tree_and_a_rich_table(workdir):
    shown = run_in_terminal(["data=iris", "model=knn", "plots=false", "refit=false"], workdir)
    assert ANSI.search(shown)  # styled
    text = ANSI.sub("", shown)
    assert "├── model: knn" in text and "n_neighbors=5" in text
    assert re.search(r"^\s*fold-5(\s+\d\.\d{3}){8}\s*$", text, re.MULTILINE)
    assert re.search(r"^\s*mean(\s+\d\.\d{3}){8}\s*$", text, re.MULTILINE)
    assert re.search(r"^\s*std(\s+\d\.\d{3}){8}\s*$", text, re.MULTILINE)
    assert re.search(r"parent run [0-9a-f]{32}", text)


def test_config_summary_is_short_and_hides_passwords(make_cfg):
    job, _, _ = describe(make_cfg("data=wine", "model=mlp",
                                  "tracking.uri=http://ann:s3cret@mlflow:5000"))
    summary = {group: (option, keys) for group, option, keys in report.config_summary(job)}
    assert list(summary) == ["data", "model", "preprocess", "cv", "trainer", "tracking", "job"]
    option, keys = summary["model"]
    assert option == "mlp" and "_target_" not in keys and "trainer" not in keys
    assert keys["hidden_sizes"] == [64]
    assert summary["tracking"][1]["uri"] == "http://ann:***@mlflow:5000"
    assert set(summary["job"][1]) == {"seed", "objective", "plots", "refit", "threads", "resume"}
    # A model without a Lightning trainer does not show one.
    knn, _, _ = describe(make_cfg("data=wine", "model=knn"))
    assert "trainer" not in [group for group, _, _ in report.config_summary(knn)]
