"""Compiled (numba) per-option passes of admission: single-device minimum latencies, floors.

``feasibility.admit`` needs two values for every option of every device (``[N, J]``, 1.2 M
entries at 100,000 devices and 12 options): ``T_min,ij`` (``feasibility.option_min_latency_s``)
and the bandwidth floor at ``t_hi`` (``uplink.Uplink.floor``'s ``b_min`` alone). As numpy
expressions they made a dozen ``[N, J]`` temporaries, whose fresh pages cost more than the
arithmetic at that size; here each is one pass writing only its outputs. Entries are
independent: from ``PARALLEL_MIN_OPTIONS`` entries the rows run on every core, with the same
numbers as one thread. The formulas are those of ``feasibility`` and ``uplink``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from wsim.optimizer.element_kernels import floor_element
from wsim.optimizer.kernels import ratio_root
from wsim.optimizer.option_kernels import PARALLEL_MIN_OPTIONS

# Entry points (called from Python) are cached on disk; the functions they call are not (see
# ``latency_kernels``).
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_INNER = {"cache": False, "nogil": True, "error_model": "numpy"}

_LN2 = math.log(2.0)


@numba.njit(**_INNER)
def _option_min_latency_row(
    i: int,
    payload_bits: np.ndarray,
    compute_energy_j: np.ndarray,
    busy_s: np.ndarray,
    device: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    total_bandwidth_hz: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    t_min_s: np.ndarray,
    power_binds: np.ndarray,
) -> None:
    """Row ``i`` of ``option_min_latency_into``."""
    r_max, ratio_pow, energy_budget_j, per_joule_bit = device
    for j in range(payload_bits.shape[1]):
        s = payload_bits[i, j]
        tau = s / r_max[i] if r_max[i] > 0.0 else np.inf
        m = (energy_budget_j[i] - compute_energy_j[i, j]) * per_joule_bit[i]
        m /= s
        energy = m < ratio_pow[i]  # the energy budget binds before the power limit
        if energy:
            x_en = ratio_root(m, tables[2], tables[3], max_arg)
            tau = s * _LN2 / (x_en * total_bandwidth_hz) if m > 1.0 else np.inf
        t_min_s[i, j] = tau + busy_s[i, j]
        power_binds[i, j] = not energy


@numba.njit(**_JIT)
def option_min_latency_into(
    payload_bits: np.ndarray,
    compute_energy_j: np.ndarray,
    busy_s: np.ndarray,
    device: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    total_bandwidth_hz: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    t_min_s: np.ndarray,
    power_binds: np.ndarray,
) -> None:
    """``feasibility.option_min_latency_s`` into ``t_min_s`` / ``power_binds`` (``[N, J]``).

    ``payload_bits``, ``compute_energy_j``, ``busy_s``: ``[N, J]``; ``device``: ``r(B, p_max)``
    (bit/s), ``expm1(x_pow)/x_pow``, ``E_max`` (J) and ``g / (N0 ln2)`` (``[N]``). Per option:
    ``tau_pow = S / r_max`` (``inf`` at ``r_max = 0``); ``m = (E_max - E_comp) g / (N0 S ln2)``;
    where ``m < expm1(x_pow)/x_pow`` the budget binds: ``tau = S ln2 / (x_en B)`` with
    ``expm1(x_en)/x_en = m`` (``inf`` for ``m <= 1``); ``T_min = tau + busy``.
    """
    args = (payload_bits, compute_energy_j, busy_s, device, total_bandwidth_hz, tables, max_arg,
            t_min_s, power_binds)  # fmt: skip
    if payload_bits.size >= PARALLEL_MIN_OPTIONS:
        _option_min_latency_parallel(*args)
    else:
        for i in range(payload_bits.shape[0]):
            _option_min_latency_row(i, *args)


@numba.njit(parallel=True, **_INNER)
def _option_min_latency_parallel(
    payload_bits: np.ndarray,
    compute_energy_j: np.ndarray,
    busy_s: np.ndarray,
    device: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    total_bandwidth_hz: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    t_min_s: np.ndarray,
    power_binds: np.ndarray,
) -> None:
    """``_option_min_latency_row`` for every row on every core (tuples travel unpacked)."""
    d0, d1, d2, d3 = device
    t0, t1, t2, t3 = tables
    for i in numba.prange(payload_bits.shape[0]):
        _option_min_latency_row(
            i, payload_bits, compute_energy_j, busy_s, (d0, d1, d2, d3), total_bandwidth_hz,
            (t0, t1, t2, t3), max_arg, t_min_s, power_binds,
        )  # fmt: skip


@numba.njit(**_INNER)
def _floor_row(
    i: int,
    latency_s: float,
    busy_s: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    bits_nats: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    b: np.ndarray,
) -> None:
    """Row ``i`` of ``floor_bandwidth_into``."""
    for j in range(busy_s.shape[1]):
        b[i, j] = floor_element(
            latency_s, busy_s[i, j], ratio_per_s[i, j], ratio_budget[i, j], bits_nats[i, j],
            tables, max_arg,
        )[3]  # fmt: skip


@numba.njit(**_JIT)
def floor_bandwidth_into(
    latency_s: float,
    busy_s: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    bits_nats: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    b: np.ndarray,
) -> None:
    """``uplink.Uplink.floor(T).bandwidth_hz`` of ``[N, J]`` constants into ``b`` (Hz): ``tau = T
    - busy``, ``m = min(ratio_per_s tau, ratio_budget)``, ``b_min = S ln2 / (tau x_floor)`` with
    ``expm1(x)/x = m`` (``inf`` where ``m <= 1``; ``element_kernels.floor_element``)."""
    args = (latency_s, busy_s, ratio_per_s, ratio_budget, bits_nats, tables, max_arg, b)
    if busy_s.size >= PARALLEL_MIN_OPTIONS:
        _floor_parallel(*args)
    else:
        for i in range(busy_s.shape[0]):
            _floor_row(i, *args)


@numba.njit(parallel=True, **_INNER)
def _floor_parallel(
    latency_s: float,
    busy_s: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    bits_nats: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    b: np.ndarray,
) -> None:
    """``_floor_row`` for every row on every core (tuples travel unpacked)."""
    t0, t1, t2, t3 = tables
    for i in numba.prange(busy_s.shape[0]):
        _floor_row(
            i, latency_s, busy_s, ratio_per_s, ratio_budget, bits_nats, (t0, t1, t2, t3),
            max_arg, b,
        )  # fmt: skip
