"""Large-scale path loss (dB) and LOS probability, vectorized over devices.

Models (``PATHLOSS_MODELS``):

- ``"free_space"``: Friis, ``PL = 20 log10(4 pi d f_c / c)``.
- ``"exponent"``: free space at 1 m, then ``d^alpha``:
  ``PL = 20 log10(4 pi f_c / c) + 10 alpha log10(d / 1 m)`` (the log-distance model with a
  1 m reference, Goldsmith eq. (2.40); ST-SFLora's "path-loss exponent 2.5"). ``alpha = 2``
  is free space.
- ``"3gpp_macro"``: ``PL = 128.1 + 37.6 log10(d / 1 km)``, the 2 GHz urban macro-cell model of
  3GPP TR 36.814 Annex A.2.1.1.2 used by most split-federated-learning papers. The carrier is
  not a parameter of this model (it is ignored). Valid for ``d >= 35 m``: shorter distances are
  **clipped** to 35 m (the loss stays flat there instead of exploding).
- ``"uma"``, ``"umi"``: 3GPP TR 38.901 V17 Table 7.4.1-1, UMa and UMi street canyon, LOS and
  NLOS. ``distance_m`` is the 2-D ground distance; ``d3D = sqrt(d2D^2 + (h_BS - h_UT)^2)``.
  The table is valid for ``10 m <= d2D <= 5 km``: shorter distances are **clipped** to 10 m,
  longer ones extrapolate the formula. The effective environment height is fixed at
  ``h_E = 1 m`` (exact for UMi; for UMa the table draws a larger ``h_E`` with probability
  ``C(d2D, h_UT) / (1 + C)``, which is zero for ``h_UT <= 13 m`` — so exact for the default
  1.5 m terminals). Note the contract default ``h_bs_m = 25`` is the UMa height; the
  standard UMi base station is at 10 m: pass ``h_bs_m=10.0`` for UMi.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from channel_models.units import SPEED_OF_LIGHT_MPS, ArrayLike, FloatArray, as_output

MIN_DISTANCE_MACRO_M = 35.0
MIN_DISTANCE_38901_M = 10.0
ENVIRONMENT_HEIGHT_M = 1.0


def _positive(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=float)
    if not np.all(arr > 0):  # also rejects NaN
        raise ValueError(f"{name} must be > 0 (and not NaN), got min {np.min(arr)!r}")
    return arr


def free_space_pathloss_db(distance_m: ArrayLike, carrier_hz: ArrayLike = 2e9) -> FloatArray:
    """Free-space (Friis) path loss ``PL = 20 log10(4 pi d f_c / c)`` in dB.

    Reference: Goldsmith, "Wireless Communications", eq. (2.7) (isotropic antennas).

    Args:
        distance_m: Distance d > 0 in m, any shape.
        carrier_hz: Carrier frequency f_c > 0 in Hz, broadcastable with ``distance_m``.

    Returns:
        Path loss in dB, broadcast shape.

    >>> print(f"{free_space_pathloss_db(1000.0, 2e9):.2f}")
    98.47
    """
    d = _positive(distance_m, "distance_m")
    fc = _positive(carrier_hz, "carrier_hz")
    return as_output(20.0 * np.log10(4.0 * np.pi * d * fc / SPEED_OF_LIGHT_MPS))


def exponent_pathloss_db(
    distance_m: ArrayLike, carrier_hz: ArrayLike = 2e9, exponent: ArrayLike = 2.0
) -> FloatArray:
    """Log-distance path loss ``PL = 20 log10(4 pi f_c / c) + 10 alpha log10(d / 1 m)`` in dB.

    Free-space loss at the 1 m reference distance, then a power law of exponent ``alpha``.
    Reference: Goldsmith, "Wireless Communications", eq. (2.40) (simplified path-loss model,
    ``d0 = 1 m``, ``K`` the free-space gain at ``d0``).

    Args:
        distance_m: Distance d > 0 in m, any shape (below 1 m the loss falls under the
            reference; the engine clips distances at ``cell.min_distance_m``).
        carrier_hz: Carrier frequency f_c > 0 in Hz.
        exponent: Path-loss exponent alpha > 0 (2 = free space; 2.5–4 urban).

    Returns:
        Path loss in dB, broadcast shape.

    >>> print(f"{exponent_pathloss_db(100.0, 3.5e9, 2.5):.4f}")
    93.3291
    """
    d = _positive(distance_m, "distance_m")
    fc = _positive(carrier_hz, "carrier_hz")
    alpha = _positive(exponent, "exponent")
    at_1m_db = 20.0 * np.log10(4.0 * np.pi * fc / SPEED_OF_LIGHT_MPS)
    return as_output(at_1m_db + 10.0 * alpha * np.log10(d))


def macro_pathloss_db(distance_m: ArrayLike) -> FloatArray:
    """3GPP urban macro-cell loss ``PL = 128.1 + 37.6 log10(d_km)`` in dB (2 GHz carrier).

    Reference: 3GPP TR 36.814 Annex A.2.1.1.2 (macro cell, 8 dB log-normal shadowing).
    Distances below 35 m (the model's minimum) are clipped to 35 m.

    Args:
        distance_m: Distance d > 0 in m, any shape.

    Returns:
        Path loss in dB, same shape.

    >>> print(f"{macro_pathloss_db(1000.0):.1f}")
    128.1
    """
    d = np.maximum(_positive(distance_m, "distance_m"), MIN_DISTANCE_MACRO_M)
    return as_output(128.1 + 37.6 * np.log10(d / 1000.0))


def breakpoint_distance_m(
    h_bs_m: ArrayLike, h_ut_m: ArrayLike, carrier_hz: ArrayLike
) -> FloatArray:
    """Effective breakpoint distance ``d'_BP = 4 h'_BS h'_UT f_c / c`` in m.

    Reference: 3GPP TR 38.901 Table 7.4.1-1, note 1, with ``h' = h - h_E`` and
    ``h_E = 1 m`` (see the module docstring).

    >>> print(f"{breakpoint_distance_m(25.0, 1.5, 3.5e9):.1f}")
    560.4
    """
    h_bs = _positive(np.asarray(h_bs_m, dtype=float) - ENVIRONMENT_HEIGHT_M, "h_bs_m - h_E")
    h_ut = _positive(np.asarray(h_ut_m, dtype=float) - ENVIRONMENT_HEIGHT_M, "h_ut_m - h_E")
    return as_output(4.0 * h_bs * h_ut * np.asarray(carrier_hz, dtype=float) / SPEED_OF_LIGHT_MPS)


@dataclass(frozen=True)
class UrbanCoefficients:
    """Coefficients of one 38.901 scenario (Table 7.4.1-1), names after the table.

    LOS: ``PL1 = a + b1 log10 d3D + c log10 fc_GHz`` (``d2D <= d'BP``),
    ``PL2 = a + 40 log10 d3D + c log10 fc_GHz - b2 log10(d'BP^2 + (h_BS - h_UT)^2)``.
    NLOS': ``n0 + n1 log10 d3D + n2 log10 fc_GHz - n3 (h_UT - 1.5)``.
    """

    a: float
    b1: float
    c: float
    b2: float
    n0: float
    n1: float
    n2: float
    n3: float


UMA = UrbanCoefficients(a=28.0, b1=22.0, c=20.0, b2=9.0, n0=13.54, n1=39.08, n2=20.0, n3=0.6)
UMI = UrbanCoefficients(a=32.4, b1=21.0, c=20.0, b2=9.5, n0=22.4, n1=35.3, n2=21.3, n3=0.3)


def urban_pathloss_db(
    distance_m: ArrayLike,
    carrier_hz: ArrayLike,
    coeffs: UrbanCoefficients,
    *,
    is_los: ArrayLike | None = None,
    h_bs_m: ArrayLike = 25.0,
    h_ut_m: ArrayLike = 1.5,
) -> FloatArray:
    """3GPP TR 38.901 Table 7.4.1-1 path loss (UMa / UMi street canyon) in dB.

    LOS: ``PL1`` below the breakpoint ``d'BP``, ``PL2`` above (continuous at ``d'BP``).
    NLOS: ``max(PL_LOS, PL'_NLOS)``. Distances in m, ``fc_GHz = carrier_hz / 1e9``.

    Args:
        distance_m: 2-D ground distance in m (> 0; clipped below at 10 m), any shape.
        carrier_hz: Carrier frequency in Hz.
        coeffs: ``UMA`` or ``UMI``.
        is_los: Bool or bool array (broadcast with ``distance_m``); ``None`` means NLOS.
        h_bs_m: Base-station height in m (> 1).
        h_ut_m: User-terminal height in m (> 1).

    Returns:
        Path loss in dB, broadcast shape.
    """
    d2d = np.maximum(_positive(distance_m, "distance_m"), MIN_DISTANCE_38901_M)
    fc_ghz = _positive(carrier_hz, "carrier_hz") / 1e9
    h_bs = np.asarray(h_bs_m, dtype=float)
    h_ut = np.asarray(h_ut_m, dtype=float)
    d_bp = breakpoint_distance_m(h_bs, h_ut, carrier_hz)
    d3d = np.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    pl1 = coeffs.a + coeffs.b1 * np.log10(d3d) + coeffs.c * np.log10(fc_ghz)
    pl2 = (
        coeffs.a
        + 40.0 * np.log10(d3d)
        + coeffs.c * np.log10(fc_ghz)
        - coeffs.b2 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2)
    )
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    if is_los is not None and np.all(is_los):
        return as_output(pl_los)
    pl_nlos_prime = (
        coeffs.n0
        + coeffs.n1 * np.log10(d3d)
        + coeffs.n2 * np.log10(fc_ghz)
        - coeffs.n3 * (h_ut - 1.5)
    )
    pl_nlos = np.maximum(pl_los, pl_nlos_prime)
    if is_los is None:
        return as_output(pl_nlos)
    return as_output(np.where(np.asarray(is_los, dtype=bool), pl_los, pl_nlos))


PathlossModel = Callable[..., FloatArray]
"""Registry signature: ``fn(distance_m, carrier_hz, *, is_los, h_bs_m, h_ut_m, exponent)``
``-> PL_db`` (each model ignores the keywords it has no use for)."""


def _free_space(distance_m, carrier_hz, *, is_los, h_bs_m, h_ut_m, exponent):
    return free_space_pathloss_db(distance_m, carrier_hz)


def _exponent(distance_m, carrier_hz, *, is_los, h_bs_m, h_ut_m, exponent):
    return exponent_pathloss_db(distance_m, carrier_hz, exponent)


def _macro(distance_m, carrier_hz, *, is_los, h_bs_m, h_ut_m, exponent):
    _positive(carrier_hz, "carrier_hz")
    return macro_pathloss_db(distance_m)


def _uma(distance_m, carrier_hz, *, is_los, h_bs_m, h_ut_m, exponent):
    return urban_pathloss_db(
        distance_m, carrier_hz, UMA, is_los=is_los, h_bs_m=h_bs_m, h_ut_m=h_ut_m
    )


def _umi(distance_m, carrier_hz, *, is_los, h_bs_m, h_ut_m, exponent):
    return urban_pathloss_db(
        distance_m, carrier_hz, UMI, is_los=is_los, h_bs_m=h_bs_m, h_ut_m=h_ut_m
    )


PATHLOSS_MODELS: dict[str, PathlossModel] = {
    "free_space": _free_space,
    "exponent": _exponent,
    "3gpp_macro": _macro,
    "uma": _uma,
    "umi": _umi,
}


def check_model(model: str, valid: dict | tuple | list) -> None:
    """Raise ``ValueError`` naming the valid choices when ``model`` is not one of them."""
    if model not in valid:
        raise ValueError(f"unknown path-loss model {model!r}; valid: {', '.join(sorted(valid))}")


def pathloss_db(
    distance_m: ArrayLike,
    model: str = "3gpp_macro",
    carrier_hz: ArrayLike = 2e9,
    *,
    is_los: ArrayLike | None = None,
    h_bs_m: ArrayLike = 25.0,
    h_ut_m: ArrayLike = 1.5,
    exponent: ArrayLike = 2.0,
) -> FloatArray:
    """Path loss in dB for a named model of ``PATHLOSS_MODELS`` (see the module docstring).

    Args:
        distance_m: Distance in m (> 0), any shape; 2-D ground distance for ``"uma"``/``"umi"``.
        model: ``"free_space"``, ``"exponent"``, ``"3gpp_macro"``, ``"uma"`` or ``"umi"``.
        carrier_hz: Carrier frequency in Hz (ignored by ``"3gpp_macro"``, a 2 GHz model).
        is_los: LOS state, bool or bool array (UMa/UMi only; ``None`` = NLOS formula, which
            already takes the max with LOS). Ignored by free space and the macro model.
        h_bs_m: Base-station height in m (UMa/UMi; 25 m is UMa's, UMi's is 10 m).
        h_ut_m: User-terminal height in m (UMa/UMi).
        exponent: Path-loss exponent alpha > 0 (``"exponent"`` only; 2 = free space).

    Returns:
        Path loss in dB (positive = loss), broadcast shape.

    Raises:
        ValueError: Unknown model, or a non-positive distance / carrier / exponent.

    >>> print(f"{pathloss_db(1000.0, 'free_space', 2e9):.2f}")
    98.47
    >>> pathloss_db([50.0, 500.0], "uma", 3.5e9, is_los=[True, False]).round(2).tolist()
    [77.21, 129.92]
    >>> print(f"{pathloss_db(100.0, 'exponent', 3.5e9, exponent=2.5):.4f}")
    93.3291
    """
    check_model(model, PATHLOSS_MODELS)
    fn = PATHLOSS_MODELS[model]
    return fn(
        distance_m, carrier_hz, is_los=is_los, h_bs_m=h_bs_m, h_ut_m=h_ut_m, exponent=exponent
    )


LOS_MODELS = ("uma", "umi")


def los_probability(
    distance_m: ArrayLike, model: str = "uma", *, h_ut_m: ArrayLike = 1.5
) -> FloatArray:
    """LOS probability from 3GPP TR 38.901 Table 7.4.2-1 (UMa, UMi street canyon).

    ``Pr = 1`` for ``d2D <= 18 m``; otherwise, with ``base = 18/d2D + exp(-d2D/D)(1 - 18/d2D)``:
    UMi ``Pr = base`` (``D = 36 m``); UMa (``D = 63 m``)
    ``Pr = base (1 + C'(h_UT) 5/4 (d2D/100)^3 exp(-d2D/150))`` with ``C' = 0`` for
    ``h_UT <= 13 m`` and ``((h_UT - 13)/10)^1.5`` for ``13 < h_UT <= 23 m``.

    Args:
        distance_m: 2-D ground distance in m (> 0), any shape.
        model: ``"uma"`` or ``"umi"``.
        h_ut_m: User-terminal height in m (UMa only; <= 23 m).

    Returns:
        Probability in [0, 1], broadcast shape.

    >>> print(f"{los_probability(36.0, 'umi'):.4f}")
    0.6839
    """
    if model not in LOS_MODELS:
        raise ValueError(f"no LOS probability for model {model!r}; valid: {', '.join(LOS_MODELS)}")
    d = _positive(distance_m, "distance_m")
    scale_m = 63.0 if model == "uma" else 36.0
    near = np.minimum(18.0 / d, 1.0)
    base = near + np.exp(-d / scale_m) * (1.0 - near)
    if model == "umi":
        return as_output(base)
    h_ut = np.asarray(h_ut_m, dtype=float)
    if np.any(h_ut > 23.0):
        raise ValueError(f"UMa LOS probability is defined for h_ut_m <= 23 m, got {np.max(h_ut)!r}")
    c_prime = np.where(h_ut <= 13.0, 0.0, (np.maximum(h_ut - 13.0, 0.0) / 10.0) ** 1.5)
    boost = 1.0 + c_prime * 1.25 * (d / 100.0) ** 3 * np.exp(-d / 150.0)
    return as_output(np.where(d <= 18.0, 1.0, base * boost))
