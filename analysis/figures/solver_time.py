"""Solver time vs number of devices, log–log: wsim's solver (solid) vs a generic solver (dashed),
one colour per method (median over repeats, from a solver-bench CSV)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis import metrics
from analysis.figures.spec import MissingInput, Options
from analysis.load import Inputs
from analysis.output import save_figure
from analysis.style import SINGLE_COLUMN_IN, new_figure, paper_style, series_style

NAME = "solver_time"


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Median times per method and number of devices."""
    if inputs.solver_bench is None:
        raise MissingInput("needs a solver-bench CSV")
    return metrics.solver_time_table(inputs.solver_bench)


def draw(data: pd.DataFrame) -> Figure:
    """Both solvers' times per method; the generic solver's points where it was run."""
    with paper_style():
        fig, ax = new_figure(width_in=SINGLE_COLUMN_IN, height_in=2.6)
        for index, (label, curve) in enumerate(data.groupby("label", sort=False)):
            style = series_style(index)
            ax.plot(curve["num_devices"], curve["solve_time_s"], label=f"{label} (wsim)",
                    color=style["color"], marker=style["marker"], linestyle="-")  # fmt: skip
            generic = curve.dropna(subset=["generic_time_s"])
            if not generic.empty:
                ax.plot(generic["num_devices"], generic["generic_time_s"],
                        label=f"{label} (generic)", color=style["color"], marker=style["marker"],
                        markerfacecolor="white", linestyle="--")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Number of devices")
        ax.set_ylabel("Solve time (s)")
        fig.legend(loc="outside upper center", ncols=2)
    return fig


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``solver_time.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
