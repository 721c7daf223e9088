"""Correlated shadowing: marginal std and Gudmundson correlation vs distance moved."""

import numpy as np
import pytest

import channel_models as cm

N = 100_000
SIGMA_DB = 8.0
D_CORR_M = 50.0


def test_marginal_std_stays_sigma() -> None:
    """Sample std of N(0, sigma^2) has SE sigma / sqrt(2n); mean has SE sigma / sqrt(n).
    Tolerance 5 SE, checked at start and after several moves (stationarity)."""
    sh = cm.CorrelatedShadowing(N, SIGMA_DB, D_CORR_M, np.random.default_rng(5))
    for moved in (0.0, 10.0, 200.0, 35.0):
        x = sh.advance(moved)
        assert abs(x.std() - SIGMA_DB) < 5 * SIGMA_DB / np.sqrt(2 * N)
        assert abs(x.mean()) < 5 * SIGMA_DB / np.sqrt(N)


def test_correlation_vs_distance_moved() -> None:
    """Groups of n devices move different distances in one advance (per-device array).

    rho_hat = mean(X0 X1) / sigma^2 for bivariate normal with correlation rho has
    Var = (1 + rho^2) / n; tolerance 5 sqrt((1 + rho^2) / n). A second move checks the
    Markov (exponential) composition exp(-(dx1 + dx2) / d_corr).
    """
    moves_m = np.array([0.0, 5.0, 25.0, 50.0, 100.0, 250.0])
    n = 50_000
    moved = np.repeat(moves_m, n)  # [num_devices]
    sh = cm.CorrelatedShadowing(moved.size, SIGMA_DB, D_CORR_M, np.random.default_rng(8))
    x0 = sh.shadow_db.copy()
    x1 = sh.advance(moved).copy()
    x2 = sh.advance(moved)
    for g, dx in enumerate(moves_m):
        sl = slice(g * n, (g + 1) * n)
        for x, dist in ((x1, dx), (x2, 2 * dx)):
            rho = cm.shadowing_correlation(dist, D_CORR_M)
            est = np.mean(x0[sl] * x[sl]) / SIGMA_DB**2
            assert abs(est - rho) < 5 * np.sqrt((1 + rho**2) / n), (dist, est, rho)


def test_per_device_sigma_and_validation() -> None:
    sigma = cm.shadowing_sigma_db("uma", np.array([True, False]))
    sh = cm.CorrelatedShadowing(2, sigma, D_CORR_M, np.random.default_rng(0))
    np.testing.assert_array_equal(sh.sigma_db, [4.0, 6.0])
    zero = cm.CorrelatedShadowing(3, 0.0, D_CORR_M, np.random.default_rng(0))
    np.testing.assert_array_equal(zero.advance(10.0), 0.0)
    with pytest.raises(ValueError, match="moved_m"):
        sh.advance(-1.0)
    with pytest.raises(ValueError, match="decorrelation_m"):
        cm.CorrelatedShadowing(2, 8.0, 0.0, np.random.default_rng(0))
    assert cm.shadowing_correlation(-50.0, 50.0) == pytest.approx(np.exp(-1), rel=1e-15)


def test_advance_equals_the_ar1_formula_bit_for_bit() -> None:
    """X' = a X + σ sqrt(1 − a²) w, a = exp(−Δx / d_corr), with the same draws; every advance
    returns a new array (earlier results stay as they were)."""
    sigma = np.linspace(0.0, 8.0, 1000)
    sh = cm.CorrelatedShadowing(sigma.size, sigma, D_CORR_M, np.random.default_rng(4))
    rng, moves = np.random.default_rng(4), np.random.default_rng(9)
    x = sigma * rng.standard_normal(sigma.size)
    history = []
    for moved in (0.0, 3.0, moves.uniform(0.0, 80.0, sigma.size), np.zeros(sigma.size)):
        a = np.exp(-np.asarray(moved) / D_CORR_M)
        x = a * x + sigma * np.sqrt(1.0 - a * a) * rng.standard_normal(sigma.size)
        history.append((sh.advance(moved), x))
    for got, expected in history:
        np.testing.assert_array_equal(got, expected, strict=True)
    with pytest.raises(ValueError, match="moved_m"):
        sh.advance(np.full(sigma.size, np.nan))
