"""`ProceduralImages`: a map-style `torch.utils.data.Dataset` over the procedural world.

Splits are disjoint streams of the same world: split "train" with seed s renders stream `2·s`, split "heldout"
renders stream `2·s + 1` (`stream_seed`). Images are regenerated on demand (≈ 6,000 images/s at 64 px on one
core), so a dataset of any length costs no memory and any shard of it can be rebuilt anywhere.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ardistill.data.procedural import NUM_CLASSES, make_images
from ardistill.errors import BadArgumentError

SPLITS = ("train", "heldout")


def stream_seed(split: str = "train", seed: int = 0) -> int:
    """The `make_images` seed of a split: train → 2·seed, heldout → 2·seed + 1 (never the same stream)."""
    if split not in SPLITS:
        raise BadArgumentError(f"unknown split {split!r}; choose train or heldout")
    if seed < 0:
        raise BadArgumentError(f"seed must be a non-negative integer, got {seed}")
    return 2 * seed + SPLITS.index(split)


def split_images(num: int, *, split: str = "heldout", seed: int = 0, size: int = 64, start: int = 0):
    """Images `start … start+num-1` of a split → (images `[num, 3, size, size]`, labels `[num]`)."""
    return make_images(range(start, start + num), seed=stream_seed(split, seed), size=size)


class ProceduralImages(Dataset):
    """Items `(image [3, size, size] float32 in [0, 1], label int)`; item i is global index `start + i`."""

    num_classes = NUM_CLASSES

    def __init__(self, num: int, *, split: str = "train", seed: int = 0, size: int = 64, start: int = 0):
        if num < 0 or start < 0:
            raise BadArgumentError("dataset length and start must be non-negative")
        self.num, self.split, self.seed, self.size, self.start = num, split, seed, size, start
        self.stream = stream_seed(split, seed)
        make_images([], seed=self.stream, size=size)  # validates the size now, not at the first batch

    def __len__(self) -> int:
        return self.num

    def _indices(self, items) -> list[int]:
        out = []
        for i in items:
            if not -self.num <= i < self.num:
                raise IndexError(f"index {i} out of range for a dataset of {self.num} images")
            out.append(self.start + (i % self.num))
        return out

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        images, labels = make_images(self._indices([i]), seed=self.stream, size=self.size)
        return images[0], int(labels[0])

    def __getitems__(self, items: list[int]) -> list[tuple[torch.Tensor, int]]:
        """Batched fetch (used by DataLoader): one vectorised render for the whole batch."""
        images, labels = make_images(self._indices(items), seed=self.stream, size=self.size)
        return [(img, int(lab)) for img, lab in zip(images, labels)]
