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
    uniform_in_annulus,
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


def _dense_reference_step(state, params: MobilityParams, dt: float, rng):
    """The step formulas evaluated for every device (no caches, no subsets): the oracle."""
    pos, vel = state.position_m, state.velocity_mps
    hyp = lambda a: np.hypot(a[:, 0], a[:, 1])  # noqa: E731
    if params.model == "random_waypoint":
        consumed = np.minimum(np.maximum(state.pause_left_s, 0.0), dt)
        time_left, pause = dt - consumed, state.pause_left_s - consumed
        new = (hyp(vel) == 0) & (time_left > 0)
        target, vel = state.target_m.copy(), vel.copy()
        target[new] = uniform_in_annulus(int(new.sum()), params.min_distance_m, R, rng)
        leg_speed = rng.uniform(params.speed_mps, params.max_speed_mps, int(new.sum()))
        delta = target[new] - pos[new]
        norm = hyp(delta)[:, None]
        vel[new] = leg_speed[:, None] * delta / np.where(norm > 0, norm, 1.0)
        speed, dist = hyp(vel), hyp(target - pos)
        arrive = speed * time_left >= dist
        new_pos = np.where(arrive[:, None], target, pos + vel * time_left[:, None])
        leftover = time_left - np.where(speed > 0, dist / np.where(speed > 0, speed, 1.0), 0.0)
        pause = np.where(arrive & (speed > 0), params.pause_s - leftover, pause)
        vel = np.where(arrive[:, None], 0.0, vel)
        return {
            "position_m": new_pos,
            "velocity_mps": vel,
            "target_m": target,
            "pause_left_s": pause,
        }
    if params.model == "vehicular":
        half = road_half_length_m(params)
        x, vx = pos[:, 0] + vel[:, 0] * dt, vel[:, 0]
        if params.boundary == "wrap":
            x = np.where(np.abs(x) > half, np.mod(x + half, 2.0 * half) - half, x)
        else:
            u = np.mod(x + half, 4.0 * half)
            x, vx = np.where(u > 2 * half, 3 * half - u, u - half), np.where(u > 2 * half, -vx, vx)
        return {
            "position_m": np.stack([x, pos[:, 1]], 1),
            "velocity_mps": np.stack([vx, vel[:, 1]], 1),
        }
    a, sigma, w = params.memory, params.speed_mps / 2.0, rng.standard_normal(vel.shape)
    vel = a * vel + (1 - a) * state.mean_velocity_mps + np.sqrt(1 - a**2) * sigma * w
    speed = hyp(vel)
    fast = speed > params.max_speed_mps
    vel[fast] *= (params.max_speed_mps / speed[fast])[:, None]
    pos = pos + vel * dt
    r = hyp(pos)
    out = r > R
    normal, inside = pos[out] / r[out, None], np.clip(2 * R - r[out], 0, R)[:, None]
    pos[out] = -normal * inside if params.boundary == "wrap" else normal * inside
    mean = state.mean_velocity_mps.copy()
    if params.boundary == "reflect":
        vel[out] -= 2.0 * np.sum(vel[out] * normal, axis=1)[:, None] * normal
        normal = pos[out] / hyp(pos[out])[:, None]  # the normal at the reflected position
        mean[out] -= 2.0 * np.sum(mean[out] * normal, axis=1)[:, None] * normal
    return {"position_m": pos, "velocity_mps": vel, "mean_velocity_mps": mean}


@pytest.mark.parametrize("boundary", ["reflect", "wrap"])
@pytest.mark.parametrize("model", ["random_waypoint", "gauss_markov", "vehicular"])
def test_step_equals_dense_formulas_bit_for_bit(model: str, boundary: str) -> None:
    """Caches and subset updates change no float: the step equals the formulas evaluated for
    every device, with the same draws, over many arrivals / crossings / U-turns (and the cached
    speed and distance equal np.hypot of the state's own vectors)."""
    params = MobilityParams(model, R, 10.0, 8.0, 12.0, 0.3, 0.6, boundary, 50.0)
    rng, ref_rng = np.random.default_rng(3), np.random.default_rng(3)
    state = init_mobility(params, 300, rng)
    ref_rng.bit_generator.state = rng.bit_generator.state
    for _ in range(300):
        expected = _dense_reference_step(state, params, 0.7, ref_rng)
        state = step_mobility(state, params, 0.7, rng)
        assert rng.bit_generator.state == ref_rng.bit_generator.state
        for name, values in expected.items():
            np.testing.assert_array_equal(getattr(state, name), values, strict=True)
        hyp = np.hypot(*state.velocity_mps.T), np.hypot(*state.position_m.T)
        np.testing.assert_array_equal(speed_mps(state), hyp[0], strict=True)
        np.testing.assert_array_equal(distance_m(state), hyp[1], strict=True)
    assert not speed_mps(state).flags.writeable and not distance_m(state).flags.writeable
