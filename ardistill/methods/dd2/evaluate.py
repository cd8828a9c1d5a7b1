"""Toy-FID and class accuracy of DD2 samples, through the project's one evaluation protocol (`ardistill.eval.protocol`,
docs/evaluation.md: balanced labels, chunks of 16 with seed·1_000_003 + chunk seeds, the first `num` held-out real
images, the shipped evaluator), family-generic (through a family adapter).

A DD2 sample is continuous `[B, L, C]` (network space); it is decoded two ways (spec §2): as it is
(`family.decode_continuous`) and from its nearest codes (`family.decode_nearest`). Both decodings score the same
samples: each chunk is generated once, from a CPU generator seeded with the protocol's chunk seed, and kept for the
second decoding. Images `[N, 3, H, W]` in [0, 1].
"""

from __future__ import annotations

from typing import Callable

import torch

from ardistill.eval.protocol import GeneratorFns, toy_quality

# (labels [B], CPU generator) → continuous samples [B, L, C]
SampleFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@torch.no_grad()
def evaluate_samples(family, sample: SampleFn, *, num: int = 1000, seed: int = 0) -> dict:
    """{"continuous": {"fid", "class_acc"}, "nearest": {...}, "seconds_sampling", "num"} for `num` samples."""
    made: dict[int, torch.Tensor] = {}

    def generate(labels: torch.Tensor, chunk_seed: int) -> torch.Tensor:
        if chunk_seed not in made:
            made[chunk_seed] = sample(labels.to(family.device), torch.Generator().manual_seed(chunk_seed))
        return made[chunk_seed]

    out: dict = {"num": num}
    for name, decode in (("continuous", family.decode_continuous), ("nearest", family.decode_nearest)):
        r = toy_quality(GeneratorFns(generate, decode), num, seed=seed, image_size=family.teacher.image_size,
                        num_classes=family.num_classes, device=family.device, across_ranks=False)
        out[name] = {"fid": float(r["fid"]), "class_acc": float(r["class_accuracy"])}
        out.setdefault("seconds_sampling", r["generation_seconds"])
    return out


def one_step_sampler(family, generator: torch.nn.Module) -> SampleFn:
    """The generator's one-step samples: ε ~ N(0, I) `[B, L, C]` from the given CPU generator, one forward."""

    def sample(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        noise = torch.randn(labels.shape[0], family.tokens_per_image, family.code_dim, generator=g).to(family.device)
        return generator(noise, labels)

    return sample


__all__ = ["evaluate_samples", "one_step_sampler", "SampleFn"]
