"""Compression methods of the five source papers, as pure tensor functions and compressors.

``COMPRESSORS`` maps a scenario's ``[method]`` name to its compressor class; build one with
``make_compressor(name, **params)``. Every compressor has ``compress(activation, cls_attn, ctx)
-> Compressed`` (docs/CONTRACTS.md, "Split step"). torch only; no simpy.
"""

from __future__ import annotations

import inspect
from typing import Any

from wsim.compression.base import CompressContext, Compressed, Compressor
from wsim.compression.controllers import BangBangController, DDPGController
from wsim.compression.methods import SFLAM, SFT, NoCompression, RandomTokens, STSFLora, TSFLora
from wsim.compression.paper_lowrank import SFTPaper, fc1_factors
from wsim.compression.paper_temporal import SplitComPaper, ValidationBangBang
from wsim.compression.paper_tokens import STSFLoraPaper, paper_payload_bits, paper_retention_curve
from wsim.compression.quant import WeightQuantReport, quantize_module_weights
from wsim.compression.temporal import SplitCom, ushape_bits, ushape_extra_bits
from wsim.compression.tokens import (
    ATTENTION_SCORES,
    cls_attention,
    received_attention,
    retention_curve,
    ste,
)

__all__ = [
    "ATTENTION_SCORES",
    "COMPRESSORS",
    "SFLAM",
    "SFT",
    "BangBangController",
    "CompressContext",
    "Compressed",
    "Compressor",
    "DDPGController",
    "NoCompression",
    "PAPER_COMPRESSORS",
    "compressor_params",
    "RandomTokens",
    "STSFLora",
    "SFTPaper",
    "STSFLoraPaper",
    "SplitCom",
    "SplitComPaper",
    "TSFLora",
    "ValidationBangBang",
    "WeightQuantReport",
    "cls_attention",
    "fc1_factors",
    "make_compressor",
    "paper_payload_bits",
    "paper_retention_curve",
    "quantize_module_weights",
    "received_attention",
    "retention_curve",
    "ste",
    "ushape_bits",
    "ushape_extra_bits",
]

COMPRESSORS: dict[str, type] = {
    cls.name: cls for cls in (NoCompression, STSFLora, TSFLora, SFLAM, SFT, SplitCom, RandomTokens)
}

PAPER_COMPRESSORS: dict[str, type] = {cls.name: cls for cls in (STSFLoraPaper, SplitComPaper)}
"""The ``method.recipe = "paper"`` compressors built from parameters (PAPERS.md, "Recovered
method details"). SFT's paper compressor factors the model's own cut block, so it is built from
the model: ``SFTPaper.from_block(vit.blocks[cut], rank)``."""


def make_compressor(name: str, recipe: str = "wsim", **params: Any) -> Compressor:
    """Build the compressor registered as ``name`` (``recipe`` "wsim" or "paper") from its
    parameters.

    Raises:
        ValueError: naming the valid methods for an unknown ``name``, the valid parameters for an
            unknown parameter, or (the class's own error) the parameter with a bad value.
    """
    registry = {"wsim": COMPRESSORS, "paper": PAPER_COMPRESSORS}.get(recipe)
    if registry is None:
        raise ValueError(f"unknown recipe {recipe!r}; valid: ['paper', 'wsim']")
    if name not in registry:
        raise ValueError(
            f"unknown compression method {name!r} for recipe {recipe!r}; valid: {sorted(registry)}"
        )
    cls = registry[name]
    valid = set(inspect.signature(cls).parameters)
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {unknown}; valid: {sorted(valid)}")
    return cls(**params)


def compressor_params(method: Any) -> dict[str, Any]:
    """A scenario's ``[method]`` fields → its compressor's parameters (only those its class
    takes): ``token_counts`` (empty = None), ``merge_r``, ``quant_bits`` (when < 32), ``rank``
    (when > 0) and ``tau``; ``make_compressor`` rejects bad values naming the parameter. SFT's
    paper recipe is built from the model's cut block (``SFTPaper.from_block``): no parameters.
    """
    if method.name == "sft" and method.recipe == "paper":
        return {}
    candidates: dict[str, Any] = {
        "token_counts": tuple(method.token_counts) or None,
        "merge_r": method.merge_r,
        "tau": method.tau,
    }
    if method.quant_bits < 32:
        candidates["quant_bits"] = method.quant_bits
    if method.rank > 0:
        candidates["rank"] = method.rank
    registry = PAPER_COMPRESSORS if method.recipe == "paper" else COMPRESSORS
    valid = set(inspect.signature(registry[method.name]).parameters)
    return {k: v for k, v in candidates.items() if k in valid}
