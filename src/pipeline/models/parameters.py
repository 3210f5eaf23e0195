"""The torch estimators' argument constraints (:data:`TORCH_PARAMETER_CONSTRAINTS`, shared by
every class of the family) and their check, whose refusal is one line naming the config key."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.compat.sklearn import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from pipeline.errors import PipelineError
from pipeline.spec import is_int

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad", "lbfgs")


class Choice(StrOptions):
    """scikit-learn's ``StrOptions`` that remembers the order its options are listed in."""

    def __init__(self, options: Sequence[str]) -> None:
        super().__init__(set(options))
        self.ordered = tuple(options)


class LayerSizes(Options):
    """A positive integer, or a non-empty list of them: the widths of the hidden layers.

    An ``Options`` only in that scikit-learn's validation accepts that family of constraints.
    """

    def __init__(self) -> None:
        super().__init__(object, set())

    def is_satisfied_by(self, val: Any) -> bool:
        sizes = (val,) if is_int(val) else val
        return (
            isinstance(sizes, Sequence)
            and not isinstance(sizes, str)
            and len(sizes) > 0
            and all(is_int(size) and size > 0 for size in sizes)
        )

    def __str__(self) -> str:
        return "a non-empty list of positive integers (e.g. [64, 32])"


POSITIVE = Interval(numbers.Real, 0, None, closed="neither")
NON_NEGATIVE = Interval(numbers.Real, 0, None, closed="left")
COUNT = Interval(numbers.Integral, 1, None, closed="left")
FRACTION = Interval(numbers.Real, 0, 1, closed="left")

# The arguments every torch estimator takes (TorchEstimator's), as scikit-learn declares them in
# `_parameter_constraints`; a class with arguments of its own adds them to a copy of this.
TORCH_PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "optimizer": [Choice(OPTIMIZERS)],
    "lr": [None, POSITIVE],
    "momentum": [NON_NEGATIVE],
    "weight_decay": [NON_NEGATIVE],
    "batch_size": [None, COUNT],
    "max_epochs": [None, COUNT],
    "early_stopping": ["boolean"],
    "patience": [COUNT],
    "tol": [NON_NEGATIVE],
    "validation_fraction": [FRACTION],
    "random_state": ["random_state"],
    "trainer": [None, Mapping],
}


def check(key: str, value: Any, constraints: list[Any]) -> None:
    """scikit-learn's check of ``value`` against ``constraints``; a refusal is one line that
    names ``key``, the accepted values and the value given."""
    try:
        validate_parameter_constraints({key: constraints}, {key: value}, caller_name=key)
    except InvalidParameterError:
        choices = [c for c in constraints if isinstance(c, Choice)]
        if choices:
            message = f"{key}={value!r} is not one of {', '.join(choices[0].ordered)}"
        else:
            accepted = " or ".join(_describe(constraint) for constraint in constraints)
            message = f"{key} must be {accepted}, got {value}"
        raise PipelineError(message) from None


def _describe(constraint: Any) -> str:
    if constraint is None:
        return "null"
    if constraint == "boolean":
        return "true or false"
    if constraint == "random_state":
        return "an integer seed"
    if isinstance(constraint, type):
        return f"a {constraint.__name__.lower()}"
    if not isinstance(constraint, Interval):
        return str(constraint)
    left, right, closed = constraint.left, constraint.right, constraint.closed
    if constraint.type is numbers.Integral and left == 1 and right is None:
        return "a positive integer"
    if right is None:
        return f"{'>=' if closed in ('left', 'both') else '>'} {left:g}"
    opening = "[" if closed in ("left", "both") else "("
    closing = "]" if closed in ("right", "both") else ")"
    return f"in {opening}{left:g}, {right:g}{closing}"
