"""Where the real workload trains (``train.device``) and the settings that make it reproducible.

``"auto"``: CUDA when a GPU is visible, else the CPU; ``"cpu"``; ``"cuda"``: a GPU or a
``ConfigError`` naming the field. Deterministic settings (PyTorch "Reproducibility" notes):
``torch.use_deterministic_algorithms(True, warn_only=True)`` (an op with no deterministic kernel
warns instead of failing), cuDNN deterministic with its autotuner off, TF32 off (so a GPU's
matmuls round as float32), and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (needed by cuBLAS ≥ 10.2 for
deterministic GEMMs; it must be set before the first cuBLAS call, hence in ``prepare_device``).
The same seed then gives the same trace on one device type; CPU and GPU traces differ in the
last bits of floating point. Simulated time never reads the device: compute times come from FLOP
counts and the devices' cycle model, not from wall-clock time.
"""

from __future__ import annotations

import os

import torch

from wsim.config import ConfigError

DEVICES = ("auto", "cpu", "cuda")
CUBLAS_WORKSPACE = ":4096:8"


def resolve_device(name: str) -> torch.device:
    """``train.device`` → the torch device the real workload runs on.

    Raises:
        ConfigError: An unknown name, or ``"cuda"`` on a machine without a visible GPU.
    """
    if name not in DEVICES:
        raise ConfigError(f"train.device: must be one of {DEVICES}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            'train.device: "cuda" but torch sees no GPU on this machine (torch.cuda.is_available() '
            'is False); set train.device = "auto" or "cpu", or run on a machine with a CUDA GPU'
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_deterministic(device: torch.device) -> None:
    """Switch torch to deterministic kernels for ``device`` (module docstring)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def prepare_device(name: str) -> torch.device:
    """``resolve_device`` + ``set_deterministic``: call once before building the model."""
    device = resolve_device(name)
    set_deterministic(device)
    return device
