"""Rate, SNR, gain and the Rayleigh closed forms (Monte Carlo, quadrature, properties)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

import channel_models as cm

MEAN_SNR_DB = [-10.0, 0.0, 10.0, 20.0, 30.0]
N_MC = 200_000


def test_ergodic_capacity_monte_carlo() -> None:
    """Closed form vs the sample mean of log2(1 + mean_snr |h|^2) with |h|^2 from BlockFading.

    The n draws are i.i.d., so the sample mean's std is sigma/sqrt(n), sigma estimated by the
    sample std; tolerance 5 sigma_hat / sqrt(n) (two-sided false-alarm ~ 6e-7 per check).
    """
    gain = cm.BlockFading(N_MC, np.random.default_rng(123)).power_gain_lin
    for snr_db in MEAN_SNR_DB:
        mean_snr = cm.db_to_lin(snr_db)
        c = np.log2(1 + mean_snr * gain)
        tol = 5 * c.std(ddof=1) / np.sqrt(N_MC)
        assert abs(c.mean() - cm.ergodic_capacity_rayleigh(mean_snr)) < tol, snr_db


@pytest.mark.parametrize("mean_snr", [1e-3, 1e-1, 1.0 / 50.0, 1.0, 1e3, 1e8])
def test_ergodic_capacity_vs_quadrature(mean_snr: float) -> None:
    """Deterministic oracle: E[log2(1 + g t)], t ~ Exp(1), by adaptive quadrature (rtol 1e-12).

    Includes both sides of the scaled-E1 switch (1/g = 50) and the extremes 1e-1 and 1e3."""
    want, _ = integrate.quad(
        lambda t: math.log2(1 + mean_snr * t) * math.exp(-t), 0, np.inf, epsabs=0, epsrel=1e-12
    )
    assert cm.ergodic_capacity_rayleigh(mean_snr) == pytest.approx(want, rel=1e-9)


def test_ergodic_capacity_limits() -> None:
    # High SNR: log2(g) - gamma_Euler / ln 2 + O(log(g)/g).
    g = 1e9
    assert cm.ergodic_capacity_rayleigh(g) == pytest.approx(
        math.log2(g) - np.euler_gamma / math.log(2), abs=1e-6
    )
    # Very low SNR: ~ g / ln 2; never NaN anywhere on the grid.
    assert cm.ergodic_capacity_rayleigh(1e-6) == pytest.approx(1e-6 / math.log(2), rel=1e-5)
    grid = np.logspace(-12, 12, 241)
    values = cm.ergodic_capacity_rayleigh(grid)
    assert np.all(np.isfinite(values)) and np.all(np.diff(values) > 0)
    assert cm.ergodic_capacity_rayleigh(0.0) == 0.0


def test_outage_monte_carlo() -> None:
    """Empirical P(mean_snr |h|^2 < th) vs 1 - exp(-th/mean): binomial std sqrt(p(1-p)/n),
    tolerance 5 std."""
    gain = cm.BlockFading(N_MC, np.random.default_rng(99)).power_gain_lin
    for snr_db in MEAN_SNR_DB:
        mean_snr = cm.db_to_lin(snr_db)
        for th_db in (-5.0, 0.0, 5.0, 15.0):
            th = cm.db_to_lin(th_db)
            p = cm.outage_probability_rayleigh(th, mean_snr)
            emp = np.mean(mean_snr * gain < th)
            assert abs(emp - p) < 5 * np.sqrt(p * (1 - p) / N_MC) + 1e-12, (snr_db, th_db)
    assert cm.outage_probability_rayleigh(1.0, 1.0) == pytest.approx(1 - math.exp(-1), rel=1e-15)
    assert cm.outage_probability_rayleigh(0.0, 0.0) == 0.0
    assert cm.outage_probability_rayleigh(1.0, 0.0) == 1.0


def test_rate_snr_gain_values() -> None:
    n0 = cm.noise_psd_w_per_hz(0.0)
    g = cm.channel_gain_lin(100.0, 3.0, 0.5)
    assert g == pytest.approx(10 ** (-10.3) * 0.5, rel=1e-14)
    b, p = 1e6, 0.2
    snr = p * g / (n0 * b)
    assert cm.snr_lin(b, p, g, n0) == pytest.approx(snr, rel=1e-14)
    assert cm.shannon_rate_bps(b, p, g, n0) == pytest.approx(b * math.log2(1 + snr), rel=1e-13)
    # Vectorized over devices, broadcasting a scalar N0.
    rates = cm.shannon_rate_bps([0.0, 1e6, 2e6], [1.0, 0.0, 1.0], [1e-10, 1e-10, 1e-10], n0)
    assert rates[0] == 0.0 and rates[1] == 0.0 and rates[2] > 0
    assert cm.snr_lin(0.0, 1.0, 1.0, n0) == 0.0
    with pytest.raises(ValueError, match="power_w"):
        cm.shannon_rate_bps(1e6, -1.0, 1e-10, n0)
    with pytest.raises(ValueError, match="noise_psd_w_per_hz"):
        cm.shannon_rate_bps(1e6, 1.0, 1e-10, 0.0)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    b1=st.floats(0.0, 1e9),
    b2=st.floats(0.0, 1e9),
    p1=st.floats(0.0, 1e3),
    p2=st.floats(0.0, 1e3),
    # Zero, or a physical gain (>= 1e-30, i.e. <= 300 dB of loss): subnormal gains (~1e-320)
    # give rates ~1e-308 where float64 itself has no relative precision left to compare.
    g=st.one_of(st.just(0.0), st.floats(1e-30, 1.0)),
    n0=st.floats(1e-23, 1e-15),
)
def test_rate_properties(b1, b2, p1, p2, g, n0) -> None:
    b_lo, b_hi = sorted((b1, b2))
    p_lo, p_hi = sorted((p1, p2))
    r = cm.shannon_rate_bps(np.array([b_lo, b_hi, b_lo]), np.array([p_lo, p_lo, p_hi]), g, n0)
    assert not np.any(np.isnan(r)) and np.all(r >= 0)
    # Monotone in b and in p; the relative slack 1e-12 covers only float rounding (~10 ulp).
    assert r[1] >= r[0] * (1 - 1e-12)
    assert r[2] >= r[0] * (1 - 1e-12)
    assert cm.shannon_rate_bps(0.0, p_hi, g, n0) == 0.0
    assert cm.shannon_rate_bps(b_hi, 0.0, g, n0) == 0.0
    assert not np.isnan(cm.snr_lin(b_lo, p_lo, g, n0))
