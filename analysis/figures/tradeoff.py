"""The latency–energy trade-off traced by the optimizer's price, one curve per method and recipe,
from a sweep over ``optimizer.energy_price_per_j`` (or ``optimizer.latency_energy_weight``).

A method with a ``paper`` and a ``wsim`` recipe (``method.recipe``, PAPERS.md) is one curve per
recipe, labelled e.g. "ST-SFLora (paper)" (:func:`recipe_label`); the other figures use the same
labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis import metrics
from analysis.figures.spec import MissingInput, Options
from analysis.load import METHOD_KEY, Inputs
from analysis.output import save_figure
from analysis.style import (
    SINGLE_COLUMN_IN,
    display_name,
    new_figure,
    paper_style,
    series_style,
)

NAME = "tradeoff"
RECIPE_KEY = "method.recipe"
PAPER_RECIPE_METHODS = ("stsflora", "sft", "splitcom")
"""The methods with a ``paper`` and a ``wsim`` recipe (``wsim.config.PAPER_RECIPES``; tested equal)."""
VARIANT_LABELS = {"cls": "[CLS] score"}
_SEP = "\x1f"  # joins method and recipe into one grouping key
PRICE_KEYS = ("optimizer.energy_price_per_j", "optimizer.latency_energy_weight")
PRICE_SYMBOLS = {
    "optimizer.energy_price_per_j": r"$\mu_E$",
    "optimizer.latency_energy_weight": "$w$",
}


def recipe_label(method: str, recipe: object = None, variant: object = None) -> str:
    """The printed name of a method and its recipe: "ST-SFLora (paper)", "SFT (wsim)"; a method
    without two recipes (or a missing recipe) is its plain name ("SFLAM"); a variant (e.g.
    ``"cls"``) is added: "ST-SFLora (wsim, [CLS] score)"."""
    parts = []
    if isinstance(recipe, str) and recipe and str(method).lower() in PAPER_RECIPE_METHODS:
        parts.append(recipe)
    if isinstance(variant, str) and variant:
        parts.append(VARIANT_LABELS.get(variant, variant))
    name = display_name(method)
    return f"{name} ({', '.join(parts)})" if parts else name


def _tradeoff_by_recipe(sweep: pd.DataFrame, price_key: str) -> pd.DataFrame:
    """``metrics.tradeoff_table`` with one group per (method, recipe) when the sweep has a
    ``method.recipe`` column (else per method); adds ``recipe`` and relabels."""
    if RECIPE_KEY not in sweep:
        return metrics.tradeoff_table(sweep, price_key)
    recipe = sweep[RECIPE_KEY].fillna("").astype(str)
    keyed = sweep.assign(**{METHOD_KEY: sweep[METHOD_KEY].astype(str) + _SEP + recipe})
    table = metrics.tradeoff_table(keyed, price_key)
    split = table["method"].str.split(_SEP, n=1, expand=True)
    table["method"], recipes = split[0], split[1].replace("", None)
    table.insert(1, "recipe", recipes)
    table["label"] = [recipe_label(m, r) for m, r in zip(table["method"], recipes, strict=True)]
    return table


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Mean latency and energy per round at each price, per method (and recipe), over all sweeps
    that vary it."""
    for key in PRICE_KEYS:
        frames = [
            s.rounds for s in inputs.sweeps if key in s.rounds and s.rounds[key].nunique() > 1
        ]
        if frames:
            return _tradeoff_by_recipe(pd.concat(frames, ignore_index=True), key)
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
