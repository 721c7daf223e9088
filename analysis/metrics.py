"""The reductions behind the figures: pure pandas functions, one per figure's table.

Each takes result tables (``rounds.csv``, ``devices.parquet``, ``events.parquet``, ``sweep.parquet``
rows or a bench CSV, see docs/CONTRACTS.md) and returns the tidy table that the figure plots and
that is written next to it as CSV. Runs are passed as ``(label, method, frame)`` triples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.stats import ci95_half_width
from analysis.style import display_name

Labelled = Sequence[tuple[str, str, pd.DataFrame]]

METHOD_KEY = "method.name"
BASELINE_METHOD = "none"
LATENCY_PARTS = ("client_compute_s", "upload_s", "server_incl_wait_s", "download_s")
TIMELINE_COLUMNS = ("round", "device", "kind", "t_start_s", "t_end_s", "bytes", "rate_bps")
"""The events columns the timeline reads."""
MAX_CDF_POINTS = 2000
"""Points per CDF curve at most (see :func:`cdf_table`)."""
TIMELINE_KINDS = (
    "client_fwd", "upload", "server_wait", "server", "download", "client_bwd", "adapter_up",
    "adapter_down",
)  # fmt: skip


def accuracy_table(runs: Labelled) -> pd.DataFrame:
    """Test accuracy (%) per evaluated round, with the simulated time at the round's end."""
    parts = [
        pd.DataFrame(
            {
                "label": label,
                "method": method,
                "round": rounds["round"],
                "t_end_s": rounds["t_end_s"],
                "accuracy_pct": 100.0 * rounds["accuracy"],
            }
        ).dropna(subset=["accuracy_pct"])
        for label, method, rounds in runs
    ]
    return _concat(parts, ["label", "method", "round", "t_end_s", "accuracy_pct"])


def latency_energy_table(runs: Labelled) -> pd.DataFrame:
    """Per-round latency components (means over completed devices) and per-device energy.

    ``server_incl_wait_s`` adds the queueing at the edge server to its compute. The per-device mean
    energy is split into compute and transmit in the ratio of the round's sums
    (``compute_energy_j / energy_j``), which is exact when the mean is over the same devices.
    """
    parts = []
    for label, method, rounds in runs:
        total = rounds["energy_j"].where(rounds["energy_j"] > 0)
        compute_share = (rounds["compute_energy_j"] / total).fillna(0.0)
        tx_share = (rounds["tx_energy_j"] / total).fillna(0.0)
        part = pd.DataFrame(
            {
                "label": label,
                "method": method,
                "round": rounds["round"],
                "client_compute_s": rounds["client_compute_s"],
                "upload_s": rounds["upload_s"],
                "server_incl_wait_s": rounds["server_s"] + rounds["server_wait_s"],
                "download_s": rounds["download_s"],
                "latency_s": rounds["latency_s"],
                "energy_mean_j": rounds["energy_mean_j"],
                "energy_max_j": rounds["energy_max_j"],
                "compute_energy_mean_j": rounds["energy_mean_j"] * compute_share,
                "tx_energy_mean_j": rounds["energy_mean_j"] * tx_share,
            }
        )
        parts.append(part)
    return _concat(parts, [])


def _per_run_means(sweep: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean latency and energy per round of every run, keeping the run's ``keys``."""
    return (
        sweep.groupby([*keys, "run_id", "seed"], sort=True, dropna=False)[["latency_s", "energy_j"]]
        .mean()
        .reset_index()
    )


def tradeoff_table(sweep: pd.DataFrame, price_key: str) -> pd.DataFrame:
    """Latency and energy per round vs the optimizer's price, per method.

    Means over rounds within each run, then over the runs (seeds) sharing a method and a price.
    """
    per_run = _per_run_means(sweep, [METHOD_KEY, price_key])
    grouped = per_run.groupby([METHOD_KEY, price_key], sort=True)
    table = grouped[["latency_s", "energy_j"]].mean()
    table["num_runs"] = grouped["run_id"].nunique()
    table = table.reset_index().rename(columns={METHOD_KEY: "method", price_key: "price"})
    table.insert(1, "label", table["method"].map(display_name))
    table.insert(2, "price_key", price_key)
    return table


def mobility_table(sweep: pd.DataFrame, speed_key: str = "mobility.speed_mps") -> pd.DataFrame:
    """Latency and energy per round vs mobility speed: mean and t-based 95 % CI over seeds."""
    per_run = _per_run_means(sweep, [METHOD_KEY, speed_key])
    rows = []
    for (method, speed), group in per_run.groupby([METHOD_KEY, speed_key], sort=True):
        rows.append(
            {
                "method": method,
                "label": display_name(method),
                "speed_mps": speed,
                "num_seeds": group["seed"].nunique(),
                "latency_mean_s": group["latency_s"].mean(),
                "latency_ci95_s": ci95_half_width(group["latency_s"]),
                "energy_mean_j": group["energy_j"].mean(),
                "energy_ci95_j": ci95_half_width(group["energy_j"]),
            }
        )
    return pd.DataFrame(rows)


def cdf_table(runs: Labelled, max_points: int = MAX_CDF_POINTS) -> pd.DataFrame:
    """Empirical CDFs of per-device round latency and energy over completed device-rounds.

    Each curve is the sorted values with their ranks over the count (``probability``): every
    value when there are at most ``max_points``, else the order statistics of ``max_points``
    ranks evenly spaced from the first to the last (each still the exact ECDF at its value),
    so a figure of a million device-rounds draws ``max_points`` steps.
    """
    parts = []
    for label, method, devices in runs:
        done = devices[devices["status"] == "completed"]
        for metric in ("latency_s", "energy_j"):
            values = np.sort(done[metric].dropna().to_numpy(dtype=float))
            num = len(values)
            rank = np.arange(1, num + 1)
            if num > max_points:  # ranks 1 .. num, evenly spaced
                rank = np.unique(np.round(np.linspace(1, num, max_points)).astype(np.int64))
                values = values[rank - 1]
            probability = rank / max(num, 1)
            parts.append(
                pd.DataFrame(
                    {
                        "label": label,
                        "method": method,
                        "metric": metric,
                        "value": values,
                        "probability": probability,
                    }
                )
            )
    return _concat(parts, ["label", "method", "metric", "value", "probability"])


def payload_table(runs: Labelled) -> pd.DataFrame:
    """Mean uplink/downlink bytes per round per run, and the reduction vs the ``none`` method."""
    table = pd.DataFrame(
        [
            {
                "label": label,
                "method": method,
                "bytes_up": rounds["bytes_up"].mean(),
                "bytes_down": rounds["bytes_down"].mean(),
            }
            for label, method, rounds in runs
        ]
    )
    return _with_reduction(table)


def payload_table_from_bench(bench: pd.DataFrame) -> pd.DataFrame:
    """The payload table from a compression-bench CSV (bits per round converted to bytes)."""
    table = pd.DataFrame(
        {
            "label": bench["method"].map(display_name),
            "method": bench["method"],
            "bytes_up": bench["uplink_bits_per_round"] / 8.0,
            "bytes_down": bench["downlink_bits_per_round"] / 8.0,
        }
    )
    return _with_reduction(table)


def _with_reduction(table: pd.DataFrame) -> pd.DataFrame:
    baseline = table[table["method"].astype(str).str.lower() == BASELINE_METHOD]
    for column, out in (("bytes_up", "uplink_reduction"), ("bytes_down", "downlink_reduction")):
        ref = baseline[column].iloc[0] if len(baseline) else np.nan
        table[out] = ref / table[column].where(table[column] > 0)
    return table


def timeline_table(
    events: pd.DataFrame, round_index: int | None = None, max_devices: int = 6
) -> pd.DataFrame:
    """Events of one round (default the first) for the first ``max_devices`` devices.

    Times are also given relative to the round's first event (``start_rel_s``, ``end_rel_s``).

    Raises:
        KeyError: the requested round has no events.
    """
    rounds = sorted(events["round"].unique())
    chosen = rounds[0] if round_index is None else round_index
    if chosen not in rounds:
        raise KeyError(f"round {chosen} has no events (rounds {rounds[0]}..{rounds[-1]})")
    in_round = events[events["round"] == chosen]
    origin = in_round["t_start_s"].min()
    kept = in_round[in_round["kind"].isin(TIMELINE_KINDS) & (in_round["device"] >= 0)]
    devices = sorted(kept["device"].unique())[:max_devices]
    kept = kept[kept["device"].isin(devices)]
    table = kept[list(TIMELINE_COLUMNS)].copy()
    table["start_rel_s"] = table["t_start_s"] - origin
    table["end_rel_s"] = table["t_end_s"] - origin
    return table.sort_values(["device", "t_start_s", "kind"], kind="stable").reset_index(drop=True)


def solver_time_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Median solve times (wsim and generic) and speed-up per method and number of devices."""
    grouped = bench.groupby(["method", "num_devices"], sort=True)
    table = grouped[["solve_time_s", "generic_time_s", "speedup"]].median()
    table["num_repeats"] = grouped.size()
    table = table.reset_index()
    table.insert(1, "label", table["method"].map(display_name))
    return table


def compression_table(bench: pd.DataFrame) -> pd.DataFrame:
    """The compression comparison with print units (accuracies are fractions in the bench CSV)."""
    return pd.DataFrame(
        {
            "method": bench["method"],
            "label": bench["method"].map(display_name),
            "uplink_kbits_per_round": bench["uplink_bits_per_round"] / 1e3,
            "downlink_kbits_per_round": bench["downlink_bits_per_round"] / 1e3,
            "uplink_ratio": bench["uplink_ratio"],
            "final_accuracy_pct": 100.0 * bench["final_accuracy"],
            "accuracy_loss_pp": 100.0 * bench["accuracy_loss"],
            "server_flops_ratio": bench["server_flops_ratio"],
            "device_memory_mib": bench["device_memory_bytes"] / 2**20,
        }
    )


def _concat(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)
