"""ST-SFLora's per-round algorithm as the paper publishes it (arXiv 2605.26120; PAPERS.md).

Recovered (PAPERS.md, "Recovered method details", ST-SFLora; trust tags [T] transcription,
[S] summary):

* objective **STE = Σ_{m∈U} f_m(K_m) / max_{m∈U} T^up_m**, retained semantics per second of the
  slowest uplink [T][S]; ``f_m`` is ``problem.retention`` (wsim's per-sample ρ = the paper's
  batch sum divided by the batch, which scales STE by a constant);
* SUBP1 power: with ``φ = g/(N0 W)``, ``κ = S ln2/(E_max W)`` the energy constraint is
  ``ln(1+φp) − κp ≥ 0``; take the largest feasible ``p ≤ p_max`` by bisection (feasible only if
  ``κ < φ``) [T] (:func:`paper_power_w`);
* SUBP2 bandwidth: bisect a common deadline τ, each device needs ``W_min(τ)`` (the bandwidth
  whose rate is S/τ), until ``Σ W_min(τ) = W_tot`` [T] (:func:`common_deadline_s`);
* SUBP3 tokens: ``K_max = ⌊min(N, E_max R/(pβ) − 2, (T^stand − T0) R/β − 2, τR/β − 2)⌋``,
  ``β = B D q0``, floored at K_min [T] (:func:`token_cap`);
* alternated until convergence, at most 5 outer iterations [S]; the mobility gate: a device takes
  part only if its round fits in its standing time ``min((R_cell − d)/v, T_max)`` [T]
  (``problem.standing_time_s``; None = ``deadline_s`` for everyone).

Where the sources are silent, wsim chose:

* ``E_max`` in SUBP1/SUBP3 is the TRANSMIT budget ``energy_budget_j − κ C f²`` (the device's
  compute energy comes off the round budget first); ``T0 = C/f + T_fix`` (device compute +
  server time; downlink delay ignored as in the paper's stated limits);
* the cap is applied in option space (the largest candidate K with ``S(K) ≤`` the cap's bits),
  which equals the closed form when ``S`` is affine in K (``S = β(K + 2)`` for the paper's
  payload; tested);
* SUBP3 chooses K within ``[K_min, K_max]`` to MAXIMIZE STE (the transcription gives only the
  cap): for each common deadline τ of a log-spaced grid, each device's bandwidth need
  ``W_mj(τ)`` at power ``min(p_max, E_tx/τ)`` (the SUBP1 solution at ``T^up = τ``:
  ``ln(1+φp) ≥ κp ⇔ p S/R ≤ E``), ``max Σ f_m(K_m)`` s.t. ``Σ W_m ≤ W_tot`` by a Lagrangian
  bisection on the bandwidth price plus a greedy fill of the left-over bandwidth; the τ whose
  re-solved (SUBP2) STE is largest wins. A device whose options all miss the gate or the budget
  at every τ is left out with reason ``deadline`` (gate) or ``energy_budget``;
* ``K_min`` is the smallest candidate (the real workload offers every integer in
  ``[method.min_tokens, num_patches]``); options below ``min_retention`` are not offered;
* ``Allocation.objective`` is wsim's J (for comparison with the other solvers);
  ``objective_history`` holds the paper's STE after each outer iteration (it stops at the first
  that does not improve, and the best is returned); :func:`paper_ste` gives the paper's STE of
  any allocation. Cost ``O(G · N · J)`` per outer iteration (G = 2 × 64 deadlines).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from wsim.optimizer.evaluate import build_allocation
from wsim.optimizer.problem import Allocation, RoundProblem
from wsim.optimizer.radio import min_bandwidth_hz, rate_bps

LN2 = float(np.log(2.0))
MAX_OUTER = 5
"""Outer iterations at most (PAPERS.md [S])."""
NUM_TAU = 64
"""Points of the log-spaced common-deadline grid of the token step."""
_BISECT = 60


def paper_power_w(
    payload_bits: np.ndarray,
    bandwidth_hz: np.ndarray,
    gain_lin: np.ndarray,
    noise_psd_w_per_hz: float,
    tx_budget_j: np.ndarray,
    max_power_w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """SUBP1: the largest ``p ≤ p_max`` with ``ln(1+φp) − κp ≥ 0`` (bisection) [T].

    ``φ = g/(N0 W)``, ``κ = S ln2/(E W)``; the left side is concave, 0 at p = 0, so the feasible
    set is ``[0, p*]`` when ``κ < φ`` and ``{0}`` otherwise.

    Returns:
        ``(p, feasible)``: power (W; 0 where infeasible) and ``κ < φ``, shapes broadcast.
    """
    s, w, g, e, pmax = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (payload_bits, bandwidth_hz, gain_lin,
                                                tx_budget_j, max_power_w))
    )  # fmt: skip
    ok = (w > 0) & (e > 0) & (s > 0)
    phi = np.divide(g, noise_psd_w_per_hz * w, out=np.zeros(s.shape), where=ok)
    kap = np.divide(s * LN2, e * w, out=np.full(s.shape, np.inf), where=ok)
    feasible = ok & (kap < phi)

    def h(p: np.ndarray) -> np.ndarray:
        return np.log1p(phi * p) - kap * p

    with np.errstate(divide="ignore", invalid="ignore"):
        peak = np.clip(np.where(feasible, 1.0 / kap - 1.0 / phi, 0.0), 0.0, pmax)
    lo, hi = peak, pmax.copy()
    at_max = feasible & (h(pmax) >= 0)
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        good = h(mid) >= 0
        lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
    return np.where(at_max, pmax, np.where(feasible, lo, 0.0)), feasible


def _bandwidth_need_hz(
    payload_bits: np.ndarray,
    upload_s: np.ndarray,
    gain_lin: np.ndarray,
    noise_psd_w_per_hz: float,
    tx_budget_j: np.ndarray,
    max_power_w: np.ndarray,
) -> np.ndarray:
    """``W_min(τ)`` at ``p = min(p_max, E_tx/τ)`` (Hz; inf where infeasible; 0 where S = 0)."""
    s = np.asarray(payload_bits, dtype=float)
    on = s > 0
    cap = np.minimum(max_power_w, np.maximum(tx_budget_j, 0.0) / upload_s)
    need, _ = min_bandwidth_hz(np.where(on, s, 1.0), upload_s, cap, gain_lin, noise_psd_w_per_hz)
    return np.where(on, need, 0.0)


def common_deadline_s(
    payload_bits: np.ndarray,
    gain_lin: np.ndarray,
    noise_psd_w_per_hz: float,
    tx_budget_j: np.ndarray,
    max_power_w: np.ndarray,
    total_bandwidth_hz: float,
) -> tuple[np.ndarray, np.ndarray]:
    """SUBP2: the common upload deadline τ with ``Σ_m W_min,m(τ) = W_tot`` (bisection) [T].

    Vectorized over leading axes: ``payload_bits`` ``[..., M]`` (0 = not scheduled), the other
    per-device arrays ``[M]``. ``W_min`` is at power ``min(p_max, E_tx/τ)``, decreasing in τ.

    Returns:
        ``(tau_s [...], bandwidth_hz [..., M])`` with ``Σ W ≤ W_tot`` (the upper bracket); τ = 0
        where nobody is scheduled, inf where the set cannot be served at any τ.
    """
    s = np.asarray(payload_bits, dtype=float)
    on = s > 0
    args = (gain_lin, noise_psd_w_per_hz, tx_budget_j, max_power_w)

    def total(tau: np.ndarray) -> np.ndarray:
        return _bandwidth_need_hz(s, tau[..., None], *args).sum(axis=-1)

    # lower bracket: one device alone with all the bandwidth at p_max
    alone = np.where(on, s, 0.0) / rate_bps(total_bandwidth_hz, max_power_w, gain_lin,
                                            noise_psd_w_per_hz)  # fmt: skip
    lo = np.maximum(alone.max(axis=-1), 1e-12)
    hi = lo * 2.0
    for _ in range(80):  # grow the upper bracket until the set fits
        over = total(hi) > total_bandwidth_hz
        if not over.any():
            break
        hi = np.where(over, hi * 2.0, hi)
    served = total(hi) <= total_bandwidth_hz
    for _ in range(_BISECT):
        mid = np.sqrt(lo * hi)
        fits = total(mid) <= total_bandwidth_hz
        lo, hi = np.where(fits, lo, mid), np.where(fits, mid, hi)
    tau = np.where(on.any(axis=-1), np.where(served, hi, np.inf), 0.0)
    safe = np.where(np.isfinite(tau) & (tau > 0), tau, 1.0)
    bw = _bandwidth_need_hz(s, safe[..., None], *args)
    return tau, np.where(np.isfinite(tau)[..., None], bw, np.inf)


def token_cap(
    beta_bits: np.ndarray,
    rate_bps_: np.ndarray,
    power_w: np.ndarray,
    tx_budget_j: np.ndarray,
    stand_s: np.ndarray,
    t0_s: np.ndarray,
    tau_s: float,
    num_patches: int,
) -> np.ndarray:
    """SUBP3's closed form ``K_max = ⌊min(N, E R/(pβ) − 2, (T^stand − T0) R/β − 2, τR/β − 2)⌋``
    [T] (continuous payload ``S = β (K + 2)``; the floor K_min is applied by the caller)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        energy = np.where(power_w > 0, tx_budget_j * rate_bps_ / (power_w * beta_bits), np.inf)
    stand = (stand_s - t0_s) * rate_bps_ / beta_bits
    return np.floor(np.minimum.reduce([np.full_like(stand, num_patches), energy - 2, stand - 2,
                                       tau_s * rate_bps_ / beta_bits - 2]))  # fmt: skip


def _knapsack(rho: np.ndarray, need: np.ndarray, total_hz: float) -> np.ndarray:
    """``max Σ ρ_mj`` s.t. ``Σ need_mj ≤ W_tot``, one option per device (every device of the
    round takes part: -1 only for a device with no allowed option).

    Lagrangian bisection on the bandwidth price ν (``argmax ρ − ν W`` per device) then a greedy
    fill of what is left (best Δρ that fits, one device at a time). Vectorized over a leading
    axis: ``rho``, ``need`` ``[G, M, J]`` (``need = inf`` = not allowed). Returns ``[G, M]``.
    """
    g_, m_, _ = rho.shape
    allowed = np.isfinite(need)
    need0 = np.where(allowed, need, 0.0)

    def choose(nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value = np.where(allowed, rho - nu[:, None, None] * need0, -np.inf)
        j = value.argmax(axis=-1)
        best = np.take_along_axis(value, j[..., None], -1)[..., 0]
        j = np.where(np.isfinite(best), j, -1)
        used = np.where(
            j >= 0, np.take_along_axis(need0, np.maximum(j, 0)[..., None], -1)[..., 0], 0.0
        )
        return j, used.sum(axis=-1)

    lo, hi = np.full(g_, -30.0), np.full(g_, 30.0)  # log10 ν, ν in 1/Hz
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        _, used = choose(10.0**mid)
        fits = used <= total_hz
        lo, hi = np.where(fits, lo, mid), np.where(fits, mid, hi)
    pick, used = choose(10.0**hi)
    rows = np.arange(g_)[:, None]
    for _ in range(m_):  # greedy fill of the left-over bandwidth
        cur_rho = np.where(
            pick >= 0, np.take_along_axis(rho, np.maximum(pick, 0)[..., None], -1)[..., 0], 0.0
        )
        cur_w = np.where(
            pick >= 0, np.take_along_axis(need0, np.maximum(pick, 0)[..., None], -1)[..., 0], 0.0
        )
        left = (total_hz - used)[:, None, None]
        gain = np.where(allowed & (need0 - cur_w[..., None] <= left), rho - cur_rho[..., None], 0.0)
        flat = gain.reshape(g_, -1).argmax(axis=-1)
        dev, opt = np.divmod(flat, gain.shape[-1])
        better = gain.reshape(g_, -1)[np.arange(g_), flat] > 1e-15
        if not better.any():
            break
        used = used + np.where(better, need0[np.arange(g_), dev, opt] - cur_w[rows[:, 0], dev], 0.0)
        pick[rows[better, 0], dev[better]] = opt[better]
    return pick


@dataclasses.dataclass(frozen=True)
class _Setup:
    """Per-device, per-option quantities of the problem ``[N, J]`` (see the module docstring)."""

    t0_s: np.ndarray  # device compute + server time T0
    tx_budget_j: np.ndarray  # E_max − κ C f²
    stand_s: np.ndarray  # [N] min(T^stand, T_max)
    allowed: np.ndarray  # bool: ρ ≥ ρ_min and a positive transmit budget
    bits_per_joule_ok: np.ndarray  # bool: S < E_tx g/(N0 ln2) (some power and bandwidth do it)


def _setup(problem: RoundProblem) -> _Setup:
    t0 = problem.compute_time_s + problem.fixed_latency_s[:, None]
    etx = problem.energy_budget_j[:, None] - problem.compute_energy_j
    stand = np.full(problem.num_devices, problem.deadline_s)
    if problem.standing_time_s is not None:
        stand = np.minimum(problem.standing_time_s, problem.deadline_s)
    allowed = (problem.retention >= problem.min_retention - 1e-12) & (etx > 0)
    limit = etx * problem.gain_lin[:, None] / (problem.noise_psd_w_per_hz * LN2)
    return _Setup(t0, etx, stand, allowed, problem.payload_bits < limit)


def _pick(matrix: np.ndarray, options: np.ndarray) -> np.ndarray:
    """``matrix[m, options[..., m]]`` (0 where -1) for options ``[..., M]``."""
    rows = np.arange(matrix.shape[0])
    return np.where(options >= 0, matrix[rows, np.maximum(options, 0)], 0.0)


def _smallest(ok: np.ndarray) -> np.ndarray:
    """Index of the first allowed option per device (K_min among the allowed), -1 if none."""
    return np.where(ok.any(axis=1), ok.argmax(axis=1), -1)


def participants(problem: RoundProblem, su: _Setup, ok: np.ndarray) -> np.ndarray:
    """The mobility gate [T]: the largest set whose round at K_min fits every member's standing
    time at the common deadline τ of SUBP2 (the device with the least slack leaves, one at a
    time — wsim's rule; the paper states the gate, not how the set is formed). ``[N]`` bool."""
    k0 = _smallest(ok)
    member = k0 >= 0
    while member.any():
        opts = np.where(member, k0, -1)
        tau, _ = common_deadline_s(
            _pick(problem.payload_bits, opts), problem.gain_lin, problem.noise_psd_w_per_hz,
            _pick(su.tx_budget_j, opts), problem.max_power_w, problem.total_bandwidth_hz,
        )  # fmt: skip
        slack = np.where(member, su.stand_s - _pick(su.t0_s, opts) - tau, np.inf)
        if slack.min() >= 0:
            break
        member[int(slack.argmin())] = False
    return member


def _token_step(
    problem: RoundProblem, su: _Setup, caps: np.ndarray, member: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray]:
    """SUBP3 within the caps: the STE-best options over a common-deadline grid (wsim's rule).

    Every member takes part; τ ranges from the SUBP2 deadline at K_min to the tightest
    member's standing time. Returns ``(options [N], tau_s, bandwidth_hz [N])`` re-solved by
    SUBP2 (options -1 = not a member).
    """
    n = problem.num_devices
    s, g, pmax = problem.payload_bits, problem.gain_lin, problem.max_power_w
    ok = caps & su.allowed & su.bits_per_joule_ok & member[:, None]
    if not member.any():
        return np.full(n, -1), 0.0, np.zeros(n)
    k0 = np.where(member, _smallest(ok), -1)
    lo, _ = common_deadline_s(_pick(s, k0), g, problem.noise_psd_w_per_hz,
                              _pick(su.tx_budget_j, k0), pmax, problem.total_bandwidth_hz)  # fmt: skip
    room = np.where(ok, su.stand_s[:, None] - su.t0_s, -np.inf)  # time left for the upload
    hi = float(room.max(axis=1)[member].min())
    # Past the common deadline at which every member sends its largest allowed option, Σρ
    # cannot grow and STE = Σρ/τ only falls: the grid's top (finite also with no deadline and
    # no gate, deadline_s = inf).
    k1 = np.where(member, ok.shape[1] - 1 - ok[:, ::-1].argmax(axis=1), -1)
    top, _ = common_deadline_s(_pick(s, k1), g, problem.noise_psd_w_per_hz,
                               _pick(su.tx_budget_j, k1), pmax, problem.total_bandwidth_hz)  # fmt: skip
    if np.isfinite(top):
        hi = min(hi, float(top))
    if not np.isfinite(hi):
        raise ValueError("stsflora_paper: no finite common deadline bounds the token step")
    hi = max(hi, float(lo))
    best = (-np.inf, k0, float(lo), np.zeros(n))
    grid = np.geomspace(float(lo), hi, NUM_TAU)
    for _ in range(2):  # a coarse grid, then a fine one around its best point
        need = _bandwidth_need_hz(s[None], grid[:, None, None], g[:, None],
                                  problem.noise_psd_w_per_hz, su.tx_budget_j[None], pmax[:, None])  # fmt: skip
        fits = ok[None] & (su.t0_s[None] + grid[:, None, None] <= su.stand_s[None, :, None])
        # [G, N, J]
        need = np.where(fits, need, np.inf)
        rho = np.broadcast_to(problem.retention, need.shape)
        pick = _knapsack(rho, need, problem.total_bandwidth_hz)  # [G, N]
        tau, bw = common_deadline_s(
            _pick(s, pick), g, problem.noise_psd_w_per_hz, _pick(su.tx_budget_j, pick), pmax,
            problem.total_bandwidth_hz,
        )  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            ste = np.where(tau > 0, _pick(problem.retention, pick).sum(axis=-1) / tau, 0.0)
        ste = np.where(np.isfinite(ste), ste, -np.inf)
        b = int(ste.argmax())
        if ste[b] > best[0]:
            best = (float(ste[b]), pick[b], float(tau[b]), bw[b])
        grid = np.geomspace(grid[max(b - 1, 0)], grid[min(b + 1, NUM_TAU - 1)], NUM_TAU)
    return best[1], best[2], best[3]


def paper_ste(problem: RoundProblem, alloc: Allocation) -> float:
    """The paper's STE of any allocation: ``Σ_scheduled ρ / max_scheduled S/r`` (1/s) [T][S]."""
    on = alloc.token_option >= 0
    if not on.any():
        return 0.0
    rate = rate_bps(alloc.bandwidth_hz, alloc.power_w, problem.gain_lin, problem.noise_psd_w_per_hz)
    upload = _pick(problem.payload_bits, alloc.token_option)[on] / rate[on]
    return float(_pick(problem.retention, alloc.token_option)[on].sum() / upload.max())


def _reasons(problem: RoundProblem, su: _Setup) -> tuple[np.ndarray, np.ndarray]:
    """Devices that no option, power and bandwidth can serve, with the binding constraint."""
    fastest = problem.payload_bits / rate_bps(
        problem.total_bandwidth_hz, problem.max_power_w, problem.gain_lin,
        problem.noise_psd_w_per_hz,
    )[:, None]  # fmt: skip
    retention = (problem.retention >= problem.min_retention - 1e-12).any(axis=1)
    ok = su.allowed & su.bits_per_joule_ok
    energy = ok.any(axis=1)
    room = problem.deadline_s - su.t0_s  # time left for the upload before the deadline
    late = ~(ok & (room > 0)).any(axis=1)
    weak = ~(ok & (fastest < room)).any(axis=1)  # even p_max over the whole band is too slow
    gated = ~(ok & (fastest < su.stand_s[:, None] - su.t0_s)).any(axis=1)  # mobility gate
    reason = np.where(~retention, "retention_floor", np.where(~energy, "energy_budget",
                      np.where(late, "deadline", np.where(weak, "power_limit",
                               np.where(gated, "deadline", "")))))  # fmt: skip
    return reason == "", reason.astype(object)


def solve_stsflora_paper(problem: RoundProblem) -> Allocation:
    """ST-SFLora's alternating algorithm (SUBP3 tokens → SUBP2 bandwidth → SUBP1 power, ≤ 5
    outer iterations), maximizing the paper's STE; see the module docstring for every step."""
    start = time.perf_counter()
    su = _setup(problem)
    s, g, n0 = problem.payload_bits, problem.gain_lin, problem.noise_psd_w_per_hz
    caps = np.ones_like(su.allowed)
    member = participants(problem, su, su.allowed & su.bits_per_joule_ok)
    best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
    history: list[float] = []
    for _ in range(MAX_OUTER):
        options, tau, bw = _token_step(problem, su, caps, member)  # SUBP3 (+ SUBP2 inside)
        on = options >= 0
        power, _ = paper_power_w(_pick(s, options), bw, g, n0, _pick(su.tx_budget_j, options),
                                 problem.max_power_w)  # SUBP1  # fmt: skip
        bw, power = np.where(on, bw, 0.0), np.where(on, power, 0.0)
        rate = rate_bps(bw, power, g, n0)
        upload = np.where(on, _pick(s, options) / np.where(on, rate, 1.0), 0.0)
        ste = float(_pick(problem.retention, options)[on].sum() / upload.max()) if on.any() else 0.0
        history.append(ste)
        if best is not None and ste <= best[0] * (1 + 1e-12):
            break
        best = (ste, options, bw, power)
        # SUBP3 cap for the next pass, in option space: S(K) ≤ min(E R/p, (T^stand − T0) R, τ R)
        with np.errstate(divide="ignore", invalid="ignore"):
            cap_bits = np.minimum.reduce([
                su.tx_budget_j * (rate / np.where(power > 0, power, np.inf))[:, None],
                (su.stand_s[:, None] - su.t0_s) * rate[:, None],
                np.broadcast_to((tau * rate)[:, None], s.shape),
            ])  # fmt: skip
        caps = np.where(on[:, None], s <= cap_bits * (1 + 1e-9), caps)  # keeps ≥ K_min
    assert best is not None
    _, options, bw, power = best
    on = options >= 0
    feasible, reason = _reasons(problem, su)
    reason = np.where(feasible & ~on, "deadline", reason).astype(object)  # left by the gate
    feasible = feasible & on
    latency = _pick(su.t0_s, options) + np.where(
        on, _pick(s, options) / np.where(on, rate_bps(bw, power, g, n0), 1.0), 0.0
    )
    alloc = build_allocation(
        problem, options, bw, power, float(latency.max()) if on.any() else 0.0, feasible, reason,
        method="stsflora_paper", start_time=start,
    )  # fmt: skip
    return dataclasses.replace(alloc, iterations=len(history), objective_history=tuple(history))
