"""The cell's channel state: mobility → large-scale gain → block fading, advanced lazily.

Time is cut into fading blocks of ``T_b = sim.fading_block_s``; block ``n`` covers
``[n T_b, (n+1) T_b)`` and every device's gain is constant inside it. Blocks are computed in
order, for ALL devices at once (vectorized), the first time any event asks for them, so the
order of events at a block boundary can never change the numbers. Computing block ``n``:

1. advance mobility (``wsim.mobility``) in steps of ``sim.mobility_step_s`` up to ``n T_b``;
2. distance ``d = max(|pos|, min_distance_m)``; for UMa/UMi a LOS state drawn from
   ``los_probability(d)`` and redrawn once a device has moved ``shadowing_decorrelation_m``;
3. path loss ``pathloss_db(d, ...)`` and correlated shadowing (Gudmundson AR(1) in travelled
   distance) with σ = ``cell.shadowing_sigma_db`` for free_space/3gpp_macro and the TR 38.901
   LOS/NLOS σ for uma/umi;
4. fading ``h[n] = ρ h[n−1] + sqrt(1−ρ²) w``, ``ρ = jakes_correlation(doppler_hz(v), T_b)``;
5. ``g = 10^(−(PL + X)/10) |h|²``.

A transfer integrates the piecewise-constant rate ``r_n = b log2(1 + p g_n / (N0 b))`` across
blocks, so its end time is exact for that rate. Blocks older than the current simulated time
are dropped; transfer processes integrate at most ``HORIZON_BLOCKS`` blocks per SimPy event, so
the cache holds at most that many blocks × devices.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from channel_models import (
    BlockFading,
    CorrelatedShadowing,
    channel_gain_lin,
    doppler_hz,
    jakes_correlation,
    los_probability,
    pathloss_db,
    shadowing_sigma_db,
    shannon_rate_bps,
)
from wsim.config import Scenario
from wsim.mobility import (
    MobilityParams,
    distance_m,
    init_mobility,
    speed_mps,
    step_mobility,
)
from wsim.rng import RngStreams

FloatArray = npt.NDArray[np.float64]
LOS_MODELS = ("uma", "umi")
_MAX_CHUNK = 256  # most blocks fetched per vectorized step of a transfer integration
HORIZON_BLOCKS = 256  # a transfer process integrates at most this many blocks per SimPy event
_BOUNDARY_TOL = 1e-9  # a time this close (in blocks) below a boundary belongs to the next block


@dataclass(frozen=True, eq=False)
class BlockState:
    """All devices' state in one fading block, ``[num_devices]`` each."""

    gain_lin: FloatArray
    distance_m: FloatArray
    speed_mps: FloatArray


@dataclass(frozen=True)
class TransferResult:
    """Outcome of integrating a transfer.

    Attributes:
        t_end_s: When the last bit arrived, or ``t_limit`` if the transfer was cut there.
        bits: Bits delivered by ``t_end_s``.
        is_complete: All requested bits delivered.
        num_blocks: Fading blocks the transfer spanned.
        mean_snr_lin: Time-weighted mean linear SNR (NaN for a zero-length transfer).
    """

    t_end_s: float
    bits: float
    is_complete: bool
    num_blocks: int
    mean_snr_lin: float


def mobility_params(scenario: Scenario) -> MobilityParams:
    """Mobility parameters of a scenario."""
    m, c = scenario.mobility, scenario.cell
    return MobilityParams(
        model=m.model,
        radius_m=c.radius_m,
        min_distance_m=c.min_distance_m,
        speed_mps=m.speed_mps,
        max_speed_mps=m.max_speed_mps,
        pause_s=m.pause_s,
        memory=m.memory,
        boundary=m.boundary,
        road_offset_m=m.road_offset_m,
    )


class CellChannel:
    """Lazily advanced channel state of every device in the cell (see the module docstring)."""

    def __init__(self, scenario: Scenario, streams: RngStreams) -> None:
        self.cell = scenario.cell
        self.block_s = scenario.sim.fading_block_s
        self.mobility_step_s = scenario.sim.mobility_step_s
        self.ut_height_m = scenario.devices.ut_height_m
        n = scenario.devices.num_devices
        self._params = mobility_params(scenario)
        self._mob_rng = streams.mobility
        self._los_rng = streams.child("channel.los")
        self.mobility = init_mobility(self._params, n, self._mob_rng)
        self._num_steps = 0
        self._shadow_unit = CorrelatedShadowing(
            n, 1.0, self.cell.shadowing_decorrelation_m, streams.shadowing
        )
        self._fading = None
        if self.cell.fading != "none":
            k_db = self.cell.rician_k_db if self.cell.fading == "rician" else None
            self._fading = BlockFading(n, streams.channel, k_factor_db=k_db)
        self._is_los = np.zeros(n, dtype=bool)
        self._los_anchor_m = self.mobility.position_m.copy()
        self._blocks: deque[BlockState] = deque()
        self._first_block = 0
        self._num_computed = 0
        # [capacity, num_devices] gains of blocks _buf_base … (rows before _first_block are stale)
        self._gains = np.empty((64, n))
        self._buf_base = 0
        self._dist = np.zeros(n)
        self._loss_db = np.zeros(n)

    # ------------------------------------------------------------------ block computation
    def _advance_mobility(self, t_s: float) -> FloatArray:
        """Step mobility up to time ``t_s``; return the distance each device moved, m."""
        start = self.mobility.position_m
        while (self._num_steps + 1) * self.mobility_step_s <= t_s * (1 + 1e-12):
            self.mobility = step_mobility(
                self.mobility, self._params, self.mobility_step_s, self._mob_rng
            )
            self._num_steps += 1
        delta = self.mobility.position_m - start
        return np.hypot(delta[:, 0], delta[:, 1])

    def _update_los(self, dist_m: FloatArray, first: bool) -> None:
        if self.cell.pathloss_model not in LOS_MODELS:
            return
        delta = self.mobility.position_m - self._los_anchor_m
        redraw = (
            np.ones_like(dist_m, dtype=bool)
            if first
            else (np.hypot(delta[:, 0], delta[:, 1]) > self.cell.shadowing_decorrelation_m)
        )
        if redraw.any():
            p_los = los_probability(
                dist_m[redraw], self.cell.pathloss_model, h_ut_m=self.ut_height_m
            )
            self._is_los[redraw] = self._los_rng.random(int(redraw.sum())) < p_los
            self._los_anchor_m[redraw] = self.mobility.position_m[redraw]

    def _large_scale_db(self, moved: FloatArray, dist: FloatArray, first: bool) -> FloatArray:
        """Path loss + shadowing in dB, ``[num_devices]`` (recomputed only after movement)."""
        self._update_los(dist, first=first)
        shadow_unit = self._shadow_unit.shadow_db if first else self._shadow_unit.advance(moved)
        model = self.cell.pathloss_model
        is_los = self._is_los if model in LOS_MODELS else None
        sigma = (
            shadowing_sigma_db(model, is_los)
            if model in LOS_MODELS
            else self.cell.shadowing_sigma_db
        )
        pl = pathloss_db(
            dist,
            model,
            self.cell.carrier_hz,
            is_los=is_los,
            h_bs_m=self.cell.bs_height_m,
            h_ut_m=self.ut_height_m,
        )
        return pl + sigma * shadow_unit

    def _compute_next_block(self) -> BlockState:
        n = self._num_computed
        steps_before = self._num_steps
        moved = self._advance_mobility(n * self.block_s)
        speed = speed_mps(self.mobility)
        if n == 0 or self._num_steps != steps_before:
            self._dist = np.maximum(distance_m(self.mobility), self.cell.min_distance_m)
            self._loss_db = self._large_scale_db(moved, self._dist, first=n == 0)
        small = 1.0
        if self._fading is not None:
            # no Doppler anywhere: rho = J0(0) = 1, the fading stays put (no draws needed)
            if n > 0 and np.any(speed > 0):
                rho = jakes_correlation(doppler_hz(speed, self.cell.carrier_hz), self.block_s)
                self._fading.advance(rho)
            small = self._fading.power_gain_lin
        gain = np.asarray(channel_gain_lin(self._loss_db, 0.0, small), dtype=float)
        self._num_computed += 1
        return BlockState(gain_lin=gain, distance_m=self._dist, speed_mps=speed)

    def _store(self, state: BlockState) -> None:
        """Append a block's gains to the 2-D buffer (compacting or growing it when full)."""
        row = self._num_computed - 1 - self._buf_base
        if row >= self._gains.shape[0]:
            live = self._gains[self._first_block - self._buf_base : row]
            capacity = self._gains.shape[0] * (2 if len(live) > self._gains.shape[0] // 2 else 1)
            self._gains = np.empty((capacity, self._gains.shape[1]))
            self._gains[: len(live)] = live
            self._buf_base = self._first_block
            row = self._num_computed - 1 - self._buf_base
        self._gains[row] = state.gain_lin
        self._blocks.append(state)

    # ------------------------------------------------------------------ queries
    def block_index(self, t_s: float) -> int:
        """Index of the fading block containing time ``t_s`` (a time within 1e-9 blocks below
        a boundary counts as the next block, so float round-off never splits a block)."""
        return int(math.floor(t_s / self.block_s + _BOUNDARY_TOL))

    def horizon_end_s(self, t_s: float) -> float:
        """End of the ``HORIZON_BLOCKS``-block window starting at ``t_s``'s block, s."""
        return (self.block_index(t_s) + HORIZON_BLOCKS) * self.block_s

    def _ensure(self, n: int) -> None:
        if n < self._first_block:
            raise ValueError(f"block {n} was released (first kept block {self._first_block})")
        while self._num_computed <= n:
            self._store(self._compute_next_block())

    def block(self, n: int) -> BlockState:
        """State of block ``n`` (computed on demand, in order, for all devices)."""
        self._ensure(n)
        return self._blocks[n - self._first_block]

    def gains(self, device: int, first_block: int, num_blocks: int) -> FloatArray:
        """Gains of one device over blocks ``first_block …`` (``[num_blocks]``, a copy)."""
        self._ensure(first_block + num_blocks - 1)
        row = first_block - self._buf_base
        return self._gains[row : row + num_blocks, device].copy()

    def state_at(self, t_s: float) -> BlockState:
        """All devices' state at simulated time ``t_s``."""
        return self.block(self.block_index(t_s))

    def release_before(self, t_s: float) -> None:
        """Drop cached blocks that end before ``t_s`` (the simulated clock never goes back)."""
        keep_from = min(self.block_index(t_s), self._num_computed)
        while self._first_block < keep_from and self._blocks:
            self._blocks.popleft()
            self._first_block += 1

    def integrate(
        self,
        device: int,
        bits: float,
        t0_s: float,
        bandwidth_hz: float,
        power_w: float,
        noise_psd_w_per_hz: float,
        t_limit_s: float = math.inf,
    ) -> TransferResult:
        """Send ``bits`` from ``t0_s`` at a piecewise-constant rate; exact end time.

        The transfer stops at ``t_limit_s`` if not done by then (``is_complete`` False).

        Raises:
            ValueError: Negative bits, or no link (zero bandwidth or power).
        """
        if not bits >= 0:
            raise ValueError(f"bits must be >= 0, got {bits!r}")
        if bits == 0:
            return TransferResult(t0_s, 0.0, True, 0, math.nan)
        if not (bandwidth_hz > 0 and power_w > 0):
            raise ValueError(
                f"device {device}: no link (bandwidth {bandwidth_hz} Hz, power {power_w} W)"
            )
        self.release_before(t0_s)
        n, remaining, t = self.block_index(t0_s), float(bits), t0_s
        num_blocks, snr_time, busy, chunk = 0, 0.0, 0.0, 4
        last = self.block_index(t_limit_s) if math.isfinite(t_limit_s) else math.inf
        while t < t_limit_s:
            # fetch a few blocks, then as many as the mean rate so far says (never past the limit)
            chunk = int(min(chunk, _MAX_CHUNK, last - n + 1))
            idx = np.arange(n, n + chunk)
            gains = self.gains(device, n, chunk)
            ends = np.minimum((idx + 1) * self.block_s, t_limit_s)
            starts = np.concatenate([[t], ends[:-1]])
            dur = np.maximum(ends - starts, 0.0)
            rates = shannon_rate_bps(bandwidth_hz, power_w, gains, noise_psd_w_per_hz)
            snrs = np.exp2(rates / bandwidth_hz) - 1.0  # γ from r = b log2(1 + γ)
            cum = np.cumsum(rates * dur)
            k = int(np.searchsorted(cum, remaining))  # first block that completes the transfer
            if k < chunk and dur[k] > 0:
                before = cum[k - 1] if k > 0 else 0.0
                t_end = float(starts[k] + (remaining - before) / rates[k])
                part = np.append(dur[:k], t_end - starts[k])
                snr_time += float(np.dot(snrs[: k + 1], part))
                busy += float(part.sum())
                num_blocks += k + 1
                return TransferResult(t_end, float(bits), True, num_blocks, snr_time / busy)
            used = dur > 0
            num_blocks += int(used.sum())
            snr_time += float(np.dot(snrs, dur))
            busy += float(dur.sum())
            remaining -= float(cum[-1])
            mean_rate = float(cum[-1]) / float(dur.sum()) if dur.sum() > 0 else 0.0
            estimate = remaining / (mean_rate * self.block_s) if mean_rate > 0 else 2 * chunk
            t, n, chunk = float(ends[-1]), n + chunk, int(min(1.25 * estimate, 1e9)) + 2
        mean_snr = snr_time / busy if busy > 0 else math.nan
        return TransferResult(
            float(t_limit_s), float(bits) - remaining, False, num_blocks, mean_snr
        )
