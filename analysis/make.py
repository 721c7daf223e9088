"""Make every figure whose inputs were given: ``make_figures(paths, out_dir)``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from analysis.figures import FIGURES, MissingInput, Options
from analysis.load import load_inputs


def make_figures(
    paths: Iterable[str | Path],
    out_dir: str | Path,
    round: int | None = None,  # shadows the builtin: the name users pass, as in --round
    *,
    only: Sequence[str] | None = None,
) -> list[Path]:
    """Write each figure (PDF, PNG, CSV) or table (TeX, CSV) that the inputs allow.

    A figure whose inputs are missing is skipped with a one-line reason on stderr.

    Args:
        paths: run folders, sweep folders, folders of those, and bench CSVs.
        out_dir: where the files go (created if needed).
        round: the round drawn by the timeline (default the first).
        only: names of the figures to make (default all, see ``FIGURES``).

    Returns:
        The files written, in figure order.

    Raises:
        FileNotFoundError: a path does not exist.
        analysis.load.LoadError: an input is malformed.
        ValueError: ``only`` names an unknown figure.
    """
    unknown = sorted(set(only or ()) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    inputs = load_inputs(paths)
    options = Options(round_index=round)
    written: list[Path] = []
    for name, module in FIGURES.items():
        if only and name not in only:
            continue
        try:
            table = module.table(inputs, options)
        except MissingInput as reason:
            print(f"{name}: skipped ({reason})", file=sys.stderr)
            continue
        written += module.write(table, Path(out_dir))
    return written
