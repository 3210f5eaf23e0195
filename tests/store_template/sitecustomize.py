"""The suite's pre-migrated template store: a new SQLite MLflow store copied from one built once,
in this process (conftest) and, through this file as `sitecustomize`, in the jobs it starts."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Set by tests/conftest.py for each test: the template's path (absent: MLflow's own migrations).
TEMPLATE_VARIABLE = "PIPELINE_TEST_STORE_TEMPLATE"
SCHEMA_MODULE, SCHEMA_BUILDER = "mlflow.store.db.utils", "_initialize_tables"


def from_template(build: Callable[[Any], None], template: Path) -> Callable[[Any], None]:
    """MLflow's schema builder `build`, made to copy `template` (built by `build` the first
    time) into a new, empty SQLite store: the same tables and schema revision, no experiment
    (MLflow adds `Default` when it opens the store, as after migrating). Any other database,
    or one that holds tables already, is left to `build`."""

    def initialize_from_template(engine: Any) -> None:
        import sqlalchemy

        if (engine.url.get_backend_name() != "sqlite"
                or engine.url.database in (None, "", ":memory:")
                or sqlalchemy.inspect(engine).get_table_names()):
            build(engine)
            return
        if not template.exists():
            # Built beside it and renamed: processes that build it at once never see half of one.
            building = template.with_name(f"{template.name}.{os.getpid()}")
            built = sqlalchemy.create_engine(f"sqlite:///{building}")
            build(built)
            built.dispose()
            os.replace(building, template)
        with sqlite3.connect(template) as source:
            target = engine.raw_connection()
            try:
                source.backup(target.driver_connection)
            finally:
                target.close()

    return initialize_from_template


class _TemplateOnImport(importlib.abc.MetaPathFinder):
    """Patches MLflow's schema builder as its module is imported (before the registry store
    imports it by name), so that a process that never touches MLflow imports nothing more."""

    def __init__(self, template: Path) -> None:
        self.template = template

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != SCHEMA_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        execute, template = spec.loader.exec_module, self.template

        def exec_module(module: Any) -> None:
            execute(module)
            build = getattr(module, SCHEMA_BUILDER)
            setattr(module, SCHEMA_BUILDER, from_template(build, template))

        spec.loader.exec_module = exec_module
        return spec


if __name__ == "sitecustomize" and os.environ.get(TEMPLATE_VARIABLE):
    sys.meta_path.insert(0, _TemplateOnImport(Path(os.environ[TEMPLATE_VARIABLE])))
