"""The look of every wsim figure, in one place: IEEE column widths, print-sized serif fonts, and a
colour-blind-safe (Okabe–Ito) palette paired with markers and line styles so series read in grayscale.

Use ``with paper_style(): fig = new_figure(...)`` and ``series_style(i)`` for the i-th series.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.16
GOLDEN = 0.618
PNG_DPI = 300

# Okabe & Ito, "Color Universal Design" (2008); yellow last: it is faint on white paper.
OKABE_ITO: dict[str, str] = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "bluish_green": "#009E73",
    "orange": "#E69F00",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "black": "#000000",
    "yellow": "#F0E442",
}
PALETTE: tuple[str, ...] = tuple(OKABE_ITO.values())
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
HATCHES: tuple[str, ...] = ("", "////", "....", "xxxx", "\\\\\\\\", "++++")

# How method names from scenario files are printed; unknown names are printed as they are.
METHOD_LABELS: dict[str, str] = {
    "stsflora": "ST-SFLora",
    "st-sflora": "ST-SFLora",
    "tsflora": "TSFLora",
    "sflam": "SFLAM",
    "sft": "SFT",
    "splitcom": "SplitCom",
    "none": "No compression",
    "equal_bandwidth": "Equal bandwidth",
    "max_power": "Max power",
    "all_tokens": "All tokens",
    "random_tokens": "Random tokens",
}

RC_PARAMS: dict[str, Any] = {
    "font.family": "serif",
    "font.serif": ["Times New Roman", "Times", "Nimbus Roman", "STIXGeneral", "DejaVu Serif"],
    "mathtext.fontset": "stix",
    "text.usetex": False,
    "font.size": 8,
    "axes.labelsize": 8,
    "axes.titlesize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "legend.handlelength": 2.2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "axes.grid": True,
    "grid.color": "0.88",
    "grid.linewidth": 0.4,
    "axes.axisbelow": True,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.direction": "out",
    "ytick.direction": "out",
    "hatch.linewidth": 0.5,
    "savefig.dpi": PNG_DPI,
    "pdf.fonttype": 42,  # TrueType, embedded: what IEEE PDF eXpress accepts
    "ps.fonttype": 42,
    "figure.dpi": 100,
}


@contextmanager
def paper_style() -> Iterator[None]:
    """Apply the wsim print style for the duration of the block."""
    with plt.rc_context(RC_PARAMS):
        yield


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width_in: float = SINGLE_COLUMN_IN,
    height_in: float | None = None,
    **subplot_kw: Any,
) -> tuple[Figure, Any]:
    """A constrained-layout figure of a given print width.

    The height defaults to the golden ratio of the width and is rounded to 0.01 in.

    Returns:
        The figure and its axes (a single Axes or an array, as ``plt.subplots`` returns).
    """
    height = round(width_in * GOLDEN if height_in is None else height_in, 2)
    return plt.subplots(
        nrows, ncols, figsize=(width_in, height), layout="constrained", squeeze=True, **subplot_kw
    )


def series_style(index: int) -> dict[str, Any]:
    """Colour, marker and line style of the ``index``-th series (distinct in grayscale too)."""
    return {
        "color": PALETTE[index % len(PALETTE)],
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
    }


def display_name(method: str) -> str:
    """The printed name of a method (``"stsflora"`` -> ``"ST-SFLora"``)."""
    return METHOD_LABELS.get(str(method).lower(), str(method))
