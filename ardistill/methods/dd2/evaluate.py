"""Toy-FID and class accuracy of DD2 samples on the procedural world, family-generic (through a family adapter).

A DD2 sample is continuous `[B, L, C]` (network space); it is decoded two ways (spec §2): as it is
(`family.decode_continuous`) and from its nearest codes (`family.decode_nearest`). Labels are class-balanced
(index % classes) and batch b's noise comes from a CPU generator seeded with seed·1_000_003 + b, so a number is a
function of (seed, num, batch size). Images `[N, 3, H, W]` in [0, 1]; toy-FID against the held-out real images of the
shipped evaluator (`ardistill.eval.toy_fidelity_metrics`), as the teacher's own toy-FID is measured.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from ardistill.eval import load_evaluator, toy_fidelity_metrics

# (labels [B], CPU generator) → continuous samples [B, L, C]
SampleFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@torch.no_grad()
def evaluate_samples(family, sample: SampleFn, *, num: int = 1000, seed: int = 0, batch_size: int = 100) -> dict:
    """{"continuous": {"fid", "class_acc"}, "nearest": {...}, "seconds_sampling"} for `num` samples."""
    labels = torch.arange(num) % family.num_classes
    cont, near = [], []
    seconds = 0.0
    for start in range(0, num, batch_size):
        lab = labels[start:start + batch_size]
        g = torch.Generator().manual_seed(seed * 1_000_003 + start)
        t0 = time.perf_counter()
        q = sample(lab.to(family.device), g)
        seconds += time.perf_counter() - t0
        cont.append(family.decode_continuous(q).float().cpu())
        near.append(family.decode_nearest(q).float().cpu())
    out = {"seconds_sampling": seconds, "num": num}
    evaluator = load_evaluator()
    for name, images in (("continuous", torch.cat(cont)), ("nearest", torch.cat(near))):
        fid = toy_fidelity_metrics(images, fid=True, kid=False, prc=False, isc=False)["fid"]
        out[name] = {"fid": float(fid), "class_acc": float(evaluator.accuracy(images, labels))}
    return out


def one_step_sampler(family, generator: torch.nn.Module) -> SampleFn:
    """The generator's one-step samples: ε ~ N(0, I) `[B, L, C]` from the given CPU generator, one forward."""

    def sample(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        noise = torch.randn(labels.shape[0], family.tokens_per_image, family.code_dim, generator=g).to(family.device)
        return generator(noise, labels)

    return sample


__all__ = ["evaluate_samples", "one_step_sampler", "SampleFn"]
