"""The torch models' defaults have one home, the class signature: the config's values are read
from it (``${class_default:…}``), so a job's logged params and a Python user's estimator agree.
(That they are equal, model by model: ``test_torch_models.py``.)"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from pipeline.entry import describe
from pipeline.errors import PipelineError
from pipeline.models import build
from pipeline.tracking.params import flatten

# Keys of the shared file that are the job's, not the class's: linked to other config groups.
JOB_LINKED = {"random_state": "seed", "trainer": "trainer"}


def as_config(value):
    """A default as the config holds it (a tuple, such as ``hidden_sizes``, is a list)."""
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("model", ["logistic", "softmax", "linear", "mlp"])
def test_no_model_file_writes_a_class_default_down(make_cfg, model):
    """One source: the composed config takes each argument's value from the class, never from
    a literal in a YAML file that could drift from it."""
    unresolved = OmegaConf.to_container(make_cfg(f"model={model}").model, resolve=False)
    for key, value in unresolved.items():
        if key in ("_target_", "name"):
            continue
        expected = f"${{{JOB_LINKED[key]}}}" if key in JOB_LINKED else f"${{class_default:{key}}}"
        assert value == expected, f"model.{key} in conf is {value!r}"


def test_the_estimator_a_job_builds_equals_the_class_at_its_defaults(make_cfg):
    job, dataset, task = describe(make_cfg("model=mlp", "data=iris", "seed=7"))
    estimator = build(job.model, dataset, task)
    params = estimator.get_params(deep=False)
    fresh = type(estimator)(random_state=7, trainer=params["trainer"]).get_params(deep=False)
    assert params == {key: as_config(value) for key, value in fresh.items()}


def test_a_users_class_default_reaches_the_config_and_the_logged_params(make_cfg, tmp_path,
                                                                       monkeypatch):
    (tmp_path / "patient_net.py").write_text(
        "from pipeline.models.neural import MLPClassifier\n\n\n"
        "class PatientNet(MLPClassifier):\n"
        "    def __init__(self, *, patience=25, tol=1e-3, **shared):\n"
        "        super().__init__(patience=patience, tol=tol, **shared)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "patient.yaml").write_text(
        "defaults:\n  - /torch_model@_here_\n  - _self_\n"
        "_target_: patient_net.PatientNet\nname: patient\n")
    cfg = make_cfg(f"hydra.searchpath=[file://{conf}]", "model=patient", "data=iris")
    params = flatten(OmegaConf.to_container(cfg.model, resolve=True))
    assert params["patience"] == "25" and params["tol"] == "0.001"
    assert params["lr"] == "0.003" and params["optimizer"] == "adam"  # inherited from FeedForward


def test_a_key_the_class_has_no_default_for_is_one_line_naming_it(make_cfg, tmp_path):
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "odd.yaml").write_text(
        "defaults:\n  - /torch_model@_here_\n  - _self_\n"
        "_target_: pipeline.models.neural.MLPClassifier\nname: odd\n"
        "width: ${class_default:width}\n")
    cfg = make_cfg(f"hydra.searchpath=[file://{conf}]", "model=odd", "data=iris")
    with pytest.raises(PipelineError) as refused:
        describe(cfg)
    assert str(refused.value) == (
        "pipeline.models.neural.MLPClassifier has no default for width, which "
        "${class_default:width} reads; set it in the model's file")
