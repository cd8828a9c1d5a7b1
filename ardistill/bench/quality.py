"""Sample quality through torch-fidelity (FID, IS, KID, precision/recall) — no hand-written metric.

Which samples are scored (labels, chunks, seeds), how they are read and gathered across ranks, and the metric names
are the evaluation protocol of `ardistill.eval.protocol` (docs/evaluation.md), shared with `ardistill teacher eval`,
the model cards and the trainers' evaluations: the same method, seed and sample count give the same numbers there
and here.

- Toy world: `ardistill.eval.protocol.toy_quality` (the shipped evaluator as the feature extractor, the held-out
  stream as the reference, class accuracy on the same chunks).
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

from ardistill.bench.methods import BenchMethod
from ardistill.bench.references import NpzImages, Reference, load_reference  # noqa: F401  (re-exported)
from ardistill.errors import ArdistillError
from ardistill.eval.protocol import (CHUNK, FEATURE_BATCH, GeneratedImages, HeldoutImages, Uint8Images,  # noqa: F401  (re-exported)
                                     fidelity, gather_generated, on_all_ranks, short_names)
from ardistill.eval.protocol import toy_quality as protocol_toy_quality
from ardistill.io import sha256_file

ImageTensor = Uint8Images  # the old name of the protocol's uint8 image dataset
INCEPTION_ENV = "ARDISTILL_INCEPTION_WEIGHTS"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"  # torch-fidelity's file name carries the first hex digits of its SHA-256
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


def toy_quality(method: BenchMethod, num: int, *, num_classes: int, image_size: int, seed: int, device: torch.device,
                on_chunk: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> dict:
    """Toy-world quality of `method`: the evaluation protocol (`ardistill.eval.protocol.toy_quality`), so the numbers
    equal `ardistill teacher eval`'s, the model cards' and the trainers' evaluations at the same seed and count."""
    return protocol_toy_quality(method, num, seed=seed, image_size=image_size, num_classes=num_classes, device=device,
                                on_chunk=on_chunk)


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
                               device: torch.device, batch_size: int = FEATURE_BATCH) -> dict[str, float]:
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
    return short_names(out) | {
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
    metrics = on_all_ranks(generated, lambda images: fidelity_against_reference(images, ref, **kwargs))
    return {**metrics, "extractor": "inception-v3-compat (torch-fidelity)", "reference": ref.source,
            **({"reference_protocol": ref.spec.protocol, "reproduces": ref.spec.reproduces} if ref.spec is not None else {})}
