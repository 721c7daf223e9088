"""Real split training on a GPU: split steps/s and the overhead ratio against plain training.

One split step = ``client_forward`` → ``server_step`` → ``client_backward`` of
``wsim.training.trainer.SplitTrainer`` (functional calls, per-device adapter copies, the cut's
detach); the plain step trains the same LoRA model end to end (one forward, one backward, one
AdamW step over the same trainable tensors). ratio = plain steps/s ÷ split steps/s (1.0 = the
split costs nothing). Random images and labels, random-init backbone (``weights = "none"``):
the timing does not depend on the values. Deterministic kernels as ``train.device`` sets them.

    python bench/gpu.py                          # CUDA, ViT-B/16, batch 64
    python bench/gpu.py --device cpu --preset vit_tiny_digits --steps 3   # dry run on a CPU

Exits with status 2 and a message when ``--device cuda`` and torch sees no GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch
import torch.nn.functional as F

from wsim.config import ConfigError
from wsim.training.config import preset
from wsim.training.placement import prepare_device
from wsim.training.split import build_split_vit
from wsim.training.trainer import OptimConfig, SplitTrainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, steps: int, warmup: int, device: torch.device) -> float:
    """Steps per second of ``step()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"))
    p.add_argument("--preset", default="vit_base_patch16_224")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--devices", type=int, default=4, help="simulated devices (round-robin)")
    args = p.parse_args(argv)
    try:
        device = prepare_device(args.device)
    except ConfigError as err:
        print(f"bench/gpu.py: {err} (use --device cpu for a dry run)", file=sys.stderr)
        return 2
    config = dataclasses.replace(preset(args.preset), weights="none")
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(
        args.batch, config.in_chans, config.img_size, config.img_size, generator=gen
    )
    labels = torch.randint(0, config.num_classes, (args.batch,), generator=gen)
    images, labels = images.to(device), labels.to(device)
    optim = OptimConfig(lr=1e-3)

    split_model = build_split_vit(config, torch.Generator().manual_seed(1))
    split_model.vit.to(device)
    trainer = SplitTrainer(split_model, args.devices, optim=optim)
    turn = iter(range(10**9))

    def split_step() -> None:
        k = next(turn) % args.devices
        out = trainer.client_forward(k, images)
        srv = trainer.server_step(k, out.server_input, labels)
        trainer.client_backward(k, srv.grad)

    plain_model = build_split_vit(config, torch.Generator().manual_seed(1)).vit.to(device)
    params = [q for q in plain_model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=optim.lr)

    def plain_step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(plain_model(images), labels).backward()
        opt.step()

    split_sps = _timed(split_step, args.steps, args.warmup, device)
    plain_sps = _timed(plain_step, args.steps, args.warmup, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name}; {args.preset} cut {config.cut_layer}, batch {args.batch}, "
        f"{args.steps} timed steps after {args.warmup} warm-up"
    )
    print(f"split steps/s  {split_sps:.3f}")
    print(f"plain steps/s  {plain_sps:.3f}")
    print(f"overhead ratio {plain_sps / split_sps:.3f} (plain / split; 1.0 = no split overhead)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
