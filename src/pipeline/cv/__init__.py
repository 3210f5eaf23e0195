"""Cross-validation: scikit-learn splitters behind config files (`schemes`), split once up
front into a job's folds and checked against the data (`folds`). The config's `_target_`s name
the schemes here (`pipeline.cv.kfold`)."""

from pipeline.cv.folds import MAX_FOLDS, REPEATED, Fold, Folds, check_cost, split
from pipeline.cv.schemes import (
    Resample,
    TrainValTestSplit,
    group_kfold,
    holdout,
    kfold,
    loocv,
    repeated_holdout,
    repeated_kfold,
    resample,
    timeseries,
    train_val_test,
)

__all__ = [
    "MAX_FOLDS", "REPEATED", "Fold", "Folds", "Resample", "TrainValTestSplit", "check_cost",
    "group_kfold", "holdout", "kfold", "loocv", "repeated_holdout", "repeated_kfold",
    "resample", "split", "timeseries", "train_val_test",
]
