"""The comparisons' figures: the posterior of each job's difference from the reference
(--against) and the critical-difference diagram over data sets (--across-data)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.plots.draw import new_figure

if TYPE_CHECKING:
    from pipeline.compare.ranks import AcrossData

# Rows drawn in the posterior figure (the best ones), so that their curves stay readable.
FIGURE_ROWS = 8





def posterior_figure(table: pd.DataFrame, meta: dict) -> Any:
    """The posterior of the mean difference (row - reference) of each paired job, with the
    rope, and a bar of P(worse)/P(equivalent)/P(better) per job."""
    posteriors = dict(list(meta["posteriors"].items())[:FIGURE_ROWS])
    figure = new_figure(9.0, 3.2 + 0.25 * len(posteriors))
    density, bars = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    rope, metric = meta["rope"], meta["metric"]
    ends = [p.interval(0.998) for p in posteriors.values()] or [(-1.0, 1.0)]
    low = min(min(e[0] for e in ends), -1.5 * rope)
    high = max(max(e[1] for e in ends), 1.5 * rope)
    x = np.linspace(low, high, 400)
    if rope:
        density.axvspan(-rope, rope, color="0.85", label=f"rope ±{rope:g}")
    density.axvline(0, color="0.4", linewidth=0.8)
    labels = []
    for i, posterior in posteriors.items():
        label = f"{i + 1}. {table.loc[i, 'model']}"
        labels.append(label)
        if posterior.scale:
            density.plot(x, posterior.pdf(x), label=label)
        else:
            density.axvline(posterior.mean, linestyle="--", label=f"{label} (constant)")
    ref = meta["reference"]
    density.set_xlabel(f"test_{metric}: row - {table.loc[ref, 'model']} "
                       f"({'lower' if meta['lower'] else 'higher'} is better)")
    density.set_yticks([])
    density.set_title("posterior of the mean difference", fontsize=9)
    density.legend(fontsize=7, loc="upper right")
    rows = list(posteriors)
    worse = np.array([table.loc[i, "p_worse"] for i in rows])
    equiv = np.array([table.loc[i, "p_equiv"] for i in rows])
    better = np.array([table.loc[i, "p_better"] for i in rows])
    where = np.arange(len(rows))[::-1]
    bars.barh(where, worse, color="#c44e52", label="P(worse)")
    bars.barh(where, equiv, left=worse, color="0.7", label="P(equivalent)")
    bars.barh(where, better, left=worse + equiv, color="#55a868", label="P(better)")
    bars.set_yticks(where, labels, fontsize=7)
    bars.set_xlim(0, 1)
    bars.set_title("vs the reference", fontsize=9)
    bars.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1, 1.08), ncol=3,
                frameon=False)
    figure.tight_layout()
    return figure


def critical_difference_figure(result: AcrossData) -> Any:
    """The critical-difference diagram: average ranks on an axis (1, the best, on the left),
    a bar as long as the CD, and models that Nemenyi's test does not tell apart joined."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # headless, also for the pyplot that scikit_posthocs imports
    import scikit_posthocs
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = len(result.scores.columns)
    fig = Figure(figsize=(7, 1.2 + 0.35 * models), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    scikit_posthocs.critical_difference_diagram(
        result.average_ranks, result.nemenyi, alpha=result.alpha, ax=ax,
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}")
    statistic, p = result.friedman
    cd = result.critical_difference
    # Demšar's CD bar, above the rank axis's tick labels (scikit-posthocs draws it on them).
    start = 1.0
    ax.plot([start, start + cd], [1.6, 1.6], color="k", linewidth=2)
    ax.plot([start, start], [1.45, 1.75], color="k", linewidth=1)
    ax.plot([start + cd, start + cd], [1.45, 1.75], color="k", linewidth=1)
    ax.text(start + cd / 2, 1.85, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    ax.set_xlim(min(0.9, ax.get_xlim()[0]), max(len(result.scores.columns) + 0.1,
                                               ax.get_xlim()[1], start + cd + 0.1))
    ax.set_title(f"{result.metric.removeprefix('test_')} over {len(result.scores)} data sets: "
                 f"Friedman χ²={statistic:.2f}, p={p:.3g}; Nemenyi CD={cd:.2f} "
                 f"(α={result.alpha})", fontsize=9, pad=28)
    fig.tight_layout()
    return fig
