"""Per-round latency stacked by component, and per-round device energy (mean split into compute
and transmit, and the maximum over devices); one row of panels per run (from ``rounds.csv``).

Up to :data:`MAX_BAR_ROUNDS` rounds each round is a stacked bar; a longer run is drawn as stacked
areas over the rounds (the same values; a hundred hatched bars per panel take seconds to render
and cannot be told apart)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import metrics
from analysis.figures.spec import Options, require_runs
from analysis.load import Inputs
from analysis.output import save_figure
from analysis.style import DOUBLE_COLUMN_IN, HATCHES, OKABE_ITO, new_figure, paper_style

NAME = "latency_energy"
BAR_WIDTH = 0.7
MAX_ROUND_TICKS = 12
MAX_BAR_ROUNDS = 30
LATENCY_LABELS = {
    "client_compute_s": "Client compute",
    "upload_s": "Upload",
    "server_incl_wait_s": "Server (incl. wait)",
    "download_s": "Download",
}
ENERGY_LABELS = {"compute_energy_mean_j": "Compute (mean)", "tx_energy_mean_j": "Transmit (mean)"}
COLOURS = ("blue", "vermillion", "bluish_green", "orange")


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Latency components and energy per round of every run."""
    require_runs(inputs, "rounds.csv")
    return metrics.latency_energy_table([(r.label, r.method, r.rounds) for r in inputs.runs])


def _stack(ax: Axes, run: pd.DataFrame, labels: dict[str, str]) -> None:
    if len(run) > MAX_BAR_ROUNDS:
        _stack_areas(ax, run, labels)
        return
    bottom = pd.Series(0.0, index=run.index)
    for index, (column, text) in enumerate(labels.items()):
        ax.bar(
            run["round"],
            run[column],
            BAR_WIDTH,
            bottom=bottom,
            label=text,
            color=OKABE_ITO[COLOURS[index]],
            hatch=HATCHES[index],
            edgecolor="white",
            linewidth=0.4,
            gid=column,
        )
        bottom = bottom + run[column]


def _stack_areas(ax: Axes, run: pd.DataFrame, labels: dict[str, str]) -> None:
    """The components stacked as areas over the rounds (NaN drawn as 0, as a missing bar)."""
    bottom = np.zeros(len(run))
    for index, (column, text) in enumerate(labels.items()):
        top = bottom + run[column].fillna(0.0).to_numpy()
        ax.fill_between(
            run["round"], bottom, top, label=text, color=OKABE_ITO[COLOURS[index]],
            hatch=HATCHES[index], edgecolor="white", linewidth=0.4, gid=column,
        )  # fmt: skip
        bottom = top


def _round_ticks(ax: Axes, rounds: pd.Series) -> None:
    if rounds.nunique() <= MAX_ROUND_TICKS:
        ax.set_xticks(sorted(rounds.unique()))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)


def draw(data: pd.DataFrame) -> Figure:
    """Rows: runs; left column latency (s), right column energy (J)."""
    labels = list(dict.fromkeys(data["label"]))
    with paper_style():
        fig, axes = new_figure(
            len(labels), 2, width_in=DOUBLE_COLUMN_IN, height_in=0.6 + 1.6 * len(labels)
        )
        axes = axes.reshape(len(labels), 2)
        for row, label in enumerate(labels):
            run = data[data["label"] == label]
            latency_ax, energy_ax = axes[row]
            _stack(latency_ax, run, LATENCY_LABELS)
            _stack(energy_ax, run, ENERGY_LABELS)
            for ax, column, text, marker in (
                (latency_ax, "latency_s", "Round latency", "D"),
                (energy_ax, "energy_max_j", "Max over devices", "o"),
            ):
                ax.plot(run["round"], run[column], color=OKABE_ITO["black"], marker=marker,
                        linestyle="--", label=text, gid=column)  # fmt: skip
            latency_ax.set_ylabel("Latency per round (s)")
            energy_ax.set_ylabel("Device energy per round (J)")
            if len(labels) > 1:
                latency_ax.set_title(label, loc="left")
                energy_ax.set_title(label, loc="left")
            for ax in (latency_ax, energy_ax):
                _round_ticks(ax, run["round"])
                ax.grid(axis="x", visible=False)
        for ax in axes[-1]:
            ax.set_xlabel("Round")
        handles = [h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]]
        handles.sort(key=lambda handle: isinstance(handle, Line2D))  # bars first, then the max
        fig.legend(handles=handles, loc="outside upper center", ncols=4)
    return fig


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``latency_energy.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
