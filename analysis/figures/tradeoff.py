"""The latency–energy trade-off traced by the optimizer's price, one curve per method, from a sweep
over ``optimizer.energy_price_per_j`` (or ``optimizer.latency_energy_weight``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis import metrics
from analysis.figures.spec import MissingInput, Options
from analysis.load import Inputs
from analysis.output import save_figure
from analysis.style import SINGLE_COLUMN_IN, new_figure, paper_style, series_style

NAME = "tradeoff"
PRICE_KEYS = ("optimizer.energy_price_per_j", "optimizer.latency_energy_weight")
PRICE_SYMBOLS = {
    "optimizer.energy_price_per_j": r"$\mu_E$",
    "optimizer.latency_energy_weight": "$w$",
}


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Mean latency and energy per round at each price, per method, over all sweeps that vary it."""
    for key in PRICE_KEYS:
        frames = [
            s.rounds for s in inputs.sweeps if key in s.rounds and s.rounds[key].nunique() > 1
        ]
        if frames:
            return metrics.tradeoff_table(pd.concat(frames, ignore_index=True), key)
    raise MissingInput(f"needs a sweep folder over {' or '.join(PRICE_KEYS)}")


def draw(data: pd.DataFrame) -> Figure:
    """Energy vs latency, points ordered by price; the extreme prices are annotated."""
    symbol = PRICE_SYMBOLS.get(data["price_key"].iloc[0], "price")
    with paper_style():
        fig, ax = new_figure(width_in=SINGLE_COLUMN_IN)
        for index, (label, curve) in enumerate(data.groupby("label", sort=False)):
            curve = curve.sort_values("price")
            ax.plot(curve["latency_s"], curve["energy_j"], label=label, **series_style(index))
            for _, point in curve.iloc[[0, -1]].iterrows():
                ax.annotate(
                    f"{symbol}={point['price']:g}", (point["latency_s"], point["energy_j"]),
                    textcoords="offset points", xytext=(4, 3), fontsize=6, color="0.3",
                )  # fmt: skip
        ax.set_xlabel("Latency per round (s)")
        ax.set_ylabel("Energy per round (J)")
        ax.legend(loc="best")
    return fig


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``tradeoff.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
