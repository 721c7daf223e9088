"""Dataset readers on small generated files in their real formats, and the digits split."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsim.training.data import (
    DIGITS_FRACTIONS,
    ImageSet,
    digits_splits,
    iterate_batches,
    load_cifar,
    load_dataset,
    load_digits,
    load_tiny_imagenet,
    model_input,
    split_dataset,
)


def _write_cifar_batch(path: Path, n: int, label_key: str, num_classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        label_key.encode(): rng.integers(0, num_classes, size=n).tolist(),
        b"batch_label": b"test",
    }
    with path.open("wb") as handle:
        pickle.dump(batch, handle)


def test_cifar10_reader(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _write_cifar_batch(folder / f"data_batch_{i}", 4, "labels", 10, seed=i)
    _write_cifar_batch(folder / "test_batch", 3, "labels", 10, seed=9)
    train = load_cifar("cifar10", tmp_path, train=True)
    test = load_dataset("cifar10", tmp_path, train=False)
    assert train.pixels.shape == (20, 3, 32, 32) and train.pixels.dtype == torch.uint8
    assert len(test) == 3 and train.num_classes == 10
    raw = pickle.loads((folder / "data_batch_1").read_bytes())
    np.testing.assert_array_equal(train.pixels[0].numpy().ravel(), raw[b"data"][0])
    assert train.labels[:4].tolist() == raw[b"labels"]


def test_cifar100_reader(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _write_cifar_batch(folder / "train", 6, "fine_labels", 100, seed=1)
    _write_cifar_batch(folder / "test", 2, "fine_labels", 100, seed=2)
    train = load_cifar("cifar100", tmp_path, train=True)
    assert train.num_classes == 100 and len(train) == 6
    x = model_input(train, np.arange(2), img_size=48)
    assert x.shape == (2, 3, 48, 48) and x.dtype == torch.float32


def test_missing_cifar_names_the_folder_and_the_scenario_field(tmp_path):
    # issue 15: the message named a Python argument (download=True), not the scenario field
    with pytest.raises(FileNotFoundError) as err:
        load_cifar("cifar10", tmp_path, train=True)
    text = str(err.value)
    assert f"create the folder {tmp_path / 'cifar-10-batches-py'}" in text
    assert "data.download = true" in text and "download=True" not in text


def _write_jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 64, 3), value, dtype=np.uint8)).save(path)


def test_tiny_imagenet_reader(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    for c, wnid in enumerate(wnids):
        for k in range(2):
            _write_jpeg(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", 40 * c + k)
    _write_jpeg(base / "val" / "images" / "val_0.JPEG", 7)
    _write_jpeg(base / "val" / "images" / "val_1.JPEG", 9)
    (base / "val" / "val_annotations.txt").write_text(
        f"val_0.JPEG\t{wnids[1]}\t0\t0\t10\t10\nval_1.JPEG\t{wnids[0]}\t1\t1\t5\t5\n"
    )
    train = load_tiny_imagenet(tmp_path, train=True)
    val = load_tiny_imagenet(tmp_path, train=False)
    assert train.pixels.shape == (4, 3, 64, 64) and train.num_classes == 2
    assert train.labels.tolist() == [0, 0, 1, 1]
    assert val.labels.tolist() == [1, 0]
    assert abs(int(val.pixels[0].float().mean()) - 7) <= 1  # JPEG is lossy


def test_missing_tiny_imagenet_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200"):
        load_tiny_imagenet(tmp_path, train=True)


def test_digits_split_is_disjoint_seeded_and_normalised():
    data = load_digits()
    assert data.pixels.shape == (1797, 1, 8, 8) and int(data.pixels.max()) == 16
    a = digits_splits(np.random.default_rng(3))
    b = digits_splits(np.random.default_rng(3))
    assert torch.equal(a.train.labels, b.train.labels)
    assert len(a.pretrain) == len(a.train) == 718 and len(a.test) == 359
    ids = ImageSet(data.pixels, torch.arange(len(data)), 1797, 16.0, (0.3,), (0.4,))
    parts = split_dataset(ids, DIGITS_FRACTIONS, np.random.default_rng(3))
    sets = [set(p.labels.tolist()) for p in (parts.pretrain, parts.train, parts.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert torch.equal(parts.test.pixels, data.pixels[parts.test.labels])
    images, labels = next(iterate_batches(a.test, 64, img_size=32))
    assert images.shape == (64, 1, 32, 32) and labels.shape == (64,)
    assert abs(float(images.mean())) < 0.5
