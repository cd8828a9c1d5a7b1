"""FID / KID / precision-recall / IS on the procedural world with torch-fidelity, using the shipped evaluator.

Importing this module registers the feature extractor "ardistill-toy" with torch-fidelity, so the toy world runs
the very code path that Inception-FID runs on ImageNet, with a different extractor:

    torch_fidelity.calculate_metrics(input1=ds1, input2=ds2, feature_extractor="ardistill-toy", fid=True, ...)

Features: "features" (the evaluator's penultimate layer, [B, D]; FID, KID, PRC) and "logits" ([B, C]; IS).
`feature_extractor_weights_path` may name an evaluator folder (default: the shipped one).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch.utils.data import Dataset
from torch_fidelity import calculate_metrics, register_feature_extractor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ardistill.data import split_images
from ardistill.errors import BadArgumentError
from ardistill.eval.evaluator import load_evaluator
from ardistill.eval.network import to_input_size
from ardistill.images import to_uint8

EXTRACTOR_NAME = "ardistill-toy"


class ToyFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over the evaluator: uint8 `[B, 3, H, W]` → requested features, in order."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        evaluator = load_evaluator(feature_extractor_weights_path)
        self.network = evaluator.network
        self.image_size = evaluator.config.image_size
        self.feature_scale = evaluator.feature_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=torch.uint8")
        features, logits = self.network(to_input_size(x.float() / 255.0, self.image_size))
        out = {"features": features.float() / self.feature_scale, "logits": logits.float()}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 64, 64, dtype=torch.uint8)


if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(EXTRACTOR_NAME, ToyFeatureExtractor)


class Uint8Images(Dataset):
    """Images `[N, 3, H, W]` uint8 as a torch-fidelity input (each item `[3, H, W]` uint8)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def as_uint8_images(images) -> torch.Tensor:
    """A tensor `[N, 3, H, W]` in [0, 1] (or uint8), or an iterable of such batches or of (images, labels)
    pairs → one uint8 tensor `[N, 3, H, W]` (rounded to nearest, as when saved to PNG)."""
    batches = [images] if isinstance(images, torch.Tensor) else list(images)
    out = []
    for b in batches:
        b = b[0] if isinstance(b, (tuple, list)) else b
        if not isinstance(b, torch.Tensor) or b.dim() != 4 or b.shape[1] != 3:
            got = list(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise BadArgumentError(f"expected images [N, 3, H, W], got {got}")
        out.append(b.cpu() if b.dtype == torch.uint8 else to_uint8(b).permute(0, 3, 1, 2).contiguous())
    if not out or sum(b.shape[0] for b in out) == 0:
        raise BadArgumentError("no images to score")
    sizes = {tuple(b.shape[1:]) for b in out}
    if len(sizes) != 1:
        raise BadArgumentError(f"all batches must have the same image shape, got {sorted(sizes)}")
    return torch.cat(out)


def toy_fidelity_metrics(
    images: torch.Tensor | Iterable,
    reference: torch.Tensor | Iterable | None = None,
    *,
    reference_num: int | None = None,
    reference_seed: int = 0,
    fid: bool = True,
    kid: bool = True,
    prc: bool = True,
    isc: bool = True,
    evaluator_dir: str | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    verbose: bool = False,
) -> dict[str, float]:
    """FID / KID / precision-recall / IS of `images` against `reference` with the "ardistill-toy" extractor.

    Args:
        images: generated images `[N, 3, H, W]` in [0, 1] (or an iterable of batches / (images, labels) pairs).
        reference: real images in the same form; default: the first `reference_num` (default N) images of the
            held-out stream (`split_images(split="heldout", seed=reference_seed)`) at the size of `images`.
    Returns: {"fid", "kid_mean", "kid_std", "precision", "recall", "f_score", "isc_mean", "isc_std", "num_images",
        "num_reference"} (only the requested metrics).
    """
    generated = as_uint8_images(images)
    if reference is None:
        num = reference_num or generated.shape[0]
        reference = split_images(num, split="heldout", seed=reference_seed, size=generated.shape[-1])[0]
    real = as_uint8_images(reference)
    if not (fid or kid or prc or isc):
        raise BadArgumentError("choose at least one of fid, kid, prc, isc")
    n1, n2 = generated.shape[0], real.shape[0]
    if (fid or kid or prc) and min(n1, n2) < 2:
        raise BadArgumentError("FID/KID/precision-recall need at least 2 images on each side")
    raw = calculate_metrics(
        input1=Uint8Images(generated), input2=Uint8Images(real) if (fid or kid or prc) else None,
        feature_extractor=EXTRACTOR_NAME, feature_extractor_weights_path=evaluator_dir,
        fid=fid, kid=kid, prc=prc, isc=isc, batch_size=batch_size, cuda=torch.device(device).type == "cuda",
        kid_subset_size=min(1000, n1, n2), isc_splits=min(10, n1), save_cpu_ram=True, cache=False, verbose=verbose,
    )
    names = {"frechet_inception_distance": "fid", "kernel_inception_distance_mean": "kid_mean",
             "kernel_inception_distance_std": "kid_std", "precision": "precision", "recall": "recall",
             "f_score": "f_score", "inception_score_mean": "isc_mean", "inception_score_std": "isc_std"}
    out = {short: float(raw[long]) for long, short in names.items() if long in raw}
    out.update(num_images=n1, num_reference=n2)
    return out
