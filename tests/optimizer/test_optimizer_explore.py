"""ST-SFLora's compiled exploration equals its definition: factor by factor, in order.

``stsflora._explore`` computes every factor in one call (on every core where that is safe) and
walks them afterwards; the definition (module docstring, step 4) tries them one by one: the
price of the current tokens at ``t``, the token step there, the resource step of a proposal not
stepped before, the first that raises ``J`` kept. Both must agree exactly, on one thread or
several, whether a proposal is accepted, rejected or already seen.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import wsim.optimizer.stsflora as st
from wsim.optimizer.families import family_problem
from wsim.optimizer.feasibility import admit
from wsim.optimizer.options import OptionTable, best_options
from wsim.optimizer.uplink import Uplink


def _one_by_one(ctx, options, step, current, seen):  # type: ignore[no-untyped-def]
    """The definition, from the public pieces (``Uplink``, ``best_options``, ``ctx.step``)."""
    problem = ctx.problem
    uplink = Uplink(ctx.table.links_for(options), problem.noise_psd_w_per_hz)
    bw = problem.total_bandwidth_hz
    for factor in st._EXPLORE_LATENCY:
        t = min(step.latency_s * factor, ctx.adm.t_hi)
        if t == step.latency_s:
            continue
        price = step.price_j_per_hz
        if np.sum(uplink.floor(t).bandwidth_hz) <= bw:
            price = float(np.exp(uplink.split(t, bw, float(np.log(price))).log_price))
        proposal, _ = best_options(ctx.table, ctx.adm.usable, options, t, price)
        if not (proposal != options).any() or proposal.tobytes() in seen:
            continue
        seen.add(proposal.tobytes())
        stepped = ctx.step(proposal, price, t, step.min_latency_s)
        if stepped is not None and stepped[1] > current + 1e-12 * max(abs(current), 1.0):
            return proposal, stepped[0], stepped[1]
    return None


def _converged(family: str, seed: int):  # type: ignore[no-untyped-def]
    problem = family_problem(family, 100, np.random.default_rng(seed))
    table = OptionTable(problem)
    adm = admit(problem, np.ones(problem.payload_bits.shape, dtype=bool), table)
    ctx = st._Context(problem, adm, table)
    options, step, history = st._alternate(ctx, st._starts(problem, adm)[1])
    return ctx, options, step, history[-1]


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert (a is None) == (b is None)
    if a is None:
        return
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2]
    for field in ("latency_s", "price_j_per_hz", "energy_j", "min_latency_s"):
        assert getattr(a[1], field) == getattr(b[1], field), field
    np.testing.assert_array_equal(a[1].bandwidth_hz, b[1].bandwidth_hz)
    np.testing.assert_array_equal(a[1].power_w, b[1].power_w)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("family", "seed"), [("independent", 0), ("random", 1)])
def test_explore_equals_one_by_one(
    family: str, seed: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(numba, "get_num_threads", lambda: threads)
    ctx, options, step, value = _converged(family, seed)
    first = None
    accepted = 0
    # converged (nothing beats J), a lower bar (a proposal is accepted), the first one seen
    for current, seen_first in ((value, False), (value - 1.0, False), (value - 1.0, True)):
        seen: set[bytes] = set()
        if seen_first and first is not None:
            seen.add(first)
        reference = _one_by_one(ctx, options, step, current, set(seen))
        got = st._explore(ctx, options, step, current, seen)
        _same(got, reference)
        if got is not None:
            accepted += 1
            first = first or got[0].tobytes()
    assert accepted >= 1  # the accept path was exercised
