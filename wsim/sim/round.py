"""The round process: observe -> decide -> train -> aggregate -> broadcast -> record (DESIGN §4).

The one SimPy process per round. It plans the round (:func:`wsim.sim.plan.plan_round`), has
:class:`wsim.sim.batched.RoundResolver` resolve the scheduled devices' training (every run:
real, surrogate, faults), waits for the last of them, aggregates, broadcasts and records.
"""

from __future__ import annotations

import numpy as np

from wsim.sim.batched import Proc, RoundResolver
from wsim.sim.faults import draw_round_faults
from wsim.sim.plan import build_observation, plan_round
from wsim.sim.selection import draw_selection
from wsim.sim.world import RoundContext, World
from wsim.units import gain_to_db
from wsim.workload.protocol import device_trains


def round_process(world: World, r: int) -> Proc:
    """Round ``r``: observe → decide → train → aggregate → broadcast → record."""
    env, fleet, sc = world.env, world.fleet, world.scenario
    state = world.channel.state_at(float(env.now))
    profile = world.workload.profile()
    # the gain the solver plans with (optimizer.csi); devices.csv records it as gain_db
    gain = state.gain_lin if sc.optimizer.csi == "instantaneous" else state.large_scale_lin
    trains = device_trains(world.workload)

    def observe(selected: np.ndarray | None):
        return build_observation(
            r, fleet, gain, profile, sc, world.noise_psd_w_per_hz, selected,
            distance_m=state.distance_m, speed_mps=state.speed_mps, device_trains=trains,
        )  # fmt: skip

    selected = draw_selection(
        sc.sim.selection, sc.sim.devices_per_round, fleet.num_devices, world.selection_rng
    )
    obs, decision = plan_round(observe, world.allocator, sc.cell.resource_block_hz, selected)
    world.workload.begin_round(r, decision)
    ctx = RoundContext.start(world, r, decision)
    alive_at_start = fleet.is_alive.copy()
    devices = np.flatnonzero(decision.scheduled).tolist()
    faults = draw_round_faults(sc.faults, world.streams.faults, fleet.num_devices, ctx.t_start_s)
    run = RoundResolver(world, ctx, devices, faults)
    yield from run.train()
    if run.last_end > env.now:
        yield env.timeout(run.last_end - env.now)  # the last adapter (or cut) is in
    ctx.completed[:] = run.completed
    if ctx.completed and trains:  # a frozen device stage has no device adapters to average
        yield from run.broadcast(ctx.completed)
    run.close()
    last = r == sc.sim.num_rounds - 1
    metrics = world.workload.end_round(
        r, list(ctx.completed), evaluate=last or (r + 1) % sc.sim.eval_every == 0
    )
    opt = decision.token_option
    world.rounds.add(
        round=r, t_start_s=ctx.t_start_s, t_end_s=float(env.now),
        accuracy=metrics.accuracy, loss=metrics.loss,
        is_alive=alive_at_start, scheduled=decision.scheduled,
        tokens=np.where(opt >= 0, obs.problem.token_counts.astype(np.int64)[np.maximum(opt, 0)], 0),
        bandwidth_hz=decision.bandwidth_hz, power_w=decision.power_w,
        solver_reason=decision.reason if decision.reason is not None else np.full(len(opt), ""),
        distance_m=state.distance_m, speed_mps=state.speed_mps, gain_db=gain_to_db(gain),
        battery_j=fleet.battery_j.copy(),
        retention=np.where(opt >= 0, obs.problem.retention[np.arange(len(opt)), np.maximum(opt, 0)], np.nan),
        server_slowdown=run.slowdown,
        is_selected=np.ones(len(opt), dtype=bool) if selected is None else selected,
    )  # fmt: skip
