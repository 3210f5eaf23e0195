"""The `Dataset` every loader returns (features, target, task, notes), and the conventions the
loaders and the data-honesty checks share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# An integer target with at most this many distinct values is taken for class labels.
MAX_INTEGER_CLASSES = 20


@dataclass(frozen=True)
class Dataset:
    """Features, target and what to learn from them."""

    X: pd.DataFrame
    y: pd.Series | None  # None: data without labels, to be clustered
    task: str
    name: str
    categorical: tuple[str, ...] = ()
    groups: pd.Series | None = None
    # What the loader decided or warned about (task, dropped rows, ...), as printed at load
    # time; the job records them on its parent run.
    notes: tuple[str, ...] = ()
    # The classes in the data's own order where it has one (a bundled set's target codes),
    # else empty: sorted. The second class is a binary target's positive one.
    class_order: tuple = ()

    @property
    def classes(self) -> np.ndarray:
        if self.task != "classification":
            return np.array([])
        if self.class_order:
            return np.array(self.class_order)
        return np.unique(self.y.to_numpy())


def add_note(notes: list[str], message: str, warn: bool = False) -> None:
    """Keep what the loader decided, or warns about, to print and for the job's parent run."""
    notes.append(f"warning: {message}" if warn else f"data: {message}")
