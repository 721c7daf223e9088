"""``wsim pretrain``: central training of the default ViT backbone on the pretraining split.

LoRA on a randomly initialised backbone barely learns, so the shipped backbone
(``wsim/data/vit_tiny_digits.pt``, float16) is trained here on the digits pretraining
split, which is disjoint from the federated-train and test parts. A JSON beside the
weights records the command, seed, epochs, accuracies and package versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch.nn import functional as F

from wsim.training.config import preset, shipped_weights_path
from wsim.training.data import DataSplits, ImageSet, digits_splits, iterate_batches, model_input
from wsim.training.partition import BatchStream
from wsim.training.seeding import training_streams
from wsim.training.split import create_vit
from wsim.training.trainer import evaluate_model


def cosine_lr(step: int, total_steps: int, peak_lr: float, warmup_steps: int) -> float:
    """Linear warm-up to ``peak_lr`` then cosine decay to 0 (Loshchilov & Hutter, 2017)."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * peak_lr * (1.0 + np.cos(np.pi * progress))


def random_shift(images: torch.Tensor, max_shift_px: int, rng: np.random.Generator) -> torch.Tensor:
    """Translate each image by up to ±``max_shift_px`` pixels per axis (zero fill).

    Args:
        images: ``[b, C, H, W]`` (normalised; the fill value 0 is the data mean).
        max_shift_px: Largest shift in pixels.
        rng: Seeded generator of the shifts.
    """
    if max_shift_px == 0:
        return images
    pad = max_shift_px
    padded = F.pad(images, (pad, pad, pad, pad))
    height, width = images.shape[-2:]
    # [b, 2] offsets into the padded image
    offsets = rng.integers(0, 2 * pad + 1, size=(len(images), 2))
    return torch.stack(
        [padded[i, :, dy : dy + height, dx : dx + width] for i, (dy, dx) in enumerate(offsets)]
    )


def train_central(
    vit: VisionTransformer,
    data: ImageSet,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
    max_shift_px: int = 0,
) -> float:
    """Train all weights of ``vit`` with AdamW (wd 0.05), cosine schedule, random shifts.

    Returns:
        Mean training loss of the last epoch.
    """
    img_size = vit.patch_embed.img_size[0]
    optimizer = torch.optim.AdamW(vit.parameters(), lr=lr, weight_decay=0.05)
    stream = BatchStream(np.arange(len(data)), batch_size, rng)
    steps_per_epoch = -(-len(data) // batch_size)
    total = epochs * steps_per_epoch
    vit.train()
    losses: list[float] = []
    for step in range(total):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, total, lr, warmup_steps=steps_per_epoch)
        idx = stream.next()
        images = random_shift(model_input(data, idx, img_size), max_shift_px, rng)
        loss = F.cross_entropy(vit(images), data.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses[-steps_per_epoch:]))


def save_backbone(vit: VisionTransformer, path: Path) -> None:
    """Write the backbone (all but the classifier head) as a float16 state dict."""
    state = {k: v.half() for k, v in vit.state_dict().items() if not k.startswith("head.")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsim pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_tiny_digits", help="model preset")
    parser.add_argument("--out", type=Path, default=None, help="weights file (.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--shift-px", type=int, default=2, help="random-shift augmentation")
    parser.add_argument("--limit", type=int, default=None, help="use the first N samples (smoke)")
    return parser


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``wsim pretrain``; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        parser.error("epochs, batch-size and lr must be positive")
    try:
        config = preset(args.model, weights="none")
    except KeyError as err:
        parser.error(str(err))
    out = args.out or shipped_weights_path(config.name)
    streams = training_streams(args.seed)
    splits = digits_splits(streams.split)
    if args.limit is not None:
        splits = DataSplits(
            *(
                s.subset(np.arange(min(args.limit, len(s))))
                for s in (splits.pretrain, splits.train, splits.test)
            )
        )
    vit = create_vit(config, streams.init)
    start = time.perf_counter()
    loss = train_central(
        vit,
        splits.pretrain,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        rng=streams.device_batch_rngs(1)[0],
        max_shift_px=args.shift_px,
    )
    elapsed = time.perf_counter() - start
    pre_acc, _ = evaluate_model(vit, iterate_batches(splits.pretrain, 256, config.img_size))
    test_acc, _ = evaluate_model(vit, iterate_batches(splits.test, 256, config.img_size))
    save_backbone(vit, out)
    record = {
        "command": "wsim pretrain " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": config.name,
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "shift_px": args.shift_px,
        "dataset": "sklearn digits, pretrain split",
        "num_pretrain_samples": len(splits.pretrain),
        "final_train_loss": round(loss, 4),
        "pretrain_accuracy": round(pre_acc, 4),
        "test_accuracy_with_pretrain_head": round(test_acc, 4),
        "train_time_s": round(elapsed, 1),
        "storage": "float16, classifier head dropped",
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "size_bytes": out.stat().st_size,
        "torch": torch.__version__,
        "timm": timm.__version__,
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main())
