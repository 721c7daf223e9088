"""Every compression method on the coupled default scenario: communication vs accuracy.

Runs ``scenarios/methods/<name>.toml`` (the default scenario — same seed, devices, channel and
data — with that method) for ``--rounds`` rounds in the REAL coupled loop and prints one table:
activation uplink / downlink bits per round (the split-learning payloads the compressor produces,
SplitCom's U-shaped extra pair included; the LoRA adapter exchange is the same for every method
and is not counted), the uplink ratio and the total (uplink + downlink) ratio to ``none`` (how many
times less), final test accuracy of the split model as deployed (device stage → compressor →
server stage, ``RealWorkload.evaluate``), its mean over ``--seeds`` (the scenario seed: devices,
channel, data partition, initialisation) with ±σ the sample standard deviation over the seeds
(with one seed: the binomial standard error ``sqrt(a (1 − a) / n_test)`` of that run; the
``accuracy_binomial_se`` column always holds the latter, at the mean accuracy), accuracy loss vs
``none``
(points), the accuracy of the same global model on the uncompressed full sequence
(``evaluate_full``), server FLOPs ratio to ``none``, device memory (device-stage parameters as
stored, bytes), device compute energy per round (J, the ``client_fwd`` + ``client_bwd`` events of
all devices) and device peak memory (bytes: stored device weights + adapter gradients + optimizer
state + the profiled activation peak of one device step on a probe batch — forward + backward
when the device trains, forward only for a frozen device; SFT's paper recipe: its device part
``SFTPaper.encode`` only, the factored FFN's rest is the server's; SplitCom's caches not
included). Every measure but the accuracy's σ is the mean over the seeds.

Each method with a ``paper`` recipe (PAPERS.md) has two rows: ``<method>`` runs its scenario file
(the paper recipe) and ``<method>_wsim`` the ``wsim`` recipe. Rows named in ``VARIANTS`` run a
scenario with overrides and/or a compressor parameter the scenario format has no field for (the
[CLS]-scored ST-SFLora of DESIGN §6 as first written). ``--csv`` also writes the table with
accuracies as fractions and each row's ``method_name``, ``recipe`` and ``variant`` (``analysis/``
turns it into a LaTeX table labelled by recipe, e.g. "ST-SFLora (paper)"). The ST-SFLora ``paper`` row
needs the engine's ``device_trains`` support (frozen device stage).

    .venv/bin/python bench/compression.py --rounds 30 --seeds 0 1 2 --jobs 2 \
        --csv bench/results/compression.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METHODS = (
    "none", "stsflora", "stsflora_wsim", "stsflora_cls", "tsflora", "sflam", "sft", "sft_wsim",
    "splitcom", "splitcom_wsim", "splitcom_ddpg", "splitcom_ddpg_wsim", "splitcom_ushaped",
    "splitcom_ushaped_wsim", "random_tokens",
)  # fmt: skip
_STSFLORA_WSIM = ('method.recipe="wsim"', 'optimizer.solver="stsflora"',
                  "method.token_counts=[8, 16, 24, 32]")  # fmt: skip
VARIANTS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "stsflora_wsim": ("stsflora", _STSFLORA_WSIM, {}),
    "stsflora_cls": ("stsflora", _STSFLORA_WSIM, {"score": "cls"}),
    "sft_wsim": ("sft", ('method.recipe="wsim"', "method.quant_bits=16"), {}),
    "splitcom_wsim": ("splitcom", ('method.recipe="wsim"',), {}),
    "splitcom_ddpg_wsim": ("splitcom_ddpg", ('method.recipe="wsim"',), {}),
    "splitcom_ushaped_wsim": ("splitcom_ushaped", ('method.recipe="wsim"',), {}),
}
"""Row name → (scenario file stem, scenario overrides, extra compressor parameters)."""
COLUMNS = (
    "method", "uplink_bits_per_round", "downlink_bits_per_round", "uplink_ratio", "total_ratio",
    "final_accuracy", "accuracy_sigma", "accuracy_loss", "full_sequence_accuracy",
    "server_flops_ratio", "device_memory_bytes", "device_compute_energy_j_per_round",
    "device_peak_memory_bytes", "ushape_bits_per_round", "method_name", "recipe", "variant",
    "num_seeds", "accuracy_binomial_se",
)  # fmt: skip
MEASURES = (
    "uplink_bits_per_round", "downlink_bits_per_round", "final_accuracy",
    "device_compute_energy_j_per_round", "device_peak_memory_bytes", "full_sequence_accuracy",
    "server_flops", "device_memory_bytes", "ushape_bits_per_round",
)  # fmt: skip
"""The per-run measures averaged over the seeds."""


def device_peak_memory_bytes(workload: Any) -> int:
    """Device peak memory of one step on a probe batch (see the module docstring), bytes."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from wsim.compression import CompressContext, Compressed, SFTPaper
    from wsim.training.data import model_input

    trainer, cfg = workload.trainer, workload.config
    idx = torch.arange(workload.batch_size)
    images = model_input(workload.train, idx, cfg.img_size)
    k = max(workload.profile().token_counts)
    gen = torch.Generator().manual_seed(0)  # random_tokens draws; the probe never trains
    ctx = CompressContext(sample_ids=idx, keep_tokens=k, generator=gen, training=False)
    compressor = workload.compressor
    if isinstance(compressor, SFTPaper):  # the device's part only: z = S_r V_rᵀ · norm2(h)
        sft = compressor

        def compressor(h: Any, _attn: Any, _ctx: Any) -> Compressed:
            z = sft.encode(h)
            return Compressed(z, z.numel() * sft.quant_bits, z.numel() * 32, h.shape[1], 1.0)

    state = 0
    device = trainer.devices[0]
    if workload.device_trains:
        state = sum(
            t.numel() * t.element_size()
            for s in device.optimizer.state.values()
            for t in s.values()
            if t.dim() > 0
        ) + sum(p.numel() * p.element_size() for p in device.params.values())  # grads
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = trainer.client_forward(0, images, compressor, ctx)
        if workload.device_trains:
            grad = torch.ones_like(out.server_input)
            del out
            trainer.client_backward(0, grad)
            del grad
        else:
            del out
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return int(workload.device_memory_bytes + state + peak)


def run_method(name: str, rounds: int, seed: int = 0, overrides: tuple[str, ...] = ()) -> dict:
    """Run one row's scenario with scenario seed ``seed``; return its raw measures."""
    import torch

    from wsim.compression import ushape_extra_bits
    from wsim.config import load_scenario
    from wsim.sim.engine import run_simulation
    from wsim.workload.real import RealWorkload

    torch.set_num_threads(1)
    stem, extra, params = VARIANTS.get(name, (name, (), {}))
    path = ROOT / "scenarios" / "methods" / f"{stem}.toml"
    sc = load_scenario(path, [f"sim.num_rounds={rounds}", f"seed={seed}", *extra, *overrides])
    workload = RealWorkload(sc, compressor_params=params or None)
    res = run_simulation(sc, workload=workload)
    ev = res.events
    n = len(res.rounds)
    num_batches = int((ev["kind"] == "upload").sum())
    ushape = 0.0
    if sc.method.name == "splitcom" and sc.method.u_shaped:
        ushape = float(sum(ushape_extra_bits(sc.data.batch_size, workload.config.embed_dim)))
    return {
        "method": name,
        "method_name": sc.method.name,
        "recipe": sc.method.recipe,
        "variant": "cls" if params.get("score") == "cls" else "",
        "seed": seed,
        "uplink_bits_per_round": 8.0 * ev.loc[ev["kind"] == "upload", "bytes"].sum() / n,
        "downlink_bits_per_round": 8.0 * ev.loc[ev["kind"] == "download", "bytes"].sum() / n,
        "final_accuracy": float(res.rounds["accuracy"].iloc[-1]),
        "num_test": len(workload.test),
        "device_compute_energy_j_per_round": float(
            ev.loc[ev["kind"].isin(["client_fwd", "client_bwd"]), "energy_j"].sum() / n
        ),
        "device_peak_memory_bytes": device_peak_memory_bytes(workload),
        "full_sequence_accuracy": float(workload.evaluate_full()[0]),
        "server_flops": float(ev.loc[ev["kind"] == "server", "flops"].sum()),
        "device_memory_bytes": int(workload.device_memory_bytes),
        "ushape_bits_per_round": ushape * num_batches / n,
    }


def over_seeds(raw: list[dict]) -> list[dict]:
    """One row per method: :data:`MEASURES` averaged over its seeds, the accuracy's sample σ."""
    import numpy as np

    rows = []
    for name in dict.fromkeys(r["method"] for r in raw):
        runs = [r for r in raw if r["method"] == name]
        row = {k: runs[0][k] for k in ("method", "method_name", "recipe", "variant", "num_test")}
        row |= {k: float(np.mean([r[k] for r in runs])) for k in MEASURES}
        acc = np.array([r["final_accuracy"] for r in runs])
        binomial = float(
            np.sqrt(row["final_accuracy"] * (1 - row["final_accuracy"]) / row["num_test"])
        )
        row["num_seeds"] = len(runs)
        row["accuracy_binomial_se"] = binomial
        row["accuracy_sigma"] = float(acc.std(ddof=1)) if len(runs) > 1 else binomial
        rows.append(row)
    return rows


def table(raw: list[dict]) -> list[dict]:
    """Average over the seeds and add the ratios to ``none`` (which must be in ``raw``)."""
    means = over_seeds(raw)
    ref = next(r for r in means if r["method"] == "none")
    ref_total = ref["uplink_bits_per_round"] + ref["downlink_bits_per_round"]
    rows = []
    for r in means:
        total = r["uplink_bits_per_round"] + r["downlink_bits_per_round"]
        rows.append({
            "method": r["method"],
            "uplink_bits_per_round": r["uplink_bits_per_round"],
            "downlink_bits_per_round": r["downlink_bits_per_round"],
            "uplink_ratio": ref["uplink_bits_per_round"] / r["uplink_bits_per_round"],
            "total_ratio": ref_total / total,
            "final_accuracy": r["final_accuracy"],
            "accuracy_sigma": r["accuracy_sigma"],
            "accuracy_loss": ref["final_accuracy"] - r["final_accuracy"],
            "full_sequence_accuracy": r["full_sequence_accuracy"],
            "server_flops_ratio": r["server_flops"] / ref["server_flops"],
            "device_memory_bytes": r["device_memory_bytes"],
            "device_compute_energy_j_per_round": r["device_compute_energy_j_per_round"],
            "device_peak_memory_bytes": r["device_peak_memory_bytes"],
            "ushape_bits_per_round": r["ushape_bits_per_round"],
            **{k: r[k] for k in ("method_name", "recipe", "variant", "num_seeds",
                                 "accuracy_binomial_se")},
        })  # fmt: skip
    return rows


def print_table(rows: list[dict]) -> None:
    """The table, human-readable (accuracies and the loss in points)."""
    head = (
        f"{'method':<22}{'up bits/rnd':>12}{'down bits/rnd':>14}{'up ×less':>9}{'tot ×less':>10}"
        f"{'acc % ± σ':>13}{'loss pts':>9}{'full-seq %':>11}{'srv FLOPs':>10}{'dev mem B':>10}"
        f"{'dev J/rnd':>10}{'dev peak B':>11}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['method']:<22}{r['uplink_bits_per_round']:>12.3e}"
            f"{r['downlink_bits_per_round']:>14.3e}{r['uplink_ratio']:>9.2f}"
            f"{r['total_ratio']:>10.2f}"
            f"{100 * r['final_accuracy']:>8.2f} ±{100 * r['accuracy_sigma']:>4.2f}"
            f"{100 * r['accuracy_loss']:>8.2f}{100 * r['full_sequence_accuracy']:>11.2f}"
            f"{r['server_flops_ratio']:>10.3f}{r['device_memory_bytes']:>10.0f}"
            f"{r['device_compute_energy_j_per_round']:>10.3f}{r['device_peak_memory_bytes']:>11.0f}"
        )
    for r in rows:
        if r["ushape_bits_per_round"] > 0:
            print(
                f"{r['method']}: up/down include the U-shaped extra pair, "
                f"{r['ushape_bits_per_round']:.3e} bits per round (half each way)"
            )


def main() -> None:
    """Run the methods and print / write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--jobs", type=int, default=1, help="methods run in parallel processes")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="scenario seeds (accuracy ± σ over them)"
    )
    parser.add_argument("--set", action="append", default=[], help="extra scenario override")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    methods = ["none", *[m for m in args.methods if m != "none"]]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [
            pool.submit(run_method, m, args.rounds, seed, tuple(args.set))
            for m in methods
            for seed in args.seeds
        ]
        raw = []
        for f in futures:
            raw.append(f.result())
            print(f"done: {raw[-1]['method']} seed {raw[-1]['seed']}", file=sys.stderr, flush=True)
    rows = table(raw)
    seeds = " ".join(map(str, args.seeds))
    print(
        f"default scenario, seeds {seeds} (± σ over them), {args.rounds} rounds, real coupled loop"
    )
    print_table(rows)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
