"""Sample quality through torch-fidelity (FID, IS, KID, precision/recall) — no hand-written metric.

Samples are a pure function of (method, seed, global index): image i has class i mod C and is made in the chunk
c = i // CHUNK of CHUNK images with sampler seed `seed + c`, so the same images come out whatever batch sizes the
speed part used. Chunks are generated lazily while torch-fidelity reads the dataset (one chunk in memory).

- Toy world: the shipped evaluator is the feature extractor ("ardistill-toy"); the reference is the held-out
  stream (rendered lazily too); class accuracy of the generated images is measured on the same chunks.
- Under torchrun each rank makes a contiguous range of chunks; the uint8 images are gathered on rank 0 in global
  index order for one torch-fidelity computation, whose numbers every rank then returns (same FID as one process).
- ImageNet: torch-fidelity's Inception ("inception-v3-compat") with weights from a local file checked by SHA-256;
  the reference (see `ardistill.bench.references`: the ADM reference batch, the DD release's statistics, or a file
  or folder) gives FID statistics `mu`/`sigma` (FID against them) and/or images (KID, precision/recall, and FID
  when there are no statistics). Generated features are extracted once for all metrics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ardistill import distributed
from ardistill.bench.methods import BenchMethod
from ardistill.bench.references import NpzImages, Reference, load_reference  # noqa: F401  (re-exported)
from ardistill.bench.speed import balanced_labels
from ardistill.errors import ArdistillError
from ardistill.images import to_uint8
from ardistill.io import sha256_file

CHUNK = 16  # images per generator call in the quality run (part of what defines the samples)
INCEPTION_ENV = "ARDISTILL_INCEPTION_WEIGHTS"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"  # torch-fidelity's file name carries the first hex digits of its SHA-256
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


class GeneratedImages(Dataset):
    """`num` generated images of `method` as uint8 `[3, H, W]` items, made chunk by chunk on first access.

    `on_chunk(images [n, 3, H, W] in [0, 1], labels [n])` sees every chunk once (accuracy, progress, grids).
    """

    def __init__(self, method: BenchMethod, num: int, *, num_classes: int, seed: int, device: torch.device,
                 on_chunk: Callable[[torch.Tensor, torch.Tensor], None] | None = None):
        self.method, self.num, self.num_classes, self.seed, self.device = method, num, num_classes, seed, device
        self.on_chunk = on_chunk
        self._chunk_index, self._chunk = -1, None

    def __len__(self) -> int:
        return self.num

    def chunk(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images `[n, 3, H, W]` in [0, 1] on the CPU, labels `[n]`) of chunk `c`."""
        start = c * CHUNK
        labels = balanced_labels(min(CHUNK, self.num - start), self.num_classes, start=start)
        with torch.no_grad():
            tokens = self.method.generate_tokens(labels.to(self.device), self.seed + c)
            images = self.method.decode(tokens).float().cpu()
        return images, labels

    def __getitem__(self, i: int) -> torch.Tensor:
        c = i // CHUNK
        if c != self._chunk_index:
            images, labels = self.chunk(c)
            if self.on_chunk is not None:
                self.on_chunk(images, labels)
            self._chunk_index, self._chunk = c, to_uint8(images).permute(0, 3, 1, 2).contiguous()
        return self._chunk[i - c * CHUNK]


class HeldoutImages(Dataset):
    """The first `num` images of the procedural world's held-out stream, uint8 `[3, size, size]`, rendered lazily."""

    def __init__(self, num: int, *, size: int, seed: int = 0):
        self.num, self.size, self.seed = num, size, seed
        self._start, self._block = -1, None

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int) -> torch.Tensor:
        from ardistill.data import split_images

        start = i - i % 256
        if start != self._start:
            images, _ = split_images(min(256, self.num - start), split="heldout", seed=self.seed, size=self.size, start=start)
            self._start, self._block = start, to_uint8(images).permute(0, 3, 1, 2).contiguous()
        return self._block[i - start]


def fidelity(generated: Dataset, reference: Dataset, *, extractor: str, weights_path: str | None, device: torch.device,
             batch_size: int = 64) -> dict[str, float]:
    """FID, KID, precision/recall, IS of `generated` against `reference` with torch-fidelity."""
    from torch_fidelity import calculate_metrics

    n1, n2 = len(generated), len(reference)
    if min(n1, n2) < 2:
        raise ArdistillError("--num-samples must be at least 2 for FID/KID/precision-recall")
    raw = calculate_metrics(
        input1=generated, input2=reference, feature_extractor=extractor, feature_extractor_weights_path=weights_path,
        fid=True, kid=True, prc=True, isc=True, batch_size=batch_size, cuda=device.type == "cuda",
        kid_subset_size=min(1000, n1, n2), isc_splits=min(10, n1), save_cpu_ram=True, cache=False, verbose=False,
    )
    names = {"frechet_inception_distance": "fid", "kernel_inception_distance_mean": "kid_mean",
             "kernel_inception_distance_std": "kid_std", "precision": "precision", "recall": "recall",
             "inception_score_mean": "isc_mean", "inception_score_std": "isc_std"}
    return {short: float(raw[long]) for long, short in names.items() if long in raw} | {"num_images": n1, "num_reference": n2}


class ImageTensor(Dataset):
    """uint8 images `[N, 3, H, W]` as a dataset of `[3, H, W]` items."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def gather_generated(generated: GeneratedImages) -> Dataset | None:
    """This rank's contiguous range of chunks, made here (each seen once by `on_chunk`), then all ranks' uint8
    images on rank 0 in global index order; None on the other ranks. Rank 0 holds all N images
    (N × 3 × H × W bytes: 9.8 GB for 50k at 256 px)."""
    num_chunks = (generated.num + CHUNK - 1) // CHUNK
    first, stop = distributed.split_range(num_chunks, distributed.rank(), distributed.world())
    mine = []
    for c in range(first, stop):
        images, labels = generated.chunk(c)
        if generated.on_chunk is not None:
            generated.on_chunk(images, labels)
        mine.append(to_uint8(images).permute(0, 3, 1, 2).contiguous())
    parts = distributed.gather_objects(torch.cat(mine) if mine else None)
    return None if parts is None else ImageTensor(torch.cat([p for p in parts if p is not None]))


def fidelity_all_ranks(generated: GeneratedImages, reference: Dataset | str, **kwargs) -> dict[str, float]:
    """`fidelity(generated, reference, **kwargs)`, with the generation split across ranks under torchrun."""
    if distributed.world() == 1:
        return fidelity(generated, reference, **kwargs)
    images = gather_generated(generated)
    return distributed.broadcast_object(fidelity(images, reference, **kwargs) if distributed.is_main() else None)


def toy_quality(method: BenchMethod, num: int, *, num_classes: int, image_size: int, seed: int, device: torch.device,
                on_chunk: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> dict:
    """Toy-world quality of `method`: torch-fidelity metrics with the shipped evaluator + class accuracy."""
    import ardistill.eval.fidelity  # noqa: F401  (registers the "ardistill-toy" extractor)
    from ardistill.eval.evaluator import load_evaluator

    evaluator = load_evaluator(device=device)
    correct = [0, 0]

    def score(images: torch.Tensor, labels: torch.Tensor) -> None:
        correct[0] += int((evaluator.predict(images) == labels).sum())
        correct[1] += int(labels.numel())
        if on_chunk is not None:
            on_chunk(images, labels)

    generated = GeneratedImages(method, num, num_classes=num_classes, seed=seed, device=device, on_chunk=score)
    metrics = fidelity_all_ranks(generated, HeldoutImages(num, size=image_size), extractor="ardistill-toy", weights_path=None,
                                 device=device)
    correct = distributed.all_reduce_sum(torch.tensor(correct, dtype=torch.float64)).tolist()
    return {**metrics, "class_accuracy": correct[0] / max(correct[1], 1), "extractor": "ardistill-toy (shipped evaluator)",
            "reference": f"procedural world held-out stream, first {num} images"}


def inception_weights(path: str | os.PathLike | None) -> str:
    """The local Inception weights file (flag, else ${INCEPTION_ENV}), checked by SHA-256; one-line errors."""
    path = path or os.environ.get(INCEPTION_ENV)
    if not path:
        raise ArdistillError(f"ImageNet FID needs torch-fidelity's Inception weights: download {INCEPTION_URL} and pass "
                             f"--inception-weights FILE or set {INCEPTION_ENV}")
    p = Path(path)
    if not p.is_file():
        raise ArdistillError(f"Inception weights {p}: no such file (download {INCEPTION_URL} and put it there)")
    digest = sha256_file(p)
    if not digest.startswith(INCEPTION_SHA256_PREFIX):
        raise ArdistillError(f"Inception weights {p}: SHA-256 {digest[:16]}… is not torch-fidelity's {INCEPTION_FILE} "
                             f"(expected {INCEPTION_SHA256_PREFIX}…)")
    return str(p)


def fidelity_against_reference(generated: Dataset, reference: Reference, *, extractor: str, weights_path: str | None,
                               device: torch.device, batch_size: int = 64) -> dict[str, float]:
    """torch-fidelity metrics with the generated features extracted once: IS; FID against the reference's
    statistics when it has them (else against its images); KID and precision/recall when it has images."""
    from torch_fidelity.metric_fid import fid_featuresdict_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_featuresdict_to_metric
    from torch_fidelity.metric_kid import kid_featuresdict_to_metric
    from torch_fidelity.metric_prc import prc_featuresdict_to_metric
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    cuda = device.type == "cuda"
    cls = FEATURE_EXTRACTORS_REGISTRY[extractor]
    layer, isc_layer = cls.get_default_feature_layer_for_metric("fid"), cls.get_default_feature_layer_for_metric("isc")
    fe = create_feature_extractor(extractor, sorted({layer, isc_layer}), cuda=cuda, feature_extractor_weights_path=weights_path, verbose=False)
    n1 = len(generated)
    gen = get_featuresdict_from_dataset(generated, fe, batch_size, cuda, True, False)
    out = dict(isc_featuresdict_to_metric(gen, isc_layer, isc_splits=min(10, n1), verbose=False))
    ref = get_featuresdict_from_dataset(reference.images, fe, batch_size, cuda, True, False) if reference.images is not None else None
    if reference.fid_statistics is not None:
        stats = {k: np.asarray(v, np.float64) for k, v in fid_featuresdict_to_statistics(gen, layer).items()}
        if stats["mu"].shape != reference.fid_statistics["mu"].shape:
            raise ArdistillError(f"reference statistics have {reference.fid_statistics['mu'].shape[0]} dims; {extractor} gives {stats['mu'].shape[0]}")
        out.update(fid_statistics_to_metric(stats, reference.fid_statistics, False))
    elif ref is not None:
        out.update(fid_statistics_to_metric(fid_featuresdict_to_statistics(gen, layer), fid_featuresdict_to_statistics(ref, layer), False))
    if ref is not None:
        n2 = len(reference.images)
        out.update(kid_featuresdict_to_metric(gen, ref, layer, kid_subset_size=min(1000, n1, n2), verbose=False))
        out.update(prc_featuresdict_to_metric(gen, ref, layer, verbose=False))
    names = {"frechet_inception_distance": "fid", "kernel_inception_distance_mean": "kid_mean",
             "kernel_inception_distance_std": "kid_std", "precision": "precision", "recall": "recall",
             "inception_score_mean": "isc_mean", "inception_score_std": "isc_std"}
    return {short: float(out[long]) for long, short in names.items() if long in out} | {
        "num_images": n1, "num_reference": len(reference.images) if reference.images is not None else None,
        "fid_against": "reference statistics (mu, sigma)" if reference.fid_statistics is not None else "reference images"}


def imagenet_quality(method: BenchMethod, num: int, *, num_classes: int, reference: Reference | str, weights: str | None, seed: int,
                     device: torch.device, on_chunk: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> dict:
    """ImageNet quality: class-balanced samples (num / num_classes per class) against the reference (loaded, or a
    path for `load_reference`), Inception."""
    if num % num_classes:
        raise ArdistillError(f"--num-samples must be a multiple of {num_classes} for class-balanced ImageNet samples (50000 = 50 per class)")
    weights_path = inception_weights(weights)
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    generated = GeneratedImages(method, num, num_classes=num_classes, seed=seed, device=device, on_chunk=on_chunk)
    kwargs = dict(extractor="inception-v3-compat", weights_path=weights_path, device=device)
    if distributed.world() == 1:
        metrics = fidelity_against_reference(generated, ref, **kwargs)
    else:  # under torchrun: every rank makes its chunks, rank 0 computes, every rank returns its numbers
        images = gather_generated(generated)
        metrics = distributed.broadcast_object(fidelity_against_reference(images, ref, **kwargs) if distributed.is_main() else None)
    return {**metrics, "extractor": "inception-v3-compat (torch-fidelity)", "reference": ref.source,
            **({"reference_protocol": ref.spec.protocol, "reproduces": ref.spec.reproduces} if ref.spec is not None else {})}
