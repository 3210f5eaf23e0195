"""`pipeline.predict` and the served model read their input through the signature: text codes
keep their leading zeros, categories never seen in training are reported, and every
argument is checked before the model is loaded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import predict, preprocessing
from pipeline.data import Dataset
from pipeline.data.loaders import table
from pipeline.tracking.signature import Categories, training_categories
from tests.conftest import refit_csv_job

# Text codes, some all digits with leading zeros (read as numbers, `01234` is 1234).
CODES = {"01234": "yes", "00077": "no", "00420": "yes", "A9999": "no", "B0001": "yes",
         "1234": "no"}


def code_table(rows: int = 120) -> pd.DataFrame:
    """Labels decided by the code alone (`x` is noise): a model that mistakes `01234` for
    another code predicts the other code's label."""
    rng = np.random.default_rng(0)
    codes = rng.choice(list(CODES), rows)
    return pd.DataFrame({"code": codes, "x": rng.normal(size=rows).round(3),
                         "label": [CODES[c] for c in codes]})


@pytest.fixture(scope="module")
def code_job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One job on `code_table` with `data.categorical=[code]`: its folder, run id, store and
    the final model (unguarded, as the job fitted it)."""
    return refit_csv_job(tmp_path_factory.mktemp("codes"), code_table(), "data.categorical=[code]")


def predict_in(job: dict, capsys: pytest.CaptureFixture, file: str, *args: str,
               output: str = "out.csv") -> tuple[int, str]:
    """`pipeline.predict` on `file` of the job's folder: (exit status, stderr)."""
    status = predict.main([f"run_id={job['run_id']}", f"input={job['folder'] / file}",
                           f"output={job['folder'] / output}", f"tracking_uri={job['uri']}",
                           *args])
    return status, capsys.readouterr().err.strip()


def digit_rows() -> pd.DataFrame:
    """20 new rows whose codes are all digits: `pd.read_csv` would read them as numbers."""
    codes = ["01234", "00077", "00420", "01234"] * 5
    return pd.DataFrame({"code": codes, "x": np.linspace(-1, 1, 20).round(3)})


def test_the_training_loader_reads_declared_categories_as_written(tmp_path):
    file = tmp_path / "codes.csv"
    file.write_text("code,x,label\n01234,1,a\n00077,2,b\n01234,3,a\n,4,b\n")
    dataset = table(str(file), "label", categorical=["code"])
    assert dataset.X["code"].tolist()[:3] == ["01234", "00077", "01234"]
    assert pd.isna(dataset.X["code"].iloc[3])  # a blank stays missing, to be imputed
    inferred = table(str(file), "label")  # not declared: numbers, as pandas reads them
    assert inferred.X["code"].tolist()[:3] == [1234.0, 77.0, 1234.0]


def test_all_digit_codes_keep_their_leading_zeros(code_job, capsys):
    rows = digit_rows()
    rows.to_csv(code_job["folder"] / "digits.csv", index=False)
    assert predict_in(code_job, capsys, "digits.csv") == (0, "")
    written = pd.read_csv(code_job["folder"] / "out.csv")
    expected = code_job["final"].predict(rows)  # the codes as the text they are
    np.testing.assert_array_equal(written["prediction"], expected)
    np.testing.assert_allclose(written.filter(like="proba_").to_numpy(),
                               code_job["final"].predict_proba(rows))
    # What reading them as numbers predicted: 01234 taken for the code 1234.
    as_numbers = rows.assign(code=rows["code"].astype(int).astype(str))
    assert (code_job["final"].predict(as_numbers) != expected).any()

    # Parquet holds types: text codes are text, and the same predictions come out.
    rows.to_parquet(code_job["folder"] / "digits.parquet")
    assert predict_in(code_job, capsys, "digits.parquet") == (0, "")
    np.testing.assert_array_equal(pd.read_csv(code_job["folder"] / "out.csv")["prediction"],
                                  expected)


def test_a_parquet_column_of_numbers_is_taken_as_text_and_the_lost_zeros_reported(
        code_job, capsys):
    rows = digit_rows().assign(code=lambda r: r["code"].astype(int))  # 1234, 77, 420
    rows.loc[3, "code"] = None  # a blank makes the column float: 1234.0 is still '1234'
    rows.to_parquet(code_job["folder"] / "numbers.parquet")
    status, err = predict_in(code_job, capsys, "numbers.parquet")
    assert status == 0
    # 1234 is a code of its own; 77 and 420 (5 rows each) were never seen.
    assert err == ("warning: column 'code': 10 of 20 row(s) hold categories not seen in "
                   "training (e.g. '77'); they are encoded as unknown")
    as_text = rows.assign(code=[None if pd.isna(c) else str(int(c)) for c in rows["code"]])
    np.testing.assert_array_equal(pd.read_csv(code_job["folder"] / "out.csv")["prediction"],
                                  code_job["final"].predict(as_text))


def test_unseen_categories_are_a_warning_per_column_and_an_error_with_strict(code_job, capsys):
    rows = digit_rows()
    rows.loc[[2, 5, 8, 11], "code"] = ["99999", "C7", "99999", "99999"]
    rows.to_csv(code_job["folder"] / "unseen.csv", index=False)
    line = ("column 'code': 4 of 20 row(s) hold categories not seen in training (e.g. '99999')")
    assert predict_in(code_job, capsys, "unseen.csv") == (
        0, f"warning: {line}; they are encoded as unknown")
    (code_job["folder"] / "strict.csv").unlink(missing_ok=True)
    assert predict_in(code_job, capsys, "unseen.csv", "strict=yes", output="strict.csv") == (
        1, f"error: {line}; strict=true refuses them: correct those values, or leave strict out "
        "to predict them")
    assert not (code_job["folder"] / "strict.csv").exists()


def test_a_value_that_is_not_of_its_type_is_one_line(code_job, capsys):
    rows = digit_rows().astype({"x": object})
    rows.loc[6, "x"] = "n/a?"
    rows.to_csv(code_job["folder"] / "bad.csv", index=False)
    assert predict_in(code_job, capsys, "bad.csv") == (
        1, "error: column 'x' must hold numbers (double), but data row 7 holds 'n/a?' (1 of 20 "
        "value(s) are not numbers); fix those cells, or leave them blank to have them imputed")


def test_training_categories_come_from_the_fitted_encoder():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"code": rng.choice(["01234", "A9999", "00077"], 200).astype(object),
                      "shade": ["rare"] + ["dark", "light"] * 99 + ["odd"],
                      "x": rng.normal(size=200)})
    y = pd.Series(rng.choice(["a", "b"], 200))
    dataset = Dataset(X=X, y=y, task="classification", name="t", categorical=("code", "shade"))
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    for reduce in ("none", "pca"):
        model = Pipeline([("preprocess", preprocessing.build(dataset, reduce=reduce,
                                                             n_components=2)),
                          ("model", DecisionTreeClassifier(random_state=0))]).fit(X, y)
        # `rare` and `odd` (1 row in 200, under min_frequency=0.01) are grouped, yet seen.
        assert training_categories(model) == {
            "code": Categories(("00077", "01234", "A9999"), grouped=False),
            "shade": Categories(("dark", "light", "odd", "rare"), grouped=True)}
    assert training_categories(DecisionTreeClassifier().fit(X[["x"]], y)) == {}


def test_the_served_model_refuses_numbers_in_a_text_column(code_job):
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    mlflow.set_tracking_uri(code_job["uri"])
    served = mlflow.pyfunc.load_model(f"runs:/{code_job['run_id']}/model")
    rows = digit_rows()
    np.testing.assert_array_equal(served.predict(rows), code_job["final"].predict(rows))
    # A column of numbers: MLflow's own schema check refuses it.
    with pytest.raises(MlflowException, match="Incompatible input types for column code"):
        served.predict(rows.assign(code=rows["code"].astype(int)))
    # A JSON request with a number where the code is text, as the scoring server parses it:
    # MLflow lets it through as an object column; the model's first step refuses it.
    request = {"dataframe_records": [{"code": "00077", "x": 0.5}, {"code": 1234, "x": 0.1}]}
    parsed = infer_and_parse_data(request, served.metadata.get_input_schema())
    with pytest.raises(MlflowException, match=re.escape(
            "column 'code' takes text, but row 2 holds 1234, not text (1 of 2 row(s)); send these "
            "values as strings (quoted in JSON)")):
        served.predict(parsed)
    quoted = json.loads(json.dumps(request).replace("1234", '"01234"'))
    parsed = infer_and_parse_data(quoted, served.metadata.get_input_schema())
    expected = code_job["final"].predict(pd.DataFrame({"code": ["00077", "01234"],
                                                       "x": [0.5, 0.1]}))
    np.testing.assert_array_equal(served.predict(parsed), expected)


@pytest.mark.parametrize(("args", "message"), [
    (["strict=maybe"], "strict=maybe is not true or false; give strict=true or strict=false "
     "(yes/no and 1/0 also work)"),
    (["ignore_extra=2"], "ignore_extra=2 is not true or false; give ignore_extra=true or "
     "ignore_extra=false (yes/no and 1/0 also work)"),
    (["strict=true", "strict=false"], "strict= is given twice; give it once"),
    (["tracking_uri=ftp://host/store"], "tracking_uri=ftp://host/store is not a tracking URI "
     "MLflow reads; give sqlite:///<path>/mlflow.db, http(s)://<host>:<port>, file:///<dir> or "
     "a SQL database URI (schemes: sqlite, file, http, https, postgresql, mysql, mssql, "
     "databricks)"),
    (["output="], "output= is empty; give a value, or leave the argument out"),
], ids=["strict", "ignore-extra", "twice", "uri-scheme", "empty-output"])
def test_arguments_are_refused_by_name_before_anything_is_read(capsys, monkeypatch, args,
                                                               message):
    monkeypatch.setattr(predict, "load", lambda *a: pytest.fail("the model was loaded"))
    assert predict.main(["run_id=" + "ab" * 16, "input=rows.csv", *args]) == 2
    assert capsys.readouterr().err.splitlines()[0] == f"error: {message}"


def test_a_run_id_of_the_wrong_form_is_named(capsys):
    assert predict.main(["run_id=1234", "input=rows.csv"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: run_id=1234 is not an MLflow run id (32 hexadecimal characters, 0-9 and a-f, "
        "as the job's last line and the MLflow UI show it)")


def test_output_into_a_missing_directory_is_one_line_before_the_model_loads(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(predict, "load", lambda *a: pytest.fail("the model was loaded"))
    rows = tmp_path / "rows.csv"
    digit_rows().to_csv(rows, index=False)
    base = ["run_id=" + "ab" * 16, f"input={rows}"]
    missing = tmp_path / "nowhere"
    assert predict.main([*base, f"output={missing / 'p.csv'}"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: output={missing / 'p.csv'}: the directory {missing} does not exist; create it "
        "first (mkdir -p), or name a file in an existing directory")
    assert predict.main([*base, f"output={tmp_path}"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: output={tmp_path} is a directory; name a file in it, e.g. "
        f"output={tmp_path / 'predictions.csv'}")
    assert predict.main([*base, f"output={rows}"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: output={rows} is the input file; name another file, so that the rows are kept")


def test_the_arguments_table_names_every_argument():
    page = (Path(__file__).parent.parent / "docs" / "arguments" / "predict.md").read_text()
    named = set(re.findall(r"^\| `([a-z_]+)=", page, flags=re.MULTILINE))
    assert named == set(predict.KEYS)
