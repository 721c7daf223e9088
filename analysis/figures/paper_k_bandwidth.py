"""The token count K the ST-SFLora solver chooses vs the total uplink bandwidth W_tot, from a
sweep over ``cell.uplink_bandwidth_hz`` whose runs offer more than one K
(scenarios/sweeps/papers/stsflora_bandwidth.toml; a fixed-K sweep is paper_ste_k's).

The table has, per (method, recipe, W_tot), the mean, min and max ``tokens`` over the completed
device-rounds of the devices table, and the mean completed devices per round (rounds of
``sweep.parquet``'s ``num_completed``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import paper_common as common
from analysis.figures.spec import Options
from analysis.load import Inputs, Sweep
from analysis.output import save_figure
from analysis.style import paper_style

NAME = "paper_k_bandwidth"
PANELS = (
    ("k_mean", "Mean chosen $K$", False),
    ("completed_mean", "Completed devices per round", False),
)
_KEYS = ["label", "bandwidth_mhz"]


def _is_bandwidth_sweep(sweep: Sweep) -> bool:
    rounds = sweep.rounds
    return common.varies(rounds, common.BANDWIDTH_KEY) and not common.one_k_per_run(rounds)


def _one_sweep(sweep: Sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(completed device-rounds, rounds), each with ``label`` and ``bandwidth_mhz``."""
    rounds = common.with_labels(sweep.rounds)
    rounds = rounds.assign(bandwidth_mhz=rounds[common.BANDWIDTH_KEY] / 1e6)
    devices = common.device_rows(sweep, ("tokens",), "for the chosen K")
    devices = devices.merge(rounds[["run_id", "round", *_KEYS]], on=["run_id", "round"])
    return devices, rounds


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Chosen K (mean, min, max over completed device-rounds) and completed devices per round,
    per label and W_tot (MHz), over every bandwidth sweep with a K choice."""
    sweeps = common.find_sweeps(
        inputs, _is_bandwidth_sweep, f"over {common.BANDWIDTH_KEY} with a choice of K"
    )
    parts = [_one_sweep(s) for s in sweeps]
    devices = pd.concat([d for d, _ in parts], ignore_index=True)
    rounds = pd.concat([r for _, r in parts], ignore_index=True)
    chosen = devices.groupby(_KEYS, sort=True).agg(
        k_mean=("tokens", "mean"),
        k_min=("tokens", "min"),
        k_max=("tokens", "max"),
        num_device_rounds=("tokens", "size"),
    )
    completed = rounds.groupby(_KEYS, sort=True).agg(
        completed_mean=("num_completed", "mean"), num_rounds=("round", "size")
    )
    return completed.join(chosen, how="left").reset_index()


def draw(data: pd.DataFrame) -> Figure:
    """Left: mean chosen K vs W_tot; right: completed devices per round vs W_tot (log x)."""
    return common.draw_panels(
        data, "bandwidth_mhz", PANELS, "Uplink bandwidth $W$ (MHz)", logx=True
    )


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``paper_k_bandwidth.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
