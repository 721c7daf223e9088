"""Uplink and downlink bytes per round by method (log scale), each bar annotated with its
reduction vs the ``none`` method. From run folders, else from a compression-bench CSV; methods
with two recipes are labelled by recipe ("SFT (paper)")."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import metrics
from analysis.figures.compression_table import with_recipe_labels
from analysis.figures.spec import MissingInput, Options, note
from analysis.figures.tradeoff import recipe_label
from analysis.load import Inputs, Run
from analysis.output import save_figure
from analysis.style import (
    HATCHES,
    OKABE_ITO,
    SINGLE_COLUMN_IN,
    display_name,
    new_figure,
    paper_style,
)

NAME = "payload"
BAR_WIDTH = 0.38
MAX_FLAT_LABELS = 4  # more methods than this: ratio labels are turned upright
DIRECTIONS = {
    "bytes_up": ("Uplink", "uplink_reduction"),
    "bytes_down": ("Downlink", "downlink_reduction"),
}
COLOURS = ("blue", "vermillion")


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Mean bytes per round per run (or per bench method) with reductions vs ``none``."""
    if inputs.runs:
        runs = [(_run_label(r), r.method, r.rounds) for r in inputs.runs]
        result = metrics.payload_table(runs)
    elif inputs.compression_bench is not None:
        bench = inputs.compression_bench
        result = with_recipe_labels(metrics.payload_table_from_bench(bench), bench)
    else:
        raise MissingInput("needs run folders or a compression-bench CSV")
    if result["uplink_reduction"].isna().all():
        note(NAME, f"no '{metrics.BASELINE_METHOD}' method among the inputs: no reduction shown")
    return result


def _run_label(run: Run) -> str:
    """The run's label with its method's name replaced by method + recipe (from the run's
    ``scenario.toml``), e.g. "ST-SFLora" → "ST-SFLora (paper)"."""
    path = run.path / "scenario.toml"
    try:
        recipe = tomllib.loads(path.read_text()).get("method", {}).get("recipe")
    except (OSError, tomllib.TOMLDecodeError):
        return run.label
    plain = display_name(run.method)
    return run.label.replace(plain, recipe_label(run.method, recipe), 1)


def _ratio_text(ratio: float) -> str:
    if math.isnan(ratio) or math.isclose(ratio, 1.0):
        return ""
    return f"{ratio:.1f}×" if ratio < 100 else f"{ratio:.0f}×"


def draw(data: pd.DataFrame) -> Figure:
    """Grouped bars per method; the reduction ratio is printed above each bar."""
    x = np.arange(len(data))
    rotation = 0 if len(data) <= MAX_FLAT_LABELS else 90
    has_ratio = data["uplink_reduction"].notna().any()
    with paper_style():
        fig, ax = new_figure(width_in=SINGLE_COLUMN_IN, height_in=2.4)
        for index, (column, (text, ratio_col)) in enumerate(DIRECTIONS.items()):
            offset = (index - 0.5) * BAR_WIDTH
            bars = ax.bar(
                x + offset, data[column], BAR_WIDTH, label=text, color=OKABE_ITO[COLOURS[index]],
                hatch=HATCHES[index], edgecolor="white", linewidth=0.4, gid=column,
            )  # fmt: skip
            labels = [_ratio_text(r) for r in data[ratio_col]]
            ax.bar_label(bars, labels=labels, fontsize=6, padding=1.5, rotation=rotation)
        ax.set_yscale("log")
        ax.set_xticks(x, data["label"], rotation=20, ha="right")
        ax.set_ylabel("Payload per round (bytes)")
        ax.grid(axis="x", visible=False)
        ax.margins(y=0.25)
        title = (
            f"Labels: reduction vs. {display_name(metrics.BASELINE_METHOD)}" if has_ratio else None
        )
        ax.legend(loc="upper right", ncols=2, title=title, title_fontsize=6)
    return fig


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``payload.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
