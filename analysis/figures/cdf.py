"""CDFs of per-device round latency and per-device energy over completed device-rounds
(``devices.parquet`` rows with status ``completed``), one line per run; each curve drawn at
most at :data:`analysis.metrics.MAX_CDF_POINTS` order statistics (exact ECDF values)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis import metrics
from analysis.figures.spec import MissingInput, Options
from analysis.load import Inputs
from analysis.output import save_figure
from analysis.style import DOUBLE_COLUMN_IN, new_figure, paper_style, series_style

NAME = "cdf"
XLABELS = {"latency_s": "Device round latency (s)", "energy_j": "Device energy per round (J)"}


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """ECDF points of every run that has a devices table (only its completed rows read)."""
    columns, done = ("status", *XLABELS), {"status": "completed"}
    runs = [
        (r.label, r.method, r.devices.read(columns, where=done))
        for r in inputs.runs
        if r.devices is not None
    ]
    if not runs:
        raise MissingInput("needs a run folder with devices.parquet")
    result = metrics.cdf_table(runs)
    if result.empty:
        raise MissingInput("no device completed a round")
    return result


def draw(data: pd.DataFrame) -> Figure:
    """Left: latency CDF; right: energy CDF (steps at each observed value)."""
    with paper_style():
        fig, axes = new_figure(1, 2, width_in=DOUBLE_COLUMN_IN, height_in=2.2, sharey=True)
        for ax, (metric, xlabel) in zip(axes, XLABELS.items(), strict=True):
            subset = data[data["metric"] == metric]
            for index, (label, run) in enumerate(subset.groupby("label", sort=False)):
                style = series_style(index) | {"marker": None}
                ax.step(run["value"], run["probability"], where="post", label=label, **style)
            ax.set_xlabel(xlabel)
        axes[0].set_ylabel("CDF")
        axes[0].set_ylim(0.0, 1.02)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 5))
    return fig


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``cdf.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
