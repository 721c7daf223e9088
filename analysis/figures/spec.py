"""What every figure module provides, and the shared pieces of that protocol.

A figure module has a ``NAME`` (the output stem), ``table(inputs, options) -> DataFrame`` (raising
:class:`MissingInput` when its inputs are absent), and ``write(table, out_dir) -> list[Path]``.
Figures also expose ``draw(table) -> Figure``: the plot is drawn from the table only, so the CSV
written next to a figure is exactly the data it shows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from analysis.load import Inputs


class MissingInput(LookupError):
    """The inputs a figure needs were not given; the message says which."""


@dataclass(frozen=True)
class Options:
    """User choices that shape some figures."""

    round_index: int | None = None  # timeline: the round to draw (default the first)


class FigureModule(Protocol):
    """The interface of a module under ``analysis/figures/``."""

    NAME: str

    def table(self, inputs: Inputs, options: Options) -> pd.DataFrame: ...

    def write(self, table: pd.DataFrame, out_dir: Path) -> list[Path]: ...


def note(name: str, message: str) -> None:
    """A one-line remark about a figure on stderr (e.g. why a band is missing)."""
    print(f"{name}: {message}", file=sys.stderr)


def require_runs(inputs: Inputs, what: str) -> None:
    """Raise :class:`MissingInput` unless at least one run folder was given."""
    if not inputs.runs:
        raise MissingInput(f"needs a run folder ({what})")
