"""The cell's channel state: mobility → large-scale gain → block fading, advanced lazily.

Time is cut into fading blocks of ``T_b = sim.fading_block_s``; block ``n`` covers
``[n T_b, (n+1) T_b)`` and every device's gain is constant inside it. Blocks are computed in
order, for ALL devices at once (vectorized, several blocks per numpy call), the first time any
event asks for them, so the order of events can never change the numbers. Computing block ``n``:

1. advance mobility (``wsim.mobility``) in steps of ``sim.mobility_step_s`` up to ``n T_b``;
2. distance ``d = max(|pos|, min_distance_m)``; for UMa/UMi a LOS state drawn from
   ``los_probability(d)`` and redrawn once a device has moved ``shadowing_decorrelation_m``;
3. path loss ``pathloss_db(d, ...)`` and correlated shadowing (Gudmundson AR(1) in travelled
   distance) with σ = ``cell.shadowing_sigma_db`` for free_space/3gpp_macro and the TR 38.901
   LOS/NLOS σ for uma/umi (steps 1–3 only when a mobility step happened);
4. fading ``s[n] = ρ s[n−1] + sqrt(1−ρ²) w``, ``ρ = jakes_correlation(doppler_hz(v), T_b)``,
   ``h = h_LOS + a s`` — the model of :class:`channel_models.BlockFading`, drawn the same way
   (one ``[2, num_devices]`` standard-normal draw per block from the channel stream) but for a
   run of blocks per call (tests check it against ``BlockFading.advance`` block by block);
5. ``g = 10^(−(PL + X)/10) |h|²``.

Transfers. The rate of a link is piecewise constant, ``r_n = b log2(1 + p g_n / (N0 b))``.
The round declares its two links (:meth:`CellChannel.set_links`: the uplink's per-device
``(b_i, p_i)`` and the downlink share); for each, the channel keeps the cumulative bits
``C[i, n] = Σ_{m<n} r_m T_b`` of every device at the block starts, so a transfer's end time is
found by one search in its device's row: the block ``k`` where ``C`` crosses the target, then
``t_end = k T_b + (bits left at k) / r_k`` — the piecewise integral, exactly (up to round-off).
A transfer is resolved at most ``horizon_blocks`` blocks past the current simulated time (the
caller waits until then and continues), so the buffers hold at most about
``2 · horizon_blocks × num_devices`` values each: memory stays bounded for any run length.
:meth:`CellChannel.integrate` is the generic path for any ``(b, p)`` (tests, tools).

Outages (``faults.min_rate_bps > 0``; off by default, and then nothing below changes): a block
whose rate is below the minimum carries no bits (``r_n`` taken as 0 in ``C``, in the first and
last partial blocks and in :meth:`CellChannel.integrate`), and
:meth:`CellChannel.link_transfer_outage` also reports when a stall run reaches
``faults.outage_timeout_s`` (the rule of :mod:`wsim.sim.faults`); the vectorized
:meth:`CellChannel.link_transfer_many` leaves transfers that time out to it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from channel_models import (
    CorrelatedShadowing,
    complex_normal,
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
from wsim.sim.faults import any_timeout, first_timeout

FloatArray = npt.NDArray[np.float64]
LOS_MODELS = ("uma", "umi")
_MAX_CHUNK = 256  # most blocks fetched per vectorized step of a generic integration
_BLOCKS_PER_CALL = 32  # most blocks computed per vectorized channel step
_CELL_BUDGET = 2**21  # horizon_blocks × num_devices (per buffer) aimed at
HORIZON_BLOCKS = 1024  # upper bound of the horizon (small cells)
_MIN_HORIZON_BLOCKS = 64
_BOUNDARY_TOL = 1e-9  # a time this close (in blocks) below a boundary belongs to the next block
UPLINK, DOWNLINK = 0, 1


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
        t_end_s: When the last bit arrived, or where the transfer stopped (limit or horizon).
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


class _Fading:
    """Gauss–Markov block fading of all devices (the model of ``channel_models.BlockFading``).

    State: the scattered part ``s`` as ``[2, num_devices]`` (real, imaginary), the fixed LOS
    part and the scatter amplitude (Rayleigh: 0 and 1; Rician K: ``sqrt(K/(K+1)) e^{jφ}`` and
    ``sqrt(1/(K+1))``). Initial draws as ``BlockFading.__init__`` makes them.
    """

    def __init__(self, n: int, rng: np.random.Generator, k_factor_db: float | None) -> None:
        self._rng = rng
        self.is_rician = k_factor_db is not None
        self.los = np.zeros((2, n))
        self.amp = 1.0
        if k_factor_db is not None:
            k_lin = 10.0 ** (k_factor_db / 10.0)
            los = np.sqrt(k_lin / (k_lin + 1.0)) * np.exp(1j * rng.uniform(0.0, 2.0 * np.pi, n))
            self.los = np.stack([los.real, los.imag])
            self.amp = math.sqrt(1.0 / (k_lin + 1.0))
        s = complex_normal(rng, n)
        self.s = np.stack([s.real, s.imag])  # [2, num_devices]

    @property
    def h(self) -> npt.NDArray[np.complex128]:
        """Current complex coefficients ``[num_devices]``."""
        h = self.los + self.amp * self.s
        return h[0] + 1j * h[1]

    def power_gains(self, num_blocks: int, rho: FloatArray | None, advance_first: bool):
        """``|h|²`` of the next ``num_blocks`` blocks, ``[num_blocks, num_devices]``.

        Every block but (when ``advance_first`` is False) the first advances ``s`` by one
        Gauss–Markov step with the per-device ``rho``; ``rho`` None = no Doppler, no draws.
        """
        n = self.s.shape[1]
        # [num_blocks, 2, num_devices]
        s = np.empty((num_blocks, 2, n))
        steps = num_blocks - (0 if advance_first else 1)
        if rho is None or steps == 0:
            s[:] = self.s
        else:
            # w = (z0 + j z1) sqrt(1/2), scaled by sqrt(1 − ρ²): [steps, 2, num_devices]
            w = self._rng.standard_normal((steps, 2, n))
            w *= np.sqrt(1.0 - rho * rho) * math.sqrt(0.5)
            first = 0 if advance_first else 1
            if not advance_first:
                s[0] = self.s
            prev = self.s
            for k in range(first, num_blocks):
                np.multiply(prev, rho, out=s[k])
                s[k] += w[k - first]
                prev = s[k]
            self.s = s[-1].copy()
        if self.is_rician:
            h = self.los + self.amp * s
            return h[:, 0] ** 2 + h[:, 1] ** 2
        return s[:, 0] ** 2 + s[:, 1] ** 2


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
        # device-major buffers over blocks _base …: gains [N, cap], cumulative ∫g dt and
        # per-link cumulative bits at the block starts [N, cap + 1]
        cap = 2 * self.horizon_blocks + _BLOCKS_PER_CALL
        self._base = 0
        self._gains = np.empty((n, cap))
        self._cum_gain = np.zeros((n, cap + 1))
        self._links: list[tuple[FloatArray, FloatArray, FloatArray]] = []  # (b, coef, C)
        self._link_arrays: list[tuple[FloatArray, FloatArray]] = []
        self._link_b: list[list[float]] = []  # per link, per device: b (Hz) and p / (N0 b)
        self._link_coef: list[list[float]] = []
        # per mobility segment: first block, distance, speed, large-scale gain, rho
        self._seg_start: list[int] = []
        self._seg: list[tuple[FloatArray, FloatArray]] = []
        self._lin = np.ones(n)
        self._rho: FloatArray | None = None

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
            self._seg.append((dist, speed))
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
        """Compute blocks ``_num_computed …`` (at most ``_BLOCKS_PER_CALL``, never past ``upto``)."""
        n = self._num_computed
        k = min(self._new_segment(n), upto - n + 1)
        self._reserve(n + k - 1)
        small: FloatArray | float = 1.0
        if self._fading is not None:
            small = self._fading.power_gains(k, self._rho, advance_first=n > 0)
        # [k, num_devices]
        gain = np.broadcast_to(self._lin * small, (k, self.num_devices))
        c = n - self._base
        self._gains[:, c : c + k] = gain.T
        cum = np.cumsum(gain.T, axis=1)
        cum *= self.block_s
        cum += self._cum_gain[:, c : c + 1]
        self._cum_gain[:, c + 1 : c + 1 + k] = cum
        for b, coef, bits in self._links:
            self._cum_rate(gain.T, b, coef, bits, c)
        self._num_computed = n + k

    def _cum_rate(
        self, gain_t: FloatArray, b: FloatArray, coef: FloatArray, cum_bits: FloatArray, c: int
    ) -> None:
        """Cumulative bits of a link over the columns of ``gain_t`` ``[N, k]`` from column c."""
        rate = np.multiply(gain_t, coef[:, None])
        rate += 1.0
        np.log2(rate, out=rate)
        if self.min_rate_bps > 0:  # outage: no progress in a block below the minimum rate
            rate[rate * b[:, None] < self.min_rate_bps] = 0.0
        rate *= (b * self.block_s)[:, None]
        np.cumsum(rate, axis=1, out=rate)
        rate += cum_bits[:, c : c + 1]
        cum_bits[:, c + 1 : c + 1 + rate.shape[1]] = rate

    def _reserve(self, n: int) -> None:
        """Make room in the buffers for block ``n``: shift the kept blocks to the front (in
        place, cumulative columns rebased on the first kept block), or grow for long generic
        calls."""
        cap = self._gains.shape[1]
        if n - self._base < cap:
            return
        keep = self._first_block - self._base
        live = self._num_computed - self._first_block
        bufs = [self._gains, self._cum_gain] + [bits for _, _, bits in self._links]
        if n - self._first_block >= cap:  # only the generic path gets here: grow
            cap = 2 * (n - self._first_block + 1)
            new = []
            for i, buf in enumerate(bufs):
                out = np.empty((self.num_devices, cap + (i > 0)))
                out[:, : live + (i > 0)] = buf[:, keep : keep + live + (i > 0)]
                new.append(out)
            bufs = new
        else:
            for i, buf in enumerate(bufs):
                width = live + (i > 0)
                buf[:, :width] = buf[:, keep : keep + width]
        for buf in bufs[1:]:  # rebase the cumulative columns
            buf[:, : live + 1] -= buf[:, :1].copy()
        self._gains, self._cum_gain = bufs[0], bufs[1]
        self._links = [
            (b, coef, bits) for (b, coef, _), bits in zip(self._links, bufs[2:], strict=True)
        ]
        self._base = self._first_block
        self._prune_segments()

    def _prune_segments(self) -> None:
        i = bisect.bisect_right(self._seg_start, self._first_block) - 1
        if i > 0:
            del self._seg_start[:i], self._seg[:i]

    def _ensure(self, n: int) -> None:
        if n < self._first_block:
            raise ValueError(f"block {n} was released (first kept block {self._first_block})")
        while self._num_computed <= n:
            self._compute_blocks(n)

    # ------------------------------------------------------------------ links
    def set_links(
        self,
        uplink_bandwidth_hz: FloatArray,
        uplink_power_w: FloatArray,
        downlink_bandwidth_hz: float,
        downlink_power_w: float,
        noise_psd_w_per_hz: float,
        now_s: float,
    ) -> None:
        """Declare this round's uplink ``[N]`` and (shared) downlink allocation.

        Rates ``b log2(1 + g p / (N0 b))`` (0 where ``b`` or ``p`` is 0). Blocks before
        ``now_s`` are released; the kept blocks' cumulative bits are recomputed.
        """
        self.release_before(now_s)
        n = self.num_devices
        links = []
        for b, p in (
            (uplink_bandwidth_hz, uplink_power_w),
            (np.full(n, downlink_bandwidth_hz), np.full(n, downlink_power_w)),
        ):
            b, p = np.asarray(b, dtype=float), np.asarray(p, dtype=float)
            ok = (b > 0) & (p > 0)
            coef = np.where(ok, p / (noise_psd_w_per_hz * np.where(ok, b, 1.0)), 0.0)
            links.append((np.where(ok, b, 0.0), coef))
        self._link_arrays = links
        self._link_b = [b.tolist() for b, _ in links]
        self._link_coef = [coef.tolist() for _, coef in links]
        c0 = self._first_block - self._base
        c1 = self._num_computed - self._base
        old = [bits for _, _, bits in self._links]
        self._links = []
        for j, (b, coef) in enumerate(links):
            # reuse last round's buffers (same shape unless the buffers grew)
            bits = old[j] if j < len(old) and old[j].shape == self._cum_gain.shape else None
            if bits is None:
                bits = np.empty_like(self._cum_gain)
            bits[:, c0] = 0.0
            self._cum_rate(self._gains[:, c0:c1], b, coef, bits, c0)
            self._links.append((b, coef, bits))

    def link_transfer(
        self, link: int, device: int, bits: float, t0_s: float, t_limit_s: float, now_s: float
    ) -> tuple[float, float, bool, int, float]:
        """Send ``bits`` on a declared link from ``t0_s >= now_s``; exact end time.

        Stops at ``t_limit_s`` or at the horizon ``horizon_blocks`` past ``now_s``'s block,
        whichever comes first (the caller continues from there after waiting).

        Returns:
            ``(t_end_s, bits_sent, is_complete, num_blocks, mean_snr_lin)``.
        """
        bs = self.block_s
        if bits <= 0:
            return t0_s, 0.0, True, 0, math.nan
        b, coef = self._link_b[link][device], self._link_coef[link][device]
        if not b > 0:
            raise ValueError(f"device {device}: no link (no bandwidth or power this round)")
        first = int(t0_s / bs + _BOUNDARY_TOL)
        live = int(now_s / bs + _BOUNDARY_TOL)
        if live > self._first_block:
            self.release_before(now_s)
        t_stop = (live + self.horizon_blocks) * bs
        if t_limit_s < t_stop:
            t_stop = t_limit_s
        if first >= self._num_computed:
            self._ensure(first)
        g0 = self._gains.item(device, first - self._base)
        r0 = b * math.log2(1.0 + coef * g0)
        if r0 < self.min_rate_bps:  # an outage block (only with faults.min_rate_bps > 0)
            r0 = 0.0
        seg0 = min((first + 1) * bs, t_stop) - t0_s
        if r0 * seg0 >= bits:  # done in the first block
            return t0_s + bits / r0, bits, True, 1, coef * g0
        last = int(t_stop / bs + _BOUNDARY_TOL)
        if last > first:
            # bits left after the first block; the transfer ends in the first block k with
            # C[k + 1] >= C[first + 1] + need (looking ahead as far as r0 says, doubling)
            need = bits - r0 * seg0
            n, k = first + 1, last + 1
            reach = min(int(need / (r0 * bs)) + 4, 4 * _BLOCKS_PER_CALL) if r0 > 0 else 8
            while n <= last:
                ahead = min(last, max(self._num_computed - 1, n + reach))
                if ahead >= self._num_computed:
                    self._ensure(ahead)
                base = self._base
                cum = self._links[link][2]
                base_bits = cum.item(device, first - base + 1)
                k = int(cum[device, n - base + 1 : ahead - base + 2].searchsorted(base_bits + need))
                k += n
                if k <= ahead:
                    break
                n, reach = ahead + 1, 2 * reach
            if k <= last:  # ends in block k unless t_stop cuts it
                ck = k - base
                g = self._gains.item(device, ck)
                left = need - (cum.item(device, ck) - base_bits)
                t_end = k * bs + left / (b * math.log2(1.0 + coef * g))
                if t_end <= t_stop:
                    cum_g = self._cum_gain
                    gain_time = (
                        g0 * seg0
                        + (cum_g.item(device, ck) - cum_g.item(device, first - base + 1))
                        + g * (t_end - k * bs)
                    )
                    return t_end, bits, True, k - first + 1, coef * gain_time / (t_end - t0_s)
        # cut at t_stop (a limit or the horizon)
        return self._cut(link, device, first, t0_s, t_stop, r0, g0, coef, b)

    def link_transfer_many(
        self,
        link: int,
        devices: npt.NDArray[np.int64],
        bits: FloatArray,
        t0_s: FloatArray,
        t_limit_s: FloatArray,
        now_s: float,
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.int64], FloatArray]:
        """:meth:`link_transfer` for many devices at once (same formulas, vectorized).

        Resolves the transfers that complete before their limit and the horizon; the others
        (``is_complete`` False) are left to :meth:`link_transfer` (cut or continued).

        Returns:
            ``(t_end_s, is_complete, num_blocks, mean_snr_lin)``, ``[len(devices)]`` each.
        """
        bs, m = self.block_s, len(devices)
        t_end, blocks, snr = np.full(m, np.nan), np.zeros(m, np.int64), np.full(m, np.nan)
        if m == 0:
            return t_end, np.zeros(0, bool), blocks, snr
        live = int(now_s / bs + _BOUNDARY_TOL)
        if live > self._first_block:
            self.release_before(now_s)
        stop = np.minimum(t_limit_s, (live + self.horizon_blocks) * bs)
        first = np.floor(t0_s / bs + _BOUNDARY_TOL).astype(np.int64)
        self._ensure(int(first.max()))
        b, coef = self._link_arrays[link][0][devices], self._link_arrays[link][1][devices]
        if not np.all(b > 0):
            raise ValueError(f"devices {devices[~(b > 0)][:10].tolist()}: no link this round")
        g0 = self._gains[devices, first - self._base]
        r0 = b * np.log2(1.0 + coef * g0)
        if self.min_rate_bps > 0:
            r0[r0 < self.min_rate_bps] = 0.0
        seg0 = np.minimum((first + 1) * bs, stop) - t0_s
        done = r0 * seg0 >= bits
        t_end[done] = t0_s[done] + bits[done] / r0[done]
        blocks[done], snr[done] = 1, coef[done] * g0[done]
        empty = bits <= 0
        t_end[empty], blocks[empty], snr[empty] = t0_s[empty], 0, np.nan
        rest = np.flatnonzero(~done & (stop > (first + 1) * bs))
        if rest.size:
            need = bits[rest] - r0[rest] * seg0[rest]
            last = np.floor(stop[rest] / bs + _BOUNDARY_TOL).astype(np.int64)
            with np.errstate(divide="ignore"):
                reach = first[rest] + 2 * need / (r0[rest] * bs) + 8
            ahead = int(min(last.max(), max(np.max(np.minimum(reach, last)), first.max() + 1)))
            self._ensure(ahead)
            d, f1, base = devices[rest], first[rest] + 1 - self._base, self._base
            cum = self._links[link][2]
            base_bits = cum[d, f1]
            target = base_bits + need
            # first column whose cumulative bits reach the target (rows are nondecreasing
            # from the first kept block on)
            c_live = self._first_block - base
            col = c_live + (cum[d, c_live : ahead - base + 2] < target[:, None]).sum(axis=1)
            ck = np.minimum(col - 1, ahead - base)  # block k = ck + base ends at column col
            g = self._gains[d, ck]
            rk = b[rest] * np.log2(1.0 + coef[rest] * g)
            with np.errstate(divide="ignore", invalid="ignore"):
                end = (ck + base) * bs + (need - (cum[d, ck] - base_bits)) / rk
            ok = (col < ahead - base + 2) & (ck + base <= last) & (end <= stop[rest])
            idx = rest[ok]
            t_end[idx] = end[ok]
            blocks[idx] = (ck + base)[ok] - first[idx] + 1
            cum_g = self._cum_gain
            gain_time = (
                g0[idx] * seg0[idx]
                + (cum_g[d[ok], ck[ok]] - cum_g[d[ok], f1[ok]])
                + g[ok] * (end[ok] - (ck[ok] + base) * bs)
            )
            snr[idx] = coef[idx] * gain_time / (end[ok] - t0_s[idx])
            done[idx] = True
            if self.min_rate_bps > 0 and idx.size:  # timed out: left to the scalar path
                late = idx[self._timeouts_many(link, devices[idx], first[idx], t0_s[idx],
                                               t_end[idx], r0[idx] == 0)]  # fmt: skip
                t_end[late], blocks[late], snr[late], done[late] = np.nan, 0, np.nan, False
        return t_end, done, blocks, snr

    def _cut(
        self, link: int, device: int, first: int, t0: float, t_stop: float, r0, g0, coef, b
    ) -> tuple[float, float, bool, int, float]:
        bs = self.block_s
        seg0 = min((first + 1) * bs, t_stop) - t0
        if t_stop <= t0:
            return t0, 0.0, False, 0, math.nan
        if seg0 >= t_stop - t0:
            return t_stop, r0 * seg0, False, 1, coef * g0
        last = int(t_stop / bs + _BOUNDARY_TOL)
        self._ensure(last)
        c0, cl = first - self._base, last - self._base
        cum, cum_g = self._links[link][2][device], self._cum_gain[device]
        g = float(self._gains[device, cl])
        part = max(t_stop - last * bs, 0.0)
        r_last = b * math.log2(1.0 + coef * g)
        if r_last < self.min_rate_bps:
            r_last = 0.0
        sent = r0 * seg0 + float(cum[cl] - cum[c0 + 1]) + r_last * part
        gain_time = g0 * seg0 + float(cum_g[cl] - cum_g[c0 + 1]) + g * part
        blocks = last - first + (1 if part > 0 else 0)
        return t_stop, sent, False, blocks, coef * gain_time / (t_stop - t0)

    # ------------------------------------------------------------------ outages
    def link_transfer_outage(
        self,
        link: int,
        device: int,
        bits: float,
        t0_s: float,
        t_limit_s: float,
        now_s: float,
        stalled_since_s: float = math.nan,
    ) -> tuple[float, float, bool, int, float, bool, float]:
        """:meth:`link_transfer` with outage timeouts (``faults.min_rate_bps > 0``).

        A block whose rate is below ``min_rate_bps`` carries no bits (the cumulative bits stay
        flat there). A stall run that starts at ``s`` (``t0_s``, the start of a stalled block,
        or ``stalled_since_s`` when the transfer continues a stall from an earlier call) times
        out at ``s + outage_timeout_s`` if every block that overlaps ``[s, s + timeout)`` is
        stalled and that instant comes before the transfer completes and before ``t_limit_s``
        (a limit at the same instant wins).

        Returns:
            ``(t_end_s, bits_sent, is_complete, num_blocks, mean_snr_lin, timed_out,
            stall_start_s)``: on a timeout, ``t_end_s`` is the timeout instant and
            ``stall_start_s`` the start of the stall run; on a stop at the horizon,
            ``stall_start_s`` is the start of the stall in progress there (NaN if none).
        """
        res = self.link_transfer(link, device, bits, t0_s, t_limit_s, now_s)
        t_end, complete = res[0], res[2]
        if bits <= 0 or t_end <= t0_s:  # nothing happened: a stall in progress goes on
            return (*res, False, stalled_since_s)
        at_horizon = not complete and t_end < t_limit_s
        origin = stalled_since_s if stalled_since_s == stalled_since_s else t0_s
        if not at_horizon and t_end - origin <= self.outage_timeout_s:
            return (*res, False, math.nan)  # too short to hold a whole timeout
        bs = self.block_s
        first = int(t0_s / bs + _BOUNDARY_TOL)
        last = max(int(math.ceil(t_end / bs - _BOUNDARY_TOL)) - 1, first)
        b, coef = self._link_b[link][device], self._link_coef[link][device]
        r0 = b * math.log2(1.0 + coef * self._gains.item(device, first - self._base))
        stalled = self._stall_mask(link, np.array([device]), first, last, np.array([first]),
                                   np.array([r0 < self.min_rate_bps]))[0]  # fmt: skip
        t_out, start, tail = first_timeout(stalled, first, origin, t_end, bs, self.outage_timeout_s)
        if t_out is None:
            return (*res, False, tail if at_horizon else math.nan)
        cut = self.link_transfer(link, device, bits, t0_s, t_out, now_s)
        return (*cut, True, start)

    def _stall_mask(
        self,
        link: int,
        devices: npt.NDArray[np.int64],
        w0: int,
        w1: int,
        first: npt.NDArray[np.int64],
        first_stalled: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """Outage blocks ``w0 … w1`` of each transfer, ``[len(devices), w1 − w0 + 1]``.

        A block after a transfer's ``first`` block is stalled where the link's cumulative bits
        do not grow across it (exactly the blocks the integration makes no progress in); the
        first block is ``first_stalled`` (the rate that transfer used there); blocks before
        ``first`` are False.
        """
        base = self._base
        cum = self._links[link][2][devices, w0 - base : w1 - base + 2]
        # [num, w1 - w0 + 1]
        stalled = cum[:, 1:] == cum[:, :-1]
        cols = np.arange(w0, w1 + 1)
        stalled &= cols > first[:, None]
        stalled[cols == first[:, None]] = first_stalled
        return stalled

    def _timeouts_many(
        self,
        link: int,
        devices: npt.NDArray[np.int64],
        first: npt.NDArray[np.int64],
        t0_s: FloatArray,
        t_end_s: FloatArray,
        first_stalled: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """Which of these completed transfers (from ``t0_s`` to ``t_end_s``) hold a stall run
        that times out first (:func:`~wsim.sim.faults.any_timeout`)."""
        bs, timeout = self.block_s, self.outage_timeout_s
        long = np.flatnonzero(t_end_s - t0_s > timeout)
        out = np.zeros(len(devices), dtype=bool)
        if long.size == 0:
            return out
        last = np.ceil(t_end_s[long] / bs - _BOUNDARY_TOL).astype(np.int64) - 1
        w0, w1 = int(first[long].min()), int(max(last.max(), first[long].max()))
        stalled = self._stall_mask(link, devices[long], w0, w1, first[long], first_stalled[long])
        stalled &= np.arange(w0, w1 + 1) <= last[:, None]
        out[long] = any_timeout(stalled, w0, first[long], t0_s[long], t_end_s[long], bs, timeout)
        return out

    # ------------------------------------------------------------------ queries
    def block_index(self, t_s: float) -> int:
        """Index of the fading block containing time ``t_s`` (a time within 1e-9 blocks below
        a boundary counts as the next block, so float round-off never splits a block)."""
        return int(math.floor(t_s / self.block_s + _BOUNDARY_TOL))

    def horizon_end_s(self, t_s: float) -> float:
        """End of the ``horizon_blocks``-block window starting at ``t_s``'s block, s."""
        return (self.block_index(t_s) + self.horizon_blocks) * self.block_s

    def block(self, n: int) -> BlockState:
        """State of block ``n`` (computed on demand, in order, for all devices)."""
        self._ensure(n)
        dist, speed = self._seg[bisect.bisect_right(self._seg_start, n) - 1]
        return BlockState(
            gain_lin=self._gains[:, n - self._base].copy(), distance_m=dist, speed_mps=speed
        )

    def gains(self, device: int, first_block: int, num_blocks: int) -> FloatArray:
        """Gains of one device over blocks ``first_block …`` (``[num_blocks]``, a copy)."""
        self._ensure(first_block + num_blocks - 1)
        c = first_block - self._base
        return self._gains[device, c : c + num_blocks].copy()

    def state_at(self, t_s: float) -> BlockState:
        """All devices' state at simulated time ``t_s``."""
        return self.block(self.block_index(t_s))

    def release_before(self, t_s: float) -> None:
        """Drop cached blocks that end before ``t_s`` (the simulated clock never goes back)."""
        keep_from = min(self.block_index(t_s), self._num_computed)
        if keep_from > self._first_block:
            self._first_block = keep_from

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
        """Send ``bits`` from ``t0_s`` at a piecewise-constant rate; exact end time (generic
        path for any ``(b, p)``, block by block with numpy; the engine uses the links).

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
            if self.min_rate_bps > 0:  # outage blocks carry no bits (no timeouts here)
                rates = np.where(rates < self.min_rate_bps, 0.0, rates)
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
