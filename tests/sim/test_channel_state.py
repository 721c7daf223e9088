"""The lazily advanced channel: piecewise-exact transfers, order independence, stream isolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.sim.oracle import integrate as oracle_integrate
from wsim.config import load_scenario
from wsim.rng import make_streams
from wsim.sim.channel_state import CellChannel
from wsim.sim.transfer import make_link, send

MOBILE = [
    "devices.num_devices=3", "mobility.model=vehicular", "mobility.speed_mps=20.0",
    "mobility.max_speed_mps=30.0", "cell.fading=rayleigh", "sim.fading_block_s=0.001",
    "sim.mobility_step_s=0.002", "seed=11",
]  # fmt: skip
N0 = 1e-20


def _channel(overrides: list[str]) -> CellChannel:
    sc = load_scenario(None, overrides)
    return CellChannel(sc, make_streams(sc.seed))


def test_transfer_end_equals_independent_piecewise_integral() -> None:
    bits, t0, bw, p, device = 3e6, 0.01234, 1e6, 0.2, 1
    res = oracle_integrate(_channel(MOBILE), device, bits, t0, bw, p, N0)
    ref = _channel(MOBILE)  # same seed: the same block sequence
    block_s = ref.block_s
    n, t, left, blocks = int(t0 // block_s), t0, bits, 0
    while True:  # plain scalar loop over blocks
        g = ref.block(n).gain_lin[device]
        rate = bw * math.log2(1.0 + p * g / (N0 * bw))
        seg_end = (n + 1) * block_s
        blocks += 1
        if rate * (seg_end - t) >= left:
            t_end = t + left / rate
            break
        left -= rate * (seg_end - t)
        t, n = seg_end, n + 1
    assert blocks > 5  # the transfer really crosses blocks, with varying gains
    assert res.is_complete and res.t_end_s == pytest.approx(t_end, rel=1e-9)
    assert res.num_blocks == blocks and res.bits == bits


def test_transfer_is_cut_at_the_limit() -> None:
    ch = _channel(MOBILE)
    res = oracle_integrate(ch, 0, 1e12, 0.0, 1e6, 0.2, N0, t_limit_s=0.0105)
    assert not res.is_complete and res.t_end_s == 0.0105 and 0 < res.bits < 1e12
    assert res.num_blocks == 11


def test_block_state_does_not_depend_on_query_order() -> None:
    a, b = _channel(MOBILE), _channel(MOBILE)
    oracle_integrate(a, 2, 5e5, 0.0, 1e6, 0.2, N0)  # a transfer computes blocks ahead
    late_a = a.state_at(0.05).gain_lin
    late_b = b.state_at(0.05).gain_lin
    np.testing.assert_array_equal(late_a, late_b)


def test_mobility_draws_do_not_shift_the_fading_stream() -> None:
    static = _channel(MOBILE + ["mobility.model=static", "mobility.speed_mps=0.0"])
    moving = _channel(MOBILE)
    # initial small-scale fading comes from the channel stream only
    np.testing.assert_array_equal(static._fading.h, moving._fading.h)
    assert not np.array_equal(static.mobility.position_m, moving.mobility.position_m)


def test_static_device_without_fading_has_constant_gain() -> None:
    ch = _channel(
        [
            "devices.num_devices=2",
            "mobility.model=static",
            "mobility.speed_mps=0.0",
            "cell.fading=none",
        ]
    )
    np.testing.assert_array_equal(ch.state_at(0.0).gain_lin, ch.state_at(7.3).gain_lin)


@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_chunked_fading_equals_block_fading_block_by_block(fading: str) -> None:
    from channel_models import BlockFading, doppler_hz, jakes_correlation

    sc = load_scenario(None, MOBILE + [f"cell.fading={fading}", "mobility.model=static",
                                       "mobility.speed_mps=0.0", "mobility.max_speed_mps=0.0"])  # fmt: skip
    ch = CellChannel(sc, make_streams(sc.seed))
    k_db = sc.cell.rician_k_db if fading == "rician" else None
    ref = BlockFading(3, make_streams(sc.seed).channel, k_factor_db=k_db)
    # the same draws and float64 arithmetic; the gains come out in float32 (round-off 6e-8)
    np.testing.assert_allclose(ch._fading.h, ref.h, rtol=1e-12)
    rho = np.asarray(jakes_correlation(doppler_hz(np.array([5.0, 10.0, 20.0]), 2e9), 1e-3))
    rho2 = np.asarray(jakes_correlation(doppler_hz(np.array([30.0, 0.0, 2.0]), 2e9), 1e-3))
    # runs of blocks per mobility step: a step without Doppler (None) holds the fading

    def gains(pieces, advance_first):  # |h|² (unit large-scale gain), [blocks, devices]
        out = np.empty((3, sum(count for count, _ in pieces)), dtype=np.float32)
        ch._fading.gains_into([(c, np.ones(3), r) for c, r in pieces], advance_first, out, 0)
        return out.T

    got = np.concatenate([gains([(4, rho)], advance_first=False),
                          gains([(1, rho), (2, rho2), (2, None), (1, rho)], advance_first=True)])  # fmt: skip
    want = [ref.power_gain_lin] + [np.abs(ref.advance(rho)) ** 2 for _ in range(4)]
    want += [np.abs(ref.advance(rho2)) ** 2 for _ in range(2)]
    want += [ref.power_gain_lin] * 2 + [np.abs(ref.advance(rho)) ** 2]
    np.testing.assert_allclose(got, np.array(want), rtol=1e-7)


BW, P = np.array([1e6, 2e6, 5e5]), np.array([0.2, 0.1, 0.05])


def _send(ch, dev, bits, t0, limit, now):
    """``transfer.send`` on the uplink ``(BW, P)`` of ``ch``, arguments as arrays."""
    arr = lambda x: np.atleast_1d(np.asarray(x, dtype=float))  # noqa: E731
    dev = np.atleast_1d(np.asarray(dev, dtype=np.int64))
    return send(ch, make_link(BW, P, N0, 3), dev, arr(bits), arr(t0), arr(limit), now)


def test_transfers_agree_with_the_generic_integral() -> None:
    """One vectorized call, one call per transfer and the block-by-block oracle agree."""
    ch, ref = _channel(MOBILE), _channel(MOBILE)
    t0 = np.array([0.0004, 0.0031, 0.0102])
    bits = np.array([3e6, 8e5, 1e3])
    many = _send(ch, np.arange(3), bits, t0, np.full(3, np.inf), 0.0)
    assert many.is_complete.all() and not many.timed_out.any()
    for i in range(3):
        one = _send(ch, i, bits[i], t0[i], np.inf, 0.0)
        want = oracle_integrate(ref, i, bits[i], t0[i], BW[i], P[i], N0)
        assert one.is_complete[0] and one.t_end_s[0] == pytest.approx(want.t_end_s, rel=1e-12)
        assert many.t_end_s[i] == one.t_end_s[0]
        assert one.num_blocks[0] == many.num_blocks[i] == want.num_blocks
        assert one.mean_snr_lin[0] == pytest.approx(want.mean_snr_lin, rel=1e-9)
    cut = _send(ch, 0, 1e12, 0.0005, 0.0105, 0.0)
    want = oracle_integrate(_channel(MOBILE), 0, 1e12, 0.0005, BW[0], P[0], N0, t_limit_s=0.0105)
    assert not cut.is_complete[0] and cut.t_end_s[0] == 0.0105
    assert cut.num_blocks[0] == want.num_blocks == 11
    # the generic path reports 1e12 - remaining: ulp(1e12) ~ 1e-4 bits of round-off there
    assert cut.bits_sent[0] == pytest.approx(want.bits, rel=1e-8)


def test_batch_of_transfers_equals_the_generic_integral_case_by_case() -> None:
    """``send``: completions, cuts at a limit, at the horizon, empty and unstartable transfers
    in one batch, each == the oracle (long ones span several passes and groups)."""
    ch = _channel(MOBILE)
    dev = np.array([0, 1, 2, 0, 1, 2, 1])
    bits = np.array([3e6, 4e7, 1e3, 1e12, 0.0, 5e5, 2e6])
    t0 = np.array([0.0004, 0.0031, 0.0102, 0.0005, 0.02, 0.03, 0.0])
    limit = np.array([np.inf, np.inf, np.inf, 0.0105, np.inf, 0.03, np.inf])
    t_end, sent, complete, blocks, snr, _, _ = _send(ch, dev, bits, t0, limit, 0.0)
    horizon = ch.horizon_end_s(0.0)
    for j in range(len(dev)):
        stop = min(limit[j], horizon)
        if bits[j] <= 0 or stop <= t0[j]:  # nothing sent: empty (complete) or unstartable
            assert (t_end[j], sent[j], complete[j], blocks[j]) == (t0[j], 0.0, bits[j] <= 0, 0)
            continue
        ref = oracle_integrate(_channel(MOBILE), int(dev[j]), bits[j], t0[j], BW[dev[j]],
                               P[dev[j]], N0, t_limit_s=stop)  # fmt: skip
        assert complete[j] == ref.is_complete and blocks[j] == ref.num_blocks
        assert t_end[j] == pytest.approx(ref.t_end_s, rel=1e-12)
        # the generic path reports bits − remaining: ulp(1e12) ~ 1e-4 bit of round-off there
        assert sent[j] == pytest.approx(ref.bits, rel=1e-8)
        assert snr[j] == pytest.approx(ref.mean_snr_lin, rel=1e-9)
    assert complete[[0, 2, 6]].all() and not complete[3] and t_end[3] == 0.0105
    assert not complete[1] and t_end[1] == horizon  # 40 Mbit outlast the horizon


def test_a_start_before_the_released_blocks_is_an_error() -> None:
    ch = _channel(MOBILE)
    _send(ch, 0, 1e4, 0.5, np.inf, 0.5)  # the clock at 0.5 s
    with pytest.raises(ValueError, match="released"):
        _send(ch, 1, 1e4, 0.1, np.inf, 0.5)
    with pytest.raises(ValueError, match="released"):
        ch.gains(0, 5, 3)


def test_a_device_without_a_link_is_an_error() -> None:
    ch = _channel(MOBILE)
    link = make_link(np.array([1e6, 0.0, 5e5]), P, N0, 3)
    with pytest.raises(ValueError, match=r"devices \[1\]: no link"):
        send(ch, link, np.array([1]), np.array([1e4]), np.zeros(1), np.full(1, np.inf), 0.0)


def test_memory_stays_bounded_when_the_clock_jumps_far_ahead() -> None:
    """A clock 100 s (10^5 blocks) past the computed blocks: the buffer keeps at most its
    capacity, not every block in between."""
    ch = _channel(MOBILE)
    cap = ch._gains.shape[1]
    res = _send(ch, 2, 1e6, 100.0, np.inf, 100.0)
    assert res.is_complete[0] and res.t_end_s[0] > 100.0
    assert ch._gains.shape[1] == cap and ch._num_computed >= 100_000


def test_generic_integral_without_progress_or_limit_is_an_error() -> None:
    ch = _channel(["devices.num_devices=1", "mobility.model=static", "mobility.speed_mps=0.0",
                   "cell.fading=none", "faults.min_rate_bps=1e12", "faults.outage_timeout_s=1.0"])  # fmt: skip
    with pytest.raises(ValueError, match="no progress"):
        oracle_integrate(ch, 0, 1e6, 0.0, 1e6, 0.2, N0)
    cut = oracle_integrate(ch, 0, 1e6, 0.0, 1e6, 0.2, N0, t_limit_s=2.0)  # a limit ends it
    assert not cut.is_complete and cut.bits == 0.0 and cut.t_end_s == 2.0


@pytest.mark.parametrize("csi", ["instantaneous", "average"])
def test_the_solver_plans_with_the_gain_optimizer_csi_names(fake_workload, csi: str) -> None:
    """``average``: the large-scale gain (path loss + shadowing, no fading); ``instantaneous``:
    with the fading state at the round start. ``gain_db`` in devices.csv is that gain."""
    from wsim.sim.allocators import get_allocator
    from wsim.sim.engine import run_simulation

    sc = load_scenario(None, MOBILE + ["sim.num_rounds=2", f"optimizer.csi={csi!r}"])
    seen, solve = [], get_allocator(sc.optimizer.solver)
    res = run_simulation(
        sc, workload=fake_workload(), allocator=lambda o: seen.append(o) or solve(o)
    )
    ref = CellChannel(sc, make_streams(sc.seed))
    for r, obs in enumerate(seen):
        state = ref.state_at(float(res.rounds["t_start_s"].iloc[r]))
        want = state.gain_lin if csi == "instantaneous" else state.large_scale_lin
        np.testing.assert_allclose(obs.problem.gain_lin, want, rtol=1e-12)
        got_db = res.devices[res.devices["round"] == r]["gain_db"].to_numpy()
        np.testing.assert_allclose(got_db, 10 * np.log10(want), rtol=1e-12)
    fading = np.asarray(seen[0].problem.gain_lin) / ref.state_at(0.0).large_scale_lin
    assert np.allclose(fading, 1.0) == (csi == "average")
