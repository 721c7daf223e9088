"""Small-scale block fading: Rayleigh / Rician, Jakes-correlated Gauss–Markov blocks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

from channel_models.units import SPEED_OF_LIGHT_MPS, ArrayLike, FloatArray, as_output

ComplexArray = npt.NDArray[np.complex128]


def doppler_hz(speed_mps: ArrayLike, carrier_hz: ArrayLike) -> FloatArray:
    """Maximum Doppler shift ``f_D = v f_c / c`` in Hz.

    Reference: Goldsmith, "Wireless Communications", Section 3.2 (eq. 3.27, ``f_D = v / λ``).

    Args:
        speed_mps: Device speed v >= 0 in m/s, any shape.
        carrier_hz: Carrier frequency f_c in Hz, broadcastable.

    Returns:
        f_D in Hz, broadcast shape.

    >>> print(f"{doppler_hz(30.0, 2e9):.1f}")
    200.1
    """
    v = np.asarray(speed_mps, dtype=float)
    if np.any(v < 0) or np.any(np.isnan(v)):
        raise ValueError("speed_mps must be >= 0")
    return as_output(v * np.asarray(carrier_hz, dtype=float) / SPEED_OF_LIGHT_MPS)


def coherence_time_s(doppler_hz: ArrayLike) -> FloatArray:
    """Coherence time ``T_c = 0.423 / f_D`` in s (``inf`` at ``f_D = 0``).

    Reference: Rappaport, "Wireless Communications", eq. (5.40.c) (geometric mean of the
    ``9/(16 pi f_D)`` and ``1/f_D`` rules), as quoted in Goldsmith Section 3.2.

    Args:
        doppler_hz: Maximum Doppler shift f_D >= 0 in Hz, any shape.

    Returns:
        T_c in s, same shape.

    >>> print(f"{coherence_time_s(100.0):.5f}")
    0.00423
    """
    f_d = np.asarray(doppler_hz, dtype=float)
    if np.any(f_d < 0) or np.any(np.isnan(f_d)):
        raise ValueError("doppler_hz must be >= 0")
    with np.errstate(divide="ignore"):
        return as_output(np.where(f_d > 0, 0.423 / f_d, np.inf))


def jakes_correlation(doppler_hz: ArrayLike, block_s: ArrayLike) -> FloatArray:
    """Jakes (Clarke) autocorrelation of the fading at lag T: ``ρ = J0(2 pi f_D T)``.

    Reference: W. C. Jakes, "Microwave Mobile Communications", 1974; Goldsmith, eq. (3.67).

    Args:
        doppler_hz: Maximum Doppler shift f_D in Hz, any shape.
        block_s: Block duration T in s, broadcastable.

    Returns:
        ρ in [-0.403, 1], broadcast shape (1 at f_D = 0).

    >>> print(f"{jakes_correlation(0.0, 1e-3):.1f}")
    1.0
    """
    x = 2.0 * np.pi * np.asarray(doppler_hz, dtype=float) * np.asarray(block_s, dtype=float)
    return as_output(special.j0(x))


def complex_normal_parts(
    rng: np.random.Generator, num_blocks: int, size: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Real and imaginary parts of ``[num_blocks, size]`` i.i.d. ``CN(0, 1)`` samples, float32.

    Box–Muller in polar form from one ``[num_blocks, 2, size]`` float32 uniform draw (block k
    uses the k-th ``[2, size]`` slice, so drawing blocks one at a time or together gives the
    same numbers): ``|w|² = −ln(1 − u) ~ Exp(1)`` and ``arg w = 2π v`` independent is
    ``CN(0, 1)`` (Goldsmith, Section 3.2.1: Rayleigh envelope, uniform phase), up to the 2^-24
    grid of float32 uniforms: ``|w|²`` takes 2^24 levels up to 16.6 and ``E|w|² = 1 − 5.5e-7``.
    About 3× faster than two float64 normal draws, which matters at 10^8 device-blocks.
    """
    u = rng.random((num_blocks, 2, size), dtype=np.float32)
    radius = np.log1p(-u[:, 0])
    np.negative(radius, out=radius)
    np.sqrt(radius, out=radius)
    phase = u[:, 1]
    phase *= np.float32(2.0 * np.pi)
    return radius * np.cos(phase), radius * np.sin(phase)


def complex_normal(rng: np.random.Generator, size: int) -> ComplexArray:
    """Draw ``size`` i.i.d. ``CN(0, 1)`` samples (unit mean power): :func:`complex_normal_parts`
    for one block, as complex128."""
    re, im = complex_normal_parts(rng, 1, size)
    return re[0].astype(np.float64) + 1j * im[0].astype(np.float64)


class BlockFading:
    """Per-device block fading ``h`` with first-order Gauss–Markov evolution between blocks.

    Rayleigh (``k_factor_db is None``): ``h ~ CN(0, 1)``.
    Rician with K-factor K (linear ``10^(K_dB/10)``): ``h = sqrt(K/(K+1)) e^{jφ} +
    sqrt(1/(K+1)) s`` with ``s ~ CN(0, 1)``, so ``E|h|^2 = 1``. The LOS phase φ is drawn
    uniformly in [0, 2 pi) per device at construction and then held fixed (a static
    specular path over the simulated horizon).

    ``advance(rho)`` applies ``s[n+1] = ρ s[n] + sqrt(1 - ρ^2) w``, ``w ~ CN(0, 1)`` to the
    scattered part (all of ``h`` for Rayleigh), which keeps ``s ~ CN(0, 1)`` and gives
    ``E[s[n+1] s*[n]] = ρ``; take ``ρ = jakes_correlation(f_D, T_block)`` (Jakes / Clarke).
    Reference: Goldsmith, "Wireless Communications", Sections 3.2.1 and 3.2.2.

    Args:
        num_devices: Number of devices.
        rng: The channel subsystem's random stream.
        k_factor_db: Rician K-factor in dB (scalar or ``[num_devices]``); ``None`` = Rayleigh.
    """

    def __init__(
        self,
        num_devices: int,
        rng: np.random.Generator,
        *,
        k_factor_db: ArrayLike | None = None,
    ) -> None:
        self.num_devices = num_devices
        self._rng = rng
        if k_factor_db is None:
            self._los = np.zeros(num_devices, dtype=complex)
            self._scatter_amp = np.ones(num_devices)
        else:
            k_lin = np.broadcast_to(
                np.power(10.0, np.asarray(k_factor_db, float) / 10.0), (num_devices,)
            )
            phase = rng.uniform(0.0, 2.0 * np.pi, num_devices)
            # [num_devices]
            self._los = np.sqrt(k_lin / (k_lin + 1.0)) * np.exp(1j * phase)
            self._scatter_amp = np.sqrt(1.0 / (k_lin + 1.0))
        # [num_devices], CN(0, 1) scattered part
        self._scatter = complex_normal(rng, num_devices)
        self._h = self._los + self._scatter_amp * self._scatter

    @property
    def h(self) -> ComplexArray:
        """Current complex channel coefficients, ``[num_devices]``, ``E|h|^2 = 1``."""
        return self._h

    @property
    def power_gain_lin(self) -> FloatArray:
        """Current small-scale power gain ``|h|^2``, ``[num_devices]``."""
        return self._h.real**2 + self._h.imag**2

    def advance(self, rho: ArrayLike) -> ComplexArray:
        """Advance every device by one block with correlation ``rho`` (scalar or per device).

        Args:
            rho: Gauss–Markov coefficient in [-1, 1], scalar or ``[num_devices]``.

        Returns:
            The new ``h``, ``[num_devices]``.
        """
        r = np.broadcast_to(np.asarray(rho, dtype=float), (self.num_devices,))
        if not np.all(np.abs(r) <= 1.0):
            raise ValueError("rho must lie in [-1, 1]")
        w = complex_normal(self._rng, self.num_devices)
        self._scatter = r * self._scatter + np.sqrt(1.0 - r * r) * w
        self._h = self._los + self._scatter_amp * self._scatter
        return self._h
