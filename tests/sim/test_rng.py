"""Named streams: fixed per-name keys, so one subsystem's draws never shift another's."""

from __future__ import annotations

import numpy as np

from wsim.rng import STREAM_NAMES, make_stream, make_streams, torch_seed


def test_extra_draws_in_one_stream_do_not_shift_others() -> None:
    a, b = make_streams(42), make_streams(42)
    a.mobility.random(10_000)
    a.data.integers(0, 10, 77)
    for name in STREAM_NAMES:
        if name not in ("mobility", "data"):
            np.testing.assert_array_equal(getattr(a, name).random(8), getattr(b, name).random(8))


def test_streams_are_distinct_and_seeded() -> None:
    firsts = {name: make_stream(1, name).random() for name in STREAM_NAMES}
    assert len(set(firsts.values())) == len(STREAM_NAMES)
    assert make_stream(1, "channel").random() == firsts["channel"]
    assert make_stream(2, "channel").random() != firsts["channel"]
    assert make_streams(1).child("channel.los").random() == make_stream(1, "channel.los").random()
    assert 0 <= torch_seed(1) < 2**63 and torch_seed(1) != torch_seed(2)
