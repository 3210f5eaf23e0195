"""Every argument of `python -m pipeline` validated once, before any run: a refused value is one
line naming its key, and docs/arguments/pipeline.md names every key the command takes."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pipeline import arguments
from pipeline.config import config_dir
from pipeline.entry import describe
from pipeline.errors import PipelineError
from tests.conftest import ROOT, all_runs

TABLE = ROOT / "docs" / "arguments" / "pipeline.md"
GROUPS = ("data", "model", "cv", "preprocess", "trainer", "tracking", "hparams_search",
          "experiment")


@pytest.mark.parametrize(("overrides", "said"), [
    (["cv.shuffle=maybe"], "cv.shuffle=maybe is not true or false"),
    (["cv.stratify=maybe"], "cv.stratify=maybe is not true or false"),
    (["cv.n_splits=2.5"], "cv.n_splits=2.5 is not an integer"),
    (["cv=holdout", "cv.test_size=nan"], "cv.test_size=nan is not a finite number"),
    (["cv=repeated_holdout", "cv.n_repeats=0"], "cv.n_repeats must be at least 1"),
    (["cv.n_splits=1"], "cv.n_splits must be an integer of at least 2"),
    (["data=synthetic", "data.noise=nan"], "data.noise=nan is not a finite number"),
    (["data=synthetic", "data.n_samples=5.5"], "data.n_samples=5.5 is not an integer"),
    (["preprocess.max_categories=true"], "preprocess.max_categories=True is not an integer"),
    (["resume=maybe"], "resume=maybe is not true or false"),
    (["tracking.migrate=yes please"], "tracking.migrate=yes please is not true or false"),
    (["refit=sometimes"], "refit=sometimes is not one of true, false, auto"),
    (["threads=0"], "threads=0 is not auto or a positive integer"),
    (["seed=-1"], "seed=-1 is not an integer from 0 to"),
    (["+notes={" + "k" * 250 + ": 1}"], "config key 'notes.kkkk"),
])
def test_a_refused_value_is_one_line_naming_its_key(make_cfg, overrides, said):
    with pytest.raises(PipelineError, match=re.escape(said)) as refused:
        describe(make_cfg("cv.n_jobs=1", *overrides))
    assert "\n" not in str(refused.value)


def test_accepted_values_pass_the_same_rule(make_cfg):
    """null where a signature takes it, an integer where a fraction is asked, a short key."""
    job, _, _ = describe(make_cfg("preprocess.min_frequency=null", "cv=holdout",
                                  "cv.test_size=0.25", "+notes.short=1", "resume=false"))
    assert job.preprocess.get("min_frequency") is None
    assert job.scheme.splitter.get("test_size") == 0.25
    assert job.config["notes"] == {"short": 1}


def test_the_param_name_limit_is_mlflows():
    from mlflow.utils import validation

    assert arguments.MAX_PARAM_KEY == validation.MAX_ENTITY_KEY_LENGTH
    for refused in ("a" * 251, "a b!", "a/../b", "/a", "a//b"):
        assert arguments.param_key_problem(refused) is not None, refused
        assert not validation.validate_param_and_metric_name(refused) or \
            validation.path_not_unique(refused) or len(refused) > 250, refused
    assert arguments.param_key_problem("model.hidden_sizes") is None
    # A key that only a config file can write (the command line's grammar has no such key).
    with pytest.raises(PipelineError, match=r"config key 'notes.a!b' holds a character"):
        arguments.check_params({"notes": {"a!b": 1}})


def test_an_over_long_key_is_refused_before_any_run(run_cli, workdir):
    done = run_cli("+" + "x" * 300 + "=1", "refit=false", "plots=false")
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: config key 'xxx") and "250" in line
    assert all_runs(workdir).empty and not (workdir / "outputs" / "mlflow.db").exists()


def test_an_over_long_output_dir_name_is_one_line(run_cli, workdir):
    done = run_cli(f"hydra.run.dir={workdir}/{'d' * 300}")
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: hydra.run.dir has a name of 300 bytes")


@pytest.mark.parametrize(("override", "said"), [
    ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0 is not a positive integer"),
    ("hydra.sweeper.n_jobs=0", "hydra.sweeper.n_jobs=0 is not a positive integer"),
    ("hydra.sweeper.n_jobs=-1", "hydra.sweeper.n_jobs=-1 is not a positive integer"),
    ("hydra.sweeper.direction=up", "hydra.sweeper.direction=up is not one of"),
    ("hydra.sweeper.max_failure_rate=2", "hydra.sweeper.max_failure_rate=2.0 is not"),
    ("hydra.sweeper.sampler.seed=-3", "hydra.sweeper.sampler.seed=-3 is not null or"),
])
def test_a_sweepers_setting_is_refused_before_the_sweep(workdir, override, said):
    def settings(*overrides: str) -> dict:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose("config", overrides=["hparams_search=svm_optuna", *overrides],
                          return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)

    assert arguments.sweeper_problem(settings()) is None  # the preset as shipped
    assert arguments.sweeper_problem(settings(override)).startswith(said)


@pytest.mark.slow
@pytest.mark.parametrize("override", ["hydra.sweeper.n_jobs=0", "hydra.sweeper.n_trials=0"])
def test_a_sweepers_setting_is_one_line_from_the_command(run_cli, workdir, override):
    """Formerly a ZeroDivisionError, and a line about `.outcomes` that named no setting."""
    done = run_cli("hparams_search=svm_optuna", override, f"hydra.sweep.dir={workdir}/sweep")
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {override} is not a positive integer"), line
    assert all_runs(workdir).empty and not (workdir / "sweep").exists()


def _documented() -> set[str]:
    text = TABLE.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return {key for row in rows for key in re.findall(r"`([\w.]+)`", row.split("|")[1])}


def _keys(cfg) -> set[str]:
    """The config's keys a user sets: top level, each group's, and the sweeper's."""
    found = set()
    for top, value in OmegaConf.to_container(cfg, resolve=False).items():
        if top == "hydra":
            found |= {f"hydra.sweeper.{key}" for key in value["sweeper"]}
            found |= {"hydra.run.dir", "hydra.sweep.dir"}
        elif isinstance(value, dict):
            found |= {f"{top}.{key}" for key in value}
        else:
            found.add(top)
    return found


def test_the_docs_table_names_every_key_of_every_group_option(workdir):
    documented = _documented()
    missing = {}
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        for group in GROUPS:
            for option in sorted((config_dir() / group).glob("*.yaml")):
                cfg = compose("config", overrides=[f"{group}={option.stem}"],
                              return_hydra_config=True)
                if unnamed := _keys(cfg) - documented:
                    missing[f"{group}={option.stem}"] = sorted(unnamed)
    assert missing == {}
