"""Round latency and energy per device vs the number of devices N, one line per method and
recipe (:func:`~analysis.figures.tradeoff.recipe_label`), from a sweep over
``devices.num_devices`` (scenarios/sweeps/papers/scaling.toml).

The table is the mean over rounds and seeds of ``latency_s`` and of ``energy_mean_j`` (the mean
energy of a scheduled device in the round) per (method, recipe, N)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.figures.paper_common import draw_panels, find_sweeps, varies, with_labels
from analysis.figures.spec import Options
from analysis.load import Inputs
from analysis.output import save_figure
from analysis.style import paper_style

NAME = "paper_scaling"
DEVICES_KEY = "devices.num_devices"
PANELS = (
    ("latency_s", "Latency per round (s)", True),
    ("energy_per_device_j", "Energy per device per round (J)", True),
)


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Mean round latency and energy per scheduled device per label and N."""
    sweeps = find_sweeps(inputs, lambda s: varies(s.rounds, DEVICES_KEY), f"over {DEVICES_KEY}")
    rounds = with_labels(pd.concat([s.rounds for s in sweeps], ignore_index=True))
    result = rounds.groupby(["label", DEVICES_KEY], sort=True).agg(
        latency_s=("latency_s", "mean"),
        energy_per_device_j=("energy_mean_j", "mean"),
        num_rounds=("latency_s", "size"),
        num_seeds=("seed", "nunique"),
    )
    return result.reset_index().rename(columns={DEVICES_KEY: "num_devices"})


def draw(data: pd.DataFrame) -> Figure:
    """Left: latency per round vs N; right: energy per device vs N (log–log)."""
    return draw_panels(data, "num_devices", PANELS, "Number of devices $N$", logx=True)


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``paper_scaling.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
