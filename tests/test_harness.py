"""The in-process runner of the command line (`run_cli`) that most command tests use answers
as a fresh `python -m pipeline` process does: same exit status, same error lines."""

from __future__ import annotations

import pytest

CASES = [["cv.n_splits=1"], ["model=logistic", "data=iris"]]


@pytest.mark.parametrize("args", CASES, ids=["cv-mistake", "model-mistake"])
def test_in_process_commands_answer_as_a_process_does(cli, run_cli, args):
    process, in_process = cli(*args), run_cli(*args)
    assert process.returncode == in_process.returncode == 1
    assert process.stderr.splitlines() == in_process.stderr.splitlines()
    assert in_process.stderr.startswith("error: ")
