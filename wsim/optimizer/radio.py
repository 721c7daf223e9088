"""Per-device uplink rate, power, energy and bandwidth floors (pure, vectorized over devices).

FDMA rate model ``r = b log2(1 + p g / (N0 b))`` (Yang, Chen, Saad et al., IEEE TWC 2021;
DESIGN.md §2). With ``tau`` seconds available for ``S`` bits, the lowest power meeting the time is
``p(b) = (2^{S / (tau b)} - 1) N0 b / g = expm1(x) N0 b / g`` with ``x = S ln2 / (tau b)``, and
the transmit energy ``E_tx(b) = tau p(b)`` is convex and decreasing in ``b`` (DESIGN.md §5).
Arrays broadcast; ``tau <= 0`` or ``b <= 0`` means the transfer cannot be done (``inf`` power).
"""

from __future__ import annotations

import numpy as np

from wsim.optimizer.inverse import LN2, inv_expm1_ratio, inv_marginal

MAX_EXPONENT = 700.0  # expm1 overflow guard: a power past expm1(700) is reported as inf


def rate_bps(
    bandwidth_hz: np.ndarray, power_w: np.ndarray, gain_lin: np.ndarray, noise_psd_w_per_hz: float
) -> np.ndarray:
    """Shannon rate ``r = b log2(1 + p g / (N0 b))`` (bit/s); 0 where ``b`` or ``p`` is 0.

    Reference: Yang, Chen, Saad et al., IEEE TWC 2021 (FDMA uplink); DESIGN.md §2.
    """
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    snr = np.divide(
        p * gain_lin,
        noise_psd_w_per_hz * b,
        out=np.zeros(np.broadcast(b, p).shape),
        where=(b > 0.0) & (p > 0.0),
    )
    return b * np.log1p(snr) / LN2


def min_power_w(
    payload_bits: np.ndarray,
    upload_s: np.ndarray,
    bandwidth_hz: np.ndarray,
    gain_lin: np.ndarray,
    noise_psd_w_per_hz: float,
) -> np.ndarray:
    """Lowest power sending ``S`` bits in ``tau`` s over ``b`` Hz: ``expm1(S ln2/(tau b)) N0 b/g``.

    Returns W; ``inf`` where ``tau <= 0`` or ``b <= 0`` (or the power overflows).
    """
    s, tau, b = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (payload_bits, upload_s, bandwidth_hz))
    )
    ok = (tau > 0.0) & (b > 0.0)
    x = np.divide(s * LN2, tau * b, out=np.full(s.shape, np.inf), where=ok)
    power = np.expm1(np.minimum(x, MAX_EXPONENT)) * noise_psd_w_per_hz * b / gain_lin
    return np.where(ok & (x < MAX_EXPONENT), power, np.inf)


def tx_energy_j(
    payload_bits: np.ndarray,
    upload_s: np.ndarray,
    bandwidth_hz: np.ndarray,
    gain_lin: np.ndarray,
    noise_psd_w_per_hz: float,
) -> np.ndarray:
    """Transmit energy ``E_tx = tau p(b)`` (J) at the lowest power meeting ``tau`` (DESIGN.md §5)."""
    power = min_power_w(payload_bits, upload_s, bandwidth_hz, gain_lin, noise_psd_w_per_hz)
    return np.where(np.isfinite(power), power * np.maximum(upload_s, 0.0), np.inf)


def min_bandwidth_hz(
    payload_bits: np.ndarray,
    upload_s: np.ndarray,
    power_cap_w: np.ndarray,
    gain_lin: np.ndarray,
    noise_psd_w_per_hz: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest ``b`` with ``p(b) <= P`` (Hz): ``b = S ln2 / (tau x)``, ``expm1(x)/x = m``.

    ``m = P g tau / (N0 S ln2)``; ``p(b)`` decreases to ``S ln2 N0 / (tau g)`` as ``b -> inf``, so
    there is no finite floor when ``m <= 1``. Closed form through Lambert ``W_{-1}``
    (``inverse.inv_expm1_ratio``); DESIGN.md §5.

    Returns:
        ``(b_min, x)``: the floor (Hz; ``inf`` where infeasible) and its ``x`` (``nan`` there).
    """
    s, tau, cap = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (payload_bits, upload_s, power_cap_w))
    )
    ok = (tau > 0.0) & (cap > 0.0)
    m = np.divide(
        cap * gain_lin * tau, noise_psd_w_per_hz * s * LN2, out=np.zeros(s.shape), where=ok
    )
    x = inv_expm1_ratio(m)
    has = ok & (m > 1.0)
    b_min = np.divide(s * LN2, tau * x, out=np.full(s.shape, np.inf), where=has)
    return b_min, x


def marginal_energy_j_per_hz(
    payload_bits: np.ndarray,
    upload_s: np.ndarray,
    bandwidth_hz: np.ndarray,
    gain_lin: np.ndarray,
    noise_psd_w_per_hz: float,
) -> np.ndarray:
    """``-dE_tx/db = a G(x)`` (J/Hz), ``a = tau N0 / g``, ``G(x) = (x - 1) e^x + 1``."""
    x = payload_bits * LN2 / (upload_s * bandwidth_hz)
    return upload_s * noise_psd_w_per_hz / gain_lin * ((x - 1.0) * np.expm1(x) + x)


def bandwidth_at_price_hz(
    payload_bits: np.ndarray,
    upload_s: np.ndarray,
    gain_lin: np.ndarray,
    noise_psd_w_per_hz: float,
    price_j_per_hz: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Bandwidth where the marginal energy equals the price: ``-dE_tx/db = lambda``.

    Closed form ``b = S ln2 / (tau x)``, ``x = 1 + W0((lambda / a - 1) / e)``, ``a = tau N0 / g``
    (first-order condition of ``min E_tx(b) + lambda b``; DESIGN.md §5).

    Returns:
        ``(b, x)`` in Hz and nats/symbol; ``tau`` must be > 0.
    """
    a = upload_s * noise_psd_w_per_hz / gain_lin
    x = inv_marginal(price_j_per_hz / a)
    b = np.divide(payload_bits * LN2, upload_s * x, out=np.full(np.shape(x), np.inf), where=x > 0.0)
    return b, x
