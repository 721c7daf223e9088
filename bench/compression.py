"""Every compression method on the coupled default scenario: communication vs accuracy.

Runs ``scenarios/methods/<name>.toml`` (the default scenario — same seed, devices, channel and
data — with that method) for ``--rounds`` rounds in the REAL coupled loop and prints one table:
activation uplink / downlink bits per round (the split-learning payloads the compressor produces;
the LoRA adapter exchange is the same for every method and is not counted), the uplink ratio to
``none`` (how many times less), final test accuracy, accuracy loss vs ``none`` (points), server
FLOPs ratio to ``none`` and device memory (device-stage parameters as stored, bytes). ``--csv``
also writes it with accuracies as fractions (``analysis/`` turns it into a LaTeX table).

    .venv/bin/python bench/compression.py --rounds 10 --jobs 2 --csv runs/compression.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("none", "stsflora", "tsflora", "sflam", "sft", "splitcom", "random_tokens")
COLUMNS = (
    "method", "uplink_bits_per_round", "downlink_bits_per_round", "uplink_ratio",
    "final_accuracy", "accuracy_loss", "server_flops_ratio", "device_memory_bytes",
)  # fmt: skip


def run_method(name: str, rounds: int, overrides: tuple[str, ...] = ()) -> dict:
    """Run one method's scenario; return its raw measures."""
    import torch

    from wsim.config import load_scenario
    from wsim.sim.engine import run_simulation

    torch.set_num_threads(1)
    path = ROOT / "scenarios" / "methods" / f"{name}.toml"
    sc = load_scenario(path, [f"sim.num_rounds={rounds}", *overrides])
    res = run_simulation(sc)
    ev = res.events
    n = len(res.rounds)
    return {
        "method": name,
        "uplink_bits_per_round": 8.0 * ev.loc[ev["kind"] == "upload", "bytes"].sum() / n,
        "downlink_bits_per_round": 8.0 * ev.loc[ev["kind"] == "download", "bytes"].sum() / n,
        "final_accuracy": float(res.rounds["accuracy"].iloc[-1]),
        "server_flops": float(ev.loc[ev["kind"] == "server", "flops"].sum()),
        "device_memory_bytes": int(res.world.workload.device_memory_bytes),
    }


def table(raw: list[dict]) -> list[dict]:
    """Add the ratios to ``none`` (which must be in ``raw``)."""
    ref = next(r for r in raw if r["method"] == "none")
    rows = []
    for r in raw:
        rows.append({
            "method": r["method"],
            "uplink_bits_per_round": r["uplink_bits_per_round"],
            "downlink_bits_per_round": r["downlink_bits_per_round"],
            "uplink_ratio": ref["uplink_bits_per_round"] / r["uplink_bits_per_round"],
            "final_accuracy": r["final_accuracy"],
            "accuracy_loss": ref["final_accuracy"] - r["final_accuracy"],
            "server_flops_ratio": r["server_flops"] / ref["server_flops"],
            "device_memory_bytes": r["device_memory_bytes"],
        })  # fmt: skip
    return rows


def print_table(rows: list[dict]) -> None:
    """The table, human-readable (accuracy and its loss in points)."""
    head = (
        f"{'method':<14}{'up bits/rnd':>13}{'down bits/rnd':>15}{'up ×less':>10}"
        f"{'acc %':>8}{'loss pts':>10}{'srv FLOPs':>11}{'dev mem B':>11}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['method']:<14}{r['uplink_bits_per_round']:>13.3e}"
            f"{r['downlink_bits_per_round']:>15.3e}{r['uplink_ratio']:>10.2f}"
            f"{100 * r['final_accuracy']:>8.2f}{100 * r['accuracy_loss']:>10.2f}"
            f"{r['server_flops_ratio']:>11.3f}{r['device_memory_bytes']:>11d}"
        )


def main() -> None:
    """Run the methods and print / write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--jobs", type=int, default=1, help="methods run in parallel processes")
    parser.add_argument("--set", action="append", default=[], help="extra scenario override")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    methods = ["none", *[m for m in args.methods if m != "none"]]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_method, m, args.rounds, tuple(args.set)) for m in methods]
        raw = []
        for f in futures:
            raw.append(f.result())
            print(f"done: {raw[-1]['method']}", file=sys.stderr, flush=True)
    rows = table(raw)
    print(f"default scenario, seed 0, {args.rounds} rounds, real coupled loop")
    print_table(rows)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
