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

The steps cost a few element-wise passes over the devices: a state carries each device's speed
``|v|`` and (lazily) its distance to the BS, computed once with ``np.hypot`` and reused, and rare
events (new legs, arrivals, boundary crossings) are updated on the few devices concerned. The
results are the same floats as evaluating the formulas for every device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import InitVar, dataclass, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

# A device is an arrival candidate when both |Δx| and |Δy| to its destination are within
# reach·(1 + margin); |Δ| >= max(|Δx|, |Δy|) and np.hypot errs by < 1 ulp, so the margin
# (far above 1 ulp) never drops a device that arrives by the exact test ``reach >= hypot``.
_REACH_MARGIN = 1.0 + 1e-9


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


def _hypot_rows(xy: FloatArray) -> FloatArray:
    """Row norms ``sqrt(x² + y²)`` of ``[num, 2]``, ``[num]`` (``np.hypot``, no overflow)."""
    return np.hypot(xy[:, 0], xy[:, 1])


def _read_only(values: FloatArray) -> FloatArray:
    values.flags.writeable = False
    return values


@dataclass(frozen=True)
class MobilityState:
    """Mobility state of all devices.

    Attributes:
        position_m: ``[num_devices, 2]`` ground position relative to the BS, m.
        velocity_mps: ``[num_devices, 2]`` current velocity, m/s (0 while pausing).
        target_m: ``[num_devices, 2]`` random-waypoint destination, m.
        mean_velocity_mps: ``[num_devices, 2]`` Gauss–Markov mean velocity, m/s.
        pause_left_s: ``[num_devices]`` random-waypoint pause time still to wait, s.
        known_speed_mps: Optional ``[num_devices]`` array equal, bit for bit, to
            ``np.hypot`` of ``velocity_mps``'s columns (a step function that already has it
            passes it on; it becomes ``speed_mps`` and is made read-only); ``None`` computes
            it on first use.
        known_distance_m: The same for ``distance_m``, ``np.hypot`` of ``position_m``'s columns.

    States share arrays with each other and are never modified in place.
    """

    position_m: FloatArray
    velocity_mps: FloatArray
    target_m: FloatArray
    mean_velocity_mps: FloatArray
    pause_left_s: FloatArray
    known_speed_mps: InitVar[FloatArray | None] = None
    known_distance_m: InitVar[FloatArray | None] = None

    def __post_init__(
        self, known_speed_mps: FloatArray | None, known_distance_m: FloatArray | None
    ) -> None:
        # prime the cached properties (frozen dataclass: bypass the frozen __setattr__)
        if known_speed_mps is not None:
            object.__setattr__(self, "speed_mps", _read_only(known_speed_mps))
        if known_distance_m is not None:
            object.__setattr__(self, "distance_m", _read_only(known_distance_m))

    @cached_property
    def speed_mps(self) -> FloatArray:
        """Current speed ``|v|`` of each device, m/s, ``[num_devices]`` (read-only)."""
        return _read_only(_hypot_rows(self.velocity_mps))

    @cached_property
    def distance_m(self) -> FloatArray:
        """2-D ground distance to the BS, m, ``[num_devices]`` (read-only)."""
        return _read_only(_hypot_rows(self.position_m))


def speed_mps(state: MobilityState) -> FloatArray:
    """Current speed ``|v|`` of each device, m/s, ``[num_devices]`` (read-only)."""
    return state.speed_mps


def distance_m(state: MobilityState) -> FloatArray:
    """2-D ground distance to the BS, m, ``[num_devices]`` (read-only)."""
    return state.distance_m


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
    state = MobilityState(
        pos, zeros, pos.copy(), zeros.copy(), np.zeros(n), known_speed_mps=np.zeros(n)
    )
    if params.model == "random_waypoint":
        target, vel, speed = _new_legs(state, params, np.arange(n), rng)
        return replace(state, target_m=target, velocity_mps=vel, known_speed_mps=speed)
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
    devices: IndexArray,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Random waypoint: draw a destination and a speed for ``devices`` (indices, ascending).

    Returns:
        New destinations ``[N, 2]``, velocities ``[N, 2]`` and speeds ``[N]`` (copies of the
        state's, changed in the rows of ``devices``).
    """
    num = devices.size
    target = state.target_m.copy()
    vel = state.velocity_mps.copy()
    speed = state.speed_mps.copy()
    target[devices] = uniform_in_annulus(num, params.min_distance_m, params.radius_m, rng)
    leg_speed = rng.uniform(params.speed_mps, params.max_speed_mps, num)
    # [num, 2]
    delta = target[devices] - state.position_m[devices]
    norm = _hypot_rows(delta)[:, None]
    vel[devices] = leg_speed[:, None] * delta / np.where(norm > 0, norm, 1.0)
    speed[devices] = _hypot_rows(vel[devices])
    return target, vel, speed


def _arrivals(
    position_m: FloatArray, target_m: FloatArray, reach_m: FloatArray
) -> tuple[IndexArray, FloatArray]:
    """Devices whose destination is within reach, ``reach_m >= |target − position|``.

    Only the few candidates near their destination (see ``_REACH_MARGIN``) get ``np.hypot``.

    Returns:
        Indices of the arriving devices (ascending) and their distances to go, m.
    """
    # [num_devices, 2]
    gap = np.subtract(target_m, position_m)
    np.abs(gap, out=gap)
    bound = reach_m * _REACH_MARGIN
    near = np.flatnonzero((gap[:, 0] <= bound) & (gap[:, 1] <= bound))
    dist = _hypot_rows(target_m[near] - position_m[near])
    is_arriving = reach_m[near] >= dist
    return near[is_arriving], dist[is_arriving]


def step_random_waypoint(
    state: MobilityState, params: MobilityParams, dt_s: float, rng: np.random.Generator
) -> MobilityState:
    """Random waypoint step: pause, then walk; at most one new leg per device per step.

    A device that arrives mid-step starts its pause with the leftover time; a pause that ends
    mid-step starts a new leg for the rest of the step. A leg that also ends within the same
    step stops at its destination (error below one step, documented approximation).
    """
    # [num_devices] pause time spent in this step, and the time left for walking
    consumed = np.maximum(state.pause_left_s, 0.0)
    np.minimum(consumed, dt_s, out=consumed)
    time_left = dt_s - consumed
    pause = state.pause_left_s - consumed
    target, vel, speed = state.target_m, state.velocity_mps, state.speed_mps
    starting = np.flatnonzero((speed == 0) & (time_left > 0))
    if starting.size:
        target, vel, speed = _new_legs(state, params, starting, rng)
    arrived, dist = _arrivals(state.position_m, target, speed * time_left)
    # [num_devices, 2] position + velocity · time_left (per column: faster than broadcasting)
    pos = np.empty_like(state.position_m)
    np.multiply(vel[:, 0], time_left, out=pos[:, 0])
    np.multiply(vel[:, 1], time_left, out=pos[:, 1])
    pos += state.position_m
    if arrived.size:
        pos[arrived] = target[arrived]
        # the pause starts with the time left after arriving
        is_moving = speed[arrived] > 0
        moving = arrived[is_moving]
        leftover = time_left[moving] - dist[is_moving] / speed[moving]
        pause[moving] = params.pause_s - leftover
        vel = vel.copy() if vel is state.velocity_mps else vel
        speed = speed.copy() if speed is state.speed_mps else speed
        vel[arrived] = 0.0
        speed[arrived] = 0.0
    return replace(
        state,
        position_m=pos,
        velocity_mps=vel,
        target_m=target,
        pause_left_s=pause,
        known_speed_mps=speed,
    )


def keep_in_disk(
    pos: FloatArray, vel: FloatArray, radius_m: float, boundary: str
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], FloatArray]:
    """Bring positions that left the disk back inside (see module docstring).

    Returns:
        New positions ``[N, 2]``, velocities ``[N, 2]``, the mask of devices that crossed
        ``[N]`` and the new distances to the centre ``[N]`` (``np.hypot`` of the positions).
    """
    r = _hypot_rows(pos)
    out = r > radius_m
    crossed = np.flatnonzero(out)
    if not crossed.size:
        return pos, vel, out, r
    normal = pos[crossed] / r[crossed, None]
    inside = np.clip(2.0 * radius_m - r[crossed], 0.0, radius_m)[:, None]
    pos, vel = pos.copy(), vel.copy()
    if boundary == "wrap":
        pos[crossed] = -normal * inside
    else:
        pos[crossed] = normal * inside
        vel[crossed] = vel[crossed] - 2.0 * np.sum(vel[crossed] * normal, axis=1)[:, None] * normal
    r[crossed] = _hypot_rows(pos[crossed])
    return pos, vel, out, r


def step_gauss_markov(
    state: MobilityState, params: MobilityParams, dt_s: float, rng: np.random.Generator
) -> MobilityState:
    """Gauss–Markov step (velocity-vector form, see the module docstring)."""
    alpha = params.memory
    sigma = params.speed_mps / 2.0
    # [num_devices, 2]
    w = rng.standard_normal(state.velocity_mps.shape)
    vel = alpha * state.velocity_mps
    vel += (1.0 - alpha) * state.mean_velocity_mps
    w *= np.sqrt(1.0 - alpha**2) * sigma
    vel += w
    # [num_devices]
    speed = _hypot_rows(vel)
    too_fast = np.flatnonzero(speed > params.max_speed_mps)
    if too_fast.size:
        vel[too_fast] *= (params.max_speed_mps / speed[too_fast])[:, None]
        speed[too_fast] = _hypot_rows(vel[too_fast])
    pos = vel * dt_s
    pos += state.position_m
    pos, vel, out, dist = keep_in_disk(pos, vel, params.radius_m, params.boundary)
    mean = state.mean_velocity_mps
    crossed = np.flatnonzero(out)
    if params.boundary == "reflect" and crossed.size:
        speed[crossed] = _hypot_rows(vel[crossed])
        normal = pos[crossed] / dist[crossed, None]
        mean = mean.copy()
        mean[crossed] -= 2.0 * np.sum(mean[crossed] * normal, axis=1)[:, None] * normal
    return replace(
        state,
        position_m=pos,
        velocity_mps=vel,
        mean_velocity_mps=mean,
        known_speed_mps=speed,
        known_distance_m=dist,
    )


def step_vehicular(
    state: MobilityState, params: MobilityParams, dt_s: float, rng: np.random.Generator
) -> MobilityState:
    """Vehicular step: constant speed along the road ``y = road_offset_m``; exact displacement.

    The speed never changes (a U-turn flips the sign of ``v_x`` only).
    """
    half = road_half_length_m(params)
    # [num_devices] position along the road before the ends are handled
    x = state.velocity_mps[:, 0] * dt_s
    x += state.position_m[:, 0]
    vel = state.velocity_mps
    if params.boundary == "wrap":
        off = np.flatnonzero(np.abs(x) > half)
        x[off] = np.mod(x[off] + half, 2.0 * half) - half
    else:
        # fold onto [-L, L] with period 4L; the velocity flips on each odd fold
        u = x + half
        # np.mod(u, 4L) is u itself (exactly) for 0 <= u < 4L: fold only the others
        off = np.flatnonzero((u < 0.0) | (u >= 4.0 * half))
        u[off] = np.mod(u[off], 4.0 * half)
        flipped = np.flatnonzero(u > 2.0 * half)
        x = u - half
        x[flipped] = 3.0 * half - u[flipped]
        if flipped.size:
            vel = vel.copy()
            vel[flipped, 0] = -vel[flipped, 0]
    # [num_devices, 2]
    pos = np.empty_like(state.position_m)
    pos[:, 0] = x
    pos[:, 1] = state.position_m[:, 1]
    return replace(state, position_m=pos, velocity_mps=vel, known_speed_mps=state.speed_mps)


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
