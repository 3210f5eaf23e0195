"""What a job asks of tracking (`BaseTracker`), and the tracker of a rank other than 0, which
takes the same calls and sends nothing (`NullTracker`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the Hydra callbacks import this package before a job's first check
    import pandas as pd


class BaseTracker(ABC):
    """What a job asks of tracking: runs that always end, and what is logged to them. A
    `Tracker` sends it to MLflow; a `NullTracker` (a rank other than 0) takes the same calls
    and sends nothing."""

    uri: str
    experiment: str
    experiment_id: str

    @abstractmethod
    def run(self, name: str, *, parent: str | None = None,
            params: Mapping[str, Any] | None = None,
            tags: Mapping[str, str] | None = None) -> Any:
        """A context manager yielding the run's id; the run ends whatever happens."""

    @abstractmethod
    def finished_run(self, digest: str) -> Any | None:
        """The latest parent run of the experiment that FINISHED with config hash `digest`
        (an `mlflow.entities.Run`), or None: the job `resume=true` need not run again."""

    @abstractmethod
    def log_metrics(self, run_id: str, metrics: Mapping[str, float],
                    curves: Mapping[str, list[float]] | None = None,
                    params: Mapping[str, Any] | None = None) -> None: ...

    @abstractmethod
    def log_table(self, run_id: str, table: pd.DataFrame, path: str) -> None: ...

    @abstractmethod
    def log_text(self, run_id: str, text: str, path: str) -> None: ...

    @abstractmethod
    def log_figure(self, run_id: str, figure: Any, path: str) -> None: ...

    @abstractmethod
    def log_model(self, run_id: str, model: Any, X: pd.DataFrame,
                  packages: tuple[str, ...] = ()) -> float:
        """The fitted `model` logged as the run's, its signature from `X`, needing `packages`
        beyond scikit-learn's stack (torch for the torch models); the seconds it took."""


class NullTracker(BaseTracker):
    """A rank other than 0: the same calls, nothing sent, nothing read."""

    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment, self.experiment_id = uri, experiment, ""

    @contextmanager
    def run(self, name: str, **kwargs: Any) -> Iterator[str]:
        yield ""

    def finished_run(self, digest: str) -> None:
        return None

    def log_metrics(self, run_id: str, metrics: Mapping[str, float],
                    curves: Mapping[str, list[float]] | None = None,
                    params: Mapping[str, Any] | None = None) -> None:
        pass

    def log_text(self, run_id: str, text: str, path: str) -> None:
        pass

    def log_table(self, run_id: str, table: pd.DataFrame, path: str) -> None:
        pass

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        pass

    def log_model(self, run_id: str, model: Any, X: pd.DataFrame,
                  packages: tuple[str, ...] = ()) -> float:
        return 0.0
