"""scikit-learn's private API as the project uses it, checked on scikit-learn 1.9.1.

Why each is needed (scikit-learn has no public route for these):
- `BaseEstimator._validate_params` and `sklearn.utils._param_validation`: an estimator's
  declared constructor constraints, checked before any fold is fitted (scikit-learn checks
  them only inside `fit`); the torch estimators declare theirs with the same constraint types.
- a scorer's `_score_func`, `_kwargs`, `_response_method`, `_sign`: what a scorer named by
  its name (`get_scorer`) reads of the model and which function it calls, to check the model
  gives it and to score a binary target's own positive class; scorers expose none of these.
- `sklearn.preprocessing._data._is_constant_feature` and `_handle_zeros_in_scale`: the scale
  that `StandardScaler.fit` derives from a variance, for the chunked fit that must equal
  scikit-learn's bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from pipeline.compat import gone, private

ADAPTER = "pipeline.compat.sklearn"
CHECKED_ON = "scikit-learn 1.9.1"
PARAM_VALIDATION = "sklearn.utils._param_validation"


def _private(module: str, name: str) -> Any:
    return private(ADAPTER, CHECKED_ON, module, name)


# The constraint types of `_parameter_constraints` (the torch estimators declare theirs).
InvalidParameterError = _private(PARAM_VALIDATION, "InvalidParameterError")
Interval = _private(PARAM_VALIDATION, "Interval")
Options = _private(PARAM_VALIDATION, "Options")
StrOptions = _private(PARAM_VALIDATION, "StrOptions")
validate_parameter_constraints = _private(PARAM_VALIDATION, "validate_parameter_constraints")


def parameter_error(estimator: Any) -> str | None:
    """Why `estimator`'s constructor arguments break the constraints it declares
    (`_parameter_constraints`, checked as its `fit` would check them), or None when they hold
    or it declares none. An estimator of ours that checks in its own `_validate_params` raises
    its own error (a PipelineError) through this."""
    validate = getattr(type(estimator), "_validate_params", None)
    if validate is None and isinstance(estimator, BaseEstimator):
        raise gone(ADAPTER, CHECKED_ON, "BaseEstimator._validate_params")
    own_check = validate is not None and validate is not BaseEstimator._validate_params
    if not (own_check or hasattr(estimator, "_parameter_constraints")):
        return None
    try:
        estimator._validate_params()
    except InvalidParameterError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class ScorerParts:
    """What a scikit-learn scorer is made of, as `make_scorer` took it."""

    function: Any
    kwargs: dict[str, Any]
    response_methods: tuple[str, ...]
    greater_is_better: bool


def scorer_parts(scorer: Any) -> ScorerParts:
    """The metric function, its keyword arguments, the response methods it reads of a model
    (the first the model has is used) and its direction, of a scorer from `get_scorer`."""
    names = ("_score_func", "_kwargs", "_response_method", "_sign")
    missing = [name for name in names if not hasattr(scorer, name)]
    if missing:
        raise gone(ADAPTER, CHECKED_ON, f"{type(scorer).__name__}.{', .'.join(missing)}")
    methods = scorer._response_method
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    if not (callable(scorer._score_func) and isinstance(scorer._kwargs, dict)
            and all(isinstance(method, str) for method in methods)
            and scorer._sign in (1, -1)):
        raise gone(ADAPTER, CHECKED_ON, f"{type(scorer).__name__}'s private attributes",
                   "changed meaning")
    return ScorerParts(scorer._score_func, dict(scorer._kwargs), methods, scorer._sign > 0)


def standard_scale(var: np.ndarray, mean: np.ndarray, n_samples_seen: Any) -> np.ndarray:
    """`StandardScaler`'s `scale_` for a fitted `var_`, `mean_` and `n_samples_seen_`: the
    standard deviation, 1 where a column is constant up to rounding."""
    is_constant = _private("sklearn.preprocessing._data", "_is_constant_feature")
    handle_zeros = _private("sklearn.preprocessing._data", "_handle_zeros_in_scale")
    constant = is_constant(var, mean, n_samples_seen)
    return handle_zeros(np.sqrt(var), copy=False, constant_mask=constant)
