"""Datasets: embedded digits, CIFAR-10/100 and Tiny-ImageNet from local folders.

Images are kept as raw ``uint8`` pixels ``[n, C, H, W]`` and turned into model input
per batch (scale to [0, 1], normalise per channel, resize to the model's side).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
TINY_DIR = "tiny-imagenet-200"


@dataclass(frozen=True)
class ImageSet:
    """Raw images with labels.

    Attributes:
        pixels: ``[n, C, H, W]`` uint8.
        labels: ``[n]`` int64.
        num_classes: Number of classes.
        max_value: Pixel value that maps to 1.0 (16 for digits, 255 for photos).
        mean: Per-channel mean after scaling to [0, 1].
        std: Per-channel std after scaling.
    """

    pixels: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    max_value: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray | torch.Tensor) -> ImageSet:
        """The samples at ``indices``."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        return ImageSet(
            self.pixels[idx],
            self.labels[idx],
            self.num_classes,
            self.max_value,
            self.mean,
            self.std,
        )


def model_input(data: ImageSet, indices: np.ndarray | torch.Tensor, img_size: int) -> torch.Tensor:
    """Float model input ``[b, C, img_size, img_size]``: ``(p / max − mean) / std``, bilinear resize."""
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
    x = data.pixels[idx].float() / data.max_value
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = (x - mean) / std
    if x.shape[-1] != img_size or x.shape[-2] != img_size:
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    return x


def iterate_batches(
    data: ImageSet, batch_size: int, img_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Sequential ``(images, labels)`` batches over the whole set (for evaluation)."""
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        yield model_input(data, idx, img_size), data.labels[idx]


def load_digits() -> ImageSet:
    """scikit-learn's bundled 8×8 digits (1797 images, 10 classes, values 0..16, no network)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    pixels = torch.from_numpy(bunch.images.astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return ImageSet(pixels, labels, 10, 16.0, (0.3,), (0.4,))


@dataclass(frozen=True)
class DataSplits:
    """Disjoint parts of one dataset: central pretraining, federated training, test."""

    pretrain: ImageSet
    train: ImageSet
    test: ImageSet


def split_dataset(
    data: ImageSet, fractions: tuple[float, float, float], rng: np.random.Generator
) -> DataSplits:
    """Seeded random split into disjoint pretrain / federated-train / test parts.

    Args:
        data: The whole dataset.
        fractions: Shares of (pretrain, train, test), summing to ≤ 1.
        rng: Seeded generator.
    """
    if min(fractions) < 0 or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to <= 1, got {fractions}")
    order = rng.permutation(len(data))
    n_pre, n_train, n_test = (int(f * len(data)) for f in fractions)
    cuts = np.cumsum([n_pre, n_train, n_test])
    parts = np.split(order, cuts)[:3]
    return DataSplits(*(data.subset(np.sort(p)) for p in parts))


DIGITS_FRACTIONS = (0.4, 0.4, 0.2)
"""Digits split: 718 pretraining, 718 federated-train, 359 test images."""


def digits_splits(rng: np.random.Generator) -> DataSplits:
    """The embedded default data: digits split by ``DIGITS_FRACTIONS``."""
    return split_dataset(load_digits(), DIGITS_FRACTIONS, rng)


def _missing(what: str, where: Path, download_hint: bool) -> FileNotFoundError:
    """What is missing, in scenario terms: the folder to create under ``data.root`` and, where
    torchvision can fetch it, the scenario field that does (``data.download = true``)."""
    hint = (
        " — or set data.download = true in the scenario's [data] (needs the network)"
        if download_hint
        else ""
    )
    return FileNotFoundError(
        f"{what} not found: create the folder {where} (data.root = {str(where.parent)!r}) and "
        f"put the files there{hint}"
    )


def _unpickle(path: Path) -> dict[str, object]:
    with path.open("rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def load_cifar(name: str, root: str | Path, train: bool, download: bool = False) -> ImageSet:
    """CIFAR-10/100 from the pickled-batch format under ``root``.

    ``cifar-10-batches-py/data_batch_1..5, test_batch`` (key ``labels``) or
    ``cifar-100-python/train, test`` (key ``fine_labels``); ``data`` is ``[n, 3072]`` uint8.
    ``download=True`` fetches the archive with torchvision into ``root`` first.

    Raises:
        FileNotFoundError: The files are missing (the message says what to put where).
    """
    if name not in CIFAR_DIRS:
        raise ValueError(f"unknown CIFAR variant {name!r}; valid: {sorted(CIFAR_DIRS)}")
    folder = Path(root) / CIFAR_DIRS[name]
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        label_key, num_classes = "labels", 10
        mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    else:
        files, label_key, num_classes = ["train" if train else "test"], "fine_labels", 100
        mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    if download and not all((folder / f).is_file() for f in files):
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        cls(str(root), train=train, download=True)
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise _missing(f"{name} files {missing}", folder, download_hint=True)
    batches = [_unpickle(folder / f) for f in files]
    data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
    labels = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    pixels = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageSet(pixels, torch.from_numpy(labels), num_classes, 255.0, mean, std)


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)


def load_tiny_imagenet(root: str | Path, train: bool) -> ImageSet:
    """Tiny-ImageNet-200 from ``root/tiny-imagenet-200`` (test = the labelled ``val`` split).

    Train: ``train/<wnid>/images/*.JPEG``; val: ``val/images/*.JPEG`` labelled by
    ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>bbox``). Classes are the sorted
    train wnids. Images are 64×64 RGB.

    Raises:
        FileNotFoundError: The folder layout is missing (the message says what to put where).
    """
    base = Path(root) / TINY_DIR
    train_dir = base / "train"
    if not train_dir.is_dir():
        raise _missing("Tiny-ImageNet (train/<wnid>/images/*.JPEG)", base, download_hint=False)
    wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    index = {w: i for i, w in enumerate(wnids)}
    if train:
        items = [
            (p, index[w]) for w in wnids for p in sorted((train_dir / w / "images").glob("*.JPEG"))
        ]
    else:
        notes = base / "val" / "val_annotations.txt"
        if not notes.is_file():
            raise _missing("Tiny-ImageNet val/val_annotations.txt", base / "val", False)
        rows = [line.split("\t") for line in notes.read_text().splitlines() if line.strip()]
        items = [(base / "val" / "images" / r[0], index[r[1]]) for r in rows]
    if not items:
        raise _missing("Tiny-ImageNet images", base, download_hint=False)
    pixels = torch.from_numpy(np.stack([_read_rgb(p) for p, _ in items]))
    labels = torch.tensor([c for _, c in items], dtype=torch.int64)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return ImageSet(pixels, labels, len(wnids), 255.0, mean, std)


IMAGE_FOLDER_SIDE = 224
"""Side in pixels that ``load_image_folder`` stores images at (the paper presets' input side)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEST_DIRS = ("val", "test")
"""Folders under ``data.root`` that ``load_image_folder`` reads as the test split, first found."""


def _read_square(path: Path, side: int) -> np.ndarray:
    """``[3, side, side]`` uint8: the centre square of the image, resized bilinearly."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
        w, h = rgb.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        rgb = rgb.resize((side, side), Image.Resampling.BILINEAR, box=box)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _class_images(folder: Path) -> dict[str, list[Path]]:
    return {
        c.name: sorted(p for p in c.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for c in sorted(folder.iterdir())
        if c.is_dir()
    }


def load_image_folder(root: str | Path, train: bool, side: int = IMAGE_FOLDER_SIDE) -> ImageSet:
    """A class-per-folder tree: ``root/train/<class>/*.png|jpg``, test ``root/val`` or ``root/test``.

    Flowers-102, CUB-200 and ImageNet-100 are distributed so. Classes are the sorted class
    folders of ``root/train`` (the test split uses the same indices); each image is stored as its
    centre square resized to ``side`` (uint8, ``3·side²`` bytes each, 150 kB at 224 px).
    Normalised with the ImageNet mean/std.

    Raises:
        FileNotFoundError: A folder, a class's images or the test split is missing (the message
            names data.root and what to put where).
        ValueError: The test split has a class folder that ``train`` has not.
    """
    base = Path(root)
    layout = "train/<class>/*.jpg and val/<class>/*.jpg (or test/<class>/...)"
    train_dir = base / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(
            f"image_folder: no folder {train_dir} (data.root = {str(base)!r}): put the data set "
            f"there as {layout}"
        )
    classes = sorted(_class_images(train_dir))
    if not classes:
        raise FileNotFoundError(
            f"image_folder: {train_dir} has no class folders (data.root = {str(base)!r}); "
            f"expected {layout}"
        )
    if train:
        split = train_dir
    else:
        found = [base / d for d in TEST_DIRS if (base / d).is_dir()]
        if not found:
            raise FileNotFoundError(
                f"image_folder: no test split under data.root = {str(base)!r}: create "
                f"{base / 'val'} (or {base / 'test'}) with one folder per class of train/"
            )
        split = found[0]
    per_class = _class_images(split)
    unknown = sorted(set(per_class) - set(classes))
    if unknown:
        raise ValueError(f"image_folder: {split} has classes {unknown} that {train_dir} has not")
    index = {c: i for i, c in enumerate(classes)}
    items = [(p, index[c]) for c, paths in per_class.items() for p in paths]
    if not items:
        raise FileNotFoundError(
            f"image_folder: no {'/'.join(IMAGE_SUFFIXES)} images under {split} "
            f"(data.root = {str(base)!r})"
        )
    pixels = torch.from_numpy(np.stack([_read_square(p, side) for p, _ in items]))
    labels = torch.tensor([c for _, c in items], dtype=torch.int64)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return ImageSet(pixels, labels, len(classes), 255.0, mean, std)


DATASETS = ("digits", "cifar10", "cifar100", "tiny_imagenet", "image_folder")
"""Dataset names accepted by ``load_dataset``."""


def load_dataset(
    name: str, root: str | Path | None, train: bool, download: bool = False
) -> ImageSet:
    """A dataset by name (``digits`` needs no root; use ``digits_splits`` for its parts)."""
    if name == "digits":
        return load_digits()
    if root is None:
        raise ValueError(f"dataset {name!r} needs a data root folder (data.root)")
    if name in CIFAR_DIRS:
        return load_cifar(name, root, train, download)
    if name == "tiny_imagenet":
        return load_tiny_imagenet(root, train)
    if name == "image_folder":
        return load_image_folder(root, train)
    raise ValueError(f"unknown dataset {name!r}; valid: {list(DATASETS)}")
