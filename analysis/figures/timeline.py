"""A per-round Gantt chart of the events of a few devices (at most six) of one run: compute,
upload (shaded by its mean rate), server wait, server, download and adapter exchange."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from analysis import metrics
from analysis.figures.spec import MissingInput, Options, note
from analysis.load import Inputs
from analysis.output import save_figure
from analysis.style import DOUBLE_COLUMN_IN, OKABE_ITO, new_figure, paper_style

NAME = "timeline"
MAX_DEVICES = 6
BAR_HEIGHT = 0.62
RATE_CMAP = "Oranges"
KIND_STYLE = {  # kind -> (legend text, face colour, hatch); upload's colour comes from its rate
    "client_fwd": ("Client forward", OKABE_ITO["blue"], ""),
    "upload": ("Upload", None, ""),
    "server_wait": ("Server wait", "0.85", "////"),
    "server": ("Server", OKABE_ITO["bluish_green"], ""),
    "download": ("Download", OKABE_ITO["reddish_purple"], ""),
    "client_bwd": ("Client backward", OKABE_ITO["sky_blue"], ""),
    "adapter_up": ("Adapter up", "0.3", ""),
    "adapter_down": ("Adapter down", "0.55", "...."),
}


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """The chosen round's events for the first six devices of the first run with events (only
    that round's rows of ``events.parquet`` are read)."""
    runs = [r for r in inputs.runs if r.events is not None]
    if not runs:
        raise MissingInput("needs a run folder with events.parquet")
    if len(runs) > 1:
        note(NAME, f"drawn for the first run with events ({runs[0].label}) of {len(runs)}")
    span = runs[0].events.value_range("round")
    if span is None:
        raise MissingInput("the run has no events")
    chosen = int(span[0]) if options.round_index is None else options.round_index
    events = runs[0].events.read(metrics.TIMELINE_COLUMNS, where={"round": chosen})
    if events.empty:
        raise MissingInput(f"round {chosen} has no events (rounds {span[0]}..{span[1]})")
    try:
        result = metrics.timeline_table(events, chosen, MAX_DEVICES)
    except KeyError as error:
        raise MissingInput(error.args[0]) from error
    if result.empty:
        raise MissingInput("no device event in the chosen round")
    result.insert(0, "label", runs[0].label)
    return result


def draw(data: pd.DataFrame) -> Figure:
    """One row per device, time since the round's first event on x."""
    devices = sorted(data["device"].unique())
    row = {device: index for index, device in enumerate(devices)}
    uploads = data.loc[data["kind"] == "upload", "rate_bps"] / 1e6
    norm = (
        mpl.colors.Normalize(uploads.min() * 0.7, max(uploads.max(), 1e-12))
        if len(uploads)
        else None
    )
    # the pale end of the map is dropped so that slow uploads still read against white
    cmap = ListedColormap(mpl.colormaps[RATE_CMAP](np.linspace(0.3, 1.0, 256)))
    with paper_style():
        fig, ax = new_figure(width_in=DOUBLE_COLUMN_IN, height_in=0.9 + 0.32 * len(devices))
        handles = []
        for kind, (text, colour, hatch) in KIND_STYLE.items():
            events = data[data["kind"] == kind]
            if events.empty:
                continue
            face = [cmap(norm(r / 1e6)) for r in events["rate_bps"]] if kind == "upload" else colour
            ax.barh(
                events["device"].map(row), events["end_rel_s"] - events["start_rel_s"], BAR_HEIGHT,
                left=events["start_rel_s"], color=face, hatch=hatch, edgecolor="white",
                linewidth=0.3, gid=kind,
            )  # fmt: skip
            legend_face = cmap(0.7) if kind == "upload" else colour
            handles.append(Patch(facecolor=legend_face, hatch=hatch, edgecolor="white", label=text))
        ax.set_yticks(range(len(devices)), [f"Device {d}" for d in devices])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(f"Time since the start of round {int(data['round'].iloc[0])} (s)")
        fig.legend(handles=handles, loc="outside upper center", ncols=4)
        if norm is not None:
            bar = fig.colorbar(mpl.cm.ScalarMappable(norm, cmap), ax=ax, pad=0.01, aspect=15)
            bar.set_label("Upload rate (Mbit/s)")
            bar.outline.set_linewidth(0.4)
    return fig


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``timeline.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
