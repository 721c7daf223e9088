"""The fast paths of the (b, p, T) and token steps vs direct references (radio helpers, brentq)."""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np
import pytest
from scipy.optimize import brentq

from wsim.optimizer import random_problem, solve
from wsim.optimizer.evaluate import links_for
from wsim.optimizer.feasibility import admit, option_min_latency_s
from wsim.optimizer.inverse import LN2, MAX_ARG, TABLES, inv_expm1_ratio
from wsim.optimizer.latency_kernels import dual_energy_j
from wsim.optimizer.options import OptionTable, option_values, row_any, row_argmin, row_min
from wsim.optimizer.radio import bandwidth_at_price_hz, min_bandwidth_hz, rate_bps, tx_energy_j
from wsim.optimizer.resource import floor_hz, min_latency_s, split_bandwidth_hz
from wsim.optimizer.uplink import Uplink


def _scheduled(seed: int, n: int, num_options: int = 3):  # type: ignore[no-untyped-def]
    problem = random_problem(n, num_options, np.random.default_rng(seed))
    alloc = solve(problem, "all_tokens")
    return problem, links_for(problem, alloc.token_option), alloc.latency_s


def _reference_split(links, t: float, bw: float, n0: float):  # type: ignore[no-untyped-def]
    """``b_i = max(b_i(lambda), b_min,i)`` with ``sum b = B``: brentq on ``log lambda``."""
    tau = t - links.busy_s
    cap = np.minimum(links.max_power_w, (links.energy_budget_j - links.compute_energy_j) / tau)
    b_min, _ = min_bandwidth_hz(links.payload_bits, tau, cap, links.gain_lin, n0)

    def band(log_price: float) -> np.ndarray:
        b, _ = bandwidth_at_price_hz(links.payload_bits, tau, links.gain_lin, n0, np.exp(log_price))
        return np.maximum(b, b_min)

    log_price = brentq(lambda u: np.log(band(u).sum() / bw), -80.0, 80.0, xtol=1e-14)
    b = band(log_price)
    return b, float(np.sum(tx_energy_j(links.payload_bits, tau, b, links.gain_lin, n0)))


@pytest.mark.parametrize(("seed", "n", "factor"), [(0, 40, 1.02), (1, 300, 1.2), (2, 8, 1.5)])
def test_split_matches_brentq_on_the_price(seed: int, n: int, factor: float) -> None:
    problem, links, latency = _scheduled(seed, n)
    bw, n0 = problem.total_bandwidth_hz, problem.noise_psd_w_per_hz
    t = min(latency * factor, problem.deadline_s)
    ours = split_bandwidth_hz(links, t, bw, n0, None)
    ref_b, ref_energy = _reference_split(links, t, bw, n0)
    np.testing.assert_allclose(ours.bandwidth_hz, ref_b, rtol=1e-7)
    assert ours.energy_j == pytest.approx(ref_energy, rel=1e-8)
    assert ours.bandwidth_hz.sum() <= bw * (1.0 + 1e-10)


def test_split_derivatives_match_finite_differences() -> None:
    """``dE*/dT``, ``d2E*/dT2`` and ``d log lambda / dT`` (with clipped devices present)."""
    problem, links, latency = _scheduled(0, 1000)
    uplink = Uplink(links, problem.noise_psd_w_per_hz)
    bw = problem.total_bandwidth_hz
    for t in (latency * 1.05, latency * 1.3):
        clipped = uplink.split(t, bw).bandwidth_hz <= uplink.floor(t).bandwidth_hz * (1 + 1e-12)
        assert clipped.any() and not clipped.all()
        h = 1e-4 * t
        plus, minus, mid = (uplink.split(tt, bw) for tt in (t + h, t - h, t))
        assert mid.energy_slope_w == pytest.approx(
            (plus.energy_j - minus.energy_j) / (2 * h), rel=1e-5
        )
        fd_curvature = (plus.energy_slope_w - minus.energy_slope_w) / (2 * h)
        assert mid.energy_curvature_w_per_s == pytest.approx(fd_curvature, rel=1e-5)
        fd_log_price = (plus.log_price - minus.log_price) / (2 * h)
        assert mid.log_price_slope_per_s == pytest.approx(fd_log_price, rel=1e-5)


@pytest.mark.parametrize("n", [1000, 5000])  # one thread, then the threaded blocks
def test_dual_bound_is_below_the_split_and_tight_at_its_price(n: int) -> None:
    """``dual_energy_j`` (which lets a step skip evaluating ``t_hi``): below the brentq split's
    ``E*(T)`` at any price, equal to it at the split's own price (floors binding for some)."""
    problem, links, latency = _scheduled(0, n)
    bw, n0 = problem.total_bandwidth_hz, problem.noise_psd_w_per_hz
    uplink = Uplink(links, n0)
    for t in (latency * 1.05, latency * 1.3):
        split = uplink.split(t, bw)
        assert (split.bandwidth_hz <= uplink.floor(t).bandwidth_hz * (1 + 1e-12)).any()
        _, ref_energy = _reference_split(links, t, bw, n0)
        bound = partial(dual_energy_j, t, total_bandwidth_hz=bw, links=uplink.constants,
                        tables=TABLES, max_arg=MAX_ARG)  # fmt: skip
        assert bound(split.log_price) == pytest.approx(ref_energy, rel=1e-9)
        for shift in (-3.0, -0.3, -0.01, 0.01, 0.3, 3.0):
            assert bound(split.log_price + shift) < ref_energy


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_min_latency_matches_brentq(seed: int) -> None:
    """Smallest ``T`` with ``sum b_min(T) = B``, including a device near its pole (weak gain)."""
    problem, links, _ = _scheduled(seed, 25)
    gain, budget = links.gain_lin.copy(), links.energy_budget_j.copy()
    gain[0], budget[0] = gain[0] * 1e-2, 1e3  # power-limited; its floor's pole is close
    links = dataclasses.replace(links, gain_lin=gain, energy_budget_j=budget)
    bw, n0 = problem.total_bandwidth_hz, problem.noise_psd_w_per_hz
    t_hi = 1e3 * problem.deadline_s
    ours = min_latency_s(links, bw, n0, t_hi)

    def excess(t: float) -> float:
        total = floor_hz(links, t, n0)[0].sum()
        return (total - bw) / bw if np.isfinite(total) else 1e300

    ref = brentq(excess, float(np.max(links.busy_s)) + 1e-9, t_hi, xtol=1e-13, rtol=1e-14)
    assert ours == pytest.approx(ref, rel=1e-9)
    assert floor_hz(links, ours, n0)[0].sum() <= bw * (1.0 + 1e-10)
    assert min_latency_s(links, bw, n0, 0.99 * ours) == np.inf


def test_option_values_match_the_radio_helpers() -> None:
    """Lazy floors, in-place arithmetic and warm starts vs the direct formula on every option."""
    problem = random_problem(400, 5, np.random.default_rng(6))
    table = OptionTable(problem)
    adm = admit(problem, np.ones(problem.payload_bits.shape, dtype=bool), table)
    n0, links = problem.noise_psd_w_per_hz, table.links
    step = solve(problem, "all_tokens")
    for t, price in ((step.latency_s, 1e-4), (step.latency_s * 1.01, 1.02e-4), (adm.t_hi, 3e-6)):
        value, ste = option_values(table, adm.usable, t, price)
        b_min, x_min = floor_hz(links, t, n0)
        tau = np.where(np.isfinite(b_min), t - links.busy_s, 1.0)
        b_price, _ = bandwidth_at_price_hz(links.payload_bits, tau, links.gain_lin, n0, price)
        b = np.maximum(b_price, b_min)
        with np.errstate(invalid="ignore"):  # options without a floor: masked below
            tx = tx_energy_j(links.payload_bits, tau, b, links.gain_lin, n0)
        ref = problem.retention - problem.energy_price_per_j * (
            links.compute_energy_j + tx + price * b
        )
        ok = adm.usable & np.isfinite(b_min)
        assert np.array_equal(np.isfinite(value), ok)
        np.testing.assert_allclose(value[ok], ref[ok], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ste[ok], problem.retention[ok] / tx[ok], rtol=1e-9)


def test_option_min_latency_matches_both_upload_terms() -> None:
    problem = random_problem(300, 4, np.random.default_rng(8), energy_budget_j=np.full(300, 0.8))
    n0, bw, s = problem.noise_psd_w_per_hz, problem.total_bandwidth_hz, problem.payload_bits
    t_min, power_binds = option_min_latency_s(problem)
    tau_pow = s / rate_bps(bw, problem.max_power_w, problem.gain_lin, n0)[:, None]
    m = (problem.energy_budget_j[:, None] - problem.compute_energy_j) * problem.gain_lin[:, None]
    m /= n0 * s * LN2
    with np.errstate(invalid="ignore", divide="ignore"):
        tau_en = np.where(m > 1.0, s * LN2 / (inv_expm1_ratio(m) * bw), np.inf)
    busy = problem.compute_time_s + problem.fixed_latency_s[:, None]
    np.testing.assert_allclose(t_min, busy + np.maximum(tau_pow, tau_en), rtol=1e-12)
    assert np.array_equal(power_binds, tau_pow >= tau_en)
    assert power_binds.any() and not power_binds.all()


def test_row_reductions_match_numpy() -> None:
    rng = np.random.default_rng(9)
    a = rng.integers(0, 4, (500, 5)).astype(float)  # many ties
    a[rng.random(a.shape) < 0.2] = np.inf
    np.testing.assert_array_equal(row_min(a), a.min(axis=1))
    np.testing.assert_array_equal(row_argmin(a), np.argmin(a, axis=1))
    mask = rng.random((500, 5)) < 0.1
    np.testing.assert_array_equal(row_any(mask), mask.any(axis=1))
