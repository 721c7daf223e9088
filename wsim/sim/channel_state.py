"""The cell's channel state: mobility → large-scale gain → block fading, advanced lazily.

Time is cut into fading blocks of ``T_b = sim.fading_block_s``; block ``n`` covers
``[n T_b, (n+1) T_b)`` and every device's gain is constant inside it. Blocks are computed in
order, for ALL devices at once (several blocks per call), the first time any
event asks for them, so the order of events can never change the numbers. Computing block ``n``:

1. advance mobility (``wsim.mobility``) in steps of ``sim.mobility_step_s`` up to ``n T_b``;
2. distance ``d = max(|pos|, min_distance_m)``; for UMa/UMi a LOS state drawn from
   ``los_probability(d)`` and redrawn once a device has moved ``shadowing_decorrelation_m``;
3. path loss ``pathloss_db(d, ...)`` and correlated shadowing (Gudmundson AR(1) in travelled
   distance) with σ = ``cell.shadowing_sigma_db`` for free_space/3gpp_macro and the TR 38.901
   LOS/NLOS σ for uma/umi (steps 1–3 only when a mobility step happened);
4. fading ``s[n] = ρ s[n−1] + sqrt(1−ρ²) w``, ``ρ = jakes_correlation(doppler_hz(v), T_b)``,
   ``h = h_LOS + a s`` — the model of :class:`channel_models.BlockFading`, drawn the same way
   (one ``[2, num_devices]`` float32 uniform draw per block from the channel stream, Box–Muller:
   :func:`channel_models.complex_normal_parts`) but for a run of blocks per call
   (:func:`wsim.sim.kernels.fading_gains`; tests check it against ``BlockFading.advance``
   block by block);
5. ``g = 10^(−(PL + X)/10) |h|²`` into a device-major buffer ``[num_devices, blocks]`` (float32
   under random fading, float64 without).

Transfers over this state are integrated by :func:`wsim.sim.transfer.send` (the link passed
explicitly), at most ``horizon_blocks`` blocks past the current simulated time, so the buffer
holds at most about ``2 · horizon_blocks × num_devices`` gains: memory stays bounded for any run
length. :meth:`CellChannel.blocks` hands it the buffer.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from channel_models import (
    CorrelatedShadowing,
    complex_normal_parts,
    doppler_hz,
    jakes_correlation,
    los_probability,
    pathloss_db,
    shadowing_sigma_db,
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
from wsim.sim import kernels

FloatArray = npt.NDArray[np.float64]
LOS_MODELS = ("uma", "umi")
_BLOCKS_PER_CALL = 32  # most blocks computed per vectorized channel step
_CELL_BUDGET = 2**21  # horizon_blocks × num_devices aimed at
HORIZON_BLOCKS = 1024  # upper bound of the horizon (small cells)
_MIN_HORIZON_BLOCKS = 64
_SHIFT_ROWS = 256  # devices per chunk when the buffer shifts
_BOUNDARY_TOL = kernels.BOUNDARY_TOL  # clock resolution, in blocks
UPLINK, DOWNLINK = 0, 1


@dataclass(frozen=True, eq=False)
class BlockState:
    """All devices' state in one fading block, ``[num_devices]`` each."""

    gain_lin: FloatArray
    distance_m: FloatArray
    speed_mps: FloatArray
    large_scale_lin: FloatArray  # path loss and shadowing only (the mean of gain_lin)


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


class _Fading:
    """Gauss–Markov block fading of all devices (the model of ``channel_models.BlockFading``):
    float64 state and ``ρ`` (float32 would quantize ``1 − ρ`` in steps of 6e-8 and freeze
    the fading of very slow devices), float32 innovation draws.

    State: the scattered part ``s`` as ``[2, num_devices]`` (real, imaginary), the fixed LOS
    part and the scatter amplitude (Rayleigh: 0 and 1; Rician K: ``sqrt(K/(K+1)) e^{jφ}`` and
    ``sqrt(1/(K+1))``). Draws as ``BlockFading`` makes them (:func:`complex_normal_parts`).
    """

    def __init__(self, n: int, rng: np.random.Generator, k_factor_db: float | None) -> None:
        self._rng = rng
        self.los = np.zeros((2, n))
        self.amp = 1.0
        if k_factor_db is not None:
            k_lin = 10.0 ** (k_factor_db / 10.0)
            los = np.sqrt(k_lin / (k_lin + 1.0)) * np.exp(1j * rng.uniform(0.0, 2.0 * np.pi, n))
            self.los = np.stack([los.real, los.imag])
            self.amp = math.sqrt(1.0 / (k_lin + 1.0))
        re, im = complex_normal_parts(rng, 1, n)
        self.s = np.concatenate([re, im]).astype(np.float64)  # [2, num_devices]

    @property
    def h(self) -> npt.NDArray[np.complex128]:
        """Current complex coefficients ``[num_devices]``."""
        h = self.los + self.amp * self.s
        return h[0] + 1j * h[1]

    def gains_into(
        self,
        pieces: list[tuple[int, FloatArray, FloatArray | None]],
        advance_first: bool,
        out: npt.NDArray[np.floating],
        col: int,
    ) -> None:
        """Gains ``lin |h|²`` of the next blocks into ``out[:, col : col + Σ count]``.

        ``pieces``: runs of ``count`` blocks sharing a large-scale gain ``lin`` and a
        per-device ``rho`` (a mobility step); every block but (when ``advance_first`` is
        False) the first advances ``s`` by one Gauss–Markov step with its ``rho``; ``rho``
        None = no Doppler: no step, no draws. One float32 innovation draw for all advancing
        blocks (:func:`complex_normal_parts`), then :func:`wsim.sim.kernels.fading_gains`.
        """
        n = self.s.shape[1]
        skip = 0 if advance_first else 1  # blocks at the start that do not advance
        steps = sum(max(count - (skip if i == 0 else 0), 0)
                    for i, (count, _, rho) in enumerate(pieces) if rho is not None)  # fmt: skip
        if steps:
            w_re, w_im = complex_normal_parts(self._rng, steps, n)
        else:
            w_re = w_im = np.zeros((0, n), dtype=np.float32)
        one = np.ones(n)
        rhos = np.stack([one if rho is None else rho for _, _, rho in pieces])
        scales = np.sqrt(1.0 - rhos * rhos)
        lins = np.stack([lin for _, lin, _ in pieces])
        kernels.fading_gains(
            self.s, self.los, self.amp, w_re, w_im,
            np.array([count for count, _, _ in pieces], dtype=np.int64),
            np.array([rho is not None for _, _, rho in pieces]), rhos, scales, lins, skip,
            out, col,
        )  # fmt: skip


class CellChannel:
    """Lazily advanced channel state of every device in the cell (see the module docstring)."""

    def __init__(self, scenario: Scenario, streams: RngStreams) -> None:
        self.cell = scenario.cell
        self.block_s = scenario.sim.fading_block_s
        self.mobility_step_s = scenario.sim.mobility_step_s
        self.ut_height_m = scenario.devices.ut_height_m
        self.min_rate_bps = scenario.faults.min_rate_bps  # below it a block is an outage
        self.outage_timeout_s = scenario.faults.outage_timeout_s
        n = scenario.devices.num_devices
        self.num_devices = n
        self.horizon_blocks = int(min(HORIZON_BLOCKS, max(_MIN_HORIZON_BLOCKS, _CELL_BUDGET // n)))
        self._params = mobility_params(scenario)
        self._mob_rng = streams.mobility
        self._los_rng = streams.child("channel.los")
        self.mobility = init_mobility(self._params, n, self._mob_rng)
        self._num_steps = 0
        self._shadow_unit = CorrelatedShadowing(
            n, 1.0, self.cell.shadowing_decorrelation_m, streams.shadowing
        )
        self._fading: _Fading | None = None
        if self.cell.fading != "none":
            k_db = self.cell.rician_k_db if self.cell.fading == "rician" else None
            self._fading = _Fading(n, streams.channel, k_db)
        self._is_los = np.zeros(n, dtype=bool)
        self._los_anchor_m = self.mobility.position_m.copy()
        self._num_computed = 0
        self._first_block = 0  # first kept block (earlier ones were released)
        self._release_to = 0  # blocks before it are released as soon as they are computed
        # device-major gains [N, cap] over blocks _base …
        cap = 2 * self.horizon_blocks + _BLOCKS_PER_CALL
        self._base = 0
        # random fading: gains in float32 (7 digits, far inside the model's spread; half the
        # memory traffic); without fading float64, so transfers match closed forms to 1e-12
        self._dtype = np.float64 if self._fading is None else np.float32
        self._gains = np.empty((n, cap), dtype=self._dtype)
        # per mobility step: its first block, the devices' distance, speed, large-scale gain
        self._seg_start: list[int] = []
        self._seg: list[tuple[FloatArray, FloatArray, FloatArray]] = []
        self._lin = np.ones(n)
        self._rho: FloatArray | None = None

    # ------------------------------------------------------------------ block computation
    def _advance_mobility(self, t_s: float) -> FloatArray:
        """Step mobility up to time ``t_s``; return the distance each device moved, m."""
        before = self.mobility
        while (self._num_steps + 1) * self.mobility_step_s <= t_s * (1 + 1e-12):
            self.mobility = step_mobility(
                self.mobility, self._params, self.mobility_step_s, self._mob_rng
            )
            self._num_steps += 1
        if self.mobility is before:  # no step taken (or a static model): nobody moved
            return np.zeros(self.num_devices)
        delta = self.mobility.position_m - before.position_m
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
            exponent=self.cell.pathloss_exponent,
        )
        return pl + sigma * shadow_unit

    def _new_segment(self, n: int) -> int:
        """Advance mobility to block ``n``; return how many blocks from ``n`` share its state."""
        steps_before = self._num_steps
        moved = self._advance_mobility(n * self.block_s)
        if n == 0 or self._num_steps != steps_before:
            dist = np.maximum(distance_m(self.mobility), self.cell.min_distance_m)
            loss_db = self._large_scale_db(moved, dist, first=n == 0)
            self._lin = np.power(10.0, -loss_db / 10.0)
            speed = speed_mps(self.mobility)
            self._seg_start.append(n)
            self._seg.append((dist, speed, self._lin))
            # no Doppler anywhere: rho = J0(0) = 1, the fading stays put (no draws needed)
            self._rho = (
                np.asarray(jakes_correlation(doppler_hz(speed, self.cell.carrier_hz), self.block_s))
                if np.any(speed > 0)
                else None
            )
        k, next_step_s = 1, (self._num_steps + 1) * self.mobility_step_s
        while k < _BLOCKS_PER_CALL and not next_step_s <= (n + k) * self.block_s * (1 + 1e-12):
            k += 1
        return k

    def _compute_blocks(self, upto: int) -> None:
        """Compute blocks ``_num_computed …`` (at most ``_BLOCKS_PER_CALL``, never past
        ``upto``): per mobility step its large-scale gain and Doppler, then the fading of all
        of them in one call."""
        n0 = self._num_computed
        self._first_block = max(self._first_block, min(self._release_to, n0))
        total = min(_BLOCKS_PER_CALL, upto - n0 + 1)
        pieces, n = [], n0  # (blocks, large-scale gain, rho) per mobility step
        while n < n0 + total:
            k = min(self._new_segment(n), n0 + total - n)
            pieces.append((k, self._lin, self._rho))
            n += k
        self._reserve(n0 + total - 1)
        c = n0 - self._base
        if self._fading is None:
            for k, lin, _ in pieces:
                self._gains[:, c : c + k] = lin[:, None]
                c += k
        else:
            self._fading.gains_into(pieces, n0 > 0, self._gains, c)
        self._num_computed = n0 + total

    def _reserve(self, n: int) -> None:
        """Make room in the buffer for block ``n``: shift the kept blocks to the front (in
        place), or grow for long generic calls."""
        cap = self._gains.shape[1]
        if n - self._base < cap:
            return
        keep = self._first_block - self._base
        live = self._num_computed - self._first_block
        if n - self._first_block >= cap:  # only the generic path gets here: grow
            grown = np.empty((self.num_devices, 2 * (n - self._first_block + 1)), self._dtype)
            grown[:, :live] = self._gains[:, keep : keep + live]
            self._gains = grown
        else:  # row chunks: numpy copies overlapping views through a temporary, keep it small
            g = self._gains
            for r in range(0, self.num_devices, _SHIFT_ROWS):
                g[r : r + _SHIFT_ROWS, :live] = g[r : r + _SHIFT_ROWS, keep : keep + live]
        self._base = self._first_block
        self._prune_segments()

    def _prune_segments(self) -> None:
        i = bisect.bisect_right(self._seg_start, self._first_block) - 1
        if i > 0:
            del self._seg_start[:i], self._seg[:i]

    def _ensure(self, n: int) -> None:
        """Compute blocks up to ``n``; a block before the release point is an error."""
        kept = max(self._first_block, self._release_to)
        if n < kept:
            raise ValueError(f"block {n} was released (first kept block {kept})")
        while self._num_computed <= n:
            self._compute_blocks(n)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """The state with only the kept blocks ``_first_block …`` and their mobility steps (no
        released blocks, no unused capacity: :meth:`__setstate__` restores that)."""
        state = self.__dict__.copy()
        lo, hi = self._first_block - self._base, self._num_computed - self._base
        state["_gains"] = np.ascontiguousarray(self._gains[:, lo:hi])
        state["_capacity"] = self._gains.shape[1]
        state["_base"] = self._first_block
        i = max(bisect.bisect_right(self._seg_start, self._first_block) - 1, 0)
        state["_seg_start"], state["_seg"] = self._seg_start[i:], self._seg[i:]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        kept = state.pop("_gains")
        capacity = state.pop("_capacity")
        self.__dict__.update(state)
        self._gains = np.empty((self.num_devices, max(capacity, kept.shape[1])), kept.dtype)
        self._gains[:, : kept.shape[1]] = kept

    # ------------------------------------------------------------------ queries
    def block_index(self, t_s: float) -> int:
        """Index of the fading block containing time ``t_s`` (a time within 1e-9 blocks below
        a boundary counts as the next block, so float round-off never splits a block)."""
        return int(math.floor(t_s / self.block_s + _BOUNDARY_TOL))

    def horizon_end_s(self, t_s: float) -> float:
        """End of the ``horizon_blocks``-block window starting at ``t_s``'s block, s."""
        return (self.block_index(t_s) + self.horizon_blocks) * self.block_s

    def blocks(self, first: int, last: int) -> tuple[npt.NDArray[np.floating], int]:
        """The gains buffer holding blocks ``first … last`` (computed on demand) and the block
        of its column 0: ``(gains [num_devices, cap], base)``.

        Raises:
            ValueError: ``first`` was released (a start before the simulated clock).
        """
        self._ensure(first)
        self._ensure(last)
        return self._gains, self._base

    def block(self, n: int) -> BlockState:
        """State of block ``n`` (computed on demand, in order, for all devices)."""
        self._ensure(n)
        dist, speed, lin = self._seg[bisect.bisect_right(self._seg_start, n) - 1]
        return BlockState(
            gain_lin=self._gains[:, n - self._base].astype(np.float64),
            distance_m=dist,
            speed_mps=speed,
            large_scale_lin=lin,
        )

    def gains(self, device: int, first_block: int, num_blocks: int) -> FloatArray:
        """Gains of one device over blocks ``first_block …`` (``[num_blocks]``, a copy)."""
        self._ensure(first_block)  # raises for a released block
        self._ensure(first_block + num_blocks - 1)
        c = first_block - self._base
        return self._gains[device, c : c + num_blocks].astype(np.float64)

    def state_at(self, t_s: float) -> BlockState:
        """All devices' state at simulated time ``t_s``."""
        return self.block(self.block_index(t_s))

    def release_before(self, t_s: float) -> None:
        """Drop cached blocks that end before ``t_s`` (the simulated clock never goes back);
        ones not computed yet are dropped as soon as they are (a clock far ahead of the
        computed blocks never makes the buffer keep the blocks in between)."""
        self._release_to = max(self._release_to, self.block_index(t_s))
        keep_from = min(self._release_to, self._num_computed)
        if keep_from > self._first_block:
            self._first_block = keep_from
