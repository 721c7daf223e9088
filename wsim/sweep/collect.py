"""The sweep's tables: every completed run's ``rounds.csv``/``devices.parquet`` tagged with its run.

Each row gets ``run_id``, ``seed`` and one column per swept key (named by its dotted key, e.g.
``optimizer.energy_price_per_j``) plus ``method.name`` and ``optimizer.solver``, holding the
resolved scenario's value. Rows are sorted by run_id, then round (then device), so the table does
not depend on the engine or on the order in which runs finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from wsim.records import atomic_write
from wsim.sweep.engines import RunOutcome, run_folder
from wsim.sweep.expand import RunSpec

ROUNDS_SORT = ("run_id", "round")
DEVICES_SORT = ("run_id", "round", "device")


def _meta_columns(runs: Sequence[RunSpec]) -> list[str]:
    keys = dict.fromkeys(k for run in runs for k in run.params)
    return ["run_id", "seed", *keys]


def _tagged(run: RunSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the run's id, seed and parameters as leading columns."""
    tags = {"run_id": run.run_id, "seed": run.seed, **run.params}
    head = pd.DataFrame({k: [v] * len(frame) for k, v in tags.items()}, index=frame.index)
    return pd.concat([head, frame.drop(columns=list(tags), errors="ignore")], axis=1)


def collect_table(
    runs: Sequence[RunSpec], out: Path, file_name: str, sort_by: Sequence[str]
) -> pd.DataFrame:
    """Concatenate ``file_name`` of every run in ``runs`` (all complete), tagged and sorted."""
    frames = [
        _tagged(run, _read(run_folder(out, run.run_id) / file_name))
        for run in sorted(runs, key=lambda r: r.run_id)
    ]
    if not frames:
        return pd.DataFrame(columns=_meta_columns(runs))
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(list(sort_by), kind="mergesort").reset_index(drop=True)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def failures_table(runs: Sequence[RunSpec], outcomes: Sequence[RunOutcome]) -> pd.DataFrame:
    """One row per failed run: run_id, seed, its parameters and the one-line error."""
    by_id = {run.run_id: run for run in runs}
    rows = [
        {
            "run_id": o.run_id,
            "seed": by_id[o.run_id].seed,
            **by_id[o.run_id].params,
            "error": o.error,
        }
        for o in sorted(outcomes, key=lambda o: o.run_id)
        if o.error is not None
    ]
    return pd.DataFrame(rows, columns=[*_meta_columns(runs), "error"])


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to CSV (no index) atomically."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
