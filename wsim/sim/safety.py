"""Numerical safety and the deadline sanity check (issue 10).

- :func:`check_deadline`: a finite round deadline shorter than the shortest compute any device
  could do in a round (its local iterations at the cheapest token option, plus the server's
  share) is a scenario error (``ConfigError`` naming ``sim.round_deadline_s``), not a run in
  which every device straggles.
- :func:`check_round_finite`: after each round, the round's decisions, clock, batteries,
  metrics and new trace rows must be finite (rates and SNRs may be NaN = "not applicable", which
  the result files store as missing values, never as NaN or inf); otherwise the run stops with a
  :class:`SimulationError` that names the round and the quantity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from wsim.config import ConfigError
from wsim.round_api import SimulationError

if TYPE_CHECKING:
    from wsim.sim.world import World

_FINITE_EVENT_COLUMNS = ("t_start_s", "t_end_s", "bytes", "energy_j", "flops")
_NOT_INF_EVENT_COLUMNS = ("bandwidth_hz", "power_w", "rate_bps", "snr_db")
_FINITE_ROUND_FIELDS = ("t_start_s", "t_end_s", "battery_j", "bandwidth_hz", "power_w")


__all__ = ["SimulationError", "check_deadline", "check_round_finite", "shortest_round_compute_s"]


def shortest_round_compute_s(world: World) -> float:
    """The least compute time any device needs for one round, s.

    ``E · B · (min_j (F_fwd[j] + F_bwd[j]) · c_i / f_i + min_j F_srv[j] / F_server)`` minimized
    over devices ``i`` (``E`` local iterations of ``B`` samples; FLOP figures per sample from the
    workload profile).
    """
    profile = world.workload.profile()
    sc = world.scenario
    per_round = sc.sim.local_iters * float(profile.batch_size)
    device_flops = np.min(profile.array("client_fwd_flops") + profile.array("client_bwd_flops"))
    fleet = world.fleet
    device_s = np.min(device_flops * fleet.cycles_per_flop / fleet.cpu_hz)
    server_s = np.min(profile.server_flops) / sc.server.flops_per_s
    return float(per_round * (device_s + server_s))


def check_deadline(world: World) -> None:
    """Raise ``ConfigError`` if the round deadline is shorter than any device's compute.

    Raises:
        ConfigError: ``sim.round_deadline_s`` < :func:`shortest_round_compute_s`.
    """
    deadline = world.scenario.sim.round_deadline_s
    if not np.isfinite(deadline):
        return
    least = shortest_round_compute_s(world)
    if deadline < least:
        raise ConfigError(
            f"sim.round_deadline_s: must be >= {least:.6g} s, the shortest compute any device "
            f"needs for a round (sim.local_iters x data.batch_size samples at the fastest CPU and "
            f"the cheapest token option, plus the server's part), got {deadline:g}"
        )


def _bad(values: np.ndarray, finite: bool) -> bool:
    values = np.asarray(values, dtype=float)
    return bool(np.any(~np.isfinite(values) if finite else np.isinf(values)))


def check_round_finite(world: World, round: int, first_row: int) -> int:
    """Check round ``round``'s record and its trace rows from ``first_row`` on; return the
    trace length (the next round's ``first_row``).

    Raises:
        SimulationError: A NaN or inf where a number is required (names the round).
    """
    rec = world.rounds.rounds[-1]
    bad = [name for name in _FINITE_ROUND_FIELDS if _bad(rec[name], True)]
    sc = world.scenario
    evaluated = round == sc.sim.num_rounds - 1 or (round + 1) % sc.sim.eval_every == 0
    # a surrogate without a measured learning curve reports no accuracy, on purpose
    evaluated = evaluated and not getattr(world.workload, "accuracy_note", "")
    if (evaluated and not np.isfinite(rec["accuracy"])) or np.isinf(rec["loss"]):
        bad.append(f"evaluation (accuracy {rec['accuracy']}, loss {rec['loss']})")
    cols = world.events.columns_since(first_row)
    bad += [f"events.{c}" for c in _FINITE_EVENT_COLUMNS if _bad(cols[c], True)]
    bad += [f"events.{c}" for c in _NOT_INF_EVENT_COLUMNS if _bad(cols[c], False)]
    if bad:
        raise SimulationError(
            f"round {round}: non-finite value in {', '.join(bad)}; the run is stopped "
            "(diverged training or a solver/physics failure; try a smaller train.lr)"
        )
    return first_row + len(cols["round"])
