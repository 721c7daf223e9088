"""The compression comparison as a LaTeX booktabs table (``compression_table.tex``) and its CSV,
one row per method and recipe ("ST-SFLora (paper)", "ST-SFLora (wsim)")."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis import metrics
from analysis.figures.spec import MissingInput, Options
from analysis.figures.tradeoff import recipe_label
from analysis.load import Inputs
from analysis.output import write_table

NAME = "compression_table"
# table column -> (LaTeX header, number format)
COLUMNS = {
    "label": ("Method", "{}"),
    "uplink_kbits_per_round": ("Uplink (kbit/round)", "{:,.1f}"),
    "downlink_kbits_per_round": ("Downlink (kbit/round)", "{:,.1f}"),
    "uplink_ratio": ("Uplink ratio", "{:.2f}"),
    "final_accuracy_pct": (r"Accuracy (\%)", "{:.2f}"),
    "accuracy_loss_pp": ("Acc.\\ loss (pp)", "{:.2f}"),
    "server_flops_ratio": ("Server FLOPs ratio", "{:.2f}"),
    "device_memory_mib": ("Device memory (MiB)", "{:,.1f}"),
}
_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                   "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}  # fmt: skip


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """The comparison in print units."""
    if inputs.compression_bench is None:
        raise MissingInput("needs a compression-bench CSV")
    return with_recipe_labels(metrics.compression_table(inputs.compression_bench),
                              inputs.compression_bench)  # fmt: skip


def with_recipe_labels(table: pd.DataFrame, bench: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per bench row) labelled by method and recipe ("ST-SFLora (paper)")
    when the bench CSV has ``method_name``/``recipe`` columns; unchanged otherwise."""
    if not {"method_name", "recipe"} <= set(bench.columns):
        return table
    variants = bench["variant"] if "variant" in bench else [None] * len(bench)
    labels = [
        recipe_label(m, r, v)
        for m, r, v in zip(bench["method_name"], bench["recipe"], variants, strict=True)
    ]
    return table.assign(label=labels)


def escape_latex(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


def _cell(value: object, fmt: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "--"
    return escape_latex(fmt.format(value))


def to_latex(data: pd.DataFrame) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), one row per method."""
    spec = "l" + "r" * (len(COLUMNS) - 1)
    header = " & ".join(text for text, _ in COLUMNS.values())
    lines = [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", header + r" \\", r"\midrule"]
    for _, row in data.iterrows():
        cells = [_cell(row[column], fmt) for column, (_, fmt) in COLUMNS.items()]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``compression_table.tex`` and ``compression_table.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tex = out_dir / f"{NAME}.tex"
    tex.write_text(to_latex(data))
    return [tex, write_table(data, out_dir, NAME)]
