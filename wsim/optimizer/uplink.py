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
from wsim.optimizer.split_kernels import BAND_SLACK, floor_into, split_into, split_work

__all__ = ["BAND_SLACK", "Floor", "Links", "Split", "Uplink"]

_NO_FLOOR = np.empty(0)


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

    def __init__(
        self,
        links: Links,
        n0: float,
        constants: tuple | None = None,  # type: ignore[type-arg]
    ) -> None:
        """``constants``: ``S ln2``, ``g / N0``, ``ratio_per_s``, ``ratio_budget`` already
        computed from ``links`` (``options.OptionTable``'s compiled pass), else computed here."""
        self.links = links
        if constants is not None:
            self.bits_nats, self.gain_per_n0, self.ratio_per_s, self.ratio_budget = constants
            return
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
        """Floors ``b_min,i(T)`` in one compiled pass (``split_kernels.floor_into``)."""
        shape = np.shape(self.bits_nats)  # [n], or [N, J] for an OptionTable's links
        tau, m, x, b = (np.empty(shape) for _ in range(4))
        floor_into(
            float(latency_s),
            np.ravel(self.links.busy_s),
            np.ravel(self.ratio_per_s),
            np.ravel(self.ratio_budget),
            np.ravel(self.bits_nats),
            TABLES,
            MAX_ARG,
            tau.reshape(-1),
            m.reshape(-1),
            x.reshape(-1),
            b.reshape(-1),
            False,
        )
        return Floor(float(latency_s), tau, m, x, b)

    @property
    def constants(self) -> tuple[np.ndarray, ...]:
        """``busy_s``, ``S ln2``, ``g / N0``, ``m`` per second at ``p_max``, ``m`` at the budget,
        ``p_max`` (``[n]``): the per-device inputs of the compiled splits."""
        links = self.links
        return (
            links.busy_s,
            self.bits_nats,
            self.gain_per_n0,
            self.ratio_per_s,
            self.ratio_budget,
            links.max_power_w,
        )

    def split(
        self,
        latency_s: float,
        total_bandwidth_hz: float,
        log_price0: float | None = None,
    ) -> Split:
        """Minimise ``sum E_tx,i(b_i)`` s.t. ``sum b_i <= B``, ``b_i >= b_min,i(T)``; ``dE*/dT``.

        KKT: ``b_i = max(b_i(lambda), b_min,i)``, ``lambda`` from the price root
        (``split_kernels.price_root_into``: Newton on ``log(sum b / B)``, convex and decreasing in
        ``log lambda``, in a bracket) started at ``log_price0`` (default: the median marginal
        energy at the equal split). If the floors alone fill the band every device stays at its
        floor (price: the largest floor marginal). ``dE*/dT`` by the envelope theorem, with
        ``d b_min / dT = -phi b_min / tau`` along a floor at the power limit
        (``phi = 1 + expm1(x) / G(x)``, implicit differentiation of ``expm1(x)/x = m``), and
        ``E_tx = tau p_max`` growing at ``p_max``; at the energy budget ``E_tx`` is flat.
        Requires ``T`` above every device's busy time. One compiled call
        (``split_kernels.split_into``).
        """
        work = split_work(self.size)
        u0 = np.nan if log_price0 is None else float(log_price0)
        u, energy, slope_w, curvature, du_dt, priced = split_into(
            float(latency_s),
            float(total_bandwidth_hz),
            u0,
            _NO_FLOOR,
            self.constants,
            TABLES,
            MAX_ARG,
            work,
        )
        x = work[4] if priced else None
        return Split(work[6], u, energy, slope_w, x, curvature, du_dt)
