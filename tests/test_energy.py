"""Compute and transmit energy, battery: closed forms and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsim.energy import (
    compute_cycles,
    compute_energy_j,
    compute_power_w,
    compute_time_s,
    depletion_time_s,
    drain_battery,
    spend_transmit,
    transmit_energy_j,
)


def test_closed_forms() -> None:
    cycles = compute_cycles(np.array([1e9, 2e9]), 0.5)
    np.testing.assert_allclose(cycles, [5e8, 1e9])
    np.testing.assert_allclose(compute_time_s(cycles, 1e9), [0.5, 1.0])
    np.testing.assert_allclose(compute_energy_j(cycles, 1e9, 1e-28), [0.05, 0.1], rtol=1e-12)
    # power × time == κ C f²
    t = compute_time_s(cycles, 1e9)
    np.testing.assert_allclose(
        compute_power_w(1e9, 1e-28) * t, compute_energy_j(cycles, 1e9, 1e-28), rtol=1e-12
    )
    assert transmit_energy_j(0.2, 3.0) == pytest.approx(0.6)
    np.testing.assert_array_equal(depletion_time_s([1.0, 1.0], [0.5, 0.0]), [2.0, np.inf])


@pytest.mark.parametrize("flops", [None, 0.0, -1.0, np.nan, np.inf])
def test_missing_or_zero_flops_is_an_error(flops) -> None:
    with pytest.raises(ValueError, match="flops"):
        compute_cycles(flops, 1.0)


@given(st.floats(0, 1e4), st.lists(st.floats(0, 1e3), max_size=20))
def test_battery_never_negative(battery: float, spends: list[float]) -> None:
    for e in spends:
        battery = float(drain_battery(battery, e))
        assert battery >= 0


def test_run_compute_completes_or_cuts_at_the_stop_or_the_battery() -> None:
    from wsim.energy import run_compute

    # f = 1 GHz, kappa = 1e-28: P = 0.1 W; 1e9 cycles take 1 s and 0.1 J
    run = run_compute(
        flops=[1e9, 1e9, 1e9, 1e9], cycles_per_flop=1.0, cpu_hz=1e9, kappa=1e-28,
        t0_s=[2.0, 2.0, 2.0, 2.0], stop_s=[np.inf, 2.5, np.inf, 2.0], battery_j=[1.0, 1.0, 0.04, 1.0],
    )  # fmt: skip
    np.testing.assert_allclose(run.t_end_s, [3.0, 2.5, 2.4, 2.0], rtol=1e-12)
    np.testing.assert_allclose(run.energy_j, [0.1, 0.05, 0.04, 0.0], rtol=1e-12)
    np.testing.assert_allclose(run.flops_done, [1e9, 5e8, 4e8, 0.0], rtol=1e-12)
    assert run.is_done.tolist() == [True, False, False, False]
    assert run.is_dropped.tolist() == [False, False, True, False]
    np.testing.assert_allclose(run.battery_j, [0.9, 0.95, 0.0, 1.0], rtol=1e-12)
    assert run.has_row.tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="never zero"):
        run_compute([0.0], 1.0, 1e9, 1e-28, [0.0], [1.0], [1.0])


def test_spend_transmit_closed_form_and_dropout() -> None:
    """``E = p t`` off the battery; a transmission cut by its battery spent all of it."""
    power, airtime = np.array([0.2, 0.1, 0.5]), np.array([2.0, 1.0, 4.0])
    battery = np.array([1.0, 1.0, 1.5])
    energy, left = spend_transmit(power, airtime, battery, np.array([False, False, True]))
    np.testing.assert_allclose(energy, [0.4, 0.1, 1.5])
    np.testing.assert_allclose(left, [0.6, 0.9, 0.0])
    # the dropped one's airtime is its battery's depletion time
    assert depletion_time_s(battery[2], power[2]) == pytest.approx(3.0)
