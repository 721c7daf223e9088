"""The per-round problem and its solution (DESIGN.md §5).

The formulation is wsim's own, built from the ST-SFLora abstract (Qiang, Chang, Min, arXiv
2605.26120): token selection, uplink bandwidth and transmit power under latency and energy
constraints, objective ``J = sum_i rho_ij - mu_E sum_i E_i - mu_T T``; a re-implementation in the
spirit of the paper, not its exact model (which is not public). All per-device quantities are
per-round totals over the device's local iterations.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np

INFEASIBLE_POLICIES = ("skip", "relax_deadline")
REASONS = ("", "deadline", "energy_budget", "power_limit", "retention_floor")

_DEVICE_FIELDS = ("gain_lin", "cpu_hz", "max_power_w", "energy_budget_j", "fixed_latency_s")
_OPTION_FIELDS = ("payload_bits", "device_cycles", "retention")
_POSITIVE_SCALARS = ("total_bandwidth_hz", "noise_psd_w_per_hz", "deadline_s")
_MAY_BE_INF = ("deadline_s",)
_NONNEG_SCALARS = ("energy_price_per_j", "latency_price_per_s")


def _as_array(name: str, value: object, ndim: int) -> np.ndarray:
    arr = np.array(value, dtype=np.float64, order="C")  # C order: one type for the kernels
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


@dataclass(frozen=True)
class RoundProblem:
    """One round's joint token / bandwidth / power problem (DESIGN.md §5); arrays are float64.

    Attributes:
        gain_lin: channel power gain ``g_i`` (linear), ``[N]``, > 0.
        cpu_hz: device CPU frequency ``f_i`` (Hz), ``[N]``, > 0.
        kappa: effective switched capacitance in ``E = kappa C f^2`` (J s^2 per cycle), scalar
            or ``[N]``, >= 0.
        max_power_w: transmit power limit ``p_max,i`` (W), ``[N]``, >= 0.
        energy_budget_j: per-round energy budget ``E_max,i`` (J), ``[N]``, >= 0.
        token_counts: candidate kept-token counts ``k_j``, ``[J]``, >= 0.
        payload_bits: upload payload ``S_ij`` (bits, side information included), ``[N, J]``, > 0.
        device_cycles: device CPU cycles ``C_ij``, ``[N, J]``, >= 0.
        retention: semantic retention ``rho_ij`` in [0, 1], ``[N, J]``.
        fixed_latency_s: server compute + download ``T_fix,i`` (s), ``[N]``, >= 0.
        total_bandwidth_hz: uplink bandwidth ``B`` (Hz), > 0.
        noise_psd_w_per_hz: noise power spectral density ``N0`` (W/Hz), > 0.
        deadline_s: round deadline ``T_max`` (s), > 0; ``inf`` = no deadline (nobody misses it:
            the solvers' latency bound is :attr:`latency_bound_s`).
        energy_price_per_j: ``mu_E`` (1/J), >= 0.
        latency_price_per_s: ``mu_T`` (1/s), >= 0.
        min_retention: retention floor ``rho_min``.
        infeasible_policy: ``"skip"`` drops devices that cannot meet the constraints;
            ``"relax_deadline"`` lets ``T`` exceed ``deadline_s`` to serve every device that some
            finite round latency makes feasible.
        latency_energy_weight: SFLAM's weight ``w`` in [0, 1] on latency vs energy.
        standing_time_s: ST-SFLora's mobility gate (PAPERS.md): how long each device is
            expected to stay in the cell, ``min((R_cell - d_i) / v_i, T_max)`` (s), ``[N]``,
            ``>= 0`` (``inf`` for a static device without deadline); None = no gate. Read
            by the solvers that use the gate; the others ignore it.
    """

    gain_lin: np.ndarray
    cpu_hz: np.ndarray
    kappa: np.ndarray | float
    max_power_w: np.ndarray
    energy_budget_j: np.ndarray
    token_counts: np.ndarray
    payload_bits: np.ndarray
    device_cycles: np.ndarray
    retention: np.ndarray
    fixed_latency_s: np.ndarray
    total_bandwidth_hz: float
    noise_psd_w_per_hz: float
    deadline_s: float
    energy_price_per_j: float
    latency_price_per_s: float
    min_retention: float
    infeasible_policy: str = "skip"
    latency_energy_weight: float = 0.5
    standing_time_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        setter = object.__setattr__
        for name in _DEVICE_FIELDS:
            setter(self, name, _as_array(name, getattr(self, name), 1))
        for name in _OPTION_FIELDS:
            setter(self, name, _as_array(name, getattr(self, name), 2))
        setter(self, "token_counts", _as_array("token_counts", self.token_counts, 1))
        kappa = np.array(self.kappa, dtype=np.float64)
        if kappa.ndim > 1 or not np.all(np.isfinite(kappa)):
            raise ValueError(f"kappa: expected a finite scalar or [N] array, got {kappa.shape}")
        if kappa.ndim == 0:
            kappa = np.full(self.payload_bits.shape[0], float(kappa))
        setter(self, "kappa", kappa)
        for name in (*_POSITIVE_SCALARS, *_NONNEG_SCALARS, "min_retention"):
            value = float(getattr(self, name))
            if not np.isfinite(value) and not (name in _MAY_BE_INF and value == np.inf):
                raise ValueError(f"{name}: must be finite, got {value}")
            setter(self, name, value)
        setter(self, "latency_energy_weight", float(self.latency_energy_weight))
        if self.standing_time_s is not None:
            standing = np.array(self.standing_time_s, dtype=np.float64)
            if standing.shape != self.payload_bits.shape[:1]:
                raise ValueError(
                    f"standing_time_s: shape {standing.shape}, expected ({self.payload_bits.shape[0]},)"
                )
            if np.any(np.isnan(standing)) or np.any(standing < 0.0):
                raise ValueError("standing_time_s: must be >= 0 (inf allowed), not NaN")
            setter(self, "standing_time_s", standing)
        self._check_shapes()
        self._check_ranges()

    def _check_shapes(self) -> None:
        n, j = self.payload_bits.shape[0], self.token_counts.shape[0]
        if j == 0:
            raise ValueError("token_counts: at least one token option is needed")
        for name in (*_DEVICE_FIELDS, "kappa"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name}: shape {getattr(self, name).shape}, expected ({n},)")
        for name in _OPTION_FIELDS:
            if getattr(self, name).shape != (n, j):
                raise ValueError(f"{name}: shape {getattr(self, name).shape}, expected ({n}, {j})")

    def _check_ranges(self) -> None:
        positive = ("gain_lin", "cpu_hz", "payload_bits", *_POSITIVE_SCALARS)
        for name in positive:
            if np.any(np.asarray(getattr(self, name)) <= 0.0):
                raise ValueError(f"{name}: must be > 0")
        nonneg = ("kappa", "max_power_w", "energy_budget_j", "token_counts", "device_cycles")
        for name in (*nonneg, "fixed_latency_s", *_NONNEG_SCALARS):
            if np.any(np.asarray(getattr(self, name)) < 0.0):
                raise ValueError(f"{name}: must be >= 0")
        if np.any((self.retention < 0.0) | (self.retention > 1.0)):
            raise ValueError("retention: must lie in [0, 1]")
        if self.infeasible_policy not in INFEASIBLE_POLICIES:
            raise ValueError(
                f"infeasible_policy: {self.infeasible_policy!r}, expected one of "
                f"{INFEASIBLE_POLICIES}"
            )
        if not 0.0 <= self.latency_energy_weight <= 1.0:
            raise ValueError("latency_energy_weight: must lie in [0, 1]")

    @property
    def num_devices(self) -> int:
        """Number of devices ``N``."""
        return int(self.gain_lin.shape[0])

    @property
    def num_options(self) -> int:
        """Number of token options ``J``."""
        return int(self.token_counts.shape[0])

    def subset(self, devices: np.ndarray) -> RoundProblem:
        """The same round restricted to ``devices`` (indices or a ``[N]`` mask)."""
        per_device = {
            name: getattr(self, name)[devices]
            for name in (*_DEVICE_FIELDS, *_OPTION_FIELDS, "kappa")
        }
        if self.standing_time_s is not None:
            per_device["standing_time_s"] = self.standing_time_s[devices]
        return dataclasses.replace(self, **per_device)

    @property
    def has_deadline(self) -> bool:
        """Whether the round has a (finite) deadline."""
        return bool(np.isfinite(self.deadline_s))

    @property
    def latency_bound_s(self) -> float:
        """Where the solvers' search for the round latency ``T`` starts its upper end (s).

        The deadline when there is one. Without one (``deadline_s = inf``), the break-even
        latency ``sum_i max_j rho_ij / mu_T`` (0 when ``mu_T = 0``): beyond it
        ``J <= sum rho - mu_T T < 0``, worse than scheduling nobody, so no solution worth
        taking is cut off. Admission then raises the bound as far as the devices need, as under
        ``relax_deadline`` (:func:`wsim.optimizer.feasibility.admit`): without a deadline nobody
        is dropped for latency.
        """
        if self.has_deadline:
            return self.deadline_s
        if self.latency_price_per_s <= 0.0:
            return 0.0
        meets = self.retention >= self.min_retention
        best = np.max(np.where(meets, self.retention, 0.0), axis=1)
        return float(np.sum(best)) / self.latency_price_per_s

    @property
    def relaxes_deadline(self) -> bool:
        """Whether admission may raise the latency bound past :attr:`latency_bound_s`
        (``relax_deadline``, or no deadline)."""
        return self.infeasible_policy == "relax_deadline" or not self.has_deadline

    @functools.cached_property
    def compute_time_s(self) -> np.ndarray:
        """Device compute time ``C_ij / f_i`` (s), ``[N, J]`` (DESIGN.md §3; computed once)."""
        return self.device_cycles / self.cpu_hz[:, None]

    @functools.cached_property
    def compute_energy_j(self) -> np.ndarray:
        """Device compute energy ``kappa C_ij f_i^2`` (J), ``[N, J]`` (Yang et al., TWC 2021;
        computed once)."""
        return (self.kappa * self.cpu_hz**2)[:, None] * self.device_cycles


@dataclass(frozen=True)
class Allocation:
    """A solver's decision for one round (DESIGN.md §5); per-device arrays have shape ``[N]``.

    Attributes:
        token_option: index into ``token_counts``; -1 = not scheduled.
        bandwidth_hz: uplink bandwidth ``b_i`` (Hz), 0 when not scheduled.
        power_w: transmit power ``p_i`` (W), 0 when not scheduled.
        latency_s: round latency ``T`` (s); 0 when nobody is scheduled.
        objective: ``J = sum rho - mu_E sum E - mu_T T`` over scheduled devices.
        feasible: whether the device can meet the constraints under the method's token options
            (a feasible device may still be left out when its net value is not positive).
        reason: "" for feasible devices, else the binding constraint (``REASONS``).
        energy_j: compute + transmit energy ``E_i`` (J).
        tx_energy_j: transmit energy ``p_i S_ij / r_i`` (J).
        latency_device_s: ``C_ij / f_i + S_ij / r_i + T_fix,i`` (s), 0 when not scheduled.
        ste: semantic retention per joule on the air ``rho_ij / E_tx,i`` (1/J); NaN when not
            scheduled (CONTRACTS.md ``ste``).
        solve_time_s: wall-clock solve time (s).
        iterations: outer iterations of the method (alternations for ST-SFLora).
        objective_history: ``J`` after each outer iteration (non-decreasing for ST-SFLora).
        method: the solver's name in ``SOLVERS``.
    """

    token_option: np.ndarray
    bandwidth_hz: np.ndarray
    power_w: np.ndarray
    latency_s: float
    objective: float
    feasible: np.ndarray
    reason: np.ndarray
    energy_j: np.ndarray
    tx_energy_j: np.ndarray
    latency_device_s: np.ndarray
    ste: np.ndarray
    solve_time_s: float = 0.0
    iterations: int = 0
    objective_history: tuple[float, ...] = field(default_factory=tuple)
    method: str = ""

    @property
    def scheduled(self) -> np.ndarray:
        """Boolean mask of scheduled devices, ``[N]``."""
        return self.token_option >= 0
