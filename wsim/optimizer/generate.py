"""Random but physically plausible round problems for tests and benchmarks.

Values (all drawn from the caller's ``np.random.Generator``): path loss uniform in 100-130 dB with
Rayleigh fading ``|h|^2 ~ Exp(1)``; ``B = 20 MHz``; ``N0 = -174 dBm/Hz + 9 dB``; ``p_max = 0.2 W``;
``f`` uniform in 0.5-2 GHz; ``kappa = 1e-28``; ViT-B/16 with 196 patch tokens, options
``k_j = round(196 (j + 1) / J)``; payload ``S_ij = S_i (k_j + 1) / 197`` with ``S_i`` log-uniform
in 1e6-1e7 bits (so 1e5-1e7 bits overall); retention concave in the kept fraction,
``rho_ij = (1 - exp(-a_i k_j / K)) / (1 - exp(-a_i))``, ``a_i ~ U(2, 6)``; device cycles
``C_i (0.9 + 0.1 k_j / K)``, ``C_i ~ U(1e9, 5e9)``; server + download ``T_fix ~ U(0.2, 1) s``;
energy budget ``U(1, 5) J``. The deadline is 1.2x the 90th percentile of the latency at equal
bandwidth, full power and all tokens (so most, not all, devices can make it); prices
``mu_E = 0.1 /J`` and ``mu_T = 0.2 N / deadline`` (latency costs up to ~0.2 per device).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from wsim.optimizer.problem import RoundProblem
from wsim.optimizer.radio import rate_bps

_NUM_PATCH_TOKENS = 196


def _noise_psd_w_per_hz(noise_figure_db: float = 9.0) -> float:
    """``N0 = -174 dBm/Hz + NF`` in W/Hz (DESIGN.md §2)."""
    return 10.0 ** ((-174.0 + noise_figure_db - 30.0) / 10.0)


def random_problem(
    num_devices: int, num_options: int, rng: np.random.Generator, **overrides: Any
) -> RoundProblem:
    """Draw a ``RoundProblem`` with ``num_devices`` devices and ``num_options`` token options.

    Args:
        num_devices: ``N >= 1``.
        num_options: ``J >= 1``.
        rng: the random stream (no global RNG is used).
        **overrides: any ``RoundProblem`` field, replacing the drawn/default value.

    Raises:
        ValueError: on an unknown override name or a malformed value.
    """
    valid = {f.name for f in fields(RoundProblem)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown RoundProblem field(s) {unknown}; valid: {sorted(valid)}")
    if num_devices < 1 or num_options < 1:
        raise ValueError("num_devices and num_options must be >= 1")
    n, k_max = num_devices, _NUM_PATCH_TOKENS
    tokens = np.round(k_max * np.arange(1, num_options + 1) / num_options)
    frac = tokens / k_max
    pathloss_db = rng.uniform(100.0, 130.0, n)
    gain = 10.0 ** (-pathloss_db / 10.0) * rng.exponential(1.0, n)
    full_bits = 10.0 ** rng.uniform(6.0, 7.0, n)
    payload = full_bits[:, None] * (tokens + 1.0) / (k_max + 1.0)
    shape = rng.uniform(2.0, 6.0, n)[:, None]
    retention = -np.expm1(-shape * frac) / -np.expm1(-shape)
    cycles = rng.uniform(1e9, 5e9, n)[:, None] * (0.9 + 0.1 * frac)
    values: dict[str, Any] = {
        "gain_lin": gain,
        "cpu_hz": rng.uniform(0.5e9, 2e9, n),
        "kappa": 1e-28,
        "max_power_w": np.full(n, 0.2),
        "energy_budget_j": rng.uniform(1.0, 5.0, n),
        "token_counts": tokens,
        "payload_bits": payload,
        "device_cycles": cycles,
        "retention": retention,
        "fixed_latency_s": rng.uniform(0.2, 1.0, n),
        "total_bandwidth_hz": 20e6,
        "noise_psd_w_per_hz": _noise_psd_w_per_hz(),
        "min_retention": 0.4,
        "energy_price_per_j": 0.1,
    }
    values.update(overrides)
    if "deadline_s" not in values:
        values["deadline_s"] = _default_deadline_s(values)
    values.setdefault("latency_price_per_s", 0.2 * n / float(values["deadline_s"]))
    return RoundProblem(**values)


def _default_deadline_s(values: dict[str, Any]) -> float:
    """1.2x the 90th-percentile latency at ``b = B/N``, ``p = p_max``, largest option (s)."""
    gain = np.asarray(values["gain_lin"], dtype=np.float64)
    n = gain.shape[0]
    rate = rate_bps(
        values["total_bandwidth_hz"] / n,
        np.asarray(values["max_power_w"]),
        gain,
        values["noise_psd_w_per_hz"],
    )
    payload = np.asarray(values["payload_bits"])[:, -1]
    cycles = np.asarray(values["device_cycles"])[:, -1]
    latency = cycles / np.asarray(values["cpu_hz"]) + payload / rate + values["fixed_latency_s"]
    return float(1.2 * np.quantile(latency, 0.9))


def frozen_problem(
    num_devices: int,
    rng: np.random.Generator,
    token_counts: Sequence[float],
    bits_per_token: float,
    total_bandwidth_hz: float,
    energy_price_per_j: float = 0.0,
    latency_price_per_s: float = 0.0,
    standing_time_s: np.ndarray | None = None,
) -> RoundProblem:
    """A small ST-SFLora round of frozen devices (forward-only compute), for tests and benches.

    Payload ``bits_per_token (K + 2)`` (the kept tokens, [CLS] and the merged token), concave
    retention ``rho(K) = 1 - (1 - K / 64)^2``, ``2e8`` device cycles whatever ``K``; path loss
    105-125 dB, ``f`` in 0.5-2 GHz, ``kappa = 1e-28``, ``p_max = 0.2 W``, budgets 0.5-2 J, fixed
    latency 10-50 ms, ``N0 = -174 dBm/Hz``, deadline 100 s (drawn in that order from ``rng``).
    """
    n, k = num_devices, np.asarray(token_counts, dtype=float)
    return RoundProblem(
        gain_lin=10 ** rng.uniform(-12.5, -10.5, n), cpu_hz=rng.uniform(0.5e9, 2e9, n),
        kappa=1e-28, max_power_w=np.full(n, 0.2), energy_budget_j=rng.uniform(0.5, 2.0, n),
        token_counts=k, payload_bits=np.tile(bits_per_token * (k + 2), (n, 1)),
        device_cycles=np.full((n, len(k)), 2e8), retention=np.tile(1 - (1 - k / 64) ** 2, (n, 1)),
        fixed_latency_s=rng.uniform(0.01, 0.05, n), total_bandwidth_hz=total_bandwidth_hz,
        noise_psd_w_per_hz=_noise_psd_w_per_hz(0.0), deadline_s=100.0,
        energy_price_per_j=energy_price_per_j, latency_price_per_s=latency_price_per_s,
        min_retention=0.0, standing_time_s=standing_time_s,
    )  # fmt: skip
