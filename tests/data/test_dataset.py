"""ProceduralImages: a Dataset that agrees with make_images, disjoint splits, batched DataLoader fetches."""

import pytest
import torch
from torch.utils.data import DataLoader

from ardistill.data import ProceduralImages, make_images, split_images, stream_seed
from ardistill.errors import BadArgumentError


def test_items_are_make_images_of_the_split_stream():
    ds = ProceduralImages(50, split="heldout", seed=2, size=32, start=100)
    assert len(ds) == 50 and ds.stream == stream_seed("heldout", 2) == 5
    image, label = ds[3]
    ref, ref_labels = make_images([103], seed=5, size=32)
    assert torch.equal(image, ref[0]) and label == int(ref_labels[0])
    assert torch.equal(ds[-1][0], make_images([149], seed=5, size=32)[0][0])
    with pytest.raises(IndexError):
        ds[50]


def test_dataloader_batches_equal_direct_rendering():
    ds = ProceduralImages(40, split="train", seed=0, size=64)
    images, labels = next(iter(DataLoader(ds, batch_size=40, shuffle=False)))
    ref_images, ref_labels = split_images(40, split="train", seed=0, size=64)
    assert torch.equal(images, ref_images) and torch.equal(labels, ref_labels)


def test_splits_and_seeds_are_disjoint_streams():
    streams = {stream_seed(split, seed) for split in ("train", "heldout") for seed in range(5)}
    assert len(streams) == 10
    train, _ = split_images(36, split="train")
    held, _ = split_images(36, split="heldout")
    assert torch.cdist(train.flatten(1), held.flatten(1)).min() > 1.0


def test_bad_split_or_size():
    with pytest.raises(BadArgumentError, match="split"):
        ProceduralImages(4, split="test")
    with pytest.raises(BadArgumentError, match="size"):
        ProceduralImages(4, size=128)
