"""Shannon rate, SNR, channel gain, and Rayleigh closed forms (outage, ergodic capacity)."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from channel_models.units import ArrayLike, FloatArray, as_output

_LN2 = math.log(2.0)
# Above this argument e^x E1(x) uses its asymptotic series (see _scaled_exp1).
_ASYMPTOTIC_FROM = 50.0
_ASYMPTOTIC_TERMS = 20


def _checked(values: ArrayLike, name: str, *, strict: bool = False) -> FloatArray:
    arr = np.asarray(values, dtype=float)
    ok = arr > 0 if strict else arr >= 0
    if not np.all(ok):  # also rejects NaN
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be {bound} (and not NaN), got min {np.min(arr)!r}")
    return arr


def channel_gain_lin(
    pathloss_db: ArrayLike, shadowing_db: ArrayLike = 0.0, power_gain_lin: ArrayLike = 1.0
) -> FloatArray:
    """Linear channel gain ``g = 10^(-(PL + X) / 10) |h|^2`` (antenna gains folded in PL).

    Args:
        pathloss_db: Path loss PL in dB, any shape.
        shadowing_db: Shadowing X in dB (positive = extra loss), broadcastable.
        power_gain_lin: Small-scale power gain ``|h|^2``, broadcastable.

    Returns:
        g (dimensionless), broadcast shape.

    >>> print(f"{channel_gain_lin(100.0, 10.0, 2.0):.1e}")
    2.0e-11
    """
    total_db = np.asarray(pathloss_db, dtype=float) + np.asarray(shadowing_db, dtype=float)
    return as_output(np.power(10.0, -total_db / 10.0) * np.asarray(power_gain_lin, dtype=float))


def snr_lin(
    bandwidth_hz: ArrayLike, power_w: ArrayLike, gain_lin: ArrayLike, noise_psd_w_per_hz: ArrayLike
) -> FloatArray:
    """Received SNR ``γ = p g / (N0 b)`` (linear); 0 where ``b = 0`` or ``p = 0`` (no link).

    Args:
        bandwidth_hz: Allocated bandwidth b >= 0 in Hz, any shape.
        power_w: Transmit power p >= 0 in W, broadcastable.
        gain_lin: Channel gain g >= 0 (linear), broadcastable.
        noise_psd_w_per_hz: Noise PSD N0 > 0 in W/Hz, broadcastable.

    Returns:
        γ (linear), broadcast shape; never NaN (``inf`` only if ``p g / (N0 b)`` overflows).

    >>> print(f"{snr_lin(1e6, 0.1, 1e-10, 1e-20):.0f}")
    1000
    """
    b = _checked(bandwidth_hz, "bandwidth_hz")
    received_w = _checked(power_w, "power_w") * _checked(gain_lin, "gain_lin")
    n0 = _checked(noise_psd_w_per_hz, "noise_psd_w_per_hz", strict=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gamma = received_w / (n0 * b)
    return as_output(np.where((b > 0) & (received_w > 0), gamma, 0.0))


def shannon_rate_bps(
    bandwidth_hz: ArrayLike, power_w: ArrayLike, gain_lin: ArrayLike, noise_psd_w_per_hz: ArrayLike
) -> FloatArray:
    """OFDMA/FDMA Shannon rate ``r = b log2(1 + p g / (N0 b))`` in bit/s.

    Reference: Yang, Chen, Saad et al., "Energy efficient federated learning over wireless
    communication networks", IEEE TWC 2021 (eq. for the FDMA uplink rate).
    Computed as ``b * logaddexp(0, ln(p g / N0) - ln b) / ln 2`` so that tiny ``b`` never
    overflows; exactly 0 where ``b = 0`` (the limit) or ``p g = 0``; never NaN.

    Args:
        bandwidth_hz: Allocated bandwidth b >= 0 in Hz, any shape.
        power_w: Transmit power p >= 0 in W, broadcastable.
        gain_lin: Channel gain g >= 0 (linear), broadcastable.
        noise_psd_w_per_hz: Noise PSD N0 > 0 in W/Hz, broadcastable.

    Returns:
        Rate in bit/s, broadcast shape.

    >>> print(f"{shannon_rate_bps(1e6, 1e-3, 1e-10, 1e-19):.0f}")
    1000000
    """
    b = _checked(bandwidth_hz, "bandwidth_hz")
    snr_numerator = _checked(power_w, "power_w") * _checked(gain_lin, "gain_lin")
    snr_numerator = snr_numerator / _checked(noise_psd_w_per_hz, "noise_psd_w_per_hz", strict=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_snr = np.log(snr_numerator) - np.log(b)
        rate = b * np.logaddexp(0.0, log_snr) / _LN2
    return as_output(np.where((b > 0) & (snr_numerator > 0), rate, 0.0))


def outage_probability_rayleigh(
    threshold_snr_lin: ArrayLike, mean_snr_lin: ArrayLike
) -> FloatArray:
    """Rayleigh-fading outage ``P(γ < γ_th) = 1 - exp(-γ_th / γ̄)`` (γ exponential).

    Reference: Goldsmith, "Wireless Communications", eq. (4.18).

    Args:
        threshold_snr_lin: γ_th >= 0 (linear), any shape.
        mean_snr_lin: Mean SNR γ̄ >= 0 (linear), broadcastable (γ̄ = 0 gives 1 for γ_th > 0).

    Returns:
        Probability in [0, 1], broadcast shape.

    >>> print(f"{outage_probability_rayleigh(1.0, 1.0):.4f}")
    0.6321
    """
    th = _checked(threshold_snr_lin, "threshold_snr_lin")
    mean = _checked(mean_snr_lin, "mean_snr_lin")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(th > 0, th / mean, 0.0)
    return as_output(-np.expm1(-ratio))


def _scaled_exp1(x: FloatArray) -> FloatArray:
    """``e^x E1(x)`` for x >= 0 without overflow.

    For ``x < 50`` the direct product (``e^50 ≈ 5e21`` is finite and ``E1`` has full relative
    accuracy). Above, the asymptotic series ``(1/x) Σ_k (-1)^k k! / x^k`` (Abramowitz &
    Stegun 5.1.51) truncated after 20 terms: the error is below the first omitted term,
    ``20! / 50^20 ≈ 3e-16`` relative.
    """
    small = np.minimum(x, _ASYMPTOTIC_FROM)
    direct = np.exp(small) * special.exp1(small)
    big = np.maximum(x, _ASYMPTOTIC_FROM)
    k = np.arange(_ASYMPTOTIC_TERMS)
    # [..., terms]
    terms = (-1.0) ** k * special.factorial(k) / big[..., None] ** k
    asymptotic = terms.sum(axis=-1) / big
    return np.where(x < _ASYMPTOTIC_FROM, direct, asymptotic)


def ergodic_capacity_rayleigh(mean_snr_lin: ArrayLike) -> FloatArray:
    """Ergodic Rayleigh capacity ``E[log2(1 + γ̄ |h|^2)] = e^{1/γ̄} E1(1/γ̄) / ln 2`` bit/s/Hz.

    Reference: Goldsmith, "Wireless Communications", Section 4.2.4 (Rayleigh capacity with
    receiver CSI); ``E1`` the exponential integral. Evaluated in scaled form (see
    ``_scaled_exp1``), stable from γ̄ -> 0 (-> 0) to γ̄ -> inf.

    Args:
        mean_snr_lin: Mean SNR γ̄ >= 0 (linear), any shape.

    Returns:
        Capacity in bit/s/Hz, same shape.

    >>> print(f"{ergodic_capacity_rayleigh(1.0):.4f}")
    0.8603
    """
    mean = _checked(mean_snr_lin, "mean_snr_lin")
    with np.errstate(divide="ignore"):
        x = np.where(mean > 0, 1.0 / np.where(mean > 0, mean, 1.0), np.inf)
    finite = np.isfinite(x)
    value = np.where(finite, _scaled_exp1(np.where(finite, x, 1.0)), 0.0)
    return as_output(value / _LN2)
