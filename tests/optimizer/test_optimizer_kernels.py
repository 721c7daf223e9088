"""The compiled Halley loops (``kernels``, small arrays) against the numpy passes (large ones)."""

from __future__ import annotations

import numpy as np

from wsim.optimizer import inverse
from wsim.optimizer.inverse import COMPILED_MAX_SIZE, inv_expm1_ratio, inv_marginal, refine_marginal


def _s(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    s = np.exp(rng.uniform(-30.0, 30.0, n))
    s[:3] = (0.0, 1e-300, 1e300)  # zero, denormal-ish, above the argument cap
    return s


def _series_residual(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``|G(x) / s - 1|`` with ``G`` by its series (exact for ``x < 1e-3``, where it cancels)."""
    return np.abs(x * x * (0.5 + x * (1.0 / 3.0 + x * (1.0 / 8.0 + x / 30.0))) / s - 1.0)


def test_compiled_inv_marginal_matches_numpy_cold_and_warm() -> None:
    s = _s(500)
    well = s >= 1e-6  # below, (G(x) - s) e^{-x} cancels in both: checked by its residual
    cold = inv_marginal(s)
    np.testing.assert_allclose(cold[well], inverse._inv_marginal_numpy(s)[well], rtol=1e-12)
    tiny = ~well & (s > 1e-200)  # (at ~1e-300 the warm step underflows: x stays put)
    assert _series_residual(cold[tiny], s[tiny]).max() < 1e-7
    warm = inv_marginal(s * 1.03, cold)
    # the cold numpy passes stop after 3 steps (~1e-11 off near s = 2, the start's switch); a
    # warm element iterates until its own step is tiny: compare loosely, check the residual
    ref = inverse._inv_marginal_numpy(s * 1.03)
    np.testing.assert_allclose(warm[well], ref[well], rtol=1e-9)
    mid = well & (s < 1e200)  # (above 1e250 the argument is capped)
    x = warm[mid]
    assert np.abs(((x - 1.0) * np.exp(x) + 1.0) / (1.03 * s[mid]) - 1.0).max() < 1e-10
    assert _series_residual(warm[tiny], 1.03 * s[tiny]).max() < 1e-7
    far = np.full(s.shape, 1e-90)  # a poor warm start falls back to the cold start per element
    np.testing.assert_allclose(inv_marginal(s, far)[well], cold[well], rtol=1e-12)
    assert cold[0] == 0.0 and np.all(cold[1:] > 0.0)


def test_compiled_refine_marginal_matches_numpy() -> None:
    s = _s(200)[3:]
    x = inv_marginal(s)
    ours, exact = refine_marginal(s * 1.05, x)
    ref, ref_exact = inverse._refine_marginal_numpy(s * 1.05, x)
    well = s >= 1e-6  # below, the step's (G(x) - s) e^{-x} cancels: libm's last bits show
    np.testing.assert_allclose(ours[well], ref[well], rtol=1e-13)
    np.testing.assert_allclose(ours[~well], ref[~well], rtol=1e-8)
    assert exact == ref_exact


def test_compiled_inv_expm1_ratio_matches_numpy() -> None:
    m = 1.0 + _s(400)
    m[3:6] = (0.5, 1.0, 1.0 + 1e-9)  # no root, no root, next to the branch point
    cold = inv_expm1_ratio(m)
    ref = inverse._inv_expm1_ratio_numpy(m)
    assert np.array_equal(np.isnan(cold), np.isnan(ref)) and np.isnan(cold[3:5]).all()
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(cold[ok], ref[ok], rtol=1e-12)
    warm = inv_expm1_ratio(m * 1.02, np.where(ok, cold, 1.0))
    ref_warm = inverse._inv_expm1_ratio_numpy(m * 1.02)
    ok = ~np.isnan(ref_warm)
    np.testing.assert_allclose(warm[ok], ref_warm[ok], rtol=1e-12)


def test_large_arrays_take_the_numpy_passes_with_the_same_results() -> None:
    s = _s(COMPILED_MAX_SIZE + 1)
    # below s = 1e-6 (m - 1 = 1e-6) both cancel and the CPU's libm shows in the last bits
    well = s >= 1e-6
    big = inv_marginal(s)
    small = np.concatenate([inv_marginal(s[:2000]), inv_marginal(s[2000:])])
    np.testing.assert_allclose(big[well], small[well], rtol=1e-12, atol=0.0)
    np.testing.assert_allclose(big[~well], small[~well], rtol=1e-8, atol=0.0)
    m = 1.0 + s
    big = inv_expm1_ratio(m)
    small = np.concatenate([inv_expm1_ratio(m[:2000]), inv_expm1_ratio(m[2000:])])
    np.testing.assert_allclose(big[well], small[well], rtol=1e-12)
    np.testing.assert_allclose(big[~well], small[~well], rtol=1e-5)
