"""On-air size accounting for compressed activations, in bits.

Every compressor sizes its wire representation with these functions, so the payload of all
methods is computed one way. Conventions (DESIGN.md §6, "actual bytes on the air"):

- floating-point and integer tensors cost ``numel × bit width of their dtype``;
- quantized integers are packed contiguously at their bit width (no per-element padding);
- indices into a universe of ``n`` items cost ``ceil(log2 n)`` bits each (0 bits when ``n == 1``);
- boolean masks cost one bit per entry.

No framing, headers or byte alignment are added; the link layer is the simulator's business.
"""

from __future__ import annotations

import torch

__all__ = [
    "dtype_bits",
    "index_bits",
    "mask_bits",
    "packed_int_bits",
    "tensor_bits",
]


def dtype_bits(dtype: torch.dtype) -> int:
    """Bit width of one element of ``dtype`` (``torch.bool`` counts as one bit).

    >>> dtype_bits(torch.float16), dtype_bits(torch.int8), dtype_bits(torch.bool)
    (16, 8, 1)
    """
    if dtype == torch.bool:
        return 1
    if dtype.is_floating_point or dtype.is_complex:
        return torch.finfo(dtype).bits * (2 if dtype.is_complex else 1)
    return torch.iinfo(dtype).bits


def tensor_bits(t: torch.Tensor, dtype: torch.dtype | None = None) -> int:
    """Size of ``t`` sent element by element at ``dtype`` (default: its own dtype).

    Args:
        t: any tensor; only its number of elements and dtype matter.
        dtype: the wire dtype, when it differs from the in-memory one (e.g. fp16 side info).

    >>> tensor_bits(torch.zeros(2, 3))
    192
    """
    return t.numel() * dtype_bits(t.dtype if dtype is None else dtype)


def packed_int_bits(numel: int, bits: int) -> int:
    """Size of ``numel`` unsigned integers packed at ``bits`` bits each.

    >>> packed_int_bits(10, 4)
    40
    """
    if numel < 0:
        raise ValueError(f"numel must be >= 0, got {numel}")
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}")
    return numel * bits


def index_bits(count: int, universe: int) -> int:
    """Size of ``count`` indices into ``universe`` items, ``ceil(log2(universe))`` bits each.

    >>> index_bits(3, 196), index_bits(3, 16), index_bits(5, 1)
    (24, 12, 0)
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if universe < 1:
        raise ValueError(f"universe must be >= 1, got {universe}")
    return count * (universe - 1).bit_length()  # == ceil(log2(universe)), exact in integers


def mask_bits(count: int) -> int:
    """Size of a boolean mask over ``count`` items (one bit each).

    >>> mask_bits(32)
    32
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return count
