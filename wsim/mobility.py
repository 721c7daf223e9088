"""Device mobility in a circular cell: pure step functions on arrays, vectorized over devices.

The BS is at the origin; positions are 2-D ground coordinates in m, velocities in m/s. Each model
is a function ``step(state, params, dt_s, rng) -> state`` that advances all devices by ``dt_s``
simulated seconds (the engine calls it every ``mobility_step_s``):

- ``static``: devices never move.
- ``random_waypoint`` (pedestrian; Johnson & Maltz 1996, Camp et al. 2002): pick a destination
  uniformly in the cell and a speed uniformly in ``[speed_mps, max_speed_mps]``, walk to it in a
  straight line, pause ``pause_s``, repeat. The cell is convex, so no boundary handling is needed.
- ``gauss_markov`` (Liang & Haas 1999; Camp et al. 2002), velocity-vector form
  ``v[n+1] = α v[n] + (1 − α) v̄ + sqrt(1 − α²) σ w``, ``w ~ N(0, I₂)``, with mean velocity
  ``v̄`` of magnitude ``speed_mps`` in a random direction per device and ``σ = speed_mps / 2``
  (the stationary per-axis standard deviation); speeds are clipped to ``max_speed_mps``.
- ``vehicular``: a straight road at ``road_offset_m`` from the BS (the chord ``y = offset`` of the
  cell), each device at a constant speed drawn uniformly in ``[speed_mps, max_speed_mps]``,
  heading ±x at random.

Positions stay inside the cell of radius ``radius_m``: ``reflect`` mirrors an overshoot back
inside (and the velocity about the boundary normal; on the road, a U-turn), ``wrap`` re-enters
at the antipodal boundary point with the same velocity (on the road, at the other end).
Distances below ``min_distance_m`` are allowed here; the channel clamps them for path loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MobilityParams:
    """Mobility parameters (see the module docstring); lengths in m, speeds in m/s."""

    model: str
    radius_m: float
    min_distance_m: float = 0.0
    speed_mps: float = 1.0
    max_speed_mps: float = 1.5
    pause_s: float = 0.0
    memory: float = 0.75
    boundary: str = "reflect"
    road_offset_m: float = 0.0


@dataclass(frozen=True)
class MobilityState:
    """Mobility state of all devices.

    Attributes:
        position_m: ``[num_devices, 2]`` ground position relative to the BS, m.
        velocity_mps: ``[num_devices, 2]`` current velocity, m/s (0 while pausing).
        target_m: ``[num_devices, 2]`` random-waypoint destination, m.
        mean_velocity_mps: ``[num_devices, 2]`` Gauss–Markov mean velocity, m/s.
        pause_left_s: ``[num_devices]`` random-waypoint pause time still to wait, s.
    """

    position_m: FloatArray
    velocity_mps: FloatArray
    target_m: FloatArray
    mean_velocity_mps: FloatArray
    pause_left_s: FloatArray


def speed_mps(state: MobilityState) -> FloatArray:
    """Current speed ``|v|`` of each device, m/s, ``[num_devices]``."""
    return np.hypot(state.velocity_mps[:, 0], state.velocity_mps[:, 1])


def distance_m(state: MobilityState) -> FloatArray:
    """2-D ground distance to the BS, m, ``[num_devices]``."""
    return np.hypot(state.position_m[:, 0], state.position_m[:, 1])


def uniform_in_annulus(
    num: int, r_min_m: float, r_max_m: float, rng: np.random.Generator
) -> FloatArray:
    """Points uniform in area on the annulus ``r_min <= r <= r_max``, ``[num, 2]`` in m."""
    r = np.sqrt(rng.uniform(r_min_m**2, r_max_m**2, num))
    phi = rng.uniform(0.0, 2.0 * np.pi, num)
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)


def _unit_vectors(num: int, rng: np.random.Generator) -> FloatArray:
    phi = rng.uniform(0.0, 2.0 * np.pi, num)
    return np.stack([np.cos(phi), np.sin(phi)], axis=1)


def road_half_length_m(params: MobilityParams) -> float:
    """Half length ``L = sqrt(R² − offset²)`` of the road chord, m."""
    return float(np.sqrt(params.radius_m**2 - params.road_offset_m**2))


def init_mobility(
    params: MobilityParams, num_devices: int, rng: np.random.Generator
) -> MobilityState:
    """Initial positions (uniform in the cell, or on the road) and velocities."""
    n = num_devices
    zeros = np.zeros((n, 2))
    if params.model == "vehicular":
        half = road_half_length_m(params)
        x = rng.uniform(-half, half, n)
        pos = np.stack([x, np.full(n, params.road_offset_m)], axis=1)
        speed = rng.uniform(params.speed_mps, params.max_speed_mps, n)
        heading = rng.choice([-1.0, 1.0], n)
        vel = np.stack([heading * speed, np.zeros(n)], axis=1)
        return MobilityState(pos, vel, pos.copy(), vel.copy(), np.zeros(n))
    pos = uniform_in_annulus(n, params.min_distance_m, params.radius_m, rng)
    state = MobilityState(pos, zeros, pos.copy(), zeros.copy(), np.zeros(n))
    if params.model == "random_waypoint":
        return _new_legs(state, params, np.ones(n, dtype=bool), rng)
    if params.model == "gauss_markov":
        mean = params.speed_mps * _unit_vectors(n, rng)
        return replace(state, velocity_mps=mean.copy(), mean_velocity_mps=mean)
    if params.model not in MOBILITY_MODELS:
        raise ValueError(
            f"unknown mobility model {params.model!r} (valid: {', '.join(MOBILITY_MODELS)})"
        )
    return state


def step_static(
    state: MobilityState, params: MobilityParams, dt_s: float, rng: np.random.Generator
) -> MobilityState:
    """Static devices: the state is unchanged."""
    return state


def _new_legs(
    state: MobilityState,
    params: MobilityParams,
    mask: npt.NDArray[np.bool_],
    rng: np.random.Generator,
) -> MobilityState:
    """Random waypoint: draw a destination and a speed for the devices in ``mask``."""
    num = int(mask.sum())
    target = state.target_m.copy()
    vel = state.velocity_mps.copy()
    target[mask] = uniform_in_annulus(num, params.min_distance_m, params.radius_m, rng)
    speed = rng.uniform(params.speed_mps, params.max_speed_mps, num)
    delta = target[mask] - state.position_m[mask]
    norm = np.hypot(delta[:, 0], delta[:, 1])[:, None]
    vel[mask] = speed[:, None] * delta / np.where(norm > 0, norm, 1.0)
    return replace(state, target_m=target, velocity_mps=vel)


def step_random_waypoint(
    state: MobilityState, params: MobilityParams, dt_s: float, rng: np.random.Generator
) -> MobilityState:
    """Random waypoint step: pause, then walk; at most one new leg per device per step.

    A device that arrives mid-step starts its pause with the leftover time; a pause that ends
    mid-step starts a new leg for the rest of the step. A leg that also ends within the same
    step stops at its destination (error below one step, documented approximation).
    """
    pause = state.pause_left_s.copy()
    # [num_devices] time available for walking in this step
    consumed = np.minimum(np.maximum(pause, 0.0), dt_s)
    time_left = dt_s - consumed
    pause = pause - consumed
    speed = speed_mps(state)
    state = _new_legs(state, params, (speed == 0) & (time_left > 0), rng)
    speed = speed_mps(state)
    delta = state.target_m - state.position_m
    dist = np.hypot(delta[:, 0], delta[:, 1])
    arrive = speed * time_left >= dist
    pos = np.where(
        arrive[:, None], state.target_m, state.position_m + state.velocity_mps * time_left[:, None]
    )
    leftover = time_left - np.where(speed > 0, dist / np.where(speed > 0, speed, 1.0), 0.0)
    pause = np.where(arrive & (speed > 0), params.pause_s - leftover, pause)
    vel = np.where(arrive[:, None], 0.0, state.velocity_mps)
    return replace(state, position_m=pos, velocity_mps=vel, pause_left_s=pause)


def keep_in_disk(
    pos: FloatArray, vel: FloatArray, radius_m: float, boundary: str
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Bring positions that left the disk back inside (see module docstring).

    Returns:
        New positions ``[N, 2]``, velocities ``[N, 2]`` and the mask of devices that crossed.
    """
    r = np.hypot(pos[:, 0], pos[:, 1])
    out = r > radius_m
    if not out.any():
        return pos, vel, out
    normal = pos[out] / r[out, None]
    inside = np.clip(2.0 * radius_m - r[out], 0.0, radius_m)[:, None]
    pos, vel = pos.copy(), vel.copy()
    if boundary == "wrap":
        pos[out] = -normal * inside
    else:
        pos[out] = normal * inside
        vel[out] = vel[out] - 2.0 * np.sum(vel[out] * normal, axis=1)[:, None] * normal
    return pos, vel, out


def step_gauss_markov(
    state: MobilityState, params: MobilityParams, dt_s: float, rng: np.random.Generator
) -> MobilityState:
    """Gauss–Markov step (velocity-vector form, see the module docstring)."""
    alpha = params.memory
    sigma = params.speed_mps / 2.0
    w = rng.standard_normal(state.velocity_mps.shape)
    vel = alpha * state.velocity_mps + (1.0 - alpha) * state.mean_velocity_mps
    vel = vel + np.sqrt(1.0 - alpha**2) * sigma * w
    speed = np.hypot(vel[:, 0], vel[:, 1])
    too_fast = speed > params.max_speed_mps
    vel[too_fast] *= (params.max_speed_mps / speed[too_fast])[:, None]
    pos = state.position_m + vel * dt_s
    pos, vel, crossed = keep_in_disk(pos, vel, params.radius_m, params.boundary)
    mean = state.mean_velocity_mps.copy()
    if params.boundary == "reflect" and crossed.any():
        normal = pos[crossed] / np.hypot(pos[crossed, 0], pos[crossed, 1])[:, None]
        mean[crossed] -= 2.0 * np.sum(mean[crossed] * normal, axis=1)[:, None] * normal
    return replace(state, position_m=pos, velocity_mps=vel, mean_velocity_mps=mean)


def step_vehicular(
    state: MobilityState, params: MobilityParams, dt_s: float, rng: np.random.Generator
) -> MobilityState:
    """Vehicular step: constant speed along the road ``y = road_offset_m``; exact displacement."""
    half = road_half_length_m(params)
    x = state.position_m[:, 0] + state.velocity_mps[:, 0] * dt_s
    vx = state.velocity_mps[:, 0].copy()
    if params.boundary == "wrap":
        x = np.where(np.abs(x) > half, np.mod(x + half, 2.0 * half) - half, x)
    else:
        # fold onto [-L, L] with period 4L; the velocity flips on each odd fold
        u = np.mod(x + half, 4.0 * half)
        flipped = u > 2.0 * half
        x = np.where(flipped, 3.0 * half - u, u - half)
        vx = np.where(flipped, -vx, vx)
    pos = np.stack([x, state.position_m[:, 1]], axis=1)
    vel = np.stack([vx, state.velocity_mps[:, 1]], axis=1)
    return replace(state, position_m=pos, velocity_mps=vel)


Stepper = Callable[[MobilityState, MobilityParams, float, np.random.Generator], MobilityState]

MOBILITY_MODELS: dict[str, Stepper] = {
    "static": step_static,
    "random_waypoint": step_random_waypoint,
    "gauss_markov": step_gauss_markov,
    "vehicular": step_vehicular,
}


def step_mobility(
    state: MobilityState, params: MobilityParams, dt_s: float, rng: np.random.Generator
) -> MobilityState:
    """Advance all devices by ``dt_s`` seconds with the model named in ``params``."""
    if dt_s < 0:
        raise ValueError(f"dt_s must be >= 0, got {dt_s}")
    return MOBILITY_MODELS[params.model](state, params, dt_s, rng)
