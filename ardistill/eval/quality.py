"""Quality of a teacher on the procedural world: class accuracy and toy-FID of its samples, and of its tokenizer's
reconstructions of held-out real images (the ceiling a generator on these tokens can reach).

Images are `[N, 3, H, W]` in [0, 1]. Samples are class-balanced (label = index % num_classes); the sampler seed of
the batch starting at global index i is `seed · 1_000_003 + i`, so results depend on (seed, batch size).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from ardistill.data import split_images
from ardistill.eval import load_evaluator, toy_fidelity_metrics


def balanced_labels(num: int, num_classes: int) -> torch.Tensor:
    """[num] labels 0, 1, …, C−1, 0, 1, … (every class equally often when num is a multiple of C)."""
    return torch.arange(num) % num_classes


@torch.no_grad()
def generate_images(generate: Callable[[torch.Tensor, int], torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor],
                    labels: torch.Tensor, *, seed: int = 0, batch_size: int = 50,
                    progress: bool = True, description: str = "sampling") -> torch.Tensor:
    """Run `generate(labels_batch, batch_seed) -> tokens` and `decode(tokens) -> images` over `labels` in batches."""
    from rich.progress import Progress

    out = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(description, total=len(labels))
        for start in range(0, len(labels), batch_size):
            lab = labels[start : start + batch_size]
            out.append(decode(generate(lab, seed * 1_000_003 + start)).float().cpu())
            bar.advance(task, len(lab))
    return torch.cat(out)


@torch.no_grad()
def reconstructions(teacher, num: int, *, seed: int = 0, batch_size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out real images → tokens → images: (reconstructions [N, 3, H, W], labels [N])."""
    real, labels = split_images(num, split="heldout", seed=seed + 1, size=teacher.image_size)
    rec = [teacher.decode(teacher.encode(real[i : i + batch_size])).float().cpu() for i in range(0, num, batch_size)]
    return torch.cat(rec), labels


def image_quality(images: torch.Tensor, labels: torch.Tensor, *, reference_seed: int = 0) -> dict:
    """Class accuracy (shipped evaluator) and toy-FID / KID / precision / recall against held-out real images."""
    acc = load_evaluator().accuracy(images, labels)
    metrics = toy_fidelity_metrics(images, reference_seed=reference_seed, isc=False)
    return {"class_accuracy": acc, **{k: metrics[k] for k in ("fid", "kid_mean", "precision", "recall")}}


def teacher_quality(teacher, *, num: int = 1000, seed: int = 0, batch_size: int = 50, progress: bool = True,
                    **sampling) -> dict:
    """{"samples": {...}, "reconstructions": {...}, "seconds_per_image": ...} for `num` class-balanced samples at the
    teacher's default sampling settings (overridden by `sampling`)."""
    labels = balanced_labels(num, teacher.num_classes)
    t0 = time.perf_counter()
    images = generate_images(lambda lab, s: teacher.sample(lab, seed=s, **sampling), teacher.decode, labels, seed=seed,
                             batch_size=batch_size, progress=progress, description=f"sampling {teacher.name}")
    seconds = (time.perf_counter() - t0) / num
    rec, rec_labels = reconstructions(teacher, num, seed=seed)
    return {"samples": image_quality(images, labels), "reconstructions": image_quality(rec, rec_labels),
            "seconds_per_image": seconds, "num": num, "images": images}


__all__ = ["balanced_labels", "generate_images", "reconstructions", "image_quality", "teacher_quality"]
