"""Test accuracy vs simulated time and vs round, one line per run (from ``rounds.csv``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis import metrics
from analysis.figures.spec import MissingInput, Options, require_runs
from analysis.load import Inputs
from analysis.output import save_figure
from analysis.style import DOUBLE_COLUMN_IN, new_figure, paper_style, series_style

NAME = "accuracy"
MAX_MARKERS = 12  # per line; long runs get a marker every few rounds


def accuracy_note(run_path: Path) -> str:
    """Why a run reports no accuracy (``meta.json``'s ``accuracy_note``; "" if none)."""
    meta = Path(run_path) / "meta.json"
    if not meta.is_file():
        return ""
    return str(json.loads(meta.read_text(encoding="utf-8")).get("accuracy_note", ""))


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Accuracy per evaluated round of every run (runs without measured accuracy left out)."""
    require_runs(inputs, "rounds.csv")
    result = metrics.accuracy_table([(r.label, r.method, r.rounds) for r in inputs.runs])
    if result.empty:
        notes = [note for r in inputs.runs if (note := accuracy_note(r.path))]
        if notes:
            raise MissingInput(f"no accuracy was measured: {notes[0]}")
        raise MissingInput("no round was evaluated (accuracy is NaN everywhere)")
    return result


def draw(data: pd.DataFrame) -> Figure:
    """Left: accuracy vs simulated time; right: accuracy vs round."""
    with paper_style():
        fig, (by_time, by_round) = new_figure(1, 2, width_in=DOUBLE_COLUMN_IN, height_in=2.3)
        for index, (label, run) in enumerate(data.groupby("label", sort=False)):
            style = series_style(index) | {"markevery": max(1, len(run) // MAX_MARKERS)}
            by_time.plot(run["t_end_s"], run["accuracy_pct"], label=label, **style)
            by_round.plot(run["round"], run["accuracy_pct"], label=label, **style)
        by_time.set_xlabel("Simulated time (s)")
        by_round.set_xlabel("Round")
        by_round.xaxis.get_major_locator().set_params(integer=True)
        for ax in (by_time, by_round):
            ax.set_ylabel("Test accuracy (%)")
        handles, labels = by_time.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 5))
    return fig


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``accuracy.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
