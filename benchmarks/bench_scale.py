"""How the pipeline's cost grows with the rows of a table, and its training against a plain loop.

    python benchmarks/bench_scale.py throughput [--rows 1000000]
    python benchmarks/bench_scale.py table [--rows 10000 100000 1000000]

`throughput`: `logistic` on a generated table of 1,000,000 rows × 50 features, 5-fold, 5 epochs
of batch 4096 (SGD, lr 0.1, 10% of each training part held out for per-epoch validation, as
the pipeline does), against a plain PyTorch loop on the same folds: standardise the fold's
training part, hold out the same 10%, train a linear layer on reshuffled batches, score the
test part. Both on one torch thread (`OMP_NUM_THREADS=1`; the pipeline's `threads: auto` picks
one for a step of 4096 × 50 multiply-adds), each in a fresh process whose peak RSS
(`ru_maxrss`) is reported. Samples per second = training rows × epochs run, summed over
folds, divided by seconds counted three ways:

- `train`: the epochs alone (shuffles, mini-batch steps, the per-epoch validation loss); the
  pipeline's also count Lightning's Trainer and module set-up (`fitting.train`).
- `fit`: a fold's whole fit, the goal's measure: `train` plus the fold's preprocessing (the
  pipeline: its `preprocess` step, median imputation and standardisation of a pandas row take,
  fitted on the training part; the plain loop: numpy mean/std standardisation), the
  validation split (stratified in the pipeline) and the tensors. The pipeline's are its
  folds' `fit_time`.
- `job`: the whole job, from generating the table to the last score. The pipeline's also
  counts what the plain loop does not do: checks, MLflow runs and tables, and scoring the
  train, validation and test parts with every metric (the plain loop: test accuracy).
  Neither side counts importing torch (nor the pipeline, Lightning): both are loaded first.

On a shared machine the wall clock swings with the neighbours' load, so `train` and `fit` are
also given by CPU seconds.

`table`: wall time and peak RSS of whole jobs (`python -m pipeline`'s `run`, MLflow tracking,
figures and refit on all rows at their defaults) in a fresh process each, by rows: `logistic`
and `mlp` (5 epochs of batch 4096) at every size, `logistic` on the same table read from a
Parquet file through `data=csv` (`logistic-parquet`), scikit-learn's `decision_tree` and
`random_forest` up to 100,000 rows.

Every case is one process: `python benchmarks/bench_scale.py case <name> <rows>` prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

SEED = 42
FEATURES = 50
EPOCHS = 5
BATCH = 4096
TORCH = ("model.batch_size=4096", f"trainer.max_epochs={EPOCHS}", "model.optimizer=sgd",
         "model.lr=0.1", "model.early_stopping=false", "model.validation_fraction=0.1",
         "trainer=cpu")
MODELS = {
    "logistic": ("model=logistic", *TORCH),
    "mlp": ("model=mlp", "model.hidden_sizes=[64]", *TORCH),
    "decision_tree": ("model=decision_tree",),
    "random_forest": ("model=random_forest",),
}
TORCH_MODELS = ("logistic", "mlp")
# scikit-learn's models are timed up to this many rows (a forest of 1M rows takes hours here).
SKLEARN_MAX_ROWS = 100_000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_parquet(rows: int, path: str) -> None:
    """The generated table of `rows` rows (as `data=synthetic` makes it) as a Parquet file."""
    from pipeline.data import synthetic

    dataset = synthetic(n_samples=rows, n_features=FEATURES, random_state=SEED, dtype="float64")
    dataset.X.assign(target=dataset.y).to_parquet(path)


def pipeline_case(model: str, rows: int, *extra: str) -> dict:
    """One whole job in this process; its wall time, fit times and peak RSS. `extra` may name
    a Parquet file (`data.path=…parquet`) to read instead of generating the table."""
    from hydra import compose, initialize_config_dir

    from pipeline.config import config_dir
    from pipeline.entry import run

    source = ["data=synthetic", f"data.n_samples={rows}", f"data.n_features={FEATURES}"]
    if any(e.startswith("data.path=") for e in extra):
        source = ["data=csv", "data.target=target"]
    overrides = [*source, "cv=kfold", f"seed={SEED}", *MODELS[model], *extra]
    os.chdir(tempfile.mkdtemp(prefix="bench_scale_"))
    from pipeline import tasks
    from pipeline.models import batched

    fits, trainings = [], []  # (wall, CPU seconds) of each fold's fit and of each training
    samples = []  # training rows x epochs run, of each fold

    def timed(function, into):
        def wrapper(*args, **kwargs):
            started, started_cpu = time.perf_counter(), time.process_time()
            result = function(*args, **kwargs)
            into.append((time.perf_counter() - started, time.process_time() - started_cpu))
            return result
        return wrapper

    def counted(train):
        def one(spec, build, data, val_data):  # a fold at a time
            network, history, steps = train(spec, build, data, val_data)
            samples.append(len(data[0]) * len(history["train_loss"]))
            return network, history, steps

        def folds(prepared):  # the folds as one batched model
            fitted = train(prepared)
            samples.extend(len(p.data[0]) * len(history["train_loss"])
                           for p, (_, history, _) in zip(prepared, fitted, strict=True))
            return fitted
        return folds if train.__module__.endswith("batched_fit") else one

    if model in TORCH_MODELS:  # imports torch and Lightning (scikit-learn's models do not)
        from pipeline.models import batched_fit, fitting

        fitting.train = timed(counted(fitting.train), trainings)
        batched_fit.train = timed(counted(batched_fit.train), trainings)
    tasks.Task.fit = timed(tasks.Task.fit, fits)
    fit_folds, batched_fits = batched.fit_folds, []

    def timed_fit_folds(*args, **kwargs):
        started, started_cpu = time.perf_counter(), time.process_time()
        fitted = fit_folds(*args, **kwargs)
        if fitted is not None:  # else the folds are fitted one by one, by Task.fit
            batched_fits.append((time.perf_counter() - started,
                                 time.process_time() - started_cpu))
        return fitted

    batched.fit_folds = timed_fit_folds
    started = time.perf_counter()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    result = run(cfg)
    wall = time.perf_counter() - started
    fits += batched_fits
    return {"case": f"pipeline-{model}", "rows": rows, "job_s": wall, "samples": sum(samples),
            "fit_s": sum(f[0] for f in fits), "fit_cpu_s": sum(f[1] for f in fits),
            "train_s": sum(t[0] for t in trainings) or float("nan"),
            "train_cpu_s": sum(t[1] for t in trainings) or float("nan"),
            "folds": "batched" if batched_fits else "one after another",
            "test_accuracy": float(result.folds["test_accuracy"].mean()),
            "peak_rss_mib": peak_rss_mib()}


def plain_case(rows: int) -> dict:
    """The same folds trained by a plain PyTorch loop on float32 tensors."""
    import numpy as np
    import torch
    from sklearn.datasets import make_classification
    from sklearn.model_selection import ShuffleSplit, StratifiedKFold

    started = time.perf_counter()
    X, y = make_classification(n_samples=rows, n_features=FEATURES, n_informative=10,
                               n_redundant=0, n_classes=2, flip_y=0.0, random_state=SEED)
    X = X.astype(np.float32)
    fit = fit_cpu = train = train_cpu = 0.0
    accuracies, seen = [], 0
    for fold_train, test in StratifiedKFold(5, shuffle=True, random_state=SEED).split(X, y):
        begun, begun_cpu = time.perf_counter(), time.process_time()
        X_train = X[fold_train]
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        X_train = (X_train - mean) / std
        fit_rows, val_rows = next(ShuffleSplit(1, test_size=0.1, random_state=SEED)
                                  .split(X_train))
        data = torch.from_numpy(X_train[fit_rows]), torch.from_numpy(
            y[fold_train][fit_rows].astype(np.float32))
        X_val = torch.from_numpy(X_train[val_rows])
        y_val = torch.from_numpy(y[fold_train][val_rows].astype(np.float32))
        training, training_cpu = time.perf_counter(), time.process_time()
        torch.manual_seed(SEED)
        layer = torch.nn.Linear(FEATURES, 1)
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        generator = torch.Generator().manual_seed(SEED)
        for _ in range(EPOCHS):
            order = torch.randperm(len(data[0]), generator=generator)
            epoch_X, epoch_y = data[0][order], data[1][order]
            total = torch.zeros(())
            for start in range(0, len(epoch_X), BATCH):
                batch_X, batch_y = epoch_X[start:start + BATCH], epoch_y[start:start + BATCH]
                optimizer.zero_grad()
                loss = loss_fn(layer(batch_X).squeeze(1), batch_y)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(batch_X)
            with torch.no_grad():
                loss_fn(layer(X_val).squeeze(1), y_val).item()
            seen += len(epoch_X)
        train += time.perf_counter() - training
        train_cpu += time.process_time() - training_cpu
        fit += time.perf_counter() - begun
        fit_cpu += time.process_time() - begun_cpu
        with torch.no_grad():
            X_test = torch.from_numpy((X[test] - mean) / std)
            predicted = (layer(X_test).squeeze(1) > 0).numpy()
        accuracies.append(float((predicted == y[test]).mean()))
    return {"case": "plain-logistic", "rows": rows, "job_s": time.perf_counter() - started,
            "samples": seen, "fit_s": fit, "fit_cpu_s": fit_cpu, "train_s": train,
            "train_cpu_s": train_cpu, "folds": "one after another",
            "test_accuracy": float(np.mean(accuracies)), "peak_rss_mib": peak_rss_mib()}


def in_fresh_process(*args: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, __file__, "case", *args], capture_output=True,
                          text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"case {args} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def throughput(rows: int) -> None:
    # Only what the training costs: no figures, no refit.
    pipeline = in_fresh_process("logistic", str(rows), "plots=false", "refit=false")
    plain = in_fresh_process("plain", str(rows))
    print(f"{rows:,} rows x {FEATURES} features, 5-fold, {EPOCHS} epochs of batch {BATCH}, "
          "one torch thread; samples per second (per CPU second), seconds:")
    for case in (plain, pipeline):
        n = case["samples"]
        print(f"{case['case']:17} train {n / case['train_s']:>9,.0f} "
              f"({n / case['train_cpu_s']:>9,.0f}) {case['train_s']:5.1f}s   "
              f"fit {n / case['fit_s']:>9,.0f} ({n / case['fit_cpu_s']:>9,.0f}) "
              f"{case['fit_s']:5.1f}s   job {case['job_s']:6.1f}s"
              f"   peak RSS {case['peak_rss_mib']:5.0f} MiB   test accuracy "
              f"{case['test_accuracy']:.4f}   folds {case['folds']}")
    if pipeline["samples"] != plain["samples"]:
        print(f"(samples differ: pipeline {pipeline['samples']:,}, plain {plain['samples']:,})")

    def ratio(seconds: str) -> float:  # pipeline / plain samples per second
        return (pipeline["samples"] / pipeline[seconds]) / (plain["samples"] / plain[seconds])

    print(f"pipeline / plain loop samples per second: fit {ratio('fit_s'):.2f}x by the wall "
          f"clock, {ratio('fit_cpu_s'):.2f}x by CPU time (goal >= 0.8); train "
          f"{ratio('train_s'):.2f}x wall, {ratio('train_cpu_s'):.2f}x CPU; whole job "
          f"{ratio('job_s'):.2f}x wall (the pipeline's also logs and scores every part)")
    print(f"pipeline peak RSS {pipeline['peak_rss_mib'] / 1024:.2f} GiB (goal <= 2)")
    print("train: the epochs (pipeline: with Lightning's set-up); fit: + the fold's "
          "preprocessing, validation split and tensors; job: generating the table to the last "
          "score (see the module's docstring)")


def table(sizes: list[int], models: list[str]) -> None:
    print("| model | rows | wall time | peak RSS | mean test accuracy |")
    print("|---|---:|---:|---:|---:|")
    for model in models:
        for rows in sizes:
            if model in ("decision_tree", "random_forest") and rows > SKLEARN_MAX_ROWS:
                continue
            extra, name = [], model
            if model == "logistic-parquet":
                path = os.path.join(tempfile.mkdtemp(prefix="bench_scale_"), "table.parquet")
                subprocess.run([sys.executable, __file__, "parquet", str(rows), path], check=True)
                extra, name = [f"data.path={path}"], "logistic"
            case = in_fresh_process(name, str(rows), *extra)
            print(f"| {model} | {rows:,} | {case['job_s']:.1f} s | "
                  f"{case['peak_rss_mib']:.0f} MiB | {case['test_accuracy']:.4f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("throughput").add_argument("--rows", type=int, default=1_000_000)
    sizes = commands.add_parser("table")
    sizes.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    sizes.add_argument("--models", nargs="+", default=[*MODELS, "logistic-parquet"],
                       choices=[*MODELS, "logistic-parquet"])
    parquet = commands.add_parser("parquet")
    parquet.add_argument("rows", type=int)
    parquet.add_argument("path")
    case = commands.add_parser("case")
    case.add_argument("name", choices=[*MODELS, "plain"])
    case.add_argument("rows", type=int)
    case.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.command == "case":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        result = (plain_case(args.rows) if args.name == "plain"
                  else pipeline_case(args.name, args.rows, *args.overrides))
        print(json.dumps(result))
    elif args.command == "throughput":
        throughput(args.rows)
    elif args.command == "parquet":
        write_parquet(args.rows, args.path)
    else:
        table(args.rows, args.models)


if __name__ == "__main__":
    main()
