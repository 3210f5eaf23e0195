"""5-fold CV of an MLP on digits: the whole pipeline against a plain PyTorch loop and against
scikit-learn's MLPClassifier under cross_validate, measured in one process.

    python benchmarks/bench_mlp.py [--epochs 50] [--threads 1]

The pipeline runs twice: with its folds trained as one batched model (cv.batch_folds=true, the
default wherever it applies) and one fold after another (cv.batch_folds=false). Each run
includes composing the Hydra config, Lightning's Trainer, the fold and parent runs in MLflow
(SQLite) with every fold's scores, confusion matrix and per-epoch curves; not the refit on all
rows (refit=false) nor the figures (plots=false), which neither reference makes. One more run,
folds batched with the figures (plots=true, permutation importance included), shows what they
add. The plain loop does the same training on the same folds, one
after another: standardise on the fold's training part, hold out the same 10% for per-epoch
validation loss and accuracy, train a 64-unit ReLU MLP with Adam (lr 1e-3) on reshuffled
mini-batches of 64, then score the test fold. scikit-learn's MLPClassifier has the same
settings (its own early stopping off, as here).

torch runs on one intra-op thread (``--threads``): these layers are too small for a second
thread to pay, and on a shared machine more threads than free cores slow every step down.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from sklearn import datasets
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit, cross_validate
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.config import config_dir
from pipeline.entry import run

SEED = 42


def pipeline_cv(epochs: int, *extra: str):
    overrides = ["data=digits", "model=mlp", "model.hidden_sizes=[64]", "model.activation=relu",
                 "model.optimizer=adam", "model.lr=0.001", "model.batch_size=64",
                 f"trainer.max_epochs={epochs}", "trainer=cpu", "cv=kfold", f"seed={SEED}",
                 "refit=false", "plots=false", *extra]
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return run(cfg)


def plain_fold(X_train, y_train, X_test, y_test, epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    fit_rows, val_rows = next(StratifiedShuffleSplit(1, test_size=0.1, random_state=seed)
                              .split(X_train, y_train))
    X = torch.as_tensor(X_train[fit_rows], dtype=torch.float32)
    y = torch.as_tensor(y_train[fit_rows])
    X_val = torch.as_tensor(X_train[val_rows], dtype=torch.float32)
    y_val = torch.as_tensor(y_train[val_rows])
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    curves = []
    for _ in range(epochs):
        model.train()
        total = torch.zeros(())
        for batch in torch.randperm(len(X), generator=generator).split(64):
            optimizer.zero_grad()
            loss = loss_fn(model(X[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
        model.eval()
        with torch.no_grad():
            out = model(X_val)
            curves.append((total / len(X), loss_fn(out, y_val),
                           (out.argmax(1) == y_val).float().mean()))
    with torch.no_grad():
        predicted = model(torch.as_tensor(X_test, dtype=torch.float32)).argmax(1).numpy()
    return float((predicted == y_test).mean())


def plain_cv(X, y, epochs: int) -> list[float]:
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED).split(X, y)
    return [plain_fold(X[tr], y[tr], X[te], y[te], epochs, SEED) for tr, te in folds]


def timed(work):
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    arguments = parser.parse_args()
    epochs = arguments.epochs
    torch.set_num_threads(arguments.threads)

    os.chdir(tempfile.mkdtemp(prefix="bench-mlp-"))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    X, y = datasets.load_digits(return_X_y=True)
    # Warm-up: imports, the SQLite store's creation, torch's first kernels, figures.
    pipeline_cv(1, "cv.batch_folds=true")
    pipeline_cv(1, "cv.batch_folds=false")
    plain_cv(X, y, 1)

    plain_time, plain_scores = timed(lambda: plain_cv(X, y, epochs))
    batched_time, batched = timed(lambda: pipeline_cv(epochs, "cv.batch_folds=true"))
    sequential_time, sequential = timed(lambda: pipeline_cv(epochs, "cv.batch_folds=false"))
    figures_time, figures = timed(lambda: pipeline_cv(epochs, "cv.batch_folds=true",
                                                      "plots=true"))
    reference = Pipeline([("scale", StandardScaler()), ("model", MLPClassifier(
        hidden_layer_sizes=(64,), activation="relu", solver="adam", learning_rate_init=1e-3,
        batch_size=64, max_iter=epochs, random_state=SEED))])
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk_time, sk = timed(lambda: cross_validate(
            reference, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=SEED)))

    print(f"MLP 64 ReLU, Adam lr 1e-3, batch 64, {epochs} epochs, 5-fold CV on digits "
          f"(torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"load average {os.getloadavg()[0]:.2f})")
    print(f"  {'':48s} {'seconds':>8s} {'accuracy':>9s}  {'/ plain loop':>12s}  "
          f"{'/ sklearn':>9s}")
    rows = [
        ("plain PyTorch loop, folds one after another", plain_time, np.mean(plain_scores)),
        ("pipeline, folds batched (cv.batch_folds=true)", batched_time, batched.score),
        ("pipeline, one after another (batch_folds=false)", sequential_time, sequential.score),
        ("sklearn MLPClassifier via cross_validate", sk_time, sk["test_score"].mean()),
        ("pipeline, folds batched, with figures", figures_time, figures.score),
    ]
    for name, seconds, accuracy in rows:
        print(f"  {name:48s} {seconds:8.2f} {accuracy:9.4f}  {seconds / plain_time:11.2f}x  "
              f"{seconds / sk_time:8.2f}x")


if __name__ == "__main__":
    main()
