"""Compiled (numba) per-device loops of the split, in blocks with their own partial sums.

Every loop over devices of ``split_kernels`` runs here in blocks of ``BLOCK`` devices; a block
writes its elements and its partial sums (``partials[block, :]``), and the caller adds the
partials in block order. From ``PARALLEL_MIN_SIZE`` devices the blocks run on every core
(``prange``), below in one thread: the numbers are the same either way and on any number of
cores (one seed, one trace). Each ``*_parallel`` driver repeats its block function's
arguments because a parallel loop takes arrays, not tuples of them (the tuples travel
unpacked). The formulas are ``uplink``'s (its docstrings derive them).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from wsim.optimizer.kernels import marginal_root, ratio_root
from wsim.optimizer.radio import MAX_EXPONENT

# Entry points (called from Python) are cached on disk; the functions they call are not: a
# function compiled for several callers (threaded and not) would get several cache entries,
# and processes writing different entries at once can leave an index pointing at the wrong
# code. The entry points' caches hold their callees' code.
_INNER = {"cache": False, "nogil": True, "error_model": "numpy"}

PARALLEL_MIN_SIZE = 4096  # devices from which the blocks run on every core
BLOCK = 256  # devices per block
AT_POWER_RTOL = 1e-12  # a floor is at p_max (not the energy budget) within this
FINISH_TERMS = 9  # partial sums of finish_block


@numba.njit(inline="always", **_INNER)
def num_blocks(n: int) -> int:
    """Blocks of ``BLOCK`` covering ``n`` devices."""
    return (n + BLOCK - 1) // BLOCK


@numba.njit(inline="always", **_INNER)
def cap_ratios(
    gain_per_n0: float,
    bits_nats: float,
    max_power_w: float,
    energy_budget_j: float,
    compute_energy_j: float,
) -> tuple[float, float]:
    """A link's power cap as ``m = expm1(x)/x`` (``uplink.Uplink``): ``ratio_per_s = p_max g /
    (N0 S ln2)`` (1/s; ``m = ratio_per_s tau`` at the power limit) and ``ratio_budget =
    max(E_max - E_comp, 0) g / (N0 S ln2)`` (``m`` at the energy budget); the operations of
    ``Uplink``'s numpy ones, so the same numbers bit for bit."""
    per_joule = gain_per_n0 / bits_nats
    spare_j = np.maximum(energy_budget_j - compute_energy_j, 0.0)
    return max_power_w * per_joule, spare_j * per_joule


@numba.njit(inline="always", **_INNER)
def _at_power(ratio_per_s: float, upload_s: float, ratio_budget: float) -> bool:
    """Whether a floor is set by the power limit (``m = ratio_per_s tau``), not the budget."""
    return ratio_per_s * upload_s <= ratio_budget * (1.0 + AT_POWER_RTOL)


@numba.njit(inline="always", **_INNER)
def _floor_phi(x: float, em1: float) -> tuple[float, float]:
    """Floor factor ``phi = 1 + expm1(x) / G(x)`` at the power limit and ``G(x)``.

    Implicit differentiation of ``expm1(x)/x = m`` with ``m`` growing like ``tau`` gives
    ``dx/dtau = x (phi - 1) / tau``, hence ``d b_min / dT = -phi b_min / tau``; at the energy
    budget ``m`` and ``x`` are constant and ``phi = 1`` (the callers' case).
    """
    g_x = (x - 1.0) * em1 + x
    return 1.0 + em1 / g_x, g_x


@numba.njit(**_INNER)
def marginal_min_block(
    k: int,
    bits_nats: np.ndarray,
    upload_s: np.ndarray,
    gain_per_n0: np.ndarray,
    total_bandwidth_hz: float,
    partials: np.ndarray,
) -> None:
    """``partials[k, 0] = min a_i G(x_i(B))`` over block ``k`` (the whole band each)."""
    low = np.inf
    for i in range(k * BLOCK, min(bits_nats.size, (k + 1) * BLOCK)):
        x = bits_nats[i] / (upload_s[i] * total_bandwidth_hz)
        low = min(low, ((x - 1.0) * math.expm1(x) + x) * upload_s[i] / gain_per_n0[i])
    partials[k, 0] = low


@numba.njit(parallel=True, **_INNER)
def marginal_min_parallel(
    bits_nats: np.ndarray,
    upload_s: np.ndarray,
    gain_per_n0: np.ndarray,
    total_bandwidth_hz: float,
    partials: np.ndarray,
) -> None:
    """``marginal_min_block`` over every block on every core."""
    for k in numba.prange(num_blocks(bits_nats.size)):
        marginal_min_block(k, bits_nats, upload_s, gain_per_n0, total_bandwidth_hz, partials)


@numba.njit(**_INNER)
def price_block(
    k: int,
    price: float,
    inv_a: np.ndarray,
    ratio: np.ndarray,
    upload_s: np.ndarray,
    bits_nats: np.ndarray,
    x_floor: np.ndarray,
    known: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    x: np.ndarray,
    clip: np.ndarray,
    b: np.ndarray,
    partials: np.ndarray,
) -> None:
    """Block ``k`` at the price: ``x = G^{-1}(price inv_a)``, clipped to its floor where
    ``expm1(x) > m x`` (the floor inverted once, ``known``), and ``b``. Partials: ``sum b``,
    ``sum -d b / d log lambda`` (the free devices') and the number of free devices."""
    total = slope = free = 0.0
    for i in range(k * BLOCK, min(inv_a.size, (k + 1) * BLOCK)):
        s = min(inv_a[i] * price, max_arg)
        xi, em = marginal_root(s, tables[0], tables[1])
        x[i] = xi
        if em > ratio[i] * xi:
            clip[i] = True
            if not known[i]:
                x_floor[i] = ratio_root(ratio[i], tables[2], tables[3], max_arg)
                known[i] = True
            bi = bits_nats[i] / (upload_s[i] * x_floor[i])
        else:
            clip[i] = False
            bi = bits_nats[i] / (upload_s[i] * xi)
            slope += bi * s / ((1.0 + em) * xi * xi)
            free += 1.0
        b[i] = bi
        total += bi
    partials[k, 0], partials[k, 1], partials[k, 2] = total, slope, free


@numba.njit(parallel=True, **_INNER)
def price_parallel(
    price: float,
    inv_a: np.ndarray,
    ratio: np.ndarray,
    upload_s: np.ndarray,
    bits_nats: np.ndarray,
    x_floor: np.ndarray,
    known: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    x: np.ndarray,
    clip: np.ndarray,
    b: np.ndarray,
    partials: np.ndarray,
) -> None:
    """``price_block`` over every block on every core."""
    t0, t1, t2, t3 = tables
    for k in numba.prange(num_blocks(inv_a.size)):
        price_block(
            k, price, inv_a, ratio, upload_s, bits_nats, x_floor, known, (t0, t1, t2, t3),
            max_arg, x, clip, b, partials,
        )  # fmt: skip


@numba.njit(**_INNER)
def finish_block(
    k: int,
    price: float,
    upload_s: np.ndarray,
    x: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    clip: np.ndarray,
    gain_per_n0: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    max_power_w: np.ndarray,
    partials: np.ndarray,
) -> None:
    """``split_kernels.finish_split``'s sums over block ``k``: ``q`` (``b phi / tau`` on a
    floor, ``b / tau`` free), ``q eta``, ``b eta``, ``q eta / tau``, ``q / tau`` (free devices;
    ``eta = s e^{-x} / x^2``), ``p_max`` (floors at the power limit), ``q (d log phi / dT -
    (phi + 1) / tau)`` (floors), ``E_tx`` and the number of ``x`` past ``MAX_EXPONENT``."""
    sums = np.zeros(FINISH_TERMS)
    for i in range(k * BLOCK, min(b.size, (k + 1) * BLOCK)):
        tau = upload_s[i]
        if clip[i]:
            xe = x_floor[i]
            em1 = math.expm1(xe)
            if _at_power(ratio_per_s[i], tau, ratio_budget[i]):  # at p_max
                phi, g_x = _floor_phi(xe, em1)
                dphi_dx = (em1 + 1.0) * (xe - em1) / (g_x * g_x)
                dlog_phi = dphi_dx * xe * (phi - 1.0) / (tau * phi)
                sums[5] += max_power_w[i]
            else:  # at the energy budget
                phi, dlog_phi = 1.0, 0.0
            q = b[i] / tau * phi
            sums[6] += q * (dlog_phi - (phi + 1.0) / tau)
        else:
            xe = x[i]
            em1 = math.expm1(xe)
            eta = gain_per_n0[i] / tau * price / ((1.0 + em1) * xe * xe)  # s e^{-x} / x^2
            q = b[i] / tau
            q_eta = q * eta
            sums[1] += q_eta
            sums[2] += b[i] * eta
            sums[3] += q_eta / tau
            sums[4] += q / tau
        sums[0] += q
        sums[7] += em1 * b[i] * tau / gain_per_n0[i]
        if not xe < MAX_EXPONENT:
            sums[8] += 1.0
    partials[k, :] = sums


@numba.njit(parallel=True, **_INNER)
def finish_parallel(
    price: float,
    upload_s: np.ndarray,
    x: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    clip: np.ndarray,
    gain_per_n0: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    max_power_w: np.ndarray,
    partials: np.ndarray,
) -> None:
    """``finish_block`` over every block on every core."""
    for k in numba.prange(num_blocks(b.size)):
        finish_block(
            k, price, upload_s, x, x_floor, b, clip, gain_per_n0, ratio_per_s, ratio_budget,
            max_power_w, partials,
        )  # fmt: skip


@numba.njit(inline="always", **_INNER)
def priced_element(
    upload_s: float,
    ratio: float,
    gain_per_n0: float,
    bits_nats: float,
    price: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
) -> tuple[float, float, float, bool]:
    """One link's ``min_{b >= b_min} E_tx(b) + lambda b`` (``tau = upload_s > 0``, ``m = ratio >
    1``): ``x`` (``G^{-1}(lambda g / (N0 tau))``, or the floor root where ``expm1(x) > m x``),
    ``b = S ln2 / (tau x)`` (Hz), ``E_tx = expm1(x) b tau N0 / g`` (J) and whether the marginal
    was capped at ``max_arg`` (then ``x`` is not the free minimiser)."""
    arg = gain_per_n0 / upload_s * price
    s = min(arg, max_arg)
    x, em = marginal_root(s, tables[0], tables[1])
    if em > ratio * x:  # the floor binds: x_eff = x_floor < x, expm1(x_floor) = m x_floor
        x = ratio_root(ratio, tables[2], tables[3], max_arg)
        em = ratio * x
    b = bits_nats / (upload_s * x)
    return x, b, em * b * upload_s / gain_per_n0, not arg <= max_arg


@numba.njit(**_INNER)
def dual_block(
    k: int,
    latency_s: float,
    price: float,
    links: tuple[np.ndarray, ...],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    partials: np.ndarray,
) -> None:
    """Block ``k``'s ``sum_i min_{b >= b_min,i(T)} E_tx,i(b) + lambda b`` (``priced_element``;
    ``links``: ``split_kernels.split_into``'s) and the number of its links where that minimum is
    not computed exactly (no floor, a capped marginal, ``x`` past ``MAX_EXPONENT``)."""
    busy_s, bits_nats, gain_per_n0, ratio_per_s, ratio_budget, _ = links
    total = bad = 0.0
    for i in range(k * BLOCK, min(busy_s.size, (k + 1) * BLOCK)):
        tau = latency_s - busy_s[i]
        m = min(ratio_per_s[i] * tau, ratio_budget[i])
        if not m > 1.0:
            bad += 1.0
            continue
        x, b, tx, capped = priced_element(
            tau, m, gain_per_n0[i], bits_nats[i], price, tables, max_arg
        )
        term = tx + price * b
        if capped or not (x < MAX_EXPONENT and math.isfinite(term)):
            bad += 1.0
            continue
        total += term
    partials[k, 0], partials[k, 1] = total, bad


@numba.njit(parallel=True, **_INNER)
def dual_parallel(
    latency_s: float,
    price: float,
    links: tuple[np.ndarray, ...],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    partials: np.ndarray,
) -> None:
    """``dual_block`` over every block on every core."""
    l0, l1, l2, l3, l4, l5 = links
    t0, t1, t2, t3 = tables
    for k in numba.prange(num_blocks(l0.size)):
        dual_block(
            k, latency_s, price, (l0, l1, l2, l3, l4, l5), (t0, t1, t2, t3), max_arg, partials
        )


@numba.njit(inline="always", **_INNER)
def floor_element(
    latency_s: float,
    busy_s: float,
    ratio_per_s: float,
    ratio_budget: float,
    bits_nats: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
) -> tuple[float, float, float, float]:
    """One link's floor at ``T``: ``tau = T - busy``, ``m = min(ratio_per_s tau, ratio_budget)``,
    ``x_floor`` (``expm1(x)/x = m``; ``nan`` where ``m <= 1``) and ``b_min = S ln2 / (tau
    x_floor)`` (Hz; ``inf`` there)."""
    t = latency_s - busy_s
    m = min(ratio_per_s * t, ratio_budget)
    x = ratio_root(m, tables[2], tables[3], max_arg)
    return t, m, x, (bits_nats / (t * x) if m > 1.0 else np.inf)


@numba.njit(**_INNER)
def floor_block(
    k: int,
    latency_s: float,
    busy_s: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    bits_nats: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    tau: np.ndarray,
    m: np.ndarray,
    x: np.ndarray,
    b: np.ndarray,
    with_slope: bool,
    partials: np.ndarray,
) -> None:
    """Floors of block ``k`` at ``T``: ``tau``, ``m``, ``x_floor`` (``nan`` where ``m <= 1``),
    ``b_min`` (``inf`` there). Partials: ``sum b_min`` and, ``with_slope``, ``d sum b_min / dT``
    (``-phi b / tau`` summed over the finite floors; else 0)."""
    total = slope = 0.0
    for i in range(k * BLOCK, min(busy_s.size, (k + 1) * BLOCK)):
        t, mi, xi, bi = floor_element(
            latency_s, busy_s[i], ratio_per_s[i], ratio_budget[i], bits_nats[i], tables, max_arg
        )
        tau[i], m[i], x[i], b[i] = t, mi, xi, bi
        total += bi
        if not mi > 1.0:
            continue
        if with_slope:
            phi = 1.0
            if _at_power(ratio_per_s[i], t, ratio_budget[i]):  # at p_max
                phi = _floor_phi(xi, math.expm1(xi))[0]
            slope -= bi / t * phi
    partials[k, 0], partials[k, 1] = total, slope


@numba.njit(parallel=True, **_INNER)
def floor_parallel(
    latency_s: float,
    busy_s: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    bits_nats: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    tau: np.ndarray,
    m: np.ndarray,
    x: np.ndarray,
    b: np.ndarray,
    with_slope: bool,
    partials: np.ndarray,
) -> None:
    """``floor_block`` over every block on every core."""
    t0, t1, t2, t3 = tables
    for k in numba.prange(num_blocks(busy_s.size)):
        floor_block(
            k, latency_s, busy_s, ratio_per_s, ratio_budget, bits_nats, (t0, t1, t2, t3),
            max_arg, tau, m, x, b, with_slope, partials,
        )  # fmt: skip


@numba.njit(**_INNER)
def floor_split_block(
    k: int,
    links: tuple[np.ndarray, ...],
    upload_s: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    partials: np.ndarray,
) -> None:
    """Block ``k`` with every device at its floor: partials ``max a G(x)`` (the floor
    marginal), ``sum p_max`` (floors at the power limit), ``sum -phi b / tau`` (``d b_min /
    dT``), ``sum E_tx`` and the number of ``x`` past ``MAX_EXPONENT``."""
    _, _, gain_per_n0, ratio_per_s, ratio_budget, max_power_w = links
    marginal = -np.inf
    power_w = slope = energy = over = 0.0
    for i in range(k * BLOCK, min(b.size, (k + 1) * BLOCK)):
        x, tau = x_floor[i], upload_s[i]
        em1 = math.expm1(x)
        marginal = max(marginal, ((x - 1.0) * em1 + x) * tau / gain_per_n0[i])
        phi = 1.0
        if _at_power(ratio_per_s[i], tau, ratio_budget[i]):  # at p_max
            phi = _floor_phi(x, em1)[0]
            power_w += max_power_w[i]
        slope -= b[i] / tau * phi
        energy += em1 * b[i] * tau / gain_per_n0[i]
        if not x < MAX_EXPONENT:
            over += 1.0
    partials[k, 0], partials[k, 1], partials[k, 2] = marginal, power_w, slope
    partials[k, 3], partials[k, 4] = energy, over


@numba.njit(parallel=True, **_INNER)
def floor_split_parallel(
    links: tuple[np.ndarray, ...],
    upload_s: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    partials: np.ndarray,
) -> None:
    """``floor_split_block`` over every block on every core."""
    l0, l1, l2, l3, l4, l5 = links
    for k in numba.prange(num_blocks(b.size)):
        floor_split_block(k, (l0, l1, l2, l3, l4, l5), upload_s, x_floor, b, partials)
