"""ST-SFLora's semantic transmission efficiency vs a fixed token count K (the paper's interior
peak; arXiv 2605.26120, PAPERS.md [T][S]), from a sweep whose every run offers ONE K
(``method.token_counts = [K]``, scenarios/sweeps/papers/stsflora_k.toml).

Per round, STE = Σ_{completed m} ρ_m / max_{completed m} T^up_m (1/s): ρ_m = ``ste · tx_energy_j``
(the devices table's retention per joule on the air times that energy), T^up_m its ``upload_s``;
a round that completes nobody has STE 0. The table is the mean (and standard deviation) over the
rounds and seeds of each (method, recipe, W_tot, K), with the mean number of completed devices;
the figure draws it relative to the line's best K (W_tot changes STE by orders of magnitude)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import paper_common as common
from analysis.figures.spec import Options
from analysis.load import Inputs, Sweep
from analysis.output import save_figure
from analysis.style import paper_style

NAME = "paper_ste_k"
PANELS = (
    ("ste_relative", "STE / its best over $K$", False),
    ("completed_mean", "Completed devices per round", False),
)


def _is_fixed_k_sweep(sweep: Sweep) -> bool:
    return common.varies(sweep.rounds, common.TOKENS_KEY) and common.one_k_per_run(sweep.rounds)


def per_round(sweep: Sweep) -> pd.DataFrame:
    """One row per run and round: ``k``, ``bandwidth_hz`` (NaN when not a column), ``label``,
    ``retention`` (Σρ), ``upload_max_s``, ``num_completed_devices`` and ``ste_per_s``."""
    rounds = common.with_labels(sweep.rounds)
    rounds = rounds.assign(
        k=common.fixed_k(rounds[common.TOKENS_KEY]),
        bandwidth_hz=rounds[common.BANDWIDTH_KEY] if common.BANDWIDTH_KEY in rounds else np.nan,
    )[["run_id", "seed", "round", "label", "k", "bandwidth_hz"]]
    devices = common.device_rows(
        sweep, ("ste", "tx_energy_j", "upload_s"), "for the retention and T^up"
    )
    devices = devices.assign(retention=devices["ste"] * devices["tx_energy_j"])
    sums = devices.groupby(["run_id", "round"], as_index=False).agg(
        retention=("retention", "sum"),
        upload_max_s=("upload_s", "max"),
        num_completed_devices=("retention", "size"),
    )
    out = rounds.merge(sums, on=["run_id", "round"], how="left")
    out["num_completed_devices"] = out["num_completed_devices"].fillna(0).astype(int)
    out["retention"] = out["retention"].fillna(0.0)
    done = out["num_completed_devices"] > 0
    out["ste_per_s"] = np.where(done, out["retention"] / out["upload_max_s"].where(done, 1.0), 0.0)
    return out


def table(inputs: Inputs, options: Options) -> pd.DataFrame:
    """Mean STE and completed devices per (label, W_tot, K) over every fixed-K sweep."""
    sweeps = common.find_sweeps(
        inputs, _is_fixed_k_sweep, f"over single-valued {common.TOKENS_KEY} ([K])"
    )
    rounds = pd.concat([per_round(s) for s in sweeps], ignore_index=True)
    keys = ["label", "bandwidth_hz", "k"]
    result = rounds.groupby(keys, sort=True, dropna=False).agg(
        ste_mean_per_s=("ste_per_s", "mean"),
        ste_std_per_s=("ste_per_s", "std"),
        completed_mean=("num_completed_devices", "mean"),
        num_rounds=("ste_per_s", "size"),
        num_seeds=("seed", "nunique"),
    )
    result = result.reset_index()
    if result["bandwidth_hz"].nunique() > 1:  # one line per method and W_tot
        mhz = result["bandwidth_hz"] / 1e6
        result["label"] = [f"{lab}, {w:g} MHz" for lab, w in zip(result["label"], mhz, strict=True)]
    result["k"] = result["k"].astype(int)
    best = result.groupby("label")["ste_mean_per_s"].transform("max")
    result["ste_relative"] = result["ste_mean_per_s"] / best
    return result


def draw(data: pd.DataFrame) -> Figure:
    """Left: STE / its maximum over K vs K; right: completed devices per round vs K."""
    return common.draw_panels(data, "k", PANELS, "Kept tokens $K$", logx=False)


def write(data: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``paper_ste_k.pdf/.png/.csv``."""
    with paper_style():
        return save_figure(draw(data), data, out_dir, NAME)
