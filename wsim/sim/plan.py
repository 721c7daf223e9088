"""Building the round's observation and planning the round (the seam types live in
:mod:`wsim.round_api`): the observation from the fleet, the channel and the
profile; resource-block granting; the decision check; the re-planning that makes the planned
downlink split the executed one. Pure numpy (no simpy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from channel_models import shannon_rate_bps
from wsim.optimizer.problem import RoundProblem
from wsim.round_api import Allocator, RoundDecision, RoundObservation, SimulationError

if TYPE_CHECKING:
    from wsim.config import Scenario
    from wsim.sim.entities import DeviceArrays
    from wsim.workload.profile import WorkloadProfile

FloatArray = npt.NDArray[np.float64]


def downlink_share(
    downlink_bandwidth_hz: float, bs_power_w: float, num_candidates: int
) -> tuple[float, float]:
    """Each device's downlink ``(bandwidth_hz, power_w)``: the band and the BS power split
    equally among ``n`` devices, ``B_dl / n`` Hz at ``P_bs / n`` W (a constant PSD, so the SNR
    does not depend on ``n``).

    The one definition of the downlink share: the solver plans the gradient downloads with it
    over the round's candidates (:func:`build_observation`), the engine executes them with it
    over the scheduled devices (``RoundContext``), and :func:`plan_round` re-plans until the
    two sets are the same, so plan and execution agree.
    """
    num = max(int(num_candidates), 1)
    return downlink_bandwidth_hz / num, bs_power_w / num


def grant_resource_blocks(
    decision: RoundDecision, obs: RoundObservation, resource_block_hz: float
) -> RoundDecision:
    """The allocation in whole resource blocks (``cell.resource_block_hz``; 0 = continuous).

    Solvers plan continuous shares ``b_i``. Each scheduled device gets ``floor(b_i / W_RB)``
    blocks, then the blocks left of the cell's ``floor(B / W_RB)`` go one each to the largest
    remainders (Hamilton's largest-remainder rule; ties by device index), so the blocks sum to
    at most the cell's. The power is recomputed for the granted ``b'_i`` to keep the planned
    rate ``r_i = b_i log2(1 + p_i g_i / (N0 b_i))`` (same upload time, so the same latency
    target): ``p'_i = (2^(r_i / b'_i) - 1) N0 b'_i / g_i``, capped at ``p_max,i`` (then the
    device is slower than planned). A device granted no block is not scheduled, reason
    ``"resource_block"``. The engine executes exactly the returned shares and powers.
    """
    if resource_block_hz <= 0:
        return decision
    sched = np.asarray(decision.scheduled, dtype=bool)
    share = np.where(sched, np.asarray(decision.bandwidth_hz, dtype=float), 0.0)
    exact = share / resource_block_hz * (1 + 1e-12)  # an exact multiple is not lost to round-off
    blocks = np.floor(exact).astype(np.int64)
    total = int(math.floor(obs.problem.total_bandwidth_hz / resource_block_hz * (1 + 1e-12)))
    left = total - int(blocks.sum())
    remainder = np.where(sched, exact - blocks, -1.0)
    if left > 0:
        order = np.argsort(-remainder, kind="stable")[:left]
        blocks[order[remainder[order] > 0]] += 1
    granted = sched & (blocks > 0)
    bw = np.where(granted, blocks * resource_block_hz, 0.0)
    n0 = obs.problem.noise_psd_w_per_hz
    power = np.asarray(decision.power_w, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = shannon_rate_bps(np.where(granted, share, 1.0), power, obs.problem.gain_lin, n0)
        need = np.expm1(rate / bw * math.log(2.0)) * n0 * bw / obs.problem.gain_lin
    power = np.where(granted, np.minimum(need, obs.problem.max_power_w), 0.0)
    reason = (
        np.asarray(decision.reason, dtype=object).copy()
        if decision.reason is not None
        else np.full(len(sched), "", dtype=object)
    )
    reason[sched & ~granted] = "resource_block"
    return RoundDecision(
        scheduled=granted,
        token_option=np.where(granted, decision.token_option, -1).astype(np.int64),
        bandwidth_hz=bw,
        power_w=power,
        reason=reason,
    )


def check_decision(decision: RoundDecision, obs: RoundObservation) -> RoundDecision:
    """Validate a decision (shapes, feasibility of b and p); the engine executes it as is.

    Raises:
        SimulationError: A scheduled device's bandwidth or power is NaN or inf.
        ValueError: A scheduled device is dead, has no bandwidth or power, exceeds p_max, an
            option index is out of range, or the shares exceed the total bandwidth.
    """
    n, num_options = obs.num_devices, len(obs.problem.token_counts)
    sched = np.asarray(decision.scheduled, dtype=bool)
    arrays = [sched, decision.token_option, decision.bandwidth_hz, decision.power_w]
    if any(np.shape(a) != (n,) for a in arrays):
        raise ValueError(f"decision arrays must all have shape ({n},)")
    nonfinite = sched & ~(np.isfinite(decision.bandwidth_hz) & np.isfinite(decision.power_w))
    if nonfinite.any():
        raise SimulationError(
            f"round {obs.round}: the solver returned a non-finite bandwidth or power for devices "
            f"{np.flatnonzero(nonfinite)[:10].tolist()}; the run is stopped"
        )
    opt = np.where(sched, np.asarray(decision.token_option, dtype=np.int64), -1)
    bw = np.where(sched, np.asarray(decision.bandwidth_hz, dtype=float), 0.0)
    power = np.where(sched, np.asarray(decision.power_w, dtype=float), 0.0)
    problems = {
        "scheduled a dead device": sched & ~obs.is_alive,
        "token option out of range": sched & ((opt < 0) | (opt >= num_options)),
        "bandwidth_hz <= 0": sched & ~(bw > 0),
        "power_w not in (0, max_power_w]": sched & ~((power > 0) & (power <= obs.problem.max_power_w * (1 + 1e-9))),
    }  # fmt: skip
    for text, bad in problems.items():
        if bad.any():
            raise ValueError(
                f"round {obs.round}: decision {text} for devices {np.flatnonzero(bad)[:10].tolist()}"
            )
    if bw.sum() > obs.problem.total_bandwidth_hz * (1 + 1e-9):
        raise ValueError(
            f"round {obs.round}: bandwidth shares sum to {bw.sum():.6g} Hz > {obs.problem.total_bandwidth_hz:.6g} Hz"
        )
    return RoundDecision(
        scheduled=sched, token_option=opt, bandwidth_hz=bw, power_w=power, reason=decision.reason
    )


def build_observation(
    round: int,
    fleet: DeviceArrays,
    gain_lin: FloatArray,
    profile: WorkloadProfile,
    scenario: Scenario,
    noise_psd_w_per_hz: float,
    is_selected: npt.NDArray[np.bool_] | None = None,
    *,
    distance_m: FloatArray | None = None,
    speed_mps: FloatArray | None = None,
    device_trains: bool = True,
) -> RoundObservation:
    """Assemble the round's observation from the fleet, the channel and the profile.

    Per-round totals over ``E = sim.local_iters`` iterations of ``B = batch_size`` samples:
    ``payload = E B S_up[j] + S_adapter``; ``cycles = E B (F_fwd[j] + F_bwd[j]) c_i``;
    ``T_fix = E B (F_srv[j*] / F_server + S_down[j*] / r_dl,i)`` with ``j*`` the largest token
    option and ``r_dl,i`` the downlink rate at the round's :func:`downlink_share`.

    A workload whose device stage does not train (``device_trains`` False: a frozen device
    stage, ST-SFLora's recipe) has no gradient download, backward or adapter exchange:
    ``payload = E B S_up[j]``, ``cycles = E B F_fwd[j] c_i``, ``T_fix = E B F_srv[j*] / F_server``.

    With ``distance_m`` and ``speed_mps`` (``[N]``, at the round start) the problem carries
    ST-SFLora's standing time ``min((R_cell - d_i) / v_i, T_max)`` (:func:`standing_time_s`).
    """
    iters, batch = scenario.sim.local_iters, float(profile.batch_size)
    per_round = iters * batch
    cpf = fleet.cycles_per_flop[:, None]
    flops = profile.array("client_fwd_flops")
    if device_trains:
        flops = flops + profile.array("client_bwd_flops")
    alive = fleet.is_alive.copy()
    cell = scenario.cell
    budget = np.minimum(fleet.energy_budget_j, fleet.battery_j)
    candidates = alive & (budget > 0)
    if is_selected is not None:
        candidates &= is_selected
    num_candidates = int(np.count_nonzero(candidates))
    share_hz, share_w = downlink_share(cell.downlink_bandwidth_hz, cell.bs_power_w, num_candidates)
    dl_rate = shannon_rate_bps(share_hz, share_w, gain_lin, noise_psd_w_per_hz)
    j_max = int(np.argmax(profile.token_counts))
    server_s = per_round * profile.server_flops[j_max] / scenario.server.flops_per_s
    with np.errstate(divide="ignore"):
        download_s = per_round * profile.download_bits[j_max] / dl_rate
    if not device_trains:
        download_s = np.zeros_like(download_s)
    adapter_bits = profile.adapter_up_bits if device_trains else 0.0
    num_options = profile.num_options
    problem = RoundProblem(
        gain_lin=np.asarray(gain_lin, dtype=float).copy(),
        cpu_hz=fleet.cpu_hz.copy(),
        kappa=fleet.kappa.copy(),
        max_power_w=fleet.max_power_w.copy(),
        energy_budget_j=np.where(alive, budget, 0.0),
        token_counts=np.asarray(profile.token_counts, dtype=np.int64),
        payload_bits=np.broadcast_to(
            per_round * profile.array("upload_bits") + adapter_bits,
            (fleet.num_devices, num_options),
        ).copy(),
        device_cycles=per_round * flops[None, :] * cpf,
        retention=np.broadcast_to(
            profile.array("retention"), (fleet.num_devices, num_options)
        ).copy(),
        fixed_latency_s=server_s + download_s,
        total_bandwidth_hz=cell.uplink_bandwidth_hz,
        noise_psd_w_per_hz=float(noise_psd_w_per_hz),
        deadline_s=scenario.sim.round_deadline_s,
        energy_price_per_j=scenario.optimizer.energy_price_per_j,
        latency_price_per_s=scenario.optimizer.latency_price_per_s,
        min_retention=scenario.optimizer.min_retention,
        infeasible_policy=scenario.optimizer.infeasible_policy,
        latency_energy_weight=scenario.optimizer.latency_energy_weight,
        standing_time_s=None
        if distance_m is None or speed_mps is None
        else standing_time_s(distance_m, speed_mps, cell.radius_m, scenario.sim.round_deadline_s),
    )
    return RoundObservation(
        round=round,
        problem=problem,
        is_alive=alive,
        is_selected=None if is_selected is None else np.asarray(is_selected, dtype=bool).copy(),
        debug=scenario.sim.debug,
    )


def standing_time_s(
    distance_m: FloatArray, speed_mps: FloatArray, radius_m: float, deadline_s: float
) -> FloatArray:
    """ST-SFLora's standing time ``min((R_cell - d_i) / v_i, T_max)`` (s), ``[N]`` (PAPERS.md,
    mobility gate): how long a device moving at ``v_i`` from distance ``d_i`` could stay in a
    cell of radius ``R_cell`` in the worst case (moving straight out), capped at the deadline
    ``T_max``. A static device (``v_i = 0``) stays ``T_max`` (``inf`` without deadline); a device
    at or past the edge, 0.
    """
    left_m = np.maximum(radius_m - np.asarray(distance_m, dtype=float), 0.0)
    speed = np.asarray(speed_mps, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        leave_s = np.where(speed > 0, left_m / np.where(speed > 0, speed, 1.0), np.inf)
    return np.minimum(leave_s, deadline_s)


def plan_round(
    observe: Callable[[npt.NDArray[np.bool_] | None], RoundObservation],
    allocator: Allocator,
    resource_block_hz: float,
    is_selected: npt.NDArray[np.bool_] | None = None,
) -> tuple[RoundObservation, RoundDecision]:
    """Observe, allocate, grant resource blocks, check; re-plan until planning and execution
    share one downlink split.

    The solver plans the gradient downloads with the share among the candidates
    (:func:`downlink_share`); the engine gives the downlink to the scheduled devices. When the
    solver leaves candidates out, the round is planned again with only the scheduled ones as
    candidates (a faster downlink for them), until every candidate is scheduled (the set only
    shrinks, so this ends; usually one pass, two when someone is left out). A device left out
    in a pass keeps that pass's reason.

    Args:
        observe: ``is_selected -> RoundObservation`` (:func:`build_observation` bound to the
            round).
        allocator: The round's solver.
        resource_block_hz: ``cell.resource_block_hz`` (:func:`grant_resource_blocks`).
        is_selected: ``[N]`` the round's sampled devices (None = all).

    Returns:
        The final observation (the one the decision was planned on) and the checked decision.
    """
    first: RoundObservation | None = None
    left_out_reason: npt.NDArray[np.object_] | None = None  # of devices dropped in a pass
    while True:
        obs = observe(is_selected)
        decision = check_decision(
            grant_resource_blocks(allocator(obs), obs, resource_block_hz), obs
        )
        given = (
            np.asarray(decision.reason, dtype=object)
            if decision.reason is not None
            else np.full(obs.num_devices, "", dtype=object)
        )
        if first is None:
            first, left_out_reason = obs, np.full(obs.num_devices, "", dtype=object)
        candidates = obs.candidates
        scheduled = decision.scheduled & candidates
        left_out = candidates & ~scheduled
        left_out_reason[left_out] = given[left_out]
        if not left_out.any() or not scheduled.any():
            break
        is_selected = scheduled
    # reasons: the solver's for this pass, the first pass's for the non-candidates (dead, no
    # energy, not sampled), and the pass's that left a device out for the re-planned ones
    reason = given.copy()
    outside = first.reason_not_candidate()
    reason[outside != ""] = outside[outside != ""]
    dropped = first.candidates & ~obs.candidates
    reason[dropped] = left_out_reason[dropped]
    reason[decision.scheduled] = ""
    decision = RoundDecision(
        scheduled=decision.scheduled, token_option=decision.token_option,
        bandwidth_hz=decision.bandwidth_hz, power_w=decision.power_w, reason=reason,
    )  # fmt: skip
    return obs, decision
