"""Per-round fault draws (``[faults]``, issue 10): device leaves and server slowdowns.

All fault randomness comes from the ``faults`` stream, so a scenario with every fault off draws
nothing and its numbers are exactly those of a run without this module, and turning faults on
never shifts the channel, mobility or device streams. When any fault is on, every round draws,
in this fixed order and whatever the schedule: one uniform ``u`` (the server slowdown, on when
``u < server_slowdown_prob``) and ``num_devices`` standard exponentials ``e_i`` (device ``i``
leaves at ``t_start + e_i / leave_rate_per_s``, never when the rate is 0). The same seed gives
the same faults; changing one fault's rate rescales its draws without moving the other's.

Outages (``min_rate_bps``, ``outage_timeout_s``) are not drawn: they follow from the channel
(:func:`wsim.sim.transfer.send`, which applies the timeout rule of :func:`first_timeout` to a
transfer's outage blocks).

The timeout rule: a stall run that starts at ``s`` (the transfer's start, the start of an outage
block, or where an earlier stretch of the same transfer left a stall in progress) times out at
``s + timeout`` if every fading block that overlaps ``[s, s + timeout)`` is an outage block, i.e.
the run reaches block ``ceil((s + timeout) / T_b) − 1`` (block times within 1e-9 blocks of a
boundary snap to it, as in :meth:`~wsim.sim.channel_state.CellChannel.block_index`), and that
instant comes before the transfer ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wsim.config import FaultsConfig

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_BOUNDARY_TOL = 1e-9  # as wsim.sim.channel_state: a time this close below a boundary is past it


@dataclass(frozen=True, eq=False)
class RoundFaults:
    """One round's fault draws.

    Attributes:
        server_slowdown: Factor on the edge server's compute times this round (1 = none).
        leave_at_s: ``[num_devices]`` absolute simulated time each device leaves its round, s
            (inf = it stays).
    """

    server_slowdown: float
    leave_at_s: FloatArray


def draw_round_faults(
    cfg: FaultsConfig, rng: np.random.Generator, num_devices: int, t_start_s: float
) -> RoundFaults | None:
    """The faults of a round starting at ``t_start_s`` (None, and no draw, when all are off).

    Args:
        cfg: The scenario's ``[faults]``.
        rng: The ``faults`` stream.
        num_devices: Fleet size (every device draws, scheduled or not).
        t_start_s: Round start, simulated s.
    """
    if not cfg.any:
        return None
    u = rng.random()
    # [num_devices]
    e = rng.standard_exponential(num_devices)
    slowed = u < cfg.server_slowdown_prob and cfg.server_slowdown_factor > 1
    rate = cfg.leave_rate_per_s
    leave = t_start_s + e / rate if rate > 0 else np.full(num_devices, math.inf)
    return RoundFaults(cfg.server_slowdown_factor if slowed else 1.0, leave)


def first_timeout(
    stalled: BoolArray, first: int, origin_s: float, t_end_s: float, block_s: float,
    timeout_s: float,
) -> tuple[float | None, float, float]:  # fmt: skip
    """The first timeout of one transfer's stall runs (the rule in the module docstring).

    Args:
        stalled: ``[num_blocks]`` outage flags of blocks ``first, first + 1, …``.
        first: Index of the transfer's first block.
        origin_s: Start of a run that begins at block ``first`` (the transfer's start, or the
            start of a stall carried over from an earlier stretch), s.
        t_end_s: Where the transfer ends (completes or stops), s; a timeout must come before.
        block_s: Fading block length ``T_b``, s.
        timeout_s: ``outage_timeout_s``, s.

    Returns:
        ``(timeout instant or None, start of its run, start of the run in progress at the last
        block or NaN)``, s.
    """
    edges = np.diff(stalled.astype(np.int8), prepend=0, append=0)
    starts = np.flatnonzero(edges == 1)
    if starts.size == 0:
        return None, math.nan, math.nan
    ends = np.flatnonzero(edges == -1) - 1
    s = (starts + first) * block_s
    if starts[0] == 0:
        s[0] = origin_s
    need = np.ceil((s + timeout_s) / block_s - _BOUNDARY_TOL) - 1
    hit = np.flatnonzero((ends + first >= need) & (s + timeout_s < t_end_s))
    tail = float(s[-1]) if stalled[-1] else math.nan
    if hit.size == 0:
        return None, math.nan, tail
    j = int(hit[0])
    return float(s[j] + timeout_s), float(s[j]), tail
