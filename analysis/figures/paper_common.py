"""Shared pieces of the paper figures (``paper_*``): finding a sweep by its swept columns, its
per-device rows, the method/recipe label of each row, and a two-panel line plot."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.figures.spec import MissingInput
from analysis.figures.tradeoff import RECIPE_KEY, recipe_label
from analysis.load import METHOD_KEY, Inputs, Sweep
from analysis.style import DOUBLE_COLUMN_IN, new_figure, paper_style, series_style

TOKENS_KEY = "method.token_counts"
_PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
BANDWIDTH_KEY = "cell.uplink_bandwidth_hz"


def varies(frame: pd.DataFrame, key: str) -> bool:
    """Whether ``frame`` has a column ``key`` with more than one value (lists compared as tuples)."""
    return key in frame and frame[key].map(_hashable).nunique() > 1


def fixed_k(values: pd.Series) -> pd.Series:
    """The one token count of each row's ``method.token_counts`` (NaN where it is not one)."""
    return values.map(lambda v: float(v[0]) if _is_list(v) and len(v) == 1 else np.nan)


def one_k_per_run(rounds: pd.DataFrame) -> bool:
    """Whether every run of a sweep's rounds offers exactly one token count."""
    return TOKENS_KEY in rounds and bool(fixed_k(rounds[TOKENS_KEY]).notna().all())


def find_sweeps(inputs: Inputs, accept: Callable[[Sweep], bool], what: str) -> list[Sweep]:
    """The sweeps ``accept`` takes; :class:`MissingInput` naming ``what`` when there is none."""
    found = [s for s in inputs.sweeps if accept(s)]
    if not found:
        raise MissingInput(f"needs a sweep folder {what}")
    return found


def device_rows(sweep: Sweep, columns: Sequence[str], what: str) -> pd.DataFrame:
    """The completed device-rounds of ``sweep`` (``run_id``, ``round`` and ``columns``)."""
    needed = ("run_id", "round", "status", *columns)
    if sweep.devices is None or not set(needed) <= set(sweep.devices.columns):
        raise MissingInput(f"needs sweep_devices.parquet with {', '.join(needed)} ({what})")
    rows = sweep.devices.read(list(dict.fromkeys(needed)), where={"status": "completed"})
    return rows.drop(columns="status")


def with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``label`` column: "ST-SFLora (paper)" etc. (:func:`recipe_label`)."""
    recipes = frame[RECIPE_KEY] if RECIPE_KEY in frame else [None] * len(frame)
    labels = [recipe_label(m, r) for m, r in zip(frame[METHOD_KEY], recipes, strict=True)]
    return frame.assign(label=labels)


def draw_panels(
    data: pd.DataFrame, x: str, panels: Sequence[tuple[str, str, bool]], xlabel: str, *, logx: bool
) -> Figure:
    """One panel per ``(column, ylabel, log_y)`` of ``panels``: ``column`` vs ``x``, one line per
    label, double-column width."""
    with paper_style():
        fig, axes = new_figure(1, len(panels), width_in=DOUBLE_COLUMN_IN, height_in=2.2)
        for ax, (column, ylabel, logy) in zip(np.atleast_1d(axes), panels, strict=True):
            for index, (label, curve) in enumerate(data.groupby("label", sort=False)):
                curve = curve.sort_values(x)
                ax.plot(curve[x], curve[column], label=label, **series_style(index))
            ax.set_xscale("log" if logx else "linear")
            ax.set_yscale("log" if logy else "linear")
            for axis in (ax.xaxis, ax.yaxis):  # log axes: ticks 1, 2, 5 × 10^n as plain numbers
                if axis.get_scale() == "log":
                    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                    axis.set_major_formatter(_PLAIN)
                    axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
        handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 5))
    return fig


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def _hashable(value: object) -> object:
    return tuple(np.asarray(value).tolist()) if _is_list(value) else value
