"""Mobility: positions stay in the cell, speeds are exact where the model says so."""

from __future__ import annotations

import numpy as np
import pytest

from wsim.mobility import (
    MobilityParams,
    distance_m,
    init_mobility,
    road_half_length_m,
    speed_mps,
    step_mobility,
)

R = 200.0


def _run(params: MobilityParams, steps: int, dt: float = 0.5, n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    state = init_mobility(params, n, rng)
    states = [state]
    for _ in range(steps):
        state = step_mobility(state, params, dt, rng)
        states.append(state)
    return states


@pytest.mark.parametrize("boundary", ["reflect", "wrap"])
@pytest.mark.parametrize("model", ["static", "random_waypoint", "gauss_markov", "vehicular"])
def test_positions_stay_in_cell(model: str, boundary: str) -> None:
    params = MobilityParams(model, R, 10.0, 8.0, 12.0, 1.0, 0.6, boundary, 50.0)
    for state in _run(params, 300):
        assert (distance_m(state) <= R + 1e-9).all()
        assert np.isfinite(state.position_m).all()


def test_vehicular_speed_is_exact() -> None:
    params = MobilityParams("vehicular", R, speed_mps=15.0, max_speed_mps=30.0, road_offset_m=50.0)
    states = _run(params, 1, dt=0.01)
    v = speed_mps(states[0])
    assert ((v >= 15.0) & (v <= 30.0)).all()
    dx = states[1].position_m[:, 0] - states[0].position_m[:, 0]
    np.testing.assert_allclose(np.abs(dx), v * 0.01, rtol=1e-9)  # none reaches the end in 10 ms
    assert (states[1].position_m[:, 1] == 50.0).all()
    long = _run(params, 400, dt=0.1)  # wraps/U-turns keep the car on the road at its speed
    assert all(
        (np.abs(s.position_m[:, 0]) <= road_half_length_m(params) + 1e-9).all() for s in long
    )
    np.testing.assert_allclose(speed_mps(long[-1]), v)


def test_random_waypoint_moves_at_its_speed() -> None:
    params = MobilityParams("random_waypoint", R, 10.0, 1.2, 1.2, 3.0)
    states = _run(params, 40, dt=0.1)
    for a, b in zip(states[:-1], states[1:], strict=True):
        moving = (speed_mps(a) > 0) & (speed_mps(b) > 0) & (a.pause_left_s <= 0)
        step = np.hypot(*(b.position_m - a.position_m).T)
        np.testing.assert_allclose(step[moving], 1.2 * 0.1, rtol=1e-9)
    np.testing.assert_allclose(speed_mps(states[0]), 1.2, rtol=1e-12)


def test_static_never_moves_and_gauss_markov_respects_max_speed() -> None:
    static = _run(MobilityParams("static", R, 10.0, 0.0, 0.0), 5)
    np.testing.assert_array_equal(static[0].position_m, static[-1].position_m)
    gm = _run(MobilityParams("gauss_markov", R, 10.0, 2.0, 3.0, memory=0.5), 100)
    assert all((speed_mps(s) <= 3.0 + 1e-9).all() for s in gm)
