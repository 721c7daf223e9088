"""Problem families beside ``random_problem``'s defaults: the regimes that stress the solver.

Each family draws a ``RoundProblem`` from ``random_problem`` with some fields replaced (issue #19
item 3; all draws from the caller's ``np.random.Generator``, one seed fixes the problem):

* ``random``: ``random_problem`` as is (5 token options, ``mu_E = 0.1 /J``).
* ``deep_fades``: Rayleigh ``|h|^2 ~ Exp(1)`` with no floor on top of 100-130 dB path loss, and
  one device in ten in an extra 20-40 dB fade (a blocked or shadowed link).
* ``many_options``: 12 token options.
* ``high_energy_price``: ``mu_E = 5 /J`` (energy dominates the objective).
* ``tight_deadline``: the deadline at 0.6x ``random_problem``'s (many devices cannot make it,
  the rest crowd the band).
* ``independent``: the issue's independent generator: 8 token options, ``mu_E = 5 /J``,
  Rayleigh gains with no floor, ``B = 0.7 MHz`` per device, 5 s deadline, payloads
  ``16 (k + 1) 192 * 32`` bits (16 samples of ``k + 1`` 192-d float32 tokens). Not stated
  there, chosen here so that the round is worth running at ``mu_E = 5 /J``: path loss 90-120 dB
  and a tenth of ``random_problem``'s device cycles (a device running a few ViT blocks).

In every family ``mu_T = 0.2 N / deadline`` (``random_problem``'s rule).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from wsim.optimizer.generate import random_problem
from wsim.optimizer.problem import RoundProblem

_DEFAULT_OPTIONS = 5


def _random(n: int, rng: np.random.Generator) -> RoundProblem:
    return random_problem(n, _DEFAULT_OPTIONS, rng)


def _deep_fades(n: int, rng: np.random.Generator) -> RoundProblem:
    gain = 10.0 ** (-rng.uniform(100.0, 130.0, n) / 10.0) * rng.exponential(1.0, n)
    deep = rng.random(n) < 0.1
    gain[deep] *= 10.0 ** (-rng.uniform(20.0, 40.0, int(deep.sum())) / 10.0)
    return random_problem(n, _DEFAULT_OPTIONS, rng, gain_lin=gain)


def _many_options(n: int, rng: np.random.Generator) -> RoundProblem:
    return random_problem(n, 12, rng)


def _high_energy_price(n: int, rng: np.random.Generator) -> RoundProblem:
    return random_problem(n, _DEFAULT_OPTIONS, rng, energy_price_per_j=5.0)


def _tight_deadline(n: int, rng: np.random.Generator) -> RoundProblem:
    base = random_problem(n, _DEFAULT_OPTIONS, rng)
    deadline_s = 0.6 * base.deadline_s
    return dataclasses.replace(
        base, deadline_s=deadline_s, latency_price_per_s=0.2 * n / deadline_s
    )


def _independent(n: int, rng: np.random.Generator) -> RoundProblem:
    num_options = 8
    tokens = np.round(196 * np.arange(1, num_options + 1) / num_options)
    payload = np.broadcast_to(16.0 * (tokens + 1.0) * 192.0 * 32.0, (n, num_options))
    gain = 10.0 ** (-rng.uniform(90.0, 120.0, n) / 10.0) * rng.exponential(1.0, n)
    cycles = rng.uniform(1e8, 5e8, n)[:, None] * (0.9 + 0.1 * tokens / 196)
    return random_problem(
        n,
        num_options,
        rng,
        gain_lin=gain,
        device_cycles=cycles,
        payload_bits=payload.copy(),
        total_bandwidth_hz=0.7e6 * n,
        deadline_s=5.0,
        energy_price_per_j=5.0,
    )


FAMILIES: dict[str, Callable[[int, np.random.Generator], RoundProblem]] = {
    "random": _random,
    "deep_fades": _deep_fades,
    "many_options": _many_options,
    "high_energy_price": _high_energy_price,
    "tight_deadline": _tight_deadline,
    "independent": _independent,
}


def family_problem(name: str, num_devices: int, rng: np.random.Generator) -> RoundProblem:
    """Draw a ``num_devices``-device problem of the family ``name`` (a key of ``FAMILIES``).

    Raises:
        ValueError: on an unknown family (the message names the valid ones).
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown problem family {name!r}; valid: {sorted(FAMILIES)}")
    return FAMILIES[name](num_devices, rng)
