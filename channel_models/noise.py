"""Thermal noise power spectral density (vectorized, SI units)."""

from __future__ import annotations

import numpy as np

from channel_models.units import BOLTZMANN_J_PER_K, ArrayLike, FloatArray, as_output, dbm_to_w

REFERENCE_NOISE_DBM_PER_HZ = -174.0
"""Conventional thermal noise floor at 290 K used in 3GPP link budgets, dBm/Hz."""


def thermal_noise_psd_dbm_per_hz(temperature_k: ArrayLike = 290.0) -> FloatArray:
    """Thermal noise PSD ``N = k T`` expressed in dBm/Hz: ``10 log10(k T / 1 mW)``.

    Reference: Johnson–Nyquist thermal noise (Nyquist, Phys. Rev. 32, 1928), ``N0 = k T`` with
    k the Boltzmann constant. At 290 K this is -173.98 dBm/Hz.

    Args:
        temperature_k: Noise temperature in K (> 0), any shape.

    Returns:
        PSD in dBm/Hz, same shape.

    >>> print(f"{thermal_noise_psd_dbm_per_hz(290.0):.2f}")
    -173.98
    """
    t = np.asarray(temperature_k, dtype=float)
    if not np.all(t > 0):
        raise ValueError(f"temperature_k must be > 0, got {t.min()!r}")
    return as_output(10.0 * np.log10(BOLTZMANN_J_PER_K * t / 1e-3))


def noise_psd_w_per_hz(noise_figure_db: ArrayLike = 0.0) -> FloatArray:
    """Receiver noise PSD ``N0 = -174 dBm/Hz + NF`` converted to W/Hz.

    Reference: 3GPP link-budget convention (thermal floor -174 dBm/Hz at 290 K plus the
    receiver noise figure), e.g. 3GPP TR 38.901 / TR 36.814 evaluation assumptions.

    Args:
        noise_figure_db: Receiver noise figure NF in dB, any shape.

    Returns:
        N0 in W/Hz, same shape.

    >>> print(f"{noise_psd_w_per_hz(9.0):.3e}")
    3.162e-20
    """
    nf = np.asarray(noise_figure_db, dtype=float)
    return dbm_to_w(REFERENCE_NOISE_DBM_PER_HZ + nf)
