"""The lazily advanced channel: piecewise-exact transfers, order independence, stream isolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wsim.config import load_scenario
from wsim.rng import make_streams
from wsim.sim.channel_state import CellChannel

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
    res = _channel(MOBILE).integrate(device, bits, t0, bw, p, N0)
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
    res = ch.integrate(0, 1e12, 0.0, 1e6, 0.2, N0, t_limit_s=0.0105)
    assert not res.is_complete and res.t_end_s == 0.0105 and 0 < res.bits < 1e12
    assert res.num_blocks == 11


def test_block_state_does_not_depend_on_query_order() -> None:
    a, b = _channel(MOBILE), _channel(MOBILE)
    a.integrate(2, 5e5, 0.0, 1e6, 0.2, N0)  # a transfer computes blocks ahead
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
