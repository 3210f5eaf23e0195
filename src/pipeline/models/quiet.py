"""Lightning's info banners and known noise warnings, hidden around a fit (:func:`quiet_lightning`)
and for a worker process's whole life (:func:`quiet_worker`); other warnings still show."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator

# Lightning messages that say nothing a user of these estimators can act on.
NOISE_WARNINGS = (
    r".*does not have many workers.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*GPU available but not used.*",
    r".*`training_step` returned `None`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hides Lightning's info banners and known noise warnings; other warnings still show.
    Nested, only the outermost sets and restores the loggers' levels (each change walks every
    logger of the process: ~1 ms a fit)."""
    if getattr(_quieted, "depth", 0):
        yield
        return
    _quieted.depth = 1
    try:
        with _quiet_lightning_now():
            yield
    finally:
        _quieted.depth = 0


_quieted = threading.local()


@contextlib.contextmanager
def _quiet_lightning_now() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in NOISE_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def quiet_worker() -> None:
    """For the whole life of a worker process: what :func:`quiet_lightning` does around a fit."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
