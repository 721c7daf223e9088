"""One module per figure (or table); ``FIGURES`` lists them in the order they are made."""

from __future__ import annotations

from analysis.figures import (
    accuracy,
    cdf,
    compression_table,
    latency_energy,
    mobility,
    paper_k_bandwidth,
    paper_scaling,
    paper_ste_k,
    payload,
    solver_time,
    timeline,
    tradeoff,
)
from analysis.figures.spec import FigureModule, MissingInput, Options

FIGURES: dict[str, FigureModule] = {
    module.NAME: module
    for module in (
        accuracy,
        latency_energy,
        tradeoff,
        cdf,
        payload,
        mobility,
        timeline,
        solver_time,
        compression_table,
        paper_ste_k,
        paper_k_bandwidth,
        paper_scaling,
    )
}

__all__ = ["FIGURES", "FigureModule", "MissingInput", "Options"]
