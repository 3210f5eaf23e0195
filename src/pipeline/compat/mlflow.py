"""MLflow's private API as the project uses it, checked on mlflow 3.17.2.

Why each is needed (MLflow has no public route for these):
- `mlflow.store.db.utils._initialize_tables`: builds a new SQLite store's schema in a file
  beside it, so that the store appears whole, in one step (`tracking.store.create_whole`);
- `MlflowClient._tracking_client.store`: the SQLAlchemy engines behind a client, to make a
  local SQLite store wait for locks instead of failing "database is locked";
- `mlflow.tracking._tracking_service.utils._tracking_uri`: the fluent API (`log_model`,
  `load_model`, `search_runs`) reads the process-global tracking URI and takes no URI of its
  own; `tracking_uri` sets it for one block and restores it, the environment variable
  `MLFLOW_TRACKING_URI` (which `set_tracking_uri` writes) included.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.compat import gone, private

ADAPTER = "pipeline.compat.mlflow"
CHECKED_ON = "mlflow 3.17.2"
URI_MODULE = "mlflow.tracking._tracking_service.utils"


def initialize_tables(engine: Any) -> None:
    """MLflow's schema, at this MLflow's latest revision, created in the empty database of
    `engine` (a SQLAlchemy engine)."""
    private(ADAPTER, CHECKED_ON, "mlflow.store.db.utils", "_initialize_tables")(engine)


def tracking_store(client: Any) -> Any:
    """The tracking store (an `AbstractStore`) behind an `MlflowClient`."""
    tracking_client = getattr(client, "_tracking_client", None)
    store = getattr(tracking_client, "store", None)
    if store is None:
        raise gone(ADAPTER, CHECKED_ON, "MlflowClient._tracking_client.store")
    return store


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API on `uri` inside the block; outside it, the process's tracking URI
    (MLflow's global and the `MLFLOW_TRACKING_URI` variable) is what it was before. Not for
    threads that use the fluent API meanwhile: the global is the process's."""
    import mlflow

    previous = private(ADAPTER, CHECKED_ON, URI_MODULE, "_tracking_uri")
    variable = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # None: MLflow unsets its variable too
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable
