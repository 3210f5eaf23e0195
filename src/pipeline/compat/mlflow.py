"""MLflow's private API as the project uses it, checked on mlflow 3.17.2.

Why each is needed (MLflow has no public route for these):
- `mlflow.store.db.utils._initialize_tables`: builds a new SQLite store's schema in a file
  beside it, so that the store appears whole, in one step (`tracking.store.create_whole`);
- `MlflowClient._tracking_client.store`: the SQLAlchemy engines behind a client, to make a
  local SQLite store wait for locks instead of failing "database is locked";
- `mlflow.tracking._tracking_service.utils._tracking_uri`: the fluent API (`log_model`,
  `load_model`, `search_runs`) reads the process-global tracking URI and takes no URI of its
  own; `tracking_uri` sets it for one block and restores it, the environment variable
  `MLFLOW_TRACKING_URI` (which `set_tracking_uri` writes) included;
- `mlflow.store.db.utils._upgrade_db`: migrates a store of an older MLflow to this one's schema
  when the user asked for it (`tracking.migrate=true`): MLflow does it unasked only for a store
  that lacks one of its tables, and refuses one that lacks only columns;
- `mlflow/store/db_migrations/versions/<revision>_<what>.py`: the order of the SQL schema's
  revisions, to tell a store of an older MLflow (which opening would migrate in place) from
  one of a newer (`schema_revisions`); read as text, since alembic takes a second to load them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.compat import gone, private

ADAPTER = "pipeline.compat.mlflow"
CHECKED_ON = "mlflow 3.17.2"
URI_MODULE = "mlflow.tracking._tracking_service.utils"


def initialize_tables(engine: Any) -> None:
    """MLflow's schema, at this MLflow's latest revision, created in the empty database of
    `engine` (a SQLAlchemy engine)."""
    private(ADAPTER, CHECKED_ON, "mlflow.store.db.utils", "_initialize_tables")(engine)


def upgrade_schema(uri: str) -> None:
    """The SQL store at `uri` migrated in place to this MLflow's schema revision."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        private(ADAPTER, CHECKED_ON, "mlflow.store.db.utils", "_upgrade_db")(engine)
    finally:
        engine.dispose()


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


# `revision = "<id>"` and `down_revision = "<id>"` (or None), each at the start of a line of an
# alembic migration script, annotated or not.
_REVISION = re.compile(r'^revision\b[^=\n]*=\s*["\'](\w+)["\']', re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=(.*)$", re.MULTILINE)


def schema_revisions() -> list[str]:
    """The revisions of MLflow's SQL schema this MLflow knows, newest (the one it writes) first,
    down to the first: one chain, each script naming the revision it follows."""
    import mlflow.store

    folder = Path(mlflow.store.__file__).parent / "db_migrations" / "versions"
    follows: dict[str, str | None] = {}
    for script in folder.glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None or down is None:
            continue  # not a migration (__init__.py)
        earlier = re.findall(r"[\"'](\w+)[\"']", down.group(1))
        if len(earlier) > 1:
            raise gone(ADAPTER, CHECKED_ON, "the schema migrations", "merge branches")
        follows[revision.group(1)] = earlier[0] if earlier else None
    heads = set(follows) - set(follows.values())
    if len(heads) != 1:
        raise gone(ADAPTER, CHECKED_ON, f"the schema migrations in {folder}",
                   f"have {len(heads)} newest revisions, not one")
    chain = [heads.pop()]
    while follows.get(chain[-1]) is not None:
        chain.append(follows[chain[-1]])  # type: ignore[arg-type]
    if len(chain) != len(follows):
        raise gone(ADAPTER, CHECKED_ON, f"the schema migrations in {folder}", "branch")
    return chain
