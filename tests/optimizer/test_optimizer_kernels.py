"""The compiled inverses and option values against high-precision and scalar references.

References: mpmath's Lambert W at 70 digits (both branches), scipy's brentq on the closed-form
power and marginal energy (``radio``'s formulas, not its inverses).
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
from scipy.optimize import brentq

from wsim.optimizer import inverse, kernels
from wsim.optimizer.generate import random_problem
from wsim.optimizer.inverse import TABLE_LO, TABLES, inv_expm1_ratio, inv_marginal
from wsim.optimizer.options import OptionTable, option_values

mpmath.mp.dps = 70


def _marginal_ref(s: float) -> float:
    """``1 + W0((s - 1)/e)`` at 70 digits."""
    return float(1 + mpmath.lambertw((mpmath.mpf(s) - 1) / mpmath.e).real)


def _ratio_ref(m: float | mpmath.mpf) -> float:
    """Root of ``expm1(x)/x = m``: ``-W_{-1}(-e^{-1/m}/m) - 1/m`` at 70 digits."""
    mm = mpmath.mpf(m)
    return float(-mpmath.lambertw(-mpmath.exp(-1 / mm) / mm, -1).real - 1 / mm)


def _arguments(rng: np.random.Generator) -> np.ndarray:
    """Log-uniform over the whole range, the table's ends and cell edges, around ``x = 0.01``."""
    edges = kernels.cell_edges()
    return np.concatenate(
        [
            10.0 ** rng.uniform(-25.0, 249.0, 400),
            edges[[0, 1, 63, 64, 65, 30_000, -2, -1]],
            np.nextafter(edges[[0, 1000]], 0.0),  # just below a cell edge
            np.logspace(-6, -3, 40),  # x near 0.01 (the series switch)
            np.linspace(0.5, 5.0, 40),
        ]
    )


def test_inv_marginal_is_exact_to_rounding_everywhere() -> None:
    s = _arguments(np.random.default_rng(3))
    ref = np.array([_marginal_ref(v) for v in np.minimum(s, inverse.MAX_ARG)])  # capped above
    np.testing.assert_allclose(inv_marginal(s), ref, rtol=5e-14, atol=0.0)
    assert inv_marginal(np.array([0.0, -1.0])).tolist() == [0.0, 0.0]
    capped = inv_marginal(np.array([1e300]))[0]  # the argument is capped at MAX_ARG
    assert capped == inv_marginal(np.array([inverse.MAX_ARG]))[0]


def test_inv_expm1_ratio_is_exact_to_rounding_everywhere() -> None:
    d = _arguments(np.random.default_rng(4))
    m = 1.0 + d
    keep = (m > 1.0) & (m < inverse.MAX_ARG)
    m = m[keep]
    ref = np.array([_ratio_ref(v) for v in m])
    # below m - 1 ~ 1e-6 the float m itself carries a relative error of eps / (m - 1) into x
    rtol = np.maximum(5e-14, 4e-16 / (m - 1.0))
    assert np.all(np.abs(inv_expm1_ratio(m) / ref - 1.0) <= rtol)
    assert np.isnan(inv_expm1_ratio(np.array([0.5, 1.0]))).all()
    assert inv_expm1_ratio(np.array([1e300]))[0] == inv_expm1_ratio(np.array([inverse.MAX_ARG]))[0]


def test_tabulated_starts_are_within_the_one_step_radius() -> None:
    # one Halley step cubes the start's error: ~1e-5 starts give roots to rounding
    rng = np.random.default_rng(5)
    s = 10.0 ** rng.uniform(math.log10(TABLE_LO), 249.0, 300)
    start = np.array([kernels._tabulated(v, TABLES[0], TABLES[1]) for v in s])
    ref = np.array([_marginal_ref(v) for v in s])
    assert np.abs(start / ref - 1.0).max() < 2e-5
    d = 10.0 ** rng.uniform(math.log10(TABLE_LO), 249.0, 300)
    start = np.array([kernels._tabulated(v, TABLES[2], TABLES[3]) for v in d])
    ref = np.array([_ratio_ref(1 + mpmath.mpf(v)) for v in d])
    assert np.abs(start / ref - 1.0).max() < 2e-5


def test_scratch_buffers_hold_the_result() -> None:
    s = np.logspace(-3, 50, 200)
    pool = inverse.Scratch(s.shape)
    first = inv_marginal(s, scratch=pool)
    np.testing.assert_array_equal(first, inv_marginal(s))
    pool.give(first)
    again = inv_marginal(s * 1.01, scratch=pool)
    assert again is first  # the buffer given back is reused
    np.testing.assert_array_equal(again, inv_marginal(s * 1.01))


def test_option_values_match_scalar_root_finding() -> None:
    problem = random_problem(6, 3, np.random.default_rng(11))
    table = OptionTable(problem)
    usable = np.ones(problem.payload_bits.shape, dtype=bool)
    usable[0, 2] = False
    latency_s, n0 = 0.6 * problem.deadline_s, problem.noise_psd_w_per_hz
    checked_price = checked_floor = 0
    for price, i in itertools.product((1e-12, 3e-9, 1e-6, 1e-3), range(6)):
        value, ste = option_values(table, usable, latency_s, price)
        g, p_max, e_max = (problem.gain_lin[i], problem.max_power_w[i], problem.energy_budget_j[i])
        for j in range(3):
            bits, e_comp = problem.payload_bits[i, j], problem.compute_energy_j[i, j]
            tau = latency_s - problem.compute_time_s[i, j] - problem.fixed_latency_s[i]

            def power(b: float, bits: float = bits, tau: float = tau, g: float = g) -> float:
                return math.expm1(bits * math.log(2.0) / (tau * b)) * n0 * b / g

            cap = min(p_max, (e_max - e_comp) / tau) if tau > 0 else -1.0
            floor_p = bits * math.log(2.0) * n0 / (tau * g) if tau > 0 else math.inf
            if not usable[i, j] or not cap > floor_p:  # no floor: cannot meet T
                assert value[i, j] == -np.inf and ste[i, j] == -np.inf
                continue
            lo = bits / tau / 400.0
            b_min = brentq(lambda b, c: power(b) - c, lo, 1e14, (cap,), 1e-12 * lo, 1e-14)

            def marginal(b: float, bits: float = bits, tau: float = tau, g: float = g) -> float:
                x = bits * math.log(2.0) / (tau * b)
                return ((x - 1.0) * math.exp(x) + 1.0) * tau * n0 / g  # -dE_tx/db

            b_price = brentq(lambda b, c: marginal(b) - c, lo, 1e14, (price,), 1e-12 * lo, 1e-14)
            b = max(b_price, b_min)
            checked_price += b_price >= b_min
            checked_floor += b_price < b_min
            e_tx = power(b) * tau
            ref = problem.retention[i, j] - problem.energy_price_per_j * (e_comp + e_tx + price * b)
            assert math.isclose(value[i, j], ref, rel_tol=1e-9, abs_tol=1e-12)
            assert math.isclose(ste[i, j], problem.retention[i, j] / e_tx, rel_tol=1e-9)
    assert checked_price > 0 and checked_floor > 0  # both branches exercised


def test_pruned_option_values_keep_every_option_that_can_win_or_tie() -> None:
    problem = random_problem(300, 8, np.random.default_rng(12))
    table = OptionTable(problem)
    usable = np.ones(problem.payload_bits.shape, dtype=bool)
    rng = np.random.default_rng(13)
    current = rng.integers(-1, 8, 300)
    skipped = 0
    for frac, price in itertools.product((0.3, 0.6, 1.0), (1e-12, 1e-9, 1e-6, 1e-3)):
        latency_s = frac * problem.deadline_s
        full_value, full_ste = option_values(table, usable, latency_s, price)
        value, ste = option_values(table, usable, latency_s, price, current)
        best = full_value.max(axis=1)
        np.testing.assert_array_equal(value.max(axis=1), best)
        rows = np.flatnonzero(current >= 0)
        np.testing.assert_array_equal(value[rows, current[rows]], full_value[rows, current[rows]])
        near = full_value >= (best - 1e-12 * np.maximum(np.abs(best), 1.0))[:, None]
        np.testing.assert_array_equal(value[near], full_value[near])  # every tie kept
        np.testing.assert_array_equal(ste[near], full_ste[near])
        kept = np.isfinite(value) | ~np.isfinite(full_value)
        np.testing.assert_array_equal(value[kept], full_value[kept])  # evaluated: the same numbers
        skipped += int((~kept).sum())
    assert skipped > 0  # the bound does prune
