"""`hydra.sweeper.params` in the Hydra Optuna sweeper's syntax, parsed into Optuna's current
distributions: `choice(a, b)` or `a,b` a categorical, `range(1, 9, 2)` its values as an
integer (or stepped float) distribution, `interval(0.1, 0.5)` a float one (integers on both
ends, or `int(...)`, an integer one), `tag(log, interval(...))` on a log scale
(`shuffle(...)`, an order, means nothing to a sampler). Any other value is fixed: every trial
sets it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)

if TYPE_CHECKING:  # Optuna takes most of a second to import: not at Hydra's plugin scan
    from optuna.distributions import BaseDistribution


def search_space(overrides: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """The distributions by key of the `key=sweep` overrides, and the fixed `key=value` ones.
    Raises Hydra's OverrideParseException on bad syntax, ValueError on a sweep Optuna cannot
    sample (a glob, an empty range)."""
    space, fixed = {}, {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.get_value_element_as_str()
    return space, fixed


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    if isinstance(value, ChoiceSweep):
        # Encoded as Hydra writes them back (`[64,32]`): Optuna's choices are plain scalars.
        # In the order written, `shuffle` or not: workers sharing a study must agree on it.
        return CategoricalDistribution([Transformer.encode(choice) for choice in value.list])
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise ValueError(f"{override.input_line}: the range holds no value")
        low, high, step = min(values), max(values), abs(value.step)
        if all(isinstance(v, int) for v in [*values, step]):
            return IntDistribution(low, high, step=step)
        return FloatDistribution(low, high, step=step)
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(value.start, value.end, log=log)
    raise ValueError(f"{override.input_line}: Optuna samples choice, range and interval "
                     f"sweeps, not {type(value).__name__.lower()}")


def grid(distribution: BaseDistribution) -> list[Any]:
    """Every value the grid sampler visits: a categorical's choices, a stepped range's points."""
    if hasattr(distribution, "choices"):
        return list(distribution.choices)
    step = getattr(distribution, "step", None)
    if step is None or getattr(distribution, "log", False):
        raise ValueError("the grid sampler needs discrete params: choice(...) or range(...), "
                         "not interval(...)")
    count = round((distribution.high - distribution.low) / step) + 1
    return [distribution.low + i * step for i in range(count)]
