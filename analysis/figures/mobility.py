"""Latency and energy per round vs mobility speed from a ``mobility.speed_mps`` sweep, mean over
seeds with a t-based 95 % confidence band (no band with one seed, said on stderr)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from analysis import metrics
from analysis.figures.spec import MissingInput, Options, note
from analysis.load import Inputs
from analysis.output import save_figure
from analysis.style import DOUBLE_COLUMN_IN, new_figure, paper_style, series_style

NAME = "mobility"
SPEED_KEY = "mobility.speed_mps"
PANELS = {
    "latency": ("latency_mean_s", "latency_ci95_s", "Latency per round (s)"),
    "energy": ("energy_mean_j", "energy_ci95_j", "Energy per round (J)"),
}


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Mean and CI half-width per method and speed, over every sweep that varies the speed."""
    frames = [
        s.rounds
        for s in inputs.sweeps
        if SPEED_KEY in s.rounds and s.rounds[SPEED_KEY].nunique() > 1
    ]
    if not frames:
        raise MissingInput(f"needs a sweep folder over {SPEED_KEY}")
    result = metrics.mobility_table(pd.concat(frames, ignore_index=True), SPEED_KEY)
    if (result["num_seeds"] < 2).any():
        note(NAME, "one seed at some speeds: no confidence band there")
    return result


def draw(data: pd.DataFrame) -> Figure:
    """Left: latency vs speed; right: energy vs speed; shaded mean ± 95 % CI."""
    with paper_style():
        fig, axes = new_figure(1, 2, width_in=DOUBLE_COLUMN_IN, height_in=2.2)
        for ax, (mean_col, ci_col, ylabel) in zip(axes, PANELS.values(), strict=True):
            for index, (label, curve) in enumerate(data.groupby("label", sort=False)):
                curve = curve.sort_values("speed_mps")
                style = series_style(index)
                ax.plot(curve["speed_mps"], curve[mean_col], label=label, **style)
                half = curve[ci_col].fillna(0.0)
                if curve[ci_col].notna().any():
                    ax.fill_between(
                        curve["speed_mps"], curve[mean_col] - half, curve[mean_col] + half,
                        color=style["color"], alpha=0.18, linewidth=0, gid=f"ci:{label}",
                    )  # fmt: skip
            ax.set_xlabel("Device speed (m/s)")
            ax.set_ylabel(ylabel)
        handles = axes[0].get_legend_handles_labels()[0]
        if data["latency_ci95_s"].notna().any():
            seeds = int(data["num_seeds"].max())
            handles.append(Patch(color="0.5", alpha=0.3, label=f"95 % CI ({seeds} seeds)"))
        fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 5))
    return fig


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``mobility.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
