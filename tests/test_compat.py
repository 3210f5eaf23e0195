"""Each private route of `pipeline.compat`, against the installed library: a library release
that moves or changes one fails here, naming the adapter to update, before a job meets it."""

from __future__ import annotations

import inspect
import numbers
import os
import sqlite3
from pathlib import Path

import mlflow
import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.base import BaseEstimator
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from pipeline.compat import CompatError, hydra, private
from pipeline.compat import mlflow as mlflow_compat
from pipeline.compat import sklearn as sklearn_compat


def store_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


# -- the mechanism -----------------------------------------------------------------------------

def test_a_missing_private_api_is_an_error_naming_the_adapter_and_the_checked_version():
    with pytest.raises(CompatError, match=r"^pipeline\.compat\.sklearn: sklearn\.utils\."
                                          r"_param_validation\.Gone is gone \(checked on "
                                          r"scikit-learn 1\.9\.1\); update the adapter$"):
        private("pipeline.compat.sklearn", "scikit-learn 1.9.1",
                "sklearn.utils._param_validation", "Gone")
    with pytest.raises(CompatError, match=r"^pipeline\.compat\.sklearn: object\._score_func"):
        sklearn_compat.scorer_parts(object())
    with pytest.raises(CompatError, match=r"^pipeline\.compat\.hydra: JobReturn\._return_value"):
        hydra.job_error(hydra_job_return(status="FAILED", value=0.5))


# -- scikit-learn ------------------------------------------------------------------------------

def test_sklearn_checks_declared_constructor_constraints_as_fit_would():
    adapter = sklearn_compat.ADAPTER
    message = sklearn_compat.parameter_error(SimpleImputer(strategy="banana"))
    assert message is not None, f"{adapter}: SimpleImputer(strategy='banana') was let through"
    assert message.startswith("The 'strategy' parameter of SimpleImputer must be "), (
        f"{adapter}: InvalidParameterError's message changed: {message!r}")
    with pytest.raises(sklearn_compat.InvalidParameterError) as raised:
        SimpleImputer(strategy="banana").fit(np.zeros((2, 1)))
    assert str(raised.value) == message, f"{adapter}: fit checks differently from _validate_params"
    assert issubclass(sklearn_compat.InvalidParameterError, ValueError), adapter
    assert sklearn_compat.parameter_error(SimpleImputer(strategy="median")) is None

    class Undeclared(BaseEstimator):
        def __init__(self, anything=None):
            self.anything = anything

    assert sklearn_compat.parameter_error(Undeclared()) is None  # declares nothing: not checked


def test_sklearn_constraint_types_declare_and_check_as_the_torch_estimators_use_them():
    adapter = sklearn_compat.ADAPTER
    constraints = {
        "lr": [sklearn_compat.Interval(numbers.Real, 0, None, closed="neither"), None],
        "optimizer": [sklearn_compat.StrOptions({"adam", "sgd"})],
        "device": [sklearn_compat.Options(str, {"cpu", "cuda"})],
    }
    sklearn_compat.validate_parameter_constraints(
        constraints, {"lr": 0.1, "optimizer": "adam", "device": "cpu"}, caller_name="Net")
    for params, says in (({"lr": 0}, "'lr' parameter of Net must be a float in the range "
                                     "(0.0, inf) or None"),
                         ({"optimizer": "rmsprop"}, "'optimizer' parameter of Net must be a str "
                                                    "among {")):
        with pytest.raises(sklearn_compat.InvalidParameterError) as raised:
            sklearn_compat.validate_parameter_constraints(
                constraints, {"lr": 0.1, "optimizer": "adam", "device": "cpu", **params},
                caller_name="Net")
        assert says in str(raised.value), f"{adapter}: constraint message: {raised.value}"


@pytest.mark.parametrize(("name", "function", "kwargs", "methods", "greater"), [
    ("roc_auc", skm.roc_auc_score, {}, ("decision_function", "predict_proba"), True),
    ("neg_log_loss", skm.log_loss, {}, ("predict_proba",), False),
    ("f1", skm.f1_score, {"average": "binary"}, ("predict",), True),  # pos_label: ours to set
    ("f1_macro", skm.f1_score, {"pos_label": None, "average": "macro"}, ("predict",), True),
    ("balanced_accuracy", skm.balanced_accuracy_score, {}, ("predict",), True),
])
def test_sklearn_scorer_parts_rebuild_the_same_scorer(name, function, kwargs, methods, greater):
    adapter = sklearn_compat.ADAPTER
    scorer = skm.get_scorer(name)
    parts = sklearn_compat.scorer_parts(scorer)
    assert (parts.function, parts.kwargs, parts.response_methods, parts.greater_is_better) == (
        function, kwargs, methods, greater), f"{adapter}: the parts of scorer {name} changed"
    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(X[::2], y[::2])
    rebuilt = skm.make_scorer(parts.function, response_method=parts.response_methods,
                              greater_is_better=parts.greater_is_better, **parts.kwargs)
    assert rebuilt(model, X[1::2], y[1::2]) == scorer(model, X[1::2], y[1::2]), adapter


def test_sklearn_standard_scale_is_the_scale_standard_scaler_fits():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        X = (rng.normal(size=(97, 4)) * [1e-3, 1.0, 1e3, 1.0] + [0, 5, -7, 0]).astype(dtype)
        X[:, 3] = 2.5  # constant: a scale of 1, not 0
        fitted = StandardScaler().fit(X)
        scale = sklearn_compat.standard_scale(fitted.var_.copy(), fitted.mean_,
                                              fitted.n_samples_seen_)
        np.testing.assert_array_equal(scale, fitted.scale_,
                                      err_msg=f"{sklearn_compat.ADAPTER}: scale_ is derived anew")
        assert scale[3] == 1.0


# -- MLflow ------------------------------------------------------------------------------------

@pytest.mark.store_creation
def test_mlflow_initialize_tables_builds_a_store_at_the_latest_schema(tmp_path: Path):
    import sqlalchemy
    from alembic.script import ScriptDirectory
    from mlflow import MlflowClient

    path = tmp_path / "mlflow.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    mlflow_compat.initialize_tables(engine)
    engine.dispose()
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        [revision] = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"experiments", "runs", "metrics", "params", "tags"} <= tables, mlflow_compat.ADAPTER
    migrations = Path(mlflow.store.__file__).parent / "db_migrations"
    assert revision == ScriptDirectory(str(migrations)).get_current_head(), (
        f"{mlflow_compat.ADAPTER}: _initialize_tables no longer builds the latest schema")
    client = MlflowClient(tracking_uri=store_uri(tmp_path))  # opens it without migrating
    assert client.get_experiment(client.create_experiment("built")).name == "built"


def test_mlflow_tracking_store_is_the_store_the_client_writes_to(tmp_path: Path):
    import sqlalchemy
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store_uri(tmp_path))
    store = mlflow_compat.tracking_store(client)
    assert isinstance(store.engine, sqlalchemy.engine.Engine), mlflow_compat.ADAPTER
    assert Path(store.engine.url.database) == tmp_path / "mlflow.db", mlflow_compat.ADAPTER
    created = client.create_experiment("seen")
    assert store.get_experiment_by_name("seen").experiment_id == created, mlflow_compat.ADAPTER


@pytest.mark.parametrize("variable", [None, "sqlite:///elsewhere.db"])
def test_mlflow_tracking_uri_scopes_the_fluent_api_and_restores_the_process_state(
        tmp_path: Path, monkeypatch, variable):
    from mlflow import MlflowClient

    monkeypatch.setattr(f"{mlflow_compat.URI_MODULE}._tracking_uri", None)
    if variable is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", variable)
    before = mlflow.get_tracking_uri()
    uri = store_uri(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("scoped"), run_name="found")
    with pytest.raises(KeyError), mlflow_compat.tracking_uri(uri):
        assert mlflow.get_tracking_uri() == uri, mlflow_compat.ADAPTER
        found = mlflow.search_runs(search_all_experiments=True, output_format="list")
        assert [r.info.run_id for r in found] == [run.info.run_id], mlflow_compat.ADAPTER
        raise KeyError("left by an error: restored all the same")
    assert mlflow.get_tracking_uri() == before, mlflow_compat.ADAPTER
    assert os.environ.get("MLFLOW_TRACKING_URI") == variable, mlflow_compat.ADAPTER


# -- Hydra -------------------------------------------------------------------------------------

def hydra_job_return(status: str, value: object):
    from hydra.core.utils import JobReturn, JobStatus

    job_return = JobReturn()
    job_return.return_value = value  # as hydra.core.utils.run_job records a job's outcome
    job_return.status = JobStatus[status]
    return job_return


def test_hydra_quick_help_shares_one_repository_only_inside_the_block():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from pipeline.config import config_dir

    adapter, name = hydra.ADAPTER, hydra.REPOSITORY_BUILDER
    original = vars(hydra.config_loader())[name]
    assert list(inspect.signature(original).parameters) == ["self", "config_name", "overrides"], (
        f"{adapter}: ConfigLoaderImpl.{name} takes other arguments")
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        build = getattr(loader, name)
        assert build("config", ["model=knn"]) is not build("config", ["model=knn"])
        expected = compose("config", ["model=knn"])
        with hydra.quick_help():
            build = getattr(loader, name)
            first = build("config", ["model=knn"])
            assert build("config", ["model=knn"]) is first, adapter
            assert build("config", ["model=svm"]) is not first
            assert compose("config", ["model=knn"]) == expected, adapter
        assert vars(hydra.config_loader())[name] is original, adapter


def test_hydra_job_error_is_the_exception_a_failed_job_raised():
    error = ValueError("the job's own")
    failed = hydra_job_return(status="FAILED", value=error)
    assert hydra.job_error(failed) is error, hydra.ADAPTER
    with pytest.raises(ValueError) as raised:
        _ = failed.return_value  # Hydra's public route raises the very same exception
    assert raised.value is error, hydra.ADAPTER
