"""Quiet by default, clear when it speaks: an ordinary job's console holds no third-party
warning, it prints its store as the docs write it, and every skip reason of the suite says
what the skipped test needs."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from pipeline.report import shown_uri

TESTS = Path(__file__).parent
# What another library's warning or banner looks like on a console: Python's warning line
# (`file:line: SomeWarning: …`), a path into the installed packages, Lightning's tips.
THIRD_PARTY = ("Warning:", "warnings.warn", "site-packages", "Tip:", "GPU available",
               "LOCAL_RANK", "does not have many workers")


def table_with_integers_blanks_and_categories(path: Path) -> None:
    """What MLflow's integer-column hint is about: whole-number columns (one with blanks, so
    pandas reads it as floats), a text column with blanks, a text target."""
    rng = np.random.default_rng(0)
    n = 80
    frame = pd.DataFrame({"age": rng.integers(20, 70, n), "visits": rng.integers(0, 10, n),
                          "income": rng.normal(50, 10, n).round(2),
                          "city": rng.choice(["north", "south", "east"], n)})
    frame.loc[::9, "visits"] = None
    frame.loc[::11, "city"] = None
    frame["label"] = np.where(frame["age"] + rng.normal(0, 10, n) > 45, "yes", "no")
    frame.to_csv(path, index=False)


def third_party_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(mark in line for mark in THIRD_PARTY)]


def test_a_csv_job_and_an_mlp_job_print_no_third_party_warning(run_cli, workdir: Path):
    table_with_integers_blanks_and_categories(workdir / "table.csv")
    csv = run_cli("data=csv", "data.path=table.csv", "data.target=label", "model=knn")
    assert csv.returncode == 0, csv.stderr
    assert third_party_lines(csv.stdout + csv.stderr) == []
    assert "refit on all 80 rows" in csv.stdout + csv.stderr  # the model was logged
    where_the_runs_are(csv.stdout)

    # A Lightning model: its folds batched, then a refit by a Lightning Trainer of its own.
    mlp = run_cli("data=iris", "model=mlp", "trainer.max_epochs=3")
    assert mlp.returncode == 0, mlp.stderr
    assert third_party_lines(mlp.stdout + mlp.stderr) == []


def where_the_runs_are(stdout: str) -> None:
    """The store as the docs write it, and a `view:` line that, pasted in the same directory,
    opens the job's store (the hint after the command is a shell comment)."""
    lines = stdout.splitlines()
    assert "  store: sqlite:///outputs/mlflow.db" in lines
    view = next(line for line in lines if line.startswith("  view:"))
    argv = shlex.split(view.removeprefix("  view:"), comments=True)
    assert argv == ["mlflow", "ui", "--backend-store-uri", "sqlite:///outputs/mlflow.db"]
    assert "~20 s" in view
    parent = next(line for line in lines if "parent run" in line).split()[-1]
    assert MlflowClient(argv[-1]).get_run(parent).info.status == "FINISHED"


def test_a_store_outside_the_working_directory_stays_absolute(tmp_path: Path):
    inside = tmp_path / "work"
    assert shown_uri(f"sqlite:///{inside}/outputs/mlflow.db", cwd=inside) == \
        "sqlite:///outputs/mlflow.db"
    assert shown_uri(f"sqlite:///{inside}/m.db?timeout=30", cwd=inside) == \
        "sqlite:///m.db?timeout=30"
    assert shown_uri(f"sqlite:///{tmp_path}/elsewhere.db", cwd=inside) == \
        f"sqlite:///{tmp_path}/elsewhere.db"
    assert shown_uri("sqlite:///m.db", cwd=inside) == "sqlite:///m.db"
    assert shown_uri("http://127.0.0.1:5000", cwd=inside) == "http://127.0.0.1:5000"


def skip_reasons() -> list[tuple[str, str, str]]:
    """Each skip reason written in the tests, as (where, how, the text before any interpolated
    value): `pytest.skip(…)`'s first argument, `skipif(…, reason=…)`, and the message of
    `missing_system_package(…)` (a skip on a developer's machine, a failure in CI)."""
    found = []
    for path in sorted(TESTS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name in ("skip", "missing_system_package") and node.args:
                reason = node.args[0]
            elif name == "skipif":
                reason = next((k.value for k in node.keywords if k.arg == "reason"), None)
            else:
                continue
            found.append((f"{path.name}:{node.lineno}", name, _leading_text(reason, tree)))
    return found


def _leading_text(node: ast.expr | None, tree: ast.Module) -> str:
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(str(part.value) if isinstance(part, ast.Constant) else "{}"
                       for part in node.values)
    if isinstance(node, ast.Name):  # a module constant of the test file
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and any(
                    getattr(target, "id", None) == node.id for target in statement.targets):
                return _leading_text(statement.value, tree)
    return ""


def test_every_skip_reason_says_what_the_test_needs_and_how_to_get_it():
    reasons = skip_reasons()
    # conftest's `missing_system_package` passes its caller's message on to pytest.skip.
    written = [(where, how, text) for where, how, text in reasons
               if not (where.startswith("conftest.py") and how == "skip")]
    assert {how for _, how, _ in written} == {"skip", "skipif", "missing_system_package"}
    unclear = [(where, text) for where, how, text in written
               if not (text.startswith("needs ") if how != "missing_system_package"
                       else "install" in text)]
    assert unclear == []
