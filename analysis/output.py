"""Writing a figure (vector PDF + 300 dpi PNG) together with the table it was drawn from."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from analysis.style import PNG_DPI


def write_table(table: pd.DataFrame, out_dir: Path, stem: str) -> Path:
    """Write ``table`` as ``out_dir/stem.csv`` (full float precision)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.csv"
    table.to_csv(path, index=False)
    return path


def save_figure(fig: Figure, table: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """Save ``fig`` as PDF and PNG and ``table`` as CSV under one stem; close the figure.

    The PNG is exactly ``figsize × 300 dpi`` pixels (constrained layout, no tight bbox), and the PDF
    carries no creation date so that identical inputs give identical files. The layout is solved
    once, for the PDF, and kept for the PNG (solving it costs a draw).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    pdf, png = out_dir / f"{stem}.pdf", out_dir / f"{stem}.png"
    try:
        fig.savefig(pdf, metadata={"CreationDate": None, "Creator": "wsim analysis"})
        fig.set_layout_engine("none")
        fig.savefig(png, dpi=PNG_DPI, metadata={"Software": "wsim analysis"})
    finally:
        plt.close(fig)
    return [pdf, png, write_table(table, out_dir, stem)]
