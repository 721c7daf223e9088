"""SimPy processes: plain generator functions that only orchestrate (DESIGN §4).

A round: observe → decide → train (each scheduled device in parallel: ``local_iters`` ×
(client_fwd → upload → server (FIFO queue) → download → client_bwd), then adapter_up) →
aggregate (device −1) → adapter_down → record. The physics lives in pure functions
(``wsim.energy``, ``channel_models``) and in :class:`~wsim.sim.channel_state.CellChannel`.

Deadline and battery: an activity that would run past the round deadline or empty the battery
is cut at that instant; its row records what was done (time, energy, bits, FLOPs), followed by a
``straggler`` or ``dropout`` row. The deadline covers local training and the adapter upload;
aggregation and the broadcast follow it. A device whose battery empties is dead from then on.
Only the device's compute and transmission drain its battery (reception and idle not modelled).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np

from wsim.energy import (
    compute_cycles,
    compute_energy_j,
    compute_power_w,
    compute_time_s,
    depletion_time_s,
)
from wsim.sim.observation import build_observation, check_decision
from wsim.sim.world import RoundContext, World
from wsim.units import BITS_PER_BYTE, BITS_PER_FLOAT32, gain_to_db

Proc = Generator[Any, Any, Any]


def _interrupted(world: World, ctx: RoundContext, device: int, t_s: float, dropped: bool) -> bool:
    """Record the end of a device's round (``dropout`` or ``straggler`` row); return False."""
    if dropped:
        world.fleet.battery_j[device] = 0.0
        world.fleet.is_alive[device] = False
    world.events.add(ctx.round, device, "dropout" if dropped else "straggler", t_s, t_s)
    return False


def _charge(world: World, device: int, energy_j: float, dropped: bool) -> None:
    fleet = world.fleet
    fleet.battery_j[device] = 0.0 if dropped else max(fleet.battery_j[device] - energy_j, 0.0)


def compute(
    world: World, ctx: RoundContext, device: int, kind: str, flops: float, tokens: int = 0
) -> Proc:
    """Device compute event: ``t = FLOPs·c / f``, ``E = κ C f²``; returns False if cut."""
    fleet, env = world.fleet, world.env
    f, kappa = fleet.cpu_hz[device], fleet.kappa[device]
    cycles = float(compute_cycles(flops, fleet.cycles_per_flop[device]))
    duration = float(compute_time_s(cycles, f))
    power = float(compute_power_w(f, kappa))
    t0, battery = float(env.now), float(fleet.battery_j[device])
    t_dead = t0 + float(depletion_time_s(battery, power))
    t_end = min(t0 + duration, ctx.deadline_s, t_dead)
    done = t_end >= t0 + duration
    dropped = not done and t_dead <= ctx.deadline_s
    if t_end > t0:
        yield env.timeout(t_end - t0)
    energy = (
        float(compute_energy_j(cycles, f, kappa))
        if done
        else (battery if dropped else power * (t_end - t0))
    )
    if done or t_end > t0:
        frac = 1.0 if done else (t_end - t0) / duration
        world.events.add(
            ctx.round, device, kind, t0, t_end, tokens=tokens, energy_j=energy, flops=flops * frac
        )
        _charge(world, device, energy, dropped)
    return True if done else _interrupted(world, ctx, device, t_end, dropped)


def _integrate(
    world: World, device: int, bits: float, bw: float, power: float, t_stop: float
) -> Proc:
    """Integrate a transfer in windows of ``HORIZON_BLOCKS`` blocks (bounded channel cache).

    Returns ``(t_end_s, bits_done, is_complete, num_blocks, mean_snr_lin)``.
    """
    channel, env = world.channel, world.env
    t, done, blocks, snr_time = float(env.now), 0.0, 0, 0.0
    t0 = t
    while True:
        window = min(t_stop, channel.horizon_end_s(t))
        res = channel.integrate(device, bits - done, t, bw, power, world.noise_psd_w_per_hz, window)
        if res.t_end_s > t:
            yield env.timeout(res.t_end_s - t)
            snr_time += res.mean_snr_lin * (res.t_end_s - t)
        done, blocks, t = done + res.bits, blocks + res.num_blocks, res.t_end_s
        if res.is_complete or t >= t_stop:
            mean_snr = snr_time / (t - t0) if t > t0 else math.nan
            return t, (bits if res.is_complete else done), res.is_complete, blocks, mean_snr


def transfer(
    world: World, ctx: RoundContext, device: int, kind: str, bits: float, tokens: int = 0
) -> Proc:
    """Uplink (``upload``, ``adapter_up``: device power, drains the battery, cut at the
    deadline) or downlink (``download``, ``adapter_down``: BS power, no device energy) transfer
    integrated over fading blocks; returns False if cut."""
    fleet = world.fleet
    is_up = kind in ("upload", "adapter_up")
    dec = ctx.decision
    bw = float(dec.bandwidth_hz[device]) if is_up else ctx.dl_bandwidth_hz
    power = float(dec.power_w[device]) if is_up else ctx.dl_power_w
    t0, battery = float(world.env.now), float(fleet.battery_j[device])
    t_dead = t0 + float(depletion_time_s(battery, power)) if is_up else math.inf
    limit = ctx.deadline_s if kind != "adapter_down" else math.inf
    t_end, sent, complete, blocks, snr = yield from _integrate(
        world, device, bits, bw, power, min(limit, t_dead)
    )
    dropped = not complete and t_dead <= limit
    airtime = t_end - t0
    energy = (battery if dropped else power * airtime) if is_up else 0.0
    if complete or airtime > 0:
        world.events.add(
            ctx.round, device, kind, t0, t_end,
            bytes=sent / BITS_PER_BYTE, tokens=tokens, bandwidth_hz=bw, power_w=power,
            rate_bps=sent / airtime if airtime > 0 else math.nan,
            snr_db=10.0 * math.log10(snr) if snr > 0 else math.nan,
            energy_j=energy, num_blocks=blocks,
        )  # fmt: skip
        _charge(world, device, energy, dropped)
    return True if complete else _interrupted(world, ctx, device, t_end, dropped)


def serve(world: World, ctx: RoundContext, device: int, flops: float) -> Proc:
    """Edge-server step: FIFO queue for a slot (``server_wait`` row), then ``FLOPs / F``."""
    env, server = world.env, world.server
    service_s = server.compute_time_s(flops)
    t_arrive = float(env.now)
    with server.slots.request() as req:
        if math.isfinite(ctx.deadline_s):
            yield req | env.timeout(max(ctx.deadline_s - t_arrive, 0.0))
        else:
            yield req
        t0 = float(env.now)
        if t0 > t_arrive:
            world.events.add(ctx.round, device, "server_wait", t_arrive, t0)
        if not req.triggered:
            return _interrupted(world, ctx, device, t0, dropped=False)
        t_end = min(t0 + service_s, ctx.deadline_s)
        if t_end > t0:
            yield env.timeout(t_end - t0)
            world.events.add(
                ctx.round,
                device,
                "server",
                t0,
                t_end,
                flops=flops * min((t_end - t0) / service_s, 1.0),
            )
    return (
        True if t_end >= t0 + service_s else _interrupted(world, ctx, device, t_end, dropped=False)
    )


def device_round(world: World, ctx: RoundContext, device: int) -> Proc:
    """One scheduled device's round: local iterations, then the adapter upload."""
    wl, r = world.workload, ctx.round
    for it in range(world.scenario.sim.local_iters):
        step = wl.client_forward(device, r, it)
        if not (yield from compute(world, ctx, device, "client_fwd", step.flops, step.tokens)):
            return
        if not (yield from transfer(world, ctx, device, "upload", step.upload_bits, step.tokens)):
            return
        srv = wl.server_step(device, r, it)  # the upload has arrived: simulated arrival order
        if not (yield from serve(world, ctx, device, srv.flops)):
            return
        if not (yield from transfer(world, ctx, device, "download", srv.download_bits)):
            return
        if not (
            yield from compute(world, ctx, device, "client_bwd", wl.client_backward(device, r, it))
        ):
            return
    if (yield from transfer(world, ctx, device, "adapter_up", wl.adapter_up_bits(device))):
        ctx.completed.append(device)


def aggregate(world: World, ctx: RoundContext) -> Proc:
    """FedAvg at the server (device −1): ``2 · params · participants`` FLOPs, then broadcast."""
    env, wl = world.env, world.workload
    down_bits = wl.adapter_down_bits()
    flops = 2.0 * max(down_bits / BITS_PER_FLOAT32, 1.0) * len(ctx.completed)
    t0 = float(env.now)
    yield env.timeout(world.server.compute_time_s(flops))
    world.events.add(ctx.round, -1, "aggregate", t0, float(env.now), flops=flops)
    procs = [env.process(transfer(world, ctx, i, "adapter_down", down_bits)) for i in ctx.completed]
    yield env.all_of(procs)


def round_process(world: World, r: int) -> Proc:
    """Round ``r``: observe → decide → train → aggregate → broadcast → record."""
    env, fleet, sc = world.env, world.fleet, world.scenario
    state = world.channel.state_at(float(env.now))
    profile = world.workload.profile()
    obs = build_observation(r, fleet, state.gain_lin, profile, sc, world.noise_psd_w_per_hz)
    decision = check_decision(world.allocator(obs), obs, sc.cell.resource_block_hz)
    world.workload.begin_round(r, decision)
    ctx = RoundContext.start(world, r, decision)
    alive_at_start = fleet.is_alive.copy()
    devices = np.flatnonzero(decision.scheduled)
    yield env.all_of([env.process(device_round(world, ctx, int(i))) for i in devices])
    ctx.completed.sort()
    if ctx.completed:
        yield from aggregate(world, ctx)
    last = r == sc.sim.num_rounds - 1
    metrics = world.workload.end_round(
        r, list(ctx.completed), evaluate=last or (r + 1) % sc.sim.eval_every == 0
    )
    opt = decision.token_option
    world.rounds.add(
        round=r, t_start_s=ctx.t_start_s, t_end_s=float(env.now),
        accuracy=metrics.accuracy, loss=metrics.loss,
        is_alive=alive_at_start, scheduled=decision.scheduled,
        tokens=np.where(opt >= 0, obs.token_counts[np.maximum(opt, 0)], 0),
        bandwidth_hz=decision.bandwidth_hz, power_w=decision.power_w,
        solver_reason=decision.reason if decision.reason is not None else np.full(len(opt), ""),
        distance_m=state.distance_m, speed_mps=state.speed_mps, gain_db=gain_to_db(state.gain_lin),
        battery_j=fleet.battery_j.copy(),
        retention=np.where(opt >= 0, obs.retention[np.arange(len(opt)), np.maximum(opt, 0)], np.nan),
    )  # fmt: skip
