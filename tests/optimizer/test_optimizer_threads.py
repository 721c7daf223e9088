"""Threaded kernels give the one-thread numbers; large solves are reproducible; stale caches go.

Every ``*_parallel`` driver of ``element_kernels`` (and the token step's, the option table's
constants, the resource step's link outputs) runs the same blocks as the one-thread loop its
caller uses below ``PARALLEL_MIN_SIZE``: the outputs and each block's partial sums must be
identical, bit for bit, whatever the number of threads. ``kernel_cache`` must delete the
caches exactly when a kernel source changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsim.optimizer import (
    admission_kernels,
    kernel_cache,
    latency_kernels,
    option_kernels,
    random_problem,
    solve,
)
from wsim.optimizer import element_kernels as ek
from wsim.optimizer.evaluate import links_for
from wsim.optimizer.families import family_problem
from wsim.optimizer.feasibility import option_min_latency_s
from wsim.optimizer.inverse import LN2, MAX_ARG, TABLES
from wsim.optimizer.options import OptionTable, _kernel_inputs, option_links
from wsim.optimizer.resource import min_latency_s
from wsim.optimizer.uplink import Uplink

N = 3000  # 12 blocks, one of them partial


def _uplink(seed: int = 0) -> tuple[Uplink, float, float]:
    """``N`` links of a drawn problem that have a floor at the returned round latency (at their
    leanest options), and the band (Hz)."""
    problem = family_problem("random", 2 * N, np.random.default_rng(seed))
    options = np.argmin(problem.payload_bits, axis=1)
    uplink = Uplink(links_for(problem, options), problem.noise_psd_w_per_hz)
    latency_s = float(uplink.links.busy_s.max()) + 0.5 * problem.deadline_s
    has_floor = np.flatnonzero(np.isfinite(uplink.floor(latency_s).bandwidth_hz))[:N]
    assert has_floor.size == N
    options[np.setdiff1d(np.arange(2 * N), has_floor)] = -1
    uplink = Uplink(links_for(problem, options), problem.noise_psd_w_per_hz)
    return uplink, latency_s, problem.total_bandwidth_hz


def _blocks(n: int, width: int) -> np.ndarray:
    return np.full((ek.num_blocks(n), width), np.nan)


def test_floor_blocks_threaded_equal_one_thread() -> None:
    up, t, _ = _uplink()
    c = up.constants
    results = []
    for threaded in (False, True):
        out = [np.empty(N) for _ in range(4)]
        partials = _blocks(N, 2)
        args = (t, c[0], c[3], c[4], c[1], TABLES, MAX_ARG, *out, True, partials)
        if threaded:
            ek.floor_parallel(*args)
        else:
            for k in range(ek.num_blocks(N)):
                ek.floor_block(k, *args)
        results.append((out, partials))
    for a, b in zip(results[0][0] + [results[0][1]], results[1][0] + [results[1][1]], strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(results[0][1]).all()


def test_price_finish_and_floor_split_blocks_threaded_equal_one_thread() -> None:
    up, t_loose, bw = _uplink(1)
    n0 = float(up.links.gain_lin[0] / up.gain_per_n0[0])
    t = 1.02 * min_latency_s(up.links, bw, n0, t_loose)  # near T_lo: many floors bind
    c = up.constants
    tau = t - c[0]
    ratio = np.minimum(c[3] * tau, c[4])
    price = float(np.exp(up.split(t, bw).log_price))  # the band's price: some devices clip
    runs = []
    for threaded in (False, True):
        x_floor, known = np.full(N, np.nan), np.zeros(N, dtype=bool)
        x, clip, b = np.empty(N), np.empty(N, dtype=bool), np.empty(N)
        prices = _blocks(N, 3)
        args = (price, c[2] / tau, ratio, tau, c[1], x_floor, known, TABLES, MAX_ARG, x, clip, b,
                prices)  # fmt: skip
        finish = _blocks(N, ek.FINISH_TERMS)
        fargs = (price, tau, x, x_floor, b, clip, c[2], c[3], c[4], c[5], finish)
        floors = _blocks(N, 5)
        if threaded:
            ek.price_parallel(*args)
            ek.finish_parallel(*fargs)
        else:
            for k in range(ek.num_blocks(N)):
                ek.price_block(k, *args)
                ek.finish_block(k, *fargs)
        # every device at its floor, as the floor split sees it
        x_all = np.where(known, x_floor, x)
        if threaded:
            ek.floor_split_parallel(c, tau, x_all, b, floors)
        else:
            for k in range(ek.num_blocks(N)):
                ek.floor_split_block(k, c, tau, x_all, b, floors)
        runs.append((x_floor, known, x, clip, b, prices, finish, floors))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    clip = runs[0][3]
    assert clip.any() and not clip.all()  # both branches of the price kernel ran


def test_token_step_and_link_outputs_threaded_equal_one_thread() -> None:
    problem = family_problem("many_options", 2000, np.random.default_rng(2))  # 24k options
    table = OptionTable(problem)
    usable = np.ones(problem.payload_bits.shape, dtype=bool)
    options = np.random.default_rng(3).integers(-1, 12, 2000)
    args = (*_kernel_inputs(table, usable, 0.7 * problem.deadline_s, 1e-10), options)
    proposal, gain = np.empty(2000, dtype=np.int64), np.empty(2000)
    for k in range(ek.num_blocks(2000)):
        option_kernels._token_step_block(k, *args, proposal, gain)
    proposal_t, gain_t = np.empty(2000, dtype=np.int64), np.empty(2000)
    option_kernels._token_step_parallel(*args, proposal_t, gain_t)
    np.testing.assert_array_equal(proposal, proposal_t)
    np.testing.assert_array_equal(gain, gain_t)
    assert (proposal >= 0).any() and (proposal != options).any()

    up, t, bw = _uplink(4)
    links = up.links
    out = [np.empty(N), np.empty(N)]
    for energy in (False, True):
        largs = (t, bw, links.payload_bits, links.busy_s, np.full(N, bw / N), links.gain_lin,
                 links.max_power_w, 1e-20, energy)  # fmt: skip
        for k in range(ek.num_blocks(N)):
            latency_kernels._links_out_block(k, *largs, out[0])
        latency_kernels._links_out_parallel(*largs, out[1])
        np.testing.assert_array_equal(out[0], out[1])


def test_admission_passes_threaded_equal_one_thread_and_the_uplink_floor() -> None:
    problem = family_problem("many_options", 2000, np.random.default_rng(3))  # 24,000 options
    table = OptionTable(problem)
    up, busy = table.uplink, table.links.busy_s
    assert busy.size >= option_kernels.PARALLEL_MIN_OPTIONS
    latency_s = 0.7 * problem.deadline_s
    floors = []
    for threaded in (False, True):
        b = np.full(busy.shape, np.nan)
        args = (latency_s, busy, up.ratio_per_s, up.ratio_budget, up.bits_nats, TABLES, MAX_ARG, b)
        if threaded:
            admission_kernels._floor_parallel(*args)
        else:
            for i in range(busy.shape[0]):
                admission_kernels._floor_row(i, *args)
        floors.append(b)
    np.testing.assert_array_equal(floors[0], floors[1])
    np.testing.assert_array_equal(floors[0], up.floor(latency_s).bandwidth_hz)
    assert np.isfinite(floors[0]).any() and np.isinf(floors[0]).any()  # both branches
    t_min, binds = option_min_latency_s(problem, busy)  # threaded: >= PARALLEL_MIN_OPTIONS
    assert t_min.shape == busy.shape and binds.any() and np.isfinite(t_min).any()
    # one thread: the same pass over sub-problems of 500 devices (6,000 options each)
    chunks = np.array_split(np.arange(problem.num_devices), 4)
    parts = [option_min_latency_s(problem.subset(c)) for c in chunks]
    serial_t = np.concatenate([t for t, _ in parts])
    serial_b = np.concatenate([b for _, b in parts])
    np.testing.assert_array_equal(t_min, serial_t)
    np.testing.assert_array_equal(binds, serial_b)


def test_large_solves_repeat_exactly() -> None:
    problem = family_problem("independent", 6000, np.random.default_rng(5))  # threaded paths
    first, again = solve(problem), solve(problem)
    np.testing.assert_array_equal(first.token_option, again.token_option)
    np.testing.assert_array_equal(first.bandwidth_hz, again.bandwidth_hz)
    np.testing.assert_array_equal(first.power_w, again.power_w)
    assert first.latency_s == again.latency_s and first.objective == again.objective


def test_kernel_caches_dropped_exactly_when_a_source_changes(tmp_path: Path) -> None:
    for name in kernel_cache.KERNEL_MODULES:
        (tmp_path / f"{name}.py").write_text(f"# {name}\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()

    def fake_caches() -> list[Path]:
        paths = [cache / "kernels.option_values_into-200.py311.nbi",
                 cache / "split_kernels.floor_into-211.py311.1.nbc"]  # fmt: skip
        for path in paths:
            path.write_bytes(b"stale")
        return paths

    unrelated = cache / "other.f-1.py311.nbi"
    unrelated.write_bytes(b"keep")
    paths = fake_caches()
    assert kernel_cache.drop_stale(tmp_path)  # no digest recorded yet: caches of unknown age
    assert not any(p.exists() for p in paths) and unrelated.exists()
    paths = fake_caches()
    assert not kernel_cache.drop_stale(tmp_path)  # same sources: caches kept
    assert all(p.exists() for p in paths)
    (tmp_path / "element_kernels.py").write_text("# changed\n")
    assert kernel_cache.drop_stale(tmp_path)
    assert not any(p.exists() for p in paths) and unrelated.exists()


def test_option_table_constants_equal_numpy_and_one_thread() -> None:
    """``option_constants_into`` (one compiled pass) gives ``Uplink``'s numpy constants on
    ``option_links`` and the numpy value bound bit for bit, below and above
    ``PARALLEL_MIN_OPTIONS``; its threaded driver gives the one-thread loop's numbers."""
    for n in (300, option_kernels.PARALLEL_MIN_OPTIONS // 4 + 7):  # 4 options: both sides
        rng = np.random.default_rng(n)
        budget_j = rng.uniform(0.0, 3.0, n)  # some below the compute energy: no spare
        problem = random_problem(n, 4, rng, energy_budget_j=budget_j)
        table = OptionTable(problem)
        ref = Uplink(option_links(problem), problem.noise_psd_w_per_hz)
        assert (problem.energy_budget_j[:, None] < problem.compute_energy_j).any()
        np.testing.assert_array_equal(
            table.links.busy_s, problem.compute_time_s + problem.fixed_latency_s[:, None]
        )
        for name in ("bits_nats", "gain_per_n0", "ratio_per_s", "ratio_budget"):
            np.testing.assert_array_equal(getattr(table.uplink, name), getattr(ref, name))
        bound = problem.retention - problem.energy_price_per_j * (
            problem.compute_energy_j + ref.bits_nats / ref.gain_per_n0
        )
        np.testing.assert_array_equal(table.value_bound, bound)
        np.testing.assert_array_equal(
            table.device_gain_per_n0, problem.gain_lin / problem.noise_psd_w_per_hz
        )

        ins = (
            (problem.compute_time_s, problem.payload_bits, problem.compute_energy_j,
             problem.retention),
            (problem.fixed_latency_s, problem.gain_lin, problem.max_power_w,
             problem.energy_budget_j),
            problem.noise_psd_w_per_hz, LN2, problem.energy_price_per_j,
        )  # fmt: skip
        one = tuple(np.empty(problem.payload_bits.shape) for _ in range(6))
        for i in range(n):
            option_kernels._constants_row(i, *ins, one)
        threaded = tuple(np.empty(problem.payload_bits.shape) for _ in range(6))
        option_kernels._constants_parallel(*ins, threaded)
        for a, b in zip(one, threaded, strict=True):
            np.testing.assert_array_equal(a, b)
