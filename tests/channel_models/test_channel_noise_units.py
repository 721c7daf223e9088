"""Noise PSD, dB conversions, and the modules' doctests."""

import doctest
import importlib

import numpy as np
import pytest

import channel_models as cm


def test_kt_at_290k() -> None:
    # 10 log10(1.380649e-23 * 290 / 1e-3) = -173.975 dBm/Hz
    assert abs(cm.thermal_noise_psd_dbm_per_hz(290.0) - (-173.98)) < 0.005
    with pytest.raises(ValueError):
        cm.thermal_noise_psd_dbm_per_hz(0.0)


def test_noise_psd() -> None:
    # -174 dBm/Hz = 10^(-17.4) mW/Hz = 10^(-20.4) W/Hz; NF adds in dB.
    assert cm.noise_psd_w_per_hz() == pytest.approx(10**-20.4, rel=1e-14)
    assert cm.noise_psd_w_per_hz(7.0) == pytest.approx(10**-19.7, rel=1e-14)
    np.testing.assert_allclose(cm.noise_psd_w_per_hz([0.0, 10.0]), [10**-20.4, 10**-19.4])


def test_db_round_trips() -> None:
    x = np.array([1e-12, 0.5, 1.0, 3e4])
    np.testing.assert_allclose(cm.db_to_lin(cm.lin_to_db(x)), x, rtol=1e-14)
    np.testing.assert_allclose(cm.dbm_to_w(cm.w_to_dbm(x)), x, rtol=1e-14)
    assert cm.dbm_to_w(0.0) == pytest.approx(1e-3, rel=1e-15)
    assert cm.lin_to_db(0.0) == -np.inf
    with pytest.raises(ValueError):
        cm.lin_to_db(-1.0)
    with pytest.raises(ValueError):
        cm.w_to_dbm(np.array([1.0, -0.1]))


@pytest.mark.parametrize("name", ["units", "pathloss", "shadowing", "fading", "noise", "rate"])
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"channel_models.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
