"""Real-training inputs a user brings: a local timm checkpoint (model.pretrained) in each format,
and a class-per-folder image tree (data.name = "image_folder"), both written by the tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.training.wsim_training_helpers import TINY
from wsim.training.data import load_dataset, load_image_folder
from wsim.training.split import create_vit


def _saved_backbone() -> dict[str, torch.Tensor]:
    """A random-init tiny ViT's state dict (seed 7), as a user's checkpoint would hold it."""
    vit = create_vit(TINY, torch.Generator().manual_seed(7))
    return {k: v.detach().clone().contiguous() for k, v in vit.state_dict().items()}


def _write(state: dict[str, torch.Tensor], path: Path) -> None:
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    elif path.suffix == ".npz":
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    else:
        torch.save({"model": state}, path)  # a training checkpoint: state dict under "model"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".npz"])
def test_model_pretrained_path_loads_the_saved_weights(tmp_path: Path, suffix: str) -> None:
    saved = _saved_backbone()
    path = tmp_path / f"backbone{suffix}"
    _write(saved, path)
    config = dataclasses.replace(TINY, weights=str(path))
    loaded = create_vit(config, torch.Generator().manual_seed(99)).state_dict()
    fresh = create_vit(TINY, torch.Generator().manual_seed(99)).state_dict()
    backbone = [k for k in saved if not k.startswith("head.")]
    assert backbone and all(torch.equal(loaded[k], saved[k]) for k in backbone)
    assert not torch.equal(fresh["blocks.0.attn.qkv.weight"], saved["blocks.0.attn.qkv.weight"])
    assert torch.equal(loaded["head.weight"], fresh["head.weight"])  # the head stays the model's


def test_missing_checkpoint_names_the_field_and_what_to_put_where(tmp_path: Path) -> None:
    path = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match=r"model\.pretrained.*nope\.safetensors.*\"timm\""):
        create_vit(dataclasses.replace(TINY, weights=str(path)), torch.Generator())


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    other = dataclasses.replace(TINY, embed_dim=16)
    path = tmp_path / "other.pth"
    torch.save(create_vit(other, torch.Generator()).state_dict(), path)
    with pytest.raises((ValueError, RuntimeError)):
        create_vit(dataclasses.replace(TINY, weights=str(path)), torch.Generator())


def _image_tree(root: Path, sizes: dict[str, tuple[int, int]]) -> dict[tuple[str, str, int], int]:
    """root/{train,val}/<class>/<i>.png|jpg with a distinct flat colour per image; returns the
    red value of each (split, class, i)."""
    reds = {}
    for s, split in enumerate(("train", "val")):
        for c, cls in enumerate(("b_cat", "a_dog")):  # sorted: a_dog = 0, b_cat = 1
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(3 - s):
                red = 40 * c + 10 * i + 100 * s
                img = Image.new("RGB", sizes[cls], (red, 50, 200))
                img.save(folder / (f"{i}.png" if i % 2 == 0 else f"{i}.jpg"), quality=100)
                reds[(split, cls, i)] = red
    (root / "train" / "a_dog" / "notes.txt").write_text("not an image")
    return reds


def test_image_folder_reads_the_class_per_folder_tree(tmp_path: Path) -> None:
    reds = _image_tree(tmp_path, {"b_cat": (20, 12), "a_dog": (9, 9)})
    train = load_dataset("image_folder", tmp_path, True)
    test = load_image_folder(tmp_path, False, side=8)
    assert train.pixels.shape == (6, 3, 224, 224) and train.pixels.dtype == torch.uint8
    assert test.pixels.shape == (4, 3, 8, 8)
    assert train.num_classes == test.num_classes == 2
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and test.labels.tolist() == [0, 0, 1, 1]
    order = [("a_dog", 0), ("a_dog", 1), ("a_dog", 2), ("b_cat", 0), ("b_cat", 1), ("b_cat", 2)]
    want = torch.tensor([reds[("train", c, i)] for c, i in order], dtype=torch.float32)
    got = train.pixels[:, 0].float().mean(dim=(1, 2))
    assert torch.allclose(got, want, atol=2.0)  # flat colours survive crop + resize (+ JPEG)
    assert torch.allclose(
        train.pixels[:, 2].float().mean(dim=(1, 2)), torch.full((6,), 200.0), atol=2.0
    )


def test_image_folder_errors_name_data_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data\.root.*train/<class>"):
        load_image_folder(tmp_path / "missing", True)
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "train" / "a" / "0.png")
    with pytest.raises(FileNotFoundError, match=r"no test split under data\.root"):
        load_image_folder(tmp_path, False)
    (tmp_path / "test" / "zebra").mkdir(parents=True)
    with pytest.raises(ValueError, match="zebra"):
        load_image_folder(tmp_path, False)
