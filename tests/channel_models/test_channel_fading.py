"""Block fading statistics: unit power, Jakes lag-1 correlation, Rician K-factor."""

import numpy as np
import pytest
from scipy import special

import channel_models as cm

N_PER_SPEED = 200_000
SPEEDS_MPS = [0.0, 1.0, 30.0, 60.0, 120.0]
CARRIER_HZ = 2e9
BLOCK_S = 5e-3


def test_doppler_coherence_jakes_formulas() -> None:
    assert cm.doppler_hz(30.0, 2e9) == pytest.approx(30.0 * 2e9 / 299_792_458.0, rel=1e-15)
    assert cm.coherence_time_s(100.0) == pytest.approx(0.00423, rel=1e-15)
    assert cm.coherence_time_s(0.0) == np.inf
    assert cm.jakes_correlation(0.0, BLOCK_S) == 1.0
    assert cm.jakes_correlation(50.0, 0.01) == special.j0(np.pi)
    with pytest.raises(ValueError):
        cm.doppler_hz(-1.0, 2e9)


def test_gauss_markov_lag1_matches_jakes() -> None:
    """One BlockFading with a per-device rho array, five speed groups of n devices each.

    After 4 warm-up blocks (stationarity must be kept), estimate rho_hat = mean(h[n+1] h*[n])
    over the n independent devices of a group. For jointly CN(0,1) h0, h1 with correlation
    rho (real), Var(Re(h1 h0*)) = (1 + rho^2) / 2, so the estimator's std is
    sqrt((1 + rho^2) / (2 n)) <= 1/sqrt(2n) ~ 1.6e-3; tolerance 5 std.
    """
    rng = np.random.default_rng(20240611)
    rho_by_speed = cm.jakes_correlation(cm.doppler_hz(np.array(SPEEDS_MPS), CARRIER_HZ), BLOCK_S)
    rho = np.repeat(rho_by_speed, N_PER_SPEED)  # [num_devices]
    fading = cm.BlockFading(rho.size, rng)
    for _ in range(4):
        fading.advance(rho)
    h0 = fading.h.copy()
    h1 = fading.advance(rho)
    for g, rho_g in enumerate(rho_by_speed):
        sl = slice(g * N_PER_SPEED, (g + 1) * N_PER_SPEED)
        est = np.mean(h1[sl] * np.conj(h0[sl]))
        tol = 5 * np.sqrt((1 + rho_g**2) / (2 * N_PER_SPEED))
        assert abs(est.real - rho_g) < tol, (SPEEDS_MPS[g], est, rho_g)
        assert abs(est.imag) < tol
        # |h|^2 ~ Exp(1): mean 1, std 1 -> 5/sqrt(n).
        assert abs(np.mean(np.abs(h1[sl]) ** 2) - 1) < 5 / np.sqrt(N_PER_SPEED)
    # The groups really differ (the test discriminates speeds).
    assert rho_by_speed.max() - rho_by_speed.min() > 0.5


def test_rayleigh_is_circular_gaussian() -> None:
    """Re h and Im h ~ N(0, 1/2) independent: check means, variances, cross moment (5 std)."""
    n = 200_000
    h = cm.BlockFading(n, np.random.default_rng(1)).h
    # std of the mean of N(0, 1/2): sqrt(0.5 / n); of the sample variance: 0.5 sqrt(2 / n).
    assert abs(h.real.mean()) < 5 * np.sqrt(0.5 / n)
    assert abs(h.imag.mean()) < 5 * np.sqrt(0.5 / n)
    assert abs(h.real.var() - 0.5) < 5 * 0.5 * np.sqrt(2 / n)
    assert abs(h.imag.var() - 0.5) < 5 * 0.5 * np.sqrt(2 / n)
    # E[Re h Im h] = 0 with std sqrt(0.25 / n).
    assert abs(np.mean(h.real * h.imag)) < 5 * np.sqrt(0.25 / n)


def _k_moment(p: np.ndarray) -> float:
    """Moment estimator of K from |h|^2 samples (Greenstein et al. 1999):
    K = sqrt(2 m1^2 - m2) / (m1 - sqrt(2 m1^2 - m2)), m1 = E|h|^2, m2 = E|h|^4."""
    m1, m2 = np.mean(p), np.mean(p**2)
    r = np.sqrt(2 * m1**2 - m2)
    return float(r / (m1 - r))


@pytest.mark.parametrize("k_db", [0.0, 10.0])
def test_rician_power_and_k_factor(k_db: float) -> None:
    """Mean power 1 and K recovered, before and after Gauss–Markov steps.

    Standard errors from the sample: mean power SE = std(|h|^2)/sqrt(n); K-hat SE by the
    delta method, sqrt(grad^T Cov[(|h|^2, |h|^4)] grad / n), gradient by central differences.
    Tolerance 5 SE each (the estimator's O(1/n) bias is far below that at n = 2e5).
    """
    n = 200_000
    fading = cm.BlockFading(n, np.random.default_rng(7), k_factor_db=k_db)
    k_true = 10 ** (k_db / 10)
    for step in range(2):
        p = fading.power_gain_lin
        assert abs(p.mean() - 1) < 5 * p.std() / np.sqrt(n)
        m = np.array([p.mean(), np.mean(p**2)])
        cov = np.cov(np.stack([p, p**2]))

        def k_of(m1: float, m2: float) -> float:
            r = np.sqrt(2 * m1**2 - m2)
            return r / (m1 - r)

        eps = 1e-6
        grad = np.array(
            [
                (k_of(m[0] + eps, m[1]) - k_of(m[0] - eps, m[1])) / (2 * eps),
                (k_of(m[0], m[1] + eps) - k_of(m[0], m[1] - eps)) / (2 * eps),
            ]
        )
        se = np.sqrt(grad @ cov @ grad / n)
        assert abs(_k_moment(p) - k_true) < 5 * se, (step, _k_moment(p), k_true, se)
        fading.advance(0.3)


def test_rician_lag1_scattered_part() -> None:
    """Only the scattered part evolves: h1 - h0 = sqrt(1/(K+1)) (s1 - s0) with
    s1 - s0 = (rho - 1) s0 + sqrt(1 - rho^2) w ~ CN(0, 2 (1 - rho)), so
    E|h1 - h0|^2 = 2 (1 - rho) / (K + 1). |h1 - h0|^2 is exponential (std = mean), so the
    sample mean has SE = mean / sqrt(n); tolerance 5 SE."""
    n, k_db, rho = 200_000, 6.0, 0.8
    fading = cm.BlockFading(n, np.random.default_rng(11), k_factor_db=k_db)
    h0 = fading.h.copy()
    h1 = fading.advance(rho)
    k = 10 ** (k_db / 10)
    want = 2 * (1 - rho) / (k + 1)
    got = np.mean(np.abs(h1 - h0) ** 2)
    assert abs(got - want) < 5 * want / np.sqrt(n)


def test_advance_validates_rho_and_is_seeded() -> None:
    a = cm.BlockFading(5, np.random.default_rng(3))
    b = cm.BlockFading(5, np.random.default_rng(3))
    np.testing.assert_array_equal(a.advance(0.5), b.advance(0.5))
    with pytest.raises(ValueError, match="rho"):
        a.advance(1.5)
    before = a.h.copy()
    np.testing.assert_array_equal(a.advance(1.0), before)  # rho = 1: frozen channel


def test_box_muller_draws_are_circular_complex_normal() -> None:
    """``complex_normal_parts``: |w|² ~ Exp(1) (KS), uniform phase, E w = E w² = 0, parts
    uncorrelated with variance 1/2; drawing blocks together = drawing them one by one."""
    from scipy import stats

    re, im = cm.complex_normal_parts(np.random.default_rng(5), 4, 100_000)
    assert re.dtype == np.float32 and re.shape == (4, 100_000)
    w = re.astype(np.float64) + 1j * im.astype(np.float64)
    power = np.abs(w.ravel()) ** 2
    assert stats.kstest(power, "expon").pvalue > 1e-3
    assert stats.kstest(np.angle(w.ravel()), "uniform", args=(-np.pi, 2 * np.pi)).pvalue > 1e-3
    se = 1.0 / np.sqrt(w.size)
    assert abs(w.mean()) < 5 * se and abs((w**2).mean()) < 5 * se
    assert (
        np.var(w.real) == pytest.approx(0.5, abs=5 * se) and abs(np.mean(w.real * w.imag)) < 5 * se
    )
    rng = np.random.default_rng(5)
    one_by_one = [cm.complex_normal_parts(rng, 1, 100_000) for _ in range(4)]
    np.testing.assert_array_equal(re, np.concatenate([p[0] for p in one_by_one]))
    np.testing.assert_array_equal(im, np.concatenate([p[1] for p in one_by_one]))
