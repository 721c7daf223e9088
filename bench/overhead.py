"""Simulator overhead over the bare torch work of the same real run.

Runs the coupled default scenario (shortened with ``--rounds``) twice:

1. **coupled**: ``run_simulation`` with a :class:`RealWorkload` built beforehand (model and data
   set-up excluded); wall time of the run vs the wall time spent inside the torch calls
   (``RealWorkload.torch_time_s``: forward, server step, backward, aggregation, evaluation);
2. **bare**: the same workload calls (every device, every local iteration, aggregation and
   evaluation per round) in a plain loop, without the engine.

Prints both and the overhead ratios ``(coupled − torch) / torch`` and ``coupled / bare − 1``
(target ≤ 5 %). One torch thread, like ``wsim run``.

    .venv/bin/python bench/overhead.py --rounds 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wsim.config import load_scenario
from wsim.round_api import RoundDecision
from wsim.sim.engine import run_simulation
from wsim.workload.real import RealWorkload


def bare_loop(workload: RealWorkload, num_rounds: int, local_iters: int, num_devices: int) -> float:
    """Wall seconds of the same trainer work in a plain loop (all devices, no engine)."""
    decision = RoundDecision(
        scheduled=np.ones(num_devices, dtype=bool),
        token_option=np.zeros(num_devices, dtype=np.int64),
        bandwidth_hz=np.ones(num_devices),
        power_w=np.ones(num_devices),
    )
    t0 = time.perf_counter()
    for r in range(num_rounds):
        workload.begin_round(r, decision)
        for it in range(local_iters):
            for device in range(num_devices):
                workload.client_forward(device, r, it)
                workload.server_step(device, r, it)
                workload.client_backward(device, r, it)
        workload.end_round(r, list(range(num_devices)), evaluate=True)
    return time.perf_counter() - t0


def main() -> None:
    """Run both variants and print the overhead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sc = load_scenario(None, [f"sim.num_rounds={args.rounds}"])

    t0 = time.perf_counter()
    coupled_wl = RealWorkload(sc)
    setup_s = time.perf_counter() - t0
    setup_torch = sum(coupled_wl.torch_time_s.values())
    res = run_simulation(sc, workload=coupled_wl)
    torch_s = sum(coupled_wl.torch_time_s.values()) - setup_torch
    scheduled = int(res.rounds["num_scheduled"].sum())
    assert scheduled == sc.devices.num_devices * args.rounds, "bare loop assumes all scheduled"

    bare_wl = RealWorkload(sc)
    bare_s = bare_loop(bare_wl, args.rounds, sc.sim.local_iters, sc.devices.num_devices)

    steps = scheduled * sc.sim.local_iters
    print(f"default scenario, {args.rounds} rounds, {steps} split steps, 1 torch thread")
    print(f"  set-up (model, data, profile)   {setup_s:8.2f} s (not counted below)")
    print(f"  coupled run (engine + torch)    {res.wall_time_s:8.2f} s")
    print(f"    of which inside torch calls   {torch_s:8.2f} s")
    print(f"    engine overhead               {res.wall_time_s - torch_s:8.2f} s "
          f"= {(res.wall_time_s - torch_s) / torch_s:6.1%} of the torch time")  # fmt: skip
    print(f"  bare loop (same calls)          {bare_s:8.2f} s")
    print(
        f"  coupled / bare - 1              {res.wall_time_s / bare_s - 1:6.1%}   (target <= 5 %)"
    )
    print(f"  final accuracy coupled {res.rounds['accuracy'].iloc[-1]:.4f}")


if __name__ == "__main__":
    main()
