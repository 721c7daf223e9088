"""Log-normal shadowing: σ per model and Gudmundson spatial correlation along tracks."""

from __future__ import annotations

import numpy as np

from channel_models.pathloss import check_model
from channel_models.units import ArrayLike, FloatArray, as_output

# (LOS, NLOS) shadow-fading standard deviation in dB.
# uma/umi: 3GPP TR 38.901 Table 7.4.1-1; 3gpp_macro: TR 36.814 Annex A.2.1.1.2 (8 dB);
# free_space: deterministic, no shadowing.
SHADOWING_SIGMA_DB: dict[str, tuple[float, float]] = {
    "free_space": (0.0, 0.0),
    "exponent": (0.0, 0.0),  # none built in: the scenario's cell.shadowing_sigma_db applies
    "3gpp_macro": (8.0, 8.0),
    "uma": (4.0, 6.0),
    "umi": (4.0, 7.82),
}


def shadowing_sigma_db(model: str, is_los: ArrayLike | None = None) -> FloatArray:
    """Shadow-fading standard deviation σ_SF in dB for a path-loss model and LOS state.

    Reference: 3GPP TR 38.901 Table 7.4.1-1 (UMa 4 / 6 dB, UMi 4 / 7.82 dB, LOS / NLOS);
    3GPP TR 36.814 Annex A.2.1.1.2 (macro, 8 dB); free space has none (0 dB).

    Args:
        model: A name of ``PATHLOSS_MODELS``.
        is_los: Bool or bool array; ``None`` means NLOS (as in ``pathloss_db``).

    Returns:
        σ in dB, shape of ``is_los``.

    >>> shadowing_sigma_db("umi", [True, False]).tolist()
    [4.0, 7.82]
    """
    check_model(model, SHADOWING_SIGMA_DB)
    sigma_los, sigma_nlos = SHADOWING_SIGMA_DB[model]
    los = np.asarray(False if is_los is None else is_los, dtype=bool)
    return as_output(np.where(los, sigma_los, sigma_nlos).astype(float))


def shadowing_correlation(delta_m: ArrayLike, decorrelation_m: ArrayLike) -> FloatArray:
    """Gudmundson spatial correlation ``R(Δx) = exp(-|Δx| / d_corr)`` of shadowing in dB.

    Reference: M. Gudmundson, "Correlation model for shadow fading in mobile radio systems",
    Electronics Letters 27(23), 1991.

    Args:
        delta_m: Distance between the two positions in m, any shape.
        decorrelation_m: Decorrelation distance d_corr > 0 in m (≈ 50 m urban).

    Returns:
        Correlation coefficient in (0, 1], broadcast shape.

    >>> print(f"{shadowing_correlation(50.0, 50.0):.4f}")
    0.3679
    """
    d_corr = np.asarray(decorrelation_m, dtype=float)
    if not np.all(d_corr > 0):
        raise ValueError(f"decorrelation_m must be > 0, got {d_corr.min()!r}")
    return as_output(np.exp(-np.abs(np.asarray(delta_m, dtype=float)) / d_corr))


class CorrelatedShadowing:
    """Per-device log-normal shadowing, correlated along each device's track.

    The shadowing in dB is a stationary Gaussian AR(1) process in travelled distance
    (Gudmundson 1991): ``X[n+1] = a X[n] + σ sqrt(1 - a^2) w``, ``a = exp(-Δx / d_corr)``,
    ``w ~ N(0, 1)``, so ``X ~ N(0, σ^2)`` at every step and ``corr = exp(-Σ Δx / d_corr)``.

    Args:
        num_devices: Number of devices.
        sigma_db: σ in dB, scalar or ``[num_devices]`` (e.g. from ``shadowing_sigma_db``).
        decorrelation_m: d_corr > 0 in m.
        rng: The channel subsystem's random stream.
    """

    def __init__(
        self,
        num_devices: int,
        sigma_db: ArrayLike,
        decorrelation_m: float,
        rng: np.random.Generator,
    ) -> None:
        sigma = np.broadcast_to(np.asarray(sigma_db, dtype=float), (num_devices,)).copy()
        if np.any(sigma < 0):
            raise ValueError("sigma_db must be >= 0")
        if not decorrelation_m > 0:
            raise ValueError(f"decorrelation_m must be > 0, got {decorrelation_m!r}")
        self.num_devices = num_devices
        self.sigma_db = sigma
        self.decorrelation_m = float(decorrelation_m)
        self._rng = rng
        # [num_devices]
        self._shadow_db = sigma * rng.standard_normal(num_devices)

    @property
    def shadow_db(self) -> FloatArray:
        """Current shadowing X in dB, ``[num_devices]`` (positive = extra loss)."""
        return self._shadow_db

    def advance(self, moved_m: ArrayLike) -> FloatArray:
        """Move each device by ``moved_m`` metres (scalar or ``[num_devices]``, >= 0).

        Returns:
            The new shadowing in dB, ``[num_devices]``.
        """
        moved = np.broadcast_to(np.asarray(moved_m, dtype=float), (self.num_devices,))
        if not np.all(moved >= 0):  # also rejects NaN
            raise ValueError("moved_m must be >= 0")
        # [num_devices] a = exp(-Δx / d_corr)
        a = np.divide(moved, -self.decorrelation_m)
        np.exp(a, out=a)
        # [num_devices] innovation σ sqrt(1 - a²) w
        innovation = np.multiply(a, a)
        np.subtract(1.0, innovation, out=innovation)
        np.sqrt(innovation, out=innovation)
        innovation *= self.sigma_db
        innovation *= self._rng.standard_normal(self.num_devices)
        # a X + innovation, in a new array (earlier results stay valid)
        a *= self._shadow_db
        a += innovation
        self._shadow_db = a
        return a
