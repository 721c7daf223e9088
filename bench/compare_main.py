"""Dump (and compare) the per-round / per-device tables of the default, faults and stress
scenarios: run once with main's code on the path and once with this tree's, then compare.

    PYTHONPATH=/work/main python bench/compare_main.py dump OUT_A
    PYTHONPATH=$PWD      python bench/compare_main.py dump OUT_B
    python bench/compare_main.py compare OUT_A OUT_B
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

CASES = {
    "default": ("scenarios/default.toml", []),
    "faults": ("scenarios/faults.toml", []),
    "stress": ("scenarios/stress_10k.toml", ["sim.num_rounds=5", "devices.num_devices=2000"]),
}
COLUMNS = ("latency_s", "energy_j", "bytes_up", "bytes_down", "t_end_s", "num_completed",
           "compute_energy_j", "tx_energy_j", "accuracy")  # fmt: skip


def dump(out: Path, names: list[str]) -> None:
    from wsim.config import load_scenario
    from wsim.sim.engine import run_simulation

    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        path, sets = CASES[name]
        sc = load_scenario(path, sets) if sets else load_scenario(path)
        res = run_simulation(sc)
        res.rounds.to_csv(out / f"{name}_rounds.csv", index=False)
        res.devices.to_csv(out / f"{name}_devices.csv", index=False)
        print(name, "wall", round(res.wall_time_s, 1), "s", flush=True)


def compare(a: Path, b: Path) -> int:
    worst = 0.0
    for name in CASES:
        fa, fb = a / f"{name}_rounds.csv", b / f"{name}_rounds.csv"
        if not (fa.exists() and fb.exists()):
            continue
        ra, rb = pd.read_csv(fa), pd.read_csv(fb)
        print(f"== {name}: {len(ra)} vs {len(rb)} rounds")
        for col in COLUMNS:
            x, y = ra[col].to_numpy(float), rb[col].to_numpy(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.abs(x - y) / np.maximum(np.abs(x), 1e-300)
            rel = np.where(np.isnan(x) & np.isnan(y), 0.0, rel)
            m = float(np.nanmax(rel)) if rel.size else 0.0
            worst = max(worst, m if col != "accuracy" else 0.0)
            flag = "" if m <= 1e-9 else "  <-- differs"
            print(f"  {col:18s} max rel diff {m:.3g}{flag}")
            if m > 1e-9:
                for r in np.flatnonzero(rel > 1e-9)[:10]:
                    print(f"     round {r}: {x[r]:.10g} -> {y[r]:.10g}")
    print("worst", worst)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(Path(sys.argv[2]), sys.argv[3:] or list(CASES))
    else:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
