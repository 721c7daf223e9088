"""Fixed links evaluated at a round latency ``T``: power-cap bandwidth floors and the price split.

Re-implementation in the spirit of ST-SFLora's (b, p) step (arXiv 2605.26120; the formulation is
wsim's, DESIGN.md §5). With ``tau_i = T - C_i/f_i - T_fix,i`` and ``x_i = S_i ln2 / (tau_i b_i)``
every device sends at the lowest power meeting ``T``, ``p_i = expm1(x_i) N0 b_i / g_i``. Its power
cap ``P_i = min(p_max,i, (E_max,i - E_comp,i) / tau_i)`` reads ``expm1(x)/x <= m_i`` with
``m_i = min(p_max,i tau_i, E_max,i - E_comp,i) g_i / (N0 S_i ln2)``, i.e. ``x_i <= x_floor,i``:
the floor ``b_min,i = S_i ln2 / (tau_i x_floor,i)``. At a bandwidth price ``lambda`` (J/Hz) a
device takes ``b_i(lambda)`` (``x = G^{-1}(lambda / a_i)``, ``a_i = tau_i N0 / g_i``), clipped to
its floor; the floor binds exactly where ``expm1(x)/x > m_i``, so floors are inverted only for
those devices. No Python loop runs over devices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsim.optimizer.inverse import LN2, MAX_ARG, TABLES
from wsim.optimizer.split_kernels import finish_split, floor_into, price_root_into

BAND_SLACK = 1e-10  # sum b may exceed B by this fraction (root-finding tolerance)
ROOT_RTOL = 1e-10  # |log(sum b / B)| at which the price is accepted
_MAX_EXPONENT = 700.0  # expm1 overflow guard, as radio.min_power_w
_AT_POWER_RTOL = 1e-12


@dataclass(frozen=True)
class Links:
    """The scheduled devices at their chosen token option; every array is ``[n]``.

    Attributes:
        payload_bits: upload payload ``S_i`` (bits).
        busy_s: compute + fixed latency ``C_i / f_i + T_fix,i`` (s).
        compute_energy_j: ``kappa C_i f_i^2`` (J).
        gain_lin: channel gain ``g_i``.
        max_power_w: ``p_max,i`` (W).
        energy_budget_j: ``E_max,i`` (J).
    """

    payload_bits: np.ndarray
    busy_s: np.ndarray
    compute_energy_j: np.ndarray
    gain_lin: np.ndarray
    max_power_w: np.ndarray
    energy_budget_j: np.ndarray


@dataclass(frozen=True)
class Floor:
    """Power-cap floors at one ``T`` (s); arrays ``[n]``.

    Attributes:
        latency_s: ``T`` (s).
        upload_s: ``tau_i`` (s).
        ratio: ``m_i`` (power cap as ``expm1(x)/x``).
        x_nats: ``x_floor,i`` (nats/symbol; ``nan`` where there is no floor, ``m_i <= 1``).
        bandwidth_hz: ``b_min,i`` (Hz; ``inf`` where there is no floor).
    """

    latency_s: float
    upload_s: np.ndarray
    ratio: np.ndarray
    x_nats: np.ndarray
    bandwidth_hz: np.ndarray


@dataclass(frozen=True)
class Split:
    """The energy-minimising bandwidth split at one ``T``.

    Attributes:
        bandwidth_hz: ``b_i`` (Hz), ``[n]``.
        log_price: ``log lambda`` (``lambda`` in J/Hz).
        energy_j: ``sum_i E_tx,i`` (J).
        energy_slope_w: ``dE*/dT`` (W, envelope theorem).
        x_nats: ``x`` at the price before clipping, ``[n]`` (a warm start); None for floors only.
        energy_curvature_w_per_s: ``d2E*/dT2`` (W/s); ``nan`` for floors only.
        log_price_slope_per_s: ``d log lambda / dT`` (1/s); ``nan`` for floors only.
    """

    bandwidth_hz: np.ndarray
    log_price: float
    energy_j: float
    energy_slope_w: float
    x_nats: np.ndarray | None
    energy_curvature_w_per_s: float = np.nan
    log_price_slope_per_s: float = np.nan


class Uplink:
    """Per-device constants of fixed ``links`` (arrays ``[n]``) and their evaluations at ``T``."""

    def __init__(self, links: Links, n0: float) -> None:
        self.links = links
        self.bits_nats = links.payload_bits * LN2  # S ln2
        self.gain_per_n0 = links.gain_lin / n0  # g / N0 (1/J)
        per_joule = self.gain_per_n0 / self.bits_nats
        self.ratio_per_s = links.max_power_w * per_joule  # m = ratio_per_s tau at the power limit
        spare_j = np.maximum(links.energy_budget_j - links.compute_energy_j, 0.0)
        self.ratio_budget = spare_j * per_joule  # m at the energy budget

    @property
    def size(self) -> int:
        """Number of links ``n``."""
        return int(self.bits_nats.size)

    def floor(self, latency_s: float) -> Floor:
        """Floors ``b_min,i(T)``."""
        return self.floor_with_slope(latency_s)[0]

    def floor_with_slope(self, latency_s: float) -> tuple[Floor, float, float]:
        """Floors at ``T``, ``sum b_min`` (Hz) and ``d sum b_min / dT`` (Hz/s; ``floor_slope``
        summed; meaningful where the sum is finite), in one compiled pass
        (``split_kernels.floor_into``)."""
        shape = np.shape(self.bits_nats)  # [n], or [N, J] for an OptionTable's links
        tau, m, x, b = (np.empty(shape) for _ in range(4))
        total, slope = floor_into(
            float(latency_s),
            np.ravel(self.links.busy_s),
            np.ravel(self.ratio_per_s),
            np.ravel(self.ratio_budget),
            np.ravel(self.bits_nats),
            TABLES,
            MAX_ARG,
            _AT_POWER_RTOL,
            tau.reshape(-1),
            m.reshape(-1),
            x.reshape(-1),
            b.reshape(-1),
        )
        return Floor(float(latency_s), tau, m, x, b), total, slope

    def _floor_factor(
        self, upload_s: np.ndarray, x: np.ndarray, at: np.ndarray | slice
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Floor factor ``phi``, ``dE_tx/dT`` along the floor (W), ``d log phi / dT`` (1/s).

        For the devices ``at`` (``upload_s``, ``x``: their ``tau`` and ``x_floor``). At the
        power limit ``m`` grows like ``tau``: ``dx/dtau = x (phi - 1) / tau`` with
        ``phi = 1 + expm1(x) / G(x)`` (implicit differentiation of ``expm1(x)/x = m``) and
        ``E_tx = tau p_max`` grows at ``p_max``; at the energy budget ``m``, ``x`` are constant,
        ``phi = 1`` and ``E_tx`` is flat.
        """
        at_power = self.ratio_per_s[at] * upload_s <= self.ratio_budget[at] * (1.0 + _AT_POWER_RTOL)
        em1 = np.expm1(x)
        g_x = (x - 1.0) * em1 + x
        phi = np.where(at_power, 1.0 + em1 / g_x, 1.0)
        power = np.where(at_power, self.links.max_power_w[at], 0.0)
        dphi_dx = (em1 + 1.0) * (x - em1) / (g_x * g_x)
        dlog_phi = np.where(at_power, dphi_dx * x * (phi - 1.0) / (upload_s * phi), 0.0)
        return phi, power, dlog_phi

    def floor_slope(
        self, upload_s: np.ndarray, x: np.ndarray, b: np.ndarray, at: np.ndarray | slice
    ) -> tuple[np.ndarray, np.ndarray]:
        """``d b_min/dT`` (Hz/s) and ``dE_tx/dT`` along the floor (W) of the devices ``at``.

        ``x``, ``b`` are the floors' ``x_floor`` and ``b_min`` (``[n]``): ``b = S ln2 / (tau x)``
        gives ``db/dT = -phi b / tau`` (``_floor_factor``).
        """
        tau = upload_s[at]
        phi, power, _ = self._floor_factor(tau, x[at], at)
        return -b[at] / tau * phi, power

    def tx_energy_j(self, upload_s: np.ndarray, x: np.ndarray, b: np.ndarray) -> float:
        """``sum_i tau_i p_i`` (J) with ``p = expm1(x) N0 b / g``; ``inf`` if an ``x`` overflows."""
        if not (x < _MAX_EXPONENT).all():
            return np.inf
        return float((np.expm1(x) * b * upload_s / self.gain_per_n0).sum())

    def floor_split(self, floor: Floor) -> Split:
        """Every device at its floor; the price is the largest floor marginal ``max a_i G(x_i)``."""
        x, b, tau = floor.x_nats, floor.bandwidth_hz, floor.upload_s
        marginal = ((x - 1.0) * np.expm1(x) + x) * tau / self.gain_per_n0
        log_price = float(np.log(marginal.max()))
        slope, power = self.floor_slope(tau, x, b, slice(None))
        slope_w = float((power + np.exp(log_price) * slope).sum())
        return Split(b, log_price, self.tx_energy_j(tau, x, b), slope_w, None)

    def cold_log_price(self, latency_s: float, total_bandwidth_hz: float) -> float:
        """Median ``log`` marginal energy at the equal split ``b_i = B / n``: a cold start."""
        tau = latency_s - self.links.busy_s
        x = self.bits_nats * (self.size / total_bandwidth_hz) / tau
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            log_marginal = np.log(((x - 1.0) * np.expm1(x) + x) * tau / self.gain_per_n0)
        return float(np.median(log_marginal))

    def split(
        self,
        latency_s: float,
        total_bandwidth_hz: float,
        log_price0: float | None = None,
        floor: Floor | None = None,
    ) -> Split:
        """Minimise ``sum E_tx,i(b_i)`` s.t. ``sum b_i <= B``, ``b_i >= b_min,i(T)``; ``dE*/dT``.

        KKT: ``b_i = max(b_i(lambda), b_min,i)``, ``lambda`` from the price root
        (``split_kernels.price_root_into``: Newton on ``log(sum b / B)``, convex and decreasing in
        ``log lambda``, in a bracket) started at ``log_price0`` (default ``cold_log_price``). If the floors
        alone fill the band they are returned (``floor_split``). Requires ``T`` above every
        device's busy time; ``floor`` (at this ``T``) carries floors already computed.
        """
        tau = latency_s - self.links.busy_s
        if floor is not None:
            if float(floor.bandwidth_hz.sum()) >= total_bandwidth_hz * (1.0 - ROOT_RTOL):
                return self.floor_split(floor)
            m, x_floor, known = floor.ratio, floor.x_nats.copy(), np.ones(self.size, dtype=bool)
        else:
            m = self.ratio_per_s * tau
            np.minimum(m, self.ratio_budget, out=m)
            x_floor, known = np.full(self.size, np.nan), np.zeros(self.size, dtype=bool)
        u = self.cold_log_price(latency_s, total_bandwidth_hz) if log_price0 is None else log_price0
        n = self.size
        x, clip, b = np.empty(n), np.empty(n, dtype=bool), np.empty(n)
        u = price_root_into(
            u,
            self.gain_per_n0 / tau,
            m,
            tau,
            self.bits_nats,
            self.gain_per_n0,
            x_floor,
            known,
            total_bandwidth_hz,
            ROOT_RTOL,
            TABLES,
            MAX_ARG,
            x,
            clip,
            b,
        )
        if clip.all():
            return self.floor_split(Floor(float(latency_s), tau, m, x_floor, b))
        energy, slope_w, curvature, du_dt = finish_split(
            u,
            tau,
            x,
            x_floor,
            b,
            clip,
            self.gain_per_n0,
            self.ratio_per_s,
            self.ratio_budget,
            self.links.max_power_w,
            _AT_POWER_RTOL,
            _MAX_EXPONENT,
        )
        return Split(b, u, energy, slope_w, x, curvature, du_dt)
