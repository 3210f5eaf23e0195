"""docs/tutorial.md works as written: every `bash` block run in order in a fresh directory."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
# A block that runs until Ctrl-C (the MLflow UI) carries this title in its fence: the test
# starts it in the background, waits until it answers, then stops it.
LONG_RUNNING = 'title="runs until Ctrl-C"'
FENCE = re.compile(r"^```bash(?P<info>[^\n]*)\n(?P<body>.*?)^```", re.M | re.S)


def blocks(text: str) -> list[tuple[bool, str]]:
    """(runs until Ctrl-C, commands) of every ```bash block, in order."""
    return [(LONG_RUNNING in m["info"], m["body"]) for m in FENCE.finditer(text)]


def sessions(text: str) -> list[tuple[bool, str]]:
    """The blocks as a reader types them into one shell: consecutive blocks joined into one
    script (a variable set in one block is there in the next), a long-running one alone."""
    joined: list[tuple[bool, str]] = []
    for long_running, commands in blocks(text):
        if joined and not long_running and not joined[-1][0]:
            joined[-1] = (False, joined[-1][1] + commands)
        else:
            joined.append((long_running, commands))
    return joined


def test_blocks_are_found_in_order_and_the_long_running_one_is_marked():
    text = ("```bash\necho a\n```\ntext\n```bash title=\"runs until Ctrl-C\"\nserve\n```\n"
            "```text\nnot run\n```\n```bash\necho b\n```\n")
    assert blocks(text) == [(False, "echo a\n"), (True, "serve\n"), (False, "echo b\n")]


def test_consecutive_blocks_run_as_one_shell_session():
    text = ("```bash\nA=1\n```\n```bash\necho $A\n```\n```bash title=\"runs until Ctrl-C\"\n"
            "serve\n```\n```bash\necho b\n```\n")
    assert sessions(text) == [(False, "A=1\necho $A\n"), (True, "serve\n"), (False, "echo b\n")]


def test_the_tutorial_has_its_steps():
    commands = "".join(body for _, body in blocks(TUTORIAL.read_text()))
    for step in ("python -m pipeline\n", "mlflow ui", "python -m pipeline -m ",
                 "python -m pipeline.compare", "python -m pipeline.predict run_id="):
        assert step in commands


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT / "src")  # this checkout's package, wherever the test runs
    return env


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve_until_it_answers(command: str, cwd: Path, env: dict[str, str]) -> None:
    """Starts a long-running block, waits (up to 3 minutes) until it answers over HTTP on
    127.0.0.1, then stops its process group. MLflow's UI takes about 20 s to answer. Where
    another process holds its port 5000, the same command gets `--port <free one>` appended."""
    port = 5000
    if not _port_free(port):
        port = _free_port()
        command = f"{command.strip()} --port {port}"
    server = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        pytest.fail(f"{command!r} did not answer on 127.0.0.1:{port} within 180 s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_every_command_of_the_tutorial_runs_as_written(tmp_path):
    env = _environment()
    started = time.monotonic()
    output = ""
    for long_running, commands in sessions(TUTORIAL.read_text()):
        if long_running:
            _serve_until_it_answers(commands, tmp_path, env)
            continue
        done = subprocess.run(["bash", "-c", "set -eo pipefail\n" + commands], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{commands}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        output += done.stdout
    print(f"the tutorial's commands ran in {time.monotonic() - started:.0f} s")

    assert "mean±std" in output  # a job's per-fold table
    for model in ("knn", "decision_tree", "svm"):  # the sweep's leaderboard
        assert model in output
    predictions = (tmp_path / "predictions.csv").read_text().splitlines()
    assert predictions[0].split(",")[0] == "prediction"
    assert {"proba_setosa", "proba_versicolor", "proba_virginica"} <= set(
        predictions[0].split(","))
    assert len(predictions) == 1 + 5  # one row per new flower
