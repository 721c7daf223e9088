"""``wsim train``: split-federated LoRA fine-tuning without the network model.

N devices hold IID or Dirichlet(α) shares of the federated-train data. Each round every
device runs E local iterations of the split step (devices interleaved round-robin,
iteration by iteration, as if in parallel), then the device adapters are FedAvg'd
(weighted by samples) and broadcast; test accuracy is printed per round.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from wsim.training.config import PRESETS, preset
from wsim.training.data import (
    DATASETS,
    ImageSet,
    digits_splits,
    iterate_batches,
    load_dataset,
    model_input,
)
from wsim.training.partition import BatchStream, dirichlet_partition, iid_partition
from wsim.training.seeding import training_streams
from wsim.training.split import build_split_vit
from wsim.training.trainer import SFL_VARIANTS, OptimConfig, SplitTrainer


@dataclass(frozen=True)
class RoundResult:
    """Outcome of one federated round.

    Attributes:
        round: Round index (0-based).
        train_loss: Mean server loss over the round's batches.
        accuracy: Test accuracy of the global model after aggregation, in [0, 1].
        test_loss: Mean test cross-entropy.
    """

    round: int
    train_loss: float
    accuracy: float
    test_loss: float


def run_round(
    trainer: SplitTrainer, data: ImageSet, streams: list[BatchStream], local_iters: int
) -> float:
    """E local iterations on every device (round-robin) + aggregation; mean train loss."""
    img_size = trainer.model.config.img_size
    seen = [0] * len(streams)
    losses = []
    for _ in range(local_iters):
        for device, stream in enumerate(streams):
            idx = stream.next()
            out = trainer.client_forward(device, model_input(data, idx, img_size))
            srv = trainer.server_step(device, out.server_input, data.labels[idx])
            trainer.client_backward(device, srv.grad)
            seen[device] += len(idx)
            losses.append(srv.loss)
    trainer.aggregate(dict(enumerate(seen)))
    return float(np.mean(losses))


def run_federated(
    trainer: SplitTrainer,
    train: ImageSet,
    test: ImageSet,
    parts: list[np.ndarray],
    *,
    rounds: int,
    local_iters: int,
    batch_size: int,
    batch_rngs: list[np.random.Generator],
    verbose: bool = False,
) -> list[RoundResult]:
    """Federated rounds from the trainer's current state; evaluates after each round."""
    streams = [BatchStream(p, batch_size, r) for p, r in zip(parts, batch_rngs, strict=True)]
    img_size = trainer.model.config.img_size
    results = []
    for r in range(rounds):
        loss = run_round(trainer, train, streams, local_iters)
        acc, test_loss = trainer.evaluate(iterate_batches(test, 256, img_size))
        results.append(RoundResult(r, loss, acc, test_loss))
        if verbose:
            print(f"round {r + 1:3d}  train_loss {loss:.4f}  test_acc {acc:.4f}", flush=True)
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsim train", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_tiny_digits", choices=sorted(PRESETS))
    p.add_argument("--weights", default=None, help="shipped | none | timm | checkpoint path")
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-root", default=None, help="folder holding the dataset")
    p.add_argument("--download", action="store_true", help="download CIFAR via torchvision")
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--local-iters", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--partition", choices=("iid", "dirichlet"), default="iid")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration")
    p.add_argument("--sfl-variant", choices=SFL_VARIANTS, default="v2")
    p.add_argument("--lr", type=float, default=OptimConfig().lr)
    p.add_argument("--cut-layer", type=int, default=None)
    p.add_argument("--lora-rank", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``wsim train``; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.devices, args.rounds, args.local_iters, args.batch_size) < 1:
        parser.error("devices, rounds, local-iters and batch-size must be >= 1")
    streams = training_streams(args.seed)
    try:
        if args.dataset == "digits":
            splits = digits_splits(streams.split)
            train, test = splits.train, splits.test
        else:
            train = load_dataset(args.dataset, args.data_root, True, args.download)
            test = load_dataset(args.dataset, args.data_root, False, args.download)
        changes = {"num_classes": train.num_classes}
        for key in ("weights", "cut_layer", "lora_rank"):
            if getattr(args, key) is not None:
                changes[key] = getattr(args, key)
        config = preset(args.model, **changes)
        if config.in_chans != train.pixels.shape[1]:
            raise ValueError(
                f"model {config.name} takes {config.in_chans} channels, data has "
                f"{train.pixels.shape[1]}: choose another --model"
            )
        model = build_split_vit(config, streams.init)
        if args.partition == "iid":
            parts = iid_partition(len(train), args.devices, streams.partition)
        else:
            parts = dirichlet_partition(
                train.labels.numpy(), args.devices, args.alpha, streams.partition
            )
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        parser.exit(2, f"wsim train: error: {err}\n")
    trainer = SplitTrainer(
        model, args.devices, sfl_variant=args.sfl_variant, optim=OptimConfig(lr=args.lr)
    )
    acc0, _ = trainer.evaluate(iterate_batches(test, 256, config.img_size))
    print(
        f"{config.name} cut={config.cut_layer} r={config.lora_rank} devices={args.devices} "
        f"{args.partition} {args.sfl_variant}; start test_acc {acc0:.4f}",
        flush=True,
    )
    start = time.perf_counter()
    run_federated(
        trainer,
        train,
        test,
        parts,
        rounds=args.rounds,
        local_iters=args.local_iters,
        batch_size=args.batch_size,
        batch_rngs=streams.device_batch_rngs(args.devices),
        verbose=True,
    )
    print(f"done in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    raise SystemExit(cli_main())
