"""Regenerate the review guide's pictures in docs/: `python docs/make_screenshots.py`.

Runs a few jobs on breast_cancer into a throw-away MLflow store, copies some of the figures
they logged, then opens the MLflow UI on that store in headless Chromium and photographs the
runs table and the comparison of the parent runs. Needs Debian's chromium (/usr/bin/chromium)
and the `playwright` package (no browser download: it drives the system Chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# Parent-run figures copied into docs/ as they were logged: {artifact: docs file}.
FIGURES = {
    "decision_tree": {"plots/confusion_matrix.png": "plot-confusion-matrix.png",
                      "plots/tree.png": "plot-tree.png"},
    "random_forest": {"plots/roc.png": "plot-roc-folds.png",
                      "plots/feature_importance.png": "plot-feature-importance.png"},
    "mlp": {"plots/learning_curves.png": "plot-learning-curves.png"},
}
MAX_BYTES = 300_000
# Score columns shown in the runs table.
COLUMNS = ("test_accuracy_mean", "test_accuracy_std", "test_f1_mean", "test_roc_auc_mean",
           "fit_time_mean")


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="pipeline-docs-"))
    uri = f"sqlite:///{home / 'mlflow.db'}"
    try:
        runs = {model: job(home, uri, model, *extra) for model, extra in [
            ("decision_tree", ["model.max_depth=4"]),
            ("random_forest", []),
            ("knn", []),
            ("mlp", ["trainer.max_epochs=30"]),
        ]}
        copy_figures(uri, runs)
        photograph_ui(home, uri, runs)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    for path in sorted(DOCS.glob("*.png")):
        size = path.stat().st_size
        print(f"{path.relative_to(DOCS.parent)}  {size // 1024} KB")
        if size > MAX_BYTES:
            raise SystemExit(f"{path.name} is over {MAX_BYTES // 1000} KB")


def job(home: Path, uri: str, model: str, *overrides: str) -> str:
    """One job of the pipeline, as a user runs it; its parent run id."""
    import re

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "data=breast_cancer", f"model={model}",
         f"tracking.uri={uri}", "refit=false", *overrides],
        cwd=home, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{model} job failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return re.search(r"parent run ([0-9a-f]{32})", done.stdout).group(1)


def copy_figures(uri: str, runs: dict[str, str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    with tempfile.TemporaryDirectory() as downloads:
        for model, figures in FIGURES.items():
            for artifact, name in figures.items():
                local = client.download_artifacts(runs[model], artifact, downloads)
                shutil.copyfile(local, DOCS / name)


def photograph_ui(home: Path, uri: str, runs: dict[str, str]) -> None:
    from mlflow import MlflowClient
    from playwright.sync_api import expect, sync_playwright

    experiment_id = MlflowClient(uri).get_run(runs["knn"]).info.experiment_id
    with mlflow_server(home, uri) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 760})
            # The runs table of the data set's experiment, parents and their fold runs.
            page.goto(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
            parent = page.get_by_role("row").filter(has_text="random_forest-kfold")
            expect(parent).to_be_visible(timeout=60_000)
            close_panel(page)
            # The scores as columns instead of the dataset, source and model columns.
            page.get_by_role("button", name="Columns").click()
            for column in ("Dataset", "Source", "Models", *COLUMNS):
                page.get_by_text(column, exact=True).last.click()
            page.keyboard.press("Escape")
            parent.get_by_role("gridcell").filter(has_text="random_forest-kfold").get_by_role(
                "button").click()  # unfold one parent to show its fold runs
            expect(page.get_by_role("row").filter(has_text="fold-5")).to_be_visible()
            page.wait_for_timeout(1500)
            shoot(page, "mlflow-runs.png")

            # The parent runs side by side: MLflow's compare page.
            ids = json.dumps(list(runs.values()))
            page.set_viewport_size({"width": 1400, "height": 1000})
            page.goto(f"{url}/#/compare-runs?runs={ids}&experiments=[\"{experiment_id}\"]"
                      "&workflowType=machine_learning")
            expect(page.get_by_text("test_accuracy_mean").first).to_be_visible(timeout=60_000)
            close_panel(page)
            for section in ("Visualizations", "Parameters"):  # folded: run names over scores
                page.get_by_text(section, exact=True).click()
            page.wait_for_timeout(2500)
            shoot(page, "mlflow-compare.png")
            page.set_viewport_size({"width": 1400, "height": 760})

            # One parent run's artifacts: the figures in the UI.
            page.goto(f"{url}/#/experiments/{experiment_id}/runs/{runs['random_forest']}"
                      "/artifacts/plots/roc.png?workflowType=machine_learning")
            expect(page.get_by_text("roc.png").first).to_be_visible(timeout=60_000)
            close_panel(page)
            page.wait_for_timeout(2500)
            shoot(page, "mlflow-artifacts.png")
        finally:
            browser.close()


def close_panel(page) -> None:  # noqa: ANN001
    """The UI may open an assistant side panel that narrows the page."""
    close = page.get_by_role("button", name="Close")
    if close.count() == 1:
        close.click()


def shoot(page, name: str) -> None:  # noqa: ANN001
    """A screenshot, as a palette PNG (a UI has few colours) to keep it small."""
    from PIL import Image

    path = DOCS / name
    page.screenshot(path=str(path))
    with Image.open(path) as image:
        image.convert("RGB").quantize(colors=128).save(path, optimize=True)


class mlflow_server:  # noqa: N801 - used like a function, as `with mlflow_server(...)`
    """`mlflow server` on a free local port, stopped on exit."""

    def __init__(self, home: Path, uri: str):
        self.home, self.uri = home, uri

    def __enter__(self) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.log = (self.home / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1", "--backend-store-uri", self.uri],
            cwd=self.home, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"mlflow server exited:\n{(self.home / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    return url
            except OSError:
                time.sleep(0.5)
        raise SystemExit("mlflow server did not become healthy in 120 s")

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        self.log.close()


if __name__ == "__main__":
    main()
