"""Every (device, token option) pair as an uplink, and the token step's option values.

DESIGN.md §5 (wsim's formulation in the spirit of ST-SFLora, arXiv 2605.26120): at a round
latency ``T`` and bandwidth price ``lambda`` (J/Hz) option ``j`` of device ``i`` is worth the
Lagrangian value ``rho_ij - mu_E (E_comp,ij + E_tx,ij + lambda b_ij)`` with ``b_ij`` what the
option takes at that price, ``max(b(lambda), b_min,ij(T))``, sent at the lowest power meeting
``T``. Arrays are ``[N, J]``; the constants are computed once per solve (``OptionTable``).
"""

from __future__ import annotations

import numpy as np

from wsim.optimizer.inverse import LN2, MAX_ARG, TABLES, Scratch
from wsim.optimizer.option_kernels import (
    gather_links,
    option_constants_into,
    option_values_into,
    row_min_argmin,
    token_step_into,
)
from wsim.optimizer.problem import RoundProblem
from wsim.optimizer.uplink import Links, Uplink

_NO_CURRENT = np.full(1, -1, dtype=np.int64)


def option_links(problem: RoundProblem, busy_s: np.ndarray | None = None) -> Links:
    """``Links`` over every (device, option) pair; arrays ``[N, J]`` (device ones broadcast).
    ``busy_s``: ``C/f + T_fix`` (s) when already computed."""
    shape = problem.payload_bits.shape
    if busy_s is None:
        busy_s = problem.compute_time_s + problem.fixed_latency_s[:, None]

    def full(v: np.ndarray) -> np.ndarray:
        return np.broadcast_to(v[:, None], shape)

    return Links(
        payload_bits=problem.payload_bits,
        busy_s=busy_s,
        compute_energy_j=problem.compute_energy_j,
        gain_lin=full(problem.gain_lin),
        max_power_w=full(problem.max_power_w),
        energy_budget_j=full(problem.energy_budget_j),
    )


def row_min(a: np.ndarray) -> np.ndarray:
    """``a.min(axis=1)`` for ``[N, J]`` float arrays without NaN (one compiled pass:
    ``option_kernels.row_min_argmin``)."""
    return row_min_argmin(np.ascontiguousarray(a, dtype=np.float64))[0]


def row_argmin(a: np.ndarray) -> np.ndarray:
    """``np.argmin(a, axis=1)`` (first minimum) for ``[N, J]`` float arrays without NaN."""
    return row_min_argmin(np.ascontiguousarray(a, dtype=np.float64))[1]


def row_any(a: np.ndarray) -> np.ndarray:
    """``a.any(axis=1)`` for boolean ``[N, J]`` arrays."""
    out = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        out |= a[:, j]
    return out


class OptionTable:
    """``option_links(problem)`` and its ``Uplink`` constants (``[N, J]``), built once per solve."""

    def __init__(self, problem: RoundProblem) -> None:
        p = self.problem = problem
        shape = p.payload_bits.shape
        busy_s, bits_nats, gain_per_n0, ratio_per_s, ratio_budget, bound = (
            np.empty(shape) for _ in range(6)
        )
        # option_links and its Uplink constants in one compiled pass, with the price-free part
        # of option_values' upper bound (option_kernels.option_values_into)
        option_constants_into(
            (p.compute_time_s, p.payload_bits, p.compute_energy_j, p.retention),
            (p.fixed_latency_s, p.gain_lin, p.max_power_w, p.energy_budget_j),
            p.noise_psd_w_per_hz,
            LN2,
            p.energy_price_per_j,
            (busy_s, bits_nats, gain_per_n0, ratio_per_s, ratio_budget, bound),
        )
        self.links = option_links(p, busy_s)
        self.uplink = Uplink(
            self.links,
            p.noise_psd_w_per_hz,
            constants=(bits_nats, gain_per_n0, ratio_per_s, ratio_budget),
        )
        self.scratch = Scratch(shape)  # [N, J] buffers of option_values
        self.value_bound = bound
        self.device_gain_per_n0 = p.gain_lin / p.noise_psd_w_per_hz  # g / N0 (1/J), [N]

        # what the compiled gathers read: the [N, J] link arrays, then the [N] ones
        self.sources = (
            (p.payload_bits, self.links.busy_s, self.links.compute_energy_j),
            (p.gain_lin, p.max_power_w, p.energy_budget_j),
        )

    def links_for(self, options: np.ndarray) -> Links:
        """``Links`` of the scheduled devices (``options >= 0``) at their options (``[n]``; one
        compiled gather, ``option_kernels.gather_links``)."""
        gathered = gather_links(*self.sources, np.asarray(options, dtype=np.int64))
        return Links(*gathered)


def token_inputs(table: OptionTable, usable: np.ndarray) -> tuple:  # type: ignore[type-arg]
    """The price-free inputs of ``option_kernels.token_step_into``: the ``[N, J]`` and ``[N]``
    arrays (``option_values_into``), ``mu_E`` and the value bound."""
    p = table.problem
    arrays = (
        table.links.busy_s,
        p.max_power_w,
        p.energy_budget_j,
        table.device_gain_per_n0,
        table.uplink.bits_nats,
        table.links.compute_energy_j,
        table.problem.retention,
        usable,
    )
    return arrays, table.problem.energy_price_per_j, table.value_bound


def _kernel_inputs(
    table: OptionTable, usable: np.ndarray, latency_s: float, price_j_per_hz: float
) -> tuple:  # type: ignore[type-arg]
    """The leading arguments of ``option_kernels.option_values_into`` / ``token_step_into``:
    the ``[N, J]`` inputs, ``T`` (s), ``lambda`` (J/Hz), ``mu_E``, the inverse tables, the
    value bound (``token_inputs``)."""
    arrays, energy_price, bound = token_inputs(table, usable)
    return (arrays, latency_s, price_j_per_hz, energy_price, TABLES, MAX_ARG, bound)


def option_values(
    table: OptionTable,
    usable: np.ndarray,
    latency_s: float,
    price_j_per_hz: float,
    current: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lagrangian value ``rho - mu_E (E + lambda b)`` and STE (1/J) of every option; ``[N, J]``.

    ``b = S ln2 / (tau min(x, x_floor))`` with ``x = G^{-1}(lambda / a)`` (the price) and
    ``x_floor`` the power cap (``uplink.Uplink``; floors are inverted only where they bind).
    Options that cannot meet ``latency_s`` (no floor) or are not ``usable`` get ``-inf``. With
    ``current`` (each device's option, ``[N]``, -1 = none) only what the token step needs is
    evaluated: the current option and, in decreasing order of an upper bound of the value
    (``option_kernels._row_values``), the options that could still beat or tie the best (the
    others get ``-inf``). Runs in the table's scratch buffers; the two results may be
    given back to ``table.scratch``.
    """
    value, ste = table.scratch.take(), table.scratch.take()
    prune = current is not None
    option_values_into(
        *_kernel_inputs(table, usable, latency_s, price_j_per_hz),
        current if prune else _NO_CURRENT,
        prune,
        value,
        ste,
    )
    return value, ste


def best_options(
    table: OptionTable,
    usable: np.ndarray,
    options: np.ndarray,
    latency_s: float,
    price_j_per_hz: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Each device's best option at ``(T, lambda)`` (-1 = sit out) and its gain over ``options``.

    The option of highest value (``option_values``; ties within ``1e-12`` relative go to the
    higher STE, then the lower index); a best value ``<= 0`` sits out (value 0). The gain is the
    proposal's value less that of the device's current option ``options[i]`` (0 for none).
    One compiled pass over the pruned options (``option_kernels.token_step_into``), ``[N]`` each.
    """
    options = np.asarray(options, dtype=np.int64)
    n = options.shape[0]
    proposal, gain = np.empty(n, dtype=np.int64), np.empty(n)
    token_step_into(
        *_kernel_inputs(table, usable, latency_s, price_j_per_hz), options, proposal, gain
    )
    return proposal, gain
