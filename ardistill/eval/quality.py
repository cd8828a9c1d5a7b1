"""Quality of a teacher on the procedural world: class accuracy and toy-FID of its samples, and of its tokenizer's
reconstructions of held-out real images (the ceiling a generator on these tokens can reach).

Samples go through the evaluation protocol (`ardistill.eval.protocol`: class-balanced labels, chunks of 16 with
seed `seed · 1_000_003 + chunk`, the protocol's torch-fidelity settings), so a teacher's numbers here equal those of
`ardistill bench --fid` at the same seed and sample count; `card_metrics` is what `ardistill teacher export` writes
into a built-in teacher's model card. Images are `[N, 3, H, W]` in [0, 1].
"""

from __future__ import annotations

import json

import torch

from ardistill.data import split_images
from ardistill.eval.evaluator import CARD_FILE, PACKAGE_EVALUATOR_DIR, load_evaluator
from ardistill.eval.protocol import GeneratorFns, balanced_labels, describe, toy_fidelity_metrics, toy_quality

QUALITY_METRICS = ("class_accuracy", "fid", "kid_mean", "precision", "recall")  # what teacher eval and the cards show


def teacher_generator(teacher, **sampling) -> GeneratorFns:
    """The teacher's sampler at its default settings (overridden by `sampling`) and its tokenizer, as a protocol
    generator: the same callables as the benchmark's `teacher` method."""
    overrides = {k: v for k, v in sampling.items() if v is not None}
    return GeneratorFns(lambda labels, seed: teacher.sample(labels, seed=seed, **overrides), teacher.decode)


@torch.no_grad()
def reconstructions(teacher, num: int, *, seed: int = 0, batch_size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out real images → tokens → images: (reconstructions [N, 3, H, W], labels [N]) of the held-out stream of
    seed `seed + 1` (disjoint from the seed-0 reference the metrics compare against)."""
    real, labels = split_images(num, split="heldout", seed=seed + 1, size=teacher.image_size)
    rec = [teacher.decode(teacher.encode(real[i : i + batch_size])).float().cpu() for i in range(0, num, batch_size)]
    return torch.cat(rec), labels


def image_quality(images: torch.Tensor, labels: torch.Tensor, *, reference_seed: int = 0) -> dict:
    """Class accuracy (shipped evaluator) and toy-FID / KID / precision / recall of images already made, against the
    first N held-out real images (the protocol's reference and metric settings)."""
    acc = load_evaluator().accuracy(images, labels)
    metrics = toy_fidelity_metrics(images, reference_seed=reference_seed)
    return {"class_accuracy": acc, **{k: metrics[k] for k in QUALITY_METRICS[1:]}}


def teacher_quality(teacher, *, num: int = 1000, seed: int = 0, progress: bool = True, keep_images: int | None = None,
                    **sampling) -> dict:
    """{"samples": {...}, "reconstructions": {...}, "seconds_per_image", "num", "seed", "protocol", "images"}:
    `num` samples of the teacher at its default sampling settings (overridden by `sampling`) through the evaluation
    protocol with `seed`, next to `num` reconstructions of held-out images. "images": the first `keep_images`
    samples (default: all) `[n, 3, H, W]`; "seconds_per_image": sampling + decoding only."""
    from rich.progress import Progress

    kept: list[torch.Tensor] = []
    keep = num if keep_images is None else keep_images
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"sampling {teacher.name}", total=num)

        def on_chunk(images: torch.Tensor, labels: torch.Tensor) -> None:
            have = sum(k.shape[0] for k in kept)
            if have < keep:
                kept.append(images[: keep - have])
            bar.advance(task, labels.numel())

        q = toy_quality(teacher_generator(teacher, **sampling), num, seed=seed, image_size=teacher.image_size,
                        num_classes=teacher.num_classes, device=teacher.device, on_chunk=on_chunk, across_ranks=False)
    rec, rec_labels = reconstructions(teacher, num, seed=seed)
    images = torch.cat(kept) if kept else torch.empty(0, 3, teacher.image_size, teacher.image_size)
    return {"samples": {k: q[k] for k in QUALITY_METRICS}, "reconstructions": image_quality(rec, rec_labels),
            "seconds_per_image": q["generation_seconds"] / num, "num": num, "seed": seed, "protocol": describe(num, seed),
            "images": images}


def card_metrics(teacher, *, num: int = 1000, seed: int = 0, progress: bool = True) -> dict:
    """The `metrics` of a built-in teacher's model card (`ardistill teacher export`): `teacher_quality` at the
    default sampling settings, rounded to 4 digits, with the protocol and the shipped evaluator's SHA-256 (the card's
    numbers belong to that evaluator and so to one procedural world)."""
    q = teacher_quality(teacher, num=num, seed=seed, progress=progress, keep_images=0)
    metrics = {what: {k: round(float(v), 4) for k, v in q[what].items()} for what in ("samples", "reconstructions")}
    metrics["ms_per_image_cpu"] = round(1000 * q["seconds_per_image"], 1)
    metrics["num"] = num
    metrics["seed"] = seed
    metrics["protocol"] = q["protocol"]["protocol"]
    metrics["evaluator_sha256"] = json.loads((PACKAGE_EVALUATOR_DIR / CARD_FILE).read_text())["sha256"]
    return metrics


__all__ = ["QUALITY_METRICS", "balanced_labels", "teacher_generator", "reconstructions", "image_quality", "teacher_quality",
           "card_metrics"]
