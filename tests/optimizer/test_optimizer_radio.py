"""Vectorized radio helpers vs scalar references (math / scipy.optimize.brentq / lambertw)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import lambertw

from wsim.optimizer.inverse import inv_expm1_ratio, inv_marginal
from wsim.optimizer.radio import (
    bandwidth_at_price_hz,
    marginal_energy_j_per_hz,
    min_bandwidth_hz,
    min_power_w,
    rate_bps,
    tx_energy_j,
)

N0 = 10.0 ** ((-174.0 + 9.0 - 30.0) / 10.0)


def _scalar_rate(b: float, p: float, g: float) -> float:
    return b * math.log2(1.0 + p * g / (N0 * b))


def _scalar_min_power(s: float, tau: float, b: float, g: float) -> float:
    # invert the rate in p directly: b log2(1 + p g / (N0 b)) = s / tau
    return (2.0 ** (s / (tau * b)) - 1.0) * N0 * b / g


@pytest.fixture(scope="module")
def draws() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 64
    return {
        "s": 10.0 ** rng.uniform(5, 7, n),
        "tau": rng.uniform(0.5, 50.0, n),
        "b": 10.0 ** rng.uniform(4, 7, n),
        "g": 10.0 ** rng.uniform(-13, -10, n),
        "p": rng.uniform(0.01, 0.2, n),
    }


def test_inv_marginal_matches_lambertw() -> None:
    s = np.logspace(-6, 200, 500)
    ref = 1.0 + lambertw((s - 1.0) / np.e).real
    np.testing.assert_allclose(inv_marginal(s), ref, rtol=1e-8)
    x = inv_marginal(np.logspace(-14, -6, 50))  # lambertw cancels there: check the residual
    np.testing.assert_allclose((x - 1.0) * np.expm1(x) + x, np.logspace(-14, -6, 50), rtol=1e-7)
    assert inv_marginal(np.array([0.0]))[0] == 0.0


def test_inv_expm1_ratio_matches_brentq() -> None:
    m = 1.0 + np.logspace(-4, 12, 60)
    ref = [
        brentq(lambda x, mm=mm: math.expm1(x) / x - mm, 1e-9, 100.0, xtol=1e-15, rtol=1e-14)
        for mm in m
    ]
    np.testing.assert_allclose(inv_expm1_ratio(m), ref, rtol=1e-10)
    assert np.isnan(inv_expm1_ratio(np.array([0.5, 1.0]))).all()


def test_rate_and_power_match_scalar(draws: dict[str, np.ndarray]) -> None:
    d = draws
    rate = rate_bps(d["b"], d["p"], d["g"], N0)
    power = min_power_w(d["s"], d["tau"], d["b"], d["g"], N0)
    energy = tx_energy_j(d["s"], d["tau"], d["b"], d["g"], N0)
    for i in range(d["s"].size):
        assert rate[i] == pytest.approx(_scalar_rate(d["b"][i], d["p"][i], d["g"][i]), rel=1e-12)
        ref = _scalar_min_power(d["s"][i], d["tau"][i], d["b"][i], d["g"][i])
        if math.isfinite(ref) and ref < 1e100:
            assert power[i] == pytest.approx(ref, rel=1e-9)
            assert energy[i] == pytest.approx(ref * d["tau"][i], rel=1e-9)
            # the power sends exactly S bits in tau seconds
            sent = _scalar_rate(d["b"][i], power[i], d["g"][i]) * d["tau"][i]
            assert sent == pytest.approx(d["s"][i], rel=1e-9)
    assert rate_bps(np.array([0.0]), np.array([1.0]), 1e-10, N0)[0] == 0.0
    assert np.isinf(min_power_w(1e6, 0.0, 1e6, 1e-10, N0))


def test_min_bandwidth_is_the_power_floor(draws: dict[str, np.ndarray]) -> None:
    d = draws
    b_min, _ = min_bandwidth_hz(d["s"], d["tau"], d["p"], d["g"], N0)
    for i in range(d["s"].size):
        floor_p = d["s"][i] * math.log(2.0) * N0 / (d["tau"][i] * d["g"][i])  # p as b -> inf
        if d["p"][i] <= floor_p:
            assert math.isinf(b_min[i])
            continue

        def excess(b: float, i: int = i) -> float:
            return _scalar_min_power(d["s"][i], d["tau"][i], b, d["g"][i]) - d["p"][i]

        lo = d["s"][i] / d["tau"][i] / 200.0  # 200 bit/s/Hz: far above any power cap
        ref = brentq(excess, lo, 1e15, xtol=1e-9 * lo, rtol=1e-13)
        assert b_min[i] == pytest.approx(ref, rel=1e-9)


def test_bandwidth_at_price_solves_first_order_condition(draws: dict[str, np.ndarray]) -> None:
    d = draws
    price = marginal_energy_j_per_hz(d["s"], d["tau"], d["b"], d["g"], N0)
    b, _ = bandwidth_at_price_hz(d["s"], d["tau"], d["g"], N0, price)
    np.testing.assert_allclose(b, d["b"], rtol=1e-8)
    # the marginal is the derivative of the energy (central finite difference, scalar)
    for i in range(0, d["s"].size, 8):
        h = 1e-5 * d["b"][i]
        e_plus = _scalar_min_power(d["s"][i], d["tau"][i], d["b"][i] + h, d["g"][i]) * d["tau"][i]
        e_minus = _scalar_min_power(d["s"][i], d["tau"][i], d["b"][i] - h, d["g"][i]) * d["tau"][i]
        assert -(e_plus - e_minus) / (2 * h) == pytest.approx(price[i], rel=1e-5)
